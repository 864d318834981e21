"""The cluster-autoscaler stand-in (clusterapi) with the scheduler: a GPU pod that fits no node
grows the MachineDeployment the autoscaling role annotated from zero, its machine's Node (from
the scale-from-zero annotations) takes the pod, and the empty node goes again."""

from __future__ import annotations

import time

import pytest
from ansible_collections.gpuops.cluster.plugins.plugin_utils.autoscaling import plan

from conftest import CRDS, start_server, stop_server

MD = {
    "apiVersion": "cluster.x-k8s.io/v1beta2",
    "kind": "MachineDeployment",
    "metadata": {"name": "gpu-a100", "namespace": "default"},
    "spec": {
        "clusterName": "onprem",
        "replicas": 0,
        "selector": {"matchLabels": {"pool": "a100"}},
        "template": {
            "metadata": {"labels": {"pool": "a100"}},
            "spec": {
                "clusterName": "onprem",
                "bootstrap": {"dataSecretName": "a100"},
                "infrastructureRef": {
                    "apiGroup": "infrastructure.cluster.x-k8s.io",
                    "kind": "Metal3MachineTemplate",
                    "name": "a100",
                },
            },
        },
    },
}


@pytest.fixture
def cluster(tmp_path, monkeypatch):
    monkeypatch.setenv("GPUOPS_SANDBOX_CA_UNNEEDED_SECONDS", "1")
    server = start_server(
        tmp_path / "kube",
        CRDS / "cluster.x-k8s.io_machinedeployments.yaml",
        "--controllers",
        "scheduler,cluster-autoscaler",
    )
    yield server
    stop_server(server)


def wait(predicate, timeout=30.0, message=""):
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(message or "not reached in time")
        time.sleep(0.2)


def test_pending_gpu_pod_scales_the_machine_deployment_from_zero_and_back(cluster):
    from kubernetes import client, config
    from kubernetes.dynamic import DynamicClient

    configuration = client.Configuration()
    config.load_kube_config(config_file=str(cluster.kubeconfig), client_configuration=configuration)
    api = client.ApiClient(configuration)
    core = client.CoreV1Api(api)
    mds = DynamicClient(api).resources.get(
        api_version="cluster.x-k8s.io/v1beta2", kind="MachineDeployment"
    )
    result = plan(
        {
            "node_groups": [
                {
                    "name": "a100",
                    "platform": "onprem",
                    "machine_deployment": {"name": "gpu-a100", "namespace": "default"},
                    "min_size": 0,
                    "max_size": 2,
                    "capacity": {"cpu": 64, "memory": "512Gi", "gpu_count": 8},
                    "taints": [
                        {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
                    ],
                }
            ]
        }
    )
    assert result["errors"] == []
    body = dict(
        MD,
        metadata=dict(
            MD["metadata"], annotations=result["machine_deployments"][0]["metadata"]["annotations"]
        ),
    )
    mds.create(body=body, namespace="default")

    def pod(name, gpus, tolerate=True):
        spec = {
            "containers": [
                {"name": "c", "image": "x", "resources": {"limits": {"nvidia.com/gpu": str(gpus)}}}
            ],
        }
        if tolerate:
            spec["tolerations"] = [
                {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
            ]
        core.create_namespaced_pod("default", {"metadata": {"name": name}, "spec": spec})

    def replicas():
        return mds.get(name="gpu-a100", namespace="default").spec.replicas

    # Two pods of 6 GPUs: 8-GPU nodes take one each -> two nodes (max 2).
    pod("train-a", 6)
    pod("train-b", 6)
    wait(lambda: replicas() == 2, message=f"replicas {replicas()}, want 2")
    nodes = wait(
        lambda: (
            [n for n in core.list_node().items if n.metadata.name.startswith("gpu-a100-")] or None
        )
    )
    wait(
        lambda: (
            len([n for n in core.list_node().items if n.metadata.name.startswith("gpu-a100-")]) == 2
        )
    )
    node = core.read_node(nodes[0].metadata.name)
    assert node.status.allocatable["nvidia.com/gpu"] == "8"
    assert node.metadata.labels["cluster-api/accelerator"] == "a100"
    assert [(t.key, t.value, t.effect) for t in node.spec.taints] == [
        ("nvidia.com/gpu", "present", "NoSchedule")
    ]
    wait(
        lambda: all(
            core.read_namespaced_pod(p, "default").spec.node_name for p in ("train-a", "train-b")
        )
    )

    # A pod no template fits (no toleration of the GPU taint) never scales anything past max.
    pod("cpu-only", 1, tolerate=False)
    time.sleep(1.5)
    assert replicas() == 2

    # Empty nodes go after the unneeded time (1 s here); the node still running a pod stays.
    core.delete_namespaced_pod("train-b", "default", grace_period_seconds=0)
    core.delete_namespaced_pod("cpu-only", "default", grace_period_seconds=0)
    wait(lambda: replicas() == 1, message=f"replicas {replicas()}, want 1")
    wait(
        lambda: (
            len([n for n in core.list_node().items if n.metadata.name.startswith("gpu-a100-")]) == 1
        )
    )
    left = next(n for n in core.list_node().items if n.metadata.name.startswith("gpu-a100-"))
    left = left.metadata.name
    assert core.read_namespaced_pod("train-a", "default").spec.node_name == left
    api.close()
