"""playbooks/health_check.yml against the sandbox and the Kubernetes API stand-in: healthy hosts
give no findings; faults injected into the simulator and the cluster each give theirs."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import REPO_ROOT, run_playbook
from test_mig_role import env_of

PLAYBOOK = REPO_ROOT / "playbooks" / "health_check.yml"
HEALTHY = ["-l", "gpu-a100-01,gpu-h100-01,localhost"]


def _report(tmp_path, name):
    return json.loads((tmp_path / name / "health-check.json").read_text())


def test_healthy_then_each_injected_fault_found(sandbox, kube, tmp_path):
    from kubernetes import client

    env = env_of(sandbox, kube)
    run = run_playbook(PLAYBOOK, *HEALTHY, "-e", f"health_check_report_dir={tmp_path / 'ok'}", env=env)
    assert run.rc == 0, run
    assert _report(tmp_path, "ok") == {
        "healthy": True,
        "counts": {"critical": 0, "warning": 0, "info": 0},
        "findings": [],
    }

    # Faults: GPU 2 of gpu-a100-01 falls off the bus; a pod asks for more GPUs than any node has.
    state = sandbox["dir"] / "hosts" / "gpu-a100-01" / "nvml-state.json"
    subprocess.run(
        [sys.executable, "-m", "gpuops_sim", "inject", "--state", str(state), "--gpu", "2", "--call", "*"]
        + ["--error", "GPU_IS_LOST"],
        env=dict(sandbox["env"], PYTHONPATH=str(REPO_ROOT / "sandbox" / "python")),
        check=True,
    )
    core = client.CoreV1Api(kube.api_client())
    core.create_namespaced_pod(
        "default",
        {
            "metadata": {"name": "greedy"},
            "spec": {
                "containers": [{"name": "main", "image": "cuda", "resources": {"limits": {"nvidia.com/gpu": "64"}}}]
            },
        },
    )
    kube.wait_for(
        lambda: any(
            c.type == "PodScheduled" and c.status == "False"
            for c in (core.read_namespaced_pod("greedy", "default").status.conditions or [])
        ),
        message="pod greedy marked unschedulable",
    )
    run = run_playbook(PLAYBOOK, *HEALTHY, "-e", f"health_check_report_dir={tmp_path / 'bad'}", env=env)
    assert run.rc == 0, run
    found = {(f["check"], f["subject"]): f for f in _report(tmp_path, "bad")["findings"]}
    assert sorted(check for check, _unused in found) == ["gpu-not-detected", "pods-pending"], found
    gpu = next(f for (check, _unused), f in found.items() if check == "gpu-not-detected")
    assert gpu["subject"].startswith("gpu-a100-01 GPU") and "0000:47:00.0" in gpu["subject"], gpu
    assert "GPU_IS_LOST" in gpu["finding"] and gpu["severity"] == "critical"
    assert "Insufficient nvidia.com/gpu" in found[("pods-pending", "Pod/default/greedy")]["finding"]
    assert (tmp_path / "bad" / "health-check.txt").read_text().startswith("health check: 1 critical, 1 warning")
