"""Read-only NVML queries return what the fixture says, in nvidia-ml-py's units and shapes."""

import ctypes
import json

import pytest
import yaml
from conftest import fixture_path, run_sim_python

MIB = 1024 * 1024
# PCI device ids from the reference table (mig-profiles.md), not from the simulator's data.
DEVICE_IDS = {"A100-SXM4-40GB": 0x20B0, "H100-SXM5-80GB": 0x2330, "L40S": 0x26B9}


def _fixture(name):
    with open(fixture_path(name)) as handle:
        return yaml.safe_load(handle)


def _addr(handle):
    return ctypes.cast(handle, ctypes.c_void_p).value


def test_calls_before_init_raise_uninitialized(use_host):
    nv = use_host("a100-sxm4-40gb-x8")
    with pytest.raises(nv.NVMLError_Uninitialized):
        nv.nvmlDeviceGetCount()
    with pytest.raises(nv.NVMLError_Uninitialized):
        nv.nvmlShutdown()


def test_init_is_reference_counted(use_host):
    nv = use_host("a100-sxm4-40gb-x8")
    nv.nvmlInit()
    nv.nvmlInitWithFlags(nv.NVML_INIT_FLAG_NO_GPUS)
    nv.nvmlShutdown()
    assert nv.nvmlDeviceGetCount() == 8
    nv.nvmlShutdown()
    with pytest.raises(nv.NVMLError_Uninitialized):
        nv.nvmlDeviceGetCount()


def test_identity_and_pci(sim):
    doc = _fixture("a100-sxm4-40gb-x8")
    assert sim.nvmlSystemGetDriverVersion() == doc["driver"]["version"]
    assert sim.nvmlSystemGetCudaDriverVersion() == doc["driver"]["cuda_driver_version"]
    assert sim.nvmlSystemGetNVMLVersion().endswith(doc["driver"]["version"])
    bus_ids = sorted(gpu["bus_id"] for gpu in doc["gpus"])
    uuids = set()
    for index, bus_id in enumerate(bus_ids):
        handle = sim.nvmlDeviceGetHandleByIndex(index)
        pci = sim.nvmlDeviceGetPciInfo(handle)
        domain, bus, rest = bus_id.split(":")
        assert pci.busId == ("0000%s:%s:%s" % (domain, bus, rest)).upper().encode()
        assert pci.busIdLegacy == bus_id.upper().encode()
        assert (pci.domain, pci.bus) == (0, int(bus, 16))
        assert pci.pciDeviceId == (DEVICE_IDS["A100-SXM4-40GB"] << 16) | 0x10DE
        assert pci.pciSubSystemId & 0xFFFF == 0x10DE
        assert sim.nvmlDeviceGetName(handle) == "NVIDIA A100-SXM4-40GB"
        assert sim.nvmlDeviceGetMinorNumber(handle) == index
        assert sim.nvmlDeviceGetArchitecture(handle) == sim.NVML_DEVICE_ARCH_AMPERE
        assert sim.nvmlDeviceGetCudaComputeCapability(handle) == (8, 0)
        assert sim.nvmlDeviceGetBrand(handle) == sim.NVML_BRAND_NVIDIA
        assert sim.nvmlDeviceGetSerial(handle) == doc["gpus"][index]["serial"]
        uuid = sim.nvmlDeviceGetUUID(handle)
        assert uuid.startswith("GPU-") and len(uuid) == 40
        uuids.add(uuid)
        for form in (bus_id, "0000" + bus_id, bus_id.upper()):
            assert _addr(sim.nvmlDeviceGetHandleByPciBusId(form)) == _addr(handle)
        assert _addr(sim.nvmlDeviceGetHandleByUUID(uuid)) == _addr(handle)
    assert len(uuids) == 8
    with pytest.raises(sim.NVMLError_NotFound):
        sim.nvmlDeviceGetHandleByPciBusId("0000:08:00.0")
    with pytest.raises(sim.NVMLError_InvalidArgument):
        sim.nvmlDeviceGetHandleByIndex(8)


def test_telemetry_units(sim):
    gpu = _fixture("a100-sxm4-40gb-x8")["gpus"][0]
    handle = sim.nvmlDeviceGetHandleByIndex(0)
    memory = sim.nvmlDeviceGetMemoryInfo(handle)
    assert memory.total == 40960 * MIB
    assert memory.free + memory.used == memory.total
    v2 = sim.nvmlDeviceGetMemoryInfo(handle, version=sim.nvmlMemory_v2)
    assert v2.version == sim.nvmlMemory_v2 and v2.total == memory.total
    assert sim.nvmlDeviceGetTemperature(handle, sim.NVML_TEMPERATURE_GPU) == gpu["temperature_c"]
    assert sim.nvmlDeviceGetTemperatureV(handle, sim.NVML_TEMPERATURE_GPU) == gpu["temperature_c"]
    with pytest.raises(sim.NVMLError_InvalidArgument):
        sim.nvmlDeviceGetTemperature(handle, 7)
    assert sim.nvmlDeviceGetPowerUsage(handle) == round(gpu["power_draw_w"] * 1000)
    assert sim.nvmlDeviceGetEnforcedPowerLimit(handle) == 400000
    assert sim.nvmlDeviceGetPowerManagementLimit(handle) == 400000
    assert sim.nvmlDeviceGetPersistenceMode(handle) == 1
    assert sim.nvmlDeviceGetEccMode(handle) == [1, 1]
    for counter in (sim.NVML_VOLATILE_ECC, sim.NVML_AGGREGATE_ECC):
        errors = sim.nvmlDeviceGetTotalEccErrors(handle, sim.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, counter)
        assert errors == 0
    assert sim.nvmlDeviceGetRemappedRows(handle) == (0, 0, 0, 0)
    with pytest.raises(sim.NVMLError_NotSupported):  # Ampere remaps rows instead
        sim.nvmlDeviceGetRetiredPages(handle, sim.NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR)
    with pytest.raises(sim.NVMLError_NotSupported):
        sim.nvmlDeviceGetRetiredPagesPendingStatus(handle)
    assert sim.nvmlDeviceGetComputeRunningProcesses(handle) == []
    assert sim.nvmlDeviceGetGraphicsRunningProcesses(handle) == []


@pytest.mark.parametrize("host,links", [("a100-sxm4-40gb-x8", 12), ("h100-80gb-hbm3-x8", 18), ("l40s-x4", 0)])
def test_nvlinks(use_host, host, links):
    nv = use_host(host)
    nv.nvmlInit()
    handle = nv.nvmlDeviceGetHandleByIndex(0)
    for link in range(nv.NVML_NVLINK_MAX_LINKS):
        if link < links:
            assert nv.nvmlDeviceGetNvLinkState(handle, link) == nv.NVML_NVLINK_STATE_ACTIVE
        else:
            with pytest.raises(nv.NVMLError_NotSupported):
                nv.nvmlDeviceGetNvLinkState(handle, link)
    with pytest.raises(nv.NVMLError_InvalidArgument):
        nv.nvmlDeviceGetNvLinkState(handle, nv.NVML_NVLINK_MAX_LINKS)


def test_l40s_has_no_serial_and_is_ada(use_host):
    nv = use_host("l40s-x4")
    nv.nvmlInit()
    assert nv.nvmlDeviceGetCount() == 4
    handle = nv.nvmlDeviceGetHandleByIndex(0)
    with pytest.raises(nv.NVMLError_NotSupported):
        nv.nvmlDeviceGetSerial(handle)
    assert nv.nvmlDeviceGetName(handle) == "NVIDIA L40S"
    assert nv.nvmlDeviceGetArchitecture(handle) == nv.NVML_DEVICE_ARCH_ADA
    assert nv.nvmlDeviceGetCudaComputeCapability(handle) == (8, 9)
    assert nv.nvmlDeviceGetPciInfo(handle).pciDeviceId >> 16 == DEVICE_IDS["L40S"]


def test_processes_without_mig(use_host):
    nv = use_host("h100-mig-mixed")
    nv.nvmlInit()
    handle = nv.nvmlDeviceGetHandleByIndex(3)
    [proc] = nv.nvmlDeviceGetComputeRunningProcesses(handle)
    assert proc.pid == 52210
    assert proc.usedGpuMemory == 20480 * MIB
    assert proc.gpuInstanceId == 0xFFFFFFFF and proc.computeInstanceId == 0xFFFFFFFF
    assert nv.nvmlSystemGetProcessName(52210) == "tritonserver"
    used = nv.nvmlDeviceGetMemoryInfo(handle).used
    assert used == 20480 * MIB


def test_uuids_are_stable_across_processes(tmp_path):
    code = "import pynvml as n; n.nvmlInit(); print(n.nvmlDeviceGetUUID(n.nvmlDeviceGetHandleByIndex(2)))"
    env = {"GPUOPS_NVML_SIM_FIXTURE": fixture_path("a100-sxm4-40gb-x8")}
    first = run_sim_python(code, env).stdout
    second = run_sim_python(code, dict(env, GPUOPS_NVML_SIM_STATE=str(tmp_path / "s.json"))).stdout
    assert first == second and first.startswith("GPU-")


def test_full_query_of_eight_gpus_runs(tmp_path):
    """Import, init and a probe-sized query of 8 GPUs in a fresh process (its speed is measured by
    benchmarks/bench_gpu_probe.py, not asserted here: a timed test fails on a loaded machine)."""
    code = """
import time, json
start = time.perf_counter()
import pynvml as n
n.nvmlInit()
for i in range(n.nvmlDeviceGetCount()):
    h = n.nvmlDeviceGetHandleByIndex(i)
    n.nvmlDeviceGetName(h); n.nvmlDeviceGetUUID(h); n.nvmlDeviceGetSerial(h)
    n.nvmlDeviceGetPciInfo(h); n.nvmlDeviceGetMemoryInfo(h); n.nvmlDeviceGetTemperature(h, 0)
    n.nvmlDeviceGetPowerUsage(h); n.nvmlDeviceGetEnforcedPowerLimit(h); n.nvmlDeviceGetEccMode(h)
    n.nvmlDeviceGetRemappedRows(h); n.nvmlDeviceGetMigMode(h); n.nvmlDeviceGetComputeRunningProcesses(h)
    for link in range(12):
        n.nvmlDeviceGetNvLinkState(h, link)
n.nvmlShutdown()
print(json.dumps(time.perf_counter() - start))
"""
    env = {
        "GPUOPS_NVML_SIM_FIXTURE": fixture_path("a100-sxm4-40gb-x8"),
        "GPUOPS_NVML_SIM_STATE": str(tmp_path / "state.json"),
    }
    timing = json.loads(run_sim_python(code, env).stdout)
    assert timing > 0
