# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import copy

import pytest
from ansible_collections.gpuops.cluster.plugins.module_utils import gpu_inventory as inv

HEALTHY_GPU = {
    "pci": {"driver": "nvidia", "device_id": "0x20b0"},
    "ecc": {"enabled": True, "pending": True, "uncorrected_volatile": 0, "uncorrected_aggregate": 3},
    "retired_pages": {"supported": False, "single_bit": None, "double_bit": None, "pending": None},
    "remapped_rows": {"supported": True, "correctable": 2, "uncorrectable": 0, "pending": False, "failure": False},
    "mig": {"capable": True, "current": False, "pending": False},
    "temperature_c": 40,
    "errors": {},
}


def health(gpu=None, **kwargs):
    args = {"nvml_available": True, "datacenter": True}
    args.update(kwargs)
    return inv.assess_health(gpu if gpu is not None else HEALTHY_GPU, **args)


def variant(path, value):
    gpu = copy.deepcopy(HEALTHY_GPU)
    target = gpu
    keys = path.split(".")
    for key in keys[:-1]:
        target = target[key]
    target[keys[-1]] = value
    return gpu


def test_healthy_baseline():
    assert health() == {"status": "healthy", "reasons": []}


def test_unknown_without_nvml():
    result = health(nvml_available=False, nvml_reason="NVIDIA kernel driver not loaded")
    assert result["status"] == "unknown"
    assert "NVIDIA kernel driver not loaded" in result["reasons"][0]


def test_lost_gpu_is_unhealthy():
    gpu = variant("errors", {"handle": "nvmlDeviceGetHandleByIndex: GPU is lost"})
    result = health(gpu, lost=True)
    assert result["status"] == "unhealthy"
    assert result["reasons"] == ["GPU is lost (NVML_ERROR_GPU_IS_LOST): it fell off the bus; reset or reseat it"]


def test_not_visible_to_nvml():
    result = health(in_nvml=False)
    assert result["status"] == "unhealthy"
    assert "fallen off the bus or bound to another driver" in result["reasons"][0]
    result = health(variant("pci.driver", "vfio-pci"), in_nvml=False)
    assert result["reasons"] == ["not visible to NVML: bound to vfio-pci instead of nvidia"]


@pytest.mark.parametrize("field", ["name", "uuid", "pci"])
def test_identity_error_is_unhealthy(field):
    result = health(variant("errors", {field: "nvmlDeviceGetX: Unknown Error"}))
    assert result["status"] == "unhealthy"
    assert result["reasons"] == ["NVML cannot read its %s: nvmlDeviceGetX: Unknown Error" % field]


def test_uncorrected_volatile_ecc_is_unhealthy():
    result = health(variant("ecc.uncorrected_volatile", 2))
    assert result == {"status": "unhealthy", "reasons": ["2 uncorrected ECC errors since the driver loaded"]}


def test_aggregate_ecc_alone_is_not_a_problem():
    assert health(variant("ecc.uncorrected_aggregate", 50))["status"] == "healthy"


def test_remap_failure_is_unhealthy_and_keeps_degraded_reasons():
    gpu = variant("remapped_rows.failure", True)
    gpu["remapped_rows"]["pending"] = True
    result = health(gpu)
    assert result["status"] == "unhealthy"
    assert result["reasons"] == [
        "row remapping failed: the GPU needs service",
        "row remapping pending: reset the GPU to apply it",
    ]


@pytest.mark.parametrize(
    "path, value, reason",
    [
        ("remapped_rows.pending", True, "row remapping pending: reset the GPU to apply it"),
        ("retired_pages.pending", True, "page retirement pending: reset the GPU to apply it"),
        ("ecc.pending", False, "ECC mode change pending: reset the GPU to apply it"),
        ("mig.pending", True, "MIG mode change pending: reset the GPU to apply it"),
        ("temperature_c", 85, "temperature 85 C is at or above the slowdown threshold 85 C"),
        (
            "errors",
            {"temperature_c": "nvmlDeviceGetTemperature: Insufficient Permissions"},
            "NVML could not read temperature_c: nvmlDeviceGetTemperature: Insufficient Permissions",
        ),
    ],
)
def test_degraded_rules(path, value, reason):
    assert health(variant(path, value)) == {"status": "degraded", "reasons": [reason]}


def test_ecc_disabled_degrades_only_datacenter_gpus():
    gpu = variant("ecc", {"enabled": False, "pending": False})
    assert health(gpu)["reasons"] == ["ECC is disabled on a datacenter GPU"]
    assert health(gpu, datacenter=False)["status"] == "healthy"


def test_temperature_threshold_from_nvml_wins():
    assert health(variant("temperature_c", 86), slowdown_c=90)["status"] == "healthy"
    assert health(variant("temperature_c", 84))["status"] == "healthy"
    assert health(variant("temperature_c", 90), slowdown_c=90)["status"] == "degraded"


def test_join_by_normalized_bus_id_and_leftovers():
    pci_gpus = [{"bus_id": "0000:07:00.0"}, {"bus_id": "0000:0f:00.0"}, {"bus_id": "0000:b7:00.0"}]
    nvml = [{"index": 0, "bus_id": "0000:07:00.0"}, {"index": 1, "bus_id": "0000:B7:00.0"}]
    pairs = inv.join(pci_gpus, nvml, True)
    assert [(p and p["bus_id"], n and n["index"]) for p, n in pairs] == [
        ("0000:07:00.0", 0),
        ("0000:b7:00.0", 1),
        ("0000:0f:00.0", None),
    ]


def test_join_pairs_unnamed_nvml_records_in_order():
    pci_gpus = [{"bus_id": "0000:07:00.0"}, {"bus_id": "0000:0f:00.0"}]
    nvml = [{"index": 0, "bus_id": "0000:07:00.0"}, {"index": 1, "bus_id": None}]
    pairs = inv.join(pci_gpus, nvml, True)
    assert [(p and p["bus_id"], n and n["index"]) for p, n in pairs] == [("0000:07:00.0", 0), ("0000:0f:00.0", 1)]
    # counts differ: no guessing
    pairs = inv.join(pci_gpus + [{"bus_id": "0000:1f:00.0"}], nvml, True)
    assert (None, 1) in [(p and p["bus_id"], n and n["index"]) for p, n in pairs]


def _pci(bus, device="0x20b0", kind="gpu"):
    return {
        "kind": kind,
        "bus_id": bus,
        "vendor_id": "0x10de",
        "device_id": device,
        "subsystem_vendor_id": "0x10de",
        "subsystem_device_id": "0x134f",
        "class": "0x030200" if kind == "gpu" else "0x068000",
        "product": "A100 SXM4 40GB",
        "driver": "nvidia",
        "numa_node": 0,
        "iommu_group": 1,
    }


HOST = {"kernel": "6.1.0", "secure_boot": "disabled"}
DRIVER = {
    "state": "none",
    "version": None,
    "kernel_module": None,
    "nouveau_loaded": False,
    "cuda_driver_version": None,
    "nvml_version": None,
}


def test_build_facts_pci_only():
    nvml = {"available": False, "reason": "NVIDIA kernel driver not loaded", "gpus": []}
    devices = [_pci("0000:0f:00.0"), _pci("0000:07:00.0"), _pci("0000:c0:00.0", "0x1af1", "nvswitch")]
    facts = inv.build_facts(inv.COLLECT_CHOICES, HOST, dict(DRIVER, state="installed"), devices, True, nvml)
    assert facts["source"] == "pci"
    assert facts["collected"] == ["pci"]
    assert facts["driver"]["nvml"] == {"available": False, "reason": "NVIDIA kernel driver not loaded"}
    assert [g["pci"]["bus_id"] for g in facts["gpus"]] == ["0000:07:00.0", "0000:0f:00.0"]
    assert facts["gpus"][0]["architecture"] == "ampere"  # from our table
    assert facts["gpus"][0]["name"] is None and facts["gpus"][0]["index"] is None
    assert facts["nvswitches"] == [
        {
            "pci_bus_id": "0000:c0:00.0",
            "device_id": "0x1af1",
            "name": "A100 SXM4 40GB",
            "driver": "nvidia",
            "numa_node": 0,
        }
    ]
    assert facts["summary"]["unknown"] == 2
    assert facts["summary"]["models"] == {"A100 SXM4 40GB": 2}


def test_build_facts_no_gpu():
    nvml = {"available": False, "reason": "libnvidia-ml not found", "gpus": []}
    facts = inv.build_facts(["pci", "nvml"], HOST, DRIVER, [], True, nvml)
    assert facts["source"] == "none"
    assert facts["gpus"] == []
    assert facts["summary"]["count"] == 0


def test_build_facts_nvml_versions_and_collected_order():
    record = {
        "index": 0,
        "bus_id": "0000:07:00.0",
        "name": "NVIDIA A100-SXM4-40GB",
        "memory": {"total_mib": 40960, "used_mib": 1},
        "mig": {"capable": True, "current": True, "pending": True},
        "errors": {},
    }
    nvml = {
        "available": True,
        "reason": None,
        "driver_version": "550.127.05",
        "cuda_driver_version": 12040,
        "nvml_version": "12.550.127.05",
        "gpus": [record],
    }
    facts = inv.build_facts(["telemetry", "pci", "mig"], HOST, DRIVER, [_pci("0000:07:00.0")], True, nvml)
    assert facts["collected"] == ["pci", "nvml", "mig", "telemetry"]
    assert facts["source"] == "nvml"
    assert facts["driver"]["state"] == "loaded"
    assert facts["driver"]["version"] == "550.127.05"
    assert facts["driver"]["cuda_driver_version"] == "12.4"
    summary = facts["summary"]
    assert summary["memory_total_mib"] == 40960
    assert summary["mig_capable"] == 1 and summary["mig_enabled"] == 1
    assert summary["models"] == {"NVIDIA A100-SXM4-40GB": 1}
    assert summary["healthy"] == 1


def test_summary_counts_each_status():
    gpus = [
        {"pci": {}, "name": "A", "health": {"status": s}}
        for s in ("healthy", "healthy", "degraded", "unhealthy", "unknown")
    ]
    summary = inv.summarize(gpus)
    assert (summary["healthy"], summary["degraded"], summary["unhealthy"], summary["unknown"], summary["count"]) == (
        2,
        1,
        1,
        1,
        5,
    )
    assert summary["models"] == {"A": 5}


@pytest.mark.parametrize("value, text", [(12040, "12.4"), (11080, "11.8"), (12090, "12.9"), (0, None), (None, None)])
def test_cuda_version_text(value, text):
    assert inv.cuda_version_text(value) == text


def test_summary_counts_an_unreadable_gpu_under_its_siblings_nvml_name():
    a100 = {
        "device_id": "0x20b0",
        "subsystem_vendor_id": "0x10de",
        "subsystem_device_id": "0x134f",
        "product": "A100 SXM4 40GB",
    }
    l40s = {"device_id": "0x26b9", "subsystem_vendor_id": "0x10de", "subsystem_device_id": "0x1851", "product": "L40S"}
    gpus = [
        {"pci": dict(a100), "name": "NVIDIA A100-SXM4-40GB", "health": {"status": "healthy"}},
        {"pci": dict(a100), "name": None, "health": {"status": "unhealthy"}},
        {"pci": dict(l40s), "name": None, "health": {"status": "unknown"}},
    ]
    summary = inv.summarize(gpus)
    # The lost A100 joins its sibling's spelling; a model with no NVML name keeps the PCI one.
    assert summary["models"] == {"NVIDIA A100-SXM4-40GB": 2, "L40S": 1}
