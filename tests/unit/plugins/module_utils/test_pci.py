# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import pytest
from ansible_collections.gpuops.cluster.plugins.module_utils import pci


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("00000000:07:00.0", "0000:07:00.0"),
        ("0000:07:00.0", "0000:07:00.0"),
        ("00000000:C0:00.0", "0000:c0:00.0"),
        (b"00000000:B7:00.0\x00", "0000:b7:00.0"),
        ("07:00.0", "0000:07:00.0"),
        ("00010000:07:00.0", "10000:07:00.0"),
        ("", None),
        (None, None),
    ],
)
def test_normalize_bus_id(raw, expected):
    assert pci.normalize_bus_id(raw) == expected


def test_normalize_makes_nvml_and_sysfs_equal():
    assert pci.normalize_bus_id("00000000:4E:00.0") == pci.normalize_bus_id("0000:4e:00.0")


def test_parse_helpers():
    assert pci.parse_hex("0x10DE\n", 4) == "0x10de"
    assert pci.parse_hex("0x30200\n", 6) == "0x030200"
    assert pci.parse_hex("zz") is None
    assert pci.parse_hex("") is None
    assert pci.parse_int("1\n") == 1
    assert pci.parse_int("-1\n") is None
    assert pci.parse_int("x") is None


@pytest.mark.parametrize(
    "vendor, cls, kind",
    [
        ("0x10de", "0x030200", "gpu"),
        ("0x10de", "0x030000", "gpu"),
        ("0x10de", "0x068000", "nvswitch"),
        ("0x10de", "0x040300", None),  # HD audio function of a GPU
        ("0x8086", "0x030000", None),
        ("0x10de", None, None),
    ],
)
def test_classify(vendor, cls, kind):
    assert pci.classify(vendor, cls) == kind


def test_scan_pci_reads_gpus_switches_and_skips_others(tmp_path, tree, pci_files):
    files = {}
    files.update(pci_files("0000:b7:00.0", numa="1", group="90"))
    files.update(pci_files("0000:07:00.0"))
    files.update(pci_files("0000:07:00.1", cls="0x040300"))
    files.update(pci_files("0000:c0:00.0", device="0x1af1", cls="0x068000", group=None))
    files.update(pci_files("0000:00:02.0", vendor="0x8086", device="0x1234", cls="0x030000"))
    files.update(pci_files("0000:17:00.0", device="0x20b0", driver="vfio-pci", numa="-1"))
    files.update(pci_files("0000:27:00.0", device="0x9999", driver=None))
    tree(tmp_path, files)
    devices, error = pci.scan_pci(str(tmp_path))
    assert error is None
    assert [d["bus_id"] for d in devices] == [
        "0000:07:00.0",
        "0000:17:00.0",
        "0000:27:00.0",
        "0000:b7:00.0",
        "0000:c0:00.0",
    ]
    first = devices[0]
    assert first == {
        "kind": "gpu",
        "bus_id": "0000:07:00.0",
        "vendor_id": "0x10de",
        "device_id": "0x20b0",
        "subsystem_vendor_id": "0x10de",
        "subsystem_device_id": "0x134f",
        "class": "0x030200",
        "product": "A100 SXM4 40GB",
        "driver": "nvidia",
        "numa_node": 0,
        "iommu_group": 40,
        "errors": {},
    }
    assert devices[1]["driver"] == "vfio-pci"
    assert devices[1]["numa_node"] is None
    assert devices[2]["driver"] is None
    assert devices[2]["product"] is None  # not in our table, no pci.ids
    assert devices[3]["numa_node"] == 1 and devices[3]["iommu_group"] == 90
    assert devices[4]["kind"] == "nvswitch"
    assert devices[4]["iommu_group"] is None


def test_scan_pci_uses_system_pci_ids_for_unknown_devices(tmp_path, tree, pci_files):
    files = pci_files("0000:27:00.0", device="0x2204")
    files["usr/share/misc/pci.ids"] = "10de  NVIDIA Corporation\n\t2204  GA102 [GeForce RTX 3090]\n"
    tree(tmp_path, files)
    devices, _unused = pci.scan_pci(str(tmp_path))
    assert devices[0]["product"] == "GeForce RTX 3090"


def test_scan_pci_without_sysfs_reports_error(tmp_path):
    devices, error = pci.scan_pci(str(tmp_path))
    assert devices == []
    assert "cannot list" in error
