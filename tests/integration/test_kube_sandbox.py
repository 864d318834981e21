"""The `kube` fixture: the Kubernetes API stand-in with the sandbox fleet registered as Nodes."""

from __future__ import annotations

import json

import yaml
from conftest import SANDBOX_INVENTORY, fleet_up


def inventory_kube_nodes() -> dict[str, dict]:
    listing = fleet_up.inventory_listing(SANDBOX_INVENTORY)
    return {
        host: hostvars for host, hostvars in listing["_meta"]["hostvars"].items() if hostvars.get("gpuops_kube_node")
    }


def test_every_inventory_host_is_a_ready_node_bound_to_its_gpus(kube, sandbox):
    from kubernetes import client

    core = client.CoreV1Api(kube.api_client())
    nodes = {node.metadata.name: node for node in core.list_node().items}
    expected = inventory_kube_nodes()
    assert set(nodes) == set(expected)
    for host, hostvars in expected.items():
        node = nodes[host]
        assert node.metadata.labels["kubernetes.io/hostname"] == host
        assert node.metadata.labels["kubernetes.io/os"] == "linux"
        ready = [c for c in node.status.conditions if c.type == "Ready"]
        assert ready and ready[0].status == "True"
        annotations = node.metadata.annotations
        assert annotations["sandbox.gpuops.io/nvml-state"] == str(sandbox["dir"] / "hosts" / host / "nvml-state.json")
        assert annotations["sandbox.gpuops.io/nvml-fixture"].endswith(f"/{hostvars['gpuops_sandbox_fixture']}.yml")
    control_plane = fleet_up.inventory_listing(SANDBOX_INVENTORY)["kube_control_plane"]["hosts"]
    for name, node in nodes.items():
        is_cp = "node-role.kubernetes.io/control-plane" in node.metadata.labels
        assert is_cp == (name in control_plane), name


def test_kubeconfig_and_env_point_at_the_server(kube):
    config = yaml.safe_load(kube.kubeconfig.read_text())
    assert config["clusters"][0]["cluster"]["server"] == kube.url
    assert kube.env == {"GPUOPS_KUBECONFIG": str(kube.kubeconfig), "K8S_AUTH_KUBECONFIG": str(kube.kubeconfig)}
    manifest = json.loads(fleet_up.kube_fleet_path(kube.state_dir.parent / "sandbox").read_text())
    assert {n["name"] for n in manifest["nodes"]} == set(inventory_kube_nodes())
