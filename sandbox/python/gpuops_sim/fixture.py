"""Fleet fixtures: load, validate and resolve against the model and MIG catalogs.

A resolved fixture is plain JSON-able data (numbers instead of constant names, the model and
MIG geometry of each GPU inlined) so it can be cached as JSON and read back quickly.
"""

import hashlib
import json
import os
import re

from gpuops_sim import constants as c
from gpuops_sim.errors import error_code

DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
MODELS_FILE = os.path.join(DATA_DIR, "gpu_models.yml")
GEOMETRY_FILE = os.path.join(DATA_DIR, "mig_geometry.yml")
FORMAT = 3  # bump when the resolved shape changes, so stale caches are ignored

DRIVER_STATES = ("loaded", "installed", "none")
KERNEL_MODULES = ("open", "proprietary")
BUS_ID_RE = re.compile(r"^([0-9a-fA-F]{4,8}):([0-9a-fA-F]{2}):([0-9a-fA-F]{2})\.([0-7])$")

NVSWITCH_DEFAULTS = {"device_id": "0x1af1", "class": "0x068000"}


class FixtureError(ValueError):
    """A fixture (or catalog) that does not describe a valid host."""


def _yaml_load(path):
    import yaml  # imported lazily: cached runs never need it

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with open(path) as handle:
        return yaml.load(handle, Loader=loader)


def normalize_bus_id(bus_id, where="bus_id"):
    """'0000:07:00.0' / '00000000:07:00.0' -> sysfs form '0000:07:00.0' (lower case)."""
    match = BUS_ID_RE.match(str(bus_id))
    if not match:
        raise FixtureError("%s: %r is not a PCI address like 0000:07:00.0" % (where, bus_id))
    domain, bus, dev, func = match.groups()
    return "%04x:%s:%s.%s" % (int(domain, 16), bus.lower(), dev.lower(), func)


def _constant(name, prefix, where):
    if isinstance(name, int):
        return name
    if not isinstance(name, str) or not name.startswith(prefix) or not hasattr(c, name):
        raise FixtureError("%s: %r is not a known %s* constant" % (where, name, prefix))
    return getattr(c, name)


def _hex(value, where):
    try:
        return int(str(value), 16)
    except ValueError:
        raise FixtureError("%s: %r is not a hex number" % (where, value)) from None


def _resolve_geometry(key, geometry, ci_profiles):
    where = "mig_geometry.yml: %s" % key
    profiles = []
    for raw in geometry["gpu_instance_profiles"]:
        engines = raw.get("engines", [0, 0, 0, 0, 0])
        profiles.append(
            {
                "index": _constant(raw["profile"], "NVML_GPU_INSTANCE_PROFILE_", where),
                "id": int(raw["id"]),
                "name": str(raw["name"]),
                "size": int(raw["size"]),
                "slices": int(raw["slices"]),
                "memory_mib": int(raw["memory_mib"]),
                "sms": int(raw["sms"]),
                "starts": [int(s) for s in raw["starts"]],
                "max": int(raw["max"]),
                "media_extensions": bool(raw.get("media_extensions", False)),
                "engines": [int(e) for e in engines],
            }
        )
    cis = [
        {
            "index": _constant(raw["profile"], "NVML_COMPUTE_INSTANCE_PROFILE_", where),
            "id": int(raw["id"]),
            "slices": int(raw["slices"]),
            "starts": [int(s) for s in raw["starts"]],
        }
        for raw in ci_profiles
    ]
    return {
        "key": key,
        "memory_slices": int(geometry["memory_slices"]),
        "compute_slices": int(geometry["compute_slices"]),
        "max_mig_devices": int(geometry["max_mig_devices"]),
        "gpu_instance_profiles": profiles,
        "compute_instance_profiles": cis,
    }


def _resolve_model(key, raw, geometries):
    where = "gpu_models.yml: %s" % key
    geometry_key = raw.get("mig_geometry")
    if geometry_key is not None and geometry_key not in geometries:
        raise FixtureError("%s: unknown mig_geometry %r" % (where, geometry_key))
    return {
        "key": key,
        "nvml_name": str(raw["nvml_name"]),
        "pci_device_id": _hex(raw["pci_device_id"], where),
        "pci_class": _hex(raw.get("pci_class", "0x030200"), where),
        "pci_revision": _hex(raw.get("pci_revision", "0xa1"), where),
        "subsystem_vendor_id": _hex(raw["subsystem_vendor_id"], where),
        "subsystem_device_id": _hex(raw["subsystem_device_id"], where),
        "architecture": _constant(raw["architecture"], "NVML_DEVICE_ARCH_", where),
        "cuda_compute_capability": [int(x) for x in raw["cuda_compute_capability"]],
        "memory_total_mib": int(raw["memory_total_mib"]),
        "power_limit_default_w": float(raw["power_limit_default_w"]),
        "power_limit_min_w": float(raw.get("power_limit_min_w", raw["power_limit_default_w"])),
        "power_limit_max_w": float(raw.get("power_limit_max_w", raw["power_limit_default_w"])),
        "max_nvlinks": int(raw.get("max_nvlinks", 0)),
        "brand": _constant(raw["brand"], "NVML_BRAND_", where),
        "board_part_number": str(raw["board_part_number"]),
        "vbios_version": str(raw["vbios_version"]),
        "mig_geometry": geometries[geometry_key] if geometry_key else None,
        "serial_supported": bool(raw.get("serial_supported", True)),
        "ecc_supported": bool(raw.get("ecc_supported", True)),
        "row_remapping": bool(raw.get("row_remapping", False)),
        "max_clocks_mhz": dict(raw.get("max_clocks_mhz", {})),
        "idle_clocks_mhz": dict(raw.get("idle_clocks_mhz", {})),
    }


def load_catalog():
    """{model key: resolved model} from the data files."""
    geometry_doc = _yaml_load(GEOMETRY_FILE)
    ci_profiles = geometry_doc["compute_instance_profiles"]
    geometries = {key: _resolve_geometry(key, geo, ci_profiles) for key, geo in geometry_doc["geometries"].items()}
    models = _yaml_load(MODELS_FILE)
    return {key: _resolve_model(key, raw, geometries) for key, raw in models.items()}


def derive_uuid(host, bus_id):
    """Stable 'GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx' from host name and bus id."""
    digest = hashlib.sha256(("%s/%s" % (host, bus_id)).encode()).hexdigest()
    return "GPU-%s-%s-%s-%s-%s" % (digest[0:8], digest[8:12], digest[12:16], digest[16:20], digest[20:32])


def derive_serial(host, bus_id):
    """13-digit board serial, stable per host and bus id."""
    digest = hashlib.sha256(("serial/%s/%s" % (host, bus_id)).encode()).hexdigest()
    return "1" + str(int(digest[:15], 16))[-12:].zfill(12)


def _faults(raw, where, gpu=None):
    faults = []
    for i, fault in enumerate(raw or []):
        spot = "%s[%d]" % (where, i)
        if not isinstance(fault, dict) or "error" not in fault:
            raise FixtureError("%s: a fault needs `error` (and `call`, default '*')" % spot)
        try:
            code = error_code(fault["error"])
        except ValueError as exc:
            raise FixtureError("%s: %s" % (spot, exc)) from None
        times = fault.get("times")
        if times is not None and (not isinstance(times, int) or times < 1):
            raise FixtureError("%s.times: must be a positive integer" % spot)
        faults.append({"gpu": gpu, "call": str(fault.get("call", "*")), "error": code, "times": times})
    return faults


def _bool(raw, key, default, where):
    value = raw.get(key, default)
    if not isinstance(value, bool):
        raise FixtureError("%s.%s: expected true or false, got %r" % (where, key, value))
    return value


def _resolve_gpu(raw, position, catalog, host_name):
    where = "gpus[%d]" % position
    if not isinstance(raw, dict):
        raise FixtureError("%s: expected a mapping" % where)
    model_key = raw.get("model")
    if model_key not in catalog:
        raise FixtureError("%s.model: %r unknown; known: %s" % (where, model_key, ", ".join(sorted(catalog))))
    model = catalog[model_key]
    bus_id = normalize_bus_id(raw.get("bus_id"), where + ".bus_id")
    ecc = dict(raw.get("ecc") or {})
    remapped = dict(raw.get("remapped_rows") or {})
    retired = dict(raw.get("retired_pages") or {})
    mig = dict(raw.get("mig") or {})
    if mig and model["mig_geometry"] is None:
        if mig.get("current") or mig.get("pending"):
            raise FixtureError("%s.mig: model %s has no MIG" % (where, model_key))
    nvlinks_active = int(raw.get("nvlinks_active", model["max_nvlinks"]))
    if not 0 <= nvlinks_active <= model["max_nvlinks"]:
        raise FixtureError("%s.nvlinks_active: %d outside 0..%d" % (where, nvlinks_active, model["max_nvlinks"]))
    processes = []
    for i, proc in enumerate(raw.get("processes") or []):
        if not isinstance(proc, dict) or "pid" not in proc:
            raise FixtureError("%s.processes[%d]: needs pid" % (where, i))
        processes.append(
            {
                "pid": int(proc["pid"]),
                "name": str(proc.get("name", "python3")),
                "used_memory_mib": int(proc.get("used_memory_mib", 0)),
                "type": str(proc.get("type", "compute")),
                "gpu_instance": proc.get("gpu_instance"),
                "compute_instance": proc.get("compute_instance", 0),
            }
        )
    return {
        "position": position,
        "model": model,
        "bus_id": bus_id,
        "numa_node": int(raw.get("numa_node", -1)),
        "iommu_group": raw.get("iommu_group"),
        "uuid": raw.get("uuid"),
        "serial": str(raw["serial"]) if raw.get("serial") is not None else None,
        "minor_number": raw.get("minor_number"),
        "temperature_c": int(raw.get("temperature_c", 35)),
        "power_draw_w": float(raw.get("power_draw_w", 60.0)),
        "power_limit_w": float(raw.get("power_limit_w", model["power_limit_default_w"])),
        "memory_used_mib": int(raw.get("memory_used_mib", 0)),
        "utilization": dict(raw.get("utilization") or {"gpu": 0, "memory": 0}),
        "persistence_mode": _bool(raw, "persistence_mode", True, where),
        "ecc": {
            "enabled": bool(ecc.get("enabled", model["ecc_supported"])),
            "pending": bool(ecc.get("pending", ecc.get("enabled", model["ecc_supported"]))),
            "corrected_volatile": int(ecc.get("corrected_volatile", 0)),
            "corrected_aggregate": int(ecc.get("corrected_aggregate", 0)),
            "uncorrected_volatile": int(ecc.get("uncorrected_volatile", 0)),
            "uncorrected_aggregate": int(ecc.get("uncorrected_aggregate", 0)),
        },
        "retired_pages": {
            "single_bit": int(retired.get("single_bit", 0)),
            "double_bit": int(retired.get("double_bit", 0)),
            "pending": bool(retired.get("pending", False)),
        },
        "remapped_rows": {
            "correctable": int(remapped.get("correctable", 0)),
            "uncorrectable": int(remapped.get("uncorrectable", 0)),
            "pending": bool(remapped.get("pending", False)),
            "failure": bool(remapped.get("failure", False)),
        },
        "nvlinks_active": nvlinks_active,
        "nvlinks_down": [int(x) for x in raw.get("nvlinks_down") or []],
        "mig": {
            "current": bool(mig.get("current", False)),
            "pending": bool(mig.get("pending", mig.get("current", False))),
        },
        "mig_devices": list(raw.get("mig_devices") or []),
        "processes": processes,
        "other_clients": [str(x) for x in raw.get("other_clients") or []],
        "faults": _faults(raw.get("faults"), where + ".faults"),
    }


def resolve(doc, catalog, source="fixture"):
    """Validate a fixture document and return its resolved form."""
    if not isinstance(doc, dict):
        raise FixtureError("%s: expected a mapping at the top" % source)
    allowed = {"name", "description", "host", "driver", "nvswitches", "pci_devices", "gpus", "faults"}
    unknown = sorted(set(doc) - allowed)
    if unknown:
        raise FixtureError("%s: unknown keys %s; allowed: %s" % (source, unknown, ", ".join(sorted(allowed))))
    name = str(doc.get("name") or os.path.splitext(os.path.basename(source))[0])
    host = dict(doc.get("host") or {})
    secure_boot = host.get("secure_boot", False)
    if secure_boot not in (True, False, None):
        raise FixtureError("host.secure_boot: expected true, false or null")
    driver = dict(doc.get("driver") or {"state": "none"})
    state = driver.get("state", "loaded")
    if state not in DRIVER_STATES:
        raise FixtureError("driver.state: %r; allowed: %s" % (state, ", ".join(DRIVER_STATES)))
    kernel_module = driver.get("kernel_module", "open")
    if kernel_module not in KERNEL_MODULES:
        raise FixtureError("driver.kernel_module: %r; allowed: %s" % (kernel_module, ", ".join(KERNEL_MODULES)))
    version = str(driver.get("version", "550.127.05")) if state != "none" else None
    host_name = str(host.get("name") or name)
    gpus = [_resolve_gpu(raw, i, catalog, host_name) for i, raw in enumerate(doc.get("gpus") or [])]
    # NVML enumerates GPUs in PCI bus order.
    gpus.sort(key=lambda gpu: gpu["bus_id"])
    seen = set()
    for index, gpu in enumerate(gpus):
        if gpu["bus_id"] in seen:
            raise FixtureError("gpus: bus id %s appears twice" % gpu["bus_id"])
        seen.add(gpu["bus_id"])
        gpu["index"] = index
        for fault in gpu["faults"]:
            fault["gpu"] = index
    nvswitches = []
    for i, raw in enumerate(doc.get("nvswitches") or []):
        entry = dict(NVSWITCH_DEFAULTS, **raw)
        entry["bus_id"] = normalize_bus_id(entry.get("bus_id"), "nvswitches[%d].bus_id" % i)
        nvswitches.append(entry)
    pci_devices = []
    for i, raw in enumerate(doc.get("pci_devices") or []):
        entry = dict(raw)
        entry["bus_id"] = normalize_bus_id(entry.get("bus_id"), "pci_devices[%d].bus_id" % i)
        pci_devices.append(entry)
    return {
        "format": FORMAT,
        "name": name,
        "description": str(doc.get("description", "")),
        "host": {
            "name": host_name,
            "kernel": str(host.get("kernel", "6.1.0-28-amd64")),
            "secure_boot": secure_boot,
        },
        "driver": {
            "state": state,
            "version": version,
            "kernel_module": kernel_module,
            "cuda_driver_version": int(driver.get("cuda_driver_version", 12040)),
            "nouveau_loaded": bool(driver.get("nouveau_loaded", False)),
            "build_date": str(driver.get("build_date", "Tue Oct  1 00:53:58 UTC 2024")),
            # RmProfilingAdminOnly in /proc/driver/nvidia/params (the driver's default is 1).
            "profiling_admin_only": bool(driver.get("profiling_admin_only", True)),
        },
        "nvswitches": nvswitches,
        "pci_devices": pci_devices,
        "faults": _faults(doc.get("faults"), "faults"),
        "gpus": gpus,
    }


def _signature(path):
    parts = []
    for name in (path, MODELS_FILE, GEOMETRY_FILE):
        st = os.stat(name)
        parts.append([os.path.abspath(name), st.st_mtime_ns, st.st_size])
    return [FORMAT, parts]


_memo = {}


def load(path, cache_path=None):
    """Resolved fixture for `path`, memoized in-process and optionally cached as JSON."""
    signature = _signature(path)
    key = os.path.abspath(path)
    hit = _memo.get(key)
    if hit is not None and hit[0] == signature:
        return hit[1]
    resolved = None
    if cache_path:
        try:
            with open(cache_path) as handle:
                cached = json.load(handle)
            if cached.get("signature") == signature:
                resolved = cached["fixture"]
        except (OSError, ValueError, KeyError, AttributeError):
            resolved = None
    if resolved is None:
        doc = _yaml_load(path)
        resolved = resolve(doc, load_catalog(), source=path)
        if cache_path:
            _write_json_atomic(cache_path, {"signature": signature, "fixture": resolved})
    resolved["path"] = key
    _memo[key] = (signature, resolved)
    return resolved


def _write_json_atomic(path, data):
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, ".%s.%d.tmp" % (os.path.basename(path), os.getpid()))
    try:
        with open(tmp, "w") as handle:
            json.dump(data, handle)
        os.replace(tmp, path)
    except OSError:
        # A cache we cannot write is only a missed speed-up.
        try:
            os.unlink(tmp)
        except OSError:
            pass
