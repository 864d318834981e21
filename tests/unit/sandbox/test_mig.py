"""MIG semantics: placements, creation order, capacity, IN_USE, mode changes.

Expected values come from the reference (mig-profiles.md): profile ids, start slots, sizes,
max counts, and the creation-order example; none are read back from the simulator's data.
"""

import ctypes

import pytest
from conftest import run_cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

# Reference geometry of 8-slice GPUs: GI profile id -> (allowed starts, size, max count, +me).
REFERENCE = {
    19: ([0, 1, 2, 3, 4, 5, 6], 1, 7, False),
    20: ([0, 1, 2, 3, 4, 5, 6], 1, 1, True),
    15: ([0, 2, 4, 6], 2, 4, False),
    14: ([0, 2, 4], 2, 3, False),
    9: ([0, 4], 4, 2, False),
    5: ([0], 4, 1, False),
    0: ([0], 8, 1, False),
}


def _mig_gpu(nv, index=0):
    handle = nv.nvmlDeviceGetHandleByIndex(index)
    if nv.nvmlDeviceGetMigMode(handle)[0] != 1:
        assert nv.nvmlDeviceSetMigMode(handle, nv.NVML_DEVICE_MIG_ENABLE) == nv.NVML_SUCCESS
    return handle


def _placements(nv, handle, profile_id):
    count = ctypes.c_uint()
    nv.nvmlDeviceGetGpuInstancePossiblePlacements(handle, profile_id, None, ctypes.byref(count))
    array = (nv.c_nvmlGpuInstancePlacement_t * count.value)()
    nv.nvmlDeviceGetGpuInstancePossiblePlacements(handle, profile_id, array, ctypes.byref(count))
    return [(p.start, p.size) for p in array[: count.value]]


def _all_gis(nv, handle):
    result = []
    for profile_id in REFERENCE:
        count = ctypes.c_uint()
        array = (nv.c_nvmlGpuInstance_t * 8)()
        nv.nvmlDeviceGetGpuInstances(handle, profile_id, array, ctypes.byref(count))
        for gi in array[: count.value]:
            info = nv.nvmlGpuInstanceGetInfo(gi)
            result.append((info.profileId, info.placement.start, info.placement.size, info.id))
    return result


def _addr(handle):
    return ctypes.cast(handle, ctypes.c_void_p).value


@pytest.mark.parametrize("host", ["a100-sxm4-40gb-x8", "h100-80gb-hbm3-x8"])
def test_creation_order_matters_as_the_driver_does(use_host, host):
    nv = use_host(host)
    nv.nvmlInit()
    bad, good = _mig_gpu(nv, 0), _mig_gpu(nv, 1)
    for profile_id in (19, 19, 14):
        nv.nvmlDeviceCreateGpuInstance(bad, profile_id)
    with pytest.raises(nv.NVMLError_InsufficientResources):
        nv.nvmlDeviceCreateGpuInstance(bad, 9)
    for profile_id in (9, 19, 14, 19):
        nv.nvmlDeviceCreateGpuInstance(good, profile_id)
    assert sorted(p for p, *_unused in _all_gis(nv, good)) == [9, 14, 19, 19]


def test_profile_ids_and_names_come_from_each_model(use_host):
    nv = use_host("h100-mig-mixed")
    nv.nvmlInit()
    h100 = nv.nvmlDeviceGetHandleByIndex(2)
    info = nv.nvmlDeviceGetGpuInstanceProfileInfo(h100, nv.NVML_GPU_INSTANCE_PROFILE_1_SLICE)
    assert (info.id, info.name, info.memorySizeMB, info.multiprocessorCount) == (
        19,
        b"MIG 1g.10gb",
        9984,
        16,
    )
    rev2 = nv.nvmlDeviceGetGpuInstanceProfileInfo(h100, nv.NVML_GPU_INSTANCE_PROFILE_1_SLICE_REV2)
    assert (rev2.id, rev2.name) == (15, b"MIG 1g.20gb")
    nv.nvmlShutdown()

    nv = use_host("a100-sxm4-40gb-x8")
    nv.nvmlInit()
    a100 = nv.nvmlDeviceGetHandleByIndex(0)
    info = nv.nvmlDeviceGetGpuInstanceProfileInfo(a100, nv.NVML_GPU_INSTANCE_PROFILE_1_SLICE)
    assert (info.name, info.memorySizeMB, info.instanceCount, info.sliceCount) == (
        b"MIG 1g.5gb",
        4864,
        7,
        1,
    )
    full = nv.nvmlDeviceGetGpuInstanceProfileInfo(a100, nv.NVML_GPU_INSTANCE_PROFILE_7_SLICE, version=1)
    assert (full.id, full.sliceCount, full.multiprocessorCount) == (0, 7, 98)
    assert not hasattr(full, "name")
    with pytest.raises(nv.NVMLError_NotSupported):
        nv.nvmlDeviceGetGpuInstanceProfileInfo(a100, nv.NVML_GPU_INSTANCE_PROFILE_6_SLICE)


def test_no_mig_on_l40s(use_host):
    nv = use_host("l40s-x4")
    nv.nvmlInit()
    handle = nv.nvmlDeviceGetHandleByIndex(0)
    with pytest.raises(nv.NVMLError_NotSupported):
        nv.nvmlDeviceGetMigMode(handle)
    with pytest.raises(nv.NVMLError_NotSupported):
        nv.nvmlDeviceSetMigMode(handle, nv.NVML_DEVICE_MIG_ENABLE)
    with pytest.raises(nv.NVMLError_NotSupported):
        nv.nvmlDeviceGetGpuInstanceProfileInfo(handle, nv.NVML_GPU_INSTANCE_PROFILE_1_SLICE)
    assert nv.nvmlDeviceGetMaxMigDeviceCount(handle) == 0


def test_possible_placements_match_the_reference(sim):
    handle = _mig_gpu(sim)
    for profile_id, (starts, size, _max, _me) in REFERENCE.items():
        assert _placements(sim, handle, profile_id) == [(s, size) for s in starts]


def test_placement_is_checked(sim):
    handle = _mig_gpu(sim)
    placement = sim.c_nvmlGpuInstancePlacement_t(1, 4)
    with pytest.raises(sim.NVMLError_InvalidArgument):  # 3g may start at 0 or 4 only
        sim.nvmlDeviceCreateGpuInstanceWithPlacement(handle, 9, placement)
    gi = sim.nvmlDeviceCreateGpuInstanceWithPlacement(handle, 9, sim.c_nvmlGpuInstancePlacement_t(4, 4))
    assert sim.nvmlGpuInstanceGetInfo(gi).placement.start == 4
    with pytest.raises(sim.NVMLError_InsufficientResources):  # overlaps slices 4-7
        sim.nvmlDeviceCreateGpuInstanceWithPlacement(handle, 14, sim.c_nvmlGpuInstancePlacement_t(4, 2))
    sim.nvmlDeviceCreateGpuInstanceWithPlacement(handle, 14, sim.c_nvmlGpuInstancePlacement_t(2, 2))


def test_driver_choice_and_gi_ids(sim):
    handle = _mig_gpu(sim)
    first = sim.nvmlGpuInstanceGetInfo(sim.nvmlDeviceCreateGpuInstance(handle, 19))
    # nvidia-smi shows the first 1g instance as GI 13 at placement 6:1
    assert (first.id, first.placement.start, first.placement.size) == (13, 6, 1)
    half = sim.nvmlGpuInstanceGetInfo(sim.nvmlDeviceCreateGpuInstance(handle, 9))
    assert (half.id, half.placement.start) == (1, 0)  # 4-7 taken by slot 6, so the low half
    assert _addr(half.device) == _addr(handle)


def test_max_count_and_one_media_extension(sim):
    handle = _mig_gpu(sim)
    for _unused in range(4):
        sim.nvmlDeviceCreateGpuInstance(handle, 15)
    with pytest.raises(sim.NVMLError_InsufficientResources):
        sim.nvmlDeviceCreateGpuInstance(handle, 15)
    other = _mig_gpu(sim, 1)
    sim.nvmlDeviceCreateGpuInstance(other, 20)
    assert sim.nvmlDeviceGetGpuInstanceRemainingCapacity(other, 20) == 0
    with pytest.raises(sim.NVMLError_InsufficientResources):
        sim.nvmlDeviceCreateGpuInstance(other, 20)
    sim.nvmlDeviceCreateGpuInstance(other, 19)  # a plain 1g still fits


def test_remaining_capacity(sim):
    handle = _mig_gpu(sim)
    assert sim.nvmlDeviceGetGpuInstanceRemainingCapacity(handle, 19) == 7
    assert sim.nvmlDeviceGetGpuInstanceRemainingCapacity(handle, 9) == 2
    assert sim.nvmlDeviceGetGpuInstanceRemainingCapacity(handle, 0) == 1
    sim.nvmlDeviceCreateGpuInstanceWithPlacement(handle, 9, sim.c_nvmlGpuInstancePlacement_t(4, 4))
    assert sim.nvmlDeviceGetGpuInstanceRemainingCapacity(handle, 19) == 4
    assert sim.nvmlDeviceGetGpuInstanceRemainingCapacity(handle, 9) == 1
    assert sim.nvmlDeviceGetGpuInstanceRemainingCapacity(handle, 0) == 0


def test_instances_need_mig_mode(sim):
    handle = sim.nvmlDeviceGetHandleByIndex(0)
    assert sim.nvmlDeviceGetMigMode(handle) == [0, 0]
    with pytest.raises(sim.NVMLError_NotSupported):
        sim.nvmlDeviceCreateGpuInstance(handle, 19)


def test_compute_instances_and_mig_devices(sim):
    handle = _mig_gpu(sim)
    assert sim.nvmlDeviceGetMaxMigDeviceCount(handle) == 7
    gi = sim.nvmlDeviceCreateGpuInstance(handle, 9)
    ci_info = sim.nvmlGpuInstanceGetComputeInstanceProfileInfo(
        gi,
        sim.NVML_COMPUTE_INSTANCE_PROFILE_3_SLICE,
        sim.NVML_COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED,
    )
    assert ci_info.name == b"MIG 3g.20gb" and ci_info.multiprocessorCount == 42
    with pytest.raises(sim.NVMLError_NotSupported):  # a 3-slice GI has no 4-slice CI
        sim.nvmlGpuInstanceGetComputeInstanceProfileInfo(
            gi,
            sim.NVML_COMPUTE_INSTANCE_PROFILE_4_SLICE,
            sim.NVML_COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED,
        )
    ci = sim.nvmlGpuInstanceCreateComputeInstance(gi, ci_info.id)
    info = sim.nvmlComputeInstanceGetInfo(ci)
    assert (info.id, info.profileId, info.placement.start, info.placement.size) == (
        0,
        ci_info.id,
        0,
        3,
    )
    assert _addr(info.gpuInstance) == _addr(gi)

    mig = sim.nvmlDeviceGetMigDeviceHandleByIndex(handle, 0)
    assert sim.nvmlDeviceIsMigDeviceHandle(mig).value == 1
    assert sim.nvmlDeviceIsMigDeviceHandle(handle).value == 0
    assert sim.nvmlDeviceGetUUID(mig).startswith("MIG-")
    assert sim.nvmlDeviceGetName(mig) == "NVIDIA A100-SXM4-40GB MIG 3g.20gb"
    assert sim.nvmlDeviceGetMemoryInfo(mig).total == 19968 * 1024 * 1024
    assert sim.nvmlDeviceGetGpuInstanceId(mig) == sim.nvmlGpuInstanceGetInfo(gi).id
    assert sim.nvmlDeviceGetComputeInstanceId(mig) == 0
    assert _addr(sim.nvmlDeviceGetDeviceHandleFromMigDeviceHandle(mig)) == _addr(handle)
    assert _addr(sim.nvmlDeviceGetHandleByUUID(sim.nvmlDeviceGetUUID(mig))) == _addr(mig)
    with pytest.raises(sim.NVMLError_NotFound):
        sim.nvmlDeviceGetMigDeviceHandleByIndex(handle, 1)
    with pytest.raises(sim.NVMLError_InvalidArgument):
        sim.nvmlDeviceGetMigDeviceHandleByIndex(handle, 7)
    with pytest.raises(sim.NVMLError_NotSupported):  # physical-GPU-only query on a MIG handle
        sim.nvmlDeviceGetTemperature(mig, sim.NVML_TEMPERATURE_GPU)

    count = ctypes.c_uint()
    cis = (sim.c_nvmlComputeInstance_t * 4)()
    sim.nvmlGpuInstanceGetComputeInstances(gi, ci_info.id, cis, ctypes.byref(count))
    assert count.value == 1 and _addr(cis[0]) == _addr(ci)


def test_destroy_order_and_stale_handles(sim):
    handle = _mig_gpu(sim)
    gi = sim.nvmlDeviceCreateGpuInstance(handle, 14)
    ci = sim.nvmlGpuInstanceCreateComputeInstance(gi, 1)  # 2-slice CI in a 2g GI
    with pytest.raises(sim.NVMLError_InUse):
        sim.nvmlGpuInstanceDestroy(gi)
    sim.nvmlComputeInstanceDestroy(ci)
    sim.nvmlGpuInstanceDestroy(gi)
    with pytest.raises(sim.NVMLError_InvalidArgument):
        sim.nvmlGpuInstanceGetInfo(gi)
    assert _all_gis(sim, handle) == []


def test_in_use_with_processes(use_host):
    nv = use_host("h100-mig-mixed")
    nv.nvmlInit()
    handle = nv.nvmlDeviceGetHandleByIndex(0)
    busy = nv.nvmlDeviceGetGpuInstanceById(handle, 2)  # the 3g.40gb at slot 4 runs pid 41877
    assert nv.nvmlGpuInstanceGetInfo(busy).placement.start == 4
    [proc] = nv.nvmlDeviceGetComputeRunningProcesses(handle)
    assert (proc.pid, proc.gpuInstanceId, proc.computeInstanceId) == (41877, 2, 0)
    ci = nv.nvmlGpuInstanceGetComputeInstanceById(busy, 0)
    with pytest.raises(nv.NVMLError_InUse):
        nv.nvmlComputeInstanceDestroy(ci)
    with pytest.raises(nv.NVMLError_InUse):
        nv.nvmlDeviceSetMigMode(handle, nv.NVML_DEVICE_MIG_DISABLE)  # instances exist
    idle = nv.nvmlDeviceGetGpuInstanceById(handle, 3)
    idle_ci = nv.nvmlGpuInstanceGetComputeInstanceById(idle, 0)
    nv.nvmlComputeInstanceDestroy(idle_ci)
    nv.nvmlGpuInstanceDestroy(idle)


def test_mig_enable_pending_while_in_use_then_reset(use_host, tmp_path):
    nv = use_host("h100-mig-mixed")
    nv.nvmlInit()
    handle = nv.nvmlDeviceGetHandleByIndex(3)  # MIG off, pid 52210 running
    status = nv.nvmlDeviceSetMigMode(handle, nv.NVML_DEVICE_MIG_ENABLE)
    assert status == nv.NVML_ERROR_IN_USE  # returned, not raised
    assert nv.nvmlDeviceGetMigMode(handle) == [0, 1]
    nv.nvmlShutdown()
    state = str(tmp_path / "h100-mig-mixed-state.json")
    refused = run_cli("reset-gpu", "--state", state, "--gpu", "3", check=False)
    assert refused.returncode == 2 and "52210" in refused.stderr
    run_cli("kill", "--state", state, "--pid", "52210")
    run_cli("reset-gpu", "--state", state, "--gpu", "3")
    nv.nvmlInit()
    assert nv.nvmlDeviceGetMigMode(nv.nvmlDeviceGetHandleByIndex(3)) == [1, 1]


def test_monitoring_clients_block_mig_enable(sim, tmp_path):
    state = str(tmp_path / "a100-sxm4-40gb-x8-state.json")
    run_cli("clients", "--state", state, "--gpu", "5", "--client", "dcgm")
    sim.nvmlShutdown()
    sim.nvmlInit()
    handle = sim.nvmlDeviceGetHandleByIndex(5)
    assert sim.nvmlDeviceSetMigMode(handle, sim.NVML_DEVICE_MIG_ENABLE) == sim.NVML_ERROR_IN_USE
    assert sim.nvmlDeviceGetMigMode(handle) == [0, 1]


@pytest.mark.parametrize("host,survives", [("a100-sxm4-40gb-x8", True), ("h100-80gb-hbm3-x8", False)])
def test_reboot_clears_instances_and_hopper_mode(use_host, tmp_path, host, survives):
    nv = use_host(host)
    nv.nvmlInit()
    handle = _mig_gpu(nv, 0)
    nv.nvmlDeviceCreateGpuInstance(handle, 9)
    nv.nvmlShutdown()
    run_cli("reboot", "--state", str(tmp_path / ("%s-state.json" % host)))
    nv.nvmlInit()
    handle = nv.nvmlDeviceGetHandleByIndex(0)
    assert nv.nvmlDeviceGetMigMode(handle) == ([1, 1] if survives else [0, 0])
    if survives:
        assert _all_gis(nv, handle) == []


# -- property test -----------------------------------------------------------------------
def _model_create(occupied, counts, profile_id, start=None):
    """Brute-force driver model on an 8-bit occupancy mask: returns the start or None."""
    starts, size, maximum, media = REFERENCE[profile_id]
    if counts.get(profile_id, 0) >= maximum:
        return None
    if media and any(REFERENCE[p][3] and n for p, n in counts.items()):
        return None
    candidates = [start] if start is not None else sorted(starts, reverse=True)
    for s in candidates:
        mask = ((1 << size) - 1) << s
        if s in starts and s + size <= 8 and not occupied & mask:
            return s
    return None


_operation = st.one_of(
    st.tuples(st.just("create"), st.sampled_from(sorted(REFERENCE)), st.none()),
    st.tuples(st.just("place"), st.sampled_from(sorted(REFERENCE)), st.integers(0, 7)),
    st.tuples(st.just("destroy"), st.integers(0, 7), st.none()),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(_operation, max_size=14))
def test_random_creates_and_destroys_match_a_brute_force_model(use_host, operations):
    nv = use_host("a100-sxm4-40gb-x8", state=False)
    nv.nvmlInit()
    handle = _mig_gpu(nv, 0)
    model = []  # (profile_id, start)
    live = []  # GI handles in the order of `model`
    for kind, arg, start in operations:
        if kind == "destroy":
            if not live:
                continue
            position = arg % len(live)
            nv.nvmlGpuInstanceDestroy(live.pop(position))
            model.pop(position)
            continue
        occupied = 0
        counts = {}
        for profile_id, s in model:
            occupied |= ((1 << REFERENCE[profile_id][1]) - 1) << s
            counts[profile_id] = counts.get(profile_id, 0) + 1
        expected = _model_create(occupied, counts, arg, start)
        try:
            if kind == "create":
                gi = nv.nvmlDeviceCreateGpuInstance(handle, arg)
            else:
                size = REFERENCE[arg][1]
                gi = nv.nvmlDeviceCreateGpuInstanceWithPlacement(
                    handle, arg, nv.c_nvmlGpuInstancePlacement_t(start, size)
                )
        except (nv.NVMLError_InsufficientResources, nv.NVMLError_InvalidArgument):
            assert expected is None
            continue
        assert expected is not None
        assert nv.nvmlGpuInstanceGetInfo(gi).placement.start == expected
        model.append((arg, expected))
        live.append(gi)
        assert nv.nvmlDeviceGetGpuInstanceRemainingCapacity(handle, arg) >= 0
    reported = _all_gis(nv, handle)
    assert sorted((p, s) for p, s, _size, _id in reported) == sorted(model)
    used = set()
    for _p, s, size, _id in reported:
        slices = set(range(s, s + size))
        assert not slices & used
        used |= slices
    assert len({gi_id for *_rest, gi_id in reported}) == len(reported)
    nv.nvmlShutdown()
