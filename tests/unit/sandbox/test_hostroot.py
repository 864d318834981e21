"""The rendered host trees have the layout and file formats of a real Linux host."""

import json
import os
import re
from pathlib import Path

import pytest
import yaml
from conftest import FIXTURES, ROOT, fixture_path, run_cli, run_sim_python
from gpuops_sim import fixture as fixture_mod
from gpuops_sim import hostroot

ALL_FIXTURES = sorted(path.stem for path in FIXTURES.glob("*.yml"))
SECURE_BOOT = "sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"
MODULE_LINE = re.compile(r"^[a-z0-9_]+ \d+ \d+ (-|[a-z0-9_,]+,) Live 0x[0-9a-f]{16}( \([A-Z]+\))?$")
OPEN_VERSION = re.compile(
    r"^NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  (\d+\.\d+\.\d+)  Release Build  "
    r"\(\S+\)  \w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d UTC \d{4}\n"
)
PROPRIETARY_VERSION = re.compile(
    r"^NVRM version: NVIDIA UNIX x86_64 Kernel Module  (\d+\.\d+\.\d+)  \w{3} \w{3} [ \d]\d "
)


def _doc(name):
    with open(fixture_path(name)) as handle:
        return yaml.safe_load(handle)


def _render(name, tmp_path):
    return Path(hostroot.render(fixture_mod.load(fixture_path(name)), tmp_path / name))


def _read(path):
    return Path(path).read_text()


def test_every_fixture_is_shipped():
    assert {
        "a100-sxm4-40gb-x8",
        "h100-80gb-hbm3-x8",
        "l40s-x4",
        "no-gpu",
        "driver-not-loaded",
        "a100-one-lost",
        "h100-mig-mixed",
    } <= set(ALL_FIXTURES)


@pytest.mark.parametrize("name", ALL_FIXTURES)
def test_pci_tree(name, tmp_path):
    doc = _doc(name)
    root = _render(name, tmp_path)
    loaded = doc["driver"]["state"] == "loaded"
    devices = root / "sys/bus/pci/devices"
    nvidia = [d for d in sorted(os.listdir(devices)) if _read(devices / d / "vendor") == "0x10de\n"]
    expected = sorted([g["bus_id"] for g in doc.get("gpus") or []] + [s["bus_id"] for s in doc.get("nvswitches") or []])
    assert nvidia == expected
    assert len(os.listdir(devices)) > len(nvidia)  # other vendors' devices are there too
    for gpu in doc.get("gpus") or []:
        dev = devices / gpu["bus_id"]
        assert _read(dev / "class") in ("0x030000\n", "0x030200\n")
        assert re.fullmatch(r"0x[0-9a-f]{4}\n", _read(dev / "device"))
        assert _read(dev / "numa_node") == "%d\n" % gpu["numa_node"]
        group = os.path.realpath(dev / "iommu_group")
        assert group == str((root / "sys/kernel/iommu_groups" / str(gpu["iommu_group"])).resolve())
        assert os.path.islink(dev / "driver") == loaded
        if loaded:
            assert os.path.realpath(dev / "driver") == str((root / "sys/bus/pci/drivers/nvidia").resolve())
            assert os.readlink(dev / "driver") == "../../../bus/pci/drivers/nvidia"
    for switch in doc.get("nvswitches") or []:
        assert _read(devices / switch["bus_id"] / "class") == "0x068000\n"


@pytest.mark.parametrize("name", ALL_FIXTURES)
def test_driver_and_kernel_files(name, tmp_path):
    doc = _doc(name)
    root = _render(name, tmp_path)
    state = doc["driver"]["state"]
    kernel = doc["host"]["kernel"]
    assert _read(root / "proc/sys/kernel/osrelease") == kernel + "\n"
    modules = _read(root / "proc/modules").splitlines()
    assert all(MODULE_LINE.match(line) for line in modules), modules
    names = {line.split()[0] for line in modules}
    assert ({"nvidia", "nvidia_uvm", "nvidia_modeset"} <= names) == (state == "loaded")
    assert ("nouveau" in names) == bool(doc["driver"].get("nouveau_loaded"))
    version_file = root / "proc/driver/nvidia/version"
    if state == "loaded":
        pattern = OPEN_VERSION if doc["driver"]["kernel_module"] == "open" else PROPRIETARY_VERSION
        match = pattern.match(_read(version_file))
        assert match and match.group(1) == doc["driver"]["version"]
        assert _read(root / "sys/module/nvidia/version") == doc["driver"]["version"] + "\n"
    else:
        assert not version_file.exists()
        assert not (root / "sys/module/nvidia").exists()
    installed = state in ("loaded", "installed")
    assert (root / "lib/modules" / kernel / "updates/dkms/nvidia.ko").is_file() == installed
    assert (root / "usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1").exists() == installed


@pytest.mark.parametrize("name", ALL_FIXTURES)
def test_secure_boot_variable(name, tmp_path):
    wanted = _doc(name)["host"].get("secure_boot")
    root = _render(name, tmp_path)
    var = root / SECURE_BOOT
    if wanted is None:
        assert not var.exists() and not (root / "sys/firmware").exists()
    else:
        data = var.read_bytes()
        assert len(data) == 5 and data[:4] == b"\x06\x00\x00\x00"
        assert data[4] == (1 if wanted else 0)


def _snapshot(root):
    snap = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            if os.path.islink(path):
                snap[rel] = "-> " + os.readlink(path)
            elif os.path.isfile(path):
                snap[rel] = Path(path).read_bytes()
            else:
                snap[rel] = "dir"
    return snap


def test_rendering_is_idempotent(tmp_path):
    root = _render("h100-mig-mixed", tmp_path)
    first = _snapshot(root)
    (root / "stale-file").write_text("left over")
    _render("h100-mig-mixed", tmp_path)
    assert _snapshot(root) == first


def test_fleet_up_renders_every_host_consistently(tmp_path):
    hosts = {"gpu-a100-01": "a100-sxm4-40gb-x8", "gpu-h100-02": "h100-mig-mixed", "cpu-01": "no-gpu"}
    fleet = tmp_path / "fleet.yml"
    fleet.write_text(yaml.safe_dump({"hosts": hosts}))
    run_cli("fleet-up", "--fleet", str(fleet), "--fixtures", str(ROOT / "sandbox" / "fixtures"), "--dir", str(tmp_path))
    summary = json.loads((tmp_path / "fleet.json").read_text())["hosts"]
    assert set(summary) == set(hosts)
    for host in hosts:
        host_dir = tmp_path / "hosts" / host
        assert (host_dir / "root/proc/modules").is_file()
        assert json.loads((host_dir / "nvml-state.json").read_text())["host"] == host
        assert "GPUOPS_HOST_ROOT=" in (host_dir / "env").read_text()
    # the UUID in /proc/driver/nvidia/gpus/*/information is the one NVML reports
    env = {k: v for k, v in summary["gpu-a100-01"].items() if k.startswith("GPUOPS_")}
    info = tmp_path / "hosts/gpu-a100-01/root/proc/driver/nvidia/gpus/0000:07:00.0/information"
    proc_uuid = re.search(r"^GPU UUID:\s+(\S+)$", info.read_text(), re.M).group(1)
    code = "import pynvml as n; n.nvmlInit(); print(n.nvmlDeviceGetUUID(n.nvmlDeviceGetHandleByIndex(0)))"
    assert run_sim_python(code, env).stdout.strip() == proc_uuid
