"""Fault injection (fixture and CLI), init failures, state persistence and concurrent writers."""

import json
import subprocess
import sys

import pytest
from conftest import SIM_PATH, fixture_path, run_cli, run_sim_python

A100 = "a100-sxm4-40gb-x8"


def _state(tmp_path, name=A100):
    return str(tmp_path / ("%s-state.json" % name))


def test_lost_gpu_keeps_its_handle_but_fails_every_query(use_host):
    nv = use_host("a100-one-lost")
    nv.nvmlInit()
    assert nv.nvmlDeviceGetCount() == 8
    lost = nv.nvmlDeviceGetHandleByIndex(3)
    for call in (
        nv.nvmlDeviceGetName,
        nv.nvmlDeviceGetUUID,
        nv.nvmlDeviceGetPciInfo,
        nv.nvmlDeviceGetMemoryInfo,
        nv.nvmlDeviceGetMigMode,
    ):
        with pytest.raises(nv.NVMLError_GpuIsLost) as caught:
            call(lost)
        assert caught.value.value == nv.NVML_ERROR_GPU_IS_LOST
        assert str(caught.value) == "GPU is lost"
    with pytest.raises(nv.NVMLError_GpuIsLost):
        nv.nvmlDeviceGetTemperature(lost, nv.NVML_TEMPERATURE_GPU)
    with pytest.raises(nv.NVMLError_GpuIsLost):
        nv.nvmlDeviceGetHandleByPciBusId("0000:4e:00.0")
    for index in (0, 1, 2, 4, 5, 6, 7):
        assert nv.nvmlDeviceGetName(nv.nvmlDeviceGetHandleByIndex(index)).startswith("NVIDIA A100")


def test_injected_fault_with_times_counts_down_and_persists(use_host, tmp_path):
    nv = use_host(A100)
    nv.nvmlInit()  # creates the state file
    nv.nvmlShutdown()
    run_cli(
        "inject",
        "--state",
        _state(tmp_path),
        "--gpu",
        "1",
        "--call",
        "nvmlDeviceGetTemperature",
        "--error",
        "GPU_IS_LOST",
        "--times",
        "2",
    )
    nv.nvmlInit()
    gpu1, gpu0 = nv.nvmlDeviceGetHandleByIndex(1), nv.nvmlDeviceGetHandleByIndex(0)
    assert nv.nvmlDeviceGetTemperature(gpu0, nv.NVML_TEMPERATURE_GPU) > 0  # other GPU unaffected
    assert nv.nvmlDeviceGetName(gpu1)  # other calls unaffected
    with pytest.raises(nv.NVMLError_GpuIsLost):
        nv.nvmlDeviceGetTemperature(gpu1, nv.NVML_TEMPERATURE_GPU)
    nv.nvmlShutdown()
    shown = json.loads(run_cli("show", "--state", _state(tmp_path)).stdout)
    assert [f["times"] for f in shown["faults"]] == [1]
    nv.nvmlInit()
    with pytest.raises(nv.NVMLError_GpuIsLost):  # the versioned variant shares the fault
        nv.nvmlDeviceGetTemperatureV(nv.nvmlDeviceGetHandleByIndex(1), nv.NVML_TEMPERATURE_GPU)
    assert nv.nvmlDeviceGetTemperature(nv.nvmlDeviceGetHandleByIndex(1), nv.NVML_TEMPERATURE_GPU) > 0
    assert json.loads(run_cli("show", "--state", _state(tmp_path)).stdout)["faults"] == []


def test_star_fault_and_clear_faults(use_host, tmp_path):
    nv = use_host(A100)
    run_cli("reset", "--fixture", fixture_path(A100), "--state", _state(tmp_path))
    run_cli("inject", "--state", _state(tmp_path), "--gpu", "6", "--error", "IN_USE")
    nv.nvmlInit()
    handle = nv.nvmlDeviceGetHandleByIndex(6)
    with pytest.raises(nv.NVMLError_InUse) as caught:
        nv.nvmlDeviceGetSerial(handle)
    assert str(caught.value) == "In use by another client"  # from the library's error strings
    nv.nvmlShutdown()
    run_cli("clear-faults", "--state", _state(tmp_path))
    nv.nvmlInit()
    assert nv.nvmlDeviceGetSerial(nv.nvmlDeviceGetHandleByIndex(6))


def test_global_init_fault(tmp_path):
    state = _state(tmp_path)
    run_cli("reset", "--fixture", fixture_path(A100), "--state", state)
    run_cli("inject", "--state", state, "--call", "nvmlInit", "--error", "NO_PERMISSION")
    code = """
import pynvml as n
try:
    n.nvmlInit()
except n.NVMLError as e:
    print(type(e).__name__, e.value)
else:
    print("ok", n.nvmlDeviceGetCount())
"""
    env = {"GPUOPS_NVML_SIM_FIXTURE": fixture_path(A100), "GPUOPS_NVML_SIM_STATE": state}
    assert run_sim_python(code, env).stdout.split() == ["NVMLError_NoPermission", "4"]
    run_cli("clear-faults", "--state", state)
    assert run_sim_python(code, env).stdout.split() == ["ok", "8"]


@pytest.mark.parametrize(
    "fixture,expected",
    [
        ("driver-not-loaded", "NVMLError_DriverNotLoaded 9"),
        ("no-gpu", "NVMLError_LibraryNotFound 12"),
        (None, "NVMLError_LibraryNotFound 12"),
    ],
)
def test_init_failures(fixture, expected):
    code = """
import pynvml as n
try:
    n.nvmlInit()
except n.NVMLError as e:
    print(type(e).__name__, e.value)
try:
    n.nvmlDeviceGetCount()
except n.NVMLError_Uninitialized:
    print("uninitialized")
"""
    env = {"GPUOPS_NVML_SIM_FIXTURE": fixture_path(fixture) if fixture else ""}
    assert run_sim_python(code, env).stdout.splitlines() == [expected, "uninitialized"]


def test_error_text_needs_the_library_like_nvidia_ml_py(use_host):
    nv = use_host("no-gpu")
    with pytest.raises(nv.NVMLError_LibraryNotFound):
        nv.nvmlInit()
    # nvidia-ml-py asks libnvidia-ml for texts it does not know; without it, a generic text.
    assert str(nv.NVMLError(nv.NVML_ERROR_IN_USE)) == "NVML Error with code 19"
    assert str(nv.NVMLError(nv.NVML_ERROR_GPU_IS_LOST)) == "GPU is lost"


def test_cli_rejects_bad_input(tmp_path):
    state = _state(tmp_path)
    run_cli("reset", "--fixture", fixture_path(A100), "--state", state)
    bad_error = run_cli("inject", "--state", state, "--error", "ON_FIRE", check=False)
    assert bad_error.returncode == 2 and "ON_FIRE" in bad_error.stderr
    bad_gpu = run_cli("inject", "--state", state, "--gpu", "8", "--error", "IN_USE", check=False)
    assert bad_gpu.returncode == 2 and "0..7" in bad_gpu.stderr
    missing = run_cli("show", "--state", str(tmp_path / "nope.json"), check=False)
    assert missing.returncode == 2


def test_state_persists_between_processes(tmp_path):
    env = {"GPUOPS_NVML_SIM_FIXTURE": fixture_path(A100), "GPUOPS_NVML_SIM_STATE": _state(tmp_path)}
    create = """
import pynvml as n
n.nvmlInit()
h = n.nvmlDeviceGetHandleByIndex(4)
n.nvmlDeviceSetMigMode(h, n.NVML_DEVICE_MIG_ENABLE)
gi = n.nvmlDeviceCreateGpuInstance(h, 9)
n.nvmlGpuInstanceCreateComputeInstance(gi, 2)
"""
    read = """
import pynvml as n
n.nvmlInit()
h = n.nvmlDeviceGetHandleByIndex(4)
m = n.nvmlDeviceGetMigDeviceHandleByIndex(h, 0)
print(n.nvmlDeviceGetMigMode(h), n.nvmlDeviceGetName(m))
"""
    run_sim_python(create, env)
    assert run_sim_python(read, env).stdout.strip() == "[1, 1] NVIDIA A100-SXM4-40GB MIG 3g.20gb"
    # without a state file every process starts from the fixture
    fresh = run_sim_python(read, {"GPUOPS_NVML_SIM_FIXTURE": fixture_path(A100)}, check=False)
    assert "NVMLError_InvalidArgument" in fresh.stderr


def test_concurrent_writers_do_not_lose_updates(tmp_path):
    state = _state(tmp_path)
    run_cli("reset", "--fixture", fixture_path(A100), "--state", state)
    env = {"GPUOPS_NVML_SIM_FIXTURE": fixture_path(A100), "GPUOPS_NVML_SIM_STATE": state, "PYTHONPATH": str(SIM_PATH)}
    enable = "import pynvml as n; n.nvmlInit(); n.nvmlDeviceSetMigMode(n.nvmlDeviceGetHandleByIndex(0), 1)"
    run_sim_python(enable, env)
    create = "import pynvml as n; n.nvmlInit(); n.nvmlDeviceCreateGpuInstance(n.nvmlDeviceGetHandleByIndex(0), 19)"
    inject = [
        sys.executable,
        "-m",
        "gpuops_sim",
        "inject",
        "--state",
        state,
        "--gpu",
        "2",
        "--call",
        "nvmlDeviceGetSerial",
        "--error",
        "IN_USE",
    ]
    import os

    full_env = dict(os.environ, **env)
    procs = [subprocess.Popen([sys.executable, "-c", create], env=full_env) for _unused in range(7)]
    procs += [subprocess.Popen(inject, env=full_env) for _unused in range(6)]
    assert [p.wait(timeout=60) for p in procs] == [0] * 13
    data = json.loads(run_cli("show", "--state", state).stdout)
    starts = sorted(gi["start"] for gi in data["gpus"][0]["gpu_instances"])
    assert starts == [0, 1, 2, 3, 4, 5, 6]
    assert len(data["faults"]) == 6
    assert len({f["id"] for f in data["faults"]}) == 6
