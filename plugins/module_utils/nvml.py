# -*- coding: utf-8 -*-
# Copyright: (c) 2025, gpuops.cluster developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read-only NVML access through nvidia-ml-py (``pynvml``), imported lazily.

One nvmlInit per probe, one handle lookup per GPU, every field read isolated: a failing call
records an error on that GPU and field and the probe goes on with the next field and GPU.
NOT_SUPPORTED is an answer (the feature is absent), not an error.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import ctypes
import math
import warnings

from ansible_collections.gpuops.cluster.plugins.module_utils.pci import normalize_bus_id

MIB = 1024 * 1024
GIB = 1024 * 1024 * 1024

# NVML C API values (stable ABI; the same numbers nvidia-ml-py exports).
ERROR_NOT_SUPPORTED = 3
ERROR_NO_PERMISSION = 4
ERROR_INVALID_ARGUMENT = 2
ERROR_NOT_FOUND = 6
ERROR_DRIVER_NOT_LOADED = 9
ERROR_LIBRARY_NOT_FOUND = 12
ERROR_FUNCTION_NOT_FOUND = 13
ERROR_GPU_IS_LOST = 15
ERROR_RESET_REQUIRED = 16
ERROR_LIB_RM_VERSION_MISMATCH = 18

TEMPERATURE_GPU = 0
TEMPERATURE_THRESHOLD_SLOWDOWN = 1
MEMORY_ERROR_TYPE_UNCORRECTED = 1
VOLATILE_ECC = 0
AGGREGATE_ECC = 1
PAGE_RETIREMENT_SINGLE_BIT = 0
PAGE_RETIREMENT_DOUBLE_BIT = 1
NVLINK_MAX_LINKS_DEFAULT = 18
GPU_INSTANCE_PROFILE_COUNT_DEFAULT = 0x12
COMPUTE_INSTANCE_PROFILE_COUNT_DEFAULT = 0x9
COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED = 0

ARCHITECTURES = {
    2: "kepler",
    3: "maxwell",
    4: "pascal",
    5: "volta",
    6: "turing",
    7: "ampere",
    8: "ada",
    9: "hopper",
    10: "blackwell",
    13: "rubin",
}

# GPU instance profile index -> name suffix (the part after '<g>g.<mem>gb').
GI_PROFILE_SUFFIX = {
    0x7: "+me",
    0x8: "+me",
    0xA: "+gfx",
    0xB: "+gfx",
    0xC: "+gfx",
    0xD: "-me",
    0xE: "-me",
    0xF: "+me.all",
    0x10: "+me.all",
    0x11: "+gfx",
}

INIT_REASONS = {
    ERROR_LIBRARY_NOT_FOUND: "libnvidia-ml not found: the NVIDIA driver's user-space libraries are not installed",
    ERROR_DRIVER_NOT_LOADED: "NVIDIA kernel driver not loaded",
    ERROR_NO_PERMISSION: "no permission to open the NVIDIA device nodes (/dev/nvidia*)",
    ERROR_LIB_RM_VERSION_MISMATCH: "libnvidia-ml and the loaded kernel driver have different "
    "versions: reboot or reload the driver",
}
REASON_NO_BINDINGS = "nvidia-ml-py not installed: python bindings (pynvml) missing"

_FAILED = object()
_UNSUPPORTED = object()


def load_bindings():
    """(pynvml module, None) or (None, reason)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pynvml  # noqa: PLC0415  (optional dependency, imported lazily)
    except ImportError:
        return None, REASON_NO_BINDINGS
    return pynvml, None


def text(value):
    """NVML strings arrive as str (functions) or bytes (struct fields): always str or None."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    value = value.strip("\x00").strip()
    return value or None


def error_code(exc):
    return getattr(exc, "value", None)


def error_text(exc):
    try:
        message = str(exc)
    except Exception:  # str() of an NVMLError may itself call into NVML
        message = ""
    code = error_code(exc)
    if not message:
        message = "NVML error %s" % code if code is not None else exc.__class__.__name__
    return message


def init_reason(exc):
    code = error_code(exc)
    if code in INIT_REASONS:
        return INIT_REASONS[code]
    return "nvmlInit failed: %s" % error_text(exc)


def mig_memory_gb(profile_memory_mib, device_total_bytes):
    """Memory part of a MIG profile name, as NVIDIA's tools compute it.

    The profile's share of the device is rounded up to eighths, times the device memory in
    whole GiB (rounded up), rounded half up: A100-40GB 4864 MiB -> 5, 40192 MiB -> 40.
    Without the device total, the profile's own memory rounded up to GiB.
    """
    if not device_total_bytes:
        return -(-int(profile_memory_mib) // 1024)
    fraction = (float(profile_memory_mib) * MIB) / float(device_total_bytes)
    eighths = math.ceil(fraction * 8 - 1e-9) / 8.0
    total_gb = (int(device_total_bytes) + GIB - 1) // GIB
    return int(eighths * total_gb + 0.5)


def nvml_profile_name(info):
    """The .name of a V profile info struct without NVML's 'MIG ' prefix ('MIG 1g.5gb')."""
    name = text(getattr(info, "name", None))
    if name and name.upper().startswith("MIG "):
        name = name[4:].strip()
    return name or None


def gi_profile_name(profile_index, info, device_total_bytes):
    """Name of a GPU instance profile: NVML's own (.name in the V struct), else built."""
    name = nvml_profile_name(info)
    if name:
        return name
    mem = mig_memory_gb(info.memorySizeMB, device_total_bytes)
    return "%dg.%dgb%s" % (info.sliceCount, mem, GI_PROFILE_SUFFIX.get(profile_index, ""))


def ci_profile_name(info, gi_slices, gi_name):
    name = nvml_profile_name(info)
    if name:
        return name
    if info.sliceCount == gi_slices:
        return gi_name
    return "%dc.%s" % (info.sliceCount, gi_name)


def empty_gpu(index):
    """NVML record skeleton: every key present, None until read."""
    return {
        "index": index,
        "bus_id": None,
        "pci": {},
        "name": None,
        "uuid": None,
        "serial": None,
        "architecture": None,
        "compute_capability": None,
        "memory": None,
        "temperature_c": None,
        "slowdown_temperature_c": None,
        "power": None,
        "ecc": None,
        "retired_pages": None,
        "remapped_rows": None,
        "persistence_mode": None,
        "nvlinks_active": None,
        "mig": None,
        "processes": None,
        "errors": {},
        "lost": False,
    }


class GpuReader:
    """Reads one GPU; each call is isolated and its failure recorded under a field name."""

    def __init__(self, nvml, record):
        self.nvml = nvml
        self.record = record
        self.error_class = getattr(nvml, "NVMLError", None)

    def call(self, field, func_name, *args):
        """Result, _UNSUPPORTED (NOT_SUPPORTED) or _FAILED (error recorded under field)."""
        record = self.record
        if record["lost"]:
            return _FAILED
        func = getattr(self.nvml, func_name, None)
        if func is None:
            record["errors"].setdefault(field, "%s: not in these NVML bindings" % func_name)
            return _FAILED
        try:
            return func(*args)
        except Exception as exc:  # one failing call must not end the probe
            code = error_code(exc) if self._is_nvml(exc) else None
            if code == ERROR_NOT_SUPPORTED:
                return _UNSUPPORTED
            if code == ERROR_GPU_IS_LOST:
                record["lost"] = True
            record["errors"].setdefault(field, "%s: %s" % (func_name, error_text(exc)))
            return _FAILED

    def quiet(self, func_name, *args):
        """A call whose failure is not worth an error (optional detail): result or None."""
        func = getattr(self.nvml, func_name, None)
        if func is None or self.record["lost"]:
            return None
        try:
            return func(*args)
        except Exception as exc:
            if self._is_nvml(exc) and error_code(exc) == ERROR_GPU_IS_LOST:
                self.record["lost"] = True
            return None

    def _is_nvml(self, exc):
        return self.error_class is not None and isinstance(exc, self.error_class)


def _ok(value):
    return value is not _FAILED and value is not _UNSUPPORTED


def _const(nvml, name, default):
    value = getattr(nvml, name, None)
    return default if value is None else value


def read_identity(reader, handle):
    record = reader.record
    name = reader.call("name", "nvmlDeviceGetName", handle)
    if _ok(name):
        record["name"] = text(name)
    uuid = reader.call("uuid", "nvmlDeviceGetUUID", handle)
    if _ok(uuid):
        record["uuid"] = text(uuid)
    info = reader.call("pci", "nvmlDeviceGetPciInfo", handle)
    if _ok(info):
        record["bus_id"] = normalize_bus_id(text(getattr(info, "busId", None)))
        dev_vendor = getattr(info, "pciDeviceId", None)
        if dev_vendor is not None:
            record["pci"]["vendor_id"] = "0x%04x" % (dev_vendor & 0xFFFF)
            record["pci"]["device_id"] = "0x%04x" % ((dev_vendor >> 16) & 0xFFFF)
        subsystem = getattr(info, "pciSubSystemId", None)
        if subsystem is not None:
            record["pci"]["subsystem_vendor_id"] = "0x%04x" % (subsystem & 0xFFFF)
            record["pci"]["subsystem_device_id"] = "0x%04x" % ((subsystem >> 16) & 0xFFFF)
    serial = reader.call("serial", "nvmlDeviceGetSerial", handle)
    if _ok(serial):
        record["serial"] = text(serial)
    arch = reader.call("architecture", "nvmlDeviceGetArchitecture", handle)
    if _ok(arch):
        record["architecture"] = ARCHITECTURES.get(arch, "unknown")
    capability = reader.call("compute_capability", "nvmlDeviceGetCudaComputeCapability", handle)
    if _ok(capability):
        record["compute_capability"] = "%d.%d" % (capability[0], capability[1])


def read_memory(reader, handle):
    info = reader.call("memory", "nvmlDeviceGetMemoryInfo", handle)
    if _ok(info):
        return info
    return None


def read_telemetry(reader, handle, memory):
    record = reader.record
    if memory is not None:
        record["memory"] = {
            "total_mib": int(memory.total) // MIB,
            "used_mib": int(memory.used) // MIB,
        }
    temp = reader.call("temperature_c", "nvmlDeviceGetTemperature", handle, TEMPERATURE_GPU)
    if _ok(temp):
        record["temperature_c"] = int(temp)
        threshold = reader.quiet("nvmlDeviceGetTemperatureThreshold", handle, TEMPERATURE_THRESHOLD_SLOWDOWN)
        if isinstance(threshold, int) and threshold > 0:
            record["slowdown_temperature_c"] = threshold
    power = {"draw_w": None, "limit_w": None}
    draw = reader.call("power.draw_w", "nvmlDeviceGetPowerUsage", handle)
    if _ok(draw):
        power["draw_w"] = round(draw / 1000.0, 1)
    limit = reader.call("power.limit_w", "nvmlDeviceGetEnforcedPowerLimit", handle)
    if _ok(limit):
        power["limit_w"] = round(limit / 1000.0, 1)
    record["power"] = power


def read_reliability(reader, handle):
    """ECC mode and counters, retired pages, remapped rows, persistence mode."""
    record = reader.record
    nvml = reader.nvml
    ecc = {"enabled": None, "pending": None, "uncorrected_volatile": None, "uncorrected_aggregate": None}
    mode = reader.call("ecc", "nvmlDeviceGetEccMode", handle)
    if _ok(mode):
        ecc["enabled"] = bool(mode[0])
        ecc["pending"] = bool(mode[1])
        if ecc["enabled"]:
            unc = _const(nvml, "NVML_MEMORY_ERROR_TYPE_UNCORRECTED", MEMORY_ERROR_TYPE_UNCORRECTED)
            for key, counter in (("uncorrected_volatile", VOLATILE_ECC), ("uncorrected_aggregate", AGGREGATE_ECC)):
                count = reader.call("ecc." + key, "nvmlDeviceGetTotalEccErrors", handle, unc, counter)
                if _ok(count):
                    ecc[key] = int(count)
    record["ecc"] = ecc

    retired = {"supported": False, "single_bit": None, "double_bit": None, "pending": None}
    single = reader.call("retired_pages", "nvmlDeviceGetRetiredPages", handle, PAGE_RETIREMENT_SINGLE_BIT)
    if single is not _UNSUPPORTED:
        retired["supported"] = _ok(single)
        if _ok(single):
            retired["single_bit"] = len(single)
            double = reader.call("retired_pages", "nvmlDeviceGetRetiredPages", handle, PAGE_RETIREMENT_DOUBLE_BIT)
            if _ok(double):
                retired["double_bit"] = len(double)
            pending = reader.call("retired_pages", "nvmlDeviceGetRetiredPagesPendingStatus", handle)
            if _ok(pending):
                retired["pending"] = bool(pending)
        else:
            retired["supported"] = None  # unknown: the read failed
    record["retired_pages"] = retired

    remapped = {"supported": False, "correctable": None, "uncorrectable": None, "pending": None, "failure": None}
    rows = reader.call("remapped_rows", "nvmlDeviceGetRemappedRows", handle)
    if _ok(rows):
        remapped.update(
            {
                "supported": True,
                "correctable": int(rows[0]),
                "uncorrectable": int(rows[1]),
                "pending": bool(rows[2]),
                "failure": bool(rows[3]),
            }
        )
    elif rows is _FAILED:
        remapped["supported"] = None
    record["remapped_rows"] = remapped

    persistence = reader.call("persistence_mode", "nvmlDeviceGetPersistenceMode", handle)
    if _ok(persistence):
        record["persistence_mode"] = bool(persistence)


def read_nvlinks(reader, handle):
    """Active NVLink count; None when the GPU has no NVLink (NOT_SUPPORTED on link 0)."""
    nvml = reader.nvml
    if reader.record["lost"]:
        return
    max_links = _const(nvml, "NVML_NVLINK_MAX_LINKS", NVLINK_MAX_LINKS_DEFAULT)
    func = getattr(nvml, "nvmlDeviceGetNvLinkState", None)
    if func is None:
        reader.record["errors"]["nvlinks_active"] = "nvmlDeviceGetNvLinkState: not in bindings"
        return
    active = 0
    seen = False
    for link in range(max_links):
        try:
            state = func(handle, link)
        except Exception as exc:
            code = error_code(exc) if reader._is_nvml(exc) else None
            if code in (ERROR_NOT_SUPPORTED, ERROR_INVALID_ARGUMENT, ERROR_NOT_FOUND):
                if code == ERROR_NOT_SUPPORTED and link > 0:
                    continue
                break  # past the last link, or no NVLink at all
            if code == ERROR_GPU_IS_LOST:
                reader.record["lost"] = True
            reader.record["errors"]["nvlinks_active"] = "nvmlDeviceGetNvLinkState: %s" % error_text(exc)
            return
        seen = True
        if state:
            active += 1
    reader.record["nvlinks_active"] = active if seen else None


def _enumerate(reader, field, func_name, parent, profile_id, capacity, handle_type):  # noqa: PLR0917
    """GPU/compute instances of one profile via the (array, count) out-parameter calls."""
    if capacity <= 0:
        return []
    array = (handle_type * capacity)()
    count = ctypes.c_uint(capacity)
    result = reader.call(field, func_name, parent, profile_id, array, ctypes.byref(count))
    if not _ok(result):
        return []
    return [array[i] for i in range(min(count.value, capacity))]


def read_mig(reader, handle, device_total_bytes, want_processes):
    """MIG mode, GPU/compute instances and MIG devices (with their processes)."""
    nvml = reader.nvml
    record = reader.record
    mig = {"capable": False, "current": False, "pending": False, "gpu_instances": [], "devices": []}
    record["mig"] = mig
    mode = reader.call("mig", "nvmlDeviceGetMigMode", handle)
    if mode is _UNSUPPORTED:
        return []
    if mode is _FAILED:
        mig["capable"] = None
        mig["current"] = None
        mig["pending"] = None
        return []
    mig["capable"] = True
    mig["current"] = bool(mode[0])
    mig["pending"] = bool(mode[1])
    if not mig["current"]:
        return []

    gi_type = getattr(nvml, "c_nvmlGpuInstance_t", None)
    ci_type = getattr(nvml, "c_nvmlComputeInstance_t", None)
    profiles = {}
    for index in range(_const(nvml, "NVML_GPU_INSTANCE_PROFILE_COUNT", GPU_INSTANCE_PROFILE_COUNT_DEFAULT)):
        info = reader.quiet("nvmlDeviceGetGpuInstanceProfileInfo", handle, index)
        if info is None:
            continue
        profiles[info.id] = (gi_profile_name(index, info, device_total_bytes), info)
    ci_count = _const(nvml, "NVML_COMPUTE_INSTANCE_PROFILE_COUNT", COMPUTE_INSTANCE_PROFILE_COUNT_DEFAULT)
    engine = _const(nvml, "NVML_COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED", COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED)
    instances = []
    if gi_type is not None:
        for profile_id in sorted(profiles):
            gi_name, gi_info = profiles[profile_id]
            for gi in _enumerate(
                reader,
                "mig.gpu_instances",
                "nvmlDeviceGetGpuInstances",
                handle,
                profile_id,
                gi_info.instanceCount,
                gi_type,
            ):
                info = reader.call("mig.gpu_instances", "nvmlGpuInstanceGetInfo", gi)
                if not _ok(info):
                    continue
                entry = {
                    "id": int(info.id),
                    "profile_id": int(info.profileId),
                    "profile": gi_name,
                    "placement": {"start": int(info.placement.start), "size": int(info.placement.size)},
                    "compute_instances": [],
                }
                if ci_type is not None:
                    entry["compute_instances"] = _read_compute_instances(
                        reader, gi, ci_count, engine, ci_type, gi_info.sliceCount, gi_name
                    )
                instances.append(entry)
    else:
        record["errors"]["mig.gpu_instances"] = "c_nvmlGpuInstance_t: not in bindings"
    instances.sort(key=lambda item: (item["placement"]["start"], item["id"]))
    mig["gpu_instances"] = instances
    return _read_mig_devices(reader, handle, mig, want_processes)


def _read_compute_instances(reader, gi, ci_count, engine, ci_type, gi_slices, gi_name):  # noqa: PLR0917
    result = []
    seen = set()
    for index in range(ci_count):
        info = reader.quiet("nvmlGpuInstanceGetComputeInstanceProfileInfo", gi, index, engine)
        if info is None or info.id in seen:
            continue
        seen.add(info.id)
        name = ci_profile_name(info, gi_slices, gi_name)
        for ci in _enumerate(
            reader,
            "mig.compute_instances",
            "nvmlGpuInstanceGetComputeInstances",
            gi,
            info.id,
            info.instanceCount,
            ci_type,
        ):
            ci_info = reader.call("mig.compute_instances", "nvmlComputeInstanceGetInfo", ci)
            if _ok(ci_info):
                result.append({"id": int(ci_info.id), "profile_id": int(ci_info.profileId), "profile": name})
    result.sort(key=lambda item: item["id"])
    return result


def _read_mig_devices(reader, handle, mig, want_processes):
    """MIG devices; returns their handles (for per-MIG-device process queries)."""
    handles = []
    count = reader.call("mig.devices", "nvmlDeviceGetMaxMigDeviceCount", handle)
    if not _ok(count):
        return handles
    for index in range(int(count)):
        mig_handle = reader.quiet("nvmlDeviceGetMigDeviceHandleByIndex", handle, index)
        if mig_handle is None:
            continue  # NOT_FOUND: empty slot
        device = {"uuid": None, "gpu_instance_id": None, "compute_instance_id": None, "memory_total_mib": None}
        uuid = reader.call("mig.devices", "nvmlDeviceGetUUID", mig_handle)
        if _ok(uuid):
            device["uuid"] = text(uuid)
        gi_id = reader.call("mig.devices", "nvmlDeviceGetGpuInstanceId", mig_handle)
        if _ok(gi_id):
            device["gpu_instance_id"] = int(gi_id)
        ci_id = reader.call("mig.devices", "nvmlDeviceGetComputeInstanceId", mig_handle)
        if _ok(ci_id):
            device["compute_instance_id"] = int(ci_id)
        memory = reader.call("mig.devices", "nvmlDeviceGetMemoryInfo", mig_handle)
        if _ok(memory):
            device["memory_total_mib"] = int(memory.total) // MIB
        mig["devices"].append(device)
        handles.append(mig_handle)
    mig["devices"].sort(key=lambda item: (item["gpu_instance_id"] or 0, item["compute_instance_id"] or 0))
    return handles


def read_processes(reader, handles):
    """Compute and graphics processes on the given handles: distinct pids, memory in MiB."""
    pids = set()
    used = 0
    failed = False
    for handle in handles:
        for func_name in ("nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetGraphicsRunningProcesses"):
            procs = reader.call("processes", func_name, handle)
            if procs is _UNSUPPORTED:
                continue
            if procs is _FAILED:
                failed = True
                continue
            for proc in procs:
                pid = getattr(proc, "pid", None)
                gi_id = getattr(proc, "gpuInstanceId", None)
                if gi_id is None:
                    key = (id(handle), pid)
                else:  # MIG: one entry per pid and instance, whichever handle listed it
                    key = (gi_id, getattr(proc, "computeInstanceId", None), pid)
                if key in pids:
                    continue  # listed twice: compute and graphics, or two handles
                pids.add(key)
                memory = getattr(proc, "usedGpuMemory", None)
                if memory:
                    used += int(memory)
    if failed and not pids:
        reader.record["processes"] = None
        return
    reader.record["processes"] = {
        "count": len(set(key[-1] for key in pids)),
        "used_memory_mib": used // MIB,
    }


def read_gpu(nvml, index, want):
    """Everything wanted about the GPU at NVML index `index`."""
    record = empty_gpu(index)
    reader = GpuReader(nvml, record)
    handle = reader.call("handle", "nvmlDeviceGetHandleByIndex", index)
    if not _ok(handle):
        return record
    read_identity(reader, handle)
    memory = None
    if want.get("telemetry") or want.get("mig"):
        memory = read_memory(reader, handle)
    read_reliability(reader, handle)
    if want.get("telemetry"):
        read_telemetry(reader, handle, memory)
    if want.get("nvlink"):
        read_nvlinks(reader, handle)
    mig_handles = []
    in_mig = False
    if want.get("mig") or want.get("processes"):
        total = int(memory.total) if memory is not None else None
        mig_handles = read_mig(reader, handle, total, want.get("processes"))
        in_mig = record["mig"]["current"] is True
        if not want.get("mig"):
            record["mig"] = None
    if want.get("processes"):
        read_processes(reader, mig_handles if in_mig else [handle])
    return record


def collect_nvml(want, nvml=None):
    """Probe NVML once. `want`: dict of booleans telemetry, mig, processes, nvlink.

    Returns {available, reason, driver_version, cuda_driver_version, nvml_version, gpus}.
    """
    result = {
        "available": False,
        "reason": None,
        "driver_version": None,
        "cuda_driver_version": None,
        "nvml_version": None,
        "gpus": [],
    }
    if nvml is None:
        nvml, reason = load_bindings()
        if nvml is None:
            result["reason"] = reason
            return result
    try:
        nvml.nvmlInit()
    except Exception as exc:
        result["reason"] = init_reason(exc)
        return result
    try:
        result["available"] = True
        for key, func_name in (
            ("driver_version", "nvmlSystemGetDriverVersion"),
            ("cuda_driver_version", "nvmlSystemGetCudaDriverVersion"),
            ("nvml_version", "nvmlSystemGetNVMLVersion"),
        ):
            try:
                value = getattr(nvml, func_name)()
            except Exception:
                continue
            result[key] = value if key == "cuda_driver_version" else text(value)
        try:
            count = int(nvml.nvmlDeviceGetCount())
        except Exception as exc:
            result["available"] = False
            result["reason"] = "nvmlDeviceGetCount failed: %s" % error_text(exc)
            return result
        for index in range(count):
            result["gpus"].append(read_gpu(nvml, index, want))
    finally:
        try:
            nvml.nvmlShutdown()
        except Exception:
            pass
    return result
