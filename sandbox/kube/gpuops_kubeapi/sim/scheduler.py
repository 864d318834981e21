"""Simulated kube-scheduler and kubelets.

- A Pod with `spec.nodeName` (bound) on an existing Node is started: phase Running, podIP,
  startTime, containerStatuses running, conditions PodScheduled/Initialized/ContainersReady/
  Ready True.
- A Pod without `spec.nodeName` (and the default scheduler) is bound to a fitting node:
  Ready, not cordoned (`spec.unschedulable`), `nodeSelector` matched, NoSchedule/NoExecute
  taints tolerated, and extended resources such as nvidia.com/gpu requested (limits count as
  requests, as upstream) within allocatable minus what the pods already on the node request.
  The least loaded fitting node wins (ties: by name). No node fits: phase Pending with
  condition PodScheduled=False reason Unschedulable and upstream's message shape.
- Pods on a node that is deleted go (as the pod garbage collector does).
Not simulated: affinity, topology spread, priorities and preemption, cpu/memory fitting,
container exit (pods run until deleted), `restartPolicy`.
"""

from __future__ import annotations

from typing import Any

from ..api import now
from .runner import Controller


def _requests(pod: dict[str, Any]) -> dict[str, int]:
    """Extended resource requests (integers), from requests or, absent those, limits."""
    totals: dict[str, int] = {}
    for container in (pod.get("spec") or {}).get("containers") or []:
        resources = container.get("resources") or {}
        merged = dict(resources.get("limits") or {})
        merged.update(resources.get("requests") or {})
        for key, value in merged.items():
            if "/" not in key or key.startswith(("kubernetes.io/", "hugepages-")):
                continue
            try:
                totals[key] = totals.get(key, 0) + int(str(value))
            except ValueError:
                continue
    return totals


def _tolerated(taint: dict[str, Any], tolerations: list[dict[str, Any]]) -> bool:
    for toleration in tolerations:
        if toleration.get("effect") and toleration["effect"] != taint.get("effect"):
            continue
        if toleration.get("operator") == "Exists":
            if not toleration.get("key") or toleration["key"] == taint.get("key"):
                return True
        elif toleration.get("key") == taint.get("key") and toleration.get("value", "") == taint.get(
            "value", ""
        ):
            return True
    return False


def _ready(node: dict[str, Any]) -> bool:
    for condition in (node.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return condition.get("status") == "True"
    return False


class Scheduler(Controller):
    name = "scheduler"

    def __init__(self, cluster, options):
        super().__init__(cluster, options)
        # pod key -> (resourceVersion, extended resource requests): pods are decoded only when
        # they changed or need work, so a pass over 100,000 settled pods stays cheap.
        self.requests: dict[tuple[str, str], tuple[int, dict[str, int]]] = {}

    def _requests_of(self, record) -> dict[str, int]:
        hit = self.requests.get(record.key)
        if hit is None or hit[0] != record.rv:
            hit = (record.rv, _requests(record.decode()))
        return hit[1]

    def reconcile(self) -> None:
        nodes = {n["metadata"]["name"]: n for n in self.client.list_cached("", "v1", "nodes")}
        records = self.client.records("", "v1", "pods")
        used: dict[str, dict[str, int]] = {}
        counts: dict[str, int] = {}
        fresh = {}
        for record in records:
            requests = self._requests_of(record)
            fresh[record.key] = (record.rv, requests)
            node_name = record.fields.get("spec.nodeName")
            if node_name and record.fields.get("status.phase") not in ("Succeeded", "Failed"):
                counts[node_name] = counts.get(node_name, 0) + 1
                for key, value in requests.items():
                    used.setdefault(node_name, {})[key] = (
                        used.get(node_name, {}).get(key, 0) + value
                    )
        self.requests = fresh
        for record in records:
            node_name = record.fields.get("spec.nodeName")
            phase = record.fields.get("status.phase")
            if node_name and node_name in nodes and phase in ("Running", "Succeeded", "Failed"):
                continue  # settled
            pod = record.decode()
            metadata = pod["metadata"]
            if metadata.get("deletionTimestamp"):
                continue
            spec = pod.get("spec") or {}
            if node_name:
                if node_name not in nodes:
                    if phase == "Running":
                        self.client.delete(
                            "", "v1", "pods", metadata["namespace"], metadata["name"]
                        )
                    continue
                self._start(pod, nodes[node_name])
                continue
            if spec.get("schedulerName", "default-scheduler") != "default-scheduler":
                continue
            self._schedule(pod, nodes, used, counts)

    def _fits(self, pod, node, used) -> str | None:
        """None when the pod fits, else the reason as the scheduler words it."""
        spec = pod.get("spec") or {}
        if not _ready(node):
            return "node(s) were not ready"
        if (node.get("spec") or {}).get("unschedulable"):
            return "node(s) were unschedulable"
        labels = node["metadata"].get("labels") or {}
        for key, value in (spec.get("nodeSelector") or {}).items():
            if labels.get(key) != value:
                return "node(s) didn't match Pod's node affinity/selector"
        for taint in (node.get("spec") or {}).get("taints") or []:
            if taint.get("effect") in ("NoSchedule", "NoExecute") and not _tolerated(
                taint, spec.get("tolerations") or []
            ):
                return "node(s) had untolerated taint {%s: %s}" % (
                    taint.get("key"),
                    taint.get("value", ""),
                )
        allocatable = (node.get("status") or {}).get("allocatable") or {}
        for key, wanted in _requests(pod).items():
            try:
                have = int(str(allocatable.get(key, "0")))
            except ValueError:
                have = 0
            if wanted + used.get(node["metadata"]["name"], {}).get(key, 0) > have:
                return f"Insufficient {key}"
        return None

    def _schedule(self, pod, nodes, used, counts) -> None:
        reasons: dict[str, int] = {}
        fitting = []
        for name, node in sorted(nodes.items()):
            reason = self._fits(pod, node, used)
            if reason is None:
                fitting.append((counts.get(name, 0), name))
            else:
                reasons[reason] = reasons.get(reason, 0) + 1
        metadata = pod["metadata"]
        if not fitting:
            detail = ", ".join(f"{count} {reason}" for reason, count in sorted(reasons.items()))
            message = (
                f"0/{len(nodes)} nodes are available: {detail}."
                if nodes
                else ("no nodes available to schedule pods")
            )
            conditions = [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": message,
                    "lastProbeTime": None,
                    "lastTransitionTime": now(),
                }
            ]
            status = pod.get("status") or {}
            old = [c for c in status.get("conditions") or [] if c.get("type") == "PodScheduled"]
            if status.get("phase") == "Pending" and old and old[0].get("message") == message:
                return
            self.client.patch(
                "",
                "v1",
                "pods",
                metadata["namespace"],
                metadata["name"],
                {"status": {"phase": "Pending", "conditions": conditions}},
                "status",
            )
            return
        _unused, chosen = min(fitting)
        counts[chosen] = counts.get(chosen, 0) + 1
        for key, value in _requests(pod).items():
            used.setdefault(chosen, {})[key] = used.get(chosen, {}).get(key, 0) + value
        # What pods/binding does: set spec.nodeName (the stand-in has no binding subresource).
        self.client.patch(
            "",
            "v1",
            "pods",
            metadata["namespace"],
            metadata["name"],
            {"spec": {"nodeName": chosen}},
        )

    def _start(self, pod, node) -> None:
        status = pod.get("status") or {}
        if status.get("phase") in ("Running", "Succeeded", "Failed"):
            return
        stamp = now()
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
        pod_ip = ".".join(cidr.split(".")[:3] + [str(index)])
        conditions = [
            {"type": kind, "status": "True", "lastProbeTime": None, "lastTransitionTime": stamp}
            for kind in (
                "PodReadyToStartContainers",
                "Initialized",
                "Ready",
                "ContainersReady",
                "PodScheduled",
            )
        ]
        containers = [
            {
                "name": c.get("name"),
                "image": c.get("image", ""),
                "imageID": "",
                "containerID": f"containerd://{pod['metadata'].get('uid', '')[:12]}{i}",
                "ready": True,
                "started": True,
                "restartCount": 0,
                "state": {"running": {"startedAt": stamp}},
                "lastState": {},
            }
            for i, c in enumerate((pod.get("spec") or {}).get("containers") or [])
        ]
        self.client.patch(
            "",
            "v1",
            "pods",
            pod["metadata"]["namespace"],
            pod["metadata"]["name"],
            {
                "status": {
                    "phase": "Running",
                    "conditions": conditions,
                    "hostIP": node_ip,
                    "hostIPs": [{"ip": node_ip}],
                    "podIP": pod_ip,
                    "podIPs": [{"ip": pod_ip}],
                    "startTime": stamp,
                    "containerStatuses": containers,
                    "qosClass": "BestEffort",
                }
            },
            "status",
        )
