"""Simulated kube-scheduler (default profile's filters, in upstream's order).

A Pod without `spec.nodeName` (and the default schedulerName, no scheduling gates) is bound,
through `pods/binding`, to a node that passes every filter:
NodeUnschedulable (cordoned nodes, unless the unschedulable taint is tolerated),
TaintToleration (NoSchedule / NoExecute taints; a node that is not Ready counts as tainted
`node.kubernetes.io/not-ready`), NodeAffinity (nodeSelector and required node affinity:
matchExpressions In/NotIn/Exists/DoesNotExist/Gt/Lt, matchFields metadata.name) and
NodeResourcesFit (cpu, memory, ephemeral-storage, extended resources such as nvidia.com/gpu,
and the pod count, against allocatable minus what the node's pods request; requests default to
limits). Among fitting nodes the least allocated (cpu and memory) wins, then the one with the
fewest pods, then by name. When none fits the pod stays Pending with PodScheduled=False reason
Unschedulable and upstream's message, e.g. `0/3 nodes are available: 1 Insufficient
nvidia.com/gpu, 2 node(s) didn't match Pod's node affinity/selector. preemption: 0/3 nodes are
available: 1 No preemption victims found for incoming pod, 2 Preemption is not helpful for
scheduling.`; it is retried when nodes or pods change. Node usage is kept incrementally from
pod events, so a pass costs what changed, not the cluster size.
Not simulated: pod (anti-)affinity, topology spread, preferred affinity, priorities and
preemption, volumes, host ports.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from ..api import WriteOptions, now
from ..errors import ApiError
from ..store import ObjectKey
from . import podutil
from .runner import WorkController

PODS = ("", "pods")
NODES = ("", "nodes")
UNSCHEDULABLE_TAINT = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}
NOT_READY_TAINT = {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}
NOT_HELPFUL = "Preemption is not helpful for scheduling"
NO_VICTIMS = "No preemption victims found for incoming pod"


class Scheduler(WorkController):
    name = "scheduler"
    manager = "kube-scheduler"
    primary = PODS

    def __init__(self, cluster, options) -> None:
        super().__init__(cluster, options)
        # pod key -> (node, requests) for pods holding resources on a node.
        self.assigned: dict[ObjectKey, tuple[str, dict[str, Decimal]]] = {}
        self.usage: dict[str, dict[str, Decimal]] = {}
        self.counts: dict[str, int] = {}
        self.pending: set[ObjectKey] = set()
        self._nodes: list[dict[str, Any]] | None = None

    # ------------------------------------------------------------------ bookkeeping

    def _release(self, key: ObjectKey) -> None:
        held = self.assigned.pop(key, None)
        if held is None:
            return
        node, requests = held
        usage = self.usage.setdefault(node, {})
        for name, amount in requests.items():
            usage[name] = usage.get(name, Decimal(0)) - amount
        self.counts[node] = self.counts.get(node, 0) - 1

    def _hold(self, key: ObjectKey, node: str, requests: dict[str, Decimal]) -> None:
        self._release(key)
        self.assigned[key] = (node, requests)
        usage = self.usage.setdefault(node, {})
        for name, amount in requests.items():
            usage[name] = usage.get(name, Decimal(0)) + amount
        self.counts[node] = self.counts.get(node, 0) + 1

    def _observe(self, key: ObjectKey) -> None:
        """Account for one pod as stored now (bound and holding, pending, or neither)."""
        record = self.client.record(PODS, key)
        if record is None:
            self._release(key)
            self.pending.discard(key)
            return
        node = record.fields.get("spec.nodeName")
        finished = record.fields.get("status.phase") in ("Succeeded", "Failed")
        if node and not finished:
            held = self.assigned.get(key)
            if held is None or held[0] != node or self._rv.get(key) != record.rv:
                self._hold(key, node, podutil.pod_requests(record.decode()))
                self._rv[key] = record.rv
            self.pending.discard(key)
            return
        self._release(key)
        self._rv.pop(key, None)
        if not node and not finished:
            self.pending.add(key)
        else:
            self.pending.discard(key)

    def reconcile(self) -> None:
        self._nodes = None
        if not hasattr(self, "_rv"):
            self._rv: dict[ObjectKey, int] = {}
        retry = False
        if self.changes is None:
            self.assigned, self.usage, self.counts, self.pending = {}, {}, {}, set()
            self._rv = {}
            for record in self.client.records("", "v1", "pods"):
                self._observe(record.key)
            retry = True
        else:
            for key in self.changes.get(PODS) or {}:
                was_holding = key in self.assigned
                self._observe(key)
                if was_holding and key not in self.assigned:
                    retry = True  # resources were freed
            if self.changes.get(NODES):
                retry = True
        keys = (
            set(self.pending)
            if retry
            else {k for k in (self.changes or {}).get(PODS, {}) if k in self.pending}
        )
        for key in sorted(keys):
            self.sync(key)

    def nodes(self) -> list[dict[str, Any]]:
        if self._nodes is None:
            self._nodes = self.client.list_cached("", "v1", "nodes")
        return self._nodes

    # ------------------------------------------------------------------ scheduling

    def sync(self, key: ObjectKey) -> None:
        record = self.client.record(PODS, key)
        if record is None or record.fields.get("spec.nodeName"):
            return
        pod = record.decode()
        spec = pod.get("spec") or {}
        if pod["metadata"].get("deletionTimestamp") or podutil.is_finished(pod):
            return
        if spec.get("schedulerName", "default-scheduler") != "default-scheduler":
            return
        if spec.get("schedulingGates"):
            return self._unschedulable(
                pod, "SchedulingGated", "Scheduling is blocked due to non-empty scheduling gates"
            )
        nodes = self.nodes()
        requests = podutil.pod_requests(pod)
        reasons: dict[str, int] = {}
        preemption: dict[str, int] = {}
        fitting = []
        for node in nodes:
            failures, resolvable = self._filter(pod, spec, node, requests)
            if not failures:
                fitting.append((self._score(node, requests), node["metadata"]["name"]))
                continue
            for reason in failures:
                reasons[reason] = reasons.get(reason, 0) + 1
            verdict = NO_VICTIMS if resolvable else NOT_HELPFUL
            preemption[verdict] = preemption.get(verdict, 0) + 1
        if not fitting:
            total = len(nodes)
            if not total:
                message = "no nodes available to schedule pods"
            else:
                detail = ", ".join(f"{n} {r}" for r, n in sorted(reasons.items()))
                victims = ", ".join(f"{n} {r}" for r, n in sorted(preemption.items()))
                message = (
                    f"0/{total} nodes are available: {detail}. preemption: 0/{total} nodes are "
                    f"available: {victims}."
                )
            return self._unschedulable(pod, "Unschedulable", message)
        _unused, chosen = min(fitting)
        try:
            self.cluster.bind(
                key[0],
                key[1],
                {"target": {"kind": "Node", "name": chosen}, "metadata": {"name": key[1]}},
                WriteOptions(field_manager=self.manager),
            )
        except ApiError as error:
            if error.code not in (404, 409):
                raise
            return
        self._hold(key, chosen, requests)
        self.pending.discard(key)

    def _filter(self, pod, spec, node, requests) -> tuple[list[str], bool]:
        """(failure reasons, whether preemption could help) for `pod` on `node`."""
        tolerations = [t for t in spec.get("tolerations") or [] if isinstance(t, dict)]
        node_spec = node.get("spec") or {}
        if node_spec.get("unschedulable") and not any(
            podutil.tolerates(t, UNSCHEDULABLE_TAINT) for t in tolerations
        ):
            return ["node(s) were unschedulable"], False
        taints = list(node_spec.get("taints") or [])
        if not podutil.node_ready(node) and not any(
            t.get("key") == NOT_READY_TAINT["key"] for t in taints
        ):
            taints.append(NOT_READY_TAINT)
        taint = podutil.untolerated(taints, tolerations, ("NoSchedule", "NoExecute"))
        if taint is not None:
            return [
                "node(s) had untolerated taint {%s: %s}"
                % (taint.get("key"), taint.get("value", ""))
            ], False
        if not podutil.node_selector_matches(spec, node):
            return ["node(s) didn't match Pod's node affinity/selector"], False
        allocatable = (node.get("status") or {}).get("allocatable") or {}
        name = node["metadata"]["name"]
        used = self.usage.get(name, {})
        failures = []
        pods_allowed = podutil.parse_quantity(allocatable.get("pods", "110")) or Decimal(0)
        if self.counts.get(name, 0) + 1 > pods_allowed:
            failures.append("Too many pods")
        for resource, amount in sorted(requests.items()):
            if amount <= 0:
                continue
            have = podutil.parse_quantity(allocatable.get(resource, "0")) or Decimal(0)
            if amount + used.get(resource, Decimal(0)) > have:
                failures.append(f"Insufficient {resource}")
        return failures, True

    def _score(self, node, requests) -> tuple[Decimal, int]:
        allocatable = (node.get("status") or {}).get("allocatable") or {}
        name = node["metadata"]["name"]
        used = self.usage.get(name, {})
        fractions = []
        for resource in ("cpu", "memory"):
            have = podutil.parse_quantity(allocatable.get(resource, "0")) or Decimal(0)
            if have > 0:
                wanted = used.get(resource, Decimal(0)) + requests.get(resource, Decimal(0))
                fractions.append(wanted / have)
        score = sum(fractions) / len(fractions) if fractions else Decimal(0)
        return score, self.counts.get(name, 0)

    def _unschedulable(self, pod, reason: str, message: str) -> None:
        status = pod.get("status") or {}
        current = podutil.condition(pod, "PodScheduled") or {}
        if (
            status.get("phase") == "Pending"
            and current.get("status") == "False"
            and current.get("reason") == reason
            and current.get("message") == message
        ):
            return
        conditions = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
        conditions.append(
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": reason,
                "message": message,
                "lastProbeTime": None,
                "lastTransitionTime": current.get("lastTransitionTime")
                if current.get("status") == "False"
                else now(),
            }
        )
        metadata = pod["metadata"]
        self.client.patch(
            "",
            "v1",
            "pods",
            metadata["namespace"],
            metadata["name"],
            {"status": {"phase": "Pending", "conditions": conditions}},
            "status",
        )
