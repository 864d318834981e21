"""Fleet report folding and rendering (pure logic)."""

from __future__ import annotations

import copy
import json

import pytest
from ansible_collections.gpuops.cluster.plugins.plugin_utils.fleet_report import (
    build_fleet_report,
    render_fleet_table,
)


def _gpu(index, status="healthy", reasons=(), name="NVIDIA A100-SXM4-40GB", bus="0000:07:00.0"):
    return {
        "index": index,
        "name": name,
        "pci": {"bus_id": bus},
        "temperature_c": 30 + (index or 0),
        "health": {"status": status, "reasons": list(reasons)},
    }


def _facts(gpus, source="nvml", driver_state="loaded", reason=None, mig_capable=0, mig_enabled=0):
    counts = {"healthy": 0, "degraded": 0, "unhealthy": 0, "unknown": 0}
    models = {}
    for gpu in gpus:
        counts[gpu["health"]["status"]] += 1
        if gpu.get("name"):
            models[gpu["name"]] = models.get(gpu["name"], 0) + 1
    return {
        "source": source,
        "driver": {
            "state": driver_state,
            "version": "550.127.05",
            "kernel_module": "open",
            "cuda_driver_version": "12.4",
            "nvml": {"available": source == "nvml", "reason": reason},
        },
        "nvswitches": [{"pci_bus_id": "0000:c0:00.0"}],
        "gpus": gpus,
        "summary": dict(
            counts,
            count=len(gpus),
            models=models,
            memory_total_mib=40960 * len(gpus),
            mig_capable=mig_capable,
            mig_enabled=mig_enabled,
        ),
    }


def test_totals_add_up_across_hosts():
    hosts = [
        {
            "name": "b",
            "groups": ["gpu_nodes"],
            "gpu": _facts([_gpu(i) for i in range(8)], mig_capable=8, mig_enabled=2),
        },
        {
            "name": "a",
            "groups": ["gpu_nodes"],
            "gpu": _facts([_gpu(0), _gpu(1, "unhealthy", ["GPU is lost"], bus="0000:0f:00.0")]),
        },
        {"name": "c", "groups": ["cpu_nodes"], "gpu": _facts([], source="none", driver_state="none")},
    ]
    report = build_fleet_report(hosts)
    totals = report["totals"]
    assert [h["name"] for h in report["hosts"]] == ["a", "b", "c"]
    assert totals["gpus"] == 10
    assert totals["hosts_with_gpus"] == 2
    assert totals["healthy"] == 9 and totals["unhealthy"] == 1
    assert totals["by_model"] == {"NVIDIA A100-SXM4-40GB": 10}
    assert totals["mig_capable"] == 8 and totals["mig_enabled"] == 2
    problems = report["hosts"][0]["problems"]
    assert problems == [
        {
            "gpu": 1,
            "pci_bus_id": "0000:0f:00.0",
            "name": "NVIDIA A100-SXM4-40GB",
            "status": "unhealthy",
            "reasons": ["GPU is lost"],
        }
    ]


def test_host_without_facts_is_a_problem_not_dropped():
    report = build_fleet_report([{"name": "gone", "groups": [], "gpu": None}])
    entry = report["hosts"][0]
    assert entry["probed"] is False
    assert "unreachable" in entry["problems"][0]["reasons"][0]
    assert report["totals"]["hosts_probed"] == 0
    assert "gone host: unknown" in render_fleet_table(report)


def test_report_ignores_telemetry_so_rewrites_are_stable():
    gpus = [_gpu(i) for i in range(2)]
    first = build_fleet_report([{"name": "a", "groups": [], "gpu": _facts(gpus)}])
    hotter = copy.deepcopy(gpus)
    for gpu in hotter:
        gpu["temperature_c"] += 20
    second = build_fleet_report([{"name": "a", "groups": [], "gpu": _facts(hotter)}])
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)


def test_pci_only_host_is_a_note_with_the_reason():
    facts = _facts(
        [_gpu(None, "unknown", bus="0000:07:00.0")],
        source="pci",
        driver_state="installed",
        reason="NVIDIA driver is not loaded",
    )
    report = build_fleet_report([{"name": "new", "groups": [], "gpu": facts}])
    # Unknown health on a PCI-only host is expected, not a per-GPU problem.
    assert report["hosts"][0]["problems"] == []
    table = render_fleet_table(report)
    assert "new: PCI only (NVIDIA driver is not loaded)" in table
    assert "installed" in table.splitlines()[1]


def test_table_has_one_row_per_host_and_aligned_columns():
    hosts = [{"name": "host-%d" % i, "groups": [], "gpu": _facts([_gpu(0)])} for i in range(3)]
    lines = render_fleet_table(build_fleet_report(hosts)).splitlines()
    header, rows = lines[0], lines[1:4]
    assert header.startswith("HOST")
    assert all(row.startswith("host-") for row in rows)
    column = header.index("GPUS")
    assert all(row[column] == "1" for row in rows)
    assert "3 hosts (3 with GPUs), 3 GPUs" in lines[5]


@pytest.mark.parametrize("status", ["degraded", "unhealthy"])
def test_problem_lines_name_host_gpu_and_reasons(status):
    facts = _facts([_gpu(3, status, ["uncorrected ECC errors: 2", "row remapping pending"], bus="0000:4e:00.0")])
    table = render_fleet_table(build_fleet_report([{"name": "n1", "groups": [], "gpu": facts}]))
    assert ("n1 GPU 3 (0000:4e:00.0): %s: uncorrected ECC errors: 2; row remapping pending" % status) in table
