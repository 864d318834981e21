"""The monitoring role's alerts under `promtool check rules` and `promtool test rules` (Debian's
prometheus package): each alert fires for the series that should trip it and stays quiet for
near misses."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from ansible_collections.gpuops.cluster.plugins.filter.monitoring import monitoring_plan

ROOT = Path(__file__).resolve().parents[4]
PROMTOOL = shutil.which("promtool")
pytestmark = pytest.mark.skipif(PROMTOOL is None, reason="promtool not on PATH (make host-tools installs prometheus)")

A100 = 'gpu="3",UUID="GPU-aaaa",pci_bus_id="00000000:4E:00.0",modelName="NVIDIA A100-SXM4-40GB"'
GPU_EXP = {"gpu": "3", "UUID": "GPU-aaaa", "pci_bus_id": "00000000:4E:00.0", "modelName": "NVIDIA A100-SXM4-40GB"}
MIG = A100 + ',GPU_I_PROFILE="1g.5gb",GPU_I_ID="13"'
MIG_EXP = dict(GPU_EXP, GPU_I_PROFILE="1g.5gb", GPU_I_ID="13")
JOB = 'job="nvidia-dcgm-exporter",instance="10.0.0.7:9400"'


def default_spec():
    defaults = yaml.safe_load((ROOT / "roles/monitoring/defaults/main.yml").read_text())
    return {key[len("monitoring_") :]: value for key, value in defaults.items() if key.startswith("monitoring_")}


def s(metric, labels, values, host="gpu-a100-02", host_label="Hostname"):
    sep = "," if labels else ""
    return {"series": f'{metric}{{{labels}{sep}{host_label}="{host}"}}', "values": values}


# alert -> (firing case, quiet case): (series, eval_time, expected labels, $value) / (series, eval_time)
CASES = {
    "GpuXidCriticalError": (
        ([s("DCGM_FI_DEV_XID_ERRORS", A100, "0 79x5")], "3m", dict(GPU_EXP, host="gpu-a100-02"), 79),
        ([s("DCGM_FI_DEV_XID_ERRORS", A100, "0 13x5")], "3m"),
    ),
    "GpuXidError": (
        (
            [s("DCGM_FI_DEV_XID_ERRORS", A100, "0 13x5", "gpu-h100-01", "hostname")],
            "3m",
            dict(GPU_EXP, host="gpu-h100-01"),
            13,
        ),
        ([s("DCGM_FI_DEV_XID_ERRORS", A100, "0 79x5")], "3m"),
    ),
    "GpuEccDoubleBitErrors": (
        ([s("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", A100, "0 0 2 2 2")], "4m", dict(GPU_EXP, host="gpu-a100-02"), None),
        ([s("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", A100, "3x30")], "20m"),
    ),
    "GpuRowRemapFailure": (
        ([s("DCGM_FI_DEV_ROW_REMAP_FAILURE", A100, "1x5")], "2m", dict(GPU_EXP, host="gpu-a100-02"), 1),
        ([s("DCGM_FI_DEV_ROW_REMAP_FAILURE", A100, "0x5")], "2m"),
    ),
    "GpuTemperatureHigh": (
        ([s("DCGM_FI_DEV_GPU_TEMP", A100, "91x15")], "10m", dict(GPU_EXP, host="gpu-a100-02"), 91),
        ([s("DCGM_FI_DEV_GPU_TEMP", A100, "60 91x3 60x10")], "10m"),  # hot for 3 minutes only
    ),
    "GpuMemoryTemperatureHigh": (
        ([s("DCGM_FI_DEV_MEMORY_TEMP", A100, "101x15")], "10m", dict(GPU_EXP, host="gpu-a100-02"), 101),
        ([s("DCGM_FI_DEV_MEMORY_TEMP", A100, "90x15")], "10m"),
    ),
    "GpuNvlinkErrors": (
        (
            [s("DCGM_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL", A100, "0 0 5 9 9")],
            "4m",
            dict(GPU_EXP, host="gpu-a100-02"),
            None,
        ),
        ([s("DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL", A100, "7x30")], "20m"),
    ),
    "DcgmExporterDown": (
        (
            [{"series": f"up{{{JOB}}}", "values": "0x10"}],
            "7m",
            {"job": "nvidia-dcgm-exporter", "instance": "10.0.0.7:9400"},
            0,
        ),
        ([{"series": f"up{{{JOB}}}", "values": "1x10"}], "7m"),
    ),
    "DcgmExporterAbsent": (
        ([{"series": 'up{job="node-exporter"}', "values": "1x10"}], "7m", {"job": "nvidia-dcgm-exporter"}, 1),
        ([{"series": f"up{{{JOB}}}", "values": "1x10"}], "7m"),
    ),
    "GpuAllocatedIdle": (
        (
            [s("DCGM_FI_PROF_GR_ENGINE_ACTIVE", A100 + ',namespace="ml",pod="trainer-0"', "0.01x90")],
            "75m",
            dict(GPU_EXP, host="gpu-a100-02", namespace="ml", pod="trainer-0"),
            0.01,
        ),
        ([s("DCGM_FI_PROF_GR_ENGINE_ACTIVE", A100, "0x90")], "75m"),  # idle but not allocated
    ),
    "GpuMigInstanceIdle": (
        (
            [s("DCGM_FI_PROF_GR_ENGINE_ACTIVE", MIG + ',namespace="nb",pod="lab-1"', "0x90")],
            "75m",
            dict(MIG_EXP, host="gpu-a100-02", namespace="nb", pod="lab-1"),
            0,
        ),
        ([s("DCGM_FI_PROF_GR_ENGINE_ACTIVE", MIG + ',namespace="nb",pod="lab-1"', "0.6x90")], "75m"),
    ),
    "GpuMemoryNearlyFull": (
        (
            [s("DCGM_FI_DEV_FB_USED", A100, "39000x20"), s("DCGM_FI_DEV_FB_FREE", A100, "1000x20")],
            "15m",
            dict(GPU_EXP, host="gpu-a100-02"),
            0.975,
        ),
        (
            [s("DCGM_FI_DEV_FB_USED", MIG, "4900x20"), s("DCGM_FI_DEV_FB_FREE", MIG, "100x20")],
            "15m",
        ),  # MIG: other alert
    ),
    "GpuMigMemoryNearlyFull": (
        (
            [s("DCGM_FI_DEV_FB_USED", MIG, "4900x20"), s("DCGM_FI_DEV_FB_FREE", MIG, "100x20")],
            "15m",
            dict(MIG_EXP, host="gpu-a100-02"),
            0.98,
        ),
        ([s("DCGM_FI_DEV_FB_USED", MIG, "100x20"), s("DCGM_FI_DEV_FB_FREE", MIG, "4900x20")], "15m"),
    ),
    "VeleroBackupRpoBreach": (
        (
            [{"series": 'velero_backup_last_successful_timestamp{schedule="daily"}', "values": "0x150"}],
            "2h",
            {"schedule": "daily"},
            7200,
        ),
        ([{"series": 'velero_backup_last_successful_timestamp{schedule="daily"}', "values": "0+60x150"}], "2h"),
    ),
    "KarpenterGpuLimitNearlyExhausted": (
        (
            [
                {
                    "series": 'karpenter_nodepools_usage{nodepool="gpu",resource_type="nvidia.com/gpu"}',
                    "values": "30x30",
                },
                {
                    "series": 'karpenter_nodepools_limit{nodepool="gpu",resource_type="nvidia.com/gpu"}',
                    "values": "32x30",
                },
            ],
            "20m",
            {"nodepool": "gpu"},
            0.9375,
        ),
        (
            [
                {
                    "series": 'karpenter_nodepools_usage{nodepool="gpu",resource_type="nvidia.com/gpu"}',
                    "values": "8x30",
                },
                {
                    "series": 'karpenter_nodepools_limit{nodepool="gpu",resource_type="nvidia.com/gpu"}',
                    "values": "32x30",
                },
            ],
            "20m",
        ),
    ),
}


def _go_float(value: float) -> str:
    text = "%g" % value
    return text if "e" not in text else repr(value)


def render_template(text: str, labels: dict, value: float) -> str:
    """The few Go-template forms the rules use: {{ $labels.x }}, {{ $value }}, | humanizePercentage."""
    text = re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels.get(m.group(1), ""), text)
    text = text.replace("{{ $value | humanizePercentage }}", "%.4g%%" % (value * 100))
    return text.replace("{{ $value }}", _go_float(value))


@pytest.fixture(scope="module")
def rules_file(tmp_path_factory):
    # An RPO of 1 h (promtool evaluates every rule each minute up to eval_time: a day is slow).
    plan = monitoring_plan(dict(default_spec(), thresholds={"velero_rpo_hours": 1}), [])
    assert plan["errors"] == []
    path = tmp_path_factory.mktemp("rules") / "gpuops-rules.yml"
    path.write_text(yaml.safe_dump({"groups": plan["rule_groups"]}, sort_keys=False))
    return path, {rule["alert"]: rule for group in plan["rule_groups"] for rule in group["rules"]}


def test_promtool_check_rules(rules_file):
    path, rules = rules_file
    out = subprocess.run([PROMTOOL, "check", "rules", str(path)], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(rules)} rules found" in out.stdout


def test_every_alert_has_a_case_and_a_runbook(rules_file):
    _unused, rules = rules_file
    assert sorted(rules) == sorted(CASES)
    for name, rule in rules.items():
        assert rule["annotations"]["runbook_url"].startswith("playbooks/health_check.yml#"), name


def test_promtool_test_rules(rules_file, tmp_path):
    path, rules = rules_file
    tests = []
    for name, (firing, quiet) in CASES.items():
        series, at, labels, value = firing
        rule = rules[name]
        expected = {"exp_labels": dict(labels, alertname=name, **rule["labels"])}
        expected["exp_labels"].pop("alertname")
        if value is None:  # increase() extrapolates: these alerts do not print $value
            assert "$value" not in str(rule["annotations"]), name
        expected["exp_annotations"] = {
            key: render_template(text, labels, value or 0) for key, text in rule["annotations"].items()
        }
        tests.append(
            {
                "name": f"{name} fires",
                "interval": "1m",
                "input_series": series,
                "alert_rule_test": [{"eval_time": at, "alertname": name, "exp_alerts": [expected]}],
            }
        )
        tests.append(
            {
                "name": f"{name} stays quiet",
                "interval": "1m",
                "input_series": quiet[0],
                "alert_rule_test": [{"eval_time": quiet[1], "alertname": name, "exp_alerts": []}],
            }
        )
    test_file = tmp_path / "tests.yml"
    test_file.write_text(yaml.safe_dump({"rule_files": [str(path)], "tests": tests}, sort_keys=False))
    out = subprocess.run([PROMTOOL, "test", "rules", str(test_file)], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
