"""Register a sandbox fleet as Nodes (`serve --fleet MANIFEST.json`).

The manifest is written by `sandbox/fleet_up.py` from the sandbox inventory:
`{"nodes": [{"name", "host", "fixture", "state", "control_plane"}]}`. Each Node carries its
binding to the NVML simulator as annotations (`sandbox.gpuops.io/nvml-fixture`,
`sandbox.gpuops.io/nvml-state`), so the binding survives snapshots and a Node created through
the API with the same annotations is bound too.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from ..api import Cluster, WriteOptions

FIXTURE_ANNOTATION = "sandbox.gpuops.io/nvml-fixture"
STATE_ANNOTATION = "sandbox.gpuops.io/nvml-state"
KUBELET_VERSION = "v1.31.4"
FIELD_MANAGER = "kubelet"


def read_manifest(path: str) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as handle:
        manifest = json.load(handle)
    nodes = manifest.get("nodes")
    if not isinstance(nodes, list):
        raise ValueError(f"{path}: expected {{'nodes': [...]}}")
    for i, node in enumerate(nodes):
        if not isinstance(node, dict) or not node.get("name"):
            raise ValueError(f"{path}: nodes[{i}] needs a name")
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
