# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import pytest
from ansible_collections.gpuops.cluster.plugins.module_utils.gpu_probe import probe
from ansible_collections.gpuops.cluster.plugins.module_utils.nvml import bindings, mig_state
from ansible_collections.gpuops.cluster.plugins.module_utils.nvml import facts as nv

ALL = {"telemetry": True, "mig": True, "processes": True, "nvlink": True}
MIG_LAYOUT = [
    {"id": 1, "profile_index": 2, "start": 0, "size": 4, "cis": [{"id": 0, "profile_id": 2}]},
    {
        "id": 5,
        "profile_index": 1,
        "start": 4,
        "size": 2,
        "cis": [{"id": 0, "profile_id": 0}, {"id": 1, "profile_id": 0}],
    },
    {"id": 13, "profile_index": 0, "start": 6, "size": 1, "cis": [{"id": 0, "profile_id": 0}]},
]


def eight(spec, **overrides):
    return [spec(i, **overrides) for i in range(8)]


def test_full_collection_fields(fake_nvml, spec):
    fake = fake_nvml(eight(spec, memory_used=1024 * 1024 * 1536, temperature=41))
    result = nv.collect_nvml(ALL, nvml=fake)
    assert result["available"] is True and result["reason"] is None
    assert result["driver_version"] == "550.127.05"
    assert result["cuda_driver_version"] == 12040
    assert result["nvml_version"] == "12.550.127.05"
    assert len(result["gpus"]) == 8
    gpu = result["gpus"][1]
    assert gpu["bus_id"] == "0000:17:00.0"
    assert gpu["pci"] == {
        "vendor_id": "0x10de",
        "device_id": "0x20b0",
        "subsystem_vendor_id": "0x10de",
        "subsystem_device_id": "0x134f",
    }
    assert gpu["name"] == "NVIDIA A100-SXM4-40GB"
    assert gpu["serial"] == "1564720004601"
    assert gpu["architecture"] == "ampere"
    assert gpu["compute_capability"] == "8.0"
    assert gpu["memory"] == {"total_mib": 40960, "used_mib": 1536}
    assert gpu["temperature_c"] == 41
    assert gpu["power"] == {"draw_w": 62.5, "limit_w": 400.0}
    assert gpu["ecc"] == {"enabled": True, "pending": True, "uncorrected_volatile": 0, "uncorrected_aggregate": 0}
    assert gpu["retired_pages"]["supported"] is False
    assert gpu["remapped_rows"] == {
        "supported": True,
        "correctable": 0,
        "uncorrectable": 0,
        "pending": False,
        "failure": False,
    }
    assert gpu["persistence_mode"] is True
    assert gpu["nvlinks_active"] == 12
    assert gpu["mig"] == {"capable": True, "current": False, "pending": False, "gpu_instances": [], "devices": []}
    assert gpu["processes"] == {"count": 0, "used_memory_mib": 0}
    assert gpu["errors"] == {}


def test_one_init_one_handle_lookup_per_gpu_and_shutdown(fake_nvml, spec):
    fake = fake_nvml(eight(spec))
    nv.collect_nvml(ALL, nvml=fake)
    lookups = [c for c in fake.calls if c[0] == "nvmlDeviceGetHandleByIndex"]
    assert lookups == [("nvmlDeviceGetHandleByIndex", i) for i in range(8)]
    assert fake.initialized == 0  # nvmlShutdown balanced the init


def test_serial_not_supported_is_null_without_error(fake_nvml, spec):
    fake = fake_nvml([spec(0, serial=None, nvlinks=None, mig=None, ecc=None)])
    gpu = nv.collect_nvml(ALL, nvml=fake)["gpus"][0]
    assert gpu["serial"] is None
    assert gpu["nvlinks_active"] is None
    assert gpu["mig"]["capable"] is False
    assert gpu["ecc"]["enabled"] is None
    assert gpu["errors"] == {}


def test_no_permission_on_temperature_only_in_that_gpus_errors(fake_nvml, spec):
    fake = fake_nvml(eight(spec), faults={(2, "nvmlDeviceGetTemperature"): 4})
    facts, _unused = probe("/nonexistent", nvml=fake)
    gpus = facts["gpus"]
    assert gpus[2]["errors"] == {"temperature_c": "nvmlDeviceGetTemperature: Insufficient Permissions"}
    assert gpus[2]["temperature_c"] is None
    assert gpus[2]["power"]["draw_w"] == 62.5  # the other fields were still read
    assert gpus[2]["memory"]["total_mib"] == 40960
    assert gpus[2]["health"]["status"] == "degraded"
    for i, gpu in enumerate(gpus):
        if i != 2:
            assert gpu["errors"] == {} and gpu["health"]["status"] == "healthy"
            assert gpu["temperature_c"] == 34


def test_lost_gpu_is_reported_and_others_are_complete(fake_nvml, spec, tmp_path, tree, pci_files):
    files = {}
    for i in range(8):
        files.update(pci_files("0000:%02x:00.0" % (0x07 + i * 0x10)))
    tree(tmp_path, files)
    fake = fake_nvml(eight(spec), faults={(3, "*"): 15})
    facts, _unused = probe(str(tmp_path), nvml=fake)
    gpus = facts["gpus"]
    assert len(gpus) == 8
    lost = gpus[3]
    assert lost["index"] == 3 and lost["pci"]["bus_id"] == "0000:37:00.0"
    assert lost["health"]["status"] == "unhealthy"
    assert "GPU is lost" in lost["health"]["reasons"][0]
    assert lost["errors"] == {"handle": "nvmlDeviceGetHandleByIndex: GPU is lost"}
    for i, gpu in enumerate(gpus):
        if i == 3:
            continue
        assert gpu["health"] == {"status": "healthy", "reasons": []}
        assert None not in (
            gpu["uuid"],
            gpu["name"],
            gpu["memory"],
            gpu["temperature_c"],
            gpu["nvlinks_active"],
            gpu["processes"],
        )
    assert facts["summary"]["healthy"] == 7 and facts["summary"]["unhealthy"] == 1


def test_lost_after_handle_stops_reading_that_gpu(fake_nvml, spec):
    fake = fake_nvml(eight(spec), faults={(4, "nvmlDeviceGetPciInfo"): 15})
    result = nv.collect_nvml(ALL, nvml=fake)
    gpu = result["gpus"][4]
    assert gpu["lost"] is True
    assert gpu["name"] is not None  # read before the loss
    assert list(gpu["errors"]) == ["pci"]
    after = [c for c in fake.calls if c[1] == 4 and c[0] == "nvmlDeviceGetSerial"]
    assert after == []


@pytest.mark.parametrize(
    "code, reason",
    [
        (12, "libnvidia-ml not found"),
        (9, "NVIDIA kernel driver not loaded"),
        (4, "no permission"),
        (18, "different versions"),
        (999, "nvmlInit failed: Unknown Error"),
    ],
)
def test_init_errors_are_mapped(fake_nvml, code, reason):
    result = nv.collect_nvml(ALL, nvml=fake_nvml([], init_error=code))
    assert result["available"] is False
    assert reason in result["reason"]


def test_pynvml_missing_gives_pci_only(no_pynvml, tmp_path, tree, pci_files):
    assert bindings.load_bindings()[:2] == (None, bindings.REASON_NO_BINDINGS)
    tree(tmp_path, pci_files("0000:07:00.0"))
    facts, _unused = probe(str(tmp_path))
    assert facts["source"] == "pci"
    assert facts["collected"] == ["pci"]
    assert facts["driver"]["nvml"] == {"available": False, "reason": bindings.REASON_NO_BINDINGS}
    assert facts["gpus"][0]["health"]["status"] == "unknown"


def test_mig_layout_names_built_from_profile_info(fake_nvml, spec):
    mig = {"current": 1, "pending": 1, "profiles": spec()["mig"]["profiles"], "gis": MIG_LAYOUT}
    processes = [{"pid": 10, "mib": 100, "gi": 1}, {"pid": 11, "mib": 200, "gi": 5}, {"pid": 10, "mib": 50, "gi": 13}]
    fake = fake_nvml([spec(0, mig=mig, processes=processes)])
    gpu = nv.collect_nvml(ALL, nvml=fake)["gpus"][0]
    gis = gpu["mig"]["gpu_instances"]
    assert [(g["id"], g["profile_id"], g["profile"], g["placement"]) for g in gis] == [
        (1, 9, "3g.20gb", {"start": 0, "size": 4}),
        (5, 14, "2g.10gb", {"start": 4, "size": 2}),
        (13, 19, "1g.5gb", {"start": 6, "size": 1}),
    ]
    assert gis[0]["compute_instances"] == [{"id": 0, "profile_id": 2, "profile": "3g.20gb"}]
    assert [c["profile"] for c in gis[1]["compute_instances"]] == ["1c.2g.10gb"] * 2
    devices = gpu["mig"]["devices"]
    assert [(d["gpu_instance_id"], d["compute_instance_id"], d["memory_total_mib"]) for d in devices] == [
        (1, 0, 19968),
        (5, 0, 9856),
        (5, 1, 9856),
        (13, 0, 4864),
    ]
    assert devices[0]["uuid"] == "MIG-0-1-0"
    # per MIG device: pid 10 counted once, memory on both instances added
    assert gpu["processes"] == {"count": 2, "used_memory_mib": 350}
    assert gpu["errors"] == {}


def test_mig_names_come_from_nvml_when_given(fake_nvml, spec):
    mig = {"current": 1, "pending": 1, "profiles": spec()["mig"]["profiles"], "gis": MIG_LAYOUT[:1]}
    fake = fake_nvml([spec(0, mig=mig)], give_names=True)
    gpu = nv.collect_nvml(ALL, nvml=fake)["gpus"][0]
    assert gpu["mig"]["gpu_instances"][0]["profile"] == "NAMED-9"


@pytest.mark.parametrize(
    "memory_mib, total_gib, name_gb",
    [
        (4864, 40, 5),
        (9856, 40, 10),
        (19968, 40, 20),
        (40192, 40, 40),  # A100-40GB
        (9984, 79.65, 10),
        (20096, 79.65, 20),
        (40448, 79.65, 40),
        (81152, 79.65, 80),  # H100
        (47493, 93.58, 47),
        (95355, 93.58, 94),  # H100 NVL
    ],
)
def test_mig_memory_gb_matches_published_names(memory_mib, total_gib, name_gb):
    assert mig_state.mig_memory_gb(memory_mib, int(total_gib * 1024**3)) == name_gb


def test_mig_memory_without_device_total():
    assert mig_state.mig_memory_gb(4864, None) == 5


def test_pre_ampere_retired_pages_and_disabled_ecc(fake_nvml, spec):
    fake = fake_nvml([spec(0, retired=(2, 1, 1), remapped=None, ecc=[0, 0], arch=5)])
    gpu = nv.collect_nvml(ALL, nvml=fake)["gpus"][0]
    assert gpu["retired_pages"] == {"supported": True, "single_bit": 2, "double_bit": 1, "pending": True}
    assert gpu["remapped_rows"]["supported"] is False
    assert gpu["ecc"] == {
        "enabled": False,
        "pending": False,
        "uncorrected_volatile": None,
        "uncorrected_aggregate": None,
    }
    assert gpu["architecture"] == "volta"
    assert not [c for c in fake.calls if c[0] == "nvmlDeviceGetTotalEccErrors"]


def test_options_limit_the_calls(fake_nvml, spec):
    fake = fake_nvml([spec(0)])
    gpu = nv.collect_nvml({"telemetry": False, "mig": False, "processes": False, "nvlink": False}, nvml=fake)["gpus"][0]
    assert gpu["memory"] is None and gpu["temperature_c"] is None and gpu["mig"] is None
    assert gpu["nvlinks_active"] is None and gpu["processes"] is None
    names = {c[0] for c in fake.calls}
    assert not names & {
        "nvmlDeviceGetTemperature",
        "nvmlDeviceGetNvLinkState",
        "nvmlDeviceGetMigMode",
        "nvmlDeviceGetComputeRunningProcesses",
    }


def test_processes_without_mig_collected(fake_nvml, spec):
    fake = fake_nvml([spec(0, processes=[{"pid": 7, "mib": 2048}])])
    gpu = nv.collect_nvml({"processes": True}, nvml=fake)["gpus"][0]
    assert gpu["processes"] == {"count": 1, "used_memory_mib": 2048}
    assert gpu["mig"] is None


def test_unexpected_exception_in_one_call_is_contained(fake_nvml, spec):
    fake = fake_nvml([spec(0)])

    def broken(handle):
        raise RuntimeError("binding bug")

    fake.nvmlDeviceGetPowerUsage = broken
    gpu = nv.collect_nvml(ALL, nvml=fake)["gpus"][0]
    assert gpu["errors"] == {"power.draw_w": "nvmlDeviceGetPowerUsage: binding bug"}
    assert gpu["power"]["limit_w"] == 400.0


def test_text_decodes_bytes():
    assert bindings.text(b"GPU-1\x00\x00") == "GPU-1"
    assert bindings.text("  ") is None
    assert bindings.text(None) is None
