"""End to end in the sandbox, on-prem: the queue-depth metric rises in a real Prometheus -> the
KEDA stand-in scales the inference Deployment (HPA algorithm) -> its GPU pods go pending ->
cluster-autoscaler grows the MachineDeployment -> the new node runs them -> the metric falls ->
replicas fall -> the emptied node is removed. The objects are the autoscaling role's rendering."""

from __future__ import annotations

import sys
import time

import pytest
from conftest import REPO_ROOT, start_kube

sys.path.insert(0, str(REPO_ROOT / "sandbox" / "metrics"))
sys.path.insert(0, str(REPO_ROOT / "build" / "collections"))

from ansible_collections.gpuops.cluster.plugins.plugin_utils.autoscaling import plan  # noqa: E402
from gpuops_metrics.prometheus import PrometheusServer, find_binary  # noqa: E402

CONTROLLERS = [
    "serviceaccount",
    "deployment",
    "replicaset",
    "scheduler",
    "kubelet",
    "keda",
    "hpa",
    "cluster-autoscaler",
]
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def wait(predicate, timeout=40.0, message=""):
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(message() if callable(message) else message or "not reached in time")
        time.sleep(0.25)


@pytest.fixture
def stack(tmp_path, monkeypatch):
    if find_binary() is None:
        pytest.skip("prometheus not on PATH (make host-tools installs Debian's package)")
    from prometheus_client import CollectorRegistry, Gauge, start_http_server

    registry = CollectorRegistry()
    gauge = Gauge("llm_queue_depth", "Requests waiting", registry=registry)
    http, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    prometheus = PrometheusServer.start(
        tmp_path / "prometheus",
        [{"job_name": "llm", "static_configs": [{"targets": [f"127.0.0.1:{http.server_port}"]}]}],
    )
    monkeypatch.setenv("GPUOPS_SANDBOX_PROMETHEUS_URL", prometheus.url)
    monkeypatch.setenv("GPUOPS_SANDBOX_HPA_SYNC_SECONDS", "1")
    monkeypatch.setenv("GPUOPS_SANDBOX_CA_UNNEEDED_SECONDS", "1")
    kube = start_kube(
        tmp_path / "kube",
        crds=["keda.sh_scaledobjects.yaml", "cluster.x-k8s.io_machinedeployments.yaml"],
        controllers=CONTROLLERS,
    )
    try:
        yield gauge, prometheus, kube
    finally:
        kube.stop()
        prometheus.stop()
        http.shutdown()
        thread.join(timeout=5)


def test_load_scales_pods_then_nodes_and_back(stack):
    from kubernetes import client

    gauge, prometheus, kube = stack
    api = kube.api_client()
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    dynamic = kube.dynamic()
    rendered = plan(
        {
            "prometheus_url": "http://prometheus.monitoring.svc:9090",
            "node_groups": [
                {
                    "name": "a100",
                    "platform": "onprem",
                    "machine_deployment": {"name": "gpu-a100", "namespace": "default"},
                    "min_size": 1,
                    "max_size": 3,
                    "capacity": {"cpu": 64, "memory": "512Gi", "gpu_count": 8},
                    "taints": [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}],
                }
            ],
            "inference": [
                {
                    "deployment": "llm",
                    "namespace": "default",
                    "node_group": "a100",
                    "max_replicas": 6,
                    "polling_interval": 1,
                    "behavior": {
                        "scaleDown": {
                            "stabilizationWindowSeconds": 2,
                            "policies": [{"type": "Percent", "value": 100, "periodSeconds": 1}],
                        }
                    },
                    "triggers": [
                        {
                            "kind": "queue_depth",
                            "metric": "llm_queue_depth",
                            "target": 5,
                            "query": "sum(llm_queue_depth)",
                        }
                    ],
                }
            ],
        }
    )
    assert rendered["errors"] == []
    md = rendered["machine_deployments"][0]
    md["spec"] = {
        "clusterName": "onprem",
        "replicas": 1,
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
    }
    mds = dynamic.resources.get(api_version="cluster.x-k8s.io/v1beta2", kind="MachineDeployment")
    mds.create(body=md, namespace="default")
    apps.create_namespaced_deployment(
        "default",
        {
            "metadata": {"name": "llm"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "llm"}},
                "template": {
                    "metadata": {"labels": {"app": "llm"}},
                    "spec": {
                        "tolerations": [GPU_TOLERATION],
                        "containers": [
                            {"name": "llm", "image": "llm:1", "resources": {"limits": {"nvidia.com/gpu": "4"}}}
                        ],
                    },
                },
            },
        },
    )
    (scaled,) = rendered["scaled_objects"]
    dynamic.resources.get(api_version="keda.sh/v1alpha1", kind="ScaledObject").create(body=scaled, namespace="default")

    def running():
        pods = core.list_namespaced_pod("default", label_selector="app=llm").items
        return sorted(
            p.spec.node_name for p in pods if p.status.phase == "Running" and not p.metadata.deletion_timestamp
        )

    def gpu_nodes():
        return sorted(n.metadata.name for n in core.list_node().items if n.metadata.name.startswith("gpu-a100-"))

    wait(lambda: len(running()) == 1, message=lambda: f"running {running()}")
    assert len(gpu_nodes()) == 1

    # Load: 18 waiting requests / 5 per replica -> 4 replicas x 4 GPUs -> a second 8-GPU node.
    gauge.set(18)
    prometheus.wait_for("llm_queue_depth == 18")
    wait(lambda: apps.read_namespaced_deployment("llm", "default").spec.replicas == 4, message="no scale-up")
    wait(lambda: len(running()) == 4, timeout=60, message=lambda: f"running {running()} nodes {gpu_nodes()}")
    assert mds.get(name="gpu-a100", namespace="default").spec.replicas == 2
    assert len(set(running())) == 2 and len(gpu_nodes()) == 2

    # Load gone: one replica, and the node it left empty is removed (min_size 1 keeps one).
    gauge.set(2)
    prometheus.wait_for("llm_queue_depth == 2")
    wait(lambda: len(running()) == 1, timeout=60, message=lambda: f"running {running()}")
    wait(lambda: len(gpu_nodes()) == 1, timeout=60, message=lambda: f"nodes {gpu_nodes()}")
    assert mds.get(name="gpu-a100", namespace="default").spec.replicas == 1
    assert running() == gpu_nodes()
