# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""MIG state of one GPU read through NVML: mode, profiles, GPU and compute instances, MIG
devices and processes. Every call goes through a ``device.Caller``, so gpu_probe (tolerant:
errors land in the GPU's ``errors``) and mig_partition (strict: errors raise, naming GPU and
call) read the same way.

Profile names come from each GPU's own profile table (the name in the V2 profile info, or
``<slices>g.<memory>gb`` built from it), never from another GPU's table.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import math

from ansible_collections.gpuops.cluster.plugins.module_utils.nvml.bindings import (
    ERROR_INVALID_ARGUMENT,
    ERROR_NOT_FOUND,
    NO_VALUE,
    const,
    text,
)
from ansible_collections.gpuops.cluster.plugins.module_utils.nvml.device import (
    FAILED,
    UNSUPPORTED,
    ok,
)

MIB = 1024 * 1024
GIB = 1024 * 1024 * 1024
GI_PROFILE_COUNT_DEFAULT = 0x12
CI_PROFILE_COUNT_DEFAULT = 0x9
ENGINE_SHARED = 0

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
    """The .name of a V2 profile info struct without NVML's 'MIG ' prefix ('MIG 1g.5gb')."""
    name = text(getattr(info, "name", None))
    if name and name.upper().startswith("MIG "):
        name = name[4:].strip()
    return name or None


def gi_profile_name(profile_index, info, device_total_bytes):
    """Name of a GPU instance profile: NVML's own (.name in the V2 struct), else built."""
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


def read_mode(call, handle):
    """{capable, current, pending}; capable False on NOT_SUPPORTED, all None when unreadable."""
    mode = call("nvmlDeviceGetMigMode", handle, field="mig")
    if mode is UNSUPPORTED:
        return {"capable": False, "current": False, "pending": False}
    if not ok(mode):
        return {"capable": None, "current": None, "pending": None}
    return {"capable": True, "current": bool(mode[0]), "pending": bool(mode[1])}


def read_gi_profiles(call, handle, memory_total, placements=False, field="mig.gpu_instances"):
    """The device's GPU instance profiles: name -> {name, id, index, sliceCount, instanceCount,
    multiprocessorCount, memorySizeMB, placements}. Profiles the device cannot create (no
    instance possible) are left out; an index the device does not offer is NOT_SUPPORTED."""
    nvml = call.nvml
    profiles = {}
    placement_type = getattr(nvml, "c_nvmlGpuInstancePlacement_t", None)
    for index in range(const(nvml, "NVML_GPU_INSTANCE_PROFILE_COUNT", GI_PROFILE_COUNT_DEFAULT)):
        info = call("nvmlDeviceGetGpuInstanceProfileInfo", handle, index, field=field, absent=(ERROR_INVALID_ARGUMENT,))
        if not ok(info) or not getattr(info, "instanceCount", 0):
            continue
        name = gi_profile_name(index, info, memory_total)
        if name in profiles:
            continue
        entry = {
            "name": name,
            "id": int(info.id),
            "index": index,
            "sliceCount": int(info.sliceCount),
            "instanceCount": int(info.instanceCount),
            "multiprocessorCount": int(getattr(info, "multiprocessorCount", 0) or 0),
            "memorySizeMB": int(info.memorySizeMB),
            "placements": [],
        }
        if placements and placement_type is not None:
            found = call.placements(
                "nvmlDeviceGetGpuInstancePossiblePlacements", handle, info.id, placement_type, field=field
            )
            entry["placements"] = found if ok(found) else []
        profiles[name] = entry
    return profiles


def read_ci_profiles(call, gi_handle, gi_slices, gi_name, field="mig.compute_instances"):
    """Compute instance profiles offered in one GPU instance: name -> {id, index, slices, max}."""
    nvml = call.nvml
    result = {}
    engine = const(nvml, "NVML_COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED", ENGINE_SHARED)
    for index in range(const(nvml, "NVML_COMPUTE_INSTANCE_PROFILE_COUNT", CI_PROFILE_COUNT_DEFAULT)):
        info = call(
            "nvmlGpuInstanceGetComputeInstanceProfileInfo",
            gi_handle,
            index,
            engine,
            field=field,
            absent=(ERROR_INVALID_ARGUMENT,),
        )
        if not ok(info):
            continue
        name = ci_profile_name(info, gi_slices, gi_name)
        if name not in result and all(p["id"] != int(info.id) for p in result.values()):
            result[name] = {
                "id": int(info.id),
                "index": index,
                "slices": int(info.sliceCount),
                "max": int(info.instanceCount),
            }
    return result


def read_instances(call, handle, profiles):
    """GPU instances with their compute instances, sorted by placement start.

    Each: {gi_id, profile, profile_id, start, size, compute_instances: [{ci_id, profile,
    profile_id, start, size}]}.
    """
    nvml = call.nvml
    gi_type = getattr(nvml, "c_nvmlGpuInstance_t", None)
    ci_type = getattr(nvml, "c_nvmlComputeInstance_t", None)
    if gi_type is None or ci_type is None:
        call.missing("c_nvmlGpuInstance_t" if gi_type is None else "c_nvmlComputeInstance_t", "mig.gpu_instances")
        return []
    instances = []
    for name in sorted(profiles, key=lambda n: profiles[n]["id"]):
        profile = profiles[name]
        gis = call.array(
            "nvmlDeviceGetGpuInstances", handle, profile["id"], profile["instanceCount"], gi_type, "mig.gpu_instances"
        )
        if not ok(gis):
            continue
        for gi in gis:
            info = call("nvmlGpuInstanceGetInfo", gi, field="mig.gpu_instances")
            if not ok(info):
                continue
            entry = {
                "gi_id": int(info.id),
                "profile": name,
                "profile_id": int(info.profileId),
                "start": int(info.placement.start),
                "size": int(info.placement.size),
                "compute_instances": [],
            }
            offered = read_ci_profiles(call, gi, profile["sliceCount"], name)
            for ci_name in sorted(offered, key=lambda n: offered[n]["id"]):
                ci_profile = offered[ci_name]
                cis = call.array(
                    "nvmlGpuInstanceGetComputeInstances",
                    gi,
                    ci_profile["id"],
                    ci_profile["max"],
                    ci_type,
                    "mig.compute_instances",
                )
                if not ok(cis):
                    continue
                for ci in cis:
                    ci_info = call("nvmlComputeInstanceGetInfo", ci, field="mig.compute_instances")
                    if not ok(ci_info):
                        continue
                    entry["compute_instances"].append(
                        {
                            "ci_id": int(ci_info.id),
                            "profile": ci_name,
                            "profile_id": int(ci_info.profileId),
                            "start": int(ci_info.placement.start),
                            "size": int(ci_info.placement.size),
                        }
                    )
            entry["compute_instances"].sort(key=lambda c: c["ci_id"])
            instances.append(entry)
    instances.sort(key=lambda e: (e["start"], e["gi_id"]))
    return instances


def read_devices(call, handle, instances, memory=False):
    """MIG devices ({uuid, gpu_instance_id, compute_instance_id, profile[, memory_total_mib]})
    and their handles (for per-MIG-device process lists). An empty slot is NOT_FOUND; any
    other error is an error (recorded or raised), never an empty list in disguise."""
    profile_of = {(e["gi_id"], c["ci_id"]): c["profile"] for e in instances for c in e["compute_instances"]}
    devices = []
    handles = []
    count = call("nvmlDeviceGetMaxMigDeviceCount", handle, field="mig.devices")
    if not ok(count):
        return devices, handles
    for mig_index in range(int(count)):
        mig_handle = call(
            "nvmlDeviceGetMigDeviceHandleByIndex", handle, mig_index, field="mig.devices", absent=(ERROR_NOT_FOUND,)
        )
        if not ok(mig_handle):
            continue
        device = {"uuid": None, "gpu_instance_id": None, "compute_instance_id": None, "profile": None}
        uuid = call("nvmlDeviceGetUUID", mig_handle, field="mig.devices")
        if ok(uuid):
            device["uuid"] = text(uuid)
        gi_id = call("nvmlDeviceGetGpuInstanceId", mig_handle, field="mig.devices")
        if ok(gi_id):
            device["gpu_instance_id"] = int(gi_id)
        ci_id = call("nvmlDeviceGetComputeInstanceId", mig_handle, field="mig.devices")
        if ok(ci_id):
            device["compute_instance_id"] = int(ci_id)
        device["profile"] = profile_of.get((device["gpu_instance_id"], device["compute_instance_id"]))
        if memory:
            device["memory_total_mib"] = None
            info = call("nvmlDeviceGetMemoryInfo", mig_handle, field="mig.devices")
            if ok(info):
                device["memory_total_mib"] = int(info.total) // MIB
        devices.append(device)
        handles.append(mig_handle)
    devices.sort(key=lambda d: (d["gpu_instance_id"] or 0, d["compute_instance_id"] or 0))
    return devices, handles


def read_processes(call, handles, field="processes"):
    """Distinct processes on ``handles`` (the GPU, or its MIG devices): (records, complete).

    Records: {pid, gpu_instance_id, compute_instance_id, used_memory_bytes}; one per pid and
    instance (a process listed as compute and graphics, or by two handles, counts once).
    ``complete`` is False when a listing failed (tolerant policy).
    """
    seen = {}
    complete = True
    for position, handle in enumerate(handles):
        for func_name in ("nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetGraphicsRunningProcesses"):
            procs = call(func_name, handle, field=field)
            if procs is UNSUPPORTED:
                continue
            if procs is FAILED or not ok(procs):
                complete = False
                continue
            for proc in procs:
                gi_id = getattr(proc, "gpuInstanceId", None)
                ci_id = getattr(proc, "computeInstanceId", None)
                gi_id = None if gi_id in (None, NO_VALUE) else int(gi_id)
                ci_id = None if ci_id in (None, NO_VALUE) else int(ci_id)
                pid = int(proc.pid)
                key = (gi_id, ci_id, pid) if gi_id is not None else (position, None, pid)
                if key in seen:
                    continue
                memory = getattr(proc, "usedGpuMemory", None)
                seen[key] = {
                    "pid": pid,
                    "gpu_instance_id": gi_id,
                    "compute_instance_id": ci_id,
                    "used_memory_bytes": int(memory) if isinstance(memory, int) and memory != NO_VALUE else 0,
                }
    records = sorted(seen.values(), key=lambda p: (p["gpu_instance_id"] or 0, p["compute_instance_id"] or 0, p["pid"]))
    return records, complete
