"""`gpuops_sim reboot --driver-version`: the host comes back with another driver loaded.

The host tree and NVML must agree on the new version, the way a real host does after the reboot
that loads a newly installed driver; shipped fixtures are never rewritten.
"""

import json
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import fixture_path, run_cli, run_sim_python
from gpuops_sim import driver_reload
from gpuops_sim import fixture as fixture_mod

NVML_REPORT = """
import json, pynvml
pynvml.nvmlInit()
count = pynvml.nvmlDeviceGetCount()
handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
print(json.dumps({
    "driver": pynvml.nvmlSystemGetDriverVersion(),
    "nvml": pynvml.nvmlSystemGetNVMLVersion(),
    "cuda": pynvml.nvmlSystemGetCudaDriverVersion(),
    "uuids": [pynvml.nvmlDeviceGetUUID(h) for h in handles],
    "processes": sum(len(pynvml.nvmlDeviceGetComputeRunningProcesses(h)) for h in handles),
}))
"""


def _host(tmp_path, fixture_name, host="gpu-test-01"):
    """A host laid out as fleet-up does, but with its own copy of the fixture."""
    host_dir = tmp_path / "hosts" / host
    host_dir.mkdir(parents=True)
    local = host_dir / "fixture.yml"
    shutil.copyfile(fixture_path(fixture_name), local)
    state = host_dir / "nvml-state.json"
    root = host_dir / "root"
    run_cli("reset", "--fixture", str(local), "--state", str(state), "--host", host)
    run_cli("render", "--fixture", str(local), "--root", str(root), "--host", host)
    env = {"GPUOPS_NVML_SIM_FIXTURE": str(local), "GPUOPS_NVML_SIM_STATE": str(state)}
    return {"dir": host_dir, "fixture": local, "state": state, "root": root, "env": env}


def _nvml(host):
    return json.loads(run_sim_python(NVML_REPORT, host["env"]).stdout)


def _doc(path):
    return yaml.safe_load(Path(path).read_text())


def test_reboot_into_new_driver_updates_host_tree_and_nvml(tmp_path):
    host = _host(tmp_path, "h100-mig-mixed")
    old_version = _doc(fixture_path("h100-mig-mixed"))["driver"]["version"]
    before = _nvml(host)
    assert before["driver"] == old_version
    assert before["processes"] > 0  # the fixture runs processes; a reboot ends them

    new_version = "570.133.20"
    assert new_version != old_version
    run_cli("reboot", "--state", str(host["state"]), "--driver-version", new_version)

    root = host["root"]
    version_file = (root / "proc/driver/nvidia/version").read_text()
    assert "  %s  " % new_version in version_file
    assert old_version not in version_file
    assert (root / "sys/module/nvidia/version").read_text() == new_version + "\n"
    libs = sorted(p.name for p in (root / "usr/lib/x86_64-linux-gnu").glob("libnvidia-ml.so.*"))
    assert libs == ["libnvidia-ml.so.1", "libnvidia-ml.so.%s" % new_version]

    after = _nvml(host)
    assert after["driver"] == new_version
    assert after["nvml"].endswith("." + new_version)
    assert after["cuda"] == driver_reload.CUDA_BY_BRANCH[570]
    assert after["uuids"] == before["uuids"]  # same GPUs, same host
    assert after["processes"] == 0
    state = json.loads(host["state"].read_text())
    assert state["boots"] == 1
    # The host's fixture copy now says what is loaded; the shipped one is untouched.
    assert _doc(host["fixture"])["driver"]["version"] == new_version
    assert _doc(fixture_path("h100-mig-mixed"))["driver"]["version"] == old_version


def test_kernel_module_flavour_and_branch_cuda(tmp_path):
    host = _host(tmp_path, "a100-sxm4-40gb-x8")
    run_cli("reboot", "--state", str(host["state"]), "--driver-version", "535.261.03", "--kernel-module", "proprietary")
    version_file = (host["root"] / "proc/driver/nvidia/version").read_text()
    assert version_file.startswith("NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.261.03  ")
    modules = (host["root"] / "proc/modules").read_text()
    assert "(POE)" in modules  # the proprietary module taints with P
    assert _nvml(host)["cuda"] == 12020


def test_driver_installed_but_not_loaded_comes_back_loaded(tmp_path):
    host = _host(tmp_path, "driver-not-loaded")
    failed = run_sim_python("import pynvml; pynvml.nvmlInit()", host["env"], check=False)
    assert "NVMLError_DriverNotLoaded" in failed.stderr
    assert not (host["root"] / "proc/driver/nvidia/version").exists()
    run_cli("reboot", "--state", str(host["state"]), "--driver-version", "550.163.01")
    assert (host["root"] / "sys/module/nvidia/version").read_text() == "550.163.01\n"
    assert _nvml(host)["driver"] == "550.163.01"


def test_explicit_root(tmp_path):
    host = _host(tmp_path, "l40s-x4")
    other = tmp_path / "elsewhere"
    run_cli("reboot", "--state", str(host["state"]), "--driver-version", "550.163.01", "--root", str(other))
    assert (other / "sys/module/nvidia/version").read_text() == "550.163.01\n"


def test_shipped_fixture_is_never_rewritten(tmp_path):
    state = tmp_path / "state.json"
    shipped = Path(fixture_path("a100-sxm4-40gb-x8"))
    text = shipped.read_text()
    run_cli("reset", "--fixture", str(shipped), "--state", str(state))
    result = run_cli("reboot", "--state", str(state), "--driver-version", "550.163.01", check=False)
    assert result.returncode == 2
    assert "shipped fixture" in result.stderr
    assert shipped.read_text() == text
    assert json.loads(state.read_text())["boots"] == 0  # nothing happened, not even the reboot


@pytest.mark.parametrize(
    "args, message",
    [
        (["--driver-version", "latest"], "is not a driver version"),
        (["--driver-version", "550"], "is not a driver version"),
        (["--driver-version", "999.1.2"], "--cuda-driver-version"),
        (["--driver-version", "550.163.01", "--kernel-module", "nouveau"], "invalid choice"),
    ],
)
def test_bad_input_changes_nothing(tmp_path, args, message):
    host = _host(tmp_path, "a100-sxm4-40gb-x8")
    fixture_text = host["fixture"].read_text()
    state_text = host["state"].read_text()
    version_file = (host["root"] / "proc/driver/nvidia/version").read_text()
    result = run_cli("reboot", "--state", str(host["state"]), *args, check=False)
    assert result.returncode == 2
    assert message in result.stderr
    assert host["fixture"].read_text() == fixture_text
    assert host["state"].read_text() == state_text
    assert (host["root"] / "proc/driver/nvidia/version").read_text() == version_file


def test_unknown_branch_with_explicit_cuda_version(tmp_path):
    host = _host(tmp_path, "a100-sxm4-40gb-x8")
    run_cli("reboot", "--state", str(host["state"]), "--driver-version", "999.1.2", "--cuda-driver-version", "13050")
    assert _nvml(host)["cuda"] == 13050


def test_back_to_back_changes_are_seen_in_process(tmp_path):
    """Same-length versions written within one clock tick still invalidate the loader's cache."""
    host = _host(tmp_path, "a100-sxm4-40gb-x8")
    path = str(host["fixture"])
    assert fixture_mod.load(path)["driver"]["version"] == "550.127.05"
    for version in ("550.163.01", "550.163.02", "550.163.03"):
        assert driver_reload.install(path, version)["driver"]["version"] == version
        assert fixture_mod.load(path)["driver"]["version"] == version


def test_plain_reboot_keeps_driver_and_tree(tmp_path):
    host = _host(tmp_path, "a100-sxm4-40gb-x8")
    fixture_text = host["fixture"].read_text()
    version_file = host["root"] / "proc/driver/nvidia/version"
    stamp = version_file.stat().st_mtime_ns
    run_cli("reboot", "--state", str(host["state"]))
    assert host["fixture"].read_text() == fixture_text
    assert version_file.stat().st_mtime_ns == stamp
    assert json.loads(host["state"].read_text())["boots"] == 1
