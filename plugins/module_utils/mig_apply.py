# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""MIG through NVML: read the live state, apply a MigPlan with rollback, change MIG mode.

The I/O layer under the pure planner (mig.py). Everything talks to NVML through the object
passed in as ``nvml`` (nvidia-ml-py's ``pynvml`` on a real host, the sandbox simulator in
tests), so the same code runs against both.

- ``read_gpu``: identity, MIG mode (current/pending), the device's own profile table (ids are
  resolved by NAME on each device, never taken from another GPU), GPU instances with their
  placements, compute instances, MIG devices and the processes in each instance.
- ``apply_plan``: runs a MigPlan's steps with explicit placements
  (nvmlDeviceCreateGpuInstanceWithPlacement); when a step fails, undoes what ran (destroys
  what it created, re-creates what it destroyed at the same placements) and reports exactly
  which steps ran, which failed, which were rolled back; a failed rollback is reported with
  the state the GPU was left in.
- ``converge``: the whole mig_partition run (selection, validation of every GPU before any
  change, busy checks, mode changes, resets, apply, final state), used by the module.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import ctypes
import os
import signal
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

from ansible_collections.gpuops.cluster.plugins.module_utils import mig as mig_plan
from ansible_collections.gpuops.cluster.plugins.module_utils.mig_catalog import (
    find_model,
    model_from_nvml,
    parse_pci_device_id,
)
from ansible_collections.gpuops.cluster.plugins.module_utils.nvml import (
    ci_profile_name,
    error_code,
    error_text,
    gi_profile_name,
    init_reason,
    load_bindings,
    text,
)
from ansible_collections.gpuops.cluster.plugins.module_utils.pci import normalize_bus_id

SUCCESS = 0
ERROR_INVALID_ARGUMENT = 2
ERROR_NOT_SUPPORTED = 3
ERROR_NOT_FOUND = 6
ERROR_GPU_IS_LOST = 15
ERROR_RESET_REQUIRED = 16
ERROR_IN_USE = 19
NO_VALUE = 0xFFFFFFFF
ARCH_AMPERE = 7
GI_PROFILE_COUNT_DEFAULT = 0x12
CI_PROFILE_COUNT_DEFAULT = 0x9
ENGINE_SHARED = 0

RESET_POLICIES = ("never", "if_idle")


class GpuLost(Exception):
    """The GPU answered GPU_IS_LOST: nothing on it can be read or changed."""


class MigRunError(Exception):
    """A failure the caller must see; ``result`` is the module result to return with it."""

    def __init__(self, msg, result=None):
        super(MigRunError, self).__init__(msg)
        self.msg = msg
        self.result = result or {}


def _const(nvml, name, default):
    value = getattr(nvml, name, None)
    return default if value is None else value


class Device:
    """NVML calls on one physical GPU; GPU_IS_LOST anywhere turns into GpuLost."""

    def __init__(self, nvml, index):
        self.nvml = nvml
        self.index = index
        self.error_class = getattr(nvml, "NVMLError", Exception)
        self.handle = self.call("nvmlDeviceGetHandleByIndex", index)

    def call(self, func_name, *args):
        func = getattr(self.nvml, func_name, None)
        if func is None:
            raise MigRunError("%s is not in these NVML bindings (nvidia-ml-py too old?)" % func_name)
        try:
            return func(*args)
        except self.error_class as exc:
            if error_code(exc) == ERROR_GPU_IS_LOST:
                raise GpuLost("GPU %d: %s: %s" % (self.index, func_name, error_text(exc))) from exc
            raise

    def quiet(self, func_name, *args):
        """Result, or None on NVML errors other than GPU_IS_LOST."""
        try:
            return self.call(func_name, *args)
        except self.error_class:
            return None

    def array(self, func_name, parent, profile_id, capacity, item_type):
        if capacity <= 0:
            return []
        items = (item_type * capacity)()
        count = ctypes.c_uint(capacity)
        self.call(func_name, parent, profile_id, items, ctypes.byref(count))
        return [items[i] for i in range(min(count.value, capacity))]


# ------------------------------------------------------------------------------------------
# Reading
# ------------------------------------------------------------------------------------------


def read_profiles(dev, memory_total):
    """The device's GI profile table: name -> {id, index, slices, size, starts, max, ...}."""
    nvml = dev.nvml
    profiles = {}
    for index in range(_const(nvml, "NVML_GPU_INSTANCE_PROFILE_COUNT", GI_PROFILE_COUNT_DEFAULT)):
        info = dev.quiet("nvmlDeviceGetGpuInstanceProfileInfo", dev.handle, index)
        if info is None or not getattr(info, "instanceCount", 0):
            continue
        name = gi_profile_name(index, info, memory_total)
        if name in profiles:
            continue
        count = ctypes.c_uint(0)
        placements = []
        try:
            dev.call("nvmlDeviceGetGpuInstancePossiblePlacements", dev.handle, info.id, None, ctypes.byref(count))
            if count.value:
                array = (nvml.c_nvmlGpuInstancePlacement_t * count.value)()
                dev.call("nvmlDeviceGetGpuInstancePossiblePlacements", dev.handle, info.id, array, ctypes.byref(count))
                placements = [{"start": int(p.start), "size": int(p.size)} for p in array[: count.value]]
        except dev.error_class:
            placements = []
        profiles[name] = {
            "name": name,
            "id": int(info.id),
            "index": index,
            "sliceCount": int(info.sliceCount),
            "instanceCount": int(info.instanceCount),
            "multiprocessorCount": int(info.multiprocessorCount),
            "memorySizeMB": int(info.memorySizeMB),
            "placements": placements,
        }
    return profiles


def _ci_profiles(dev, gi_handle, gi_slices, gi_name):
    """Compute instance profiles offered in one GI: name -> {id, index, slices}."""
    nvml = dev.nvml
    result = {}
    engine = _const(nvml, "NVML_COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED", ENGINE_SHARED)
    for index in range(_const(nvml, "NVML_COMPUTE_INSTANCE_PROFILE_COUNT", CI_PROFILE_COUNT_DEFAULT)):
        info = dev.quiet("nvmlGpuInstanceGetComputeInstanceProfileInfo", gi_handle, index, engine)
        if info is None:
            continue
        name = ci_profile_name(info, gi_slices, gi_name)
        if name not in result:
            result[name] = {
                "id": int(info.id),
                "index": index,
                "slices": int(info.sliceCount),
                "max": int(info.instanceCount),
            }
    return result


def _processes(dev, handles):
    """Distinct processes on the given device handles: (gi_id, ci_id, pid) -> record."""
    seen = {}
    for handle in handles:
        for func_name in ("nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetGraphicsRunningProcesses"):
            try:
                procs = dev.call(func_name, handle)
            except dev.error_class as exc:
                if error_code(exc) == ERROR_NOT_SUPPORTED:
                    continue
                raise
            for proc in procs:
                gi_id = getattr(proc, "gpuInstanceId", NO_VALUE)
                ci_id = getattr(proc, "computeInstanceId", NO_VALUE)
                gi_id = None if gi_id in (None, NO_VALUE) else int(gi_id)
                ci_id = None if ci_id in (None, NO_VALUE) else int(ci_id)
                key = (gi_id, ci_id, int(proc.pid))
                if key not in seen:
                    seen[key] = {"pid": int(proc.pid), "gpu_instance_id": gi_id, "compute_instance_id": ci_id}
    records = sorted(seen.values(), key=lambda p: (p["gpu_instance_id"] or 0, p["compute_instance_id"] or 0, p["pid"]))
    for record in records:
        name = dev.quiet("nvmlSystemGetProcessName", record["pid"])
        record["name"] = text(name) if name is not None else None
    return records


def read_gpu(nvml, index):
    """Everything mig_partition needs about GPU ``index``; raises GpuLost."""
    dev = Device(nvml, index)
    handle = dev.handle
    gpu = {
        "index": index,
        "uuid": text(dev.call("nvmlDeviceGetUUID", handle)),
        "name": text(dev.call("nvmlDeviceGetName", handle)),
        "bus_id": None,
        "pci_device_id": None,
        "pci_subsystem_id": None,
        "architecture": dev.quiet("nvmlDeviceGetArchitecture", handle),
        "mig_capable": False,
        "mig": {"current": None, "pending": None},
        "profiles": {},
        "instances": [],
        "devices": [],
        "processes": [],
    }
    pci = dev.call("nvmlDeviceGetPciInfo", handle)
    gpu["bus_id"] = normalize_bus_id(text(getattr(pci, "busId", None)))
    gpu["pci_device_id"] = int(pci.pciDeviceId)
    gpu["pci_subsystem_id"] = int(getattr(pci, "pciSubSystemId", 0)) or None
    memory = dev.quiet("nvmlDeviceGetMemoryInfo", handle)
    memory_total = int(memory.total) if memory is not None else None
    try:
        mode = dev.call("nvmlDeviceGetMigMode", handle)
    except dev.error_class as exc:
        if error_code(exc) != ERROR_NOT_SUPPORTED:
            raise
        gpu["processes"] = _processes(dev, [handle])
        return gpu
    gpu["mig_capable"] = True
    gpu["mig"] = {"current": bool(mode[0]), "pending": bool(mode[1])}
    gpu["profiles"] = read_profiles(dev, memory_total)
    handles = [handle]
    if gpu["mig"]["current"]:
        handles += _read_instances(dev, gpu)
    gpu["processes"] = _processes(dev, handles)
    for instance in gpu["instances"]:
        instance["pids"] = sorted({p["pid"] for p in gpu["processes"] if p["gpu_instance_id"] == instance["gi_id"]})
        for ci in instance["compute_instances"]:
            ci["pids"] = sorted(
                {
                    p["pid"]
                    for p in gpu["processes"]
                    if p["gpu_instance_id"] == instance["gi_id"] and p["compute_instance_id"] == ci["ci_id"]
                }
            )
    return gpu


def _read_instances(dev, gpu):
    nvml = dev.nvml
    gi_type = nvml.c_nvmlGpuInstance_t
    ci_type = nvml.c_nvmlComputeInstance_t
    instances = []
    for name, profile in gpu["profiles"].items():
        for gi in dev.array("nvmlDeviceGetGpuInstances", dev.handle, profile["id"], profile["instanceCount"], gi_type):
            info = dev.call("nvmlGpuInstanceGetInfo", gi)
            entry = {
                "gi_id": int(info.id),
                "profile": name,
                "profile_id": int(info.profileId),
                "start": int(info.placement.start),
                "size": int(info.placement.size),
                "compute_instances": [],
            }
            for ci_name, ci_profile in _ci_profiles(dev, gi, profile["sliceCount"], name).items():
                for ci in dev.array(
                    "nvmlGpuInstanceGetComputeInstances", gi, ci_profile["id"], ci_profile["max"], ci_type
                ):
                    ci_info = dev.call("nvmlComputeInstanceGetInfo", ci)
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
    gpu["instances"] = instances
    profile_of = {(e["gi_id"], c["ci_id"]): c["profile"] for e in instances for c in e["compute_instances"]}
    handles = []
    count = dev.quiet("nvmlDeviceGetMaxMigDeviceCount", dev.handle) or 0
    for mig_index in range(int(count)):
        mig_handle = dev.quiet("nvmlDeviceGetMigDeviceHandleByIndex", dev.handle, mig_index)
        if mig_handle is None:
            continue
        gi_id = int(dev.call("nvmlDeviceGetGpuInstanceId", mig_handle))
        ci_id = int(dev.call("nvmlDeviceGetComputeInstanceId", mig_handle))
        gpu["devices"].append(
            {
                "uuid": text(dev.call("nvmlDeviceGetUUID", mig_handle)),
                "gpu_instance_id": gi_id,
                "compute_instance_id": ci_id,
                "profile": profile_of.get((gi_id, ci_id)),
            }
        )
        handles.append(mig_handle)
    gpu["devices"].sort(key=lambda d: (d["gpu_instance_id"], d["compute_instance_id"]))
    return handles


def model_for(gpu):
    """Catalog entry for the GPU, else one built from the device's own profile table."""
    model = find_model(gpu["name"], gpu["pci_device_id"])
    if model is not None:
        return model
    rows = [p for p in gpu["profiles"].values() if p["placements"]]
    if not rows:
        return None
    return model_from_nvml(gpu["name"], rows, [gpu["pci_device_id"]] if gpu["pci_device_id"] else ())


def live_for_plan(gpu):
    """Live instances in plan_changes' shape, with busy flags from the processes."""
    live = []
    for entry in gpu["instances"]:
        live.append(
            {
                "gi_id": entry["gi_id"],
                "profile": entry["profile"],
                "start": entry["start"],
                "busy": bool(entry.get("pids")),
                "compute_instances": [
                    {"ci_id": c["ci_id"], "profile": c["profile"], "start": c["start"], "busy": bool(c.get("pids"))}
                    for c in entry["compute_instances"]
                ],
            }
        )
    return live


def public_gpu(gpu):
    """The per-GPU entry of the module's ``gpus`` result."""
    entry = {
        "index": gpu["index"],
        "uuid": gpu.get("uuid"),
        "name": gpu.get("name"),
        "mig": dict(gpu.get("mig") or {"current": None, "pending": None}),
        "instances": [],
        "devices": [dict(d) for d in gpu.get("devices", [])],
    }
    for inst in gpu.get("instances", []):
        entry["instances"].append(
            {
                "profile": inst["profile"],
                "placement": {"start": inst["start"], "size": inst["size"]},
                "gpu_instance_id": inst["gi_id"],
                "compute_instances": [
                    {
                        "compute_instance_id": c["ci_id"],
                        "profile": c["profile"],
                        "placement": {"start": c["start"], "size": c["size"]},
                    }
                    for c in inst["compute_instances"]
                ],
                "pids": list(inst.get("pids", [])),
            }
        )
    if gpu.get("lost"):
        entry["lost"] = True
        entry["error"] = gpu.get("error")
    return entry


def layout_text(gpu):
    """Diff text of one GPU."""
    head = "GPU %s %s (%s): " % (gpu["index"], gpu.get("name") or "?", gpu.get("uuid") or "?")
    mig = gpu.get("mig") or {}
    if not gpu.get("mig_capable", True):
        return head + "no MIG\n"
    mode = "MIG %s" % ("on" if mig.get("current") else "off")
    if mig.get("pending") is not None and mig.get("pending") != mig.get("current"):
        mode += " (pending %s)" % ("on" if mig.get("pending") else "off")
    lines = [head + mode]
    for inst in gpu.get("instances", []):
        cis = ",".join(c["profile"] for c in inst["compute_instances"]) or "no compute instance"
        lines.append("  %s@%d gi %d [%s]" % (inst["profile"], inst["start"], inst["gi_id"], cis))
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------
# Applying
# ------------------------------------------------------------------------------------------


class Executor:
    """Runs plan steps on one GPU and remembers how to undo each."""

    def __init__(self, nvml, gpu):
        self.nvml = nvml
        self.gpu = gpu
        self.dev = Device(nvml, gpu["index"])
        self.profiles = gpu["profiles"]
        self.created_gi = {}  # (profile, start) -> gi_id of GIs this run created
        self.done = []  # (step, undo) in execution order
        self.ci_by_id = {
            (e["gi_id"], c["ci_id"]): dict(c, gi_profile=e["profile"])
            for e in gpu["instances"]
            for c in e["compute_instances"]
        }

    # -- primitives --------------------------------------------------------------------------
    def _gi(self, gi_id):
        return self.dev.call("nvmlDeviceGetGpuInstanceById", self.dev.handle, gi_id)

    def create_gi(self, profile_name, start):
        profile = self.profiles.get(profile_name)
        if profile is None:
            raise MigRunError(
                "GPU %d reports no GPU instance profile %r (it offers %s)"
                % (self.gpu["index"], profile_name, ", ".join(sorted(self.profiles)))
            )
        size = profile["placements"][0]["size"] if profile["placements"] else None
        if size is None:
            model = model_for(self.gpu)
            size = model.profile(profile_name).memory_slices
        placement = self.nvml.c_nvmlGpuInstancePlacement_t()
        placement.start = start
        placement.size = size
        gi = self.dev.call(
            "nvmlDeviceCreateGpuInstanceWithPlacement", self.dev.handle, profile["id"], ctypes.byref(placement)
        )
        info = self.dev.call("nvmlGpuInstanceGetInfo", gi)
        return int(info.id)

    def destroy_gi(self, gi_id):
        self.dev.call("nvmlGpuInstanceDestroy", self._gi(gi_id))

    def create_ci(self, gi_id, gi_profile, ci_profile, ci_start):
        gi = self._gi(gi_id)
        slices = self.profiles[gi_profile]["sliceCount"] if gi_profile in self.profiles else 0
        offered = _ci_profiles(self.dev, gi, slices, gi_profile)
        found = offered.get(ci_profile)
        if found is None:
            raise MigRunError(
                "GPU %d: GPU instance %d (%s) offers no compute instance profile %r (it offers %s)"
                % (self.gpu["index"], gi_id, gi_profile, ci_profile, ", ".join(sorted(offered)))
            )
        if hasattr(self.nvml, "nvmlGpuInstanceCreateComputeInstanceWithPlacement"):
            placement = self.nvml.c_nvmlComputeInstancePlacement_t()
            placement.start = ci_start
            placement.size = found["slices"]
            ci = self.dev.call(
                "nvmlGpuInstanceCreateComputeInstanceWithPlacement", gi, found["id"], ctypes.byref(placement)
            )
        else:
            ci = self.dev.call("nvmlGpuInstanceCreateComputeInstance", gi, found["id"])
        return int(self.dev.call("nvmlComputeInstanceGetInfo", ci).id)

    def destroy_ci(self, gi_id, ci_id):
        ci = self.dev.call("nvmlGpuInstanceGetComputeInstanceById", self._gi(gi_id), ci_id)
        self.dev.call("nvmlComputeInstanceDestroy", ci)

    # -- steps --------------------------------------------------------------------------------
    def run_step(self, step):
        """Run one plan step; returns the step as it ran (with the ids NVML gave)."""
        action = step["action"]
        ran = dict(step)
        if action == "destroy_ci":
            live = self.ci_by_id.get((step["gi_id"], step["ci_id"]), {})
            self.destroy_ci(step["gi_id"], step["ci_id"])
            undo = {
                "action": "create_ci",
                "gi_id": step["gi_id"],
                "profile": step["profile"],
                "start": step["start"],
                "ci_profile": live.get("profile", step["profile"]),
                "ci_start": live.get("start", 0),
            }
        elif action == "destroy_gi":
            self.destroy_gi(step["gi_id"])
            undo = {
                "action": "create_gi",
                "profile": step["profile"],
                "start": step["start"],
                "was_gi_id": step["gi_id"],
            }
        elif action == "create_gi":
            gi_id = self.create_gi(step["profile"], step["start"])
            self.created_gi[(step["profile"], step["start"])] = gi_id
            ran["gi_id"] = gi_id
            undo = {"action": "destroy_gi", "gi_id": gi_id, "profile": step["profile"], "start": step["start"]}
        elif action == "create_ci":
            gi_id = step.get("gi_id")
            if gi_id is None:
                gi_id = self.created_gi[(step["profile"], step["start"])]
            ci_id = self.create_ci(
                gi_id, step["profile"], step.get("ci_profile", step["profile"]), step.get("ci_start", 0)
            )
            ran.update(gi_id=gi_id, ci_id=ci_id)
            undo = {
                "action": "destroy_ci",
                "gi_id": gi_id,
                "ci_id": ci_id,
                "profile": step["profile"],
                "start": step["start"],
            }
        else:
            raise MigRunError("unknown plan step %r" % action)
        self.done.append((ran, undo))
        return ran

    def run_undo(self, undo, gi_map):
        action = undo["action"]
        gi_id = gi_map.get(undo.get("gi_id"), undo.get("gi_id"))
        if action == "destroy_ci":
            self.destroy_ci(gi_id, undo["ci_id"])
        elif action == "destroy_gi":
            self.destroy_gi(gi_id)
        elif action == "create_gi":
            new_id = self.create_gi(undo["profile"], undo["start"])
            gi_map[undo["was_gi_id"]] = new_id
            return dict(undo, gi_id=new_id)
        elif action == "create_ci":
            ci_id = self.create_ci(gi_id, undo["profile"], undo["ci_profile"], undo["ci_start"])
            return dict(undo, gi_id=gi_id, ci_id=ci_id)
        return dict(undo, gi_id=gi_id)


def _step_text(step):
    action = step["action"]
    where = "%s@%s" % (step.get("profile"), step.get("start"))
    if action in ("destroy_ci", "create_ci"):
        ci = step.get("ci_profile")
        return "%s %s%s%s" % (
            action,
            where,
            " gi %s" % step["gi_id"] if step.get("gi_id") is not None else "",
            " %s@%s" % (ci, step.get("ci_start")) if ci else (" ci %s" % step.get("ci_id") if "ci_id" in step else ""),
        )
    return "%s %s%s" % (action, where, " gi %s" % step["gi_id"] if step.get("gi_id") is not None else "")


def apply_plan(nvml, gpu, steps):
    """Run ``steps`` on ``gpu``; on a failure roll back. Returns a report dict.

    Report: {"ok", "ran": [...], "failed": step|None, "error": str|None,
    "rolled_back": [...], "rollback_failed": [...]}. ok is False on any failure; a
    rollback failure leaves rollback_failed non-empty.
    """
    executor = Executor(nvml, gpu)
    report = {"ok": True, "ran": [], "failed": None, "error": None, "rolled_back": [], "rollback_failed": []}
    for step in steps:
        try:
            report["ran"].append(executor.run_step(step))
        except GpuLost:
            raise
        except Exception as exc:  # NVML errors and anything else: stop and undo
            report["ok"] = False
            report["failed"] = dict(step)
            report["error"] = "%s: %s" % (_step_text(step), _describe_error(exc))
            break
    if report["ok"]:
        return report
    gi_map = {}
    for ran, undo in reversed(executor.done):
        try:
            report["rolled_back"].append(executor.run_undo(undo, gi_map))
        except Exception as exc:  # keep undoing what can be undone, then report
            report["rollback_failed"].append(dict(undo, error=_describe_error(exc), undoing=_step_text(ran)))
    return report


def _describe_error(exc):
    if isinstance(exc, MigRunError):
        return exc.msg
    code = error_code(exc)
    message = error_text(exc)
    return "%s (NVML error %s)" % (message, code) if code is not None else message


def set_mig_mode(nvml, gpu, enabled):
    """nvmlDeviceSetMigMode; returns (current, pending, activation_status)."""
    dev = Device(nvml, gpu["index"])
    wanted = _const(nvml, "NVML_DEVICE_MIG_ENABLE" if enabled else "NVML_DEVICE_MIG_DISABLE", 1 if enabled else 0)
    status = dev.call("nvmlDeviceSetMigMode", dev.handle, wanted)
    mode = dev.call("nvmlDeviceGetMigMode", dev.handle)
    return bool(mode[0]), bool(mode[1]), int(status) if status is not None else SUCCESS


# ------------------------------------------------------------------------------------------
# Stopping processes (force)
# ------------------------------------------------------------------------------------------


def _proc_name(pid, proc_root="/proc"):
    """Short name of a live process, None when it does not exist (or is a zombie)."""
    base = os.path.join(proc_root, str(pid))
    try:
        with open(os.path.join(base, "stat")) as handle:
            stat = handle.read()
    except (IOError, OSError):
        return None
    after = stat.rsplit(")", 1)[-1].split()
    if after and after[0] in ("Z", "X"):
        return None
    names = []
    try:
        with open(os.path.join(base, "comm")) as handle:
            names.append(handle.read().strip())
    except (IOError, OSError):
        pass
    try:
        with open(os.path.join(base, "cmdline"), "rb") as handle:
            first = handle.read().split(b"\0")[0].decode("utf-8", "replace")
        if first:
            names.append(os.path.basename(first))
    except (IOError, OSError):
        pass
    return names


def check_signalable(procs):
    """Problems that forbid signalling ``procs`` (each {pid, name}); empty list when all fine.

    A PID is signalled only when a live process with that PID exists here and its name matches
    the one NVML reports, so a PID that was reused (or one from another PID namespace) is
    never killed by mistake.
    """
    problems = []
    for proc in procs:
        names = _proc_name(proc["pid"])
        if names is None:
            problems.append("pid %d (%s) is not a live process on this host" % (proc["pid"], proc.get("name") or "?"))
            continue
        wanted = os.path.basename(proc.get("name") or "")
        if wanted and not any(n == wanted or (len(n) == 15 and wanted.startswith(n)) for n in names):
            problems.append(
                "pid %d is %s here but NVML names it %s: not signalling it"
                % (proc["pid"], "/".join(sorted(set(names))) or "?", wanted)
            )
    return problems


def terminate(procs, still_running, timeout, sleep=time.sleep, clock=time.monotonic):
    """SIGTERM, wait up to ``timeout`` / 2 for NVML to stop listing them, then SIGKILL.

    ``still_running()`` returns the PIDs NVML still lists. Returns the PIDs left (empty: done).
    """
    pids = sorted({p["pid"] for p in procs})
    for sig, share in ((signal.SIGTERM, 0.5), (signal.SIGKILL, 0.5)):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except OSError:
                pass
        deadline = clock() + timeout * share
        while True:
            left = sorted(set(still_running()) & set(pids))
            if not left or clock() >= deadline:
                break
            sleep(0.2)
        pids = left
        if not pids:
            return []
    return pids


# ------------------------------------------------------------------------------------------
# The whole run
# ------------------------------------------------------------------------------------------


def select_gpus(gpus, selectors, device_filter):
    """(selected GPU records, explicitly named indices); raises MigRunError naming the option."""
    selectors = list(selectors or ["all"])
    chosen = []
    explicit = set()
    for selector in selectors:
        value = str(selector).strip()
        if value.lower() == "all":
            chosen.extend(g for g in gpus)
            continue
        if value.isdigit():
            match = [g for g in gpus if g["index"] == int(value)]
        else:
            match = [g for g in gpus if g.get("uuid") and g["uuid"].lower() == value.lower()]
        if not match:
            raise MigRunError(
                "gpus: %r matches no GPU on this host; allowed: all, an index (%s) or a GPU UUID (%s)"
                % (
                    selector,
                    ", ".join(str(g["index"]) for g in gpus) or "none",
                    ", ".join(g["uuid"] for g in gpus if g.get("uuid")) or "none",
                )
            )
        explicit.update(g["index"] for g in match)
        chosen.extend(match)
    seen = set()
    result = []
    for gpu in sorted(chosen, key=lambda g: g["index"]):
        if gpu["index"] not in seen:
            seen.add(gpu["index"])
            result.append(gpu)
    if device_filter:
        filters = []
        for item in device_filter:
            try:
                filters.append(parse_pci_device_id(str(item).split(":", 1)[0]))
            except ValueError as exc:
                raise MigRunError("device_filter: %s" % exc) from exc
        # A lost GPU's device id is unknown: it stays selected, so the caller hears about it.
        result = [g for g in result if g.get("lost") or g.get("pci_device_id") in filters]
        if not result:
            raise MigRunError(
                "device_filter: %s matches none of the selected GPUs; they are %s"
                % (
                    ", ".join(str(f) for f in device_filter),
                    ", ".join("%d: 0x%08X" % (g["index"], g["pci_device_id"]) for g in gpus if g.get("pci_device_id")),
                )
            )
    return result, explicit


def _busy_message(gpu, plan):
    parts = []
    for entry in plan.busy_destroyed:
        inst = next((i for i in gpu["instances"] if i["gi_id"] == entry["gi_id"]), {})
        pids = inst.get("pids") or []
        names = {p["pid"]: p.get("name") for p in gpu["processes"]}
        what = "compute instances of" if entry.get("compute_instances_only") else "GPU instance"
        parts.append(
            "%s %s at placement start %d size %s (gi %d) has running processes: %s"
            % (
                what,
                entry["profile"],
                entry["start"],
                inst.get("size", "?"),
                entry["gi_id"],
                ", ".join("pid %d (%s)" % (pid, names.get(pid) or "?") for pid in pids),
            )
        )
    return "GPU %d (%s): %s" % (gpu["index"], gpu.get("uuid"), "; ".join(parts))


def desired_states(gpus, explicit, params, config=None):
    """Desired {index: {"mig_enabled": bool, "layout": dict|None, "reason": str}} per selected GPU."""
    wanted = {}
    if params.get("config_file"):
        rows = [
            {
                "index": g["index"],
                "name": g.get("name"),
                "pci_device_id": g["pci_device_id"],
                "pci_subsystem_id": g.get("pci_subsystem_id"),
                "mig_capable": g["mig_capable"],
            }
            for g in gpus
            if not g.get("lost")
        ]
        try:
            resolved = mig_plan.resolve_mig_config(config, params["config_name"], rows)
        except mig_plan.MigLayoutError as exc:
            raise MigRunError(
                "config_file %s, config_name %s: %s" % (params["config_file"], params["config_name"], exc)
            ) from exc
        for gpu in gpus:
            if gpu.get("lost"):
                continue
            state = resolved[gpu["index"]]
            if state["status"] == "configure":
                wanted[gpu["index"]] = {
                    "mig_enabled": state["mig_enabled"],
                    "layout": state["layout"],
                    "reason": state["reason"],
                }
            else:
                wanted[gpu["index"]] = {"mig_enabled": None, "layout": None, "reason": state["reason"]}
        return wanted
    for gpu in gpus:
        if gpu.get("lost"):
            continue
        if not gpu["mig_capable"]:
            if gpu["index"] in explicit and params["mig_enabled"]:
                raise MigRunError(
                    "gpus: GPU %d (%s) cannot do MIG; select MIG-capable GPUs (or 'all', which skips it)"
                    % (gpu["index"], gpu.get("name"))
                )
            wanted[gpu["index"]] = {"mig_enabled": None, "layout": None, "reason": "GPU cannot do MIG"}
            continue
        layout = params.get("layout") if params["mig_enabled"] else {}
        wanted[gpu["index"]] = {
            "mig_enabled": bool(params["mig_enabled"]),
            "layout": layout if layout is not None else None,
            "reason": "layout" if params["mig_enabled"] else "mig_enabled: false",
        }
    return wanted


def _plan_for(gpu, want, driver_version, what):
    """MigPlan for one GPU, or None when its layout is left alone."""
    model = model_for(gpu)
    layout = want["layout"]
    if layout is None:
        return None, model
    if model is None:
        raise MigRunError(
            "GPU %d (%s): MIG profiles unknown: not in the catalog and NVML reports none%s"
            % (gpu["index"], gpu.get("name"), " (enable MIG first)" if not gpu["mig"]["current"] else "")
        )
    live = live_for_plan(gpu) if gpu["mig"]["current"] else []
    try:
        plan = mig_plan.plan_changes(gpu["name"], live, layout, model=model, driver_version=driver_version)
    except mig_plan.MigLayoutError as exc:
        raise MigRunError(
            "%s: GPU %d (%s): %s"
            % (
                what,
                gpu["index"],
                gpu.get("name"),
                str(exc).replace("desired_layout: ", "").replace("desired_layout", what),
            )
        ) from exc
    return plan, model


def plan_entry(gpu, plan, mode_change):
    entry = {
        "index": gpu["index"],
        "uuid": gpu.get("uuid"),
        "name": gpu.get("name"),
        "summary": plan.summary if plan is not None else "layout left alone",
        "keep": plan.keep if plan is not None else [],
        "destroy": plan.destroy if plan is not None else [],
        "create": plan.create if plan is not None else [],
        "steps": plan.steps if plan is not None else [],
        "busy_destroyed": plan.busy_destroyed if plan is not None else [],
        "mode_change": mode_change,
    }
    if mode_change:
        entry["summary"] = "MIG %s%s; %s" % (
            "on" if mode_change["to"] else "off",
            " (already pending: needs a GPU reset)" if mode_change["pending"] == mode_change["to"] else "",
            entry["summary"],
        )
    return entry


class Session:
    """nvmlInit / nvmlShutdown around a block."""

    def __init__(self, nvml=None):
        self.nvml = nvml

    def __enter__(self):
        if self.nvml is None:
            self.nvml, reason = load_bindings()
            if self.nvml is None:
                raise MigRunError(reason)
        try:
            self.nvml.nvmlInit()
        except Exception as exc:
            raise MigRunError("NVML: %s" % init_reason(exc)) from exc
        return self.nvml

    def __exit__(self, *exc_info):
        try:
            self.nvml.nvmlShutdown()
        except Exception:
            pass
        return False


def read_all(nvml):
    try:
        count = int(nvml.nvmlDeviceGetCount())
    except Exception as exc:
        raise MigRunError("NVML: nvmlDeviceGetCount failed: %s" % error_text(exc)) from exc
    gpus = []
    for index in range(count):
        try:
            gpus.append(read_gpu(nvml, index))
        except GpuLost as exc:
            gpus.append({"index": index, "lost": True, "error": str(exc), "uuid": None, "name": None, "mig": None})
    return gpus


def converge(
    params: Mapping[str, Any],
    check_mode: bool = False,
    nvml: Any = None,
    reset_gpu: Optional[Callable[[Dict[str, Any]], Optional[str]]] = None,
    config: Any = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Dict[str, Any]:
    """One mig_partition run. Returns the module result; raises MigRunError with a result.

    params: gpus, device_filter, layout, config_file (already parsed into ``config``),
    config_name, mig_enabled, reset_policy, force, force_timeout.
    reset_gpu(gpu) resets one GPU and returns None, or an error text.
    """
    result = {
        "changed": False,
        "reset_required": False,
        "reboot_required": False,
        "plan": [],
        "gpus": [],
        "failed_gpus": [],
        "apply": [],
        "diff": {"before": "", "after": ""},
        "msg": "",
    }
    with Session(nvml) as lib:
        driver_version = None
        try:
            driver_version = text(lib.nvmlSystemGetDriverVersion())
        except Exception:
            driver_version = None
        result["driver_version"] = driver_version
        gpus = read_all(lib)
        selected, explicit = select_gpus(gpus, params.get("gpus"), params.get("device_filter"))
        wanted = desired_states(selected, explicit, params, config)
        what = "layout" if params.get("layout") is not None else "config %s" % params.get("config_name")

        # 1. Plan every GPU before touching any.
        plans = {}
        for gpu in selected:
            if gpu.get("lost"):
                continue
            want = wanted[gpu["index"]]
            if want["mig_enabled"] is None:
                plans[gpu["index"]] = (None, None)
                continue
            mode_change = None
            current = gpu["mig"]["current"]
            if want["mig_enabled"] != current or want["mig_enabled"] != gpu["mig"]["pending"]:
                mode_change = {"from": current, "pending": gpu["mig"]["pending"], "to": want["mig_enabled"]}
            plan = None
            if want["mig_enabled"] or current:
                plan, _unused = _plan_for(gpu, want, driver_version, what)
            plans[gpu["index"]] = (plan, mode_change)

        # 2. Busy instances: refuse (naming GPU, instance, PIDs) unless forced.
        busy = [(g, plans[g["index"]][0]) for g in selected if not g.get("lost") and plans[g["index"]][0] is not None]
        busy = [(g, p) for g, p in busy if p.busy_destroyed]
        if busy and not params.get("force"):
            raise MigRunError(
                "refusing to destroy MIG instances with running processes (set force: true to stop them, "
                "or drain the node first): " + " | ".join(_busy_message(g, p) for g, p in busy)
            )

        for gpu in selected:
            plan, mode_change = plans.get(gpu["index"], (None, None))
            if gpu.get("lost"):
                result["plan"].append(
                    {"index": gpu["index"], "uuid": None, "name": None, "summary": gpu["error"], "lost": True}
                )
                continue
            result["plan"].append(plan_entry(gpu, plan, mode_change))
        result["diff"]["before"] = "".join(layout_text(g) for g in selected if not g.get("lost"))
        would_change = any(
            _would_change(g, params, *plans.get(g["index"], (None, None))) for g in selected if not g.get("lost")
        )

        if check_mode:
            result["changed"] = would_change
            for gpu in selected:
                if gpu.get("lost"):
                    continue
                plan, mode_change = plans[gpu["index"]]
                result["gpus"].append(public_gpu(gpu))
                if mode_change and mode_change["to"] != mode_change["from"] and gpu["processes"]:
                    # Setting the mode resets an idle GPU at once; with processes it stays pending.
                    _mark_pending(result, gpu, params, would_apply=True)
            result["diff"]["after"] = _predicted_after(selected, plans)
            _finish(result, selected)
            return result

        # 3. Apply, GPU by GPU; stop at the first GPU that fails (after rolling it back).
        stopped = None
        for gpu in selected:
            if gpu.get("lost"):
                continue
            plan, mode_change = plans[gpu["index"]]
            report = {"index": gpu["index"], "uuid": gpu["uuid"], "ok": True}
            try:
                outcome = _apply_gpu(
                    lib, gpu, (plan, mode_change, wanted[gpu["index"]], driver_version), params, reset_gpu, sleep
                )
            except GpuLost as exc:
                outcome = {"ok": False, "changed": False, "error": str(exc)}
            report.update(outcome)
            result["apply"].append(report)
            result["changed"] = result["changed"] or report.get("changed", False)
            if not report["ok"]:
                stopped = report
                break
        final = read_all(lib)
        by_index = {g["index"]: g for g in final}
        result["gpus"] = [public_gpu(by_index.get(g["index"], g)) for g in selected]
        result["diff"]["after"] = "".join(
            layout_text(by_index[g["index"]]) for g in selected if not by_index[g["index"]].get("lost")
        )
        for gpu in selected:
            fresh = by_index.get(gpu["index"])
            if (
                fresh
                and not fresh.get("lost")
                and fresh["mig_capable"]
                and fresh["mig"]["current"] != fresh["mig"]["pending"]
            ):
                _mark_pending(result, fresh, params, would_apply=False)
        _finish(result, selected)
        if stopped is not None:
            done = [r["index"] for r in result["apply"] if r["ok"]]
            left = [
                g["index"]
                for g in selected
                if not g.get("lost") and g["index"] not in done and g["index"] != stopped["index"]
            ]
            msg = "GPU %d (%s): %s" % (stopped["index"], stopped["uuid"], stopped.get("error"))
            if stopped.get("rollback_failed"):
                msg += "; ROLLBACK FAILED, GPU left as: %s" % layout_text(by_index[stopped["index"]]).strip()
            elif stopped.get("rolled_back") is not None:
                msg += "; rolled back to the previous layout (%d step(s) undone)" % len(stopped.get("rolled_back", []))
            msg += "; GPUs done before it: %s; not touched: %s" % (done or "none", left or "none")
            result["msg"] = msg
            raise MigRunError(msg, result)
        return result


def _would_change(gpu, params, plan, mode_change):
    if mode_change is None:
        return plan is not None and plan.changed
    if mode_change["pending"] != mode_change["to"]:
        return True  # nvmlDeviceSetMigMode
    # Already pending: only a reset (if_idle, nothing running) would change something.
    return params.get("reset_policy") == "if_idle" and not gpu["processes"]


def _mark_pending(result, gpu, params, would_apply):
    result["reset_required"] = True
    if gpu.get("architecture") is not None and int(gpu["architecture"]) <= ARCH_AMPERE:
        result["reboot_required"] = True
    note = result.setdefault("pending", [])
    note.append(gpu["index"])


def _predicted_after(selected, plans):
    lines = []
    for gpu in selected:
        if gpu.get("lost"):
            continue
        plan, mode_change = plans[gpu["index"]]
        if plan is None and mode_change is None:
            lines.append(layout_text(gpu))
            continue
        enabled = mode_change["to"] if mode_change else gpu["mig"]["current"]
        head = "GPU %s %s (%s): MIG %s" % (gpu["index"], gpu.get("name"), gpu.get("uuid"), "on" if enabled else "off")
        body = ["  %s" % item for item in (plan.after if plan is not None else [])]
        lines.append("\n".join([head] + body) + "\n")
    return "".join(lines)


def _finish(result, selected):
    lost = [g for g in selected if g.get("lost")]
    result["failed_gpus"] = [{"index": g["index"], "error": g["error"]} for g in lost]
    changed_gpus = [r["index"] for r in result["apply"] if r.get("changed")]
    parts = []
    if result["apply"] or not result["plan"]:
        parts.append("changed GPUs: %s" % (changed_gpus or "none"))
    else:
        parts.append(
            "would change: %s"
            % ([p["index"] for p in result["plan"] if p.get("steps") or p.get("mode_change")] or "none")
        )
    if result.get("pending"):
        parts.append("MIG mode change pending on GPUs %s (reset required)" % result["pending"])
    if lost:
        parts.append("LOST: " + "; ".join(g["error"] for g in lost))
    result["msg"] = "; ".join(parts)


def _apply_gpu(nvml, gpu, planned, params, reset_gpu, sleep):
    """Mode change, then the layout, on one GPU. Returns the GPU's apply report."""
    plan, mode_change, want, driver_version = planned
    report = {"ok": True, "changed": False, "steps": [], "mode": None}
    if mode_change is None and (plan is None or not plan.changed):
        return report
    enabled = mode_change["to"] if mode_change else gpu["mig"]["current"]
    if plan is not None and plan.busy_destroyed:
        _stop_busy(nvml, gpu, plan, params, sleep)
    if enabled:
        if mode_change:
            current = gpu["mig"]["current"]
            if mode_change["pending"] != mode_change["to"]:
                current, pending, status = set_mig_mode(nvml, gpu, True)
                report["changed"] = True
                report["mode"] = {"current": current, "pending": pending, "status": status}
            if not current and params.get("reset_policy") == "if_idle":
                current = _try_reset(nvml, gpu, reset_gpu, report)
            if not current:
                report["note"] = "MIG enable pending: instances are created once the mode is current"
                return report
            gpu = read_gpu(nvml, gpu["index"])
            plan, _unused = _plan_for(gpu, want, driver_version, "layout")
        if plan is None or not plan.changed:
            return report
        outcome = apply_plan(nvml, gpu, plan.steps)
        report["steps"] = outcome["ran"]
        report["changed"] = report["changed"] or bool(outcome["ran"]) or not outcome["ok"]
        if not outcome["ok"]:
            report.update(
                ok=False, error=outcome["error"], failed_step=outcome["failed"], rolled_back=outcome["rolled_back"]
            )
            if outcome["rollback_failed"]:
                report["rollback_failed"] = outcome["rollback_failed"]
        return report
    # Disable: destroy every instance, then the mode.
    if plan is not None and plan.changed:
        outcome = apply_plan(nvml, gpu, plan.steps)
        report["steps"] = outcome["ran"]
        report["changed"] = bool(outcome["ran"])
        if not outcome["ok"]:
            report.update(
                ok=False, error=outcome["error"], failed_step=outcome["failed"], rolled_back=outcome["rolled_back"]
            )
            if outcome["rollback_failed"]:
                report["rollback_failed"] = outcome["rollback_failed"]
            return report
    if mode_change:
        current = gpu["mig"]["current"]
        if mode_change["pending"] != mode_change["to"]:
            current, pending, status = set_mig_mode(nvml, gpu, False)
            report["changed"] = True
            report["mode"] = {"current": current, "pending": pending, "status": status}
        if current and params.get("reset_policy") == "if_idle":
            _try_reset(nvml, gpu, reset_gpu, report)
    return report


def _try_reset(nvml, gpu, reset_gpu, report):
    """reset_policy if_idle: reset when NVML lists no process on the GPU. Returns MIG current."""
    fresh = read_gpu(nvml, gpu["index"])
    if fresh["processes"]:
        report["reset"] = "skipped: processes on the GPU: %s" % ", ".join(str(p["pid"]) for p in fresh["processes"])
        return fresh["mig"]["current"]
    if reset_gpu is None:
        report["reset"] = "skipped: no way to reset GPUs here"
        return fresh["mig"]["current"]
    # Our own NVML session would hold the GPU open and block the reset: close it meanwhile.
    nvml.nvmlShutdown()
    try:
        error = reset_gpu(fresh)
    finally:
        nvml.nvmlInit()
    report["reset"] = "failed: %s" % error if error else "done"
    report["changed"] = report["changed"] or not error
    fresh = read_gpu(nvml, gpu["index"])
    return fresh["mig"]["current"]


def _stop_busy(nvml, gpu, plan, params, sleep):
    """force: stop the processes on instances the plan destroys; raise when they stay."""
    busy_ids = {e["gi_id"] for e in plan.busy_destroyed}
    procs = [p for p in gpu["processes"] if p["gpu_instance_id"] in busy_ids]
    problems = check_signalable(procs)
    if problems:
        raise MigRunError(
            "GPU %d (%s): force: cannot stop the processes on the instances to destroy: %s"
            % (gpu["index"], gpu.get("uuid"), "; ".join(problems))
        )

    def still_running():
        fresh = read_gpu(nvml, gpu["index"])
        return [p["pid"] for p in fresh["processes"] if p["gpu_instance_id"] in busy_ids]

    left = terminate(procs, still_running, float(params.get("force_timeout") or 30), sleep=sleep)
    if left:
        raise MigRunError(
            "GPU %d (%s): force: processes %s still hold the instances after SIGTERM and SIGKILL; nothing destroyed"
            % (gpu["index"], gpu.get("uuid"), left)
        )


def gpu_indices(gpus: Sequence[Mapping[str, Any]]) -> List[int]:
    return [g["index"] for g in gpus]
