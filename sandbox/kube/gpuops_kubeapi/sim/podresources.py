"""The kubelet's device manager for sandbox nodes, and its pod-resources List answer.

Upstream (pkg/kubelet/cm/devicemanager): when the kubelet admits a pod, each container gets,
for every extended resource a device plugin serves that it requests (limits; requests equal
them), that many of the plugin's advertised healthy device IDs not already in use on the node;
the assignment is checkpointed (`kubelet_internal_checkpoint`) so it survives kubelet restarts
and stays the same for the pod's lifetime, and it is released once the pod is terminated or
gone. Too few free devices fail the pod's admission (phase Failed, reason
UnexpectedAdmissionError). The PodResourcesLister `List` answer lists the node's active pods,
their containers and each container's devices `{resource_name, device_ids}`.

Here, for Nodes bound to an NVML simulator state (annotation `sandbox.gpuops.io/nvml-state`):

- Advertised IDs, as the NVIDIA device plugin names them, for each NVIDIA resource in the node's
  allocatable (what the gpu-operator/device-plugin pass published): `nvidia.com/gpu` - the
  healthy GPUs' UUIDs (MIG strategy single on MIG-enabled GPUs: their MIG devices' UUIDs);
  `nvidia.com/mig-<profile>` - the UUIDs of that profile's MIG devices; when time-slicing/MPS
  replicates a resource (its allocatable is a multiple of the devices), `<UUID>::<n>` for n in
  0..replicas-1, handed out least-shared GPU first, as the plugin's preferred allocation
  spreads replicas; the `.shared` renames map to the same devices. Resources renamed to
  other names are not assigned.
- The checkpoint is `<host dir>/kubelet_internal_checkpoint` (upstream's layout, `Data.
  PodDeviceEntries` with `PodUID`, `ContainerName`, `ResourceName`, `DeviceIDs` by NUMA node,
  plus the pod's namespace and name, which upstream takes from its pod manager) and the List
  answer `<host dir>/pod-resources.json` (`{"pod_resources": [{name, namespace, containers:
  [{name, devices: [{resource_name, device_ids}]}]}]}`, proto field names, what
  gpuops_metrics' exporter reads); both are written atomically, and only when they change.
  The host dir is the folder of the node's NVML state file.

Not simulated: init containers' devices (reused by app containers upstream), NUMA topology
(every device is on NUMA node -1), CPU and memory assignments in the List answer.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import zlib
from typing import Any

from .fleet import FIXTURE_ANNOTATION, STATE_ANNOTATION
from .gpus import read_host

GPU = "nvidia.com/gpu"
MIG_PREFIX = "nvidia.com/mig-"
SHARED = ".shared"
CHECKPOINT = "kubelet_internal_checkpoint"
LISTING = "pod-resources.json"
ADMISSION_REASON = "UnexpectedAdmissionError"


def host_dir(node: dict[str, Any]) -> str | None:
    """The folder of a sandbox node's NVML state file (None: not a sandbox node)."""
    state = ((node.get("metadata") or {}).get("annotations") or {}).get(STATE_ANNOTATION)
    return os.path.dirname(os.path.abspath(state)) if state else None


def _nvidia(resource: str) -> bool:
    base = resource[: -len(SHARED)] if resource.endswith(SHARED) else resource
    return base == GPU or base.startswith(MIG_PREFIX)


def advertised(node: dict[str, Any], view: dict[str, Any] | None) -> dict[str, list[str]]:
    """Resource name -> the device IDs the device plugin advertises on `node`, in order."""
    allocatable = (node.get("status") or {}).get("allocatable") or {}
    labels = (node.get("metadata") or {}).get("labels") or {}
    gpus = [g for g in (view or {}).get("gpus") or [] if g.get("healthy") and g.get("uuid")]
    full = [g["uuid"] for g in gpus if not g["mig_enabled"]]
    migs = [(d["profile"], d["uuid"]) for g in gpus if g["mig_enabled"] for d in g["mig_devices"]]
    single = labels.get("nvidia.com/mig.strategy", "single") == "single"
    found: dict[str, list[str]] = {}
    for resource, quantity in allocatable.items():
        if not _nvidia(resource):
            continue
        try:
            count = int(str(quantity))
        except ValueError:
            continue
        base = resource[: -len(SHARED)] if resource.endswith(SHARED) else resource
        if base == GPU:
            ids = [uuid for _profile, uuid in migs] if single and migs and not full else full
        else:
            profile = base[len(MIG_PREFIX) :]
            ids = [uuid for name, uuid in migs if name == profile]
        if ids and count > len(ids):
            replicas = -(-count // len(ids))
            ids = [f"{uuid}::{n}" for uuid in ids for n in range(replicas)]
        found[resource] = ids[: max(count, 0)]
    return found


def requests(pod: dict[str, Any]) -> list[tuple[str, dict[str, int]]]:
    """[(container name, {NVIDIA resource: count})] of the pod's app containers."""
    result = []
    for container in (pod.get("spec") or {}).get("containers") or []:
        resources = container.get("resources") or {}
        wanted = dict(resources.get("requests") or {}, **(resources.get("limits") or {}))
        counts = {}
        for resource, quantity in sorted(wanted.items()):
            if _nvidia(resource):
                try:
                    number = int(str(quantity))
                except ValueError:
                    continue
                if number > 0:
                    counts[resource] = number
        result.append((str(container.get("name", "")), counts))
    return result


def _pick(free: list[str], used: set[str], number: int) -> list[str]:
    """`number` of the free IDs; replicas (`<UUID>::<n>`) of the least-shared GPUs first."""
    share: dict[str, int] = {}
    for device in used:
        share[device.split("::", 1)[0]] = share.get(device.split("::", 1)[0], 0) + 1
    chosen: list[str] = []
    pool = list(free)
    for _unused in range(number):
        best = min(pool, key=lambda d: (share.get(d.split("::", 1)[0], 0), pool.index(d)))
        pool.remove(best)
        chosen.append(best)
        physical = best.split("::", 1)[0]
        share[physical] = share.get(physical, 0) + 1
    return chosen


def _write_atomic(path: str, text: str) -> None:
    folder = os.path.dirname(path)
    handle, temporary = tempfile.mkstemp(prefix=".tmp-", dir=folder)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except OSError:
        return None


class DeviceManager:
    """Device assignments of the pods admitted on sandbox nodes, by pod UID."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        # uid -> {node, dir, namespace, name, containers: [{name, devices: [{resource_name,
        # device_ids}]}]}
        self._pods: dict[str, dict[str, Any]] = {}
        self._loaded: set[str] = set()

    # ------------------------------------------------------------------ persistence
    def _load(self, folder: str) -> None:
        if folder in self._loaded:
            return
        self._loaded.add(folder)
        text = _read(os.path.join(folder, CHECKPOINT))
        if not text:
            return
        try:
            doc = json.loads(text)
            data = doc["Data"]
            if zlib.crc32(json.dumps(data, sort_keys=True).encode()) != doc.get("Checksum"):
                return  # corrupt: start afresh, as the kubelet does
            entries = data.get("PodDeviceEntries") or []
        except (ValueError, KeyError, TypeError):
            return
        for entry in entries:
            uid = entry.get("PodUID")
            if not uid or uid in self._pods:
                continue
            pod = self._pods.setdefault(
                uid,
                {
                    "node": entry.get("NodeName", ""),
                    "dir": folder,
                    "namespace": entry.get("PodNamespace", ""),
                    "name": entry.get("PodName", ""),
                    "containers": [],
                },
            )
            if entry.get("ContainerName") is None:
                continue
            container = next(
                (c for c in pod["containers"] if c["name"] == entry["ContainerName"]), None
            )
            if container is None:
                container = {"name": entry["ContainerName"], "devices": []}
                pod["containers"].append(container)
            if entry.get("ResourceName"):
                ids = [i for ids in (entry.get("DeviceIDs") or {}).values() for i in ids]
                container["devices"].append(
                    {"resource_name": entry["ResourceName"], "device_ids": ids}
                )

    def _save(self, folder: str) -> None:
        pods = sorted(
            (p for p in self._pods.items() if p[1]["dir"] == folder),
            key=lambda item: (item[1]["namespace"], item[1]["name"], item[0]),
        )
        entries = []
        for uid, pod in pods:
            base = {
                "PodUID": uid,
                "PodNamespace": pod["namespace"],
                "PodName": pod["name"],
                "NodeName": pod["node"],
            }
            rows = [
                dict(
                    base,
                    ContainerName=c["name"],
                    ResourceName=d["resource_name"],
                    DeviceIDs={"-1": d["device_ids"]},
                )
                for c in pod["containers"]
                for d in c["devices"]
            ]
            rows += [
                dict(base, ContainerName=c["name"]) for c in pod["containers"] if not c["devices"]
            ]
            entries.extend(rows or [base])
        data = {"PodDeviceEntries": entries}
        checkpoint = {
            "Data": data,
            "Checksum": zlib.crc32(json.dumps(data, sort_keys=True).encode()),
        }
        listing = {
            "pod_resources": [
                {
                    "name": pod["name"],
                    "namespace": pod["namespace"],
                    "containers": [
                        dict(
                            {"name": c["name"]},
                            **({"devices": c["devices"]} if c["devices"] else {}),
                        )
                        for c in pod["containers"]
                    ],
                }
                for _uid, pod in pods
            ]
        }
        for name, doc in ((CHECKPOINT, checkpoint), (LISTING, listing)):
            path = os.path.join(folder, name)
            text = json.dumps(doc, indent=2, sort_keys=True) + "\n"
            if _read(path) != text and os.path.isdir(folder):
                _write_atomic(path, text)

    # ------------------------------------------------------------------ the kubelet's calls
    def admitted(self, uid: str) -> bool:
        with self._lock:
            return uid in self._pods

    def admit(self, pod: dict[str, Any], node: dict[str, Any]) -> str | None:
        """Assign the pod's devices on its sandbox node (kept if already assigned). Returns
        None, or the admission error when too few devices are free (nothing assigned)."""
        folder = host_dir(node)
        metadata = pod["metadata"]
        uid = metadata.get("uid", "")
        if folder is None or not uid:
            return None
        with self._lock:
            self._load(folder)
            if uid in self._pods:
                return None
            namespace, name = metadata.get("namespace", ""), metadata.get("name", "")
            for stale in [
                u
                for u, p in self._pods.items()
                if p["namespace"] == namespace and p["name"] == name
            ]:
                self.release(stale)  # an earlier pod of that name, gone before we saw it go
            node_name = node["metadata"]["name"]
            used = {
                device
                for other in self._pods.values()
                if other["node"] == node_name and other["dir"] == folder
                for container in other["containers"]
                for entry in container["devices"]
                for device in entry["device_ids"]
            }
            wanted = requests(pod)
            offered: dict[str, list[str]] | None = None
            containers = []
            for container_name, counts in wanted:
                devices = []
                for resource, number in counts.items():
                    if offered is None:
                        offered = advertised(node, _view(node))
                    free = [d for d in offered.get(resource, []) if d not in used]
                    if len(free) < number:
                        return (
                            f"Allocate failed due to requested number of devices unavailable "
                            f"for {resource}. Requested: {number}, Available: {len(free)}, "
                            f"which is unexpected"
                        )
                    chosen = _pick(free, used, number)
                    used.update(chosen)
                    devices.append({"resource_name": resource, "device_ids": chosen})
                containers.append({"name": container_name, "devices": devices})
            self._pods[uid] = {
                "node": node_name,
                "dir": folder,
                "namespace": namespace,
                "name": name,
                "containers": containers,
            }
            self._save(folder)
            return None

    def release(self, uid: str) -> None:
        with self._lock:
            pod = self._pods.pop(uid, None)
            if pod is not None:
                self._save(pod["dir"])

    def release_named(self, namespace: str, name: str) -> None:
        """The pod `namespace/name` is gone from the API (its UID unknown now)."""
        with self._lock:
            gone = [
                uid
                for uid, pod in self._pods.items()
                if pod["namespace"] == namespace and pod["name"] == name
            ]
            for uid in gone:
                self.release(uid)

    def restore(self, nodes: list[dict[str, Any]], active: set[str]) -> None:
        """After a (re)start: read the checkpoints of `nodes`, keep the pods still `active`
        (UIDs), and rewrite the files."""
        with self._lock:
            folders = {f for f in (host_dir(n) for n in nodes) if f}
            for folder in folders:
                self._load(folder)
            for uid in [u for u in self._pods if u not in active]:
                del self._pods[uid]
            for folder in folders:
                self._save(folder)

    def listing(self, uid: str) -> dict[str, Any] | None:
        with self._lock:
            pod = self._pods.get(uid)
            return json.loads(json.dumps(pod)) if pod else None


def _view(node: dict[str, Any]) -> dict[str, Any] | None:
    annotations = node["metadata"].get("annotations") or {}
    fixture = annotations.get(FIXTURE_ANNOTATION)
    if not fixture:
        return None
    try:
        return read_host(fixture, annotations.get(STATE_ANNOTATION))
    except (OSError, ValueError):
        return None
