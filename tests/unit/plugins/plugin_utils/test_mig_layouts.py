"""MIG layouts from the inventory: validation, per-GPU resolution, naming and rendering (pure)."""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path

import pytest
import yaml
from ansible_collections.gpuops.cluster.plugins.module_utils.mig.parted import (
    parse_mig_parted_config,
    resolve_mig_config,
)
from ansible_collections.gpuops.cluster.plugins.module_utils.mig.planner import MigLayoutError, plan_layout
from ansible_collections.gpuops.cluster.plugins.plugin_utils import mig_layouts as ml

REPO = Path(__file__).resolve().parents[4]
FIXTURES = REPO / "sandbox" / "fixtures"
SHARED = Path(os.environ.get("GPUOPS_SHARED_DIR") or REPO.parent / "shared")
CLUSTERPOLICY_CRD = SHARED / "crds" / "nvidia.com_clusterpolicies.yaml"
OPERATOR_MIG_CONFIG = SHARED / "reference" / "gpu-operator-default-mig-parted-config.yaml"
needs_shared = pytest.mark.skipif(
    not CLUSTERPOLICY_CRD.is_file(), reason=f"upstream CRDs not found under {SHARED} (set GPUOPS_SHARED_DIR)"
)
LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")

# NVML names and PCI ids of the simulator's models (sandbox/python/gpuops_sim/data/gpu_models.yml).
MODELS = yaml.safe_load((REPO / "sandbox" / "python" / "gpuops_sim" / "data" / "gpu_models.yml").read_text())


def _model(key):
    return MODELS[key]


def facts_for(fixture, lost=(), source="nvml"):
    """gpu_probe-shaped facts built from a sandbox fixture (only the fields the role reads)."""
    doc = yaml.safe_load((FIXTURES / f"{fixture}.yml").read_text())
    gpus = []
    for index, gpu in enumerate(doc["gpus"]):
        model = _model(gpu["model"])
        mig = gpu.get("mig") or {}
        capable = bool(model.get("mig_geometry"))
        instances = []
        for gi_id, dev in enumerate(gpu.get("mig_devices") or [], start=1):
            cis = dev.get("compute_instances", [{"profile": dev["profile"]}])
            instances.append({"id": gi_id, "profile": dev["profile"], "compute_instances": cis})
        entry = {
            "index": index if source == "nvml" else None,
            "name": model["nvml_name"] if source == "nvml" else None,
            "pci": {"bus_id": gpu["bus_id"], "device_id": model["pci_device_id"], "vendor_id": "0x10de"},
            "mig": {
                "capable": capable if source == "nvml" else None,
                "current": bool(mig.get("current")),
                "pending": bool(mig.get("pending")),
                "gpu_instances": instances,
            }
            if source == "nvml"
            else None,
            "health": {"status": "healthy", "reasons": []},
        }
        if index in lost:
            entry.update(name=None, health={"status": "unhealthy", "reasons": ["GPU is lost"]})
            entry["mig"] = {"capable": None, "current": None, "pending": None, "gpu_instances": []}
        gpus.append(entry)
    return {"source": source, "gpus": gpus, "driver": {"nvml": {"reason": None if source == "nvml" else "not loaded"}}}


def request(**kwargs):
    base = {
        "mode": "host",
        "layout": {},
        "config_name": "",
        "parted_config": {},
        "config_file": "",
        "config_text": "",
        "gpu_layouts": [],
        "enabled": True,
        "kube_node": True,
        "node_name": None,
    }
    base.update(kwargs)
    return base


@pytest.fixture(scope="module")
def a100():
    return facts_for("a100-sxm4-40gb-x8")


@pytest.fixture(scope="module")
def h100():
    return facts_for("h100-80gb-hbm3-x8")


def test_model_data_is_what_the_facts_helper_expects(a100, h100):
    assert {g["name"] for g in a100["gpus"]} == {"NVIDIA A100-SXM4-40GB"}
    assert {g["name"] for g in h100["gpus"]} == {"NVIDIA H100 80GB HBM3"}
    assert all(g["mig"]["capable"] for g in a100["gpus"] + h100["gpus"])


def test_layout_applies_to_every_gpu_with_the_planner_placements(a100):
    layout = {"3g.20gb": 1, "2g.10gb": 1, "1g.5gb": 2}
    plan = ml.plan_host("h", request(layout=layout), a100)
    assert plan["managed"] and plan["mode"] == "host"
    assert plan["entries"] == [{"devices": "all", "mig-enabled": True, "mig-devices": layout}]
    assert ml.partition_args(plan) == {
        "config": {"version": "v1", "mig-configs": {plan["config_name"]: plan["entries"]}},
        "config_name": plan["config_name"],
        "gpus": ["all"],
    }
    want = ["%s@%d" % p for p in plan_layout("NVIDIA A100-SXM4-40GB", layout)]
    assert all(plan["states"][i]["placements"] == want for i in range(8))
    assert plan["expected"][0] == {"mig_enabled": True, "layout": dict(sorted(layout.items()))}


def test_nothing_declared_means_unmanaged(a100):
    plan = ml.plan_host("h", request(), a100)
    assert not plan["managed"] and plan["entries"] is None
    assert not ml.plan_host("h", request(mode="none", layout={"7g.40gb": 1}), a100)["managed"]


def test_mig_disabled_everywhere(h100):
    plan = ml.plan_host("h", request(enabled=False), h100)
    assert plan["entries"] == [{"devices": "all", "mig-enabled": False}]
    assert {s["mig_enabled"] for s in plan["states"].values()} == {False}
    assert ml.config_name_for(plan["entries"]) == "gpuops-all-disabled"


def test_per_gpu_overrides_make_disjoint_entries(a100):
    plan = ml.plan_host(
        "h",
        request(
            layout={"1g.5gb": 7},
            gpu_layouts=[{"gpus": [0, 1], "layout": {"7g.40gb": 1}}, {"gpus": [7], "mig_enabled": False}],
        ),
        a100,
    )
    # Every GPU matches one entry: the host-wide one lists the GPUs without an override.
    assert plan["entries"] == [
        {"devices": [2, 3, 4, 5, 6], "mig-enabled": True, "mig-devices": {"1g.5gb": 7}},
        {"devices": [0, 1], "mig-enabled": True, "mig-devices": {"7g.40gb": 1}},
        {"devices": [7], "mig-enabled": False},
    ]
    assert plan["states"][7]["source"] == "mig_gpu_layouts[1]"
    assert plan["states"][3]["source"] == "mig_layout"
    assert plan["states"][0]["layout"] == {"7g.40gb": 1}
    assert plan["config_name"].startswith("gpuops-custom-")


def test_lost_gpu_is_skipped_and_reported():
    facts = facts_for("a100-one-lost", lost=(3,))
    plan = ml.plan_host("gpu-a100-02", request(layout={"3g.20gb": 2}), facts)
    assert plan["gpus"] == ["0", "1", "2", "4", "5", "6", "7"]
    assert plan["states"][3]["status"] == "skip"
    assert any("GPU 3" in w and "lost" in w for w in plan["warnings"])


def test_non_mig_gpus_are_skipped_with_devices_all():
    facts = facts_for("l40s-x4")
    assert not any(g["mig"]["capable"] for g in facts["gpus"])
    plan = ml.plan_host("eks", request(layout={"1g.5gb": 1}), facts)
    assert {g["status"] for g in plan["states"].values()} == {"skip"}


@pytest.mark.parametrize(
    ("req", "pattern"),
    [
        ({"layout": {"3g.20gb": 3}}, r"mig_layout on GPU 0 .*3g\.20gb.*maximum of 2"),
        ({"layout": {"3g.40gb": 1}}, r"mig_layout on GPU 0 .*unknown profile '3g\.40gb'.*allowed: 1g\.5gb"),
        ({"layout": {"4g.20gb": 1, "3g.20gb": 1, "1g.5gb": 1}}, r"mig_layout.*no room"),
        ({"layout": {"1g.5gb": "2"}}, r"mig_layout\.1g\.5gb: count must be an integer 0-64, got '2'"),
        ({"layout": {"1g.5gb": 10**12}}, r"mig_layout\.1g\.5gb: count must be an integer 0-64"),
        ({"layout": {"1g.5gb": {"count": 1}}}, r"mig_layout\.1g\.5gb: the role takes a count"),
        ({"layout": {"1g.5gb": 1}, "config_name": "x"}, r"mig_layout and mig_config_name"),
        ({"layout": {"1g.5gb": 1}, "enabled": False}, r"mig_enabled is false but mig_layout"),
        ({"mode": "both"}, r"mig_mode: 'both' is not one of host, operator, none"),
        (
            {"gpu_layouts": [{"gpus": [9], "layout": {"1g.5gb": 1}}]},
            r"mig_gpu_layouts\[0\]\.gpus: GPU 9 not on this host",
        ),
        (
            {"gpu_layouts": [{"gpus": [1], "mig_enabled": False}, {"gpus": [2, 1], "mig_enabled": False}]},
            r"mig_gpu_layouts\[1\]\.gpus: GPU 1 is already in mig_gpu_layouts\[0\]",
        ),
        ({"gpu_layouts": [{"gpus": [0]}]}, r"mig_gpu_layouts\[0\]\.layout: required"),
        ({"gpu_layouts": [{"gpus": "0", "layout": {}}]}, r"mig_gpu_layouts\[0\]\.gpus"),
        ({"gpu_layouts": [{"gpus": [0], "layouts": {}}]}, r"mig_gpu_layouts\[0\]\.layouts: unknown key"),
        ({"config_name": "all-1g.5gb"}, r"mig_config_name is set but no config holds it"),
        (
            {
                "config_name": "nope",
                "parted_config": {"version": "v1", "mig-configs": {"a": [{"devices": "all", "mig-enabled": False}]}},
            },
            r"mig_config_name: 'nope' is not in mig_parted_config; it has: a",
        ),
        ({"config_name": "a", "parted_config": {"version": "v2", "mig-configs": {}}}, r"mig_parted_config: version"),
    ],
)
def test_bad_input_names_the_variable(a100, req, pattern):
    with pytest.raises(MigLayoutError, match=pattern):
        ml.plan_host("h", request(**req), a100)


def test_plan_hosts_collects_every_error_and_names_hosts(a100, h100):
    result = ml.plan_hosts(
        {
            "good": {"request": request(layout={"7g.40gb": 1}), "gpu": a100},
            "bad-a": {"request": request(layout={"7g.40gb": 2}), "gpu": a100},
            "bad-h": {"request": request(layout={"3g.20gb": 1}), "gpu": h100},
            "nofacts": {"request": request(layout={"7g.40gb": 1}), "gpu": None},
            "notinplay": {"request": None, "gpu": a100},
        }
    )
    text = "\n".join(result["errors"])
    assert len(result["errors"]) == 4
    assert re.search(r"^bad-a: mig_layout on GPU 0 .*7g\.40gb.*maximum of 1", text, re.M)
    assert re.search(r"^bad-h: mig_layout on GPU 0 \(NVIDIA H100 80GB HBM3\): .*unknown profile '3g\.20gb'", text, re.M)
    assert re.search(r"^nofacts: no gpu facts", text, re.M)
    assert re.search(r"^notinplay: the mig role did not collect", text, re.M)
    assert result["hosts"]["good"]["managed"]


def test_host_mode_needs_nvml_operator_mode_uses_the_pci_model():
    facts = facts_for("driver-not-loaded", source="pci")
    with pytest.raises(MigLayoutError, match=r"mig_mode host needs NVML.*not loaded"):
        ml.plan_host("new", request(layout={"7g.80gb": 1}), facts)
    plan = ml.plan_host("new", request(mode="operator", layout={"7g.80gb": 1}), facts)
    assert plan["states"][0]["model"].startswith("A100") and plan["states"][0]["placements"] == ["7g.80gb@0"]
    with pytest.raises(MigLayoutError, match=r"unknown profile '7g\.40gb'"):
        ml.plan_host("new", request(mode="operator", layout={"7g.40gb": 1}), facts)


@needs_shared
def test_gpu_operator_configmap_file_is_accepted_and_renamed(a100):
    path = str(OPERATOR_MIG_CONFIG)
    plan = ml.plan_host("h", request(config_name="all-2g.10gb", config_file=path), a100)
    assert {s["status"] for s in plan["states"].values()} == {"configure"}
    assert {tuple(s["layout"].items()) for s in plan["states"].values()} == {(("2g.10gb", 3),)}
    # Same entries as a plain layout: same deterministic name.
    same = ml.plan_host("h2", request(layout={"2g.10gb": 3}), a100)
    assert plan["config_name"] == same["config_name"] == "gpuops-all-2g.10gb-x3"
    with pytest.raises(
        MigLayoutError,
        match=r"mig_config_name=all-2g.48gb \(mig_config_file .*gpu-operator-default-mig-parted-config.yaml entry 0\) "
        r"on GPU 0 .*unknown profile .2g.48gb.",
    ):
        ml.plan_host("h", request(config_name="all-2g.48gb", config_file=path), a100)


def test_config_names_are_deterministic_valid_labels_and_distinct():
    layouts = [
        [{"devices": "all", "mig-enabled": True, "mig-devices": {"1g.5gb+me": 1, "1g.5gb": 6}}],
        [{"devices": "all", "mig-enabled": True, "mig-devices": {"1g.5gb": 6, "1g.5gb+me": 1}}],
        [{"devices": "all", "mig-enabled": True, "mig-devices": {"1g.5gb": 7}}],
        [{"devices": "all", "mig-enabled": True, "mig-devices": {}}],
        [{"devices": [0], "mig-enabled": True, "mig-devices": {"1g.5gb": 7}}],
        [{"devices": "all", "device-filter": "0x20B010DE", "mig-enabled": True, "mig-devices": {"1g.5gb": 7}}],
        [{"devices": "all", "mig-enabled": True, "mig-devices": {"1g.10gb": 4, "1g.5gb": 1, "2g.10gb": 1}}],
    ]
    names = [ml.config_name_for(copy.deepcopy(e)) for e in layouts]
    assert names[0] == names[1] == "gpuops-all-1g.5gb-x6-1g.5gb.me-x1"
    assert names[2] == "gpuops-all-1g.5gb-x7" and names[3] == "gpuops-all-enabled"
    assert names[4].startswith("gpuops-custom-") and names[5].startswith("gpuops-custom-")
    assert len(set(names[2:])) == len(names) - 2
    assert all(LABEL_VALUE.match(n) for n in names)
    assert [ml.config_name_for(e) for e in layouts] == names


def test_configmap_holds_one_config_per_layout_and_all_disabled(a100, h100):
    hosts = {
        "a1": {"request": request(mode="operator", layout={"3g.20gb": 2}), "gpu": a100},
        "a2": {"request": request(mode="operator", layout={"3g.20gb": 2}), "gpu": a100},
        "h1": {"request": request(mode="operator", layout={"1g.10gb": 7}), "gpu": h100},
        "host": {"request": request(layout={"7g.40gb": 1}), "gpu": a100},
    }
    result = ml.plan_hosts(hosts)
    assert result["errors"] == []
    assert sorted(result["configs"]) == ["gpuops-all-1g.10gb-x7", "gpuops-all-3g.20gb-x2"]
    assert result["operator_nodes"] == {
        "a1": "gpuops-all-3g.20gb-x2",
        "a2": "gpuops-all-3g.20gb-x2",
        "h1": "gpuops-all-1g.10gb-x7",
    }
    cm = ml.operator_configmap(result, "gpuops-mig-parted-config", "gpu-operator")
    assert cm["metadata"] == {"name": "gpuops-mig-parted-config", "namespace": "gpu-operator"}
    assert list(cm["data"]) == ["config.yaml"]
    parsed = parse_mig_parted_config(cm["data"]["config.yaml"])
    assert parsed.names == ["all-disabled", "gpuops-all-1g.10gb-x7", "gpuops-all-3g.20gb-x2"]
    # Rendering is byte-for-byte deterministic whatever the order of the hosts.
    again = ml.plan_hosts(dict(reversed(list(hosts.items()))))
    assert ml.operator_configmap(again, "gpuops-mig-parted-config", "gpu-operator") == cm
    # What mig-parted resolves from the ConfigMap is what the role planned for each node.
    gpus = [{"index": i, "name": "NVIDIA A100-SXM4-40GB", "pci_device_id": 0x20B010DE} for i in range(2)]
    resolved = resolve_mig_config(parsed, "gpuops-all-3g.20gb-x2", gpus)
    assert resolved[1]["layout"] == {"3g.20gb": 2}


def test_operator_mode_needs_a_kube_node(a100):
    result = ml.plan_hosts(
        {"bm": {"request": request(mode="operator", layout={"7g.40gb": 1}, kube_node=False), "gpu": a100}}
    )
    assert result["errors"] == [
        "bm: mig_mode operator needs a Kubernetes node (gpuops_kube_node is not true); use mig_mode host"
    ]


def _labelled(name, **labels):
    return {"metadata": {"name": name, "labels": labels}}


def test_configmap_keeps_only_configs_that_nodes_outside_the_plan_still_name():
    plan = {
        "configs": {"gpuops-all-7g.40gb-x1": [{"devices": "all", "mig-enabled": True, "mig-devices": {"7g.40gb": 1}}]},
        "operator_nodes": {"a1": "gpuops-all-7g.40gb-x1"},
    }
    existing = ml.render_mig_parted_config(
        {
            "gpuops-all-1g.5gb-x7": [{"devices": "all", "mig-enabled": True, "mig-devices": {"1g.5gb": 7}}],
            "gpuops-all-2g.10gb-x3": [{"devices": "all", "mig-enabled": True, "mig-devices": {"2g.10gb": 3}}],
            "gpuops-all-3g.20gb-x2": [{"devices": "all", "mig-enabled": True, "mig-devices": {"3g.20gb": 2}}],
        }
    )
    nodes = [
        _labelled("a1", **{"nvidia.com/mig.config": "gpuops-all-3g.20gb-x2"}),  # in the plan: relabelled
        _labelled("other", **{"nvidia.com/mig.config": "gpuops-all-1g.5gb-x7"}),  # outside: keeps its config
        _labelled("plain"),
    ]
    cm = ml.operator_configmap(plan, "cm", "ns", nodes, existing)
    names = parse_mig_parted_config(cm["data"]["config.yaml"]).names
    # The stale configs (2g, and the 3g only a1 named before this run) are gone.
    assert names == ["all-disabled", "gpuops-all-1g.5gb-x7", "gpuops-all-7g.40gb-x1"]
    for junk in ("not: [valid", "", None):
        assert parse_mig_parted_config(
            ml.operator_configmap(plan, "cm", "ns", nodes, junk)["data"]["config.yaml"]
        ).names == [
            "all-disabled",
            "gpuops-all-7g.40gb-x1",
        ]


def test_node_label_changes_are_only_the_nodes_that_differ():
    plan = {"operator_nodes": {"a1": "gpuops-x", "a2": "gpuops-x", "gone": "gpuops-x"}}
    nodes = [
        _labelled("a1", **{"nvidia.com/mig.config": "gpuops-x"}),
        _labelled("a2", **{"nvidia.com/mig.config": "all-disabled"}),
    ]
    assert ml.node_label_changes(plan, nodes) == [
        {
            "name": "a2",
            "from": "all-disabled",
            "to": "gpuops-x",
            "labels": {"nvidia.com/mig.config": "gpuops-x", "nvidia.com/mig.config.state": None},
        }
    ]


def test_layout_file_is_mig_parted_v1_with_one_config(a100):
    plan = ml.plan_host("h", request(layout={"3g.20gb": 1, "1g.5gb": 3}), a100)
    text = ml.render_host_layout_file(plan)
    parsed = parse_mig_parted_config(text)
    assert parsed.names == [plan["config_name"]]
    with pytest.raises(MigLayoutError, match="no MIG layout declared"):
        ml.render_host_layout_file(ml.plan_host("h", request(), a100))


@needs_shared
def test_clusterpolicy_patch_validates_against_the_crd():
    jsonschema = pytest.importorskip("jsonschema")
    crd = yaml.safe_load(CLUSTERPOLICY_CRD.read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v.get("storage")]
    schema = version["schema"]["openAPIV3Schema"]
    base = {key: {} for key in schema["properties"]["spec"]["required"]}
    for strategy in (None, "mixed"):
        patch = ml.clusterpolicy_mig_patch("gpuops-mig-parted-config", strategy)
        policy = {"apiVersion": "nvidia.com/v1", "kind": "ClusterPolicy", "metadata": {"name": "cluster-policy"}}
        policy["spec"] = dict(base, **patch["spec"])
        jsonschema.validate(policy, schema)
    bad = {"apiVersion": "nvidia.com/v1", "kind": "ClusterPolicy", "metadata": {"name": "x"}}
    bad["spec"] = dict(base, migManager={"config": {"name": "x", "default": "gpuops-all-disabled"}})
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


def _node(name, labels=None, annotations=None):
    return {"metadata": {"name": name, "labels": labels or {}, "annotations": annotations or {}}}


def test_operator_status():
    targets = {"n1": "cfg-a", "n2": "cfg-b", "n3": "cfg-a"}
    nodes = [
        _node("n1", {"nvidia.com/mig.config": "cfg-a", "nvidia.com/mig.config.state": "success"}),
        _node("n2", {"nvidia.com/mig.config": "cfg-b", "nvidia.com/mig.config.state": "pending"}),
        _node("n3", {"nvidia.com/mig.config": "old", "nvidia.com/mig.config.state": "success"}),
    ]
    status = ml.operator_status(nodes, targets)
    assert status["success"] == ["n1"] and not status["done"]
    assert [p["node"] for p in status["pending"]] == ["n2", "n3"]
    nodes[1]["metadata"]["labels"]["nvidia.com/mig.config.state"] = "failed"
    nodes[1]["metadata"]["annotations"] = {"sandbox.gpuops.io/mig.config.error": "GPU 3 busy", "other": "x"}
    status = ml.operator_status(nodes, targets)
    assert status["done"]
    assert status["failed"] == [
        {
            "node": "n2",
            "config": "cfg-b",
            "state": "failed",
            "annotations": {"sandbox.gpuops.io/mig.config.error": "GPU 3 busy"},
        }
    ]
    assert ml.operator_status(nodes[:1], {"n1": "cfg-a", "gone": "x"})["missing"] == ["gone"]


def test_verify_host_compares_probe_with_plan(a100):
    plan = ml.plan_host("h", request(layout={"3g.20gb": 1, "2g.10gb": 1}), a100)
    probe = copy.deepcopy(a100)
    assert ml.verify_host(plan, probe)[0] == "GPU 0: MIG mode is off, expected on"
    for gpu in probe["gpus"]:
        gpu["mig"]["current"] = True
        gpu["mig"]["gpu_instances"] = [
            {"profile": "3g.20gb", "compute_instances": [{"id": 0}]},
            {"profile": "2g.10gb", "compute_instances": [{"id": 0}]},
        ]
    assert ml.verify_host(plan, probe) == []
    probe["gpus"][5]["mig"]["gpu_instances"][1]["compute_instances"] = []  # a GI without a CI is no device
    assert ml.verify_host(plan, probe) == ["GPU 5: MIG devices {'3g.20gb': 1}, expected {'2g.10gb': 1, '3g.20gb': 1}"]
    # Keys come back as strings after a round trip through Ansible facts.
    stringly = dict(plan, expected={str(k): v for k, v in plan["expected"].items()})
    assert ml.verify_host(stringly, probe) == ml.verify_host(plan, probe)


def test_plain_strips_subclasses():
    class Tagged(str):
        pass

    class TaggedList(list):
        pass

    out = ml.plain({Tagged("a"): TaggedList([Tagged("x"), 1, True, None, 1.5])})
    assert out == {"a": ["x", 1, True, None, 1.5]}
    # exact types: plain() must return builtins, not subclasses of them
    assert type(next(iter(out))) is str  # pylint: disable=unidiomatic-typecheck
    assert type(out["a"]) is list  # pylint: disable=unidiomatic-typecheck
    assert type(out["a"][0]) is str  # pylint: disable=unidiomatic-typecheck
