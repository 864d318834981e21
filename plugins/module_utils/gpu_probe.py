# -*- coding: utf-8 -*-
# Copyright: (c) 2025, gpuops.cluster developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Entry point of the gpu_probe module: read host, PCI and NVML, then build the facts."""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

from ansible_collections.gpuops.cluster.plugins.module_utils.gpu_inventory import (
    COLLECT_CHOICES,
    NVML_COLLECTORS,
    build_facts,
)
from ansible_collections.gpuops.cluster.plugins.module_utils.host_driver import read_host_driver
from ansible_collections.gpuops.cluster.plugins.module_utils.nvml.facts import collect_nvml
from ansible_collections.gpuops.cluster.plugins.module_utils.pci import scan_pci

NOT_REQUESTED = "not collected: the collect option does not include nvml"


def probe(host_root="/", collect=COLLECT_CHOICES, nvlink=True, nvml=None):
    """Probe this host. Returns (facts, warnings).

    nvml: a pynvml-compatible module to use instead of importing pynvml (tests).
    mig, processes and telemetry need NVML: asking for any of them reads NVML.
    """
    requested = set(collect)
    warnings = []
    host, driver = read_host_driver(host_root)
    pci_devices, pci_ok = [], False
    if "pci" in requested:
        pci_devices, error = scan_pci(host_root)
        pci_ok = error is None
        if error:
            warnings.append("PCI scan skipped: %s" % error)
    if requested.intersection(NVML_COLLECTORS):
        want = {
            "telemetry": "telemetry" in requested,
            "mig": "mig" in requested,
            "processes": "processes" in requested,
            "nvlink": bool(nvlink),
        }
        nvml_result = collect_nvml(want, nvml=nvml)
    else:
        nvml_result = {"available": False, "reason": NOT_REQUESTED, "gpus": []}
    facts = build_facts(requested, host, driver, pci_devices, pci_ok, nvml_result)
    return facts, warnings
