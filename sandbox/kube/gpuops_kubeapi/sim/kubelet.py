"""Simulated kubelets (one per Node) and the pod garbage collector, without containers.

A Pod bound to a Ready node starts: startTime, pod and host IPs, qosClass, init containers
completed, containers running, conditions PodReadyToStartContainers / Initialized /
ContainersReady / Ready / PodScheduled. A readinessProbe's initialDelaySeconds delays Ready.
What the containers then do follows the pod's annotations (copied from templates, so a whole
Deployment can be marked), since nothing runs:

- `sandbox.gpuops.io/run-seconds: "N"`: the containers exit N seconds after starting (default:
  never for restartPolicy Always, 1 second for Never / OnFailure pods such as Jobs').
- `sandbox.gpuops.io/exit-code: "N"`: their exit code (default 0). Never: the pod ends
  Succeeded or Failed; OnFailure: a non-zero exit restarts them; Always: every exit restarts.
- `sandbox.gpuops.io/fault`: `CrashLoopBackOff` (exit at once, restarted with upstream's
  back-off, 10 s doubling to 5 min), `ImagePullBackOff` (ErrImagePull, then ImagePullBackOff;
  the pod stays Pending), `Unready` (running, readiness never passes).
- `sandbox.gpuops.io/stop-seconds: "N"`: how long containers take to stop once the pod is
  deleted (default 0); the deletion's grace period bounds it, as SIGKILL would.

Deleting a pod bound to a node is graceful while kubelets run (see api.Cluster._grace_period):
it stays Terminating until its containers stopped, then the kubelet removes it. Pods of a
node that is not Ready stay Pending, running ones turn Ready=False; pods bound to a node that
does not exist are deleted (pod garbage collection).

On nodes bound to an NVML simulator state, the kubelet's device manager (podresources.py)
assigns each admitted pod's containers the NVIDIA devices they request, keeps them until the
pod is terminated or gone, and writes the node's pod-resources List answer beside the state
file; a pod it cannot give its devices fails admission (UnexpectedAdmissionError).
"""

from __future__ import annotations

import time
from typing import Any

from ..store import ObjectKey
from . import podutil
from .podresources import ADMISSION_REASON, DeviceManager, host_dir
from .runner import NodesOfThePass, WorkController

PODS = ("", "pods")
NODES = ("", "nodes")
RUN_SECONDS = "sandbox.gpuops.io/run-seconds"
EXIT_CODE = "sandbox.gpuops.io/exit-code"
FAULT = "sandbox.gpuops.io/fault"
STOP_SECONDS = "sandbox.gpuops.io/stop-seconds"
FAULTS = ("CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "Unready")
MAX_BACKOFF = 300.0
PULL_RETRY = 2.0  # ErrImagePull turns into ImagePullBackOff after this many seconds


def stamp(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(epoch)))


def _number(annotations: dict[str, str], key: str, default: float | None) -> float | None:
    try:
        return float(annotations[key])
    except (KeyError, ValueError):
        return default


def qos_class(pod: dict[str, Any]) -> str:
    containers = (pod.get("spec") or {}).get("containers") or []
    requests_seen = False
    guaranteed = True
    for container in containers:
        resources = container.get("resources") or {}
        limits = resources.get("limits") or {}
        requests = resources.get("requests") or {}
        if limits or requests:
            requests_seen = True
        for resource in ("cpu", "memory"):
            if (
                resource not in limits
                or requests.get(resource, limits[resource]) != limits[resource]
            ):
                guaranteed = False
    if not requests_seen:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


class _Cycle:
    """When a container restarting with back-off runs: run i starts at starts[i] and ends
    `run` seconds later; the next one starts after min(base * 2**i, 300) seconds."""

    def __init__(self, start: float, run: float, base: float, moment: float):
        self.starts = [start]
        self.run = run
        while True:
            failures = len(self.starts)
            restart = self.starts[-1] + run + min(base * 2 ** (failures - 1), MAX_BACKOFF)
            if restart > moment or failures > 100:
                self.next_restart = restart
                break
            self.starts.append(restart)

    @property
    def restarts(self) -> int:
        return len(self.starts) - 1


def _ip(pod: dict[str, Any], node: dict[str, Any]) -> tuple[str, str]:
    index = sum(ord(c) for c in pod["metadata"]["name"]) % 250 + 2
    node_ip = next(
        (
            a["address"]
            for a in (node.get("status") or {}).get("addresses") or []
            if a.get("type") == "InternalIP"
        ),
        "10.0.0.1",
    )
    cidr = ((node.get("spec") or {}).get("podCIDR") or "10.244.0.0/24").split("/")[0]
    return node_ip, ".".join(cidr.split(".")[:3] + [str(index)])


def pod_status(
    pod: dict[str, Any], node: dict[str, Any], moment: float, base_backoff: float
) -> tuple[dict[str, Any], float | None]:
    """The status a kubelet reports for `pod` at `moment`, and when it next changes."""
    spec = pod.get("spec") or {}
    metadata = pod["metadata"]
    annotations = metadata.get("annotations") or {}
    old = pod.get("status") or {}
    start = podutil.parse_time(old.get("startTime")) or float(int(moment))
    policy = spec.get("restartPolicy") or "Always"
    fault = annotations.get(FAULT)
    run = _number(annotations, RUN_SECONDS, None if policy == "Always" else 1.0)
    exit_code = int(_number(annotations, EXIT_CODE, 0) or 0)
    containers = spec.get("containers") or []
    uid = metadata.get("uid", "")
    wake: list[float] = []
    node_ip, pod_ip = _ip(pod, node)
    statuses = []
    all_ready = True
    phase = "Running"
    for index, container in enumerate(containers):
        name = container.get("name")
        image = container.get("image", "")
        base = {
            "name": name,
            "image": image,
            "imageID": "",
            "containerID": f"containerd://{uid.replace('-', '')[:24]}{index:04d}",
            "lastState": {},
            "restartCount": 0,
        }
        if fault in ("ImagePullBackOff", "ErrImagePull"):
            reason = "ErrImagePull" if moment - start < PULL_RETRY else "ImagePullBackOff"
            if reason == "ErrImagePull":
                wake.append(start + PULL_RETRY)
                message = (
                    f'failed to pull and unpack image "{image}": failed to resolve reference '
                    f'"{image}": not found'
                )
            else:
                message = f'Back-off pulling image "{image}"'
            base.pop("containerID")
            statuses.append(
                dict(
                    base,
                    ready=False,
                    started=False,
                    state={"waiting": {"reason": reason, "message": message}},
                )
            )
            all_ready = False
            phase = "Pending"
            continue
        crash = fault == "CrashLoopBackOff"
        if crash or run is not None:
            duration = 0.0 if crash else float(run)
            code = (exit_code or 1) if crash else exit_code
            ends = policy == "Never" or (policy == "OnFailure" and code == 0)
            if ends:
                finished = start + duration
                if moment < finished:
                    wake.append(finished)
                    statuses.append(_running(base, start, container, moment, wake))
                    all_ready = all_ready and statuses[-1]["ready"]
                    continue
                statuses.append(
                    dict(
                        base,
                        ready=False,
                        started=False,
                        state={
                            "terminated": {
                                "exitCode": code,
                                "reason": "Completed" if code == 0 else "Error",
                                "startedAt": stamp(start),
                                "finishedAt": stamp(finished),
                                "containerID": base["containerID"],
                            }
                        },
                    )
                )
                all_ready = False
                continue
            cycle = _Cycle(start, duration, base_backoff, moment)
            current = cycle.starts[-1]
            base["restartCount"] = cycle.restarts
            if cycle.restarts:
                previous = cycle.starts[-2]
                base["lastState"] = {
                    "terminated": {
                        "exitCode": code,
                        "reason": "Completed" if code == 0 else "Error",
                        "startedAt": stamp(previous),
                        "finishedAt": stamp(previous + duration),
                        "containerID": base["containerID"],
                    }
                }
            wake.append(cycle.next_restart)
            if moment < current + duration:
                wake.append(current + duration)
                statuses.append(_running(base, current, container, moment, wake))
                all_ready = all_ready and statuses[-1]["ready"]
                continue
            delay = min(base_backoff * 2**cycle.restarts, MAX_BACKOFF)
            base["lastState"] = {
                "terminated": {
                    "exitCode": code,
                    "reason": "Completed" if code == 0 else "Error",
                    "startedAt": stamp(current),
                    "finishedAt": stamp(current + duration),
                    "containerID": base["containerID"],
                }
            }
            statuses.append(
                dict(
                    base,
                    ready=False,
                    started=False,
                    state={
                        "waiting": {
                            "reason": "CrashLoopBackOff",
                            "message": f"back-off {int(delay)}s restarting failed "
                            f"container={name} pod={metadata['name']}_"
                            f"{metadata.get('namespace')}({uid})",
                        }
                    },
                )
            )
            all_ready = False
            continue
        entry = _running(base, start, container, moment, wake)
        if fault == "Unready":
            entry["ready"] = False
        statuses.append(entry)
        all_ready = all_ready and entry["ready"]
    ready_times = [s.pop("_ready_at") for s in statuses if "_ready_at" in s]
    terminated = [s for s in statuses if "terminated" in s["state"]]
    if containers and len(terminated) == len(statuses):
        codes = [s["state"]["terminated"]["exitCode"] for s in terminated]
        phase = "Succeeded" if all(c == 0 for c in codes) else "Failed"
    stamp_start = stamp(start)
    not_ready = [s["name"] for s in statuses if not s["ready"]]
    conditions = [
        _condition("PodReadyToStartContainers", "True", stamp_start, old),
        _condition("Initialized", "True", stamp_start, old),
    ]
    if phase in ("Succeeded", "Failed"):
        finished = stamp(
            max(
                podutil.parse_time(s["state"]["terminated"]["finishedAt"]) or start
                for s in terminated
            )
        )
        conditions[0] = _condition("PodReadyToStartContainers", "False", finished, old)
        conditions += [
            _condition("Ready", "False", finished, old, "PodCompleted"),
            _condition("ContainersReady", "False", finished, old, "PodCompleted"),
        ]
    elif all_ready and containers:
        ready_at = stamp(max(ready_times + [start]))
        conditions += [
            _condition("Ready", "True", ready_at, old),
            _condition("ContainersReady", "True", ready_at, old),
        ]
    else:
        message = f"containers with unready status: [{' '.join(not_ready)}]"
        conditions += [
            _condition("Ready", "False", stamp_start, old, "ContainersNotReady", message),
            _condition("ContainersReady", "False", stamp_start, old, "ContainersNotReady", message),
        ]
    conditions.append(_condition("PodScheduled", "True", stamp_start, old))
    status = {
        "phase": phase,
        "conditions": conditions,
        "hostIP": node_ip,
        "hostIPs": [{"ip": node_ip}],
        "podIP": pod_ip,
        "podIPs": [{"ip": pod_ip}],
        "startTime": stamp_start,
        "containerStatuses": statuses,
        "qosClass": qos_class(pod),
    }
    init = spec.get("initContainers") or []
    if init:
        status["initContainerStatuses"] = [
            {
                "name": c.get("name"),
                "image": c.get("image", ""),
                "imageID": "",
                "ready": True,
                "restartCount": 0,
                "started": False,
                "lastState": {},
                "state": {
                    "terminated": {
                        "exitCode": 0,
                        "reason": "Completed",
                        "startedAt": stamp_start,
                        "finishedAt": stamp_start,
                    }
                },
            }
            for c in init
        ]
    future = [w for w in wake if w > moment]
    return status, (min(future) if future else None)


def _running(base, started, container, moment, wake) -> dict[str, Any]:
    delay = float(((container.get("readinessProbe") or {}).get("initialDelaySeconds")) or 0)
    ready_at = started + delay
    ready = moment >= ready_at
    if not ready:
        wake.append(ready_at)
    entry = dict(
        base,
        ready=ready,
        started=True,
        state={"running": {"startedAt": stamp(started)}},
    )
    entry["_ready_at"] = ready_at
    return entry


def _condition(kind, status, when, old, reason=None, message=None):
    entry: dict[str, Any] = {"type": kind, "status": status, "lastProbeTime": None}
    previous = next((c for c in (old.get("conditions") or []) if c.get("type") == kind), None)
    if previous is not None and previous.get("status") == status:
        entry["lastTransitionTime"] = previous.get("lastTransitionTime") or when
    else:
        entry["lastTransitionTime"] = when
    if reason:
        entry["reason"] = reason
    if message:
        entry["message"] = message
    return entry


class Kubelet(NodesOfThePass, WorkController):
    name = "kubelet"
    primary = PODS

    def __init__(self, cluster, options) -> None:
        super().__init__(cluster, options)
        cluster.kubelets = True  # pods bound to nodes now terminate gracefully
        self._stopping: dict[str, float] = {}  # pod uid -> when its deletion was seen
        self.backoff = float(options.get("pod_failure_backoff", 10.0))
        self.devices = DeviceManager()
        self._restored = False

    def reconcile(self) -> None:
        if not self._restored:
            # The device manager's checkpoint: keep what active pods hold, drop the rest.
            self._restored = True
            nodes = [
                n for n in self.client.list_cached("", "v1", "nodes") if host_dir(n) is not None
            ]
            if nodes:
                names = {n["metadata"]["name"] for n in nodes}
                with self.cluster.lock:
                    active = {
                        r.decode()["metadata"].get("uid", "")
                        for r in self.cluster.store.scan(PODS, None, None)
                        if r.fields.get("spec.nodeName") in names
                        and r.fields.get("status.phase") not in ("Succeeded", "Failed")
                    }
                self.devices.restore(nodes, active)
        super().reconcile()

    def keys_for(self, type_key, key, event, before):
        if type_key == PODS:
            return (key,)
        if type_key == NODES:
            with self.cluster.lock:
                found = self.cluster.store.scan_indexed(PODS, "spec.nodeName", key[1], None, None)
                return [record.key for record in found or ()]
        return ()

    def all_keys(self):
        with self.cluster.lock:
            return [
                r.key
                for r in self.cluster.store.scan(PODS, None, None)
                if r.fields.get("spec.nodeName")
                and r.fields.get("status.phase") not in ("Succeeded", "Failed")
            ]

    def sync(self, key: ObjectKey) -> None:
        record = self.client.record(PODS, key)
        if record is None:
            self.devices.release_named(key[0], key[1])
            return
        node_name = record.fields.get("spec.nodeName")
        if not node_name:
            return
        pod = record.decode()
        metadata = pod["metadata"]
        node = self._node(node_name)
        moment = time.time()
        if node is None:
            # The pod garbage collector: pods bound to a node that is gone are deleted.
            self.devices.release(metadata.get("uid", ""))
            self.client.delete("", "v1", "pods", key[0], key[1], grace=0, uid=metadata.get("uid"))
            return
        if metadata.get("deletionTimestamp"):
            return self._terminate(pod, key, moment)
        phase = (pod.get("status") or {}).get("phase")
        if phase in ("Succeeded", "Failed"):
            self.devices.release(metadata.get("uid", ""))
            return
        if not podutil.node_ready(node):
            if phase == "Running" and podutil.is_ready(pod):
                self._mark_not_ready(pod)
            return
        refused = self.devices.admit(pod, node)
        if refused is not None:
            pod["status"] = dict(
                pod.get("status") or {},
                phase="Failed",
                reason=ADMISSION_REASON,
                message=f"Pod was rejected: {refused}",
                startTime=stamp(moment),
            )
            self.client.update("", "v1", "pods", pod, "status")
            return
        status, wake = pod_status(pod, node, moment, self.backoff)
        if status["phase"] in ("Succeeded", "Failed"):
            self.devices.release(metadata.get("uid", ""))
        if wake is not None:
            self.requeue(key, wake - moment + 0.05)
        if status != (pod.get("status") or {}):
            pod["status"] = status
            self.client.update("", "v1", "pods", pod, "status")

    def _terminate(self, pod: dict[str, Any], key: ObjectKey, moment: float) -> None:
        """Stop the containers (stop-seconds, at most the grace period, counted from when this
        kubelet saw the deletion), then remove the pod."""
        metadata = pod["metadata"]
        uid = metadata.get("uid", "")
        seen = self._stopping.setdefault(uid, moment)
        grace = float(metadata.get("deletionGracePeriodSeconds") or 0)
        stop = _number(metadata.get("annotations") or {}, STOP_SECONDS, 0.0) or 0.0
        done = seen + min(grace, stop)
        if moment < done:
            self.requeue(key, done - moment + 0.05)
            return
        self._stopping.pop(uid, None)
        self.devices.release(uid)
        if metadata.get("deletionGracePeriodSeconds") == 0 and metadata.get("finalizers"):
            return  # already removed by us; finalizers keep it
        self.client.delete("", "v1", "pods", key[0], key[1], grace=0, uid=uid)

    def _mark_not_ready(self, pod: dict[str, Any]) -> None:
        status = dict(pod.get("status") or {})
        status["conditions"] = podutil.set_condition(
            status.get("conditions") or [], "Ready", "False", "NodeNotReady", "", stamp=None
        )
        pod["status"] = status
        self.client.update("", "v1", "pods", pod, "status")
