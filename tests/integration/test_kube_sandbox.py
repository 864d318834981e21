"""The `kube` fixture: the Kubernetes API stand-in with the sandbox fleet registered as Nodes."""

from __future__ import annotations

import json

import yaml
from conftest import REPO_ROOT, SANDBOX_INVENTORY, fleet_up, load_fixture, run_playbook

PLAYBOOKS = REPO_ROOT / "tests" / "integration" / "playbooks"


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


POLICY = {
    "apiVersion": "nvidia.com/v1",
    "kind": "ClusterPolicy",
    "metadata": {"name": "cluster-policy"},
    "spec": {
        "operator": {},
        "daemonsets": {},
        "dcgm": {},
        "dcgmExporter": {},
        "devicePlugin": {},
        # gpu-new-01's driver is not loaded: the operator's driver container would provide it.
        "driver": {"enabled": True},
        "gfd": {},
        "nodeStatusExporter": {},
        "toolkit": {},
        "mig": {"strategy": "mixed"},
        "migManager": {"config": {"default": ""}},
    },
}


def test_k8s_info_through_the_inventory_kubeconfig(kube, sandbox):
    dynamic = kube.dynamic()
    dynamic.resources.get(api_version="nvidia.com/v1", kind="ClusterPolicy").create(body=POLICY)
    run = run_playbook(PLAYBOOKS / "kube_sandbox_info.yml", env={**sandbox["env"], **kube.env})
    assert run.rc == 0, run
    assert run.recap["cpu-01"]["failed"] == 0
    report = json.loads(run.stdout.split('"msg": ', 1)[1].split("\n}\n", 1)[0])
    assert report["nodes"] == sorted(inventory_kube_nodes())
    assert report["policy_state"] == "ready"
    # Every GPU host advertises its fixture's GPUs less the lost ones (one on gpu-a100-02).
    for host, fixture in sandbox["fixtures"].items():
        doc = load_fixture(fixture)
        lost = sum(
            1 for gpu in doc.get("gpus") or [] if any(f.get("error") == "GPU_IS_LOST" for f in gpu.get("faults") or [])
        )
        mig = [g for g in doc.get("gpus") or [] if (g.get("mig") or {}).get("current")]
        expected = len(doc.get("gpus") or []) - lost - len(mig)
        got = report["allocatable"][host].get("nvidia.com/gpu", "0")
        assert got == str(expected), (host, report["allocatable"][host])
