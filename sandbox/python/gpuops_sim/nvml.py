"""The simulated NVML API, with nvidia-ml-py's names, argument orders and return shapes.

Configured by environment (see sandbox/README.md): GPUOPS_NVML_SIM_FIXTURE names the host's
fixture, GPUOPS_NVML_SIM_STATE an optional JSON file of mutable state shared by processes.
The fixture and state are read once per nvmlInit; calls then work in memory and only
mutations (MIG changes, faults that count down) write the state file.
"""

import ctypes
import hashlib
import os
import re
import threading
from ctypes import c_uint, c_void_p

from gpuops_sim import constants as _c
from gpuops_sim import fixture as _fixture
from gpuops_sim import mig as _mig
from gpuops_sim import state as _state
from gpuops_sim.constants import *  # noqa: F401,F403  # pylint: disable=wildcard-import,unused-wildcard-import
from gpuops_sim.errors import (  # noqa: F401  # pylint: disable=unused-import
    ERROR_CLASSES,
    NVMLError,
    _Library,
    library_error_string,
    nvmlExceptionClass,
)
from gpuops_sim.structs import (  # noqa: F401  # pylint: disable=unused-import
    c_nvmlComputeInstance_t,
    c_nvmlComputeInstanceInfo_t,
    c_nvmlComputeInstancePlacement_t,
    c_nvmlComputeInstanceProfileInfo_t,
    c_nvmlComputeInstanceProfileInfo_v2_t,
    c_nvmlDevice_t,
    c_nvmlGpuInstance_t,
    c_nvmlGpuInstanceInfo_t,
    c_nvmlGpuInstancePlacement_t,
    c_nvmlGpuInstanceProfileInfo_t,
    c_nvmlGpuInstanceProfileInfo_v2_t,
    c_nvmlMemory_t,
    c_nvmlMemory_v2_t,
    c_nvmlProcessInfo_t,
    c_nvmlProcessInfo_v2_t,
    c_nvmlProcessInfo_v3_t,
    c_nvmlTemperature_v1_t,
    c_nvmlUtilization_t,
    nvmlFriendlyObject,
    nvmlPciInfo_t,
    nvmlStructToFriendlyObject,
    struct_c_nvmlComputeInstance_t,
    struct_c_nvmlDevice_t,
    struct_c_nvmlGpuInstance_t,
)

globals().update(ERROR_CLASSES)

FIXTURE_ENV = "GPUOPS_NVML_SIM_FIXTURE"
STATE_ENV = "GPUOPS_NVML_SIM_STATE"

_NOT_AVAILABLE_UINT = 0xFFFFFFFF
_MIB = 1024 * 1024
_PCI_VENDOR_NVIDIA = 0x10DE


# --------------------------------------------------------------------------------------
# Process-wide simulator context
# --------------------------------------------------------------------------------------
class _Context:
    def __init__(self):
        self.lock = threading.RLock()
        self.refcount = 0
        self.source = None  # (fixture path, state path) the store was built for
        self.fixture = None
        self.store = None
        self.fixture_fault_fired = {}
        self.uuids = []
        self.serials = []


_ctx = _Context()


def sim_forget():
    """Drop all process state (handles stay decodable): the next nvmlInit starts afresh."""
    with _ctx.lock:
        _ctx.__init__()
        _Library.loaded = False


def sim_store():
    """The StateStore in use (None before the first successful nvmlInit)."""
    return _ctx.store


def _cache_path(state_path):
    return state_path + ".fixture-cache.json" if state_path else None


# --------------------------------------------------------------------------------------
# Handles: opaque pointers whose addresses index a registry, like the driver's.
# --------------------------------------------------------------------------------------
_HANDLE_BASE = 0x7F5E_A000_0000
_addr_by_key = {}
_key_by_addr = {}


def _handle(key, pointer_type):
    addr = _addr_by_key.get(key)
    if addr is None:
        addr = _HANDLE_BASE + 0x40 * (len(_addr_by_key) + 1)
        _addr_by_key[key] = addr
        _key_by_addr[addr] = key
    return ctypes.cast(c_void_p(addr), pointer_type)


def _key(handle):
    if handle is None:
        raise NVMLError(_c.NVML_ERROR_INVALID_ARGUMENT)
    try:
        addr = ctypes.cast(handle, c_void_p).value
    except (TypeError, ctypes.ArgumentError):
        raise NVMLError(_c.NVML_ERROR_INVALID_ARGUMENT) from None
    key = _key_by_addr.get(addr)
    if key is None:
        raise NVMLError(_c.NVML_ERROR_INVALID_ARGUMENT)
    return key


def _device_handle(index):
    return _handle(("dev", index), c_nvmlDevice_t)


def _mig_handle(index, gi, ci):
    return _handle(("mig", index, gi["uid"], ci["uid"]), c_nvmlDevice_t)


def _gi_handle(index, gi):
    return _handle(("gi", index, gi["uid"]), c_nvmlGpuInstance_t)


def _ci_handle(index, gi, ci):
    return _handle(("ci", index, gi["uid"], ci["uid"]), c_nvmlComputeInstance_t)


# --------------------------------------------------------------------------------------
# Faults
# --------------------------------------------------------------------------------------
_SUFFIX = re.compile(r"(_v\d+|V)$")
_STAR_EXEMPT = {"nvmlDeviceGetHandleByIndex", "nvmlShutdown", "nvmlErrorString"}


def _family(name):
    """Call family: versioned variants share their base name's faults."""
    if name in ("nvmlInit", "nvmlInitWithFlags"):
        return "nvmlInit"
    return _SUFFIX.sub("", name)


def _fault_matches(fault, family, gpu_index):
    if fault["gpu"] is not None and fault["gpu"] != gpu_index:
        return False
    if fault["call"] == "*":
        return family not in _STAR_EXEMPT
    return _family(fault["call"]) == family


def _fire_faults(name, gpu_index):
    family = _family(name)
    fixture = _ctx.fixture
    sources = list(fixture["faults"])
    if gpu_index is not None:
        sources.extend(fixture["gpus"][gpu_index]["faults"])
    for fault in sources:
        if not _fault_matches(fault, family, gpu_index):
            continue
        if fault["times"] is not None:
            # Fixture faults with a count fire that many times per process.
            fired = _ctx.fixture_fault_fired.get(id(fault), 0)
            if fired >= fault["times"]:
                continue
            _ctx.fixture_fault_fired[id(fault)] = fired + 1
        raise NVMLError(fault["error"])
    for fault in _ctx.store.data["faults"]:
        if not _fault_matches(fault, family, gpu_index):
            continue
        if fault.get("skip"):
            # Armed after N matching calls (to fail one particular call of a sequence).
            _ctx.store.mutate(lambda data, fid=fault["id"]: _skip_down(data, fid))
            continue
        if fault.get("times") is not None:
            _ctx.store.mutate(lambda data, fid=fault["id"]: _count_down(data, fid))
        raise NVMLError(fault["error"])


def _skip_down(data, fault_id):
    for fault in data["faults"]:
        if fault["id"] == fault_id and fault.get("skip"):
            fault["skip"] -= 1
            return


def _count_down(data, fault_id):
    for fault in data["faults"]:
        if fault["id"] == fault_id and fault.get("times") is not None:
            fault["times"] -= 1
            if fault["times"] <= 0:
                data["faults"].remove(fault)
            return


# --------------------------------------------------------------------------------------
# Call plumbing
# --------------------------------------------------------------------------------------
def _require_init():
    if _ctx.refcount <= 0:
        raise NVMLError(_c.NVML_ERROR_UNINITIALIZED)


def _system_call(name):
    _require_init()
    _fire_faults(name, None)


class _Target:
    """What a device handle points at: a physical GPU or one MIG device on it."""

    __slots__ = ("ci", "gi", "gpu", "index", "state")

    def __init__(self, index, gi=None, ci=None):
        self.index = index
        self.gpu = _ctx.fixture["gpus"][index]
        self.state = _ctx.store.data["gpus"][index]
        self.gi = gi
        self.ci = ci

    @property
    def is_mig(self):
        return self.gi is not None

    @property
    def model(self):
        return self.gpu["model"]

    @property
    def geometry(self):
        return self.gpu["model"]["mig_geometry"]


def _find_gi(index, gi_uid):
    for gi in _ctx.store.data["gpus"][index]["gpu_instances"]:
        if gi["uid"] == gi_uid:
            return gi
    return None


def _find_ci(gi, ci_uid):
    for ci in gi["compute_instances"]:
        if ci["uid"] == ci_uid:
            return ci
    return None


def _device(handle, name, mig_ok=False):
    """Resolve a device handle for call `name`, firing faults; MIG handles only if mig_ok."""
    _require_init()
    key = _key(handle)
    if key[0] not in ("dev", "mig") or key[1] >= len(_ctx.fixture["gpus"]):
        raise NVMLError(_c.NVML_ERROR_INVALID_ARGUMENT)
    _fire_faults(name, key[1])
    if key[0] == "dev":
        return _Target(key[1])
    gi = _find_gi(key[1], key[2])
    ci = _find_ci(gi, key[3]) if gi is not None else None
    if ci is None:
        raise NVMLError(_c.NVML_ERROR_INVALID_ARGUMENT)
    if not mig_ok:
        raise NVMLError(_c.NVML_ERROR_NOT_SUPPORTED)
    return _Target(key[1], gi, ci)


def _gpu_instance(handle, name):
    _require_init()
    key = _key(handle)
    if key[0] != "gi":
        raise NVMLError(_c.NVML_ERROR_INVALID_ARGUMENT)
    _fire_faults(name, key[1])
    gi = _find_gi(key[1], key[2])
    if gi is None:
        raise NVMLError(_c.NVML_ERROR_INVALID_ARGUMENT)
    return _Target(key[1], gi)


def _compute_instance(handle, name):
    _require_init()
    key = _key(handle)
    if key[0] != "ci":
        raise NVMLError(_c.NVML_ERROR_INVALID_ARGUMENT)
    _fire_faults(name, key[1])
    gi = _find_gi(key[1], key[2])
    ci = _find_ci(gi, key[3]) if gi is not None else None
    if ci is None:
        raise NVMLError(_c.NVML_ERROR_INVALID_ARGUMENT)
    return _Target(key[1], gi, ci)


def _text(value):
    return value.decode() if isinstance(value, bytes) else str(value)


def _out_object(ref):
    """The ctypes object behind byref(x), pointer(x) or x."""
    if ref is None:
        return None
    obj = getattr(ref, "_obj", None)  # byref() result
    if obj is not None:
        return obj
    if isinstance(ref, ctypes._Pointer):
        return ref.contents
    return ref


def _fill_array(ref, items, count_ref):
    """Write `items` into the caller's array (if any) and their number into `count_ref`."""
    count = _out_object(count_ref)
    if count is None:
        raise NVMLError(_c.NVML_ERROR_INVALID_ARGUMENT)
    if ref is not None:
        target = _out_object(ref)
        if isinstance(target, ctypes.Array) and len(target) < len(items):
            count.value = len(items)
            raise NVMLError(_c.NVML_ERROR_INSUFFICIENT_SIZE)
        if isinstance(ref, ctypes._Pointer):
            target = ref
        for i, item in enumerate(items):
            target[i] = item
    count.value = len(items)


# --------------------------------------------------------------------------------------
# Init / system
# --------------------------------------------------------------------------------------
def nvmlInitWithFlags(flags):
    with _ctx.lock:
        fixture_path = os.environ.get(FIXTURE_ENV)
        if not fixture_path:
            raise NVMLError(_c.NVML_ERROR_LIBRARY_NOT_FOUND)
        state_path = os.environ.get(STATE_ENV) or None
        fixture = _fixture.load(fixture_path, _cache_path(state_path))
        if fixture["driver"]["state"] == "none":
            raise NVMLError(_c.NVML_ERROR_LIBRARY_NOT_FOUND)
        _Library.loaded = True
        source = (os.path.abspath(fixture_path), state_path and os.path.abspath(state_path))
        if _ctx.source != source or _ctx.fixture is not fixture:
            _ctx.source = source
            _ctx.fixture = fixture
            _ctx.store = _state.StateStore(fixture, state_path)
            _ctx.fixture_fault_fired = {}
        _ctx.store.load()
        _identify(fixture, _ctx.store.data)
        _fire_faults("nvmlInitWithFlags", None)
        if fixture["driver"]["state"] != "loaded":
            raise NVMLError(_c.NVML_ERROR_DRIVER_NOT_LOADED)
        _ctx.refcount += 1


def _identify(fixture, data):
    host = data.get("host") or fixture["host"]["name"]
    _ctx.uuids = [gpu["uuid"] or _fixture.derive_uuid(host, gpu["bus_id"]) for gpu in fixture["gpus"]]
    _ctx.serials = [gpu["serial"] or _fixture.derive_serial(host, gpu["bus_id"]) for gpu in fixture["gpus"]]


def nvmlInit():
    nvmlInitWithFlags(0)


def nvmlShutdown():
    with _ctx.lock:
        _require_init()
        _ctx.refcount -= 1


def nvmlErrorString(result):
    if not _Library.loaded:
        raise NVMLError(_c.NVML_ERROR_UNINITIALIZED)
    return library_error_string(result)


def nvmlSystemGetDriverVersion():
    _system_call("nvmlSystemGetDriverVersion")
    return _ctx.fixture["driver"]["version"]


def nvmlSystemGetNVMLVersion():
    _system_call("nvmlSystemGetNVMLVersion")
    cuda = _ctx.fixture["driver"]["cuda_driver_version"]
    return "%d.%s" % (cuda // 1000, _ctx.fixture["driver"]["version"])


def nvmlSystemGetCudaDriverVersion():
    _system_call("nvmlSystemGetCudaDriverVersion")
    return _ctx.fixture["driver"]["cuda_driver_version"]


def nvmlSystemGetCudaDriverVersion_v2():
    _system_call("nvmlSystemGetCudaDriverVersion_v2")
    return _ctx.fixture["driver"]["cuda_driver_version"]


def nvmlSystemGetProcessName(pid):
    _system_call("nvmlSystemGetProcessName")
    for gpu in _ctx.store.data["gpus"]:
        for proc in _state.live_processes(gpu):
            if proc["pid"] == int(pid):
                return proc["name"]
    raise NVMLError(_c.NVML_ERROR_NOT_FOUND)


def nvmlDeviceGetCount():
    _system_call("nvmlDeviceGetCount")
    return len(_ctx.fixture["gpus"])


# --------------------------------------------------------------------------------------
# Handles
# --------------------------------------------------------------------------------------
def nvmlDeviceGetHandleByIndex(index):
    _require_init()
    index = int(index)
    if not 0 <= index < len(_ctx.fixture["gpus"]):
        raise NVMLError(_c.NVML_ERROR_INVALID_ARGUMENT)
    _fire_faults("nvmlDeviceGetHandleByIndex", index)
    return _device_handle(index)


def _parse_bus_id(text):
    match = re.match(r"^(?:([0-9a-fA-F]{1,8}):)?([0-9a-fA-F]{1,2}):([0-9a-fA-F]{1,2})\.([0-7])$", text.strip())
    if not match:
        return None
    domain, bus, dev, func = match.groups()
    return (int(domain or "0", 16), int(bus, 16), int(dev, 16), int(func))


def _bus_tuple(bus_id):
    return _parse_bus_id(bus_id)


def nvmlDeviceGetHandleByPciBusId(pciBusId):
    _require_init()
    wanted = _parse_bus_id(_text(pciBusId))
    if wanted is None:
        raise NVMLError(_c.NVML_ERROR_INVALID_ARGUMENT)
    for gpu in _ctx.fixture["gpus"]:
        if _bus_tuple(gpu["bus_id"]) == wanted:
            _fire_faults("nvmlDeviceGetHandleByPciBusId", gpu["index"])
            return _device_handle(gpu["index"])
    raise NVMLError(_c.NVML_ERROR_NOT_FOUND)


def nvmlDeviceGetHandleByUUID(uuid):
    _require_init()
    wanted = _text(uuid)
    for index, value in enumerate(_ctx.uuids):
        if value == wanted:
            _fire_faults("nvmlDeviceGetHandleByUUID", index)
            return _device_handle(index)
    for index in range(len(_ctx.fixture["gpus"])):
        for gi, ci in _mig_devices(index):
            if _mig_uuid(index, gi, ci) == wanted:
                _fire_faults("nvmlDeviceGetHandleByUUID", index)
                return _mig_handle(index, gi, ci)
    if not (wanted.startswith("GPU-") or wanted.startswith("MIG-")):
        raise NVMLError(_c.NVML_ERROR_INVALID_ARGUMENT)
    raise NVMLError(_c.NVML_ERROR_NOT_FOUND)


# --------------------------------------------------------------------------------------
# Identity
# --------------------------------------------------------------------------------------
def _gi_profile(target, gi):
    return _mig.gi_profile_by_id(target.geometry, gi["profile_id"])


def _mig_uuid(index, gi, ci):
    digest = hashlib.sha256(("%s/%d/%d" % (_ctx.uuids[index], gi["uid"], ci["uid"])).encode()).hexdigest()
    return "MIG-%s-%s-%s-%s-%s" % (digest[0:8], digest[8:12], digest[12:16], digest[16:20], digest[20:32])


def nvmlDeviceGetName(handle):
    target = _device(handle, "nvmlDeviceGetName", mig_ok=True)
    name = target.model["nvml_name"]
    if target.is_mig:
        profile = _gi_profile(target, target.gi)
        ci_profile = _mig.ci_profile_by_id(target.geometry, profile, target.ci["profile_id"])
        return "%s MIG %s" % (name, ci_profile["name"])
    return name


def nvmlDeviceGetUUID(handle):
    target = _device(handle, "nvmlDeviceGetUUID", mig_ok=True)
    if target.is_mig:
        return _mig_uuid(target.index, target.gi, target.ci)
    return _ctx.uuids[target.index]


def nvmlDeviceGetSerial(handle):
    target = _device(handle, "nvmlDeviceGetSerial")
    if not target.model["serial_supported"]:
        raise NVMLError(_c.NVML_ERROR_NOT_SUPPORTED)
    return _ctx.serials[target.index]


def _pci_info(bus_id, device_id, subsystem):
    domain, bus, dev, func = _bus_tuple(bus_id)
    info = nvmlPciInfo_t()
    info.busIdLegacy = ("%04X:%02X:%02X.%X" % (domain, bus, dev, func)).encode()
    info.busId = ("%08X:%02X:%02X.%X" % (domain, bus, dev, func)).encode()
    info.domain = domain
    info.bus = bus
    info.device = dev
    info.pciDeviceId = (device_id << 16) | _PCI_VENDOR_NVIDIA
    info.pciSubSystemId = subsystem
    return info


def nvmlDeviceGetPciInfo_v3(handle):
    return _device_pci_info(handle, "nvmlDeviceGetPciInfo_v3")


def nvmlDeviceGetPciInfo(handle):
    return _device_pci_info(handle, "nvmlDeviceGetPciInfo")


def _device_pci_info(handle, name):
    target = _device(handle, name, mig_ok=True)
    model = target.model
    subsystem = (model["subsystem_device_id"] << 16) | model["subsystem_vendor_id"]
    return _pci_info(target.gpu["bus_id"], model["pci_device_id"], subsystem)


def nvmlDeviceGetMinorNumber(handle):
    target = _device(handle, "nvmlDeviceGetMinorNumber")
    minor = target.gpu["minor_number"]
    return target.index if minor is None else int(minor)


def nvmlDeviceGetIndex(handle):
    return _device(handle, "nvmlDeviceGetIndex").index


def nvmlDeviceGetBoardPartNumber(handle):
    return _device(handle, "nvmlDeviceGetBoardPartNumber").model["board_part_number"]


def nvmlDeviceGetVbiosVersion(handle):
    return _device(handle, "nvmlDeviceGetVbiosVersion").model["vbios_version"]


def nvmlDeviceGetArchitecture(device):
    return _device(device, "nvmlDeviceGetArchitecture", mig_ok=True).model["architecture"]


def nvmlDeviceGetBrand(handle):
    return _device(handle, "nvmlDeviceGetBrand", mig_ok=True).model["brand"]


def nvmlDeviceGetCudaComputeCapability(handle):
    target = _device(handle, "nvmlDeviceGetCudaComputeCapability", mig_ok=True)
    major, minor = target.model["cuda_compute_capability"]
    return (major, minor)


def nvmlDeviceGetNumaNodeId(handle):
    return _device(handle, "nvmlDeviceGetNumaNodeId").gpu["numa_node"]


# --------------------------------------------------------------------------------------
# Telemetry
# --------------------------------------------------------------------------------------
def _processes(target, kind):
    procs = [p for p in _state.live_processes(target.state) if p["type"] == kind]
    if target.is_mig:
        procs = [
            p for p in procs if p["gpu_instance_id"] == target.gi["id"] and p["compute_instance_id"] == target.ci["id"]
        ]
    return procs


def nvmlDeviceGetMemoryInfo(handle, version=None):
    target = _device(handle, "nvmlDeviceGetMemoryInfo", mig_ok=True)
    used_mib = sum(p["used_memory_mib"] for p in _processes(target, "compute"))
    used_mib += sum(p["used_memory_mib"] for p in _processes(target, "graphics"))
    if target.is_mig:
        total_mib = _gi_profile(target, target.gi)["memory_mib"]
    else:
        total_mib = target.model["memory_total_mib"]
        used_mib += target.gpu["memory_used_mib"]
    total, used = total_mib * _MIB, min(used_mib, total_mib) * _MIB
    if not version:
        memory = c_nvmlMemory_t()
    else:
        if version != _c.nvmlMemory_v2:
            raise NVMLError(_c.NVML_ERROR_ARGUMENT_VERSION_MISMATCH)
        memory = c_nvmlMemory_v2_t()
        memory.version = version
        memory.reserved = 0
    memory.total = total
    memory.used = used
    memory.free = total - used
    return memory


def nvmlDeviceGetTemperature(handle, sensor):
    target = _device(handle, "nvmlDeviceGetTemperature")
    if sensor != _c.NVML_TEMPERATURE_GPU:
        raise NVMLError(_c.NVML_ERROR_INVALID_ARGUMENT)
    return target.gpu["temperature_c"]


def nvmlDeviceGetTemperatureV(handle, sensor, version=_c.nvmlTemperature_v1):
    if version != _c.nvmlTemperature_v1:
        raise NVMLError(_c.NVML_ERROR_ARGUMENT_VERSION_MISMATCH)
    target = _device(handle, "nvmlDeviceGetTemperatureV")
    if sensor != _c.NVML_TEMPERATURE_GPU:
        raise NVMLError(_c.NVML_ERROR_INVALID_ARGUMENT)
    return target.gpu["temperature_c"]


def nvmlDeviceGetPowerUsage(handle):
    return round(_device(handle, "nvmlDeviceGetPowerUsage").gpu["power_draw_w"] * 1000)


def nvmlDeviceGetEnforcedPowerLimit(handle):
    return round(_device(handle, "nvmlDeviceGetEnforcedPowerLimit").gpu["power_limit_w"] * 1000)


def nvmlDeviceGetPowerManagementLimit(handle):
    target = _device(handle, "nvmlDeviceGetPowerManagementLimit")
    return round(target.gpu["power_limit_w"] * 1000)


def nvmlDeviceGetPowerManagementDefaultLimit(handle):
    target = _device(handle, "nvmlDeviceGetPowerManagementDefaultLimit")
    return round(target.model["power_limit_default_w"] * 1000)


def nvmlDeviceGetPowerManagementLimitConstraints(handle):
    target = _device(handle, "nvmlDeviceGetPowerManagementLimitConstraints")
    model = target.model
    return [int(model["power_limit_min_w"] * 1000), int(model["power_limit_max_w"] * 1000)]


def nvmlDeviceGetEccMode(handle):
    target = _device(handle, "nvmlDeviceGetEccMode")
    if not target.model["ecc_supported"]:
        raise NVMLError(_c.NVML_ERROR_NOT_SUPPORTED)
    ecc = target.gpu["ecc"]
    return [int(ecc["enabled"]), int(ecc["pending"])]


def nvmlDeviceGetTotalEccErrors(handle, errorType, counterType):
    target = _device(handle, "nvmlDeviceGetTotalEccErrors")
    ecc = target.gpu["ecc"]
    if not target.model["ecc_supported"] or not ecc["enabled"]:
        raise NVMLError(_c.NVML_ERROR_NOT_SUPPORTED)
    kinds = {_c.NVML_MEMORY_ERROR_TYPE_CORRECTED: "corrected", _c.NVML_MEMORY_ERROR_TYPE_UNCORRECTED: "uncorrected"}
    counters = {_c.NVML_VOLATILE_ECC: "volatile", _c.NVML_AGGREGATE_ECC: "aggregate"}
    if errorType not in kinds or counterType not in counters:
        raise NVMLError(_c.NVML_ERROR_INVALID_ARGUMENT)
    return ecc["%s_%s" % (kinds[errorType], counters[counterType])]


def _retired_pages_supported(target):
    # Page retirement is the pre-Ampere mechanism; Ampere and later remap rows instead.
    arch = target.model["architecture"]
    if arch >= _c.NVML_DEVICE_ARCH_AMPERE and arch != _c.NVML_DEVICE_ARCH_UNKNOWN:
        raise NVMLError(_c.NVML_ERROR_NOT_SUPPORTED)


def _retired_addresses(target, source):
    pages = target.gpu["retired_pages"]
    if source == _c.NVML_PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS:
        count, base = pages["single_bit"], 0x1000
    elif source == _c.NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR:
        count, base = pages["double_bit"], 0x80000
    else:
        raise NVMLError(_c.NVML_ERROR_INVALID_ARGUMENT)
    return [base + 0x10 * i for i in range(count)]


def nvmlDeviceGetRetiredPages(device, sourceFilter):
    target = _device(device, "nvmlDeviceGetRetiredPages")
    _retired_pages_supported(target)
    return _retired_addresses(target, sourceFilter)


def nvmlDeviceGetRetiredPages_v2(device, sourceFilter):
    target = _device(device, "nvmlDeviceGetRetiredPages_v2")
    _retired_pages_supported(target)
    return [
        {"address": addr, "timestamp": 1700000000 + i}
        for i, addr in enumerate(_retired_addresses(target, sourceFilter))
    ]


def nvmlDeviceGetRetiredPagesPendingStatus(device):
    target = _device(device, "nvmlDeviceGetRetiredPagesPendingStatus")
    _retired_pages_supported(target)
    return int(target.gpu["retired_pages"]["pending"])


def nvmlDeviceGetRemappedRows(device):
    target = _device(device, "nvmlDeviceGetRemappedRows")
    if target.model["architecture"] < _c.NVML_DEVICE_ARCH_AMPERE or not target.model["row_remapping"]:
        raise NVMLError(_c.NVML_ERROR_NOT_SUPPORTED)
    rows = target.gpu["remapped_rows"]
    return (rows["correctable"], rows["uncorrectable"], int(rows["pending"]), int(rows["failure"]))


def nvmlDeviceGetPersistenceMode(handle):
    return int(_device(handle, "nvmlDeviceGetPersistenceMode").gpu["persistence_mode"])


def _check_link(target, link):
    if not 0 <= int(link) < _c.NVML_NVLINK_MAX_LINKS:
        raise NVMLError(_c.NVML_ERROR_INVALID_ARGUMENT)
    if link >= target.model["max_nvlinks"]:
        raise NVMLError(_c.NVML_ERROR_NOT_SUPPORTED)


def _link_active(target, link):
    return link < target.gpu["nvlinks_active"] and link not in target.gpu["nvlinks_down"]


def nvmlDeviceGetNvLinkState(device, link):
    target = _device(device, "nvmlDeviceGetNvLinkState")
    _check_link(target, link)
    return int(_link_active(target, link))


def nvmlDeviceGetNvLinkRemotePciInfo(device, link):
    target = _device(device, "nvmlDeviceGetNvLinkRemotePciInfo")
    _check_link(target, link)
    switches = _ctx.fixture["nvswitches"]
    if not _link_active(target, link) or not switches:
        raise NVMLError(_c.NVML_ERROR_NOT_SUPPORTED)
    switch = switches[link % len(switches)]
    return _pci_info(switch["bus_id"], int(str(switch["device_id"]), 16), 0)


_CLOCK_NAMES = {
    _c.NVML_CLOCK_GRAPHICS: "graphics",
    _c.NVML_CLOCK_SM: "sm",
    _c.NVML_CLOCK_MEM: "mem",
    _c.NVML_CLOCK_VIDEO: "video",
}


def _clock(table, clock_type):
    if clock_type not in _CLOCK_NAMES:
        raise NVMLError(_c.NVML_ERROR_INVALID_ARGUMENT)
    value = table.get(_CLOCK_NAMES[clock_type])
    if value is None:
        raise NVMLError(_c.NVML_ERROR_NOT_SUPPORTED)
    return int(value)


def nvmlDeviceGetClockInfo(handle, type):  # noqa: A002 - pynvml's parameter name
    return _clock(_device(handle, "nvmlDeviceGetClockInfo").model["idle_clocks_mhz"], type)


def nvmlDeviceGetMaxClockInfo(handle, type):  # noqa: A002 - pynvml's parameter name
    return _clock(_device(handle, "nvmlDeviceGetMaxClockInfo").model["max_clocks_mhz"], type)


def nvmlDeviceGetUtilizationRates(handle):
    target = _device(handle, "nvmlDeviceGetUtilizationRates")
    util = c_nvmlUtilization_t()
    util.gpu = int(target.gpu["utilization"].get("gpu", 0))
    util.memory = int(target.gpu["utilization"].get("memory", 0))
    return util


def _process_objects(target, kind):
    result = []
    for proc in _processes(target, kind):
        info = c_nvmlProcessInfo_v3_t()
        info.pid = proc["pid"]
        info.usedGpuMemory = proc["used_memory_mib"] * _MIB
        gi_id, ci_id = proc["gpu_instance_id"], proc["compute_instance_id"]
        info.gpuInstanceId = _NOT_AVAILABLE_UINT if gi_id is None else gi_id
        info.computeInstanceId = _NOT_AVAILABLE_UINT if ci_id is None else ci_id
        result.append(nvmlStructToFriendlyObject(info))
    return result


def nvmlDeviceGetComputeRunningProcesses_v3(handle):
    target = _device(handle, "nvmlDeviceGetComputeRunningProcesses_v3", mig_ok=True)
    return _process_objects(target, "compute")


def nvmlDeviceGetComputeRunningProcesses(handle):
    target = _device(handle, "nvmlDeviceGetComputeRunningProcesses", mig_ok=True)
    return _process_objects(target, "compute")


def nvmlDeviceGetGraphicsRunningProcesses_v3(handle):
    target = _device(handle, "nvmlDeviceGetGraphicsRunningProcesses_v3", mig_ok=True)
    return _process_objects(target, "graphics")


def nvmlDeviceGetGraphicsRunningProcesses(handle):
    target = _device(handle, "nvmlDeviceGetGraphicsRunningProcesses", mig_ok=True)
    return _process_objects(target, "graphics")


def nvmlDeviceGetMPSComputeRunningProcesses_v3(handle):
    target = _device(handle, "nvmlDeviceGetMPSComputeRunningProcesses_v3", mig_ok=True)
    return _process_objects(target, "mps")


def nvmlDeviceGetMPSComputeRunningProcesses(handle):
    target = _device(handle, "nvmlDeviceGetMPSComputeRunningProcesses", mig_ok=True)
    return _process_objects(target, "mps")


# --------------------------------------------------------------------------------------
# MIG: mode
# --------------------------------------------------------------------------------------
def _require_mig_capable(target):
    if target.geometry is None:
        raise NVMLError(_c.NVML_ERROR_NOT_SUPPORTED)


def _require_mig_enabled(target):
    _require_mig_capable(target)
    if not target.state["mig"]["current"]:
        raise NVMLError(_c.NVML_ERROR_NOT_SUPPORTED)


def nvmlDeviceGetMigMode(device):
    target = _device(device, "nvmlDeviceGetMigMode")
    _require_mig_capable(target)
    mig = target.state["mig"]
    return [int(mig["current"]), int(mig["pending"])]


def nvmlDeviceSetMigMode(device, mode):
    """Returns the activation status: SUCCESS, or IN_USE when the GPU could not be reset
    because processes or other clients hold it (the mode is then pending until a GPU reset
    or reboot). Disabling while GPU instances exist raises IN_USE."""
    target = _device(device, "nvmlDeviceSetMigMode")
    _require_mig_capable(target)
    if mode not in (_c.NVML_DEVICE_MIG_DISABLE, _c.NVML_DEVICE_MIG_ENABLE):
        raise NVMLError(_c.NVML_ERROR_INVALID_ARGUMENT)
    index = target.index

    def change(data):
        gpu = data["gpus"][index]
        wanted = bool(mode)
        if gpu["mig"]["current"] == wanted and gpu["mig"]["pending"] == wanted:
            return _c.NVML_SUCCESS
        if not wanted and gpu["gpu_instances"]:
            raise NVMLError(_c.NVML_ERROR_IN_USE)
        gpu["mig"]["pending"] = wanted
        if _state.live_processes(gpu) or gpu["other_clients"]:
            return _c.NVML_ERROR_IN_USE
        gpu["mig"]["current"] = wanted
        gpu["gpu_instances"] = []
        return _c.NVML_SUCCESS

    with _ctx.lock:
        return _ctx.store.mutate(change)


# --------------------------------------------------------------------------------------
# MIG: GPU instances
# --------------------------------------------------------------------------------------
def _gi_profile_info(target, profile, version, name):
    if version not in (1, 2):
        raise NVMLError(_c.NVML_ERROR_FUNCTION_NOT_FOUND)
    info = c_nvmlGpuInstanceProfileInfo_v2_t() if version == 2 else (c_nvmlGpuInstanceProfileInfo_t())
    info.id = profile["id"]
    info.isP2pSupported = 0
    info.sliceCount = profile["slices"]
    info.instanceCount = profile["max"]
    info.multiprocessorCount = profile["sms"]
    ce, dec, enc, jpeg, ofa = profile["engines"]
    info.copyEngineCount = ce
    info.decoderCount = dec
    info.encoderCount = enc
    info.jpegCount = jpeg
    info.ofaCount = ofa
    info.memorySizeMB = profile["memory_mib"]
    if version == 2:
        info.name = ("MIG %s" % profile["name"]).encode()
    return info


def nvmlDeviceGetGpuInstanceProfileInfo(device, profile, version=2):
    target = _device(device, "nvmlDeviceGetGpuInstanceProfileInfo")
    _require_mig_capable(target)
    if not 0 <= int(profile) < _c.NVML_GPU_INSTANCE_PROFILE_COUNT:
        raise NVMLError(_c.NVML_ERROR_INVALID_ARGUMENT)
    found = _mig.gi_profile_by_index(target.geometry, int(profile))
    if found is None:
        raise NVMLError(_c.NVML_ERROR_NOT_SUPPORTED)
    return _gi_profile_info(target, found, version, "nvmlDeviceGetGpuInstanceProfileInfo")


nvmlDeviceGetGpuInstanceProfileInfoV = nvmlDeviceGetGpuInstanceProfileInfo


def nvmlDeviceGetGpuInstanceProfileInfoById(device, profileId):
    target = _device(device, "nvmlDeviceGetGpuInstanceProfileInfoById")
    _require_mig_capable(target)
    found = _mig.gi_profile_by_id(target.geometry, int(profileId))
    if found is None:
        raise NVMLError(_c.NVML_ERROR_INVALID_ARGUMENT)
    return _gi_profile_info(target, found, 2, "nvmlDeviceGetGpuInstanceProfileInfoById")


nvmlDeviceGetGpuInstanceProfileInfoByIdV = nvmlDeviceGetGpuInstanceProfileInfoById


def _profile_by_id(target, profile_id):
    found = _mig.gi_profile_by_id(target.geometry, int(profile_id))
    if found is None:
        raise NVMLError(_c.NVML_ERROR_INVALID_ARGUMENT)
    return found


def nvmlDeviceGetGpuInstancePossiblePlacements(device, profileId, placementsRef, countRef):
    target = _device(device, "nvmlDeviceGetGpuInstancePossiblePlacements")
    _require_mig_capable(target)
    profile = _profile_by_id(target, profileId)
    placements = []
    for start in profile["starts"]:
        placement = c_nvmlGpuInstancePlacement_t()
        placement.start = start
        placement.size = profile["size"]
        placements.append(placement)
    _fill_array(placementsRef, placements, countRef)
    return _c.NVML_SUCCESS


def nvmlDeviceGetGpuInstanceRemainingCapacity(device, profileId):
    target = _device(device, "nvmlDeviceGetGpuInstanceRemainingCapacity")
    _require_mig_enabled(target)
    profile = _profile_by_id(target, profileId)
    return _mig.remaining_capacity(
        target.geometry, target.state["gpu_instances"], profile, _state.driver_major(_ctx.fixture)
    )


def _create_gi(target, profile_id, start):
    _require_mig_enabled(target)
    profile = _profile_by_id(target, profile_id)
    index = target.index
    geometry = target.geometry
    major = _state.driver_major(_ctx.fixture)

    def change(data):
        gis = data["gpus"][index]["gpu_instances"]
        if not data["gpus"][index]["mig"]["current"]:
            raise NVMLError(_c.NVML_ERROR_NOT_SUPPORTED)
        if start is None:
            chosen = _mig.choose_start(geometry, gis, profile, major)
        else:
            error = _mig.placement_error(geometry, gis, profile, start, major)
            if error is not None:
                raise NVMLError(error)
            chosen = start
        gi = {
            "id": _mig.gi_id_for(geometry, chosen, profile["size"]),
            "uid": _state.StateStore.new_uid(data),
            "profile_id": profile["id"],
            "start": chosen,
            "size": profile["size"],
            "compute_instances": [],
        }
        gis.append(gi)
        gis.sort(key=lambda item: item["id"])
        return gi

    with _ctx.lock:
        gi = _ctx.store.mutate(change)
    return _gi_handle(index, gi)


def nvmlDeviceCreateGpuInstance(device, profileId):
    target = _device(device, "nvmlDeviceCreateGpuInstance")
    return _create_gi(target, profileId, None)


def nvmlDeviceCreateGpuInstanceWithPlacement(device, profileId, placement):
    target = _device(device, "nvmlDeviceCreateGpuInstanceWithPlacement")
    placement = _out_object(placement)
    if placement is None:
        raise NVMLError(_c.NVML_ERROR_INVALID_ARGUMENT)
    profile = _profile_by_id(target, profileId) if target.geometry else None
    if profile is not None and placement.size != profile["size"]:
        raise NVMLError(_c.NVML_ERROR_INVALID_ARGUMENT)
    return _create_gi(target, profileId, int(placement.start))


def nvmlDeviceGetGpuInstances(device, profileId, gpuInstancesRef, countRef):
    target = _device(device, "nvmlDeviceGetGpuInstances")
    _require_mig_enabled(target)
    profile = _profile_by_id(target, profileId)
    handles = [
        _gi_handle(target.index, gi) for gi in target.state["gpu_instances"] if gi["profile_id"] == profile["id"]
    ]
    _fill_array(gpuInstancesRef, handles, countRef)
    return _c.NVML_SUCCESS


def nvmlDeviceGetGpuInstanceById(device, gpuInstanceId):
    target = _device(device, "nvmlDeviceGetGpuInstanceById")
    _require_mig_enabled(target)
    for gi in target.state["gpu_instances"]:
        if gi["id"] == int(gpuInstanceId):
            return _gi_handle(target.index, gi)
    raise NVMLError(_c.NVML_ERROR_NOT_FOUND)


def nvmlGpuInstanceGetInfo(gpuInstance):
    target = _gpu_instance(gpuInstance, "nvmlGpuInstanceGetInfo")
    info = c_nvmlGpuInstanceInfo_t()
    info.device = _device_handle(target.index)
    info.id = target.gi["id"]
    info.profileId = target.gi["profile_id"]
    info.placement.start = target.gi["start"]
    info.placement.size = target.gi["size"]
    return info


def _busy_processes(data, index, gi_id, ci_id=None):
    return [
        p
        for p in _state.live_processes(data["gpus"][index])
        if p["gpu_instance_id"] == gi_id and (ci_id is None or p["compute_instance_id"] == ci_id)
    ]


def nvmlGpuInstanceDestroy(gpuInstance):
    target = _gpu_instance(gpuInstance, "nvmlGpuInstanceDestroy")
    index, uid = target.index, target.gi["uid"]

    def change(data):
        gis = data["gpus"][index]["gpu_instances"]
        gi = next((g for g in gis if g["uid"] == uid), None)
        if gi is None:
            raise NVMLError(_c.NVML_ERROR_INVALID_ARGUMENT)
        if gi["compute_instances"] or _busy_processes(data, index, gi["id"]):
            raise NVMLError(_c.NVML_ERROR_IN_USE)
        gis.remove(gi)

    with _ctx.lock:
        _ctx.store.mutate(change)
    return _c.NVML_SUCCESS


# --------------------------------------------------------------------------------------
# MIG: compute instances
# --------------------------------------------------------------------------------------
def _ci_profile_by_index(target, profile_index):
    gi_profile = _gi_profile(target, target.gi)
    for ci in _mig.ci_profiles_for(target.geometry, gi_profile):
        if ci["index"] == profile_index:
            return gi_profile, ci
    raise NVMLError(_c.NVML_ERROR_NOT_SUPPORTED)


def _ci_profile_by_id(target, profile_id):
    gi_profile = _gi_profile(target, target.gi)
    ci = _mig.ci_profile_by_id(target.geometry, gi_profile, int(profile_id))
    if ci is None:
        raise NVMLError(_c.NVML_ERROR_INVALID_ARGUMENT)
    return gi_profile, ci


def nvmlGpuInstanceGetComputeInstanceProfileInfo(device, profile, engProfile, version=2):
    target = _gpu_instance(device, "nvmlGpuInstanceGetComputeInstanceProfileInfo")
    if version not in (1, 2):
        raise NVMLError(_c.NVML_ERROR_FUNCTION_NOT_FOUND)
    if not 0 <= int(profile) < _c.NVML_COMPUTE_INSTANCE_PROFILE_COUNT or (
        engProfile != _c.NVML_COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED
    ):
        raise NVMLError(_c.NVML_ERROR_INVALID_ARGUMENT)
    gi_profile, ci = _ci_profile_by_index(target, int(profile))
    info = c_nvmlComputeInstanceProfileInfo_v2_t() if version == 2 else (c_nvmlComputeInstanceProfileInfo_t())
    info.id = ci["id"]
    info.sliceCount = ci["slices"]
    info.instanceCount = ci["max"]
    info.multiprocessorCount = ci["sms"]
    ce, dec, enc, jpeg, ofa = gi_profile["engines"]
    info.sharedCopyEngineCount = ce
    info.sharedDecoderCount = dec
    info.sharedEncoderCount = enc
    info.sharedJpegCount = jpeg
    info.sharedOfaCount = ofa
    if version == 2:
        info.name = ("MIG %s" % ci["name"]).encode()
    return info


nvmlGpuInstanceGetComputeInstanceProfileInfoV = nvmlGpuInstanceGetComputeInstanceProfileInfo


def nvmlGpuInstanceGetComputeInstanceRemainingCapacity(gpuInstance, profileId):
    target = _gpu_instance(gpuInstance, "nvmlGpuInstanceGetComputeInstanceRemainingCapacity")
    gi_profile, ci_profile = _ci_profile_by_id(target, profileId)
    trial = list(target.gi["compute_instances"])
    count = 0
    while True:
        try:
            start = _mig.choose_ci_start(gi_profile, trial, ci_profile)
        except NVMLError:
            return count
        trial.append({"profile_id": ci_profile["id"], "start": start, "size": ci_profile["slices"]})
        count += 1


def nvmlGpuInstanceGetComputeInstancePossiblePlacements(gpuInstance, profileId, placementsRef, countRef):
    target = _gpu_instance(gpuInstance, "nvmlGpuInstanceGetComputeInstancePossiblePlacements")
    _gi_profile_unused, ci_profile = _ci_profile_by_id(target, profileId)
    placements = []
    for start in ci_profile["starts"]:
        placement = c_nvmlComputeInstancePlacement_t()
        placement.start = start
        placement.size = ci_profile["slices"]
        placements.append(placement)
    _fill_array(placementsRef, placements, countRef)
    return _c.NVML_SUCCESS


def _create_ci(target, profile_id, start):
    gi_profile, ci_profile = _ci_profile_by_id(target, profile_id)
    index, gi_uid = target.index, target.gi["uid"]

    def change(data):
        gi = next((g for g in data["gpus"][index]["gpu_instances"] if g["uid"] == gi_uid), None)
        if gi is None:
            raise NVMLError(_c.NVML_ERROR_INVALID_ARGUMENT)
        cis = gi["compute_instances"]
        if start is None:
            chosen = _mig.choose_ci_start(gi_profile, cis, ci_profile)
        else:
            error = _mig.ci_placement_error(gi_profile, cis, ci_profile, start)
            if error is not None:
                raise NVMLError(error)
            chosen = start
        ci = {
            "id": _mig.next_ci_id(cis),
            "uid": _state.StateStore.new_uid(data),
            "profile_id": ci_profile["id"],
            "start": chosen,
            "size": ci_profile["slices"],
        }
        cis.append(ci)
        cis.sort(key=lambda item: item["id"])
        return gi, ci

    with _ctx.lock:
        gi, ci = _ctx.store.mutate(change)
    return _ci_handle(index, gi, ci)


def nvmlGpuInstanceCreateComputeInstance(gpuInstance, profileId):
    target = _gpu_instance(gpuInstance, "nvmlGpuInstanceCreateComputeInstance")
    return _create_ci(target, profileId, None)


def nvmlGpuInstanceCreateComputeInstanceWithPlacement(gpuInstance, profileId, placement):
    target = _gpu_instance(gpuInstance, "nvmlGpuInstanceCreateComputeInstanceWithPlacement")
    placement = _out_object(placement)
    if placement is None:
        raise NVMLError(_c.NVML_ERROR_INVALID_ARGUMENT)
    return _create_ci(target, profileId, int(placement.start))


def nvmlGpuInstanceGetComputeInstances(gpuInstance, profileId, computeInstancesRef, countRef):
    target = _gpu_instance(gpuInstance, "nvmlGpuInstanceGetComputeInstances")
    _gi_profile_unused, ci_profile = _ci_profile_by_id(target, profileId)
    handles = [
        _ci_handle(target.index, target.gi, ci)
        for ci in target.gi["compute_instances"]
        if ci["profile_id"] == ci_profile["id"]
    ]
    _fill_array(computeInstancesRef, handles, countRef)
    return _c.NVML_SUCCESS


def nvmlGpuInstanceGetComputeInstanceById(gpuInstance, computeInstanceId):
    target = _gpu_instance(gpuInstance, "nvmlGpuInstanceGetComputeInstanceById")
    for ci in target.gi["compute_instances"]:
        if ci["id"] == int(computeInstanceId):
            return _ci_handle(target.index, target.gi, ci)
    raise NVMLError(_c.NVML_ERROR_NOT_FOUND)


def nvmlComputeInstanceGetInfo_v2(computeInstance):
    return _ci_info(computeInstance, "nvmlComputeInstanceGetInfo_v2")


def nvmlComputeInstanceGetInfo(computeInstance):
    return _ci_info(computeInstance, "nvmlComputeInstanceGetInfo")


def _ci_info(handle, name):
    target = _compute_instance(handle, name)
    info = c_nvmlComputeInstanceInfo_t()
    info.device = _device_handle(target.index)
    info.gpuInstance = _gi_handle(target.index, target.gi)
    info.id = target.ci["id"]
    info.profileId = target.ci["profile_id"]
    info.placement.start = target.ci["start"]
    info.placement.size = target.ci["size"]
    return info


def nvmlComputeInstanceDestroy(computeInstance):
    target = _compute_instance(computeInstance, "nvmlComputeInstanceDestroy")
    index, gi_uid, ci_uid = target.index, target.gi["uid"], target.ci["uid"]

    def change(data):
        gi = next((g for g in data["gpus"][index]["gpu_instances"] if g["uid"] == gi_uid), None)
        ci = _find_ci(gi, ci_uid) if gi is not None else None
        if ci is None:
            raise NVMLError(_c.NVML_ERROR_INVALID_ARGUMENT)
        if _busy_processes(data, index, gi["id"], ci["id"]):
            raise NVMLError(_c.NVML_ERROR_IN_USE)
        gi["compute_instances"].remove(ci)

    with _ctx.lock:
        _ctx.store.mutate(change)
    return _c.NVML_SUCCESS


# --------------------------------------------------------------------------------------
# MIG devices
# --------------------------------------------------------------------------------------
def _mig_devices(index):
    """(gi, ci) pairs of a GPU in MIG device index order (by GI id, then CI id)."""
    gpu = _ctx.store.data["gpus"][index]
    if not gpu["mig"]["current"]:
        return []
    pairs = []
    for gi in sorted(gpu["gpu_instances"], key=lambda g: g["id"]):
        for ci in sorted(gi["compute_instances"], key=lambda x: x["id"]):
            pairs.append((gi, ci))
    return pairs


def nvmlDeviceIsMigDeviceHandle(device):
    target = _device(device, "nvmlDeviceIsMigDeviceHandle", mig_ok=True)
    # nvidia-ml-py returns the c_uint itself here, not its value.
    return c_uint(1 if target.is_mig else 0)


def nvmlDeviceGetGpuInstanceId(device):
    target = _device(device, "nvmlDeviceGetGpuInstanceId", mig_ok=True)
    if not target.is_mig:
        raise NVMLError(_c.NVML_ERROR_NOT_SUPPORTED)
    return target.gi["id"]


def nvmlDeviceGetComputeInstanceId(device):
    target = _device(device, "nvmlDeviceGetComputeInstanceId", mig_ok=True)
    if not target.is_mig:
        raise NVMLError(_c.NVML_ERROR_NOT_SUPPORTED)
    return target.ci["id"]


def nvmlDeviceGetMaxMigDeviceCount(device):
    target = _device(device, "nvmlDeviceGetMaxMigDeviceCount")
    if target.geometry is None or not target.state["mig"]["current"]:
        return 0
    return target.geometry["max_mig_devices"]


def nvmlDeviceGetMigDeviceHandleByIndex(device, index):
    target = _device(device, "nvmlDeviceGetMigDeviceHandleByIndex")
    _require_mig_capable(target)
    maximum = target.geometry["max_mig_devices"] if target.state["mig"]["current"] else 0
    if not 0 <= int(index) < maximum:
        raise NVMLError(_c.NVML_ERROR_INVALID_ARGUMENT)
    pairs = _mig_devices(target.index)
    if int(index) >= len(pairs):
        raise NVMLError(_c.NVML_ERROR_NOT_FOUND)
    gi, ci = pairs[int(index)]
    return _mig_handle(target.index, gi, ci)


def nvmlDeviceGetDeviceHandleFromMigDeviceHandle(migDevice):
    target = _device(migDevice, "nvmlDeviceGetDeviceHandleFromMigDeviceHandle", mig_ok=True)
    if not target.is_mig:
        raise NVMLError(_c.NVML_ERROR_INVALID_ARGUMENT)
    return _device_handle(target.index)


__all__ = [  # noqa: PLE0605 - computed: every API name defined above
    name for name in sorted(globals()) if name.startswith(("nvml", "NVML", "c_nvml", "struct_c_nvml"))
]
