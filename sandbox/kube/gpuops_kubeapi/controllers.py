"""What the apiserver's defaulting and the workload controllers would add, as pure functions.

Defaults are applied on every write (the apiserver defaults while decoding). The workload
"controllers" are opt-in (`serve --simulate-workloads`): they report every Deployment,
StatefulSet, ReplicaSet and DaemonSet as fully rolled out, so `k8s` with `wait: true` works
without pods being run.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "ReplicaSet", "DaemonSet")


def apply_workload_defaults(kind: str, obj: dict[str, Any]) -> None:
    """The apps/v1 SetDefaults_* values kubernetes.core's readiness checks rely on."""
    spec = obj.get("spec")
    if kind not in WORKLOAD_KINDS or not isinstance(spec, dict):
        return
    if kind != "DaemonSet":
        spec.setdefault("replicas", 1)
    spec.setdefault("revisionHistoryLimit", 10)
    if kind == "Deployment":
        strategy = spec.setdefault("strategy", {})
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            rolling = strategy.setdefault("rollingUpdate", {})
            rolling.setdefault("maxUnavailable", "25%")
            rolling.setdefault("maxSurge", "25%")
        spec.setdefault("progressDeadlineSeconds", 600)
    elif kind == "StatefulSet":
        strategy = spec.setdefault("updateStrategy", {})
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            strategy.setdefault("rollingUpdate", {}).setdefault("partition", 0)
        spec.setdefault("podManagementPolicy", "OrderedReady")
    elif kind == "DaemonSet":
        strategy = spec.setdefault("updateStrategy", {})
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            rolling = strategy.setdefault("rollingUpdate", {})
            rolling.setdefault("maxUnavailable", 1)
            rolling.setdefault("maxSurge", 0)


def _revision(obj: dict[str, Any]) -> str:
    template = json.dumps((obj.get("spec") or {}).get("template") or {}, sort_keys=True)
    return f"{obj['metadata']['name']}-{hashlib.sha256(template.encode()).hexdigest()[:10]}"


def node_matches(node_labels: dict[str, str], workload: dict[str, Any]) -> bool:
    pod_spec = ((workload.get("spec") or {}).get("template") or {}).get("spec") or {}
    selector = pod_spec.get("nodeSelector") or {}
    return all(node_labels.get(key) == value for key, value in selector.items())


def rolled_out_status(
    kind: str, obj: dict[str, Any], now: str, matching_nodes: int = 0
) -> dict[str, Any]:
    """Status of a workload whose pods all run and are ready at its current generation."""
    generation = obj["metadata"].get("generation", 1)
    if kind == "DaemonSet":
        count = matching_nodes
        status: dict[str, Any] = {
            "currentNumberScheduled": count,
            "desiredNumberScheduled": count,
            "numberMisscheduled": 0,
            "numberReady": count,
            "observedGeneration": generation,
            "updatedNumberScheduled": count,
        }
        if count:
            status["numberAvailable"] = count
        return status
    replicas = (obj.get("spec") or {}).get("replicas", 1)
    status = {"observedGeneration": generation}
    if replicas:
        status.update(replicas=replicas, readyReplicas=replicas, availableReplicas=replicas)
    if kind == "Deployment":
        if replicas:
            status["updatedReplicas"] = replicas
        status["conditions"] = [
            {
                "type": "Available",
                "status": "True",
                "lastUpdateTime": now,
                "lastTransitionTime": now,
                "reason": "MinimumReplicasAvailable",
                "message": "Deployment has minimum availability.",
            },
            {
                "type": "Progressing",
                "status": "True",
                "lastUpdateTime": now,
                "lastTransitionTime": now,
                "reason": "NewReplicaSetAvailable",
                "message": f'ReplicaSet "{_revision(obj)}" has successfully progressed.',
            },
        ]
    elif kind == "StatefulSet":
        revision = _revision(obj)
        status.update(
            replicas=replicas,
            currentReplicas=replicas,
            updatedReplicas=replicas,
            currentRevision=revision,
            updateRevision=revision,
            collisionCount=0,
        )
    elif kind == "ReplicaSet" and replicas:
        status["fullyLabeledReplicas"] = replicas
    return status
