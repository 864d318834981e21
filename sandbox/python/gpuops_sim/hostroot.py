"""Render a host's filesystem view (sysfs, procfs, module and library files) for a fixture.

The tree stands in for `/` on a host: the collection reads it through `host_root`.
Rendering wipes the root and writes it again, so it is idempotent.
"""

import os
import shutil

SECURE_BOOT_VAR = "SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"
NVIDIA_VENDOR = "0x10de"

# Modules every host has loaded, as /proc/modules lists them.
_BASE_MODULES = [
    ("ext4", 1085440, 2, "-"),
    ("mbcache", 16384, 1, "ext4,"),
    ("jbd2", 200704, 1, "ext4,"),
    ("xfs", 2072576, 1, "-"),
]


def _write(path, text, mode="w"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, mode) as handle:
        handle.write(text)


def _symlink(target, path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    os.symlink(target, path)


def _root_complex(bus_id):
    return "pci%s:00" % bus_id.split(":")[0]


def _pci_device(
    root,
    bus_id,
    vendor,
    device,
    pci_class,
    numa_node,
    iommu_group,
    subsystem_vendor=None,
    subsystem_device=None,
    revision="0x00",
    driver=None,
):
    """One device: real directory under sys/devices, linked from sys/bus/pci/devices."""
    rel = os.path.join("devices", _root_complex(bus_id), bus_id)
    device_dir = os.path.join(root, "sys", rel)
    files = {
        "vendor": vendor,
        "device": device,
        "class": pci_class,
        "subsystem_vendor": subsystem_vendor or vendor,
        "subsystem_device": subsystem_device or "0x0000",
        "numa_node": str(numa_node),
        "revision": revision,
    }
    for name, value in files.items():
        _write(os.path.join(device_dir, name), "%s\n" % value)
    _symlink(os.path.join("..", "..", "..", rel), os.path.join(root, "sys/bus/pci/devices", bus_id))
    if iommu_group is not None:
        group_dir = os.path.join(root, "sys/kernel/iommu_groups", str(iommu_group))
        _symlink("../../../kernel/iommu_groups/%s" % iommu_group, os.path.join(device_dir, "iommu_group"))
        _symlink(os.path.join("..", "..", "..", "..", rel), os.path.join(group_dir, "devices", bus_id))
    if driver:
        _symlink("../../../bus/pci/drivers/%s" % driver, os.path.join(device_dir, "driver"))
        _symlink(os.path.join("..", "..", "..", "..", rel), os.path.join(root, "sys/bus/pci/drivers", driver, bus_id))


def _hex(value, width=4):
    if isinstance(value, int):
        return "0x%0*x" % (width, value)
    return "0x%0*x" % (width, int(str(value), 16))


def _version_file(driver):
    if driver["kernel_module"] == "open":
        flavour = "NVIDIA UNIX Open Kernel Module for x86_64"
        build = "  Release Build  (dvs-builder@U16-I3-B03-4-3)"
    else:
        flavour = "NVIDIA UNIX x86_64 Kernel Module"
        build = ""
    return "NVRM version: %s  %s%s  %s\nGCC version:  gcc version 12.2.0 (Debian 12.2.0-14) \n" % (
        flavour,
        driver["version"],
        build,
        driver["build_date"],
    )


def _proc_modules(driver):
    lines = ["%s %d %d %s Live 0x0000000000000000" % m for m in _BASE_MODULES]
    if driver["state"] == "loaded":
        # Out-of-tree (O) and unsigned (E); the proprietary module also taints with P.
        taint = "(OE)" if driver["kernel_module"] == "open" else "(POE)"
        lines = [
            "nvidia_uvm 1789952 0 - Live 0x0000000000000000 %s" % taint,
            "nvidia_drm 126976 0 - Live 0x0000000000000000 %s" % taint,
            "nvidia_modeset 1581056 1 nvidia_drm, Live 0x0000000000000000 %s" % taint,
            "nvidia 8654848 2 nvidia_uvm,nvidia_modeset, Live 0x0000000000000000 %s" % taint,
        ] + lines
    if driver.get("nouveau_loaded"):
        lines.insert(0, "nouveau 2936832 0 - Live 0x0000000000000000")
    return "\n".join(lines) + "\n"


def render(fixture, root, uuids=None):
    """Write the host tree for a resolved fixture under `root` (wiped first)."""
    root = os.path.abspath(root)
    if os.path.isdir(root) and not os.path.islink(root):
        shutil.rmtree(root)
    os.makedirs(root)
    driver = fixture["driver"]
    loaded = driver["state"] == "loaded"
    installed = driver["state"] in ("loaded", "installed")
    kernel = fixture["host"]["kernel"]

    _write(os.path.join(root, "proc/sys/kernel/osrelease"), kernel + "\n")
    _write(os.path.join(root, "proc/modules"), _proc_modules(driver))
    os.makedirs(os.path.join(root, "sys/bus/pci/devices"), exist_ok=True)
    os.makedirs(os.path.join(root, "sys/bus/pci/drivers"), exist_ok=True)

    for dev in fixture["pci_devices"]:
        _pci_device(
            root,
            dev["bus_id"],
            _hex(dev.get("vendor_id", "0x8086")),
            _hex(dev.get("device_id", "0x0000")),
            _hex(dev.get("class", "0x060000"), 6),
            dev.get("numa_node", -1),
            dev.get("iommu_group"),
            subsystem_vendor=_hex(dev["subsystem_vendor_id"]) if dev.get("subsystem_vendor_id") else None,
            driver=dev.get("driver"),
        )
    for switch in fixture["nvswitches"]:
        _pci_device(
            root,
            switch["bus_id"],
            NVIDIA_VENDOR,
            _hex(switch["device_id"]),
            _hex(switch.get("class", "0x068000"), 6),
            switch.get("numa_node", -1),
            switch.get("iommu_group"),
            subsystem_device=_hex(switch.get("subsystem_device_id", "0x1622")),
            revision="0xa1",
            driver="nvidia-nvswitch" if loaded else None,
        )
    for gpu in fixture["gpus"]:
        model = gpu["model"]
        _pci_device(
            root,
            gpu["bus_id"],
            NVIDIA_VENDOR,
            _hex(model["pci_device_id"]),
            _hex(model["pci_class"], 6),
            gpu["numa_node"],
            gpu["iommu_group"],
            subsystem_vendor=_hex(model["subsystem_vendor_id"]),
            subsystem_device=_hex(model["subsystem_device_id"]),
            revision=_hex(model["pci_revision"], 2),
            driver="nvidia" if loaded else None,
        )

    if loaded:
        _write(os.path.join(root, "proc/driver/nvidia/version"), _version_file(driver))
        params = {
            "ResmanDebugLevel": "4294967295",
            "EnableMSI": "1",
            "RmProfilingAdminOnly": "1" if driver.get("profiling_admin_only", True) else "0",
        }
        _write(os.path.join(root, "proc/driver/nvidia/params"), "".join("%s: %s\n" % kv for kv in params.items()))
        _write(os.path.join(root, "sys/module/nvidia/version"), driver["version"] + "\n")
        for module in ("nvidia_uvm", "nvidia_modeset", "nvidia_drm"):
            os.makedirs(os.path.join(root, "sys/module", module), exist_ok=True)
        for position, gpu in enumerate(fixture["gpus"]):
            info = [
                ("Model", gpu["model"]["nvml_name"]),
                ("IRQ", str(150 + position)),
                ("GPU UUID", uuids[position] if uuids else "GPU-" + "0" * 36),
                ("Video BIOS", gpu["model"]["vbios_version"].lower()),
                ("Bus Type", "PCIe"),
                ("DMA Size", "47 bits"),
                ("DMA Mask", "0x7fffffffffff"),
                ("Bus Location", gpu["bus_id"]),
                ("Device Minor", str(position)),
                ("GPU Excluded", "No"),
            ]
            text = "".join("%-22s%s\n" % (key + ":", value) for key, value in info)
            _write(os.path.join(root, "proc/driver/nvidia/gpus", gpu["bus_id"], "information"), text)
    if driver.get("nouveau_loaded"):
        os.makedirs(os.path.join(root, "sys/module/nouveau"), exist_ok=True)
    if installed:
        version = driver["version"]
        _write(os.path.join(root, "lib/modules", kernel, "updates/dkms/nvidia.ko"), "")
        for name in ("nvidia-uvm.ko", "nvidia-modeset.ko", "nvidia-drm.ko"):
            _write(os.path.join(root, "lib/modules", kernel, "updates/dkms", name), "")
        libdir = os.path.join(root, "usr/lib/x86_64-linux-gnu")
        _write(os.path.join(libdir, "libnvidia-ml.so.%s" % version), "")
        _symlink("libnvidia-ml.so.%s" % version, os.path.join(libdir, "libnvidia-ml.so.1"))
    if fixture["host"]["secure_boot"] is not None:
        value = b"\x06\x00\x00\x00" + (b"\x01" if fixture["host"]["secure_boot"] else b"\x00")
        _write(os.path.join(root, "sys/firmware/efi/efivars", SECURE_BOOT_VAR), value, "wb")
    return root
