"""operator_config: the ConfigMap, ClusterPolicy patch and node label logic mig and gpu_sharing share."""

from __future__ import annotations

from ansible_collections.gpuops.cluster.plugins.plugin_utils import operator_config as oc


def node(name, **labels):
    return {"metadata": {"name": name, "labels": labels}}


def test_label_changes_only_where_they_differ_and_removals():
    nodes = [node("a", x="1"), node("b", x="2"), node("c"), node("d", x="1")]
    changes = oc.label_changes(nodes, {"a": "1", "b": "1", "c": None, "d": None, "gone": "1"}, "x", clear=("y",))
    assert changes == [
        {"name": "b", "from": "2", "to": "1", "labels": {"x": "1", "y": None}},
        {"name": "d", "from": "1", "to": None, "labels": {"x": None, "y": None}},
    ]
    assert oc.missing_nodes(nodes, {"a": 1, "gone": 1}) == ["gone"]


def test_retained_keeps_what_nodes_outside_the_plan_name():
    nodes = [node("in", x="old"), node("out", x="kept"), node("out2", x="unknown")]
    assert oc.retained(nodes, "x", ["in"], ["old", "kept", "other"]) == ["kept"]


def test_configmap_and_policy_patch():
    assert oc.configmap("n", "ns", {"k": "v"}, {"l": "1"}) == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "n", "namespace": "ns", "labels": {"l": "1"}},
        "data": {"k": "v"},
    }
    patch = oc.clusterpolicy_patch(
        "migManager", "cm", "all-disabled", {"migManager": {"enabled": True}, "mig": {"strategy": "mixed"}}
    )
    assert patch == {
        "spec": {
            "migManager": {"config": {"name": "cm", "default": "all-disabled"}, "enabled": True},
            "mig": {"strategy": "mixed"},
        }
    }
    policy = {
        "spec": {
            "migManager": {"enabled": True, "config": {"name": "cm", "default": "all-disabled"}},
            "mig": {"strategy": "mixed"},
            "other": 1,
        }
    }
    assert oc.policy_differs(policy, patch) is False
    policy["spec"]["migManager"]["config"]["name"] = "theirs"
    assert oc.policy_differs(policy, patch) is True
    assert oc.policy_differs({}, patch) is True
