"""MIG placement rules for one GPU, as plain functions over its state.

GPU instances (GIs) occupy `size` consecutive memory slices from an allowed start slot.
Without an explicit placement the driver picks the highest free allowed start slot, which is
why creation order matters (19,19,14,9 fails where 9,19,14,19 fits on an 8-slice GPU).
"""

from gpuops_sim import constants as c
from gpuops_sim.errors import NVMLError


def gi_profile_by_index(geometry, index):
    for profile in geometry["gpu_instance_profiles"]:
        if profile["index"] == index:
            return profile
    return None


def gi_profile_by_id(geometry, profile_id):
    for profile in geometry["gpu_instance_profiles"]:
        if profile["id"] == profile_id:
            return profile
    return None


def gi_profile_by_name(geometry, name):
    for profile in geometry["gpu_instance_profiles"]:
        if profile["name"] == name:
            return profile
    return None


def gi_id_for(geometry, start, size):
    """GI id the driver assigns: one id per (level, position) in the slice tree (0 = whole GPU,
    1-2 = halves, 3-6 = quarters, 7-14 = eighths on 8 slices)."""
    return geometry["memory_slices"] // size - 1 + start // size


def occupied(gpu_instances):
    slices = set()
    for gi in gpu_instances:
        slices.update(range(gi["start"], gi["start"] + gi["size"]))
    return slices


def placement_error(geometry, gpu_instances, profile, start, driver_major=999):
    """None if a GI of `profile` fits at `start` next to `gpu_instances`, else an NVML code."""
    if start not in profile["starts"]:
        return c.NVML_ERROR_INVALID_ARGUMENT
    if start + profile["size"] > geometry["memory_slices"]:
        return c.NVML_ERROR_INVALID_ARGUMENT
    same = [gi for gi in gpu_instances if gi["profile_id"] == profile["id"]]
    if len(same) >= profile["max"]:
        return c.NVML_ERROR_INSUFFICIENT_RESOURCES
    if profile["media_extensions"]:
        for gi in gpu_instances:
            other = gi_profile_by_id(geometry, gi["profile_id"])
            if other is not None and other["media_extensions"]:
                return c.NVML_ERROR_INSUFFICIENT_RESOURCES
    wanted = set(range(start, start + profile["size"]))
    if wanted & occupied(gpu_instances):
        return c.NVML_ERROR_INSUFFICIENT_RESOURCES
    if driver_major < 510 and _mixes_4g_and_3g(geometry, gpu_instances, profile):
        return c.NVML_ERROR_INSUFFICIENT_RESOURCES
    return None


def _mixes_4g_and_3g(geometry, gpu_instances, profile):
    slices = {gi_profile_by_id(geometry, gi["profile_id"])["slices"] for gi in gpu_instances}
    return {profile["slices"]} | slices >= {3, 4}


def choose_start(geometry, gpu_instances, profile, driver_major=999):
    """Start slot the driver would pick, or raise NVMLError(INSUFFICIENT_RESOURCES)."""
    for start in sorted(profile["starts"], reverse=True):
        if placement_error(geometry, gpu_instances, profile, start, driver_major) is None:
            return start
    raise NVMLError(c.NVML_ERROR_INSUFFICIENT_RESOURCES)


def remaining_capacity(geometry, gpu_instances, profile, driver_major=999):
    """How many more GIs of `profile` the driver could create, one after another."""
    trial = list(gpu_instances)
    count = 0
    while True:
        try:
            start = choose_start(geometry, trial, profile, driver_major)
        except NVMLError:
            return count
        trial.append({"profile_id": profile["id"], "start": start, "size": profile["size"]})
        count += 1


def ci_profiles_for(geometry, gi_profile):
    """Compute instance profiles offered inside a GI of `gi_profile`."""
    profiles = []
    for ci in geometry["compute_instance_profiles"]:
        if ci["slices"] > gi_profile["slices"]:
            continue
        full = ci["slices"] == gi_profile["slices"]
        starts = [s for s in ci["starts"] if s + ci["slices"] <= gi_profile["slices"]]
        per_slice = gi_profile["sms"] // gi_profile["slices"]
        profiles.append(
            {
                "index": ci["index"],
                "id": ci["id"],
                "slices": ci["slices"],
                "starts": starts,
                "max": len(starts),
                "name": gi_profile["name"] if full else "%dc.%s" % (ci["slices"], gi_profile["name"]),
                "sms": gi_profile["sms"] if full else per_slice * ci["slices"],
            }
        )
    return profiles


def ci_profile_by_id(geometry, gi_profile, profile_id):
    for ci in ci_profiles_for(geometry, gi_profile):
        if ci["id"] == profile_id:
            return ci
    return None


def ci_placement_error(gi_profile, compute_instances, ci_profile, start):
    if start not in ci_profile["starts"]:
        return c.NVML_ERROR_INVALID_ARGUMENT
    same = [ci for ci in compute_instances if ci["profile_id"] == ci_profile["id"]]
    if len(same) >= ci_profile["max"]:
        return c.NVML_ERROR_INSUFFICIENT_RESOURCES
    used = occupied(compute_instances)
    if set(range(start, start + ci_profile["slices"])) & used:
        return c.NVML_ERROR_INSUFFICIENT_RESOURCES
    return None


def choose_ci_start(gi_profile, compute_instances, ci_profile):
    for start in sorted(ci_profile["starts"]):
        if ci_placement_error(gi_profile, compute_instances, ci_profile, start) is None:
            return start
    raise NVMLError(c.NVML_ERROR_INSUFFICIENT_RESOURCES)


def next_ci_id(compute_instances):
    taken = {ci["id"] for ci in compute_instances}
    ci_id = 0
    while ci_id in taken:
        ci_id += 1
    return ci_id
