"""The MIG catalog: rows equal the reference, lookups, and entries built from NVML data."""

from __future__ import annotations

import pytest
from ansible_collections.gpuops.cluster.plugins.module_utils.mig import catalog as mig_catalog
from ansible_collections.gpuops.cluster.plugins.module_utils.mig import planner as mig
from mig_bruteforce import GPUS, enumerate_valid_layouts


@pytest.mark.parametrize("gpu_name", sorted(GPUS))
def test_catalog_rows_equal_the_reference_tables(gpu_name):
    geometry, memory_slices, compute_slices = GPUS[gpu_name]
    model = mig_catalog.find_model(gpu_name)
    assert (model.memory_slices, model.compute_slices) == (memory_slices, compute_slices)
    assert sorted(model.profile_names) == sorted(geometry)
    for name, (compute, size, starts, max_count, media) in geometry.items():
        profile = model.profile(name)
        assert (
            profile.compute_slices,
            profile.memory_slices,
            list(profile.start_slots),
            profile.max_count,
            profile.media_extensions,
        ) == (compute, size, list(starts), max_count, media), name


@pytest.mark.parametrize(
    ("nvml_name", "pci_id", "key"),
    [
        ("NVIDIA A100-SXM4-40GB", 0x20B010DE, "A100-40GB"),
        ("NVIDIA A100-PCIE-40GB", "0x20F110DE", "A100-40GB"),
        ("NVIDIA A100-SXM4-80GB", 0x20B210DE, "A100-80GB"),
        ("NVIDIA A100 80GB PCIe", "0x20b510de", "A100-80GB"),
        ("NVIDIA H100 80GB HBM3", 0x233010DE, "H100-80GB"),
        ("NVIDIA H100 PCIe", 0x233110DE, "H100-80GB"),
        ("NVIDIA H100 NVL", 0x232110DE, "H100-NVL"),
        ("NVIDIA H200", 0x233510DE, "H200-141GB"),
        ("NVIDIA B200", 0x290110DE, "B200"),
        ("NVIDIA A30", 0x20B710DE, "A30-24GB"),
    ],
)
def test_lookup_by_nvml_name_and_by_pci_device_id(nvml_name, pci_id, key):
    assert mig_catalog.find_model(nvml_name).key == key
    assert mig_catalog.find_model(pci_device_id=pci_id).key == key
    # The PCI id wins over a name that a driver spells differently.
    assert mig_catalog.find_model("Some Future Spelling", pci_id).key == key


def test_unknown_lookups_return_none():
    assert mig_catalog.find_model("Tesla T4") is None
    assert mig_catalog.find_model(pci_device_id=0x1EB810DE) is None
    with pytest.raises(ValueError, match="not of the form"):
        mig_catalog.find_model(pci_device_id="H100")


def test_inferred_rows_are_marked():
    h200 = mig_catalog.model_by_key("H200-141GB")
    assert h200.inferred and h200.profile("3g.71gb").inferred
    assert not h200.profile("1g.18gb").inferred
    assert mig_catalog.model_by_key("B200").inferred
    assert not mig_catalog.model_by_key("H100-80GB").inferred
    assert mig_catalog.model_by_key("A30-24GB").profile("2g.12gb+me").gi_profile_id is None


def test_reference_memory_and_sm_figures_are_carried():
    h100 = mig_catalog.model_by_key("H100-80GB")
    assert (h100.profile("7g.80gb").memory_gib, h100.profile("7g.80gb").sm_count) == (79.25, 132)
    a100 = mig_catalog.model_by_key("A100-40GB")
    assert (a100.profile("1g.5gb").memory_gib, a100.profile("1g.5gb").sm_count) == (4.75, 14)
    assert a100.to_dict()["pci_device_ids"][0] == "0x20B010DE"


def _as_nvml(model):
    """The catalog entry as NVML would report it (profile info v2 plus possible placements)."""
    return [
        {
            "name": "MIG " + p.name,
            "id": p.gi_profile_id,
            "sliceCount": p.compute_slices,
            "instanceCount": p.max_count,
            "multiprocessorCount": p.sm_count or 0,
            "memorySizeMB": int((p.memory_gib or 0) * 1024),
            "placements": [{"start": s, "size": p.memory_slices} for s in p.start_slots],
        }
        for p in model.profiles
    ]


@pytest.mark.parametrize("gpu_name", sorted(GPUS))
def test_entry_built_from_nvml_data_plans_like_the_catalog(gpu_name):
    model = mig_catalog.find_model(gpu_name)
    built = mig_catalog.model_from_nvml(gpu_name, _as_nvml(model), [0x12345678])
    assert (built.memory_slices, built.compute_slices) == (model.memory_slices, model.compute_slices)
    assert built.pci_device_ids == (0x12345678,)
    for layout in enumerate_valid_layouts(gpu_name):
        assert mig.plan_layout_for_model(built, layout) == mig.plan_layout(gpu_name, layout)


def test_entry_from_nvml_skips_profiles_the_driver_cannot_create():
    rows = _as_nvml(mig_catalog.model_by_key("A30-24GB"))
    rows[0]["instanceCount"] = 0
    built = mig_catalog.model_from_nvml("NVIDIA A30", rows)
    assert "1g.6gb" not in built.profile_names


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([], "no creatable MIG profile"),
        ([{"name": "MIG 1g.5gb", "sliceCount": 1, "instanceCount": 7}], r"profiles\[0\]: missing field placements"),
        (
            [{"name": "1g.5gb", "sliceCount": -1, "instanceCount": 7, "placements": []}],
            r"profiles\[0\]: sliceCount must be a non-negative int",
        ),
        (
            [
                {
                    "name": "1g.5gb",
                    "sliceCount": 1,
                    "instanceCount": 2,
                    "placements": [{"start": 0, "size": 1}, {"start": 1, "size": 2}],
                }
            ],
            "placements must share one positive size",
        ),
        (
            [
                {"name": "1g.5gb", "sliceCount": 1, "instanceCount": 1, "placements": [{"start": 0, "size": 1}]},
                {"name": "MIG 1g.5gb", "sliceCount": 1, "instanceCount": 1, "placements": [{"start": 1, "size": 1}]},
            ],
            "duplicate profile names",
        ),
    ],
)
def test_entry_from_nvml_rejects_bad_data(rows, message):
    with pytest.raises(ValueError, match=message):
        mig_catalog.model_from_nvml("Future GPU", rows)


def test_plan_changes_works_for_a_gpu_only_nvml_knows():
    model = mig_catalog.model_from_nvml("NVIDIA Future", _as_nvml(mig_catalog.model_by_key("H100-80GB")))
    live = [{"gi_id": 1, "profile": "7g.80gb", "start": 0, "compute_instances": [0]}]
    plan = mig.plan_changes("NVIDIA Future", live, {"3g.40gb": 2}, model=model)
    assert plan.create == [{"profile": "3g.40gb", "start": 4}, {"profile": "3g.40gb", "start": 0}]
    assert [s["action"] for s in plan.steps[:2]] == ["destroy_ci", "destroy_gi"]
