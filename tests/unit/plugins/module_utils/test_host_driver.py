# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import pytest
from ansible_collections.gpuops.cluster.plugins.module_utils import host_driver as hd

OPEN = (
    "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  550.127.05  Release Build  "
    "(dvs-builder@U16-I3-B03-4-3)  Tue Oct  8 03:05:21 UTC 2024\n"
    "GCC version:  gcc version 12.2.0 (Debian 12.2.0-14)\n"
)
PROPRIETARY = (
    "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.261.03  "
    "Wed Jul 30 14:21:55 UTC 2025\nGCC version:  gcc version 12.2.0\n"
)
EFI = "sys/firmware/efi/efivars/" + hd.SECURE_BOOT_VAR


def test_parse_driver_version_open_and_proprietary():
    assert hd.parse_driver_version_file(OPEN) == {"version": "550.127.05", "kernel_module": "open"}
    assert hd.parse_driver_version_file(PROPRIETARY) == {"version": "535.261.03", "kernel_module": "proprietary"}
    aarch64 = "NVRM version: NVIDIA UNIX aarch64 Kernel Module  570.86.15  Thu Jan 1 2025\n"
    assert hd.parse_driver_version_file(aarch64)["version"] == "570.86.15"
    assert hd.parse_driver_version_file("") == {"version": None, "kernel_module": None}
    assert hd.parse_driver_version_file("garbage\n")["version"] is None


@pytest.mark.parametrize(
    "data, expected",
    [
        (b"\x06\x00\x00\x00\x01", "enabled"),
        (b"\x06\x00\x00\x00\x00", "disabled"),
        (b"\x01", "enabled"),
        (b"\x06\x00\x00\x00\x07", "unknown"),
        (b"\x06\x00", "unknown"),
        (None, "unknown"),
    ],
)
def test_decode_secure_boot(data, expected):
    assert hd.decode_secure_boot(data) == expected


def test_parse_proc_modules_and_library_names():
    text = "nvidia_uvm 1 0 - Live 0x0\nnvidia 5 1 nvidia_uvm, Live 0x0\nnouveau 2 0 - Live 0\n"
    assert hd.parse_proc_modules(text) == {"nvidia_uvm", "nvidia", "nouveau"}
    assert hd.version_from_library_name("libnvidia-ml.so.550.127.05") == "550.127.05"
    assert hd.version_from_library_name("libnvidia-ml.so.1") is None
    assert hd.modules_dep_has_nvidia("updates/dkms/nvidia-current.ko.xz: kernel/foo.ko\n")
    assert not hd.modules_dep_has_nvidia("kernel/drivers/gpu/drm/nouveau/nouveau.ko.xz:\n")


def test_loaded_open_driver_with_secure_boot(tmp_path, tree):
    tree(
        tmp_path,
        {
            "proc/sys/kernel/osrelease": "6.1.0-28-amd64\n",
            "proc/driver/nvidia/version": OPEN,
            "proc/modules": "nvidia 5 1 - Live 0x0\n",
            EFI: b"\x06\x00\x00\x00\x01",
        },
    )
    host, driver = hd.read_host_driver(str(tmp_path))
    assert host == {"kernel": "6.1.0-28-amd64", "secure_boot": "enabled"}
    assert driver["state"] == "loaded"
    assert driver["version"] == "550.127.05"
    assert driver["kernel_module"] == "open"
    assert driver["nouveau_loaded"] is False


def test_loaded_version_from_sys_module(tmp_path, tree):
    tree(tmp_path, {"proc/modules": "nvidia 5 1 - Live 0x0\n", "sys/module/nvidia/version": "535.261.03\n"})
    _unused, driver = hd.read_host_driver(str(tmp_path))
    assert driver["state"] == "loaded" and driver["version"] == "535.261.03"


def test_installed_from_module_file(tmp_path, tree):
    tree(
        tmp_path,
        {
            "proc/sys/kernel/osrelease": "6.1.0-28-amd64\n",
            "proc/modules": "nouveau 2 0 - Live 0\n",
            "lib/modules/6.1.0-28-amd64/updates/dkms/nvidia-current.ko.xz": b"\x00",
            "sys/firmware/efi/efivars/other-var": b"\x00",
        },
    )
    host, driver = hd.read_host_driver(str(tmp_path))
    assert driver["state"] == "installed"
    assert driver["nouveau_loaded"] is True
    assert driver["kernel_module"] is None
    assert host["secure_boot"] == "disabled"  # efivars readable, no SecureBoot variable


def test_installed_from_library_with_version(tmp_path, tree):
    tree(
        tmp_path,
        {
            "proc/sys/kernel/osrelease": "6.1.0-28-amd64\n",
            "usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1": ("link", "libnvidia-ml.so.550.127.05"),
            "usr/lib/x86_64-linux-gnu/libnvidia-ml.so.550.127.05": b"\x7fELF",
            "sys/firmware/acpi/x": "",
        },
    )
    host, driver = hd.read_host_driver(str(tmp_path))
    assert driver["state"] == "installed"
    assert driver["version"] == "550.127.05"
    assert host["secure_boot"] == "disabled"  # legacy boot: no sys/firmware/efi


def test_nothing_installed(tmp_path, tree):
    tree(
        tmp_path,
        {
            "proc/sys/kernel/osrelease": "6.1.0-28-amd64\n",
            "lib/modules/6.1.0-28-amd64/kernel/drivers/net/e1000.ko": b"\x00",
        },
    )
    host, driver = hd.read_host_driver(str(tmp_path))
    assert driver["state"] == "none"
    assert driver["version"] is None
    assert host["secure_boot"] == "unknown"  # no sys/firmware at all
