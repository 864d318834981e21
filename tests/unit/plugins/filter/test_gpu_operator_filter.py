"""The gpu_operator filters: hostvars handling and errors around the pure logic."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.gpuops.cluster.plugins.filter.gpu_operator import FilterModule

F = FilterModule().filters()


def _facts(driver_state="loaded", version="550.127.05", gpus=2, source="nvml"):
    return {
        "source": source,
        "driver": {"state": driver_state, "version": version, "nvml": {"reason": None if source == "nvml" else "x"}},
        "gpus": [{"health": {"status": "healthy"}, "mig": {"current": False}} for _unused in range(gpus)],
    }


HOSTVARS = {
    "gpu-1": {"gpuops_kube_node": True, "ansible_facts": {"gpu": _facts()}},
    "gpu-2": {
        "gpuops_kube_node": True,
        "gpuops_kube_node_name": "node-2.example",
        "ansible_facts": {"gpu": _facts(gpus=4)},
    },
    "slurm-1": {"ansible_facts": {"gpu": _facts(gpus=8)}},  # not a Kubernetes node
    "new-1": {"gpuops_kube_node": True, "ansible_facts": {"gpu": _facts("installed", None, 4, "pci")}},
    "cpu-1": {"gpuops_kube_node": True, "ansible_facts": {"gpu": {"source": "none", "gpus": [], "driver": {}}}},
}


def test_expected_gpus_uses_kube_nodes_and_their_names():
    expected = F["gpu_operator_expected_gpus"](HOSTVARS, list(HOSTVARS), "single")
    assert set(expected) == {"gpu-1", "node-2.example", "new-1", "cpu-1"}
    assert expected["gpu-1"]["expected"] == 2
    assert expected["node-2.example"] == {
        "host": "gpu-2",
        "expected": 4,
        "reason": "mig strategy single",
        "problem": None,
        "driver_loaded": True,
    }
    assert "NVIDIA driver installed" in expected["new-1"]["problem"]
    assert expected["new-1"]["expected"] is None


def test_capacity_and_lines():
    expected = F["gpu_operator_expected_gpus"](HOSTVARS, ["gpu-1", "gpu-2", "new-1"], "single")
    nodes = [
        {"metadata": {"name": "gpu-1"}, "status": {"allocatable": {"nvidia.com/gpu": "2"}}},
        {"metadata": {"name": "node-2.example"}, "status": {"allocatable": {"nvidia.com/gpu": "3"}}},
    ]
    result = F["gpu_operator_capacity"](expected, nodes)
    assert [F["gpu_operator_capacity_line"](s) for s in result["shortfalls"]] == [
        "node-2.example: expected 4, advertised 3 nvidia.com/gpu"
    ]
    assert result["skipped"] == ["new-1 (no NVML facts (x))"]
    missing = F["gpu_operator_capacity"](expected, nodes[:1])["shortfalls"]
    assert F["gpu_operator_capacity_line"](missing[0]) == "node-2.example: expected 4 nvidia.com/gpu, no such Node"


def test_compat_reads_driver_versions_from_gpu_hosts_only():
    cfg = {"chart_version": "v25.10.1", "driver_enabled": False}
    matrix = {
        "25.10": {
            "chart_versions": ["v25.10.1"],
            "driver_branches": ["580"],
            "kubernetes": {"min": "1.30", "max": "1.34"},
        }
    }
    result = F["gpu_operator_compat"](
        cfg, matrix, {"kubernetes": "1.33", "platform": "kubernetes"}, HOSTVARS, list(HOSTVARS)
    )
    (error,) = result["errors"]
    assert "gpu-1 (550.127.05)" in error and "gpu-2 (550.127.05)" in error and "cpu-1" not in error
    assert result["warnings"] == ["new-1: host driver installed, version unknown: branch not checked"]


def test_errors():
    with pytest.raises(AnsibleFilterError, match="gpu_operator_values"):
        F["gpu_operator_values"]({"install_mode": "helm"})
    with pytest.raises(AnsibleFilterError, match="settings dict"):
        F["gpu_operator_cluster_policy"]("x")
    with pytest.raises(AnsibleFilterError, match="not in the inventory"):
        F["gpu_operator_expected_gpus"]({}, ["ghost"], "single")
    with pytest.raises(AnsibleFilterError):
        F["gpu_operator_capacity_line"]({})
