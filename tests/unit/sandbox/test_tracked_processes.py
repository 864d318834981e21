"""`spawn --track`: a simulated GPU process backed by a real one leaves NVML's lists when it exits."""

import json
import subprocess

from conftest import fixture_path, run_cli


def _processes(state, gpu):
    return json.loads(state.read_text())["gpus"][gpu]["processes"]


def test_tracked_process_goes_when_the_real_one_exits(use_host, tmp_path):
    nvml = use_host("a100-sxm4-40gb-x8")
    state = tmp_path / "a100-sxm4-40gb-x8-state.json"
    run_cli("reset", "--fixture", fixture_path("a100-sxm4-40gb-x8"), "--state", str(state))
    job = subprocess.Popen(["sleep", "60"])
    try:
        run_cli("spawn", "--state", str(state), "--gpu", "1", "--pid", str(job.pid), "--name", "sleep", "--track")
        assert _processes(state, 1)[0]["track_os_pid"] is True
        nvml.nvmlInit()
        handle = nvml.nvmlDeviceGetHandleByIndex(1)
        assert [p.pid for p in nvml.nvmlDeviceGetComputeRunningProcesses(handle)] == [job.pid]
        assert nvml.nvmlSystemGetProcessName(job.pid) == "sleep"
        job.kill()
        job.wait()
        assert nvml.nvmlDeviceGetComputeRunningProcesses(handle) == []
        # Nothing holds the GPU any more: MIG mode applies at once.
        assert nvml.nvmlDeviceSetMigMode(handle, nvml.NVML_DEVICE_MIG_ENABLE) == nvml.NVML_SUCCESS
    finally:
        if job.poll() is None:
            job.kill()
            job.wait()


def test_track_needs_a_live_pid(tmp_path):
    state = tmp_path / "state.json"
    run_cli("reset", "--fixture", fixture_path("a100-sxm4-40gb-x8"), "--state", str(state))
    result = run_cli("spawn", "--state", str(state), "--gpu", "1", "--pid", str(2**22 + 7), "--track", check=False)
    assert result.returncode == 2 and "--track" in result.stderr
