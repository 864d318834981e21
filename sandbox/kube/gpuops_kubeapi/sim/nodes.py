"""kube-controller-manager's node-lifecycle and taint-eviction controllers.

node-lifecycle (TaintNodesByCondition and the NoExecute taints of unhealthy nodes): a node
whose Ready condition is False gets `node.kubernetes.io/not-ready` (NoSchedule and NoExecute),
Unknown or missing gets `node.kubernetes.io/unreachable`; MemoryPressure / DiskPressure /
PIDPressure add their NoSchedule taints; a cordoned node (`spec.unschedulable`) gets
`node.kubernetes.io/unschedulable:NoSchedule`. They go again when the condition clears.
NoExecute taints carry `timeAdded`.

taint-eviction: a pod on a node with a NoExecute taint it does not tolerate is deleted at once;
one tolerated with `tolerationSeconds` is deleted that long after the taint appeared (the
smallest of its matching tolerations; tolerations without seconds tolerate forever). Before
deleting, the pod gets the DisruptionTarget condition (reason DeletionByTaintManager) and an
event TaintManagerEviction is recorded, as upstream.
"""

from __future__ import annotations

import time
from typing import Any

from ..api import now, parse_time
from ..store import ObjectKey
from . import podutil
from .runner import KCM, NodesOfThePass, WorkController

PODS = ("", "pods")
NODES = ("", "nodes")
NOT_READY = "node.kubernetes.io/not-ready"
UNREACHABLE = "node.kubernetes.io/unreachable"
UNSCHEDULABLE = "node.kubernetes.io/unschedulable"
PRESSURE = {
    "MemoryPressure": "node.kubernetes.io/memory-pressure",
    "DiskPressure": "node.kubernetes.io/disk-pressure",
    "PIDPressure": "node.kubernetes.io/pid-pressure",
}
MANAGED_KEYS = (NOT_READY, UNREACHABLE, UNSCHEDULABLE) + tuple(PRESSURE.values())


def condition_taints(node: dict[str, Any]) -> list[tuple[str, str]]:
    """(key, effect) of the taints the node's state calls for."""
    wanted = []
    ready = podutil.condition(node, "Ready")
    status = (ready or {}).get("status", "Unknown")
    if status == "False":
        wanted += [(NOT_READY, "NoSchedule"), (NOT_READY, "NoExecute")]
    elif status != "True":
        wanted += [(UNREACHABLE, "NoSchedule"), (UNREACHABLE, "NoExecute")]
    for kind, key in PRESSURE.items():
        if (podutil.condition(node, kind) or {}).get("status") == "True":
            wanted.append((key, "NoSchedule"))
    if (node.get("spec") or {}).get("unschedulable"):
        wanted.append((UNSCHEDULABLE, "NoSchedule"))
    return wanted


class NodeLifecycle(WorkController):
    name = "node-lifecycle"
    manager = KCM
    primary = NODES

    def sync(self, key: ObjectKey) -> None:
        record = self.client.record(NODES, key)
        if record is None:
            return
        node = record.decode()
        taints = list((node.get("spec") or {}).get("taints") or [])
        wanted = condition_taints(node)
        kept = [
            t
            for t in taints
            if t.get("key") not in MANAGED_KEYS or (t.get("key"), t.get("effect")) in wanted
        ]
        present = {(t.get("key"), t.get("effect")) for t in kept}
        for key_name, effect in wanted:
            if (key_name, effect) not in present:
                taint: dict[str, Any] = {"key": key_name, "effect": effect}
                if effect == "NoExecute":
                    taint["timeAdded"] = now()
                kept.append(taint)
        if kept != taints:
            self.client.patch("", "v1", "nodes", None, key[1], {"spec": {"taints": kept or None}})


class TaintEviction(NodesOfThePass, WorkController):
    name = "taint-eviction"
    manager = KCM
    primary = PODS

    def __init__(self, cluster, options) -> None:
        super().__init__(cluster, options)
        # (pod uid, taint key, effect) -> when the pod was first seen under that taint.
        self.seen: dict[tuple[str, str, str], float] = {}

    def keys_for(self, type_key, key, event, before):
        if type_key == PODS:
            return (key,) if event.record.fields.get("spec.nodeName") else ()
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
            ]

    def sync(self, key: ObjectKey) -> None:
        record = self.client.record(PODS, key)
        if record is None or not record.fields.get("spec.nodeName"):
            return
        node = self._node(record.fields["spec.nodeName"])
        if node is None:
            return
        taints = [
            t
            for t in (node.get("spec") or {}).get("taints") or []
            if t.get("effect") == "NoExecute"
        ]
        if not taints:
            return
        pod = record.decode()
        if podutil.is_terminating(pod) or podutil.is_finished(pod):
            return
        uid = pod["metadata"].get("uid", "")
        tolerations = [
            t for t in (pod.get("spec") or {}).get("tolerations") or [] if isinstance(t, dict)
        ]
        moment = time.time()
        deadline = None
        for taint in taints:
            matching = [t for t in tolerations if podutil.tolerates(t, taint)]
            if not matching:
                return self._evict(pod, node)
            seconds = [
                t["tolerationSeconds"] for t in matching if t.get("tolerationSeconds") is not None
            ]
            if not seconds:
                continue
            marker = (uid, taint.get("key", ""), taint.get("effect", ""))
            since = parse_time(taint.get("timeAdded")) or self.seen.setdefault(marker, moment)
            due = since + max(min(int(s) for s in seconds), 0)
            deadline = due if deadline is None else min(deadline, due)
        if deadline is None:
            return
        if moment >= deadline:
            return self._evict(pod, node)
        self.requeue(key, deadline - moment + 0.05)

    def _evict(self, pod: dict[str, Any], node: dict[str, Any]) -> None:
        metadata = pod["metadata"]
        self.client.event(
            pod,
            "TaintManagerEviction",
            f"Marking for deletion Pod {metadata['namespace']}/{metadata['name']}",
        )
        conditions = podutil.set_condition(
            (pod.get("status") or {}).get("conditions") or [],
            "DisruptionTarget",
            "True",
            "DeletionByTaintManager",
            "Taint manager: deleting due to NoExecute taint",
        )
        self.client.patch(
            "",
            "v1",
            "pods",
            metadata["namespace"],
            metadata["name"],
            {"status": {"conditions": conditions}},
            "status",
        )
        self.client.delete(
            "", "v1", "pods", metadata["namespace"], metadata["name"], uid=metadata.get("uid")
        )
