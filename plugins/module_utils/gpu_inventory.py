# -*- coding: utf-8 -*-
# Copyright: (c) 2025, gpuops.cluster developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""GPU inventory: pure logic, no I/O.

Joins what PCI (sysfs) and NVML say about each GPU by bus id, gives each GPU a health verdict
with short reasons, and summarises the host. Inputs are the plain dicts produced by
``pci.scan_pci``, ``host_driver.read_host_driver`` and ``nvml.collect_nvml``.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

from ansible_collections.gpuops.cluster.plugins.module_utils.pci import normalize_bus_id
from ansible_collections.gpuops.cluster.plugins.module_utils.pci_ids import (
    NVIDIA_VENDOR_ID,
    is_datacenter,
    known_architecture,
    known_product,
)

COLLECT_CHOICES = ("pci", "nvml", "mig", "processes", "telemetry")
NVML_COLLECTORS = ("nvml", "mig", "processes", "telemetry")
DEFAULT_SLOWDOWN_C = 85
IDENTITY_FIELDS = ("handle", "name", "uuid", "pci")

HEALTHY = "healthy"
DEGRADED = "degraded"
UNHEALTHY = "unhealthy"
UNKNOWN = "unknown"

PCI_KEYS = (
    "bus_id",
    "vendor_id",
    "device_id",
    "subsystem_vendor_id",
    "subsystem_device_id",
    "class",
    "product",
    "driver",
    "numa_node",
    "iommu_group",
)
NVML_KEYS = (
    "name",
    "uuid",
    "serial",
    "architecture",
    "compute_capability",
    "memory",
    "temperature_c",
    "power",
    "ecc",
    "retired_pages",
    "remapped_rows",
    "persistence_mode",
    "nvlinks_active",
    "mig",
    "processes",
)


# ---------------------------------------------------------------- join


def _pci_from_nvml(record):
    """PCI facts when only NVML saw the GPU (pci not collected or sysfs unreadable)."""
    pci = dict.fromkeys(PCI_KEYS)
    pci["bus_id"] = record.get("bus_id")
    pci.update(record.get("pci") or {})
    if pci.get("vendor_id") is None and pci.get("device_id"):
        pci["vendor_id"] = NVIDIA_VENDOR_ID
    if pci.get("device_id"):
        pci["product"] = known_product(pci["device_id"])
    return pci


def _pci_facts(device):
    return dict((key, device.get(key)) for key in PCI_KEYS)


def join(pci_gpus, nvml_gpus, nvml_available):
    """Pair PCI GPUs and NVML GPUs by bus id. Returns a list of (pci_device|None, nvml|None).

    NVML records whose bus id could not be read (lost GPU, failed PCI info call) are paired
    with the PCI GPUs NVML did not name, in order, when the counts match: NVML enumerates
    GPUs in PCI bus order, so the n-th unnamed record is the n-th unclaimed address.
    """
    by_bus = {}
    for device in pci_gpus:
        by_bus[normalize_bus_id(device["bus_id"])] = device
    pairs = []
    claimed = set()
    unnamed = []
    for record in nvml_gpus:
        bus = normalize_bus_id(record.get("bus_id"))
        if bus and bus in by_bus and bus not in claimed:
            claimed.add(bus)
            pairs.append((by_bus[bus], record))
        elif bus:
            pairs.append((None, record))
        else:
            unnamed.append(record)
    leftovers = [dev for dev in pci_gpus if normalize_bus_id(dev["bus_id"]) not in claimed]
    if unnamed and nvml_available and len(unnamed) == len(leftovers):
        leftovers.sort(key=lambda dev: normalize_bus_id(dev["bus_id"]))
        unnamed.sort(key=lambda rec: rec.get("index") if rec.get("index") is not None else -1)
        for device, record in zip(leftovers, unnamed):  # noqa: B905 (equal lengths; py3.8)
            pairs.append((device, record))
        leftovers = []
    else:
        pairs.extend((None, record) for record in unnamed)
    pairs.extend((device, None) for device in leftovers)
    return pairs


# ---------------------------------------------------------------- health


def assess_health(
    gpu, nvml_available, nvml_reason=None, *, in_nvml=True, lost=False, slowdown_c=None, datacenter=False
):
    """Health verdict for one joined GPU: {'status': ..., 'reasons': [...]}.

    Rules, worst first:
      unknown   - NVML unavailable (PCI-only facts);
      unhealthy - GPU_IS_LOST; on PCI but not enumerated by NVML; NVML cannot read an identity
                  field (name, UUID, PCI info); uncorrected volatile ECC errors > 0;
                  a row-remapping failure;
      degraded  - row remapping or page retirement pending (needs a GPU reset); ECC or MIG
                  mode change pending; ECC disabled on a datacenter GPU; temperature at or
                  above the slowdown threshold (NVML's, else 85 C); any other field NVML
                  could not read.
    """
    if not nvml_available:
        reason = "NVML unavailable (%s): PCI-only facts" % (nvml_reason or "unknown reason")
        return {"status": UNKNOWN, "reasons": [reason]}
    bad = []
    warn = []
    if not in_nvml:
        driver = (gpu.get("pci") or {}).get("driver")
        if driver and driver != "nvidia":
            bad.append("not visible to NVML: bound to %s instead of nvidia" % driver)
        else:
            bad.append("not visible to NVML: fallen off the bus or bound to another driver")
        return {"status": UNHEALTHY, "reasons": bad}
    errors = gpu.get("errors") or {}
    if lost:
        bad.append("GPU is lost (NVML_ERROR_GPU_IS_LOST): it fell off the bus; reset or reseat it")
    else:
        for field in IDENTITY_FIELDS:
            if field in errors:
                bad.append("NVML cannot read its %s: %s" % (field, errors[field]))
    ecc = gpu.get("ecc") or {}
    volatile = ecc.get("uncorrected_volatile")
    if volatile:
        bad.append("%d uncorrected ECC errors since the driver loaded" % volatile)
    remapped = gpu.get("remapped_rows") or {}
    if remapped.get("failure"):
        bad.append("row remapping failed: the GPU needs service")
    if remapped.get("pending"):
        warn.append("row remapping pending: reset the GPU to apply it")
    retired = gpu.get("retired_pages") or {}
    if retired.get("pending"):
        warn.append("page retirement pending: reset the GPU to apply it")
    if ecc.get("enabled") is not None and ecc.get("pending") is not None and ecc["enabled"] != ecc["pending"]:
        warn.append("ECC mode change pending: reset the GPU to apply it")
    mig = gpu.get("mig") or {}
    if (
        mig.get("capable")
        and mig.get("current") is not None
        and mig.get("pending") is not None
        and mig["current"] != mig["pending"]
    ):
        warn.append("MIG mode change pending: reset the GPU to apply it")
    if datacenter and ecc.get("enabled") is False:
        warn.append("ECC is disabled on a datacenter GPU")
    temperature = gpu.get("temperature_c")
    threshold = slowdown_c or DEFAULT_SLOWDOWN_C
    if temperature is not None and temperature >= threshold:
        warn.append("temperature %d C is at or above the slowdown threshold %d C" % (temperature, threshold))
    if not lost:
        for field in sorted(errors):
            if field not in IDENTITY_FIELDS:
                warn.append("NVML could not read %s: %s" % (field, errors[field]))
    if bad:
        return {"status": UNHEALTHY, "reasons": bad + warn}
    if warn:
        return {"status": DEGRADED, "reasons": warn}
    return {"status": HEALTHY, "reasons": []}


# ---------------------------------------------------------------- facts


def empty_nvml_facts():
    return dict.fromkeys(NVML_KEYS)


def build_gpu(device, record, nvml_available, nvml_reason):
    """One GPU's facts from its PCI device (or None) and NVML record (or None)."""
    gpu = {"index": record.get("index") if record else None}
    if device is not None:
        gpu["pci"] = _pci_facts(device)
    elif record is not None:
        gpu["pci"] = _pci_from_nvml(record)
    else:
        gpu["pci"] = dict.fromkeys(PCI_KEYS)
    facts = empty_nvml_facts()
    if record is not None:
        for key in NVML_KEYS:
            facts[key] = record.get(key)
    if facts["architecture"] is None:
        facts["architecture"] = known_architecture(gpu["pci"].get("device_id"))
    gpu.update(facts)
    gpu["errors"] = dict(record.get("errors") or {}) if record else {}
    if device is not None:
        for field, message in sorted((device.get("errors") or {}).items()):
            gpu["errors"].setdefault(field, message)
    gpu["health"] = assess_health(
        gpu,
        nvml_available=nvml_available,
        nvml_reason=nvml_reason,
        in_nvml=record is not None,
        lost=bool(record and record.get("lost")),
        slowdown_c=record.get("slowdown_temperature_c") if record else None,
        datacenter=is_datacenter(gpu["pci"].get("device_id")),
    )
    return gpu


def _sort_key(gpu):
    bus = gpu["pci"].get("bus_id")
    index = gpu.get("index")
    return (bus is None, bus or "", index if index is not None else -1)


def _pci_model_key(gpu):
    pci = gpu.get("pci") or {}
    return (pci.get("device_id"), pci.get("subsystem_vendor_id"), pci.get("subsystem_device_id"))


def summarize(gpus):
    summary = {
        "count": len(gpus),
        "models": {},
        "memory_total_mib": 0,
        HEALTHY: 0,
        DEGRADED: 0,
        UNHEALTHY: 0,
        UNKNOWN: 0,
        "mig_capable": 0,
        "mig_enabled": 0,
    }
    # A GPU NVML cannot read (lost, not enumerated) is counted under the NVML name of its
    # siblings with the same PCI ids, so one model is not split across two spellings.
    name_by_pci_ids = {}
    for gpu in gpus:
        if gpu.get("name"):
            name_by_pci_ids.setdefault(_pci_model_key(gpu), gpu["name"])
    for gpu in gpus:
        model = (
            gpu.get("name")
            or name_by_pci_ids.get(_pci_model_key(gpu))
            or gpu["pci"].get("product")
            or gpu["pci"].get("device_id")
            or "unknown"
        )
        summary["models"][model] = summary["models"].get(model, 0) + 1
        memory = gpu.get("memory") or {}
        if memory.get("total_mib"):
            summary["memory_total_mib"] += memory["total_mib"]
        status = (gpu.get("health") or {}).get("status", UNKNOWN)
        summary[status] = summary.get(status, 0) + 1
        mig = gpu.get("mig") or {}
        if mig.get("capable"):
            summary["mig_capable"] += 1
        if mig.get("current"):
            summary["mig_enabled"] += 1
    return summary


def _nvswitch(device):
    return {
        "pci_bus_id": device.get("bus_id"),
        "device_id": device.get("device_id"),
        "name": device.get("product"),
        "driver": device.get("driver"),
        "numa_node": device.get("numa_node"),
    }


def build_facts(collect, host, driver, pci_devices, pci_ok, nvml_result):  # noqa: PLR0917
    """The whole ansible_facts.gpu dict.

    collect: the requested collectors; pci_ok: whether sysfs was read; nvml_result: the dict
    from nvml.collect_nvml (or an unavailable stand-in when NVML was not requested).
    """
    requested = set(collect)
    available = bool(nvml_result.get("available"))
    reason = None if available else nvml_result.get("reason")
    collected = []
    for name in COLLECT_CHOICES:
        if name not in requested:
            continue
        if name == "pci" and not pci_ok:
            continue
        if name in NVML_COLLECTORS and not available:
            continue
        collected.append(name)
    if available and "nvml" not in collected:
        collected.insert(1 if "pci" in collected else 0, "nvml")

    pci_gpus = [dev for dev in pci_devices if dev.get("kind") == "gpu"]
    switches = [_nvswitch(dev) for dev in pci_devices if dev.get("kind") == "nvswitch"]
    pairs = join(pci_gpus, nvml_result.get("gpus") or [], available)
    gpus = [build_gpu(device, record, available, reason) for device, record in pairs]
    gpus.sort(key=_sort_key)

    driver = dict(driver)
    if available:
        driver["state"] = "loaded"
    driver["version"] = driver.get("version") or nvml_result.get("driver_version")
    from_nvml = nvml_result.get("cuda_driver_version")
    driver["cuda_driver_version"] = cuda_version_text(from_nvml)
    driver["nvml_version"] = nvml_result.get("nvml_version")
    driver["nvml"] = {"available": available, "reason": reason}

    if not gpus and not switches:
        source = "none"
    elif available:
        source = "nvml"
    else:
        source = "pci"
    return {
        "collected": collected,
        "source": source,
        "host": dict(host),
        "driver": driver,
        "nvswitches": switches,
        "gpus": gpus,
        "summary": summarize(gpus),
    }


def cuda_version_text(value):
    """12040 -> '12.4' (nvmlSystemGetCudaDriverVersion's encoding: major*1000 + minor*10)."""
    if value is None:
        return None
    try:
        value = int(value)
    except (TypeError, ValueError):
        return None
    if value <= 0:
        return None
    return "%d.%d" % (value // 1000, (value % 1000) // 10)
