"""gpu_probe against bad options and hostile host trees / NVML answers, table-driven.

Options: rejected naming the option and what is allowed. Host data: the module succeeds (it
only reads), never hangs or reads without limit, and every failure lands in the affected GPU's
``errors`` and in its health (never ``healthy`` with data missing).
"""

from __future__ import annotations

import os
import sys

import pytest
import simhost

A100 = "a100-sxm4-40gb-x8"
H100_MIG = "h100-mig-mixed"


@pytest.fixture
def host(monkeypatch, tmp_path):
    """(SimHost, rendered host root) for a fixture; pynvml is the simulator."""

    def make(name):
        sim_host = simhost.SimHost(monkeypatch, tmp_path)
        sim_host.activate(name)
        from gpuops_sim import fixture as fixture_mod
        from gpuops_sim import hostroot

        root = tmp_path / "root"
        fixture = fixture_mod.load(str(simhost.FIXTURES / ("%s.yml" % name)))
        hostroot.render(fixture, str(root), None)
        monkeypatch.setitem(sys.modules, "pynvml", sim_host.nvml)
        monkeypatch.delenv("GPUOPS_HOST_ROOT", raising=False)
        return sim_host, root

    return make


# --------------------------------------------------------------------------- options
OPTION_CASES = [
    ("collect-empty", {"collect": []}, ["collect: must name at least one of pci, nvml, mig, processes, telemetry"]),
    ("collect-unknown", {"collect": ["gpus"]}, ["collect", "pci, nvml, mig, processes, telemetry"]),
    ("root-empty", {"host_root": ""}, ["host_root"]),
    ("root-relative", {"host_root": "../../../"}, ["host_root: must be an absolute path"]),
    ("root-relative-name", {"host_root": "sandbox/root"}, ["host_root: must be an absolute path"]),
    ("root-missing", {"host_root": "/nonexistent/gpuops-root"}, ["host_root:", "is not a directory"]),
    ("root-nul", {"host_root": "/tmp/a\u0000b"}, ["host_root"]),
    ("root-newline", {"host_root": "/tmp/a\nb"}, ["host_root: must not contain NUL or newline"]),
    ("nvlink-maybe", {"nvlink": "maybe"}, ["nvlink"]),
]


@pytest.mark.parametrize(("case", "args", "needles"), OPTION_CASES, ids=[c[0] for c in OPTION_CASES])
def test_bad_options_are_rejected(host, case, args, needles):
    _sim, root = host(A100)
    args = dict(args)
    args.setdefault("host_root", str(root))
    result = simhost.run_module("gpu_probe", args)
    assert result.get("failed") is True, (case, result)
    for needle in needles:
        assert needle in result["msg"], (case, needle, result["msg"])
    assert "ansible_facts" not in result


def test_root_that_is_a_file_or_has_no_sys_is_rejected(host, tmp_path):
    _sim, _root = host(A100)
    a_file = tmp_path / "file"
    a_file.write_text("x")
    result = simhost.run_module("gpu_probe", {"host_root": str(a_file)})
    assert result["failed"] and "is not a directory" in result["msg"]
    empty = tmp_path / "empty"
    empty.mkdir()
    result = simhost.run_module("gpu_probe", {"host_root": str(empty)})
    assert result["failed"] and "has neither sys/ nor proc/" in result["msg"]


def test_root_is_resolved(host, tmp_path):
    _sim, root = host(A100)
    link = tmp_path / "link"
    link.symlink_to(root)
    result = simhost.run_module("gpu_probe", {"host_root": str(link / ".." / "link")})
    assert not result.get("failed"), result
    assert result["ansible_facts"]["gpu"]["summary"]["count"] == 8


# --------------------------------------------------------------------------- NVML answers
# (case, fixture, gpu, call, error, field expected in that GPU's errors, health expected)
NVML_CASES = [
    ("mig-device-list", H100_MIG, 0, "nvmlDeviceGetMigDeviceHandleByIndex", "UNKNOWN", "mig.devices", "degraded"),
    ("mig-device-count", H100_MIG, 0, "nvmlDeviceGetMaxMigDeviceCount", "UNKNOWN", "mig.devices", "degraded"),
    ("mig-device-uuid", H100_MIG, 0, "nvmlDeviceGetGpuInstanceId", "UNKNOWN", "mig.devices", "degraded"),
    ("gi-profiles", H100_MIG, 0, "nvmlDeviceGetGpuInstanceProfileInfo", "UNKNOWN", "mig.gpu_instances", "degraded"),
    ("gi-list", H100_MIG, 0, "nvmlDeviceGetGpuInstances", "UNKNOWN", "mig.gpu_instances", "degraded"),
    ("gi-info", H100_MIG, 0, "nvmlGpuInstanceGetInfo", "UNKNOWN", "mig.gpu_instances", "degraded"),
    (
        "ci-profiles",
        H100_MIG,
        0,
        "nvmlGpuInstanceGetComputeInstanceProfileInfo",
        "UNKNOWN",
        "mig.compute_instances",
        "degraded",
    ),
    ("ci-list", H100_MIG, 0, "nvmlGpuInstanceGetComputeInstances", "UNKNOWN", "mig.compute_instances", "degraded"),
    ("mig-mode", A100, 2, "nvmlDeviceGetMigMode", "UNKNOWN", "mig", "degraded"),
    ("processes", A100, 1, "nvmlDeviceGetComputeRunningProcesses", "UNKNOWN", "processes", "degraded"),
    ("temperature-permission", A100, 3, "nvmlDeviceGetTemperature", "NO_PERMISSION", "temperature_c", "degraded"),
    ("ecc", A100, 4, "nvmlDeviceGetEccMode", "UNKNOWN", "ecc", "degraded"),
    ("nvlink", A100, 5, "nvmlDeviceGetNvLinkState", "UNKNOWN", "nvlinks_active", "degraded"),
    ("name", A100, 6, "nvmlDeviceGetName", "UNKNOWN", "name", "unhealthy"),
    ("pci-info", A100, 7, "nvmlDeviceGetPciInfo", "UNKNOWN", "pci", "unhealthy"),
    ("lost", A100, 0, "*", "GPU_IS_LOST", None, "unhealthy"),
]


@pytest.mark.parametrize(
    ("case", "fixture", "gpu", "call", "error", "field", "health"), NVML_CASES, ids=[c[0] for c in NVML_CASES]
)
def test_nvml_errors_land_in_the_gpu_and_its_health(host, case, fixture, gpu, call, error, field, health):
    sim_host, root = host(fixture)
    sim_host.inject(call, error, gpu=gpu)
    result = simhost.run_module("gpu_probe", {"host_root": str(root)})
    assert not result.get("failed"), result
    gpus = result["ansible_facts"]["gpu"]["gpus"]
    record = next(g for g in gpus if g["index"] == gpu)
    if field is not None:
        assert field in record["errors"], (case, record["errors"])
        assert call in record["errors"][field]
    assert record["health"]["status"] == health, (case, record["health"])
    assert record["health"]["reasons"], case
    # The other GPUs are read in full and healthy.
    for other in gpus:
        if other["index"] != gpu and fixture == A100:
            assert other["health"]["status"] == "healthy", (case, other["index"], other["health"])


def test_count_and_init_failures_say_why(host):
    sim_host, root = host(A100)
    sim_host.inject("nvmlDeviceGetCount", "UNKNOWN")
    facts = simhost.run_module("gpu_probe", {"host_root": str(root)})["ansible_facts"]["gpu"]
    assert facts["driver"]["nvml"] == {"available": False, "reason": "nvmlDeviceGetCount failed: Unknown Error"}
    assert facts["summary"]["count"] == 8 and facts["summary"]["unknown"] == 8  # PCI still reports them
    sim_host.clear_faults()
    sim_host.inject("nvmlInit", "NO_PERMISSION")
    facts = simhost.run_module("gpu_probe", {"host_root": str(root)})["ansible_facts"]["gpu"]
    assert "no permission" in facts["driver"]["nvml"]["reason"]


# --------------------------------------------------------------------------- host trees
def _device_dir(root, index=0):
    base = root / "sys" / "bus" / "pci" / "devices"
    return sorted(base.iterdir())[index]


def _garbage(path):
    path.unlink()
    path.write_text("zzzz\n")


def _fifo(path):
    path.unlink()
    os.mkfifo(path)


def _huge(path):
    path.unlink()
    path.write_text("0x" + "1" * 10000 + "\n")


TREE_CASES = [
    ("device-id-garbage", "device", _garbage, "pci.device", "not a hex id"),
    ("subsystem-vendor-garbage", "subsystem_vendor", _garbage, "pci.subsystem_vendor", "not a hex id"),
    ("subsystem-device-garbage", "subsystem_device", _garbage, "pci.subsystem_device", "not a hex id"),
    ("device-id-fifo", "device", _fifo, "pci.device", "not a regular file"),
    ("device-id-huge", "device", _huge, "pci.device", "larger than 4096 bytes"),
]


@pytest.mark.parametrize(("case", "name", "spoil", "field", "needle"), TREE_CASES, ids=[c[0] for c in TREE_CASES])
def test_unreadable_pci_ids_land_in_the_gpu(host, case, name, spoil, field, needle):
    _sim, root = host(A100)
    nvidia = [
        d for d in sorted((root / "sys/bus/pci/devices").iterdir()) if (d / "vendor").read_text().strip() == "0x10de"
    ]
    gpu_dir = next(d for d in nvidia if (d / "class").read_text().startswith("0x03"))
    spoil(gpu_dir / name)
    result = simhost.run_module("gpu_probe", {"host_root": str(root)})
    assert not result.get("failed"), result
    gpus = result["ansible_facts"]["gpu"]["gpus"]
    record = next(g for g in gpus if g["pci"]["bus_id"] == gpu_dir.name)
    assert field in record["errors"] and needle in record["errors"][field], (case, record["errors"])
    assert record["health"]["status"] != "healthy", case


def test_driver_files_that_never_end_do_not_hang_the_probe(host):
    _sim, root = host(A100)
    _fifo(root / "proc" / "driver" / "nvidia" / "version")
    (root / "proc" / "sys" / "kernel" / "osrelease").write_text("../../../etc\n")
    misc = root / "usr" / "share" / "misc"
    misc.mkdir(parents=True, exist_ok=True)
    os.mkfifo(misc / "pci.ids")
    result = simhost.run_module("gpu_probe", {"host_root": str(root)})
    assert not result.get("failed"), result
    facts = result["ansible_facts"]["gpu"]
    assert facts["host"]["kernel"] is None  # a release that would leave lib/modules is not used
    assert facts["summary"]["count"] == 8


def test_the_suite_is_large_enough():
    assert len(OPTION_CASES) + 3 + len(NVML_CASES) + 1 + len(TREE_CASES) + 1 >= 25
