# -*- coding: utf-8 -*-
# Copyright: (c) 2025, gpuops.cluster developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""NVIDIA PCI device ids: our own table of datacenter parts plus a pci.ids reader.

The table is data, not code: correct a row here when a real device says otherwise.
Debian 12's pci.ids is too old for recent parts (no H200 or B200), so our table wins.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import os

from ansible_collections.gpuops.cluster.plugins.module_utils._fileio import DATA_LIMIT, ReadError, read_bytes

NVIDIA_VENDOR_ID = "0x10de"

# device id (lower-case hex, no 0x) -> (product, architecture)
# Every row is a datacenter part: ECC is expected to be on for these.
# Rows marked inferred in ../shared/reference/mig-profiles.md are inferred here too.
DATACENTER_GPUS = {
    "20b0": ("A100 SXM4 40GB", "ampere"),
    "20b1": ("A100 PCIe 40GB", "ampere"),
    "20f1": ("A100 PCIe 40GB", "ampere"),
    "20b2": ("A100 SXM4 80GB", "ampere"),
    "20b5": ("A100 PCIe 80GB", "ampere"),
    "20b7": ("A30 PCIe", "ampere"),
    "2236": ("A10", "ampere"),
    "2330": ("H100 SXM5 80GB", "hopper"),
    "2331": ("H100 PCIe", "hopper"),
    "2321": ("H100 NVL 94GB", "hopper"),
    "2339": ("H100 SXM5 94GB", "hopper"),
    "2335": ("H200 SXM 141GB", "hopper"),
    "233b": ("H200 NVL", "hopper"),
    "2342": ("GH200", "hopper"),
    "2348": ("GH200", "hopper"),
    "2901": ("B200", "blackwell"),
    "2941": ("HGX GB200", "blackwell"),
    "26b5": ("L40", "ada"),
    "26b9": ("L40S", "ada"),  # inferred
    "1eb8": ("T4", "turing"),
}

NVSWITCHES = {
    "1ac1": "NVSwitch (V100 generation)",
    "1ac2": "NVSwitch (V100 generation)",
    "1af1": "NVSwitch (A100 generation)",
    "22a3": "NVSwitch (H100 generation)",
}

PCI_IDS_PATHS = ("usr/share/misc/pci.ids", "usr/share/hwdata/pci.ids")


def short_id(device_id):
    """'0x20B0' or '20b0' -> '20b0'."""
    if device_id is None:
        return None
    value = str(device_id).strip().lower()
    if value.startswith("0x"):
        value = value[2:]
    return value


def known_product(device_id):
    """Product name from our own table (GPUs and NVSwitches), or None."""
    key = short_id(device_id)
    row = DATACENTER_GPUS.get(key)
    if row:
        return row[0]
    return NVSWITCHES.get(key)


def known_architecture(device_id):
    row = DATACENTER_GPUS.get(short_id(device_id))
    return row[1] if row else None


def is_datacenter(device_id):
    return short_id(device_id) in DATACENTER_GPUS


def _display_name(raw):
    """'GA100 [A100 SXM4 40GB]' -> 'A100 SXM4 40GB'; names without brackets stay as they are."""
    raw = raw.strip()
    start = raw.find("[")
    end = raw.rfind("]")
    if start != -1 and end > start:
        inner = raw[start + 1 : end].strip()
        if inner:
            return inner
    return raw


def parse_pci_ids(text, vendor="10de"):
    """Device names of one vendor from pci.ids text: {'20b0': 'A100 SXM4 40GB', ...}.

    Format: a vendor line `vvvv  Name` at column 0, its devices on lines `\\tdddd  Name`,
    subsystems on `\\t\\t...` lines (skipped); comments start with '#'.
    """
    vendor = short_id(vendor)
    result = {}
    marker = "\n" + vendor + "  "
    if text.startswith(vendor + "  "):
        pos = 0
    else:
        pos = text.find(marker)
        if pos == -1:
            return result
        pos += 1
    lines = text[pos:].split("\n")
    for line in lines[1:]:
        if not line or line.startswith("#"):
            continue
        if not line.startswith("\t"):
            break  # next vendor (or the class section)
        if line.startswith("\t\t"):
            continue
        parts = line[1:].split(None, 1)
        if len(parts) != 2:
            continue
        dev = parts[0].lower()
        if len(dev) == 4:
            result[dev] = _display_name(parts[1])
    return result


def read_pci_ids(host_root):
    """NVIDIA device names from the host's pci.ids, or {} when there is none."""
    for rel in PCI_IDS_PATHS:
        path = os.path.join(host_root, rel)
        try:
            return parse_pci_ids(read_bytes(path, DATA_LIMIT).decode("utf-8", "replace"))
        except ReadError:
            continue
    return {}


class ProductNames:
    """Product lookup: our table first, then the host's pci.ids (read once, only when needed)."""

    def __init__(self, host_root):
        self.host_root = host_root
        self._system = None

    def lookup(self, device_id):
        name = known_product(device_id)
        if name:
            return name
        if self._system is None:
            self._system = read_pci_ids(self.host_root)
        return self._system.get(short_id(device_id))
