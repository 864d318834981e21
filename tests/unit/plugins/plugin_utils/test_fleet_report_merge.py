"""Merging fleet reports (the slices of an AWX sliced job): same result as one report."""

from __future__ import annotations

import itertools

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.gpuops.cluster.plugins.filter.fleet_report import fleet_report_merge
from ansible_collections.gpuops.cluster.plugins.plugin_utils.fleet_report import (
    build_fleet_report,
    merge_fleet_reports,
)


def _facts(count, model, unhealthy=0, mig_capable=0, mig_enabled=0, source="nvml"):
    gpus = []
    for index in range(count):
        status = "unhealthy" if index < unhealthy else "healthy"
        gpus.append(
            {
                "index": index,
                "name": model,
                "pci": {"bus_id": "0000:%02x:00.0" % index},
                "health": {"status": status, "reasons": ["lost"] if status == "unhealthy" else []},
            }
        )
    return {
        "source": source,
        "driver": {"state": "loaded", "version": "550.127.05", "kernel_module": "open", "nvml": {"reason": None}},
        "gpus": gpus,
        "summary": {
            "count": count,
            "models": {model: count} if count else {},
            "memory_total_mib": 40960 * count,
            "healthy": count - unhealthy,
            "degraded": 0,
            "unhealthy": unhealthy,
            "unknown": 0,
            "mig_capable": mig_capable,
            "mig_enabled": mig_enabled,
        },
    }


HOSTS = [
    {"name": "gpu-a", "groups": ["gpu_nodes", "ng_a"], "gpu": _facts(8, "NVIDIA A100-SXM4-40GB", unhealthy=1)},
    {"name": "gpu-b", "groups": ["gpu_nodes", "ng_b"], "gpu": _facts(8, "NVIDIA H100 80GB HBM3", mig_capable=8)},
    {"name": "cpu-1", "groups": ["cpu_nodes"], "gpu": _facts(0, "none", source="none")},
    {"name": "gpu-c", "groups": ["gpu_nodes"], "gpu": None},
    {"name": "gpu-d", "groups": ["gpu_nodes", "ng_b"], "gpu": _facts(4, "NVIDIA L40S", mig_enabled=0)},
]


@pytest.mark.parametrize("count", [1, 2, 3, 5])
def test_slices_merge_to_the_unsliced_report(count):
    whole = build_fleet_report(HOSTS)
    # AWX: hosts in name order, slice k takes [k-1::count].
    ordered = sorted(HOSTS, key=lambda h: h["name"])
    parts = [build_fleet_report(ordered[k::count]) for k in range(count)]
    assert merge_fleet_reports(parts) == whole
    # Order of the slices does not matter.
    for permutation in itertools.permutations(parts):
        assert merge_fleet_reports(list(permutation)) == whole


def test_totals_are_recomputed_not_added():
    part = build_fleet_report(HOSTS[:2])
    merged = merge_fleet_reports([part, part])  # the same host twice, same entry: counted once
    assert merged == part
    assert merged["totals"]["gpus"] == 16
    assert merged["totals"]["unhealthy"] == 1


def test_a_host_that_differs_between_reports_is_refused():
    first = build_fleet_report(HOSTS[:1])
    changed = build_fleet_report([dict(HOSTS[0], gpu=_facts(8, "NVIDIA A100-SXM4-40GB", unhealthy=2))])
    with pytest.raises(ValueError, match="gpu-a differs"):
        merge_fleet_reports([first, changed])


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"hosts": []}, "report 0 is not a fleet report"),
        ({"format": 2, "hosts": []}, "report 0 is not a fleet report"),
        ({"format": 1, "hosts": [{"gpu_count": 1}]}, "host entry without a name"),
        ("text", "report 0 is not a fleet report"),
    ],
)
def test_bad_input_names_the_problem(bad, message):
    with pytest.raises(ValueError, match=message):
        merge_fleet_reports([bad])


def test_filter_wraps_errors_and_needs_a_list():
    with pytest.raises(AnsibleFilterError, match="must be a list"):
        fleet_report_merge({"format": 1})
    with pytest.raises(AnsibleFilterError, match="not a fleet report"):
        fleet_report_merge([{}])
    assert fleet_report_merge([]) == build_fleet_report([])
