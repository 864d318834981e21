"""Register a sandbox fleet as Nodes (`serve --fleet MANIFEST.json`).

The manifest is written by `sandbox/fleet_up.py` from the sandbox inventory:
`{"nodes": [{"name", "host", "fixture", "state", "control_plane", "labels"}]}`. `labels` (str ->
str) are what the kubelet's `--node-labels` adds to its own (for example the EKS-style node's
`node.kubernetes.io/instance-type`, `eks.amazonaws.com/capacityType`,
`topology.kubernetes.io/zone`); they are checked as Kubernetes label syntax and, as the kubelet
does, keys in the `kubernetes.io` / `k8s.io` namespaces must be in its allowed set or under
`kubelet.kubernetes.io/` / `node.kubernetes.io/`. Each Node carries its
binding to the NVML simulator as annotations (`sandbox.gpuops.io/nvml-fixture`,
`sandbox.gpuops.io/nvml-state`), so the binding survives snapshots and a Node created through
the API with the same annotations is bound too.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from ..api import Cluster, WriteOptions
from ..selectors import label_errors

FIXTURE_ANNOTATION = "sandbox.gpuops.io/nvml-fixture"
STATE_ANNOTATION = "sandbox.gpuops.io/nvml-state"
KUBELET_VERSION = "v1.31.4"
FIELD_MANAGER = "kubelet"
# The kubelet's --node-labels rule (kubeletapis.KubeletLabels and allowed prefixes).
KUBELET_ALLOWED_LABELS = (
    "beta.kubernetes.io/arch",
    "beta.kubernetes.io/instance-type",
    "beta.kubernetes.io/os",
    "failure-domain.beta.kubernetes.io/region",
    "failure-domain.beta.kubernetes.io/zone",
    "kubernetes.io/arch",
    "kubernetes.io/hostname",
    "kubernetes.io/os",
    "node.kubernetes.io/instance-type",
    "topology.kubernetes.io/region",
    "topology.kubernetes.io/zone",
)
KUBELET_ALLOWED_PREFIXES = ("kubelet.kubernetes.io", "node.kubernetes.io")


def _kubelet_may_set(key: str) -> bool:
    prefix = key.split("/", 1)[0] if "/" in key else ""
    restricted = any(
        prefix == domain or prefix.endswith("." + domain) for domain in ("kubernetes.io", "k8s.io")
    )
    if not restricted or key in KUBELET_ALLOWED_LABELS:
        return True
    return any(prefix == p or prefix.endswith("." + p) for p in KUBELET_ALLOWED_PREFIXES)


def manifest_labels(entry: dict[str, Any]) -> dict[str, str]:
    """A manifest entry's `labels`, validated; ValueError naming the node and the label."""
    name = entry.get("name")
    labels = entry.get("labels")
    if labels is None:
        return {}
    if not isinstance(labels, dict):
        raise ValueError(f"node {name}: labels must be a mapping of str to str")
    for key, value in labels.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise ValueError(
                f"node {name}: label {key!r}: keys and values must be strings, got {value!r}"
            )
        prefix = key.split("/", 1)[0] if "/" in key else ""
        problems = [c["message"] for c in label_errors({key: value})]
        if len(prefix) > 253:
            problems.append(
                f'Invalid value: "{key}": prefix part must be no more than 253 characters'
            )
        if problems:
            raise ValueError(f"node {name}: label {key}={value!r}: {'; '.join(problems)}")
        if not _kubelet_may_set(key):
            raise ValueError(
                f"node {name}: label {key}: labels in the 'kubernetes.io' or 'k8s.io' namespace "
                f"must begin with an allowed prefix ({', '.join(KUBELET_ALLOWED_PREFIXES)}) or be "
                f"in the allowed set ({', '.join(KUBELET_ALLOWED_LABELS)})"
            )
    return dict(labels)


def read_manifest(path: str) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as handle:
        manifest = json.load(handle)
    nodes = manifest.get("nodes")
    if not isinstance(nodes, list):
        raise ValueError(f"{path}: expected {{'nodes': [...]}}")
    for i, node in enumerate(nodes):
        if not isinstance(node, dict) or not node.get("name"):
            raise ValueError(f"{path}: nodes[{i}] needs a name")
        try:
            manifest_labels(node)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
    return nodes


def _kernel(fixture_path: str | None) -> str:
    if not fixture_path:
        return "6.1.0-28-amd64"
    try:
        with open(fixture_path, encoding="utf-8") as handle:
            doc = yaml.safe_load(handle) or {}
    except OSError:
        return "6.1.0-28-amd64"
    return str((doc.get("host") or {}).get("kernel") or "6.1.0-28-amd64")


def node_object(entry: dict[str, Any], index: int, now: str) -> dict[str, Any]:
    """A Node as a kubelet registers it: labels, capacity, Ready, nodeInfo."""
    name = entry["name"]
    labels = {
        "beta.kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
    }
    labels.update(manifest_labels(entry))
    annotations = {
        "node.alpha.kubernetes.io/ttl": "0",
        "volumes.kubernetes.io/controller-managed-attach-detach": "true",
    }
    if entry.get("fixture"):
        annotations[FIXTURE_ANNOTATION] = entry["fixture"]
    if entry.get("state"):
        annotations[STATE_ANNOTATION] = entry["state"]
    spec: dict[str, Any] = {"podCIDR": f"10.244.{index}.0/24", "podCIDRs": [f"10.244.{index}.0/24"]}
    if entry.get("control_plane"):
        labels["node-role.kubernetes.io/control-plane"] = ""
        labels["node.kubernetes.io/exclude-from-external-load-balancers"] = ""
        spec["taints"] = [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]
    capacity = {
        "cpu": str(entry.get("cpu", 64)),
        "ephemeral-storage": "479151816Ki",
        "hugepages-1Gi": "0",
        "hugepages-2Mi": "0",
        "memory": str(entry.get("memory", "528012244Ki")),
        "pods": "110",
    }
    allocatable = dict(capacity, **{"ephemeral-storage": "441586106363"})
    conditions = [
        (
            "MemoryPressure",
            "False",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available",
        ),
        ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
        ("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
    ]
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels, "annotations": annotations},
        "spec": spec,
        "status": {
            "capacity": capacity,
            "allocatable": allocatable,
            "conditions": [
                {
                    "type": kind,
                    "status": status,
                    "reason": reason,
                    "message": message,
                    "lastHeartbeatTime": now,
                    "lastTransitionTime": now,
                }
                for kind, status, reason, message in conditions
            ],
            "addresses": [
                {"type": "InternalIP", "address": f"10.0.0.{10 + index}"},
                {"type": "Hostname", "address": name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "architecture": "amd64",
                "bootID": "",
                "containerRuntimeVersion": "containerd://1.7.24",
                "kernelVersion": _kernel(entry.get("fixture")),
                "kubeProxyVersion": KUBELET_VERSION,
                "kubeletVersion": KUBELET_VERSION,
                "machineID": "",
                "operatingSystem": "linux",
                "osImage": "Debian GNU/Linux 12 (bookworm)",
                "systemUUID": "",
            },
        },
    }


def register(cluster: Cluster, nodes: list[dict[str, Any]], now: str) -> int:
    """Create the Nodes that do not exist yet; returns how many were created."""
    node_type = cluster.types[("", "v1", "nodes")]
    created = 0
    for index, entry in enumerate(nodes):
        if cluster.store.get(node_type.key, ("", entry["name"])) is not None:
            continue
        cluster.create(
            node_type,
            None,
            node_object(entry, index, now),
            WriteOptions(field_manager=FIELD_MANAGER),
        )
        created += 1
    return created
