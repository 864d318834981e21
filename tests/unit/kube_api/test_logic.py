"""Pure logic of the stand-in, tested directly: selectors, patches, SSA field sets, schemas."""

from __future__ import annotations

import pytest
from gpuops_kubeapi import fieldsets, patches, selectors
from gpuops_kubeapi import schema as schemas
from gpuops_kubeapi.errors import ApiError

POD_SPEC = schemas.child(schemas.builtin_root("", "v1", "Pod"), "spec")


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ("a=1", {"a": "1"}, True),
        ("a==1", {"a": "2"}, False),
        ("a!=1", {}, True),
        ("a in (1,2),b", {"a": "2", "b": ""}, True),
        ("a notin (1,2)", {"a": "2"}, False),
        ("!a", {"b": "1"}, True),
        ("example.com/gpu=true", {"example.com/gpu": "true"}, True),
    ],
)
def test_label_selector_matching(selector, labels, expected):
    assert selectors.labels_match(selectors.parse_label_selector(selector), labels) is expected


def test_label_selector_object_null_matches_nothing():
    assert selectors.label_selector_object_matcher(None)({"a": "1"}) is False
    assert selectors.label_selector_object_matcher({})({"a": "1"}) is True
    match = selectors.label_selector_object_matcher(
        {"matchLabels": {"a": "1"}, "matchExpressions": [{"key": "b", "operator": "DoesNotExist"}]}
    )
    assert match({"a": "1"}) and not match({"a": "1", "b": "x"})


def test_field_selector_rejects_unknown_label():
    with pytest.raises(ApiError) as error:
        selectors.parse_field_selector("spec.foo=1", ("metadata.name",))
    assert error.value.code == 400


def test_json_merge_patch_rfc7386():
    assert patches.json_merge_patch(
        {"a": {"b": 1, "c": 2}, "l": [1]}, {"a": {"b": None}, "l": [2]}
    ) == {
        "a": {"c": 2},
        "l": [2],
    }


def test_json_patch_operations():
    doc = {"a": [1, 2], "b": {"c": 1}}
    result = patches.json_patch(
        doc,
        [
            {"op": "add", "path": "/a/-", "value": 3},
            {"op": "remove", "path": "/b/c"},
            {"op": "replace", "path": "/a/0", "value": 0},
            {"op": "copy", "from": "/a", "path": "/d"},
        ],
    )
    assert result == {"a": [0, 2, 3], "b": {}, "d": [0, 2, 3]}
    assert doc == {"a": [1, 2], "b": {"c": 1}}


def test_strategic_merge_uses_upstream_patch_metadata():
    original = {
        "containers": [
            {"name": "a", "image": "1", "volumeMounts": [{"mountPath": "/x", "name": "v"}]}
        ],
        "volumes": [{"name": "v", "emptyDir": {}}],
        "tolerations": [{"key": "t1"}],
    }
    patch = {
        "containers": [{"name": "a", "volumeMounts": [{"mountPath": "/y", "name": "w"}]}],
        "volumes": [{"name": "w", "emptyDir": {}}],
        "tolerations": [{"key": "t2"}],
    }
    merged = patches.strategic_merge_patch(original, patch, POD_SPEC)
    assert [m["mountPath"] for m in merged["containers"][0]["volumeMounts"]] == ["/x", "/y"]
    assert [v["name"] for v in merged["volumes"]] == ["v", "w"]
    assert merged["tolerations"] == [{"key": "t2"}]  # no patch strategy: replaced
    assert merged["containers"][0]["image"] == "1"


def test_strategic_merge_directives():
    original = {"containers": [{"name": "a"}, {"name": "b"}], "nodeSelector": {"x": "1", "y": "2"}}
    assert patches.strategic_merge_patch(
        original, {"containers": [{"name": "a", "$patch": "delete"}]}, POD_SPEC
    )["containers"] == [{"name": "b"}]
    assert patches.strategic_merge_patch(
        original, {"containers": [{"name": "c"}, {"$patch": "replace"}]}, POD_SPEC
    )["containers"] == [{"name": "c"}]
    assert patches.strategic_merge_patch(original, {"nodeSelector": {"x": None}}, POD_SPEC)[
        "nodeSelector"
    ] == {"y": "2"}
    finalizers = schemas.child(schemas.builtin_root("", "v1", "ConfigMap"), "metadata")
    merged = patches.strategic_merge_patch(
        {"finalizers": ["a"]}, {"finalizers": ["b", "a"]}, finalizers
    )
    assert merged["finalizers"] == ["a", "b"]  # merge-strategy primitive list: union


def test_fields_v1_round_trip_and_rendering():
    pod = {
        "metadata": {"name": "p", "labels": {"app": "x"}},
        "spec": {"containers": [{"name": "c", "image": "i", "ports": [{"containerPort": 80}]}]},
    }
    root = schemas.builtin_root("", "v1", "Pod")
    paths = fieldsets.object_fields(pod, root, "main")
    tree = fieldsets.to_fields_v1(paths)
    assert tree["f:metadata"] == {"f:labels": {"f:app": {}}}
    container = tree["f:spec"]["f:containers"]['k:{"name":"c"}']
    assert "." in container and container["f:image"] == {}
    assert 'k:{"containerPort":80}' in container["f:ports"]
    assert fieldsets.from_fields_v1(tree) == paths
    image_path = ("f:spec", "f:containers", 'k:{"name":"c"}', "f:image")
    assert fieldsets.render_field(image_path) == '.spec.containers[name="c"].image'


def test_server_side_apply_conflicts_only_on_differing_values():
    live = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}}
    merged, managed = fieldsets.server_side_apply(None, live, "one", False, None, "v1", "t")
    live = {**merged, "metadata": {**merged["metadata"], "managedFields": managed}}
    # Same value: shared ownership, no conflict.
    _unused, shared = fieldsets.server_side_apply(
        live, {"data": {"a": "1"}}, "two", False, None, "v1", "t"
    )
    assert sorted(e["manager"] for e in shared) == ["one", "two"]
    with pytest.raises(ApiError) as error:
        fieldsets.server_side_apply(live, {"data": {"a": "2"}}, "two", False, None, "v1", "t")
    assert error.value.code == 409


def test_crd_structural_validation_messages():
    node = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "required": ["size"],
                "properties": {
                    "size": {"type": "integer", "minimum": 1},
                    "mode": {"type": "string", "enum": ["a", "b"]},
                    "name": {"type": "string", "maxLength": 3},
                    "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                    "count": {"x-kubernetes-int-or-string": True},
                },
            }
        },
    }
    obj = {
        "spec": {"size": 0, "mode": "c", "name": "long", "free": {"x": 1}, "count": "5", "extra": 1}
    }
    dropped = schemas.prune(obj, node)
    assert dropped == ["spec.extra"] and obj["spec"]["free"] == {"x": 1}
    causes = {c["field"]: c for c in schemas.validate_structural(obj, node)}
    assert (
        causes["spec.size"]["message"]
        == "Invalid value: 0: spec.size in body should be greater than or equal to 1"
    )
    assert causes["spec.mode"]["message"] == 'Unsupported value: "c": supported values: "a", "b"'
    assert causes["spec.name"]["reason"] == "FieldValueTooLong"
    assert "spec.count" not in causes
    missing = schemas.validate_structural({"spec": {}}, node)
    assert missing == [
        {"reason": "FieldValueRequired", "message": "Required value", "field": "spec.size"}
    ]


def test_prune_keeps_root_metadata_under_preserve_unknown_fields():
    """A root schema with x-kubernetes-preserve-unknown-fields that declares `metadata: {type:
    object}` must not prune metadata (namespace, labels): the apiserver never does."""
    from gpuops_kubeapi import schema as schemas

    node = {
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
        "properties": {"metadata": {"type": "object"}, "spec": {"type": "object"}},
    }
    obj = {"metadata": {"name": "a", "namespace": "ns", "labels": {"x": "y"}}, "spec": {"k": 1}}
    assert schemas.prune(obj, node) == ["spec.k"]
    assert obj["metadata"] == {"name": "a", "namespace": "ns", "labels": {"x": "y"}}
