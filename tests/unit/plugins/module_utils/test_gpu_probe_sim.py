# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The probe against the sandbox's NVML simulator and rendered host trees, for every fixture."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from ansible_collections.gpuops.cluster.plugins.module_utils.gpu_probe import probe
from conftest import FIXTURES_DIR, SIM_DIR

pytestmark = pytest.mark.skipif(
    not os.path.exists(os.path.join(SIM_DIR, "gpuops_sim", "__main__.py")), reason="NVML simulator not built yet"
)

FULL = (
    "uuid",
    "name",
    "serial",
    "architecture",
    "compute_capability",
    "memory",
    "temperature_c",
    "power",
    "ecc",
    "remapped_rows",
    "persistence_mode",
    "mig",
    "processes",
)


def sim_cli(*args):
    env = dict(os.environ, PYTHONPATH=SIM_DIR)
    proc = subprocess.run(
        [sys.executable, "-m", "gpuops_sim", *args], env=env, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.fixture
def sim(monkeypatch):
    """The simulator's module (sandbox/python appended, so the real pynvml stays importable)."""
    if SIM_DIR not in sys.path:
        sys.path.append(SIM_DIR)
    import gpuops_sim.nvml as module  # noqa: PLC0415

    monkeypatch.delenv("GPUOPS_NVML_SIM_STATE", raising=False)
    module.sim_forget()
    yield module
    module.sim_forget()


def run(sim, tmp_path, monkeypatch, name, state=None, **kwargs):
    fixture = os.path.join(FIXTURES_DIR, name + ".yml")
    root = str(tmp_path / ("root-" + name))
    sim_cli("render", "--fixture", fixture, "--root", root)
    monkeypatch.setenv("GPUOPS_NVML_SIM_FIXTURE", fixture)
    if state:
        monkeypatch.setenv("GPUOPS_NVML_SIM_STATE", state)
    facts, warnings = probe(root, nvml=sim, **kwargs)
    assert warnings == []
    return facts


def assert_complete_and_healthy(gpu):
    assert gpu["health"] == {"status": "healthy", "reasons": []}, gpu["health"]
    assert gpu["errors"] == {}
    for key in FULL:
        assert gpu[key] is not None, key
    assert gpu["pci"]["driver"] == "nvidia"


def test_a100_x8(sim, tmp_path, monkeypatch):
    facts = run(sim, tmp_path, monkeypatch, "a100-sxm4-40gb-x8")
    assert facts["source"] == "nvml"
    assert facts["collected"] == ["pci", "nvml", "mig", "processes", "telemetry"]
    assert facts["driver"]["state"] == "loaded"
    assert facts["driver"]["version"] == "550.127.05"
    assert facts["driver"]["cuda_driver_version"] == "12.4"
    assert facts["driver"]["nvml"] == {"available": True, "reason": None}
    assert facts["host"]["kernel"] == "6.1.0-28-amd64"
    assert [g["index"] for g in facts["gpus"]] == list(range(8))
    for gpu in facts["gpus"]:
        assert_complete_and_healthy(gpu)
        assert gpu["pci"]["product"] == "A100 SXM4 40GB"
        assert gpu["architecture"] == "ampere" and gpu["compute_capability"] == "8.0"
        assert gpu["memory"]["total_mib"] == 40960
        assert gpu["nvlinks_active"] == 12
        assert gpu["mig"]["capable"] is True and gpu["mig"]["current"] is False
        assert gpu["remapped_rows"]["supported"] is True
        assert gpu["retired_pages"]["supported"] is False
    summary = facts["summary"]
    assert summary["count"] == 8 and summary["healthy"] == 8
    assert summary["models"] == {"NVIDIA A100-SXM4-40GB": 8}
    assert summary["memory_total_mib"] == 8 * 40960
    assert summary["mig_capable"] == 8 and summary["mig_enabled"] == 0
    assert len(facts["nvswitches"]) == 6


def test_h100_x8(sim, tmp_path, monkeypatch):
    facts = run(sim, tmp_path, monkeypatch, "h100-80gb-hbm3-x8")
    assert facts["summary"]["healthy"] == 8
    for gpu in facts["gpus"]:
        assert_complete_and_healthy(gpu)
        assert gpu["architecture"] == "hopper" and gpu["compute_capability"] == "9.0"
        assert gpu["nvlinks_active"] == 18
        assert gpu["pci"]["product"] == "H100 SXM5 80GB"


def test_l40s_without_serial(sim, tmp_path, monkeypatch):
    facts = run(sim, tmp_path, monkeypatch, "l40s-x4")
    assert facts["summary"]["count"] == 4 and facts["summary"]["healthy"] == 4
    for gpu in facts["gpus"]:
        assert gpu["serial"] is None  # NOT_SUPPORTED is an answer, not an error
        assert gpu["errors"] == {}
        assert gpu["nvlinks_active"] is None
        assert gpu["mig"]["capable"] is False
        assert gpu["architecture"] == "ada"
    assert facts["summary"]["mig_capable"] == 0


def test_no_gpu(sim, tmp_path, monkeypatch):
    facts = run(sim, tmp_path, monkeypatch, "no-gpu")
    assert facts["source"] == "none"
    assert facts["gpus"] == [] and facts["summary"]["count"] == 0
    assert facts["driver"]["state"] == "none"
    assert "libnvidia-ml not found" in facts["driver"]["nvml"]["reason"]


def test_driver_not_loaded(sim, tmp_path, monkeypatch):
    facts = run(sim, tmp_path, monkeypatch, "driver-not-loaded")
    assert facts["source"] == "pci"
    assert facts["collected"] == ["pci"]
    assert facts["driver"]["state"] == "installed"
    assert facts["driver"]["nvml"]["reason"] == "NVIDIA kernel driver not loaded"
    assert facts["gpus"]
    for gpu in facts["gpus"]:
        assert gpu["index"] is None and gpu["name"] is None
        assert gpu["pci"]["vendor_id"] == "0x10de"
        assert gpu["health"]["status"] == "unknown"
    assert facts["summary"]["unknown"] == len(facts["gpus"])


def test_a100_one_lost(sim, tmp_path, monkeypatch):
    facts = run(sim, tmp_path, monkeypatch, "a100-one-lost")
    gpus = facts["gpus"]
    assert len(gpus) == 8
    lost = [g for g in gpus if g["health"]["status"] != "healthy"]
    assert [g["index"] for g in lost] == [3]
    assert lost[0]["pci"]["bus_id"] == "0000:4e:00.0"
    assert lost[0]["health"]["status"] == "unhealthy"
    assert "GPU is lost" in lost[0]["health"]["reasons"][0]
    for gpu in gpus:
        if gpu["index"] != 3:
            assert_complete_and_healthy(gpu)
    assert facts["summary"]["healthy"] == 7 and facts["summary"]["unhealthy"] == 1


def test_h100_mig_mixed(sim, tmp_path, monkeypatch):
    facts = run(sim, tmp_path, monkeypatch, "h100-mig-mixed")
    gpus = facts["gpus"]
    assert facts["summary"]["mig_enabled"] == 3
    first = gpus[0]["mig"]
    assert [(g["profile"], g["placement"]["start"], g["placement"]["size"]) for g in first["gpu_instances"]] == [
        ("2g.20gb", 0, 2),
        ("2g.20gb", 2, 2),
        ("3g.40gb", 4, 4),
    ]
    assert all(g["compute_instances"] for g in first["gpu_instances"])
    assert first["gpu_instances"][2]["compute_instances"][0]["profile"] == "3g.40gb"
    assert len(first["devices"]) == 3
    assert all(d["uuid"].startswith("MIG-") for d in first["devices"])
    assert gpus[0]["processes"] == {"count": 1, "used_memory_mib": 30720}
    second = gpus[1]["mig"]
    assert [g["profile"] for g in second["gpu_instances"]] == ["1g.10gb"] * 7
    assert len(second["devices"]) == 7
    assert gpus[2]["mig"]["current"] is True and gpus[2]["mig"]["gpu_instances"] == []
    assert gpus[3]["mig"]["current"] is False
    assert gpus[3]["processes"] == {"count": 1, "used_memory_mib": 20480}
    for gpu in gpus:
        assert_complete_and_healthy(gpu)


def test_injected_no_permission_on_temperature(sim, tmp_path, monkeypatch):
    fixture = os.path.join(FIXTURES_DIR, "a100-sxm4-40gb-x8.yml")
    state = str(tmp_path / "state.json")
    sim_cli("reset", "--fixture", fixture, "--state", state)
    sim_cli("inject", "--state", state, "--gpu", "2", "--call", "nvmlDeviceGetTemperature", "--error", "NO_PERMISSION")
    facts = run(sim, tmp_path, monkeypatch, "a100-sxm4-40gb-x8", state=state)
    gpus = facts["gpus"]
    assert list(gpus[2]["errors"]) == ["temperature_c"]
    assert "Insufficient Permissions" in gpus[2]["errors"]["temperature_c"]
    assert gpus[2]["temperature_c"] is None
    assert gpus[2]["power"]["draw_w"] is not None and gpus[2]["memory"] is not None
    assert gpus[2]["health"]["status"] == "degraded"
    for i, gpu in enumerate(gpus):
        if i != 2:
            assert_complete_and_healthy(gpu)


@pytest.mark.parametrize("name", ["a100-sxm4-40gb-x8", "h100-80gb-hbm3-x8", "h100-mig-mixed"])
def test_probe_is_fast(sim, tmp_path, monkeypatch, name):
    run(sim, tmp_path, monkeypatch, name)  # warm: fixture parsed, files cached
    root = str(tmp_path / ("root-" + name))
    start = time.perf_counter()
    facts, _unused = probe(root, nvml=sim)
    elapsed = time.perf_counter() - start
    assert facts["summary"]["count"] == 8
    assert elapsed < 0.25, elapsed
