"""The keda and hpa stand-in controllers against a real Prometheus scraping a queue-depth gauge
this test controls (prometheus_client), with the ScaledObject the autoscaling role renders:
scale up, scale down, fallback when Prometheus goes away. Plus upstream's HPA arithmetic."""

from __future__ import annotations

import math
import sys
import time

import pytest
from ansible_collections.gpuops.cluster.plugins.plugin_utils.autoscaling import plan

from conftest import CRDS, REPO_ROOT, start_server, stop_server

sys.path.insert(0, str(REPO_ROOT / "sandbox" / "metrics"))

from gpuops_kubeapi.sim import hpa  # noqa: E402
from gpuops_metrics.prometheus import PrometheusServer, find_binary  # noqa: E402

# --------------------------------------------------------------------------- upstream arithmetic


@pytest.mark.parametrize(
    "value,target,kind,current,ready,expected",
    [
        (23, 5, "AverageValue", 1, 1, 5),  # ceil(23 / 5)
        (10.4, 5, "AverageValue", 2, 2, 2),  # ratio 1.04: within the 0.1 tolerance
        (11.5, 5, "AverageValue", 2, 2, 3),  # ratio 1.15: outside
        (4, 5, "AverageValue", 5, 5, 1),
        (90, 80, "Value", 2, 2, 3),  # ratio 1.125 x 2 ready pods -> ceil(2.25)
        (84, 80, "Value", 2, 2, 2),  # ratio 1.05: within tolerance
        (40, 80, "Value", 4, 3, 2),  # ratio 0.5 x 3 ready
        (160, 80, "Value", 0, 0, 2),  # from zero: ceil(ratio)
    ],
)
def test_replicas_for_metric(value, target, kind, current, ready, expected):
    assert hpa.replicas_for_metric(value, target, kind, current, ready) == expected


def test_policy_limits_follow_upstream():
    up = {
        "selectPolicy": "Max",
        "policies": [
            {"type": "Percent", "value": 100, "periodSeconds": 15},
            {"type": "Pods", "value": 10, "periodSeconds": 15},
        ],
    }
    assert hpa.scale_up_limit(3, [], [], up, 100.0) == 13  # max(6, 13)
    assert hpa.scale_up_limit(30, [], [], up, 100.0) == 60
    # 2 pods were added 5 s ago: the period started at 1 replica.
    assert hpa.scale_up_limit(3, [(95.0, 2)], [], up, 100.0) == 11
    down = {
        "selectPolicy": "Max",
        "policies": [{"type": "Percent", "value": 10, "periodSeconds": 60}],
    }
    assert hpa.scale_down_limit(10, [], [], down, 100.0) == 9
    assert hpa.scale_down_limit(5, [], [], down, 100.0) == 4  # trunc(4.5)
    assert hpa.scale_down_limit(9, [], [(70.0, 1)], down, 100.0) == 9  # one removed this minute
    assert hpa.scale_up_limit(3, [], [], dict(up, selectPolicy="Disabled"), 1.0) == 3


# --------------------------------------------------------------------------- against Prometheus


@pytest.fixture
def queue(tmp_path, monkeypatch):
    if find_binary() is None:
        pytest.skip("prometheus not on PATH (make host-tools installs Debian's package)")
    from prometheus_client import CollectorRegistry, Gauge, start_http_server

    registry = CollectorRegistry()
    gauge = Gauge("llm_queue_depth", "Requests waiting", registry=registry)
    http, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    port = http.server_port
    prometheus = PrometheusServer.start(
        tmp_path / "prometheus",
        [
            {
                "job_name": "llm",
                "scrape_interval": "1s",
                "static_configs": [{"targets": [f"127.0.0.1:{port}"]}],
            }
        ],
    )
    monkeypatch.setenv("GPUOPS_SANDBOX_PROMETHEUS_URL", prometheus.url)
    monkeypatch.setenv("GPUOPS_SANDBOX_HPA_SYNC_SECONDS", "1")
    server = start_server(
        tmp_path / "kube", CRDS / "keda.sh_scaledobjects.yaml", "--controllers", "keda,hpa"
    )
    try:
        yield gauge, prometheus, server
    finally:
        stop_server(server)
        prometheus.stop()
        http.shutdown()
        thread.join(timeout=5)


def wait(predicate, timeout=30.0, message=""):
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(message or "not reached in time")
        time.sleep(0.2)


def test_queue_depth_scales_the_deployment_up_down_and_falls_back(queue):
    from kubernetes import client, config
    from kubernetes.dynamic import DynamicClient

    gauge, prometheus, server = queue
    configuration = client.Configuration()
    config.load_kube_config(config_file=str(server.kubeconfig), client_configuration=configuration)
    api = client.ApiClient(configuration)
    apps = client.AppsV1Api(api)
    dynamic = DynamicClient(api)
    apps.create_namespaced_deployment(
        "default",
        {
            "metadata": {"name": "llm"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "llm"}},
                "template": {
                    "metadata": {"labels": {"app": "llm"}},
                    "spec": {"containers": [{"name": "llm", "image": "llm:1"}]},
                },
            },
        },
    )
    result = plan(
        {
            "prometheus_url": "http://prometheus.monitoring.svc:9090",  # replaced by the env var
            "inference": [
                {
                    "deployment": "llm",
                    "namespace": "default",
                    "max_replicas": 6,
                    "polling_interval": 1,
                    "fallback": {"failure_threshold": 2, "replicas": 3},
                    "behavior": {
                        "scaleDown": {
                            "stabilizationWindowSeconds": 2,
                            "policies": [{"type": "Percent", "value": 100, "periodSeconds": 1}],
                        }
                    },
                    "triggers": [{"kind": "custom", "query": "sum(llm_queue_depth)", "target": 5}],
                }
            ],
        }
    )
    assert result["errors"] == []
    scaled_objects = dynamic.resources.get(api_version="keda.sh/v1alpha1", kind="ScaledObject")
    (body,) = result["scaled_objects"]
    scaled_objects.create(body=body, namespace="default")
    hpas = dynamic.resources.get(api_version="autoscaling/v2", kind="HorizontalPodAutoscaler")

    def replicas():
        return apps.read_namespaced_deployment("llm", "default").spec.replicas

    def condition(kind):
        status = scaled_objects.get(name="llm", namespace="default").to_dict().get("status") or {}
        return {c["type"]: c["status"] for c in status.get("conditions") or []}.get(kind)

    made = wait(lambda: hpas.get(namespace="default").items, message="KEDA made no HPA")[
        0
    ].to_dict()
    assert made["metadata"]["name"] == "keda-hpa-llm"
    assert made["metadata"]["ownerReferences"][0]["kind"] == "ScaledObject"
    assert (made["spec"]["minReplicas"], made["spec"]["maxReplicas"]) == (1, 6)
    assert made["spec"]["metrics"] == [
        {
            "type": "External",
            "external": {
                "metric": {
                    "name": "s0-prometheus",
                    "selector": {"matchLabels": {"scaledobject.keda.sh/name": "llm"}},
                },
                "target": {"type": "AverageValue", "averageValue": "5"},
            },
        }
    ]
    assert made["spec"]["behavior"]["scaleUp"]["policies"][1] == {
        "type": "Pods",
        "value": 10,
        "periodSeconds": 15,
    }
    wait(lambda: condition("Ready") == "True", message="ScaledObject not Ready")
    assert condition("Active") == "False"

    gauge.set(23)
    prometheus.wait_for("llm_queue_depth == 23")
    wait(lambda: replicas() == math.ceil(23 / 5), message=f"replicas {replicas()}, want 5")
    assert condition("Active") == "True"
    hpa_status = hpas.get(name="keda-hpa-llm", namespace="default").to_dict()["status"]
    assert hpa_status["desiredReplicas"] == 5

    gauge.set(4)
    prometheus.wait_for("llm_queue_depth == 4")
    wait(lambda: replicas() == 1, message=f"replicas {replicas()}, want 1")

    # Prometheus goes away: after failure_threshold polls KEDA answers with the fallback
    # (currentReplicasIfHigher: max(3, 1)).
    prometheus.stop()
    wait(lambda: condition("Fallback") == "True", message="no Fallback condition")
    wait(lambda: replicas() == 3, message=f"replicas {replicas()}, want the fallback 3")
    assert condition("Ready") == "False"
    api.close()
