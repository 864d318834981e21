"""A stand-in for `nvidia-mig-parted apply`, driving the simulated NVML as mig-parted drives
libnvidia-ml. The sandbox's simulated mig-manager (sandbox/kube) runs it with a host's
environment (GPUOPS_NVML_SIM_FIXTURE / GPUOPS_NVML_SIM_STATE):

    python -m gpuops_sim.mig_parted apply  -f config.yaml -c all-1g.10gb
    python -m gpuops_sim.mig_parted assert -f config.yaml -c all-1g.10gb

The config is mig-parted's v1 format: `version: v1`, `mig-configs: {NAME: [{devices: all |
[index...], device-filter: "0x233010DE" | [...], mig-enabled: bool, mig-devices: {profile:
count}}]}`. As mig-parted does, a GPU whose layout differs from the wanted one loses ALL its
compute and GPU instances, which are then created afresh (processes on them make that fail
with IN_USE); GPUs already as wanted are left alone. Exit 0 with a JSON summary on stdout;
exit 1 with the reason on stderr.
"""

import argparse
import ctypes
import json
import sys

import yaml


class MigPartedError(Exception):
    pass


def _nv():
    import pynvml  # the simulator's drop-in when sandbox/python is on the path

    return pynvml


def _name(raw):
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    return text[4:] if text.startswith("MIG ") else text


def _gi_profiles(nv, handle):
    """{profile name: (GI profile index, GI profile id)} this GPU offers."""
    found = {}
    for index in range(nv.NVML_GPU_INSTANCE_PROFILE_COUNT):
        try:
            info = nv.nvmlDeviceGetGpuInstanceProfileInfo(handle, index, 2)
        except nv.NVMLError_NotSupported:
            continue
        except nv.NVMLError_InvalidArgument:
            continue
        found[_name(info.name)] = (index, info.id)
    return found


def _ci_profiles(nv, gi):
    """{profile name: CI profile id} a GPU instance offers."""
    found = {}
    for index in range(nv.NVML_COMPUTE_INSTANCE_PROFILE_COUNT):
        try:
            info = nv.nvmlGpuInstanceGetComputeInstanceProfileInfo(
                gi, index, nv.NVML_COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED, 2
            )
        except (nv.NVMLError_NotSupported, nv.NVMLError_InvalidArgument):
            continue
        found[_name(info.name)] = info.id
    return found


def _gpu_instances(nv, handle, gi_profiles):
    result = []
    for _unused_index, profile_id in gi_profiles.values():
        count = ctypes.c_uint()
        array = (nv.c_nvmlGpuInstance_t * 8)()
        nv.nvmlDeviceGetGpuInstances(handle, profile_id, array, ctypes.byref(count))
        result.extend(array[: count.value])
    return result


def _compute_instances(nv, gi):
    result = []
    for name, profile_id in _ci_profiles(nv, gi).items():
        count = ctypes.c_uint()
        array = (nv.c_nvmlComputeInstance_t * 8)()
        nv.nvmlGpuInstanceGetComputeInstances(gi, profile_id, array, ctypes.byref(count))
        result.extend((name, ci) for ci in array[: count.value])
    return result


def current_devices(nv, handle):
    """{MIG device profile name: count} on one GPU (MIG enabled)."""
    counts = {}
    for gi in _gpu_instances(nv, handle, _gi_profiles(nv, handle)):
        for name, _unused_ci in _compute_instances(nv, gi):
            counts[name] = counts.get(name, 0) + 1
    return counts


def _matches(entry, index, pci_device_id):
    devices = entry.get("devices", "all")
    if devices != "all":
        if not isinstance(devices, list) or index not in [int(d) for d in devices]:
            return False
    filters = entry.get("device-filter")
    if filters is None:
        return True
    if not isinstance(filters, list):
        filters = [filters]
    return any(int(str(f), 16) == pci_device_id for f in filters)


def wanted_layout(config, name, nv):
    """GPU index -> (mig enabled, {profile: count}) for the config `name`; GPUs no entry names
    are absent."""
    if not isinstance(config, dict) or config.get("version") != "v1":
        raise MigPartedError("config: expected `version: v1`")
    configs = config.get("mig-configs") or {}
    if name not in configs:
        known = ", ".join(sorted(configs)) or "none"
        raise MigPartedError(f"selected mig-config not present: {name} (known: {known})")
    layout = {}
    for index in range(nv.nvmlDeviceGetCount()):
        handle = nv.nvmlDeviceGetHandleByIndex(index)
        pci = nv.nvmlDeviceGetPciInfo(handle)
        for entry in configs[name] or []:
            if _matches(entry, index, int(pci.pciDeviceId)):
                devices = entry.get("mig-devices") or {}
                layout[index] = (bool(entry.get("mig-enabled")), {k: int(v) for k, v in devices.items()})
    return layout


def _destroy_all(nv, handle):
    for gi in _gpu_instances(nv, handle, _gi_profiles(nv, handle)):
        for _unused_name, ci in _compute_instances(nv, gi):
            nv.nvmlComputeInstanceDestroy(ci)
        nv.nvmlGpuInstanceDestroy(gi)


def _create(nv, handle, index, devices):
    gi_profiles = _gi_profiles(nv, handle)

    def parse(profile):
        # "1g.10gb" (CI spans the GI) or "1c.2g.20gb" (a 1-slice CI in a 2g.20gb GI)
        parts = profile.split(".", 1)
        if parts[0].endswith("c") and "g" not in parts[0]:
            return parts[1], profile
        return profile, profile

    plan = []
    for profile, count in devices.items():
        gi_name, ci_name = parse(profile)
        if gi_name not in gi_profiles:
            raise MigPartedError(
                f"GPU {index}: MIG profile {profile} is not valid here (valid: {', '.join(sorted(gi_profiles))})"
            )
        plan.extend([(gi_name, ci_name)] * count)
    # Bigger instances first, as they have the fewest placements.
    plan.sort(key=lambda item: -int(item[0].split("g", 1)[0]))
    for gi_name, ci_name in plan:
        gi = nv.nvmlDeviceCreateGpuInstance(handle, gi_profiles[gi_name][1])
        ci_profiles = _ci_profiles(nv, gi)
        if ci_name not in ci_profiles:
            raise MigPartedError(f"GPU {index}: no compute instance profile {ci_name} in {gi_name}")
        nv.nvmlGpuInstanceCreateComputeInstance(gi, ci_profiles[ci_name])


def run(config, name, apply_changes=True):
    """Apply (or, with apply_changes False, check) config `name`; returns a summary."""
    nv = _nv()
    nv.nvmlInit()
    try:
        layout = wanted_layout(config, name, nv)
        changed, differing = [], []
        for index, (enabled, devices) in sorted(layout.items()):
            handle = nv.nvmlDeviceGetHandleByIndex(index)
            try:
                current_mode, _unused_pending = nv.nvmlDeviceGetMigMode(handle)
            except nv.NVMLError_NotSupported:
                if enabled:
                    raise MigPartedError(f"GPU {index}: MIG is not supported on this GPU") from None
                continue
            same = bool(current_mode) == enabled and (
                not enabled or current_devices(nv, handle) == {k: v for k, v in devices.items() if v}
            )
            if same:
                continue
            differing.append(index)
            if not apply_changes:
                continue
            if current_mode:
                _destroy_all(nv, handle)
            if bool(current_mode) != enabled:
                status = nv.nvmlDeviceSetMigMode(handle, 1 if enabled else 0)
                if status != nv.NVML_SUCCESS:
                    raise MigPartedError(
                        f"GPU {index}: MIG mode change needs a GPU reset, which other clients block (reboot required)"
                    )
            if enabled:
                _create(nv, handle, index, devices)
            changed.append(index)
        return {"config": name, "differing": differing, "changed": changed}
    finally:
        nv.nvmlShutdown()


def main(argv=None):
    parser = argparse.ArgumentParser(prog="gpuops_sim.mig_parted", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["apply", "assert"])
    parser.add_argument("-f", "--config-file", required=True)
    parser.add_argument("-c", "--selected-config", required=True)
    args = parser.parse_args(argv)
    nv = None
    try:
        with open(args.config_file) as handle:
            config = yaml.safe_load(handle)
        nv = _nv()
        summary = run(config, args.selected_config, apply_changes=args.command == "apply")
    except MigPartedError as exc:
        sys.stderr.write(f"{exc}\n")
        return 1
    except (OSError, yaml.YAMLError) as exc:
        sys.stderr.write(f"config: {exc}\n")
        return 1
    except Exception as exc:  # NVML errors: report them as mig-parted does, by message
        if nv is not None and isinstance(exc, nv.NVMLError):
            sys.stderr.write(f"NVML error: {exc}\n")
            return 1
        raise
    json.dump(summary, sys.stdout, sort_keys=True)
    sys.stdout.write("\n")
    if args.command == "assert" and summary["differing"]:
        sys.stderr.write(f"GPUs {summary['differing']} differ from {args.selected_config}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
