"""Simulated NVIDIA GPU Operator (with its operands NFD, GPU Feature Discovery and the device
plugin as far as the API shows them).

- The oldest ClusterPolicy is the active one; any other gets `status.state: ignored`.
- The active one starts `notReady` and becomes `ready` (conditions Ready=True/Reconciled,
  Error=False) once every GPU node's operands could come up: a GPU node whose driver is not
  loaded while `spec.driver.enabled` is false, whose MIG layout does not fit `mig.strategy:
  single`, or whose GPUs are all lost keeps it `notReady` with a message naming the node.
  Nodes labelled `nvidia.com/gpu.deploy.operands=false` are skipped, as upstream.
- GPU nodes get the labels of NFD / GFD / the operator and the device plugin's extended
  resources in capacity and allocatable (see nodestate.py), re-read whenever the node's NVML
  state or fixture file changes.
"""

from __future__ import annotations

import time
from typing import Any

from ..api import now
from . import nodestate
from .fleet import FIXTURE_ANNOTATION, STATE_ANNOTATION
from .gpus import read_host
from .runner import Controller

CLUSTER_POLICY = ("nvidia.com", "v1", "clusterpolicies")
OPERATOR_NAMESPACES = ("gpu-operator", "nvidia-gpu-operator")


def operator_namespace(client) -> str:
    for name in OPERATOR_NAMESPACES:
        if client.get("", "v1", "namespaces", None, name) is not None:
            return name
    return OPERATOR_NAMESPACES[0]


def active_policy(client) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    policies = client.list(*CLUSTER_POLICY)
    policies.sort(key=lambda p: (p["metadata"].get("creationTimestamp", ""), p["metadata"]["name"]))
    return (policies[0] if policies else None), policies[1:]


def node_view(node: dict[str, Any]) -> dict[str, Any] | None:
    annotations = node["metadata"].get("annotations") or {}
    fixture = annotations.get(FIXTURE_ANNOTATION)
    if not fixture:
        return None
    try:
        return read_host(fixture, annotations.get(STATE_ANNOTATION))
    except (OSError, ValueError) as exc:
        return {"error": str(exc), "gpus": []}


def _condition(kind, status, reason, message, generation, old):
    for condition in old:
        if condition.get("type") == kind and condition.get("status") == status:
            stamp = condition.get("lastTransitionTime") or now()
            break
    else:
        stamp = now()
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": stamp,
        "observedGeneration": generation,
    }


class GpuOperator(Controller):
    name = "gpu-operator"
    periodic = True  # the nodes' NVML state files change outside the store
    ready_delay = 0.3  # seconds a policy stays notReady, so waits see the transition

    def __init__(self, cluster, options):
        super().__init__(cluster, options)
        self.first_seen: dict[tuple[str, int], float] = {}

    def sharing_on(self) -> bool:
        return "device-plugin" in (self.options.get("controllers") or ())

    def reconcile(self) -> None:
        if self.client.rtype(*CLUSTER_POLICY) is None:
            return
        policy, others = active_policy(self.client)
        for other in others:
            self._set_status(other, "ignored", [])
        if policy is None:
            return
        spec = nodestate.policy_spec(policy)
        namespace = operator_namespace(self.client)
        plugin_map = None
        map_name = ((spec.get("devicePlugin") or {}).get("config") or {}).get("name")
        if map_name:
            plugin_map = self.client.get("", "v1", "configmaps", namespace, map_name)
        problems = []
        for node in self.client.list_cached("", "v1", "nodes"):
            view = node_view(node)
            if view is None:
                continue
            plugin_config, error = nodestate.sharing_config(plugin_map, node, spec)
            if error and self.sharing_on():
                problems.append(f"node {node['metadata']['name']}: {error}")
            wanted = nodestate.desired(node, view, spec, plugin_config, self.sharing_on())
            if wanted["problem"]:
                problems.append(wanted["problem"])
            self._apply_node(node, wanted)
        self._policy_status(policy, namespace, problems)

    def _apply_node(self, node: dict[str, Any], wanted: dict[str, Any]) -> None:
        metadata = node["metadata"]
        current = metadata.get("labels") or {}
        patch: dict[str, Any] = {}
        for key, value in wanted["labels"].items():
            if current.get(key) != value:
                patch[key] = value
        for key, value in wanted["set_once"].items():
            if key not in current:
                patch[key] = value
        for key in current:
            if nodestate.owned_label(key) and key not in wanted["labels"]:
                patch[key] = None
        if patch:
            self.client.patch(
                "", "v1", "nodes", None, metadata["name"], {"metadata": {"labels": patch}}
            )
        status = node.get("status") or {}
        resource_patch: dict[str, Any] = {"capacity": {}, "allocatable": {}}
        for field in ("capacity", "allocatable"):
            have = status.get(field) or {}
            for key, value in wanted["resources"].items():
                if have.get(key) != value:
                    resource_patch[field][key] = value
            for key in have:
                if nodestate.owned_resource(key) and key not in wanted["resources"]:
                    resource_patch[field][key] = None
        if resource_patch["capacity"] or resource_patch["allocatable"]:
            self.client.patch(
                "", "v1", "nodes", None, metadata["name"], {"status": resource_patch}, "status"
            )

    def _policy_status(self, policy: dict[str, Any], namespace: str, problems: list[str]) -> None:
        metadata = policy["metadata"]
        generation = metadata.get("generation", 1)
        key = (metadata["uid"], generation)
        seen = self.first_seen.setdefault(key, time.monotonic())
        settled = time.monotonic() - seen >= self.ready_delay
        if problems or not settled:
            message = "; ".join(problems) if problems else "ClusterPolicy is being reconciled"
            reason = "OperandNotReady" if problems else "Reconciling"
            self._set_status(
                policy,
                "notReady",
                [
                    ("Ready", "False", reason, message),
                    ("Error", "True" if problems else "False", reason, message),
                ],
                namespace,
            )
            return
        message = "ClusterPolicy is ready as all resources have been successfully reconciled"
        self._set_status(
            policy,
            "ready",
            [("Ready", "True", "Reconciled", message), ("Error", "False", "Ready", "")],
            namespace,
        )

    def _set_status(self, policy, state, conditions, namespace=None) -> None:
        old = (policy.get("status") or {}).get("conditions") or []
        generation = policy["metadata"].get("generation", 1)
        status: dict[str, Any] = {"state": state}
        if namespace:
            status["namespace"] = namespace
        status["conditions"] = [
            _condition(kind, value, reason, message, generation, old)
            for kind, value, reason, message in conditions
        ]
        current = policy.get("status") or {}
        if {k: current.get(k) for k in status} == status:
            return
        self.client.patch(
            *CLUSTER_POLICY, None, policy["metadata"]["name"], {"status": status}, "status"
        )
