"""What a node's simulated GPUs look like to GFD and the device plugin, read straight from
the host's NVML simulator fixture and state file.

Reading the files (not calling the simulated NVML) matters: injected faults that count down
(`gpuops_sim inject --times K`) are meant for the code under test, and a controller polling
NVML would use them up. Persistent faults are honoured: a GPU with an untimed GPU_IS_LOST
fault is not healthy (the device plugin stops advertising it), an untimed nvmlInit fault or a
driver that is not loaded hides every GPU.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
from typing import Any

_SIM_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "python")
if os.path.isdir(_SIM_PATH) and os.path.abspath(_SIM_PATH) not in sys.path:
    sys.path.append(os.path.abspath(_SIM_PATH))

GPU_IS_LOST = 15
_cache: dict[tuple[str, str], tuple[Any, dict[str, Any]]] = {}
_lock = threading.Lock()


def _signature(fixture_path: str, state_path: str | None):
    parts = []
    for path in (fixture_path, state_path):
        try:
            st = os.stat(path) if path else None
        except OSError:
            st = None
        parts.append((st.st_mtime_ns, st.st_size, st.st_ino) if st else None)
    return tuple(parts)


def _state(fixture: dict[str, Any], data: Any) -> dict[str, Any]:
    from gpuops_sim import state as sim_state

    if (
        not isinstance(data, dict)
        or data.get("fixture_name") != fixture["name"]
        or len(data.get("gpus", [])) != len(fixture["gpus"])
    ):
        data = sim_state.initial_state(fixture)
    return data


def mig_uuid(gpu_uuid: str, gi_uid: int, ci_uid: int) -> str:
    """A MIG device's UUID as the simulated NVML derives it (nvmlDeviceGetUUID)."""
    digest = hashlib.sha256(f"{gpu_uuid}/{int(gi_uid)}/{int(ci_uid)}".encode()).hexdigest()
    parts = (digest[0:8], digest[8:12], digest[12:16], digest[16:20], digest[20:32])
    return "MIG-" + "-".join(parts)


def _persistent(fault: dict[str, Any]) -> bool:
    return fault.get("times") is None


def _read_json(path: str | None):
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def read_host(fixture_path: str, state_path: str | None = None) -> dict[str, Any]:
    """{driver, nvml_ok, gpus: [{index, uuid, name, product, memory_mib, mig_capable,
    mig_enabled, healthy, mig_devices: [{profile, gi_profile, memory_mib, uuid}]}], signature}
    for one host, cached until a file changes. UUIDs are the ones the simulated NVML reports.

    The fixture is the one the state file was made from when that file names one that exists
    (a host whose driver changed has its own fixture copy), else `fixture_path`."""
    raw_state = _read_json(state_path)
    recorded = raw_state.get("fixture_path") if isinstance(raw_state, dict) else None
    if recorded and os.path.isfile(recorded):
        fixture_path = recorded
    key = (fixture_path, state_path or "")
    signature = _signature(fixture_path, state_path)
    with _lock:
        hit = _cache.get(key)
        if hit is not None and hit[0] == signature:
            return hit[1]
    from gpuops_sim import fixture as sim_fixture
    from gpuops_sim import mig as sim_mig

    fixture = sim_fixture.load(fixture_path)
    data = _state(fixture, raw_state)
    faults = list(fixture["faults"]) + list(data.get("faults") or [])
    nvml_ok = fixture["driver"]["state"] == "loaded" and not any(
        _persistent(f)
        and f.get("gpu") is None
        and f.get("call") in ("nvmlInit", "nvmlInitWithFlags")
        for f in faults
    )
    identity = data.get("host") or fixture["host"]["name"]
    gpus = []
    for gpu in fixture["gpus"]:
        index = gpu["index"]
        uuid = gpu.get("uuid") or sim_fixture.derive_uuid(identity, gpu["bus_id"])
        gpu_faults = [f for f in faults if f.get("gpu") in (None, index)] + list(gpu["faults"])
        lost = any(
            _persistent(f) and f["error"] == GPU_IS_LOST and f.get("call") not in ("nvmlInit",)
            for f in gpu_faults
        )
        model = gpu["model"]
        geometry = model["mig_geometry"]
        entry = data["gpus"][index]
        mig_devices = []
        if geometry is not None and entry["mig"].get("current"):
            for gi in entry.get("gpu_instances") or []:
                gi_profile = sim_mig.gi_profile_by_id(geometry, gi["profile_id"])
                for ci in gi.get("compute_instances") or []:
                    ci_profile = sim_mig.ci_profile_by_id(geometry, gi_profile, ci["profile_id"])
                    mig_devices.append(
                        {
                            "profile": ci_profile["name"],
                            "gi_profile": gi_profile["name"],
                            "memory_mib": gi_profile["memory_mib"],
                            "uuid": mig_uuid(uuid, gi["uid"], ci["uid"]),
                        }
                    )
        gpus.append(
            {
                "index": index,
                "uuid": uuid,
                "name": model["nvml_name"],
                "product": model["nvml_name"].replace(" ", "-"),
                "memory_mib": model["memory_total_mib"],
                "architecture": model["architecture"],
                "compute_capability": list(model["cuda_compute_capability"]),
                "mig_capable": geometry is not None,
                "mig_enabled": bool(geometry is not None and entry["mig"].get("current")),
                "healthy": not lost,
                "mig_devices": mig_devices,
            }
        )
    result = {
        "host": fixture["host"]["name"],
        "fixture": fixture_path,
        "driver": fixture["driver"]["state"],
        "driver_version": fixture["driver"]["version"],
        "cuda_driver_version": fixture["driver"]["cuda_driver_version"],
        "nvml_ok": nvml_ok,
        "gpus": gpus,
        "signature": signature,
    }
    with _lock:
        _cache[key] = (signature, result)
    return result
