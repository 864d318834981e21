"""cost_snapshot reading GPU activity and power from a real Prometheus that scrapes the
sandbox's own DCGM-shaped exporter (`python -m gpuops_metrics exporter --sandbox-dir ...
--targets-file ...`, file_sd) for a simulated host: the allocated-but-unused dollars and the
measured-power TCO follow what that exporter publishes, read back here from its /metrics.

The host is the sandbox's DGX A100 fixture with a load on three GPUs (the fixture's
`utilization` and `power_draw_w`, which the NVML simulator reports and the exporter turns into
DCGM_FI_PROF_GR_ENGINE_ACTIVE and DCGM_FI_DEV_POWER_USAGE); the kubelet's pod-resources list
says which pod holds which GPU, as on a real node."""

# ruff: noqa: F811

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest
import yaml
from ansible_collections.gpuops.cluster.plugins.module_utils.cost import runner, tco
from ansible_collections.gpuops.cluster.plugins.module_utils.cost.prometheus import Prometheus
from cost_standin import REPO, start_standin, stop_standin
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(REPO / "sandbox" / "metrics"))
from gpuops_metrics.prometheus import PrometheusServer, find_binary  # noqa: E402

pytestmark = pytest.mark.skipif(find_binary() is None, reason="prometheus not on PATH (make host-tools installs it)")

HOST = "gpu-a100-01"
# GPU index -> (utilization %, power W) put into the fixture; the pods holding them.
LOAD = {0: (20, 180.5), 1: (40, 240.0), 2: (5, 95.25)}
PODS = {"train/llm-0": (0, 1), "dev/notebook": (2,)}
TCO = {
    "as_of": "2026-10-01",
    "source": "PO 4711",
    "server_capex_usd": 60000,
    "gpu_capex_usd": 12000,
    "gpus_per_server": 8,
    "amortization_years": 4,
    "gpu_tdp_watts": 400,
    "server_base_watts": 1500,
    "usd_per_kwh": 0.14,
    "pue": 1.3,
}
WEIGHTS = {"cpu_core_hourly": 0.031611, "memory_gib_hourly": 0.004237, "gpu_hourly": 0.95, "source": "OpenCost"}


def _fleet(base):
    fixture = yaml.safe_load((REPO / "sandbox/fixtures/a100-sxm4-40gb-x8.yml").read_text())
    for index, (util, watts) in LOAD.items():
        fixture["gpus"][index]["utilization"] = {"gpu": util, "memory": util // 2}
        fixture["gpus"][index]["power_draw_w"] = watts
    fixture["name"] = "a100-loaded"
    (base / "fixtures").mkdir()
    (base / "fixtures/a100-loaded.yml").write_text(yaml.safe_dump(fixture, sort_keys=False))
    (base / "fleet.yml").write_text(json.dumps({"hosts": {HOST: "a100-loaded"}}))
    subprocess.run(
        [sys.executable, "-m", "gpuops_sim", "fleet-up", "--fleet", str(base / "fleet.yml")]
        + ["--fixtures", str(base / "fixtures"), "--dir", str(base)],
        env={"PYTHONPATH": str(REPO / "sandbox" / "python"), "PATH": "/usr/bin:/bin"},
        check=True,
        capture_output=True,
    )


def _scrape(target):
    with urllib.request.urlopen(f"http://{target}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {f.name: [(s.labels, s.value) for s in f.samples] for f in text_string_to_metric_families(text)}


def _objects(uuids):
    node = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": HOST,
            "labels": {
                "nvidia.com/gpu.product": "NVIDIA-A100-SXM4-40GB",
                "nvidia.com/gpu.count": "8",
                "gpuops.io/node-group": "a100-train",
            },
        },
        "status": {
            "capacity": {"cpu": "128", "memory": "1024Gi", "pods": "110", "nvidia.com/gpu": "8"},
            "allocatable": {"cpu": "128", "memory": "1024Gi", "pods": "110", "nvidia.com/gpu": "8"},
        },
    }
    pods, listed = [], []
    for key, gpus in PODS.items():
        namespace, name = key.split("/")
        requests = {"cpu": "8", "memory": "64Gi", "nvidia.com/gpu": str(len(gpus))}
        pods.append(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"namespace": namespace, "name": name},
                "spec": {
                    "nodeName": HOST,
                    "containers": [
                        {"name": "main", "image": "registry.example/app:1", "resources": {"requests": requests}}
                    ],
                },
            }
        )
        devices = [{"resource_name": "nvidia.com/gpu", "device_ids": [uuids[i] for i in gpus]}]
        listed.append({"name": name, "namespace": namespace, "containers": [{"name": "main", "devices": devices}]})
    return node, pods, {"pod_resources": listed}


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    base = tmp_path_factory.mktemp("cost-metrics")
    _fleet(base)
    targets_file = base / "targets.json"
    env = dict(os.environ, PYTHONPATH=str(REPO / "sandbox" / "metrics"))
    exporter = subprocess.Popen(
        [sys.executable, "-m", "gpuops_metrics", "exporter", "--sandbox-dir", str(base)]
        + ["--targets-file", str(targets_file)],
        stdout=subprocess.DEVNULL,
        env=env,
    )
    standin = prom = None
    try:
        deadline = time.monotonic() + 30
        while not (targets_file.exists() and targets_file.read_text().strip().endswith("]")):
            assert exporter.poll() is None and time.monotonic() < deadline, "the sandbox exporter did not start"
            time.sleep(0.1)
        (target,) = json.loads(targets_file.read_text())[0]["targets"]
        uuids = {int(labels["gpu"]): labels["UUID"] for labels, _v in _scrape(target)["DCGM_FI_DEV_GPU_TEMP"]}
        node, pods, listed = _objects(uuids)
        (base / "hosts" / HOST / "pod-resources.json").write_text(json.dumps(listed))
        standin = start_standin(base / "kubeapi")
        core = standin.core()
        core.create_node(node)
        for pod in pods:
            namespace = pod["metadata"]["namespace"]
            if namespace not in {n.metadata.name for n in core.list_namespace().items}:
                core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
            core.create_namespaced_pod(namespace, pod)
            core.patch_namespaced_pod_status(pod["metadata"]["name"], namespace, {"status": {"phase": "Running"}})
        prom = PrometheusServer.start(
            base / "prom", [{"job_name": "dcgm-exporter", "file_sd_configs": [{"files": [str(targets_file)]}]}]
        )
        prom.wait_for('count(DCGM_FI_PROF_GR_ENGINE_ACTIVE{pod!=""}) == 3', timeout=30)
        yield standin, prom, _scrape(target)
    finally:
        if prom is not None:
            prom.stop()
        if standin is not None:
            stop_standin(standin)
        os.kill(exporter.pid, signal.SIGTERM)
        exporter.wait(timeout=20)


def test_unused_gpu_dollars_follow_the_sandbox_exporter(sandbox):
    standin, prom, families = sandbox
    params = {
        "onprem_tco": {"a100-train": TCO},
        "split_weights": WEIGHTS,
        "prometheus_window": "5m",
        "label_keys": [],
        "node_group_labels": ["gpuops.io/node-group"],
    }
    result = runner.run(params, standin.core, lambda _p: None, prometheus=Prometheus(prom.url))

    # What the exporter published, per pod (the pod label comes from pod-resources.json).
    active = {}
    for labels, value in families["DCGM_FI_PROF_GR_ENGINE_ACTIVE"]:
        if labels.get("pod"):
            active.setdefault("%s/%s" % (labels["namespace"], labels["pod"]), []).append(value)
    assert {k: len(v) for k, v in active.items()} == {k: len(g) for k, g in PODS.items()}
    watts = sum(value for _labels, value in families["DCGM_FI_DEV_POWER_USAGE"])
    assert sorted(v for vs in active.values() for v in vs) == sorted(u / 100 for u, _w in LOAD.values())

    # The node's price: the TCO at the measured draw, not at TDP.
    measured = tco.tco_quote(tco.validate_tco(TCO, "t"), watts)
    (node,) = result["nodes"]
    assert node["hourly"] == pytest.approx(measured.hourly_usd, abs=1e-6)
    assert "measured GPU power" in node["price"]["source"]
    gpu_each = measured.gpu_hourly_usd
    assert node["gpu_each_hourly"] == pytest.approx(gpu_each, abs=1e-6)

    pods = {"%s/%s" % (p["namespace"], p["pod"]): p for p in result["pods"]}
    unused_total = 0.0
    for key, values in active.items():
        mean = sum(values) / len(values)
        gpus = len(PODS[key])
        assert pods[key]["gpu_activity"] == pytest.approx(mean)
        assert pods[key]["gpu_hourly"] == pytest.approx(gpu_each * gpus, abs=1e-6)
        assert pods[key]["gpu_unused_hourly"] == pytest.approx(gpu_each * gpus * (1 - mean), abs=1e-6)
        unused_total += gpu_each * gpus * (1 - mean)
    assert result["idle"]["gpu_allocated_unused_hourly"] == pytest.approx(unused_total, abs=1e-5)
    # the 5 GPUs nobody holds are idle, apart from the allocated-but-unused
    assert result["idle_by_pool"]["a100-train"]["nvidia.com/gpu"]["idle"] == 5
    assert result["prometheus"] == {"window_seconds": 300, "pods_with_activity": 2, "nodes_with_power": 1}
