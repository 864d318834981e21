"""Layouts with compute instances smaller than their GPU instance, and driver-version gates."""

from __future__ import annotations

import pytest
from ansible_collections.gpuops.cluster.plugins.module_utils.mig import catalog as mig_catalog
from ansible_collections.gpuops.cluster.plugins.module_utils.mig import planner as mig

A100 = "NVIDIA A100-SXM4-40GB"
H100 = "NVIDIA H100 80GB HBM3"
A30 = "NVIDIA A30"


def test_compute_instance_profiles_follow_the_lcip_tables():
    # `nvidia-smi mig -lcip` on A100: a 3g GI offers 1c x3, 2c x1 and the full 3g x1.
    model = mig_catalog.find_model(A100)
    offered = {c.name: c.max_count for c in mig_catalog.ci_profiles_for(model.profile("3g.20gb"))}
    assert offered == {"1c.3g.20gb": 3, "2c.3g.20gb": 1, "3g.20gb": 1}
    offered = {c.name: c.max_count for c in mig_catalog.ci_profiles_for(model.profile("7g.40gb"))}
    assert offered == {"1c.7g.40gb": 7, "2c.7g.40gb": 3, "3c.7g.40gb": 2, "4c.7g.40gb": 1, "7g.40gb": 1}


def test_layout_entries_may_carry_compute_instances():
    model = mig_catalog.find_model(A100)
    counts, specs = mig.split_layout(
        model, {"3g.20gb": {"count": 2, "compute_instances": {"1c.3g.20gb": 3}}, "1g.5gb": 1}
    )
    assert counts == {"3g.20gb": 2, "1g.5gb": 1}
    assert specs == {"3g.20gb": {"1c.3g.20gb": 3}}
    assert mig.plan_compute_instances(model, "3g.20gb", {"1c.3g.20gb": 1, "2c.3g.20gb": 1}) == [
        ("2c.3g.20gb", 0),
        ("1c.3g.20gb", 2),
    ]
    assert mig.plan_layout(A100, {"3g.20gb": {"count": 2}}) == [("3g.20gb", 4), ("3g.20gb", 0)]


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        (
            {"3g.20gb": {"count": 1, "compute_instances": {"1c.3g.20gb": 2, "2c.3g.20gb": 1, "3g.20gb": 1}}},
            "7 compute slices",
        ),
        ({"3g.20gb": {"count": 1, "compute_instances": {}}}, "non-empty mapping"),
        ({"3g.20gb": {"compute_instances": {"3g.20gb": 1}}}, "count: required"),
        ({"2g.10gb": {"count": 1, "compute_instances": {"1c.2g.10gb": 0}}}, "at least one compute instance"),
        ({"2g.10gb": {"count": 1, "compute_instances": {"1c.3g.20gb": 1}}}, "allowed: 1c.2g.10gb, 2g.10gb"),
    ],
)
def test_bad_compute_instance_specs_name_the_path(layout, message):
    with pytest.raises(mig.MigLayoutError, match=message):
        mig.plan_layout(A100, layout)


def test_plan_changes_remakes_compute_instances_inside_a_kept_gpu_instance():
    live = [{"gi_id": 1, "profile": "3g.20gb", "start": 4, "compute_instances": [{"ci_id": 0, "profile": "3g.20gb"}]}]
    desired = {"3g.20gb": {"count": 1, "compute_instances": {"1c.3g.20gb": 3}}}
    plan = mig.plan_changes(A100, live, desired)
    assert plan.destroy == [] and plan.create == []
    assert [s["action"] for s in plan.steps] == ["destroy_ci", "create_ci", "create_ci", "create_ci"]
    assert [(s["ci_profile"], s["ci_start"]) for s in plan.steps[1:]] == [("1c.3g.20gb", i) for i in range(3)]
    assert "re-make compute instances of 1 kept" in plan.summary
    assert plan.after == ["3g.20gb@4[1c.3g.20gb,1c.3g.20gb,1c.3g.20gb]"]
    # Converged: nothing to do.
    live[0]["compute_instances"] = [{"ci_id": i, "profile": "1c.3g.20gb", "start": i} for i in range(3)]
    assert not mig.plan_changes(A100, live, desired).changed
    # A busy compute instance that would be re-made needs force.
    live[0]["compute_instances"][1]["busy"] = True
    plan = mig.plan_changes(A100, live, {"3g.20gb": 1})
    assert plan.requires_force and plan.busy_destroyed[0]["compute_instances_only"] is True


@pytest.mark.parametrize(
    ("gpu", "layout", "driver", "ok"),
    [
        (A100, {"4g.20gb": 1, "3g.20gb": 1}, "470.223.02", False),
        (A100, {"4g.20gb": 1, "3g.20gb": 1}, "510.39.01", True),
        (A100, {"4g.20gb": 1, "3g.20gb": 1}, None, True),  # unknown driver: not checked
        (A100, {"4g.20gb": 1, "2g.10gb": 1}, "470.223.02", True),
        (H100, {"4g.40gb": 1, "3g.40gb": 1}, "550.127.05", True),
        (A30, {"2g.12gb+me": 1}, "515.65.01", False),
        (A30, {"2g.12gb+me": 1}, "525.60.13", True),
    ],
)
def test_driver_gates(gpu, layout, driver, ok):
    if ok:
        assert mig.plan_layout(gpu, layout, driver_version=driver)
    else:
        with pytest.raises(mig.MigLayoutError, match="driver R5"):
            mig.plan_layout(gpu, layout, driver_version=driver)
        with pytest.raises(mig.MigLayoutError, match="driver R5"):
            mig.plan_changes(gpu, [], layout, driver_version=driver)
