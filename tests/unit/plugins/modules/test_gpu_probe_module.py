# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The real module through Ansible (ansible localhost -m gpuops.cluster.gpu_probe)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import FIXTURES_DIR, REPO, SIM_DIR, pci_device_files, write_tree

ANSIBLE = os.path.join(REPO, ".venv", "bin", "ansible")


def run_module(args="", env=None, check=False):
    environ = dict(os.environ)
    environ.update({"ANSIBLE_LOAD_CALLBACK_PLUGINS": "1", "ANSIBLE_STDOUT_CALLBACK": "json", "ANSIBLE_NOCOLOR": "1"})
    for key in ("GPUOPS_HOST_ROOT", "GPUOPS_NVML_SIM_FIXTURE", "GPUOPS_NVML_SIM_STATE", "PYTHONPATH"):
        environ.pop(key, None)
    environ.update(env or {})
    cmd = [
        ANSIBLE,
        "localhost",
        "-m",
        "gpuops.cluster.gpu_probe",
        "-e",
        "ansible_python_interpreter=%s" % sys.executable,
    ]
    if args:
        cmd += ["-a", args]
    if check:
        cmd.append("--check")
    proc = subprocess.run(cmd, cwd=REPO, env=environ, capture_output=True, text=True, timeout=120, check=False)
    try:
        payload = json.loads(proc.stdout)
    except ValueError:
        pytest.fail("no JSON from ansible (rc %s): %s %s" % (proc.returncode, proc.stdout, proc.stderr))
    result = payload["plays"][0]["tasks"][0]["hosts"]["localhost"]
    return proc.returncode, result


def test_bad_collect_value_fails_naming_the_option(tmp_path):
    rc, result = run_module("collect=pci,gpus", env={"GPUOPS_HOST_ROOT": str(tmp_path)})
    assert rc != 0
    assert result.get("failed") is True
    message = result["msg"]
    assert "collect" in message
    for choice in ("pci", "nvml", "mig", "processes", "telemetry"):
        assert choice in message
    assert "gpus" in message


def test_pci_only_through_ansible_with_env_host_root(tmp_path):
    files = {"proc/sys/kernel/osrelease": "6.1.0-28-amd64\n"}
    files.update(pci_device_files("0000:07:00.0"))
    write_tree(tmp_path, files)
    # the real nvidia-ml-py in the venv finds no libnvidia-ml here: PCI-only facts
    rc, result = run_module("collect=pci,nvml", env={"GPUOPS_HOST_ROOT": str(tmp_path)}, check=True)
    assert rc == 0, result
    assert result["changed"] is False
    gpu = result["ansible_facts"]["gpu"]
    assert gpu["source"] == "pci"
    assert gpu["host"]["kernel"] == "6.1.0-28-amd64"
    assert gpu["driver"]["nvml"]["available"] is False
    assert gpu["driver"]["nvml"]["reason"]
    assert gpu["gpus"][0]["pci"]["bus_id"] == "0000:07:00.0"
    assert gpu["summary"]["unknown"] == 1


SIM_FIXTURE = os.path.join(FIXTURES_DIR, "a100-sxm4-40gb-x8.yml")


@pytest.mark.skipif(
    not os.path.exists(os.path.join(SIM_DIR, "gpuops_sim", "__main__.py")) or not os.path.exists(SIM_FIXTURE),
    reason="NVML simulator not built yet",
)
def test_module_against_simulator(tmp_path):
    env = {"PYTHONPATH": SIM_DIR}
    render = subprocess.run(
        [sys.executable, "-m", "gpuops_sim", "render", "--fixture", SIM_FIXTURE, "--root", str(tmp_path / "root")],
        env=dict(os.environ, **env),
        capture_output=True,
        text=True,
        check=False,
    )
    assert render.returncode == 0, render.stderr
    env.update({"GPUOPS_NVML_SIM_FIXTURE": SIM_FIXTURE, "GPUOPS_HOST_ROOT": str(tmp_path / "root")})
    rc, result = run_module(env=env)
    assert rc == 0, result
    gpu = result["ansible_facts"]["gpu"]
    assert gpu["source"] == "nvml"
    assert gpu["collected"] == ["pci", "nvml", "mig", "processes", "telemetry"]
    assert gpu["summary"]["count"] == 8
    assert gpu["summary"]["healthy"] == 8
    assert gpu["summary"]["models"] == {"NVIDIA A100-SXM4-40GB": 8}
    assert gpu["driver"]["state"] == "loaded"
    assert [g["index"] for g in gpu["gpus"]] == list(range(8))


def test_missing_host_root_fails_naming_the_option(tmp_path):
    missing = tmp_path / "no-such-root"
    rc, result = run_module("host_root=%s" % missing)
    assert rc != 0
    assert result.get("failed") is True
    assert result["msg"].startswith("host_root: %s is not a directory" % missing)
    assert "ansible_facts" not in result
