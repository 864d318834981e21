"""kube-controller-manager's daemonset controller: one pod per eligible node.

A node is eligible when the pod template's nodeSelector and required node affinity match it and
its NoSchedule/NoExecute taints are tolerated (with the tolerations every daemon pod gets:
not-ready/unreachable NoExecute, disk/memory/pid-pressure and unschedulable NoSchedule), so
cordoned nodes still run daemon pods, as upstream. Pods are created with a node affinity on
the node's name (the scheduler binds them), the `controller-revision-hash` label of the
template, and are deleted from nodes that stop being eligible (a NoSchedule taint alone lets a
running pod continue), duplicates and failed pods are replaced. RollingUpdate replaces pods of
an older template within maxUnavailable (or surges with maxSurge); OnDelete waits for pods to be
deleted. Status counts real pods: desired/current/updatedNumberScheduled, numberReady,
numberAvailable, numberUnavailable, numberMisscheduled, observedGeneration.
"""

from __future__ import annotations

import copy
import time
from typing import Any

from ..api import parse_time
from ..store import ObjectKey
from . import podutil
from .runner import KCM
from .workloads import OwnerController, _controlled_by

PODS = ("", "pods")
NODES = ("", "nodes")
DAEMONSETS = ("apps", "daemonsets")
HASH_LABEL = "controller-revision-hash"
GENERATION_LABEL = "pod-template-generation"
DAEMON_TOLERATIONS = (
    ("node.kubernetes.io/not-ready", "NoExecute"),
    ("node.kubernetes.io/unreachable", "NoExecute"),
    ("node.kubernetes.io/disk-pressure", "NoSchedule"),
    ("node.kubernetes.io/memory-pressure", "NoSchedule"),
    ("node.kubernetes.io/pid-pressure", "NoSchedule"),
    ("node.kubernetes.io/unschedulable", "NoSchedule"),
)


def daemon_tolerations(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """util.AddOrUpdateDaemonPodTolerations."""
    tolerations = [t for t in spec.get("tolerations") or [] if isinstance(t, dict)]
    wanted = list(DAEMON_TOLERATIONS)
    if spec.get("hostNetwork"):
        wanted.append(("node.kubernetes.io/network-unavailable", "NoSchedule"))
    for key, effect in wanted:
        if not any(t.get("key") == key and t.get("effect") == effect for t in tolerations):
            tolerations.append({"key": key, "operator": "Exists", "effect": effect})
    return tolerations


def node_placement(spec: dict[str, Any], node: dict[str, Any]) -> tuple[bool, bool]:
    """(should run, should continue running) of a daemon pod on `node`."""
    if not podutil.node_selector_matches(spec, node):
        return False, False
    taints = (node.get("spec") or {}).get("taints") or []
    tolerations = daemon_tolerations(spec)
    if podutil.untolerated(taints, tolerations, ("NoExecute",)) is not None:
        return False, False
    if podutil.untolerated(taints, tolerations, ("NoSchedule",)) is not None:
        return False, True
    return True, True


def pod_node(pod: dict[str, Any]) -> str | None:
    """The node a daemon pod is for: its nodeName, else its affinity's metadata.name."""
    spec = pod.get("spec") or {}
    if spec.get("nodeName"):
        return spec["nodeName"]
    affinity = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    for term in affinity.get("nodeSelectorTerms") or []:
        for field in term.get("matchFields") or []:
            if field.get("key") == "metadata.name" and field.get("values"):
                return field["values"][0]
    return None


class DaemonSetController(OwnerController):
    name = "daemonset"
    manager = KCM
    primary = DAEMONSETS
    kind = "DaemonSet"

    def keys_for(self, type_key, key, event, before):
        if type_key == NODES:
            return self.all_keys()
        return super().keys_for(type_key, key, event, before)

    def reconcile(self) -> None:
        self._nodes = None
        super().reconcile()

    def nodes(self) -> list[dict[str, Any]]:
        if self._nodes is None:
            self._nodes = self.client.list_cached("", "v1", "nodes")
        return self._nodes

    def sync(self, key: ObjectKey) -> None:
        ds = self.live(key)
        if ds is None:
            return
        spec = ds.get("spec") or {}
        template = spec.get("template") or {}
        template_spec = template.get("spec") or {}
        current_hash = podutil.template_hash(template)
        uid = ds["metadata"]["uid"]
        matches = podutil.selector_matcher(ds)
        pods = [
            r.decode()
            for r in self.client.dependents(uid, PODS)
            if _controlled_by(r, uid) and matches(r.labels)
        ]
        by_node: dict[str, list[dict[str, Any]]] = {}
        for pod in pods:
            if podutil.is_terminating(pod):
                continue
            by_node.setdefault(pod_node(pod) or "", []).append(pod)
        placement = {
            node["metadata"]["name"]: node_placement(template_spec, node) for node in self.nodes()
        }
        for node_name, node_pods in list(by_node.items()):
            should_run, should_continue = placement.get(node_name, (False, False))
            failed = [p for p in node_pods if (p.get("status") or {}).get("phase") == "Failed"]
            keep = [p for p in node_pods if p not in failed]
            doomed = list(failed)
            if not should_continue:
                doomed += keep
                keep = []
            elif len(keep) > 1:
                keep.sort(key=lambda p: parse_time(p["metadata"].get("creationTimestamp")) or 0)
                doomed += keep[1:]
                keep = keep[:1]
            for pod in doomed:
                self.delete_pod(pod)
            by_node[node_name] = keep
        for node_name, (should_run, _continue) in placement.items():
            if should_run and not by_node.get(node_name):
                self._create(ds, node_name, current_hash)
        strategy = spec.get("updateStrategy") or {}
        if strategy.get("type", "RollingUpdate") == "RollingUpdate":
            self._roll(ds, by_node, placement, current_hash, strategy.get("rollingUpdate") or {})
        self._write_status(ds, key, placement, current_hash)

    def _create(self, ds: dict[str, Any], node_name: str, current_hash: str) -> None:
        template = copy.deepcopy((ds.get("spec") or {}).get("template") or {})
        spec = template.setdefault("spec", {})
        affinity = spec.setdefault("affinity", {})
        node_affinity = affinity.setdefault("nodeAffinity", {})
        node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] = {
            "nodeSelectorTerms": [
                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node_name]}]}
            ]
        }
        spec["tolerations"] = daemon_tolerations(spec)
        pod = podutil.pod_from_template(
            template,
            ds,
            labels={
                HASH_LABEL: current_hash,
                GENERATION_LABEL: str(ds["metadata"].get("generation", 1)),
            },
        )
        try:
            created = self.client.create("", "v1", "pods", ds["metadata"]["namespace"], pod)
        except Exception as error:  # noqa: BLE001 - reported as the controller's event
            self.client.event(ds, "FailedCreate", f"Error creating: {error}", "Warning")
            return
        if created is not None:
            self.client.event(
                ds,
                "SuccessfulCreate",
                f"Created pod: {created['metadata']['name']}",
            )

    def _roll(self, ds, by_node, placement, current_hash, rolling) -> None:
        desired = sum(1 for should_run, _unused in placement.values() if should_run)
        max_unavailable = podutil.resolve_int_or_percent(
            rolling.get("maxUnavailable", 1), desired, True
        )
        max_surge = podutil.resolve_int_or_percent(rolling.get("maxSurge", 0), desired, True)
        min_ready = int((ds.get("spec") or {}).get("minReadySeconds") or 0)
        moment = time.time()
        old_available, unavailable = [], 0
        for node_name, pods in by_node.items():
            if not placement.get(node_name, (False, False))[0] or not pods:
                continue
            pod = pods[0]
            available = podutil.is_available(pod, min_ready, moment)
            if not available:
                unavailable += 1
            if (pod["metadata"].get("labels") or {}).get(HASH_LABEL) == current_hash:
                continue
            if not available:
                self.delete_pod(pod)  # an old pod that is not available anyway: replace now
            else:
                old_available.append(pod)
        unavailable += sum(
            1
            for node_name, (should_run, _unused) in placement.items()
            if should_run and not by_node.get(node_name)
        )
        if max_surge > 0:
            return  # surge: the new pods come first (created above); old ones go when replaced
        for pod in old_available:
            if unavailable >= max_unavailable:
                break
            self.delete_pod(pod)
            unavailable += 1

    def _write_status(self, ds, key, placement, current_hash) -> None:
        uid = ds["metadata"]["uid"]
        pods = [r.decode() for r in self.client.dependents(uid, PODS) if _controlled_by(r, uid)]
        min_ready = int((ds.get("spec") or {}).get("minReadySeconds") or 0)
        moment = time.time()
        by_node: dict[str, list[dict[str, Any]]] = {}
        for pod in pods:
            if not podutil.is_terminating(pod):
                by_node.setdefault(pod_node(pod) or "", []).append(pod)
        desired = current = misscheduled = ready = available = updated = 0
        for node_name, (should_run, _unused) in placement.items():
            node_pods = by_node.get(node_name) or []
            if not should_run:
                if node_pods:
                    misscheduled += 1
                continue
            desired += 1
            if not node_pods:
                continue
            current += 1
            pod = node_pods[0]
            if (pod["metadata"].get("labels") or {}).get(HASH_LABEL) == current_hash:
                updated += 1
            if podutil.is_ready(pod):
                ready += 1
                if podutil.is_available(pod, min_ready, moment):
                    available += 1
                else:
                    wait = podutil.available_in(pod, min_ready, moment)
                    if wait is not None:
                        self.requeue(key, wait)
        status: dict[str, Any] = {
            "currentNumberScheduled": current,
            "desiredNumberScheduled": desired,
            "numberMisscheduled": misscheduled,
            "numberReady": ready,
            "observedGeneration": ds["metadata"].get("generation", 1),
        }
        if updated:
            status["updatedNumberScheduled"] = updated
        if available:
            status["numberAvailable"] = available
        if desired - available > 0:
            status["numberUnavailable"] = desired - available
        old = ds.get("status") or {}
        if old.get("collisionCount") is not None:
            status["collisionCount"] = old["collisionCount"]
        if status != old:
            ds["status"] = status
            self.client.update("apps", "v1", "daemonsets", ds, "status")
