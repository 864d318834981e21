"""mig-parted v1 configs: errors name their path; the GPU Operator's shipped config resolves."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ansible_collections.gpuops.cluster.plugins.module_utils.mig import parted, planner

SHIPPED = Path(__file__).resolve().parents[6] / "shared" / "reference" / "gpu-operator-default-mig-parted-config.yaml"

A100_GPUS = [{"index": i, "name": "NVIDIA A100-SXM4-40GB", "pci_device_id": 0x20B010DE} for i in range(8)]
H100_GPUS = [{"index": i, "name": "NVIDIA H100 80GB HBM3", "pci_device_id": "0x233010DE"} for i in range(8)]


def _config(entries, name="all-balanced", **top):
    data = {"version": "v1", "mig-configs": {name: entries}}
    data.update(top)
    return data


BALANCED = {
    "device-filter": ["0x20B010DE"],
    "devices": "all",
    "mig-enabled": True,
    "mig-devices": {"1g.5gb": 2, "2g.10gb": 1, "3g.20gb": 1},
}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            _config([dict(BALANCED, **{"mig-devcies": {}})]),
            "^mig-configs.all-balanced\\[0\\].mig-devcies: unknown key; allowed: device-filter, "
            "devices, mig-enabled, mig-devices$",
        ),
        (_config([BALANCED], extras=1), "^extras: unknown key; allowed: version, mig-configs$"),
        (_config([BALANCED], version="v2"), "^version: required, must be v1$"),
        ({"version": "v1"}, "^mig-configs: required"),
        ({"version": "v1", "mig-configs": {}}, "^mig-configs: required"),
        (_config([]), "^mig-configs.all-balanced: must be a non-empty list"),
        (_config(["x"]), "^mig-configs.all-balanced\\[0\\]: must be a mapping"),
        (_config([{"mig-enabled": True, "mig-devices": {}}]), "^mig-configs.all-balanced\\[0\\].devices: required"),
        (_config([{"devices": "all", "mig-devices": {}}]), "^mig-configs.all-balanced\\[0\\].mig-enabled: required"),
        (
            _config([{"devices": "all", "mig-enabled": "yes"}]),
            "^mig-configs.all-balanced\\[0\\].mig-enabled: must be true or false",
        ),
        (
            _config([{"devices": "all", "mig-enabled": True}]),
            "^mig-configs.all-balanced\\[0\\].mig-devices: required when mig-enabled is true",
        ),
        (
            _config([{"devices": "all", "mig-enabled": False, "mig-devices": {"1g.5gb": 1}}]),
            "^mig-configs.all-balanced\\[0\\].mig-devices: must be empty when mig-enabled is false",
        ),
        (
            _config([BALANCED, dict(BALANCED, devices="some")]),
            "^mig-configs.all-balanced\\[1\\].devices: must be 'all' or a non-empty list",
        ),
        (
            _config([dict(BALANCED, devices=[0, -1])]),
            "^mig-configs.all-balanced\\[0\\].devices\\[1\\]: must be a GPU index",
        ),
        (
            _config([dict(BALANCED, **{"device-filter": ["0x20B010DE", "A100"]})]),
            "^mig-configs.all-balanced\\[0\\].device-filter\\[1\\]: not a PCI device id; allowed: 0xDDDDVVVV",
        ),
        (
            _config([dict(BALANCED, **{"device-filter": 42})]),
            "^mig-configs.all-balanced\\[0\\].device-filter: must be a PCI device id string",
        ),
        (
            _config([dict(BALANCED, **{"mig-devices": {"big": 1}})]),
            "^mig-configs.all-balanced\\[0\\].mig-devices: a key is not a MIG profile name; allowed: names like 1g.5gb",
        ),
        (
            _config([dict(BALANCED, **{"mig-devices": {"1g.5gb": -2}})]),
            "^mig-configs.all-balanced\\[0\\].mig-devices.1g.5gb: count must be an integer 0-64",
        ),
        ("version: v1\nmig-configs: [", "^config: not valid YAML \\(line 2, column 15\\)$"),
        ([], "^must be a mapping with keys version, mig-configs, got a list$"),
        (
            _config([dict(BALANCED, devices=[0, 0])]),
            "^mig-configs.all-balanced\\[0\\].devices\\[1\\]: GPU 0 is listed twice$",
        ),
        ({"version": "v1", "mig-configs": {"bad name!": [BALANCED]}}, "^mig-configs: a config name is not a name"),
    ],
)
def test_config_errors_name_the_path(data, message):
    with pytest.raises(parted.MigConfigError, match=message):
        parted.parse_mig_parted_config(data)


def test_config_errors_are_layout_errors_too():
    assert issubclass(parted.MigConfigError, planner.MigLayoutError)
    assert issubclass(planner.MigLayoutError, ValueError)


def test_yaml_text_and_mapping_parse_the_same():
    data = _config([BALANCED, {"devices": [3], "mig-enabled": False}])
    assert parted.parse_mig_parted_config(yaml.safe_dump(data)) == parted.parse_mig_parted_config(data)


def test_disabled_entry_may_carry_an_empty_mig_devices():
    config = parted.parse_mig_parted_config(_config([{"devices": "all", "mig-enabled": False, "mig-devices": {}}]))
    assert config.configs["all-balanced"][0].mig_devices == {}


def test_a_gpu_matched_by_two_entries_is_an_error_naming_both():
    config = _config(
        [
            {"devices": "all", "mig-enabled": True, "mig-devices": {"7g.40gb": 1}},
            {"devices": [1], "mig-enabled": True, "mig-devices": {"1g.5gb": 7}},
        ]
    )
    with pytest.raises(
        parted.MigConfigError,
        match=r"GPU 1 \(NVIDIA A100-SXM4-40GB\) is matched by mig-configs.all-balanced\[0\] and "
        r"mig-configs.all-balanced\[1\]; each GPU must match at most one entry",
    ):
        parted.resolve_mig_config(config, "all-balanced", A100_GPUS[:4])


def test_disjoint_entries_each_configure_their_gpus():
    config = _config(
        [
            {"devices": [0, 3], "mig-enabled": True, "mig-devices": {"7g.40gb": 1}},
            {"devices": [1], "mig-enabled": True, "mig-devices": {"1g.5gb": 7}},
            {"device-filter": "0x20B010DE", "devices": [2], "mig-enabled": False},
            {"device-filter": "0x233010DE", "devices": [3], "mig-enabled": False},
        ]
    )
    result = parted.resolve_mig_config(config, "all-balanced", A100_GPUS[:4])
    assert result[0]["layout"] == {"7g.40gb": 1}
    assert result[1]["layout"] == {"1g.5gb": 7}
    assert result[1]["entry"] == "mig-configs.all-balanced[1]"
    assert (result[2]["mig_enabled"], result[2]["layout"]) == (False, {})
    assert result[3]["layout"] == {"7g.40gb": 1}  # the H100 filter does not match an A100


def test_an_entry_naming_a_gpu_the_host_does_not_have_is_an_error():
    config = _config([{"devices": [0, 99], "mig-enabled": True, "mig-devices": {"7g.40gb": 1}}])
    with pytest.raises(
        parted.MigConfigError,
        match=r"^mig-configs.all-balanced\[0\].devices: GPU 99 not on this host; it has GPU indices 0-7$",
    ):
        parted.resolve_mig_config(config, "all-balanced", A100_GPUS)
    # A lost GPU still exists: naming it is not this error.
    result = parted.resolve_mig_config(config, "all-balanced", A100_GPUS[:1], known_indices=list(range(100)))
    assert result[0]["layout"] == {"7g.40gb": 1}


def test_unmatched_gpu_is_left_untouched():
    result = parted.resolve_mig_config(_config([BALANCED]), "all-balanced", H100_GPUS[:1])
    assert result[0]["status"] == "untouched" and result[0]["layout"] is None


def test_subsystem_in_the_device_filter_must_match_too():
    config = _config([dict(BALANCED, **{"device-filter": "0x20B010DE:0x134F10DE"})])
    gpus = [dict(A100_GPUS[0], pci_subsystem_id=0x134F10DE), dict(A100_GPUS[1], pci_subsystem_id=0x145F10DE)]
    result = parted.resolve_mig_config(config, "all-balanced", gpus)
    assert result[0]["status"] == "configure"
    assert result[1]["status"] == "untouched"


def test_gpu_without_mig_is_skipped_for_all_and_for_disabled_but_not_when_named():
    t4 = {"index": 1, "name": "Tesla T4", "pci_device_id": 0x1EB810DE, "mig_capable": False}
    gpus = [A100_GPUS[0], t4]
    for entries in (
        [{"devices": "all", "mig-enabled": True, "mig-devices": {}}],
        [{"devices": [0, 1], "mig-enabled": False}],
    ):
        result = parted.resolve_mig_config(_config(entries), "all-balanced", gpus)
        assert result[1]["status"] == "skip"
        assert result[0]["status"] == "configure"
    named = _config([{"devices": [1], "mig-enabled": True, "mig-devices": {}}])
    with pytest.raises(
        parted.MigConfigError, match=r"mig-configs\.all-balanced\[0\]: GPU 1 \(Tesla T4\) cannot do MIG"
    ):
        parted.resolve_mig_config(named, "all-balanced", gpus)


def test_unknown_config_name_lists_the_available_ones():
    with pytest.raises(parted.MigConfigError, match="unknown MIG config 'all-7g'; available: all-balanced"):
        parted.resolve_mig_config(_config([BALANCED]), "all-7g", A100_GPUS)


def test_gpu_without_pci_device_id_matches_only_entries_without_a_filter():
    assert parted.resolve_mig_config(_config([BALANCED]), "all-balanced", [{"index": 0}])[0]["status"] == "untouched"
    plain = _config([{"devices": "all", "mig-enabled": True, "mig-devices": {}}])
    assert parted.resolve_mig_config(plain, "all-balanced", [{"index": 0}])[0]["status"] == "configure"
    with pytest.raises(parted.MigConfigError, match="gpus\\[0\\]: needs index and pci_device_id"):
        parted.resolve_mig_config(plain, "all-balanced", [{"pci_device_id": 1}])


@pytest.fixture(scope="module")
def shipped():
    if not SHIPPED.is_file():
        pytest.skip(
            "GPU Operator's default mig-parted config not found at %s (the shared "
            "reference folder sits next to the repository)" % SHIPPED
        )
    configmap = yaml.safe_load(SHIPPED.read_text())
    return parted.parse_mig_parted_config(configmap["data"]["config.yaml"])


MEANT_FOR = {
    "A100": [
        "all-disabled",
        "all-enabled",
        "all-1g.5gb",
        "all-1g.5gb.me",
        "all-2g.10gb",
        "all-3g.20gb",
        "all-4g.20gb",
        "all-7g.40gb",
        "all-1g.10gb",
        "all-balanced",
    ],
    "H100": [
        "all-disabled",
        "all-enabled",
        "all-1g.10gb",
        "all-1g.10gb.me",
        "all-1g.20gb",
        "all-2g.20gb",
        "all-3g.40gb",
        "all-4g.40gb",
        "all-7g.80gb",
        "all-balanced",
    ],
}


@pytest.mark.parametrize(("family", "gpus"), [("A100", A100_GPUS), ("H100", H100_GPUS)])
def test_shipped_config_parses_and_resolves(shipped, family, gpus):
    assert len(shipped.names) > 60
    plannable = []
    for name in shipped.names:
        result = parted.resolve_mig_config(shipped, name, gpus)
        assert sorted(result) == list(range(8))
        statuses = {r["status"] for r in result.values()}
        if statuses == {"untouched"}:
            # Every entry of this config filters on other GPUs' device ids (e.g. all-1g.35gb).
            assert all(e.device_filter for e in shipped.configs[name]), name
            assert name not in MEANT_FOR[family], name
            continue
        assert statuses == {"configure"}, name
        layout = result[0]["layout"]
        assert all(r["layout"] == layout for r in result.values())
        try:
            placements = planner.plan_layout(gpus[0]["name"], layout)
        except planner.MigLayoutError as exc:
            # Only configs for other GPUs may fail, and only on their profile names.
            assert "unknown profile" in str(exc), (name, str(exc))
            assert name not in MEANT_FOR[family], (name, str(exc))
            continue
        plannable.append(name)
        assert len(placements) == sum(layout.values())
    assert sorted(MEANT_FOR[family]) == sorted(n for n in plannable if n in MEANT_FOR[family])
    assert set(MEANT_FOR[family]) <= set(plannable)


def test_shipped_balanced_and_1g10gb_pick_the_right_entry_per_gpu(shipped):
    a100 = parted.resolve_mig_config(shipped, "all-balanced", A100_GPUS)[0]["layout"]
    h100 = parted.resolve_mig_config(shipped, "all-balanced", H100_GPUS)[0]["layout"]
    assert a100 == {"1g.5gb": 2, "2g.10gb": 1, "3g.20gb": 1}
    assert h100 == {"1g.10gb": 2, "2g.20gb": 1, "3g.40gb": 1}
    assert parted.resolve_mig_config(shipped, "all-1g.10gb", A100_GPUS)[5]["layout"] == {"1g.10gb": 4}
    assert parted.resolve_mig_config(shipped, "all-1g.10gb", H100_GPUS)[5]["layout"] == {"1g.10gb": 7}
    disabled = parted.resolve_mig_config(shipped, "all-disabled", H100_GPUS)[0]
    assert (disabled["mig_enabled"], disabled["layout"]) == (False, {})
