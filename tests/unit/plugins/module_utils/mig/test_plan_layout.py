"""plan_layout: exhaustive agreement with a brute force, the reference's examples, properties."""

from __future__ import annotations

import itertools
import random
from collections import Counter

import pytest
from ansible_collections.gpuops.cluster.plugins.module_utils.mig import catalog as mig_catalog
from ansible_collections.gpuops.cluster.plugins.module_utils.mig import planner as mig
from hypothesis import given, settings
from hypothesis import strategies as st
from mig_bruteforce import GPUS, enumerate_valid_layouts, placement_set_ok

A100 = "NVIDIA A100-SXM4-40GB"
H100 = "NVIDIA H100 80GB HBM3"
A30 = "NVIDIA A30"


def _key(layout):
    return frozenset((name, count) for name, count in layout.items() if count)


def _all_count_vectors(geometry):
    """Every layout with each count between 0 and its profile's max count."""
    names = sorted(geometry)
    for counts in itertools.product(*(range(geometry[n][3] + 1) for n in names)):
        yield dict(zip(names, counts))


@pytest.mark.parametrize("gpu_name", [A100, H100, A30])
def test_plan_layout_succeeds_exactly_on_the_brute_force_valid_layouts(gpu_name, capsys):
    geometry, memory_slices, compute_slices = GPUS[gpu_name]
    valid = {_key(layout) for layout in enumerate_valid_layouts(gpu_name)}
    with capsys.disabled():
        print("\n%s: %d valid layouts (%d non-empty)" % (gpu_name, len(valid), len(valid) - 1))
    checked_valid = checked_invalid = 0
    # The whole universe within max counts: every valid layout and every invalid one.
    for layout in _all_count_vectors(geometry):
        if _key(layout) in valid:
            placements = mig.plan_layout(gpu_name, layout)
            assert Counter(name for name, _unused in placements) == Counter({n: c for n, c in layout.items() if c})
            assert placement_set_ok(geometry, memory_slices, compute_slices, placements)
            checked_valid += 1
        else:
            with pytest.raises(mig.MigLayoutError, match=r"no room|at most one \+me"):
                mig.plan_layout(gpu_name, layout)
            checked_invalid += 1
    assert checked_valid == len(valid)
    assert checked_invalid > 0


@pytest.mark.parametrize("gpu_name", [A100, H100])
def test_valid_layout_count_is_pinned(gpu_name):
    # A change here means the catalog or the reference moved: look before updating the number.
    assert len(enumerate_valid_layouts(gpu_name)) == 128


@pytest.mark.parametrize("gpu_name", [A100, H100])
def test_over_max_counts_are_rejected_with_the_limit(gpu_name):
    geometry = GPUS[gpu_name][0]
    for name, row in geometry.items():
        with pytest.raises(mig.MigLayoutError, match="over the maximum of %d" % row[3]):
            mig.plan_layout(gpu_name, {name: row[3] + 1})


def test_creation_order_example_from_the_reference():
    model = mig_catalog.find_model(A100)
    # 19,19,14,9 as the driver placed them on its own: 1g@6, 1g@5, 2g@2; then 3g has no start.
    driver_choice = [("1g.5gb", 6), ("1g.5gb", 5), ("2g.10gb", 2)]
    mig.check_placements(model, driver_choice)
    for start in (0, 4):
        with pytest.raises(mig.MigLayoutError, match="overlap"):
            mig.check_placements(model, [*driver_choice, ("3g.20gb", start)])
    # 9,19,14,19 as the driver placed them: 3g@4, 1g@3, 2g@0, 1g@2 works.
    mig.check_placements(model, [("3g.20gb", 4), ("1g.5gb", 3), ("2g.10gb", 0), ("1g.5gb", 2)])
    # Our plan for the same multiset is explicit, largest first, and fits in any creation order.
    plan = mig.plan_layout(A100, {"1g.5gb": 2, "2g.10gb": 1, "3g.20gb": 1})
    assert plan == [("3g.20gb", 4), ("2g.10gb", 0), ("1g.5gb", 2), ("1g.5gb", 3)]
    for order in itertools.permutations(plan):
        mig.check_placements(model, list(order))


def test_documented_order_examples():
    assert mig.plan_layout(H100, {"3g.40gb": 1, "4g.40gb": 1}) == [("4g.40gb", 0), ("3g.40gb", 4)]
    assert mig.plan_layout(A100, {"1g.5gb": 7}) == [("1g.5gb", s) for s in range(7)]
    # Same memory size: more compute slices first.
    assert mig.plan_layout(A100, {"2g.10gb": 3, "1g.10gb": 1}) == [
        ("2g.10gb", 0),
        ("2g.10gb", 2),
        ("2g.10gb", 4),
        ("1g.10gb", 6),
    ]
    # Big instances take the top, small ones pack from the bottom: room stays in one piece.
    assert mig.plan_layout(A100, {"3g.20gb": 1, "2g.10gb": 1, "1g.5gb": 1}) == [
        ("3g.20gb", 4),
        ("2g.10gb", 0),
        ("1g.5gb", 2),
    ]
    assert mig.plan_layout(A100, {"3g.20gb": 2}) == [("3g.20gb", 4), ("3g.20gb", 0)]
    assert mig.plan_layout(A30, {"2g.12gb": 1, "1g.6gb": 2}) == [("2g.12gb", 2), ("1g.6gb", 0), ("1g.6gb", 1)]
    assert mig.plan_layout(A100, {}) == []
    assert mig.plan_layout(A100, {"7g.40gb": 0}) == []


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        (
            {"1g.6gb": 1},
            "unknown profile '1g.6gb' for A100-40GB; allowed: 1g.5gb, 1g.5gb\\+me, "
            "1g.10gb, 2g.10gb, 3g.20gb, 4g.20gb, 7g.40gb",
        ),
        ({"1g.5gb": -1}, "layout.1g.5gb: count must be a non-negative int, got -1"),
        ({"1g.5gb": 1.0}, "count must be a non-negative int, got 1.0"),
        ({"1g.5gb": True}, "count must be a non-negative int, got True"),
        ({"1g.5gb": "2"}, "count must be a non-negative int"),
        ({"1g.5gb": 8}, "count 8 is over the maximum of 7"),
        ({"1g.5gb+me": 2}, "over the maximum of 1"),
        ({"7g.40gb": 1, "1g.5gb": 1}, "no room on A100-40GB: the layout needs 8 compute"),
        ({"3g.20gb": 2, "1g.5gb": 1}, "no room on A100-40GB: the layout needs 7 compute and 9"),
        ({"4g.20gb": 1, "2g.10gb": 2}, "no room on A100-40GB: the layout needs 8 compute"),
        (["1g.5gb"], "layout must be a mapping"),
    ],
)
def test_layout_errors_name_the_reason(layout, message):
    with pytest.raises(mig.MigLayoutError, match=message):
        mig.plan_layout(A100, layout)


def _nvml_profile(name, compute, size, starts, max_count):
    return {
        "name": "MIG " + name,
        "id": None,
        "sliceCount": compute,
        "instanceCount": max_count,
        "placements": [{"start": s, "size": size} for s in starts],
    }


def test_no_room_message_says_what_is_left():
    # On the catalog GPUs the slice sums decide; a fragmenting geometry needs the search.
    model = mig_catalog.model_from_nvml(
        "Future GPU",
        [
            _nvml_profile("2g.10gb", 1, 2, (1, 5), 2),
            _nvml_profile("4g.20gb", 4, 4, (0,), 1),
            _nvml_profile("7g.40gb", 7, 8, (0,), 1),
        ],
    )
    with pytest.raises(mig.MigLayoutError) as info:
        mig.plan_layout_for_model(model, {"4g.20gb": 1, "2g.10gb": 2})
    text = str(info.value)
    assert "placed 4g.20gb@0, 2g.10gb@5" in text
    assert "left free: memory slices [4, 7]" in text
    assert "cannot place 2g.10gb x1" in text


def test_more_than_one_media_extension_instance_is_rejected():
    with pytest.raises(mig.MigLayoutError, match="at most one \\+me"):
        mig.plan_layout(A30, {"1g.6gb+me": 1, "2g.12gb+me": 1})


def test_unknown_gpu_lists_the_known_ones():
    with pytest.raises(mig.MigLayoutError, match=r"unknown GPU model 'Tesla T4'.*NVIDIA A30"):
        mig.plan_layout("Tesla T4", {"1g.5gb": 1})


def test_gpu_name_matching_tolerates_old_driver_names():
    assert mig.plan_layout("A100-SXM4-40GB", {"7g.40gb": 1}) == [("7g.40gb", 0)]
    assert mig.plan_layout("nvidia  h100 pcie", {"7g.80gb": 1}) == [("7g.80gb", 0)]


_MODELS = [A100, H100, A30, "NVIDIA H100 NVL", "NVIDIA H200", "NVIDIA B200", "NVIDIA A100 80GB PCIe"]


@st.composite
def _layouts(draw):
    gpu_name = draw(st.sampled_from(_MODELS))
    model = mig_catalog.find_model(gpu_name)
    names = draw(st.lists(st.sampled_from(model.profile_names), unique=True, max_size=5))
    layout = {n: draw(st.integers(0, model.profile(n).max_count + 1)) for n in names}
    return gpu_name, layout


@settings(max_examples=400, deadline=None)
@given(_layouts())
def test_plan_layout_properties(case):
    gpu_name, layout = case
    model = mig_catalog.find_model(gpu_name)
    try:
        placements = mig.plan_layout(gpu_name, layout)
    except mig.MigLayoutError:
        return
    used = set()
    for name, start in placements:
        profile = model.profile(name)
        assert start in profile.start_slots
        cells = set(range(start, start + profile.memory_slices))
        assert not used & cells, "overlap"
        assert max(cells) < model.memory_slices
        used |= cells
    counts = Counter(name for name, _unused in placements)
    assert counts == Counter({n: c for n, c in layout.items() if c})
    assert all(counts[n] <= model.profile(n).max_count for n in counts)
    assert sum(model.profile(n).compute_slices for n, _unused in placements) <= model.compute_slices
    assert sum(1 for n, _unused in placements if model.profile(n).media_extensions) <= 1
    # Largest first, as documented.
    sizes = [model.profile(n).memory_slices for n, _unused in placements]
    assert sizes == sorted(sizes, reverse=True)
    # Deterministic, whatever the key order of the layout.
    shuffled = list(layout.items())
    random.Random(len(shuffled)).shuffle(shuffled)
    assert mig.plan_layout(gpu_name, dict(shuffled)) == placements
    assert mig.plan_layout(gpu_name, layout) == placements
