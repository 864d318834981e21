# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Live MIG state of the GPUs mig_partition works on, read with the strict NVML call policy,
and its shapes: the planner's live instances, the module's public per-GPU entry, the diff text,
and a comparable snapshot (what "changed" is measured against).

``read_identity`` reads only what selecting GPUs needs (handle, UUID, name, PCI ids);
``read_gpu`` reads everything planning needs, for the selected GPUs only.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

from ansible_collections.gpuops.cluster.plugins.module_utils.mig.catalog import find_model, model_from_nvml
from ansible_collections.gpuops.cluster.plugins.module_utils.nvml import mig_state
from ansible_collections.gpuops.cluster.plugins.module_utils.nvml.bindings import text
from ansible_collections.gpuops.cluster.plugins.module_utils.nvml.device import Caller, GpuLost, NvmlCallError, ok
from ansible_collections.gpuops.cluster.plugins.module_utils.pci import normalize_bus_id

MAX_GPUS = 1024


def caller(nvml, index, uuid=None, trace=None):
    return Caller(nvml, gpu=index, strict=True, uuid=uuid, trace=trace)


def lost_record(index, error):
    return {"index": index, "lost": True, "error": str(error), "uuid": None, "name": None, "mig": None}


def read_identity(nvml, index, trace=None):
    """{index, uuid, name, bus_id, pci_device_id, pci_subsystem_id}; raises NvmlCallError / GpuLost."""
    call = caller(nvml, index, trace=trace)
    handle = call("nvmlDeviceGetHandleByIndex", index)
    uuid = text(call("nvmlDeviceGetUUID", handle))
    call.uuid = uuid
    name = text(call("nvmlDeviceGetName", handle))
    pci = call("nvmlDeviceGetPciInfo", handle)
    device_id = getattr(pci, "pciDeviceId", None)
    subsystem = getattr(pci, "pciSubSystemId", None)
    return {
        "index": index,
        "uuid": uuid,
        "name": name,
        "bus_id": normalize_bus_id(text(getattr(pci, "busId", None))),
        "pci_device_id": int(device_id) if isinstance(device_id, int) else None,
        "pci_subsystem_id": int(subsystem) if isinstance(subsystem, int) and subsystem else None,
    }


def read_identities(nvml, count, trace=None):
    """Identity of every GPU. A lost GPU becomes a lost record; a GPU whose identity cannot be
    read an ``unreadable`` one (an error only if the run selects it)."""
    gpus = []
    for index in range(count):
        try:
            gpus.append(read_identity(nvml, index, trace))
        except GpuLost as exc:
            gpus.append(lost_record(index, exc))
        except NvmlCallError as exc:
            gpus.append({"index": index, "unreadable": True, "error": str(exc), "uuid": None, "name": None})
    return gpus


def read_gpu(nvml, identity, trace=None):
    """Everything mig_partition needs about one GPU; raises NvmlCallError / GpuLost."""
    index = identity["index"]
    call = caller(nvml, index, identity.get("uuid"), trace)
    handle = call("nvmlDeviceGetHandleByIndex", index)
    gpu = dict(identity)
    gpu.update(
        {
            "architecture": None,
            "mig_capable": False,
            "mig": {"current": None, "pending": None},
            "profiles": {},
            "instances": [],
            "devices": [],
            "processes": [],
        }
    )
    arch = call("nvmlDeviceGetArchitecture", handle)
    gpu["architecture"] = int(arch) if ok(arch) else None
    mode = mig_state.read_mode(call, handle)
    handles = [handle]
    if mode["capable"]:
        gpu["mig_capable"] = True
        gpu["mig"] = {"current": mode["current"], "pending": mode["pending"]}
        memory = call("nvmlDeviceGetMemoryInfo", handle)
        memory_total = int(memory.total) if ok(memory) else None
        gpu["profiles"] = mig_state.read_gi_profiles(call, handle, memory_total, placements=True)
        if mode["current"]:
            gpu["instances"] = mig_state.read_instances(call, handle, gpu["profiles"])
            gpu["devices"], mig_handles = mig_state.read_devices(call, handle, gpu["instances"])
            handles += mig_handles
    records, _complete = mig_state.read_processes(call, handles)
    for record in records:
        name = call("nvmlSystemGetProcessName", record["pid"], optional=True)
        record["name"] = text(name) if ok(name) else None
        record.pop("used_memory_bytes", None)
    gpu["processes"] = records
    for instance in gpu["instances"]:
        instance["pids"] = sorted({p["pid"] for p in records if p["gpu_instance_id"] == instance["gi_id"]})
        for ci in instance["compute_instances"]:
            ci["pids"] = sorted(
                {
                    p["pid"]
                    for p in records
                    if p["gpu_instance_id"] == instance["gi_id"] and p["compute_instance_id"] == ci["ci_id"]
                }
            )
    return gpu


def model_for(gpu):
    """Catalog entry for the GPU, else one built from the device's own profile table."""
    model = find_model(gpu.get("name"), gpu.get("pci_device_id"))
    if model is not None:
        return model
    rows = [p for p in (gpu.get("profiles") or {}).values() if p["placements"]]
    if not rows:
        return None
    return model_from_nvml(gpu["name"], rows, [gpu["pci_device_id"]] if gpu.get("pci_device_id") else ())


def live_for_plan(gpu):
    """Live instances in plan_changes' shape, with busy flags from the processes."""
    return [
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
        for entry in gpu.get("instances", [])
    ]


def public_gpu(gpu):
    """The per-GPU entry of the module's ``gpus`` result."""
    if gpu.get("lost"):
        return {
            "index": gpu["index"],
            "uuid": gpu.get("uuid"),
            "name": gpu.get("name"),
            "mig": None,
            "instances": [],
            "devices": [],
            "lost": True,
            "error": gpu.get("error"),
        }
    entry = {
        "index": gpu["index"],
        "uuid": gpu.get("uuid"),
        "name": gpu.get("name"),
        "mig": dict(gpu.get("mig") or {"current": None, "pending": None}) if gpu.get("mig_capable", True) else None,
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
    if gpu.get("projected"):
        entry["projected"] = True
    return entry


def snapshot(gpu):
    """What counts for ``changed``: mode, instances (ids, placements, compute instances), MIG devices."""
    if gpu is None or gpu.get("lost"):
        return None
    return (
        bool((gpu.get("mig") or {}).get("current")),
        bool((gpu.get("mig") or {}).get("pending")),
        tuple(
            (
                i["gi_id"],
                i["profile"],
                i["start"],
                tuple((c["ci_id"], c["profile"], c["start"]) for c in i["compute_instances"]),
            )
            for i in gpu.get("instances", [])
        ),
        tuple(sorted(d.get("uuid") or "" for d in gpu.get("devices", []))),
    )


def layout_text(gpu):
    """Diff text of one GPU."""
    head = "GPU %s %s (%s): " % (gpu["index"], gpu.get("name") or "?", gpu.get("uuid") or "?")
    if gpu.get("lost"):
        return head + "LOST\n"
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


def project(gpu, ran_steps, mode=None):
    """The GPU as the steps that ran leave it (when reading it back failed): instances without
    the destroyed ones, plus the created ones with the ids NVML gave; MIG device UUIDs of new
    instances are unknown, so ``devices`` keeps only those of untouched compute instances."""
    state = {k: v for k, v in gpu.items() if k not in ("instances", "devices")}
    instances = {
        i["gi_id"]: dict(i, compute_instances=[dict(c) for c in i["compute_instances"]])
        for i in gpu.get("instances", [])
    }
    touched = set()
    for step in ran_steps:
        action = step["action"]
        if action == "destroy_ci":
            inst = instances.get(step["gi_id"])
            if inst is not None:
                inst["compute_instances"] = [c for c in inst["compute_instances"] if c["ci_id"] != step["ci_id"]]
            touched.add((step["gi_id"], step["ci_id"]))
        elif action == "destroy_gi":
            instances.pop(step["gi_id"], None)
        elif action == "create_gi":
            size = (gpu.get("profiles") or {}).get(step["profile"], {}).get("placements") or [{}]
            instances[step["gi_id"]] = {
                "gi_id": step["gi_id"],
                "profile": step["profile"],
                "profile_id": (gpu.get("profiles") or {}).get(step["profile"], {}).get("id"),
                "start": step["start"],
                "size": size[0].get("size"),
                "compute_instances": [],
                "pids": [],
            }
        elif action == "create_ci":
            inst = instances.get(step["gi_id"])
            if inst is not None:
                inst["compute_instances"].append(
                    {
                        "ci_id": step["ci_id"],
                        "profile": step.get("ci_profile", step["profile"]),
                        "start": step.get("ci_start", 0),
                        "size": None,
                        "pids": [],
                    }
                )
                inst["compute_instances"].sort(key=lambda c: c["ci_id"])
            touched.add((step["gi_id"], step["ci_id"]))
    state["instances"] = sorted(instances.values(), key=lambda e: (e["start"], e["gi_id"]))
    live = {(i["gi_id"], c["ci_id"]) for i in state["instances"] for c in i["compute_instances"]}
    state["devices"] = [
        dict(d)
        for d in gpu.get("devices", [])
        if (d["gpu_instance_id"], d["compute_instance_id"]) in live
        and (d["gpu_instance_id"], d["compute_instance_id"]) not in touched
    ]
    if mode is not None:
        state["mig"] = dict(mode)
    state["projected"] = True
    return state


def device_count(nvml, trace=None):
    call = Caller(nvml, strict=True, trace=trace)
    count = call("nvmlDeviceGetCount")
    if not isinstance(count, int) or isinstance(count, bool) or not 0 <= count <= MAX_GPUS:
        raise ValueError("nvmlDeviceGetCount returned %r, not a GPU count (0-%d)" % (count, MAX_GPUS))
    return count


def driver_version(nvml, trace=None):
    call = Caller(nvml, strict=True, trace=trace)
    return text(call("nvmlSystemGetDriverVersion"))
