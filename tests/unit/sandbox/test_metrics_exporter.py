"""The DCGM-exporter-shaped endpoint (sandbox/metrics/gpuops_metrics/exporter.py), read back with
prometheus_client's own text parser and scraped by a real Prometheus (Debian's package)."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "sandbox" / "metrics"))

from gpuops_metrics import exporter as exp  # noqa: E402
from gpuops_metrics.fields import CountersError, default_fields, parse_counters  # noqa: E402
from gpuops_metrics.prometheus import PrometheusServer, find_binary  # noqa: E402

FLEET = {
    "gpu-a100-02": "a100-one-lost",
    "gpu-h100-02": "h100-mig-mixed",
    "gpu-new-01": "driver-not-loaded",
    "cpu-01": "no-gpu",
}
IDENTITY = ["gpu", "UUID", "pci_bus_id", "device", "modelName"]


def _sim(*args: str) -> None:
    env = {"PYTHONPATH": str(ROOT / "sandbox" / "python"), "PATH": "/usr/bin:/bin"}
    subprocess.run([sys.executable, "-m", "gpuops_sim", *args], cwd=ROOT, env=env, check=True, capture_output=True)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("fleet")
    (base / "fleet.yml").write_text(json.dumps({"hosts": FLEET}))
    _sim(
        "fleet-up", "--fleet", str(base / "fleet.yml"), "--fixtures", str(ROOT / "sandbox/fixtures"), "--dir", str(base)
    )
    return base


@pytest.fixture
def exporter(fleet):
    started = []

    def start(**kwargs):
        server = exp.FleetExporter.start(fleet, **kwargs)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def scrape(target: str) -> dict:
    with urllib.request.urlopen(f"http://{target}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {family.name: family for family in text_string_to_metric_families(text)}


def samples(families, name):
    family = families[name]
    return [(sample.labels, sample.value) for sample in family.samples if sample.name == name]


def test_gpu_hosts_only(exporter):
    server = exporter()
    assert sorted(server.targets) == ["gpu-a100-02", "gpu-h100-02", "gpu-new-01"]


def test_names_types_and_labels_follow_dcgm_exporter(exporter):
    server = exporter(hosts=["gpu-a100-02"])
    families = scrape(server.targets["gpu-a100-02"])
    assert families["DCGM_FI_DEV_GPU_TEMP"].type == "gauge"
    assert families["DCGM_FI_DEV_XID_ERRORS"].type == "gauge"
    # prometheus_client strips the _total-less counter name the same way Prometheus keeps it.
    assert families["DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS"].type == "counter"
    temps = samples(families, "DCGM_FI_DEV_GPU_TEMP")
    assert len(temps) == 7  # GPU 3 fell off the bus: blank, so absent
    labels, value = temps[0]
    assert list(labels)[:5] == IDENTITY
    assert labels["modelName"] == "NVIDIA A100-SXM4-40GB"
    assert labels["Hostname"] == "gpu-a100-02"
    assert labels["DCGM_FI_DRIVER_VERSION"] == "550.127.05"
    assert labels["device"] == "nvidia0" and labels["pci_bus_id"] == "00000000:07:00.0"
    assert labels["UUID"].startswith("GPU-") and value == 31
    assert "GPU_I_PROFILE" not in labels


def test_lost_gpu_reports_xid_79_with_its_identity(exporter):
    server = exporter(hosts=["gpu-a100-02"])
    xids = {
        labels["gpu"]: (labels, value)
        for labels, value in samples(scrape(server.targets["gpu-a100-02"]), "DCGM_FI_DEV_XID_ERRORS")
    }
    assert {gpu: value for gpu, (_unused, value) in xids.items()} == {str(i): (79 if i == 3 else 0) for i in range(8)}
    lost = xids["3"][0]
    assert lost["pci_bus_id"] == "00000000:4E:00.0" and lost["UUID"].startswith("GPU-")
    assert lost["modelName"] == "NVIDIA A100-SXM4-40GB"


def test_mig_instances_carry_profile_and_id(exporter):
    server = exporter(hosts=["gpu-h100-02"], hostname_label="hostname")
    families = scrape(server.targets["gpu-h100-02"])
    used = samples(families, "DCGM_FI_DEV_FB_USED")
    gpu0 = sorted(
        (labels["GPU_I_PROFILE"], labels["GPU_I_ID"], value) for labels, value in used if labels["gpu"] == "0"
    )
    assert gpu0 == [("2g.20gb", "3", 0), ("2g.20gb", "4", 0), ("3g.40gb", "2", 30720)]
    assert len([1 for labels, _unused in used if labels["gpu"] == "1"]) == 7
    assert not [1 for labels, _unused in used if labels["gpu"] == "2"]  # MIG on, no instances
    whole = {labels["gpu"]: value for labels, value in used if "GPU_I_PROFILE" not in labels}
    assert whole["3"] == 20480 and "0" not in whole
    # Device-wide fields stay on the GPU entity, MIG or not; the hostname label is renamed.
    temps = samples(families, "DCGM_FI_DEV_GPU_TEMP")
    assert all("GPU_I_PROFILE" not in labels and labels["hostname"] == "gpu-h100-02" for labels, _unused in temps)
    assert len(temps) == 8


def test_pods_from_pod_resources(exporter, fleet):
    server = exporter(hosts=["gpu-h100-02"])
    base = scrape(server.targets["gpu-h100-02"])
    temps = {labels["gpu"]: labels for labels, _unused in samples(base, "DCGM_FI_DEV_GPU_TEMP")}
    mig_uuid_source = fleet / "hosts" / "gpu-h100-02" / "pod-resources.json"
    # The MIG device UUID of GPU 0's 3g.40gb instance, from NVML (as the device plugin lists it).
    nvml = exp._nvml()
    collector = exp.HostCollector("gpu-h100-02", exp.read_env_file(fleet / "hosts/gpu-h100-02/env"))
    _unused, entities = collector.collect()
    mig_id = next(e for e in entities if e.mig_profile == "3g.40gb").device_ids[0]
    assert mig_id.startswith("MIG-") and nvml is not None
    shared = temps["4"]["UUID"]
    mig_uuid_source.write_text(
        json.dumps(
            {
                "pod_resources": [
                    {
                        "name": "trainer-0",
                        "namespace": "ml",
                        "containers": [
                            {
                                "name": "main",
                                "devices": [{"resource_name": "nvidia.com/mig-3g.40gb", "device_ids": [mig_id]}],
                            }
                        ],
                    },
                    {
                        "name": "triton",
                        "namespace": "serving",
                        "containers": [
                            {
                                "name": "server",
                                "devices": [{"resource_name": "nvidia.com/gpu", "device_ids": [temps["3"]["UUID"]]}],
                            }
                        ],
                    },
                    *[
                        {
                            "name": f"nb-{i}",
                            "namespace": "notebooks",
                            "containers": [
                                {
                                    "name": "lab",
                                    "devices": [{"resource_name": "nvidia.com/gpu", "device_ids": [f"{shared}::{i}"]}],
                                }
                            ],
                        }
                        for i in range(2)
                    ],
                ]
            }
        )
    )
    try:
        families = scrape(server.targets["gpu-h100-02"])
        used = samples(families, "DCGM_FI_DEV_FB_USED")
        trainer = [labels for labels, _unused in used if labels.get("pod") == "trainer-0"]
        assert len(trainer) == 1 and trainer[0]["GPU_I_PROFILE"] == "3g.40gb"
        assert trainer[0]["namespace"] == "ml" and trainer[0]["container"] == "main"
        triton = [labels["gpu"] for labels, _unused in used if labels.get("pod") == "triton"]
        assert triton == ["3"]
        notebooks = [labels for labels, _unused in used if labels.get("namespace") == "notebooks"]
        assert [labels["pod"] for labels in notebooks] == ["nb-1"]  # without virtual GPUs: one series
        virtual = exporter(hosts=["gpu-h100-02"], virtual_gpus=True)
        used = samples(scrape(virtual.targets["gpu-h100-02"]), "DCGM_FI_DEV_FB_USED")
        shared_series = sorted(
            (labels["pod"], labels["vgpu"]) for labels, _unused in used if labels.get("namespace") == "notebooks"
        )
        assert shared_series == [("nb-0", "0"), ("nb-1", "1")]
    finally:
        mig_uuid_source.unlink()


def test_driver_not_loaded_is_a_failed_scrape(exporter):
    server = exporter(hosts=["gpu-new-01"])
    with pytest.raises(urllib.error.HTTPError) as caught:
        scrape(server.targets["gpu-new-01"])
    assert caught.value.code == 503


def test_counters_csv():
    fields = parse_counters(
        "# comment\nDCGM_FI_DEV_GPU_TEMP, gauge, GPU temperature (in C).\n"
        "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL, counter, DBE\nDCGM_FI_DRIVER_VERSION, label, Driver Version\n"
    )
    assert [f.name for f in fields] == [
        "DCGM_FI_DEV_GPU_TEMP",
        "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL",
        "DCGM_FI_DRIVER_VERSION",
    ]
    with pytest.raises(CountersError, match="DCGM_FI_DEV_NOPE"):
        parse_counters("DCGM_FI_DEV_NOPE, gauge, x\n")
    with pytest.raises(CountersError, match="type 'histogram'"):
        parse_counters("DCGM_FI_DEV_GPU_TEMP, histogram, x\n")
    assert "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL" not in {f.name for f in default_fields()}


def test_cli_rejects_unknown_host(fleet):
    proc = subprocess.run(
        [sys.executable, "-m", "gpuops_metrics", "exporter", "--sandbox-dir", str(fleet), "--host", "cpu-01"],
        cwd=ROOT / "sandbox" / "metrics",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2 and "cpu-01" in proc.stderr


@pytest.mark.skipif(find_binary() is None, reason="prometheus not on PATH (make host-tools installs it)")
def test_real_prometheus_scrapes_the_fleet(exporter, fleet, tmp_path):
    server = exporter()
    prom = PrometheusServer.start(tmp_path / "prom", [server.scrape_config()])
    try:
        lost = prom.wait_for('DCGM_FI_DEV_XID_ERRORS{Hostname="gpu-a100-02"} == 79')
        assert [sample["metric"]["gpu"] for sample in lost] == ["3"]
        prom.wait_for('up{node="gpu-new-01"} == 0')
        # Targets are scraped at staggered offsets: wait for all three, then count.
        prom.wait_for('count(up{job="dcgm-exporter"}) == 3')
        temps = prom.wait_for('count(DCGM_FI_DEV_GPU_TEMP) and count(up{job="dcgm-exporter"} == 1) == 2')
        assert temps[0]["value"][1] == "15"  # 7 on gpu-a100-02, 8 on gpu-h100-02
        mig = prom.query('DCGM_FI_DEV_FB_USED{GPU_I_PROFILE="3g.40gb"}')
        assert [sample["value"][1] for sample in mig] == ["30720"]
        # A fault injected into the simulator shows at the next scrape.
        state = fleet / "hosts" / "gpu-h100-02" / "nvml-state.json"
        _sim("inject", "--state", str(state), "--gpu", "5", "--call", "*", "--error", "GPU_IS_LOST")
        try:
            now_lost = prom.wait_for('DCGM_FI_DEV_XID_ERRORS{Hostname="gpu-h100-02"} == 79')
            assert [sample["metric"]["gpu"] for sample in now_lost] == ["5"]
        finally:
            _sim("clear-faults", "--state", str(state))
    finally:
        prom.stop()
