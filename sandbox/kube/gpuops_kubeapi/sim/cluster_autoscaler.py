"""Simulated cluster-autoscaler (clusterapi provider) and the Cluster API machines it scales.

Machines (what CAPI's MachineDeployment/MachineSet controllers and the infrastructure provider
do, collapsed): each cluster.x-k8s.io MachineDeployment gets as many Nodes as `spec.replicas`,
named `<md>-<suffix>`, annotated `cluster.x-k8s.io/owner-name: <md>` and
`cluster.x-k8s.io/machine`. A Node's capacity comes from the scale-from-zero annotations
(`capacity.cluster-autoscaler.kubernetes.io/cpu`, `memory`, `ephemeral-disk`, `maxPods`
(default 110), `gpu-count` as `nvidia.com/gpu`), its labels from the `labels` annotation (the
kubelet's `--node-labels`, where `cluster-api/accelerator` belongs) plus the template's
`node.cluster.x-k8s.io/` labels, its taints from the `taints` annotation and
`spec.template.spec.taints`; it is Ready at once. Fewer replicas delete the Nodes annotated
`cluster.x-k8s.io/delete-machine` first, then the newest. MachineDeployment status: replicas,
readyReplicas, availableReplicas, upToDateReplicas, phase.

cluster-autoscaler: node groups are the MachineDeployments with both
`cluster.x-k8s.io/cluster-api-autoscaler-node-group-min-size` and `-max-size`. Scale up: pods
the scheduler marked Unschedulable are fitted (taints, node selector/affinity, resources) on a
template node of each group (its capacity annotations; from an existing node of the group when
it has one, as upstream prefers), first-fit packed onto as many new nodes as they need; the
first group (by namespace/name) that fits gets `spec.replicas` raised, never past its max.
Scale down: a node of a group whose only pods are DaemonSet pods, none with
`cluster-autoscaler.kubernetes.io/safe-to-evict: "false"` or `karpenter.sh/do-not-disrupt`,
and without `cluster-autoscaler.kubernetes.io/scale-down-disabled`, that stayed so for the
unneeded time (`--scale-down-unneeded-time`, upstream 10 min; the MachineDeployment's
`cluster.x-k8s.io/autoscaling-options-scaledownunneededtime`, else
GPUOPS_SANDBOX_CA_UNNEEDED_SECONDS), is marked `delete-machine` and the replicas lowered (never
below min). Not simulated: expanders other than first-fit, `--gpu-total` and other resource
limits, scale-down of underutilized (non-empty) nodes, delays after scale-up.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from decimal import Decimal
from typing import Any

from ..api import now
from . import podutil
from .runner import Controller

GROUP, VERSION, PLURAL = "cluster.x-k8s.io", "v1beta2", "machinedeployments"
MIN = "cluster.x-k8s.io/cluster-api-autoscaler-node-group-min-size"
MAX = "cluster.x-k8s.io/cluster-api-autoscaler-node-group-max-size"
CAPACITY = "capacity.cluster-autoscaler.kubernetes.io/"
OWNER = "cluster.x-k8s.io/owner-name"
MACHINE = "cluster.x-k8s.io/machine"
DELETE = "cluster.x-k8s.io/delete-machine"
UNNEEDED = "cluster.x-k8s.io/autoscaling-options-scaledownunneededtime"
UNNEEDED_ENV = "GPUOPS_SANDBOX_CA_UNNEEDED_SECONDS"


def _duration(text: str | None) -> float | None:
    """'10m0s' / '90s' / '1h' -> seconds."""
    if not text:
        return None
    parts = re.findall(r"([0-9.]+)(h|m|s)", text)
    if not parts:
        return None
    return sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)


def template_node(md: dict[str, Any], name: str) -> dict[str, Any]:
    """The Node a MachineDeployment's machine registers, from its annotations and template."""
    annotations = md["metadata"].get("annotations") or {}
    capacity = {"pods": annotations.get(CAPACITY + "maxPods", "110")}
    for key, resource in (
        ("cpu", "cpu"),
        ("memory", "memory"),
        ("ephemeral-disk", "ephemeral-storage"),
    ):
        if annotations.get(CAPACITY + key):
            capacity[resource] = annotations[CAPACITY + key]
    if annotations.get(CAPACITY + "gpu-count"):
        capacity[annotations.get(CAPACITY + "gpu-type", "nvidia.com/gpu")] = annotations[
            CAPACITY + "gpu-count"
        ]
    labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
    }
    template_labels = ((md["spec"].get("template") or {}).get("metadata") or {}).get("labels") or {}
    labels.update(
        {k: v for k, v in template_labels.items() if k.startswith("node.cluster.x-k8s.io/")}
    )
    for pair in (annotations.get(CAPACITY + "labels") or "").split(","):
        if "=" in pair:
            key, value = pair.split("=", 1)
            labels[key.strip()] = value.strip()
    taints = []
    for entry in (annotations.get(CAPACITY + "taints") or "").split(","):
        if ":" in entry:
            head, effect = entry.rsplit(":", 1)
            key, _sep, value = head.partition("=")
            taint = {"key": key.strip(), "effect": effect.strip()}
            if value:
                taint["value"] = value.strip()
            taints.append(taint)
    for taint in ((md["spec"].get("template") or {}).get("spec") or {}).get("taints") or []:
        taints.append({k: taint[k] for k in ("key", "value", "effect") if k in taint})
    node = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": {OWNER: md["metadata"]["name"], MACHINE: name},
        },
        "spec": {"taints": taints} if taints else {},
        "status": {"capacity": capacity, "allocatable": dict(capacity)},
    }
    return node


def fits(pod: dict[str, Any], node: dict[str, Any], used: dict[str, Decimal]) -> bool:
    spec = pod.get("spec") or {}
    taints = (node.get("spec") or {}).get("taints") or []
    if (
        podutil.untolerated(taints, spec.get("tolerations") or [], ("NoSchedule", "NoExecute"))
        is not None
    ):
        return False
    if not podutil.node_selector_matches(spec, node):
        return False
    allocatable = node["status"]["allocatable"]
    for resource, amount in podutil.pod_requests(pod).items():
        if amount <= 0:
            continue
        have = podutil.parse_quantity(allocatable.get(resource, "0")) or Decimal(0)
        if amount + used.get(resource, Decimal(0)) > have:
            return False
    return True


class ClusterAutoscaler(Controller):
    name = "cluster-autoscaler"
    periodic = True

    def __init__(self, cluster, options) -> None:
        super().__init__(cluster, options)
        self._unneeded: dict[str, float] = {}

    def reconcile(self) -> None:
        mds = self.client.list(GROUP, VERSION, PLURAL)
        if not mds:
            return
        nodes = self.client.list("", "v1", "nodes")
        pods = self.client.list("", "v1", "pods")
        owned: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for node in nodes:
            owner = (node["metadata"].get("annotations") or {}).get(OWNER)
            if owner:
                owned.setdefault(owner, []).append(node)
        for md in mds:
            self._machines(md, owned.get(md["metadata"]["name"], []))
        self._scale_up(mds, owned, pods)
        self._scale_down(mds, owned, pods)

    # ------------------------------------------------------------------ machines

    def _machines(self, md, nodes) -> None:
        want = md["spec"].get("replicas", 1)
        name = md["metadata"]["name"]
        if len(nodes) < want:
            for index in range(want - len(nodes)):
                suffix = hashlib.sha256(f"{name}{time.time_ns()}{index}".encode()).hexdigest()[:5]
                node = template_node(md, f"{name}-{suffix}")
                created = self.client.create("", "v1", "nodes", None, node)
                if created is not None:
                    created["status"] = dict(
                        node["status"],
                        conditions=[
                            {
                                "type": "Ready",
                                "status": "True",
                                "reason": "KubeletReady",
                                "message": "kubelet is posting ready status",
                                "lastHeartbeatTime": now(),
                                "lastTransitionTime": now(),
                            }
                        ],
                    )
                    self.client.update("", "v1", "nodes", created, "status")
        elif len(nodes) > want:
            marked = [n for n in nodes if DELETE in (n["metadata"].get("annotations") or {})]
            newest = sorted(
                [n for n in nodes if n not in marked],
                key=lambda n: n["metadata"].get("creationTimestamp", ""),
                reverse=True,
            )
            for node in (marked + newest)[: len(nodes) - want]:
                self.client.delete("", "v1", "nodes", None, node["metadata"]["name"])
        status = md.get("status") or {}
        count = min(len(nodes), want) if len(nodes) > want else len(nodes)
        new = {
            "replicas": count,
            "readyReplicas": count,
            "availableReplicas": count,
            "upToDateReplicas": count,
            "observedGeneration": md["metadata"].get("generation", 1),
            "phase": "ScalingUp"
            if count < want
            else "ScalingDown"
            if len(nodes) > want
            else "Running",
            "selector": ",".join(
                f"{k}={v}"
                for k, v in sorted(
                    ((md["spec"].get("selector") or {}).get("matchLabels") or {}).items()
                )
            )
            or "cluster.x-k8s.io/deployment-name=" + md["metadata"]["name"],
        }
        if {k: status.get(k) for k in new} != new:
            md["status"] = dict(status, **new)
            self.client.update(GROUP, VERSION, PLURAL, md, "status")

    # ------------------------------------------------------------------ autoscaler

    @staticmethod
    def _bounds(md) -> tuple[int, int] | None:
        annotations = md["metadata"].get("annotations") or {}
        try:
            return int(annotations[MIN]), int(annotations[MAX])
        except (KeyError, ValueError):
            return None

    def _scale_up(self, mds, owned, pods) -> None:
        pending = [
            p
            for p in pods
            if not (p.get("spec") or {}).get("nodeName")
            and (podutil.condition(p, "PodScheduled") or {}).get("reason") == "Unschedulable"
            and not p["metadata"].get("deletionTimestamp")
        ]
        if not pending:
            return
        for md in sorted(
            mds, key=lambda m: (m["metadata"].get("namespace", ""), m["metadata"]["name"])
        ):
            bounds = self._bounds(md)
            if bounds is None:
                continue
            replicas = md["spec"].get("replicas", 0)
            if replicas >= bounds[1] or len(owned.get(md["metadata"]["name"], [])) < replicas:
                continue  # at max, or a scale-up still in progress
            existing = owned.get(md["metadata"]["name"])
            template = (
                existing[0] if existing else template_node(md, md["metadata"]["name"] + "-template")
            )
            bins: list[dict[str, Decimal]] = []
            for pod in pending:
                if not fits(pod, template, {}):
                    continue
                for used in bins:
                    if fits(pod, template, used):
                        break
                else:
                    used = {}
                    bins.append(used)
                for resource, amount in podutil.pod_requests(pod).items():
                    used[resource] = used.get(resource, Decimal(0)) + amount
            if bins:
                target = min(replicas + len(bins), bounds[1])
                self.client.patch(
                    GROUP,
                    VERSION,
                    PLURAL,
                    md["metadata"]["namespace"],
                    md["metadata"]["name"],
                    {"spec": {"replicas": target}},
                )
                self.client.event(
                    md,
                    "ScaledUpGroup",
                    f"Scale-up: setting group {md['metadata']['name']} size to {target}",
                )
                return

    def _scale_down(self, mds, owned, pods) -> None:
        by_node: dict[str, list[dict[str, Any]]] = {}
        for pod in pods:
            node_name = (pod.get("spec") or {}).get("nodeName")
            if node_name and not podutil.is_finished(pod):
                by_node.setdefault(node_name, []).append(pod)
        moment = time.monotonic()
        seen = set()
        for md in mds:
            bounds = self._bounds(md)
            if bounds is None:
                continue
            annotations = md["metadata"].get("annotations") or {}
            unneeded_time = _duration(annotations.get(UNNEEDED))
            if unneeded_time is None:
                unneeded_time = float(os.environ.get(UNNEEDED_ENV) or 600)
            replicas = md["spec"].get("replicas", 0)
            for node in owned.get(md["metadata"]["name"], []):
                name = node["metadata"]["name"]
                seen.add(name)
                if (node["metadata"].get("annotations") or {}).get(
                    "cluster-autoscaler.kubernetes.io/scale-down-disabled"
                ) == "true" or not self._empty(by_node.get(name, [])):
                    self._unneeded.pop(name, None)
                    continue
                since = self._unneeded.setdefault(name, moment)
                if moment - since < unneeded_time or replicas <= bounds[0]:
                    continue
                self.client.patch(
                    "", "v1", "nodes", None, name, {"metadata": {"annotations": {DELETE: now()}}}
                )
                replicas -= 1
                self.client.patch(
                    GROUP,
                    VERSION,
                    PLURAL,
                    md["metadata"]["namespace"],
                    md["metadata"]["name"],
                    {"spec": {"replicas": replicas}},
                )
                self.client.event(md, "ScaleDown", f"Scale-down: removing empty node {name}")
                self._unneeded.pop(name, None)
        for name in list(self._unneeded):
            if name not in seen:
                self._unneeded.pop(name)

    @staticmethod
    def _empty(pods) -> bool:
        for pod in pods:
            annotations = pod["metadata"].get("annotations") or {}
            if annotations.get("cluster-autoscaler.kubernetes.io/safe-to-evict") == "false":
                return False
            if annotations.get("karpenter.sh/do-not-disrupt") == "true":
                return False
            owners = pod["metadata"].get("ownerReferences") or []
            if not any(o.get("kind") == "DaemonSet" for o in owners):
                return False
        return True
