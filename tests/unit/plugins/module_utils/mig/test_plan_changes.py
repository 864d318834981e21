"""plan_changes: applying the plan works, kept instances stay put, destroys are minimal."""

from __future__ import annotations

from collections import Counter

import pytest
from ansible_collections.gpuops.cluster.plugins.module_utils.mig import catalog as mig_catalog
from ansible_collections.gpuops.cluster.plugins.module_utils.mig import planner as mig
from hypothesis import given, settings
from hypothesis import strategies as st
from mig_bruteforce import (
    GPUS,
    all_placements,
    enumerate_valid_layouts,
    placement_set_ok,
    valid_keep_sets,
)

A100 = "NVIDIA A100-SXM4-40GB"
H100 = "NVIDIA H100 80GB HBM3"
A30 = "NVIDIA A30"
_VALID = {name: enumerate_valid_layouts(name) for name in GPUS}


def _live(*placements, busy=()):
    return [
        {"gi_id": i + 1, "profile": name, "start": start, "compute_instances": [{"ci_id": 0}], "busy": i in busy}
        for i, (name, start) in enumerate(placements)
    ]


def apply_plan(gpu_name, live, plan):
    """Play the steps on a model of the GPU, failing on any step the driver would refuse."""
    model = mig_catalog.find_model(gpu_name)
    state = {e["gi_id"]: dict(e, compute_instances=list(e["compute_instances"])) for e in live}
    next_id = max(state, default=0) + 1
    for step in plan.steps:
        action = step["action"]
        if action == "destroy_ci":
            cis = state[step["gi_id"]]["compute_instances"]
            cis.remove(next(c for c in cis if c["ci_id"] == step["ci_id"]))
        elif action == "destroy_gi":
            assert not state[step["gi_id"]]["compute_instances"], "GI destroyed before its CIs"
            del state[step["gi_id"]]
        elif action == "create_gi":
            profile = model.profile(step["profile"])
            assert step["start"] in profile.start_slots
            cells = set(range(step["start"], step["start"] + profile.memory_slices))
            for other in state.values():
                size = model.profile(other["profile"]).memory_slices
                assert not cells & set(range(other["start"], other["start"] + size)), step
            state[next_id] = {
                "gi_id": next_id,
                "profile": step["profile"],
                "start": step["start"],
                "compute_instances": [],
                "busy": False,
            }
            next_id += 1
        elif action == "create_ci":
            target = [
                g
                for g in state.values()
                if (
                    g["gi_id"] == step["gi_id"]
                    if "gi_id" in step
                    else (g["profile"], g["start"]) == (step["profile"], step["start"])
                )
            ]
            assert len(target) == 1 and not target[0]["compute_instances"]
            target[0]["compute_instances"].append({"ci_id": 0})
        else:
            raise AssertionError("unknown step %r" % action)
    mig.check_placements(model, [(g["profile"], g["start"]) for g in state.values()])
    assert all(g["compute_instances"] for g in state.values()), "GI left without a CI"
    return state


def test_all_1g_to_balanced_keeps_two_and_places_around_them():
    live = _live(*[("1g.5gb", s) for s in range(7)])
    plan = mig.plan_changes(A100, live, {"3g.20gb": 1, "2g.10gb": 1, "1g.5gb": 2})
    assert [(e["profile"], e["start"]) for e in plan.keep] == [("1g.5gb", 0), ("1g.5gb", 1)]
    assert len(plan.destroy) == 5
    assert plan.create == [{"profile": "3g.20gb", "start": 4}, {"profile": "2g.10gb", "start": 2}]
    assert [s["action"] for s in plan.steps[:2]] == ["destroy_ci", "destroy_gi"]
    assert plan.after == ["1g.5gb@0", "1g.5gb@1", "2g.10gb@2", "3g.20gb@4"]
    assert "keep 2" in plan.summary and "destroy 5" in plan.summary
    assert not plan.requires_force
    apply_plan(A100, live, plan)


def test_adding_one_instance_to_a_planned_layout_keeps_everything():
    for small, full in (
        ({"3g.20gb": 1, "2g.10gb": 1, "1g.5gb": 1}, {"3g.20gb": 1, "2g.10gb": 1, "1g.5gb": 2}),
        ({"2g.10gb": 1, "1g.5gb": 2}, {"2g.10gb": 1, "1g.5gb": 2, "3g.20gb": 1}),
        ({"1g.5gb": 5}, {"1g.5gb": 6}),
    ):
        live = _live(*mig.plan_layout(A100, small))
        plan = mig.plan_changes(A100, live, full)
        assert plan.destroy == [], (small, plan.summary)
        assert len(plan.create) == 1


def test_converged_gpu_is_no_change():
    live = _live(("3g.20gb", 4), ("2g.10gb", 0), ("1g.5gb", 2), ("1g.5gb", 3))
    plan = mig.plan_changes(A100, live, {"3g.20gb": 1, "2g.10gb": 1, "1g.5gb": 2})
    assert not plan.changed
    assert plan.steps == [] and plan.destroy == [] and plan.create == []
    assert plan.summary.startswith("A100-40GB: no change")
    assert plan.to_dict()["changed"] is False


def test_kept_instance_without_compute_instance_gets_one():
    live = _live(("7g.40gb", 0))
    live[0]["compute_instances"] = []
    plan = mig.plan_changes(A100, live, {"7g.40gb": 1})
    assert plan.steps == [
        {"action": "create_ci", "gi_id": 1, "profile": "7g.40gb", "start": 0, "ci_profile": "7g.40gb", "ci_start": 0}
    ]
    apply_plan(A100, live, plan)


def test_busy_instance_that_must_go_is_reported():
    live = _live(("3g.40gb", 0), ("3g.40gb", 4), busy=(1,))
    plan = mig.plan_changes(H100, live, {"7g.80gb": 1})
    assert plan.requires_force
    assert [e["gi_id"] for e in plan.busy_destroyed] == [2]
    assert "needs force" in plan.summary


def test_busy_instance_is_kept_over_an_idle_one():
    # Any one of the three 1g can stay next to 3g@4 + 2g: the busy one is the one kept.
    live = _live(("1g.10gb", 0), ("1g.10gb", 1), ("1g.10gb", 2), busy=(2,))
    plan = mig.plan_changes(H100, live, {"1g.10gb": 1, "3g.40gb": 1, "2g.20gb": 1})
    assert [e["gi_id"] for e in plan.keep] == [3]
    assert not plan.requires_force
    apply_plan(H100, live, plan)


def test_plan_does_not_depend_on_live_list_order():
    live = _live(("1g.5gb", 0), ("1g.5gb", 3), ("2g.10gb", 4), ("1g.5gb", 6))
    desired = {"3g.20gb": 1, "1g.5gb": 3}
    forward = mig.plan_changes(A100, live, desired).to_dict()
    backward = mig.plan_changes(A100, list(reversed(live)), desired).to_dict()
    assert forward == backward


@pytest.mark.parametrize(
    ("live", "message"),
    [
        ("nope", "live_instances must be a list"),
        ([{"gi_id": 1, "profile": "1g.5gb"}], "live_instances\\[0\\].start: required"),
        ([{"gi_id": -1, "profile": "1g.5gb", "start": 0}], "gi_id: must be a non-negative int"),
        (_live(("2g.10gb", 0), ("1g.5gb", 1)), "overlaps 2g.10gb@0: live state is inconsistent"),
        (_live(("7g.40gb", 1)), "ends past memory slice 7"),
    ],
)
def test_bad_live_state_is_rejected(live, message):
    with pytest.raises(mig.MigLayoutError, match=message):
        mig.plan_changes(A100, live, {"7g.40gb": 1})


def test_impossible_desired_layout_fails_before_the_live_state_is_read():
    with pytest.raises(mig.MigLayoutError, match="needs 8 compute"):
        mig.plan_changes(A100, "not even a list", {"7g.40gb": 1, "1g.5gb": 1})


def test_unknown_live_profile_is_destroyed():
    live = _live(("9g.99gb", 0))
    plan = mig.plan_changes(A100, live, {"7g.40gb": 1})
    assert [e["profile"] for e in plan.destroy] == ["9g.99gb"]


@st.composite
def _cases(draw):
    gpu_name = draw(st.sampled_from(sorted(GPUS)))
    geometry, memory_slices, _unused = GPUS[gpu_name]
    # Live state: placements drawn one by one, each kept only if it still fits.
    options = draw(st.permutations(all_placements(geometry, memory_slices)))
    wanted = draw(st.integers(0, 7))
    chosen = []
    for name, start in options:
        if len(chosen) == wanted:
            break
        candidate = [*chosen, (name, start)]
        if placement_set_ok(geometry, memory_slices, GPUS[gpu_name][2], candidate):
            chosen = candidate
    busy = draw(st.sets(st.integers(0, max(len(chosen) - 1, 0)), max_size=len(chosen)))
    live = _live(*chosen, busy=busy)
    desired = draw(st.sampled_from(_VALID[gpu_name]))
    return gpu_name, live, desired


@settings(max_examples=300, deadline=None)
@given(_cases())
def test_plan_changes_properties(case):
    gpu_name, live, desired = case
    plan = mig.plan_changes(gpu_name, live, desired)

    # Applying it yields exactly the desired counts, and every step is one the driver accepts.
    state = apply_plan(gpu_name, live, plan)
    assert Counter(g["profile"] for g in state.values()) == Counter({n: c for n, c in desired.items() if c})

    # Kept instances are never moved, and keep + destroy partition the live state.
    by_id = {e["gi_id"]: e for e in live}
    for kept in plan.keep:
        assert state[kept["gi_id"]]["start"] == by_id[kept["gi_id"]]["start"]
        assert state[kept["gi_id"]]["profile"] == by_id[kept["gi_id"]]["profile"]
    assert sorted(e["gi_id"] for e in plan.keep + plan.destroy) == sorted(by_id)

    # Against the brute force: most busy kept, then fewest destroys.
    ordered = sorted(live, key=lambda e: (e["start"], e["gi_id"]))
    options = valid_keep_sets(gpu_name, ordered, desired)
    best_busy = max(sum(ordered[i]["busy"] for i in s) for s in options)
    kept_busy = sum(1 for e in plan.keep if e["busy"])
    assert kept_busy == best_busy
    fewest = min(len(live) - len(s) for s in options if sum(ordered[i]["busy"] for i in s) == best_busy)
    assert len(plan.destroy) == fewest
    if not any(e["busy"] for e in live):
        assert len(plan.destroy) == min(len(live) - len(s) for s in options)
    # A busy instance that some valid plan keeps together with all other keepable busy ones
    # is kept; with one busy instance that reads: kept whenever any valid plan keeps it.
    busy_positions = [i for i, e in enumerate(ordered) if e["busy"]]
    if len(busy_positions) == 1 and any(busy_positions[0] in s for s in options):
        assert ordered[busy_positions[0]]["gi_id"] in {e["gi_id"] for e in plan.keep}
    assert plan.requires_force == (kept_busy < len(busy_positions))

    # Creates are largest first and the plan is deterministic.
    model = mig_catalog.find_model(gpu_name)
    sizes = [model.profile(c["profile"]).memory_slices for c in plan.create]
    assert sizes == sorted(sizes, reverse=True)
    assert mig.plan_changes(gpu_name, live, desired).to_dict() == plan.to_dict()
