# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read-only GPU facts through NVML, for gpu_probe (tolerant call policy).

One nvmlInit per probe, one handle lookup per GPU, every field read isolated: a failing call
records an error on that GPU under the field it was reading, and the probe goes on with the
next field and GPU. NOT_SUPPORTED is an answer (the feature is absent), not an error; every
other failure (also while listing MIG devices or processes) lands in the GPU's ``errors``.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import re

from ansible_collections.gpuops.cluster.plugins.module_utils.nvml import mig_state
from ansible_collections.gpuops.cluster.plugins.module_utils.nvml.bindings import (
    ERROR_INVALID_ARGUMENT,
    ERROR_NOT_FOUND,
    InitError,
    Session,
    const,
    error_text,
    text,
)
from ansible_collections.gpuops.cluster.plugins.module_utils.nvml.device import (
    ABSENT,
    UNSUPPORTED,
    Caller,
    ok,
)
from ansible_collections.gpuops.cluster.plugins.module_utils.pci import normalize_bus_id

MIB = 1024 * 1024

TEMPERATURE_GPU = 0
TEMPERATURE_THRESHOLD_SLOWDOWN = 1
MEMORY_ERROR_TYPE_UNCORRECTED = 1
VOLATILE_ECC = 0
AGGREGATE_ECC = 1
PAGE_RETIREMENT_SINGLE_BIT = 0
PAGE_RETIREMENT_DOUBLE_BIT = 1
NVLINK_MAX_LINKS_DEFAULT = 18
# Bounds for values NVML hands back: anything outside is recorded as an error, not reported.
MAX_GPUS = 1024
MAX_MIG_DEVICES = 64
MAX_NVLINKS = 64

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

_BUS_ID = re.compile(r"^[0-9a-f]{4,8}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$")


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


def _record_error(record, field, message):
    record["errors"].setdefault(field, message)


def _is_uint(value, bits=32):
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < (1 << bits)


def read_identity(call, record, handle):
    name = call("nvmlDeviceGetName", handle, field="name")
    if ok(name):
        record["name"] = text(name)
    uuid = call("nvmlDeviceGetUUID", handle, field="uuid")
    if ok(uuid):
        record["uuid"] = text(uuid)
    info = call("nvmlDeviceGetPciInfo", handle, field="pci")
    if ok(info):
        raw_bus = text(getattr(info, "busId", None))
        bus = normalize_bus_id(raw_bus)
        if bus and _BUS_ID.match(bus):
            record["bus_id"] = bus
        else:
            _record_error(record, "pci", "nvmlDeviceGetPciInfo: bus id %r is not a PCI address" % (raw_bus,))
        dev_vendor = getattr(info, "pciDeviceId", None)
        if _is_uint(dev_vendor):
            record["pci"]["vendor_id"] = "0x%04x" % (dev_vendor & 0xFFFF)
            record["pci"]["device_id"] = "0x%04x" % ((dev_vendor >> 16) & 0xFFFF)
        else:
            _record_error(record, "pci", "nvmlDeviceGetPciInfo: pciDeviceId %r is not a 32-bit id" % (dev_vendor,))
        subsystem = getattr(info, "pciSubSystemId", None)
        if _is_uint(subsystem):
            record["pci"]["subsystem_vendor_id"] = "0x%04x" % (subsystem & 0xFFFF)
            record["pci"]["subsystem_device_id"] = "0x%04x" % ((subsystem >> 16) & 0xFFFF)
        elif subsystem is not None:
            _record_error(record, "pci", "nvmlDeviceGetPciInfo: pciSubSystemId %r is not a 32-bit id" % (subsystem,))
    serial = call("nvmlDeviceGetSerial", handle, field="serial")
    if ok(serial):
        record["serial"] = text(serial)
    arch = call("nvmlDeviceGetArchitecture", handle, field="architecture")
    if ok(arch):
        record["architecture"] = ARCHITECTURES.get(arch, "unknown")
    capability = call("nvmlDeviceGetCudaComputeCapability", handle, field="compute_capability")
    if ok(capability):
        try:
            record["compute_capability"] = "%d.%d" % (int(capability[0]), int(capability[1]))
        except (TypeError, ValueError, IndexError):
            _record_error(
                record, "compute_capability", "nvmlDeviceGetCudaComputeCapability: unexpected %r" % (capability,)
            )


def read_telemetry(call, record, handle, memory):
    if memory is not None:
        record["memory"] = {
            "total_mib": int(memory.total) // MIB,
            "used_mib": int(memory.used) // MIB,
        }
    temp = call("nvmlDeviceGetTemperature", handle, TEMPERATURE_GPU, field="temperature_c")
    if ok(temp):
        record["temperature_c"] = int(temp)
        threshold = call("nvmlDeviceGetTemperatureThreshold", handle, TEMPERATURE_THRESHOLD_SLOWDOWN, optional=True)
        if ok(threshold) and isinstance(threshold, int) and threshold > 0:
            record["slowdown_temperature_c"] = threshold
    power = {"draw_w": None, "limit_w": None}
    draw = call("nvmlDeviceGetPowerUsage", handle, field="power.draw_w")
    if ok(draw):
        power["draw_w"] = round(draw / 1000.0, 1)
    limit = call("nvmlDeviceGetEnforcedPowerLimit", handle, field="power.limit_w")
    if ok(limit):
        power["limit_w"] = round(limit / 1000.0, 1)
    record["power"] = power


def read_reliability(call, record, handle):
    """ECC mode and counters, retired pages, remapped rows, persistence mode."""
    nvml = call.nvml
    ecc = {"enabled": None, "pending": None, "uncorrected_volatile": None, "uncorrected_aggregate": None}
    mode = call("nvmlDeviceGetEccMode", handle, field="ecc")
    if ok(mode):
        ecc["enabled"] = bool(mode[0])
        ecc["pending"] = bool(mode[1])
        if ecc["enabled"]:
            unc = const(nvml, "NVML_MEMORY_ERROR_TYPE_UNCORRECTED", MEMORY_ERROR_TYPE_UNCORRECTED)
            for key, counter in (("uncorrected_volatile", VOLATILE_ECC), ("uncorrected_aggregate", AGGREGATE_ECC)):
                count = call("nvmlDeviceGetTotalEccErrors", handle, unc, counter, field="ecc." + key)
                if ok(count):
                    ecc[key] = int(count)
    record["ecc"] = ecc

    retired = {"supported": False, "single_bit": None, "double_bit": None, "pending": None}
    single = call("nvmlDeviceGetRetiredPages", handle, PAGE_RETIREMENT_SINGLE_BIT, field="retired_pages")
    if single is not UNSUPPORTED:
        retired["supported"] = ok(single)
        if ok(single):
            retired["single_bit"] = len(single)
            double = call("nvmlDeviceGetRetiredPages", handle, PAGE_RETIREMENT_DOUBLE_BIT, field="retired_pages")
            if ok(double):
                retired["double_bit"] = len(double)
            pending = call("nvmlDeviceGetRetiredPagesPendingStatus", handle, field="retired_pages")
            if ok(pending):
                retired["pending"] = bool(pending)
        else:
            retired["supported"] = None  # unknown: the read failed
    record["retired_pages"] = retired

    remapped = {"supported": False, "correctable": None, "uncorrectable": None, "pending": None, "failure": None}
    rows = call("nvmlDeviceGetRemappedRows", handle, field="remapped_rows")
    if ok(rows):
        remapped.update(
            {
                "supported": True,
                "correctable": int(rows[0]),
                "uncorrectable": int(rows[1]),
                "pending": bool(rows[2]),
                "failure": bool(rows[3]),
            }
        )
    elif rows is not UNSUPPORTED:
        remapped["supported"] = None
    record["remapped_rows"] = remapped

    persistence = call("nvmlDeviceGetPersistenceMode", handle, field="persistence_mode")
    if ok(persistence):
        record["persistence_mode"] = bool(persistence)


def read_nvlinks(call, record, handle):
    """Active NVLink count; None when the GPU has no NVLink (NOT_SUPPORTED on link 0)."""
    nvml = call.nvml
    max_links = const(nvml, "NVML_NVLINK_MAX_LINKS", NVLINK_MAX_LINKS_DEFAULT)
    if not _is_uint(max_links) or max_links > MAX_NVLINKS:
        max_links = NVLINK_MAX_LINKS_DEFAULT
    active = 0
    seen = False
    for link in range(max_links):
        state = call(
            "nvmlDeviceGetNvLinkState",
            handle,
            link,
            field="nvlinks_active",
            absent=(ERROR_INVALID_ARGUMENT, ERROR_NOT_FOUND),
        )
        if state is UNSUPPORTED:
            if link > 0:
                continue
            break  # no NVLink at all
        if state is ABSENT:
            break  # past the last link
        if not ok(state):
            return  # the error is recorded; a count would be a guess
        seen = True
        if state:
            active += 1
    record["nvlinks_active"] = active if seen else None


def read_mig(call, record, handle, device_total_bytes):
    """MIG mode, GPU/compute instances and MIG devices; returns the MIG device handles."""
    mode = mig_state.read_mode(call, handle)
    mig = dict(mode, gpu_instances=[], devices=[])
    record["mig"] = mig
    if not mig["current"]:
        return []
    profiles = mig_state.read_gi_profiles(call, handle, device_total_bytes)
    instances = mig_state.read_instances(call, handle, profiles)
    mig["gpu_instances"] = [
        {
            "id": gi["gi_id"],
            "profile_id": gi["profile_id"],
            "profile": gi["profile"],
            "placement": {"start": gi["start"], "size": gi["size"]},
            "compute_instances": [
                {"id": ci["ci_id"], "profile_id": ci["profile_id"], "profile": ci["profile"]}
                for ci in gi["compute_instances"]
            ],
        }
        for gi in instances
    ]
    devices, handles = mig_state.read_devices(call, handle, instances, memory=True)
    if len(devices) > MAX_MIG_DEVICES:
        _record_error(record, "mig.devices", "nvmlDeviceGetMaxMigDeviceCount: %d MIG devices listed" % len(devices))
    mig["devices"] = [
        {
            "uuid": d["uuid"],
            "gpu_instance_id": d["gpu_instance_id"],
            "compute_instance_id": d["compute_instance_id"],
            "memory_total_mib": d["memory_total_mib"],
        }
        for d in devices
    ]
    return handles


def read_processes(call, record, handles):
    """Compute and graphics processes on the given handles: distinct pids, memory in MiB."""
    records, complete = mig_state.read_processes(call, handles)
    if not complete and not records:
        record["processes"] = None
        return
    record["processes"] = {
        "count": len({p["pid"] for p in records}),
        "used_memory_mib": sum(p["used_memory_bytes"] for p in records) // MIB,
    }


def read_gpu(nvml, index, want):
    """Everything wanted about the GPU at NVML index ``index``."""
    record = empty_gpu(index)
    call = Caller(nvml, gpu=index, strict=False, errors=record["errors"])
    handle = call("nvmlDeviceGetHandleByIndex", index, field="handle")
    if not ok(handle):
        record["lost"] = call.lost
        return record
    read_identity(call, record, handle)
    memory = None
    if want.get("telemetry") or want.get("mig"):
        info = call("nvmlDeviceGetMemoryInfo", handle, field="memory")
        memory = info if ok(info) else None
    read_reliability(call, record, handle)
    if want.get("telemetry"):
        read_telemetry(call, record, handle, memory)
    if want.get("nvlink"):
        read_nvlinks(call, record, handle)
    mig_handles = []
    in_mig = False
    if want.get("mig") or want.get("processes"):
        total = int(memory.total) if memory is not None else None
        mig_handles = read_mig(call, record, handle, total)
        in_mig = record["mig"]["current"] is True
        if not want.get("mig"):
            record["mig"] = None
    if want.get("processes"):
        read_processes(call, record, mig_handles if in_mig else [handle])
    record["lost"] = call.lost
    return record


def collect_nvml(want, nvml=None):
    """Probe NVML once. ``want``: dict of booleans telemetry, mig, processes, nvlink.

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
    session = Session(nvml)
    try:
        lib = session.__enter__()
    except InitError as exc:
        result["reason"] = exc.reason
        return result
    try:
        result["available"] = True
        system = Caller(lib, strict=False)
        for key, func_name in (
            ("driver_version", "nvmlSystemGetDriverVersion"),
            ("cuda_driver_version", "nvmlSystemGetCudaDriverVersion"),
            ("nvml_version", "nvmlSystemGetNVMLVersion"),
        ):
            value = system(func_name, optional=True)
            if ok(value):
                result[key] = value if key == "cuda_driver_version" else text(value)
        try:
            count = lib.nvmlDeviceGetCount()
        except Exception as exc:
            result["available"] = False
            result["reason"] = "nvmlDeviceGetCount failed: %s" % error_text(exc)
            return result
        if not _is_uint(count) or count > MAX_GPUS:
            result["available"] = False
            result["reason"] = "nvmlDeviceGetCount returned %r, not a GPU count (0-%d)" % (count, MAX_GPUS)
            return result
        for index in range(count):
            result["gpus"].append(read_gpu(lib, index, want))
    finally:
        session.__exit__(None, None, None)
    return result
