# -*- coding: utf-8 -*-
# Copyright: (c) 2025, gpuops.cluster developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""NVIDIA devices on the PCI bus, read from sysfs (works before any driver, and as non-root).

Pure parsing helpers first; the sysfs reader at the end does the file access.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import os

from ansible_collections.gpuops.cluster.plugins.module_utils._fileio import SYSFS_LIMIT, ReadError, read_text
from ansible_collections.gpuops.cluster.plugins.module_utils.pci_ids import (
    NVIDIA_VENDOR_ID,
    ProductNames,
)

# Directory entries under sys/bus/pci/devices: a real host has a few hundred.
MAX_PCI_ENTRIES = 65536

SYSFS_PCI_DEVICES = "sys/bus/pci/devices"

KIND_GPU = "gpu"
KIND_NVSWITCH = "nvswitch"


# ---------------------------------------------------------------- pure helpers


def normalize_bus_id(bus_id):
    """Canonical PCI address: 4-hex-digit (at least) domain, lower case.

    NVML says `00000000:07:00.0`, sysfs says `0000:07:00.0`; both become `0000:07:00.0`.
    A missing domain means domain 0. Returns None for None/empty input.
    """
    if bus_id is None:
        return None
    if isinstance(bus_id, bytes):
        bus_id = bus_id.decode("ascii", "replace")
    value = bus_id.strip().strip("\x00").lower()
    if not value:
        return None
    parts = value.split(":")
    if len(parts) == 2:
        parts.insert(0, "0")
    if len(parts) != 3:
        return value
    domain, bus, devfn = parts
    try:
        domain_text = "%04x" % int(domain, 16)
        bus_text = "%02x" % int(bus, 16)
    except ValueError:
        return value
    if "." in devfn:
        dev, fn = devfn.split(".", 1)
        try:
            devfn = "%02x.%x" % (int(dev, 16), int(fn, 16))
        except ValueError:
            pass
    return "%s:%s:%s" % (domain_text, bus_text, devfn)


def parse_hex(text, width=None):
    """'0x10de\\n' -> '0x10de' (lower case, optionally zero-padded to width digits); else None."""
    if text is None:
        return None
    value = text.strip().lower()
    if not value:
        return None
    try:
        number = int(value, 16)
    except ValueError:
        return None
    if width:
        return "0x%0*x" % (width, number)
    return "0x%x" % number


def parse_int(text):
    """'0\\n' -> 0; '-1' (no NUMA node) and garbage -> None."""
    if text is None:
        return None
    try:
        value = int(text.strip())
    except ValueError:
        return None
    return value if value >= 0 else None


def classify(vendor, pci_class):
    """'gpu' for NVIDIA display/3D controllers, 'nvswitch' for bridges (0x0680), else None."""
    if vendor != NVIDIA_VENDOR_ID or not pci_class:
        return None
    try:
        number = int(pci_class, 16)
    except ValueError:
        return None
    base_sub = number >> 8
    if base_sub in (0x0300, 0x0302):
        return KIND_GPU
    if base_sub == 0x0680:
        return KIND_NVSWITCH
    return None


def link_basename(target):
    """Last component of a symlink target ('../../../bus/pci/drivers/nvidia' -> 'nvidia')."""
    if not target:
        return None
    return os.path.basename(target.rstrip("/")) or None


# ---------------------------------------------------------------- sysfs reader


def _read(path):
    try:
        return read_text(path, SYSFS_LIMIT)
    except ReadError:
        return None


def _read_checked(dev_dir, name, errors, width):
    """A hex sysfs attribute; a file that exists but cannot be read or parsed lands in ``errors``."""
    path = os.path.join(dev_dir, name)
    try:
        text = read_text(path, SYSFS_LIMIT)
    except ReadError as exc:
        if os.path.lexists(path):
            errors["pci.%s" % name] = "sysfs %s: %s" % (name, exc.reason)
        return None
    value = parse_hex(text, width)
    if value is None or (width and len(value) > width + 2):
        errors["pci.%s" % name] = "sysfs %s: not a hex id of %d digits" % (name, width)
        return None
    return value


def _readlink(path):
    try:
        return os.readlink(path)
    except (IOError, OSError):
        return None


def read_device(dev_dir, bus_id, names):
    """One NVIDIA PCI function as a dict, or None when it is neither a GPU nor an NVSwitch."""
    pci_class = parse_hex(_read(os.path.join(dev_dir, "class")), 6)
    kind = classify(NVIDIA_VENDOR_ID, pci_class)
    if kind is None:
        return None
    errors = {}
    device_id = _read_checked(dev_dir, "device", errors, 4)
    group = link_basename(_readlink(os.path.join(dev_dir, "iommu_group")))
    return {
        "kind": kind,
        "bus_id": normalize_bus_id(bus_id),
        "vendor_id": NVIDIA_VENDOR_ID,
        "device_id": device_id,
        "subsystem_vendor_id": _read_checked(dev_dir, "subsystem_vendor", errors, 4),
        "subsystem_device_id": _read_checked(dev_dir, "subsystem_device", errors, 4),
        "class": pci_class,
        "product": names.lookup(device_id) if device_id else None,
        "driver": link_basename(_readlink(os.path.join(dev_dir, "driver"))),
        "numa_node": parse_int(_read(os.path.join(dev_dir, "numa_node"))),
        "iommu_group": parse_int(group) if group else None,
        "errors": errors,
    }


def scan_pci(host_root="/", names=None):
    """All NVIDIA GPUs and NVSwitches under <host_root>/sys/bus/pci/devices, sorted by bus id.

    Returns (devices, error): error is a short sentence when sysfs could not be listed.
    """
    if names is None:
        names = ProductNames(host_root)
    base = os.path.join(host_root, SYSFS_PCI_DEVICES)
    try:
        entries = os.listdir(base)
    except (IOError, OSError) as exc:
        return [], "cannot list %s: %s" % (base, exc.strerror or exc)
    if len(entries) > MAX_PCI_ENTRIES:
        return [], "%s lists %d entries: not a PCI device folder" % (base, len(entries))
    devices = []
    for entry in sorted(entries):
        dev_dir = os.path.join(base, entry)
        vendor = parse_hex(_read(os.path.join(dev_dir, "vendor")), 4)
        if vendor != NVIDIA_VENDOR_ID:
            continue
        device = read_device(dev_dir, entry, names)
        if device is not None:
            devices.append(device)
    devices.sort(key=lambda item: item["bus_id"])
    return devices, None
