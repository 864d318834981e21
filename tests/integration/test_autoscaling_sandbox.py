"""End to end in the sandbox, one stand-in, one real Prometheus and one moto server for both
scenarios (module scope, fast controller clocks):

- on-prem: the queue-depth metric rises -> the KEDA stand-in scales the inference Deployment (HPA
  algorithm) -> its GPU pods go pending -> cluster-autoscaler grows the MachineDeployment -> the
  new node runs them -> the metric falls -> replicas fall -> the emptied node is removed;
- cloud: the same load on a Deployment of a Karpenter pool (NodePool and EC2NodeClass rendered
  by karpenter_pool's code from moto's EC2 data) -> the stand-in Karpenter launches NodeClaims of
  the pool's GPU instance type -> the pods run -> load drops -> consolidation removes what is
  empty or underutilized, one node at a time (budget), while the node of a do-not-disrupt
  training Job stays.

The objects are the autoscaling role's and karpenter_pool's rendering."""

from __future__ import annotations

import sys
import time

import pytest
from conftest import REPO_ROOT, start_kube

sys.path.insert(0, str(REPO_ROOT / "sandbox" / "metrics"))
sys.path.insert(0, str(REPO_ROOT / "build" / "collections"))
sys.path.insert(0, str(REPO_ROOT / "tests" / "helpers"))  # the helpers both test tiers share

from ansible_collections.gpuops.cluster.plugins.module_utils.karpenter.instances import lookup  # noqa: E402
from ansible_collections.gpuops.cluster.plugins.module_utils.karpenter.runner import plan as pool_plan  # noqa: E402
from ansible_collections.gpuops.cluster.plugins.module_utils.karpenter.spec import validate_params  # noqa: E402
from ansible_collections.gpuops.cluster.plugins.plugin_utils.autoscaling import plan  # noqa: E402
from cluster_policy import cluster_policy  # noqa: E402
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
    "karpenter",
    "gpu-operator",
    "job",
]
CRDS = [
    "keda.sh_scaledobjects.yaml",
    "cluster.x-k8s.io_machinedeployments.yaml",
    "karpenter.sh_nodepools.yaml",
    "karpenter.sh_nodeclaims.yaml",
    "karpenter.sh_nodeoverlays.yaml",
    "karpenter.k8s.aws_ec2nodeclasses.yaml",
    "nvidia.com_clusterpolicies.yaml",
]
AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def wait(predicate, timeout=120.0, message=""):
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(message() if callable(message) else message or "not reached in time")
        time.sleep(0.25)


def _inference(deployment, namespace, node_group, metric):
    """An inference entry of the autoscaling plan: up to 6 replicas, one per 5 requests waiting
    in `metric` (polled every second), scaled down within seconds."""
    return {
        "deployment": deployment,
        "namespace": namespace,
        "node_group": node_group,
        "max_replicas": 6,
        "polling_interval": 1,
        "behavior": {
            "scaleDown": {
                "stabilizationWindowSeconds": 2,
                "policies": [{"type": "Percent", "value": 100, "periodSeconds": 1}],
            }
        },
        "triggers": [{"kind": "queue_depth", "metric": metric, "target": 5, "query": f"sum({metric})"}],
    }


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    if find_binary() is None:
        pytest.skip("prometheus not on PATH (make host-tools installs Debian's package)")
    from moto.server import ThreadedMotoServer
    from prometheus_client import CollectorRegistry, Gauge, start_http_server

    tmp_path = tmp_path_factory.mktemp("autoscaling-sandbox")
    registry = CollectorRegistry()
    gauges = {
        name: Gauge(name, "Requests waiting", registry=registry) for name in ("llm_queue_depth", "vllm_queue_depth")
    }
    http, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    prometheus = kube = None
    with pytest.MonkeyPatch.context() as env:
        try:
            prometheus = PrometheusServer.start(
                tmp_path / "prometheus",
                [{"job_name": "llm", "static_configs": [{"targets": [f"127.0.0.1:{http.server_port}"]}]}],
            )
            for key, value in dict(
                AWS_ENV,
                GPUOPS_SANDBOX_PROMETHEUS_URL=prometheus.url,
                GPUOPS_SANDBOX_AWS_ENDPOINT=endpoint,
                GPUOPS_SANDBOX_KARPENTER_DIR=str(tmp_path / "karpenter"),
                GPUOPS_SANDBOX_HPA_SYNC_SECONDS="1",
                GPUOPS_SANDBOX_CA_UNNEEDED_SECONDS="1",
            ).items():
                env.setenv(key, value)
            kube = start_kube(tmp_path / "kube", crds=CRDS, controllers=CONTROLLERS)
            yield gauges, prometheus, kube, endpoint
        finally:
            if kube is not None:
                kube.stop()
            if prometheus is not None:
                prometheus.stop()
            moto.stop()
            http.shutdown()
            thread.join(timeout=5)


def test_load_scales_pods_then_nodes_and_back(stack):
    from kubernetes import client

    gauges, prometheus, kube, _endpoint = stack
    gauge = gauges["llm_queue_depth"]
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
            "inference": [_inference("llm", "default", "a100", "llm_queue_depth")],
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
    wait(lambda: len(running()) == 4, timeout=180, message=lambda: f"running {running()} nodes {gpu_nodes()}")
    assert mds.get(name="gpu-a100", namespace="default").spec.replicas == 2
    assert len(set(running())) == 2 and len(gpu_nodes()) == 2

    # Load gone: one replica, and the node it left empty is removed (min_size 1 keeps one).
    gauge.set(2)
    prometheus.wait_for("llm_queue_depth == 2")
    wait(lambda: len(running()) == 1, timeout=180, message=lambda: f"running {running()}")
    wait(lambda: len(gpu_nodes()) == 1, timeout=180, message=lambda: f"nodes {gpu_nodes()}")
    assert mds.get(name="gpu-a100", namespace="default").spec.replicas == 1
    assert running() == gpu_nodes()


POOL = "cloud-a100"
CLOUD_TAINT = {"key": "gpuops.io/cloud", "value": "true", "effect": "NoSchedule"}
DO_NOT_DISRUPT = "karpenter.sh/do-not-disrupt"


def _cloud_pod_spec(gpus):
    return {
        "tolerations": [GPU_TOLERATION, dict(CLOUD_TAINT, operator="Equal")],
        "nodeSelector": {"karpenter.sh/nodepool": POOL},
        "containers": [{"name": "main", "image": "vllm:1", "resources": {"limits": {"nvidia.com/gpu": str(gpus)}}}],
    }


def _history(list_call, resource_version, **kwargs):
    """Every watch event since resource_version (the stand-in replays its event log), in order."""
    from kubernetes import watch

    return list(watch.Watch().stream(list_call, resource_version=resource_version, timeout_seconds=1, **kwargs))


def test_cloud_load_launches_karpenter_gpu_nodes_then_consolidates_within_budget(stack):
    import boto3
    from kubernetes import client

    gauges, prometheus, kube, endpoint = stack
    gauge = gauges["vllm_queue_depth"]
    api = kube.api_client()
    core, apps, batch = client.CoreV1Api(api), client.AppsV1Api(api), client.BatchV1Api(api)
    dynamic = kube.dynamic()
    dynamic.resources.get(api_version="nvidia.com/v1", kind="ClusterPolicy").create(body=cluster_policy())
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="serving")))

    # The pool as karpenter_pool renders it, its instance type resolved against moto's EC2.
    ec2 = boto3.client("ec2", endpoint_url=endpoint, region_name=AWS_ENV["AWS_DEFAULT_REGION"])
    subnet = next(s for s in ec2.describe_subnets()["Subnets"] if s["AvailabilityZone"] == "us-east-1a")
    spec = validate_params(
        {
            "name": POOL,
            "instance_types": ["p4d.24xlarge"],
            "ami_alias": "al2023@v20250505",
            "role": "KarpenterNodeRole",
            "subnet_selector": [{"id": subnet["SubnetId"]}],
            "security_group_selector": [{"id": "sg-0abc"}],
            "consolidation_policy": "WhenEmptyOrUnderutilized",
            "consolidate_after": "1s",
            "budgets": [{"nodes": "1"}],
            "limits": {"gpu": "32"},
            "taints": [{"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}, CLOUD_TAINT],
        }
    )
    instances, _zones = lookup(ec2, spec)
    node_pool, node_class, overlays = pool_plan(spec, instances)
    assert overlays == []
    dynamic.resources.get(api_version="karpenter.k8s.aws/v1", kind="EC2NodeClass").create(body=node_class)
    dynamic.resources.get(api_version="karpenter.sh/v1", kind="NodePool").create(body=node_pool)

    rendered = plan(
        {
            "prometheus_url": "http://prometheus.monitoring.svc:9090",
            "node_groups": [{"name": POOL, "platform": "cloud"}],
            "inference": [_inference("vllm", "serving", POOL, "vllm_queue_depth")],
        }
    )
    assert rendered["errors"] == [] and rendered["machine_deployments"] == []
    apps.create_namespaced_deployment(
        "serving",
        {
            "metadata": {"name": "vllm"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "vllm"}},
                "template": {"metadata": {"labels": {"app": "vllm"}}, "spec": _cloud_pod_spec(4)},
            },
        },
    )
    train_spec = dict(_cloud_pod_spec(4), restartPolicy="Never")
    batch.create_namespaced_job(
        "serving",
        {
            "metadata": {"name": "train"},
            "spec": {
                "backoffLimit": 0,
                "template": {
                    "metadata": {
                        "labels": {"app": "train"},
                        "annotations": {DO_NOT_DISRUPT: "true", "sandbox.gpuops.io/run-seconds": "3600"},
                    },
                    "spec": train_spec,
                },
            },
        },
    )
    (scaled,) = rendered["scaled_objects"]
    dynamic.resources.get(api_version="keda.sh/v1alpha1", kind="ScaledObject").create(body=scaled, namespace="serving")
    claims = dynamic.resources.get(api_version="karpenter.sh/v1", kind="NodeClaim")

    def running(app):
        pods = core.list_namespaced_pod("serving", label_selector=f"app={app}").items
        return sorted(
            (p.spec.node_name, p.metadata.uid)
            for p in pods
            if p.status.phase == "Running" and not p.metadata.deletion_timestamp
        )

    def pool_nodes():
        return sorted(n.metadata.name for n in core.list_node(label_selector=f"karpenter.sh/nodepool={POOL}").items)

    def explain():
        events = [
            f"{e.involved_object.name}: {e.reason} {e.message}" for e in core.list_namespaced_event("serving").items
        ]
        return f"nodes {pool_nodes()} claims {[c.metadata.name for c in claims.get().items]} events {events}"

    wait(lambda: len(running("vllm")) == 1 and len(running("train")) == 1, timeout=180, message=explain)
    [(train_node, train_uid)] = running("train")

    # Load: 18 waiting / 5 per replica -> 4 replicas x 4 GPUs + the training Job's 4 -> 3 nodes of 8.
    gauge.set(18)
    prometheus.wait_for("vllm_queue_depth == 18")
    wait(lambda: apps.read_namespaced_deployment("vllm", "serving").spec.replicas == 4, message="no scale-up")
    wait(lambda: len(running("vllm")) == 4, timeout=180, message=lambda: f"{running('vllm')} {pool_nodes()}")
    nodes = pool_nodes()
    assert len(nodes) == 3, nodes
    gpus = {
        t["InstanceType"]: t["GpuInfo"]["Gpus"][0]["Count"]
        for t in ec2.describe_instance_types(InstanceTypes=["p4d.24xlarge"])["InstanceTypes"]
    }
    for node in core.list_node(label_selector=f"karpenter.sh/nodepool={POOL}").items:
        assert node.metadata.labels["node.kubernetes.io/instance-type"] == "p4d.24xlarge"
        assert node.status.allocatable["nvidia.com/gpu"] == str(gpus["p4d.24xlarge"])  # the GPU operator's
    assert sorted(c.status.nodeName for c in claims.get().items) == nodes
    assert running("train") == [(train_node, train_uid)]

    # Load gone: one replica; consolidation empties and removes nodes one at a time (budget
    # nodes: 1) until only the training Job's node is left, the last replica packed onto it.
    mark = core.list_node().metadata.resource_version
    gauge.set(0)
    prometheus.wait_for("vllm_queue_depth == 0")
    wait(lambda: pool_nodes() == [train_node], timeout=180, message=lambda: f"nodes {pool_nodes()}")
    wait(lambda: len(running("vllm")) == 1, timeout=90, message=lambda: f"{running('vllm')}")
    assert running("train") == [(train_node, train_uid)]  # never disrupted
    assert [node for node, _uid in running("vllm")] == [train_node]
    assert [c.status.nodeName for c in claims.get().items] == [train_node]
    disrupting, most = set(), 0
    for event in _history(core.list_node, mark, label_selector=f"karpenter.sh/nodepool={POOL}"):
        name = event["object"].metadata.name
        tainted = any(t.key == "karpenter.sh/disrupted" for t in event["object"].spec.taints or [])
        if event["type"] == "DELETED" or not tainted:
            disrupting.discard(name)
        else:
            disrupting.add(name)
        most = max(most, len(disrupting))
    assert most == 1, "the budget allows one node disrupted at a time"
    assert train_node not in disrupting
