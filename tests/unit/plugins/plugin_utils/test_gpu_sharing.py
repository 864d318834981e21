"""GPU sharing (time-slicing, MPS): validation, naming and device-plugin ConfigMap rendering (pure)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from ansible_collections.gpuops.cluster.plugins.plugin_utils import gpu_sharing as gs

REPO = Path(__file__).resolve().parents[4]
SHARED = Path(os.environ.get("GPUOPS_SHARED_DIR") or REPO.parent / "shared")
CLUSTERPOLICY_CRD = SHARED / "crds" / "nvidia.com_clusterpolicies.yaml"


def req(strategy="time-slicing", replicas=4, **kwargs):
    base = {
        "strategy": strategy,
        "replicas": replicas,
        "rename_by_default": False,
        "fail_requests_greater_than_one": False,
        "resources": [],
        "config_name": "",
        "kube_node": True,
        "node_name": None,
        "mig": {},
    }
    base.update(kwargs)
    return base


def mig_facts(current):
    return {"gpus": [{"index": 0, "mig": {"current": current, "pending": current}}]}


def test_time_slicing_config_is_the_device_plugin_v1_format():
    config = gs.sharing_config(req(replicas=4))
    assert config == {
        "version": "v1",
        "sharing": {
            "timeSlicing": {
                "renameByDefault": False,
                "failRequestsGreaterThanOne": False,
                "resources": [{"name": "nvidia.com/gpu", "replicas": 4}],
            }
        },
    }
    assert gs.config_name_for(config) == "time-slicing-4"


def test_mps_config_and_name():
    config = gs.sharing_config(req("mps", 2))
    assert config == {
        "version": "v1",
        "sharing": {"mps": {"renameByDefault": False, "resources": [{"name": "nvidia.com/gpu", "replicas": 2}]}},
    }
    assert gs.config_name_for(config) == "mps-2"
    assert gs.sharing_config(req("none")) is None


def test_custom_resources_get_a_content_name():
    resources = [{"name": "nvidia.com/mig-1g.10gb", "replicas": 2}, {"name": "nvidia.com/gpu", "replicas": 3}]
    a = gs.sharing_config(req(resources=resources))
    b = gs.sharing_config(req(resources=list(resources)))
    assert gs.config_name_for(a) == gs.config_name_for(b)
    assert gs.config_name_for(a).startswith("time-slicing-") and gs.config_name_for(a) != "time-slicing-3"
    renamed = gs.sharing_config(req(rename_by_default=True))
    assert gs.config_name_for(renamed) != "time-slicing-4"


@pytest.mark.parametrize(
    ("request_", "pattern"),
    [
        (req(replicas=1), r"gpu_sharing_replicas: must be an int >= 2"),
        (req(replicas="4"), r"gpu_sharing_replicas: must be an int >= 2"),
        (req("sliced"), r"gpu_sharing_strategy: 'sliced' is not one of none, time-slicing, mps"),
        (req(resources=[{"name": "nvidia.com/gpu", "replicas": 1}]), r"gpu_sharing_resources\[0\]\.replicas"),
        (req(resources=[{"name": "amd.com/gpu", "replicas": 2}]), r"gpu_sharing_resources\[0\]\.name"),
        (req(resources=[{"name": "nvidia.com/gpu", "replicas": 2, "x": 1}]), r"gpu_sharing_resources\[0\]\.x"),
        (
            req(resources=[{"name": "nvidia.com/gpu", "replicas": 2}, {"name": "nvidia.com/gpu", "replicas": 3}]),
            r"gpu_sharing_resources\[1\]\.name: nvidia\.com/gpu is listed twice",
        ),
        (req(rename_by_default="yes"), r"gpu_sharing_rename_by_default"),
        (req(config_name="Bad Name"), r"gpu_sharing_config_name: 'Bad Name' is not a valid name"),
        (req(config_name="default"), r"gpu_sharing_config_name: default is the name of the default"),
    ],
)
def test_bad_input_names_the_variable(request_, pattern):
    result = gs.plan_sharing({"h1": {"request": request_, "gpu": None}})
    assert len(result["errors"]) == 1
    assert result["errors"][0].startswith("h1: ")
    assert __import__("re").search(pattern, result["errors"][0]), result["errors"]


def test_mps_is_refused_with_mig_from_facts_or_from_the_mig_plan():
    result = gs.plan_sharing({"h": {"request": req("mps", 2), "gpu": mig_facts(True)}})
    assert result["errors"] == [
        "h: gpu_sharing_strategy: mps cannot share MIG devices, and gpu_probe reports MIG mode on for GPU 0; "
        "use time-slicing or turn MIG off on this host"
    ]
    plan = {"managed": True, "config_name": "gpuops-all-7g.40gb-x1", "expected": {"0": {"mig_enabled": True}}}
    result = gs.plan_sharing({"h": {"request": req("mps", 2, mig=plan), "gpu": mig_facts(False)}})
    assert "its MIG layout (gpuops-all-7g.40gb-x1) enables MIG" in result["errors"][0]
    # The mig role turning MIG off wins over what the probe saw before it ran.
    off = {"managed": True, "config_name": "gpuops-all-disabled", "expected": {"0": {"mig_enabled": False}}}
    assert gs.plan_sharing({"h": {"request": req("mps", 2, mig=off), "gpu": mig_facts(True)}})["errors"] == []
    # Time-slicing of MIG devices is fine.
    assert gs.plan_sharing({"h": {"request": req(), "gpu": mig_facts(True)}})["errors"] == []


def test_names_unique_and_one_method_per_node():
    result = gs.plan_sharing(
        {
            "a": {"request": req(config_name="shared"), "gpu": None},
            "b": {"request": req("mps", 2, config_name="shared"), "gpu": None},
        }
    )
    assert result["errors"] == [
        "b: gpu_sharing_config_name: shared is already used by a for a different config; names must be unique"
    ]
    result = gs.plan_sharing(
        {
            "a": {"request": req(node_name="node-1"), "gpu": None},
            "b": {"request": req("mps", 2, node_name="node-1"), "gpu": None},
        }
    )
    assert result["errors"] == [
        "b: Kubernetes node node-1 gets two configs (time-slicing-4, mps-2): one method per node"
    ]


def test_plan_groups_hosts_and_maps_nodes():
    result = gs.plan_sharing(
        {
            "l40s-1": {"request": req(replicas=4), "gpu": None},
            "l40s-2": {"request": req(replicas=4), "gpu": None},
            "a100": {"request": req("mps", 2, node_name="a100.example"), "gpu": mig_facts(False)},
            "plain": {"request": req("none"), "gpu": None},
            "bare": {"request": req(replicas=8, kube_node=False), "gpu": None},
        }
    )
    assert result["errors"] == []
    assert sorted(result["configs"]) == ["mps-2", "time-slicing-4", "time-slicing-8"]
    assert result["nodes"] == {
        "l40s-1": "time-slicing-4",
        "l40s-2": "time-slicing-4",
        "a100.example": "mps-2",
        "plain": None,
    }


def test_configmap_is_deterministic_and_parses_back():
    plan = gs.plan_sharing(
        {"x": {"request": req(replicas=4), "gpu": None}, "y": {"request": req("mps", 3), "gpu": None}}
    )
    cm = gs.render_configmap(plan["configs"], "gpuops-device-plugin-config", "gpu-operator")
    assert list(cm["data"]) == ["default", "mps-3", "time-slicing-4"]
    assert yaml.safe_load(cm["data"]["default"]) == {"version": "v1"}
    for name, text in cm["data"].items():
        if name != "default":
            assert yaml.safe_load(text) == plan["configs"][name]
    again = gs.plan_sharing(
        {"y": {"request": req("mps", 3), "gpu": None}, "x": {"request": req(replicas=4), "gpu": None}}
    )
    assert gs.render_configmap(again["configs"], "gpuops-device-plugin-config", "gpu-operator") == cm


def test_stale_keys_go_and_keys_of_nodes_outside_the_plan_stay():
    # Run 1 declared replicas 4 for x; the value is fixed to 3: the ConfigMap holds exactly what the
    # inventory declares now, plus what a node outside this run still names.
    plan = gs.plan_sharing({"x": {"request": dict(req(replicas=3), kube_node=True), "gpu": None}})
    existing = {
        "default": "version: v1\n",
        "time-slicing-4": "stale",
        "mps-2": "used elsewhere",
        "junk": "never named",
    }
    nodes = [
        {"metadata": {"name": "x", "labels": {gs.NODE_LABEL: "time-slicing-4"}}},
        {"metadata": {"name": "outside", "labels": {gs.NODE_LABEL: "mps-2"}}},
    ]
    cm = gs.render_configmap(plan["configs"], "cm", "ns", nodes=nodes, existing=existing, managed=list(plan["nodes"]))
    assert sorted(cm["data"]) == ["default", "mps-2", "time-slicing-3"]
    assert cm["data"]["mps-2"] == "used elsewhere"
    assert gs.node_label_changes(plan, nodes) == [
        {"name": "x", "from": "time-slicing-4", "to": "time-slicing-3", "labels": {gs.NODE_LABEL: "time-slicing-3"}}
    ]


@pytest.mark.parametrize(
    ("request_", "needle"),
    [
        ({"replicas": 10**12}, "gpu_sharing_replicas: must be an int >= 2 and <= 128"),
        ({"replicas": 1e12}, "gpu_sharing_replicas: must be an int >= 2 and <= 128"),
        ({"replicas": 129}, "<= 128"),
        ({"resources": [{"name": "nvidia.com/gpu", "replicas": 10**9}]}, "gpu_sharing_resources[0].replicas"),
        (
            {"resources": [{"name": "nvidia.com/gpu", "replicas": 2, "devices": [10**6]}]},
            "gpu_sharing_resources[0].devices",
        ),
        (
            {"resources": [{"name": "nvidia.com/gpu", "replicas": 2, "rename": "a\nb"}]},
            "gpu_sharing_resources[0].rename",
        ),
    ],
)
def test_numbers_are_bounded(request_, needle):
    plan = gs.plan_sharing({"h": {"request": dict(req(replicas=2), **request_), "gpu": None}})
    assert any(needle in e for e in plan["errors"]), plan["errors"]


@pytest.mark.skipif(not CLUSTERPOLICY_CRD.is_file(), reason=f"upstream CRDs not found under {SHARED}")
def test_clusterpolicy_patch_validates_against_the_crd():
    jsonschema = pytest.importorskip("jsonschema")
    crd = yaml.safe_load(CLUSTERPOLICY_CRD.read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v.get("storage")]
    schema = version["schema"]["openAPIV3Schema"]
    spec = {key: {} for key in schema["properties"]["spec"]["required"]}
    patch = gs.clusterpolicy_patch("gpuops-device-plugin-config", "default")
    spec["devicePlugin"] = patch["spec"]["devicePlugin"]
    declared = schema["properties"]["spec"]["properties"]["devicePlugin"]["properties"]["config"]["properties"]
    assert set(patch["spec"]["devicePlugin"]["config"]) <= set(declared)
    jsonschema.validate({"apiVersion": "nvidia.com/v1", "kind": "ClusterPolicy", "spec": spec}, schema)


def _node(name, labels, allocatable):
    return {"metadata": {"name": name, "labels": labels}, "status": {"allocatable": allocatable}}


def test_expected_allocatable_and_node_problems():
    ts = gs.sharing_config(req(replicas=4))
    assert gs.expected_allocatable(ts, 4) == {"nvidia.com/gpu": 16}
    renamed = gs.sharing_config(req(replicas=3, rename_by_default=True))
    assert gs.expected_allocatable(renamed, 2) == {"nvidia.com/gpu.shared": 6}
    node = _node("n", {gs.NODE_LABEL: "time-slicing-4", "nvidia.com/gpu.count": "4"}, {"nvidia.com/gpu": "4"})
    assert gs.node_sharing_problems(node, "time-slicing-4", ts) == ["n: allocatable nvidia.com/gpu is 4, expected 16"]
    node["status"]["allocatable"]["nvidia.com/gpu"] = "16"
    assert gs.node_sharing_problems(node, "time-slicing-4", ts) == []
    assert gs.node_sharing_problems(node, None, None) == [
        "n: label nvidia.com/device-plugin.config='time-slicing-4', expected None"
    ]
    bare = _node("b", {gs.NODE_LABEL: "time-slicing-4"}, {})
    assert "no nvidia.com/gpu.count label yet" in gs.node_sharing_problems(bare, "time-slicing-4", ts)[0]
