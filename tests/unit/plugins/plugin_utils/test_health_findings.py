"""Findings of playbooks/health_check.yml (plugin_utils/health_findings.py), from facts and
objects shaped as gpu_probe and k8s_info return them."""

from __future__ import annotations

from ansible_collections.gpuops.cluster.plugins.plugin_utils.health_findings import (
    gpu_findings,
    kube_findings,
    report,
    report_text,
)


def gpu_facts(state="loaded", nvml=True, statuses=("healthy", "healthy")):
    return {
        "driver": {"state": state, "nvml": {"available": nvml, "reason": None if nvml else "libnvidia-ml not found"}},
        "gpus": [
            {
                "index": i,
                "pci": {"bus_id": "0000:0%d:00.0" % i},
                "health": {"status": s, "reasons": [] if s == "healthy" else ["GPU is lost (NVML_ERROR_GPU_IS_LOST)"]},
            }
            for i, s in enumerate(statuses)
        ],
    }


def test_healthy_host_and_host_without_gpus_have_no_findings():
    assert gpu_findings("h", gpu_facts()) == []
    assert gpu_findings("cpu", {"driver": {"state": "none"}, "gpus": []}) == []


def test_driver_nvml_and_lost_gpu():
    (driver,) = gpu_findings("h", gpu_facts(state="installed"))
    assert driver["severity"] == "critical" and "driver is installed (2 GPUs" in driver["finding"]
    (nvml,) = gpu_findings("h", gpu_facts(nvml=False))
    assert "NVML unusable: libnvidia-ml not found" in nvml["finding"]
    (lost,) = gpu_findings("h", gpu_facts(statuses=("healthy", "unhealthy")))
    assert lost["subject"] == "h GPU 1 (0000:01:00.0)" and "reset the GPU" in lost["fix"]
    (degraded,) = gpu_findings("h", gpu_facts(statuses=("degraded", "healthy")))
    assert degraded["severity"] == "warning"


def _pod(name, phase="Running", scheduled=None, terminated=None):
    status = {"phase": phase, "conditions": []}
    if scheduled:
        status["conditions"].append(
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": scheduled}
        )
    if terminated:
        status["containerStatuses"] = [
            {"name": "main", "restartCount": 3, "lastState": {"terminated": {"reason": terminated, "exitCode": 137}}}
        ]
    return {"metadata": {"name": name, "namespace": "ml"}, "status": status}


def test_pending_oom_and_not_ready():
    pods = [
        _pod("ok"),
        _pod("big", "Pending", "0/6 nodes are available: 6 Insufficient nvidia.com/gpu."),
        _pod("mig", "Pending", "0/6 nodes are available: 6 Insufficient nvidia.com/mig-7g.80gb."),
        _pod("oom", terminated="OOMKilled"),
        _pod("crash", terminated="Error"),
    ]
    nodes = [
        {"metadata": {"name": "n1"}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}},
        {
            "metadata": {"name": "n2"},
            "status": {"conditions": [{"type": "Ready", "status": "Unknown", "message": "Kubelet stopped posting"}]},
        },
    ]
    found = kube_findings(pods, nodes)
    by_subject = {f["subject"]: f for f in found}
    assert sorted(by_subject) == ["Node/n2", "Pod/ml/big", "Pod/ml/mig", "Pod/ml/oom container main"]
    assert "Karpenter" in by_subject["Pod/ml/big"]["fix"] and "MIG profile" in by_subject["Pod/ml/mig"]["fix"]
    assert by_subject["Node/n2"]["severity"] == "critical"
    result = report(found)
    assert result["counts"] == {"critical": 1, "warning": 3, "info": 0} and not result["healthy"]
    assert result["findings"][0]["subject"] == "Node/n2"
    text = report_text(result)
    assert text.startswith("health check: 1 critical, 3 warning\n") and "fix: " in text


def test_empty_report():
    assert report([]) == {"healthy": True, "counts": {"critical": 0, "warning": 0, "info": 0}, "findings": []}
    assert report_text(report([])) == "health check: no findings\n"
