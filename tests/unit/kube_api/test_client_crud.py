"""CRUD, conflicts, selectors, pagination and dry-run through the real kubernetes client."""

from __future__ import annotations

import json

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException


def _cm(name, labels=None, data=None):
    return client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name=name, labels=labels),
        data=data or {"k": "v"},
    )


def test_discovery_lists_core_and_groups(api_client):
    core_resources = client.CoreV1Api(api_client).get_api_resources()
    by_name = {r.name: r for r in core_resources.resources}
    assert by_name["pods"].namespaced and by_name["pods"].kind == "Pod"
    assert "po" in by_name["pods"].short_names
    assert (
        by_name["pods/eviction"].kind == "Eviction" and by_name["pods/eviction"].group == "policy"
    )
    assert by_name["nodes/status"].verbs == ["get", "patch", "update"]
    assert not by_name["nodes"].namespaced
    groups = {g.name for g in client.ApisApi(api_client).get_api_versions().groups}
    assert {"apps", "policy", "rbac.authorization.k8s.io", "apiextensions.k8s.io"} <= groups
    version = client.VersionApi(api_client).get_code()
    assert version.major == "1"


def test_configmap_crud_and_metadata(core, namespace):
    created = core.create_namespaced_config_map(namespace, _cm("one"))
    assert created.metadata.uid and created.metadata.creation_timestamp
    assert int(created.metadata.resource_version) > 0
    fetched = core.read_namespaced_config_map("one", namespace)
    assert fetched.data == {"k": "v"}
    fetched.data["k"] = "w"
    updated = core.replace_namespaced_config_map("one", namespace, fetched)
    assert int(updated.metadata.resource_version) > int(created.metadata.resource_version)
    assert updated.metadata.uid == created.metadata.uid
    with pytest.raises(ApiException) as exists:
        core.create_namespaced_config_map(namespace, _cm("one"))
    assert exists.value.status == 409
    assert json.loads(exists.value.body)["reason"] == "AlreadyExists"
    core.delete_namespaced_config_map("one", namespace)
    with pytest.raises(ApiException) as missing:
        core.read_namespaced_config_map("one", namespace)
    body = json.loads(missing.value.body)
    assert missing.value.status == 404
    assert body["kind"] == "Status" and body["message"] == 'configmaps "one" not found'
    assert body["details"] == {"name": "one", "kind": "configmaps"}


def test_stale_resource_version_conflicts(core, namespace):
    first = core.create_namespaced_config_map(namespace, _cm("rv"))
    first.data = {"k": "1"}
    core.replace_namespaced_config_map("rv", namespace, first)
    first.data = {"k": "2"}  # still carries the old resourceVersion
    with pytest.raises(ApiException) as stale:
        core.replace_namespaced_config_map("rv", namespace, first)
    assert stale.value.status == 409
    body = json.loads(stale.value.body)
    assert body["reason"] == "Conflict"
    assert "the object has been modified" in body["message"]


def test_missing_namespace_is_404(core):
    with pytest.raises(ApiException) as missing:
        core.create_namespaced_config_map("no-such-ns", _cm("x"))
    assert missing.value.status == 404
    assert json.loads(missing.value.body)["message"] == 'namespaces "no-such-ns" not found'


def test_invalid_name_is_422(core, namespace):
    with pytest.raises(ApiException) as bad:
        core.create_namespaced_config_map(namespace, _cm("Bad_Name"))
    body = json.loads(bad.value.body)
    assert bad.value.status == 422 and body["reason"] == "Invalid"
    assert body["details"]["causes"][0]["field"] == "metadata.name"


def test_noop_update_keeps_resource_version(core, namespace):
    created = core.create_namespaced_config_map(namespace, _cm("noop"))
    again = core.patch_namespaced_config_map("noop", namespace, {"data": {"k": "v"}})
    assert again.metadata.resource_version == created.metadata.resource_version


def test_label_selectors(core, namespace):
    for index, (tier, zone) in enumerate([("gpu", "a"), ("gpu", "b"), ("cpu", "a"), (None, "c")]):
        labels = {"zone": zone}
        if tier:
            labels["tier"] = tier
        core.create_namespaced_config_map(namespace, _cm(f"cm-{index}", labels))

    def names(selector):
        items = core.list_namespaced_config_map(namespace, label_selector=selector).items
        return sorted(i.metadata.name for i in items)

    assert names("tier=gpu") == ["cm-0", "cm-1"]
    assert names("tier==gpu,zone=a") == ["cm-0"]
    assert names("tier!=gpu") == ["cm-2", "cm-3"]
    assert names("zone in (a, c)") == ["cm-0", "cm-2", "cm-3"]
    assert names("zone notin (a)") == ["cm-1", "cm-3"]
    assert names("tier") == ["cm-0", "cm-1", "cm-2"]
    assert names("!tier") == ["cm-3"]
    with pytest.raises(ApiException) as bad:
        names("tier in (a")
    assert bad.value.status == 400


def test_field_selectors_on_pods(core, namespace):
    for index, node in enumerate(["n1", "n1", "n2"]):
        core.create_namespaced_pod(
            namespace,
            client.V1Pod(
                metadata=client.V1ObjectMeta(name=f"p{index}"),
                spec=client.V1PodSpec(
                    node_name=node, containers=[client.V1Container(name="c", image="busybox")]
                ),
            ),
        )
    on_n1 = core.list_pod_for_all_namespaces(
        field_selector=f"spec.nodeName=n1,metadata.namespace={namespace}"
    )
    assert sorted(p.metadata.name for p in on_n1.items) == ["p0", "p1"]
    by_name = core.list_namespaced_pod(namespace, field_selector="metadata.name=p2")
    assert [p.metadata.name for p in by_name.items] == ["p2"]
    pending = core.list_namespaced_pod(namespace, field_selector="status.phase=Pending")
    assert len(pending.items) == 3  # create resets pod status to Pending, as upstream
    not_n1 = core.list_namespaced_pod(namespace, field_selector="spec.nodeName!=n1")
    assert [p.metadata.name for p in not_n1.items] == ["p2"]
    with pytest.raises(ApiException) as bad:
        core.list_namespaced_pod(namespace, field_selector="spec.bogus=x")
    assert bad.value.status == 400
    assert "field label not supported: spec.bogus" in bad.value.body


def test_pagination_with_continue(core, namespace):
    total = 250
    for index in range(total):
        core.create_namespaced_config_map(namespace, _cm(f"page-{index:04d}"))
    seen, token, pages = [], None, 0
    while True:
        page = core.list_namespaced_config_map(namespace, limit=40, _continue=token)
        pages += 1
        seen += [i.metadata.name for i in page.items]
        token = page.metadata._continue
        if not token:
            assert page.metadata.remaining_item_count is None
            break
        assert page.metadata.remaining_item_count == total - len(seen)
    assert pages == 7
    assert seen == sorted(f"page-{i:04d}" for i in range(total))
    # The same token gives the same page again.
    first = core.list_namespaced_config_map(namespace, limit=40)
    again_a = core.list_namespaced_config_map(
        namespace, limit=40, _continue=first.metadata._continue
    )
    again_b = core.list_namespaced_config_map(
        namespace, limit=40, _continue=first.metadata._continue
    )
    assert [i.metadata.name for i in again_a.items] == [i.metadata.name for i in again_b.items]


def test_dry_run_persists_nothing(core, namespace):
    result = core.create_namespaced_config_map(namespace, _cm("dry"), dry_run="All")
    assert result.metadata.name == "dry" and result.metadata.uid
    with pytest.raises(ApiException):
        core.read_namespaced_config_map("dry", namespace)
    core.create_namespaced_config_map(namespace, _cm("wet"))
    patched = core.patch_namespaced_config_map(
        "wet", namespace, {"data": {"k": "changed"}}, dry_run="All"
    )
    assert patched.data["k"] == "changed"
    assert core.read_namespaced_config_map("wet", namespace).data["k"] == "v"
    core.delete_namespaced_config_map("wet", namespace, dry_run="All")
    assert core.read_namespaced_config_map("wet", namespace).data["k"] == "v"
    with pytest.raises(ApiException) as bad:
        core.create_namespaced_config_map(namespace, _cm("x"), dry_run="Some")
    assert bad.value.status == 400


def test_nodes_cluster_scoped_crud(core):
    node = client.V1Node(
        metadata=client.V1ObjectMeta(name="crud-node", labels={"gpu": "true"}),
        status=client.V1NodeStatus(capacity={"nvidia.com/gpu": "8"}),
    )
    created = core.create_node(node)
    assert created.status.capacity == {"nvidia.com/gpu": "8"}  # nodes keep status on create
    assert created.metadata.namespace is None
    core.patch_node("crud-node", {"spec": {"unschedulable": True}})
    assert core.read_node("crud-node").spec.unschedulable is True
    assert [
        n.metadata.name for n in core.list_node(field_selector="spec.unschedulable=true").items
    ] == ["crud-node"]
    core.delete_node("crud-node")
    assert "crud-node" not in [n.metadata.name for n in core.list_node().items]


def test_builtin_type_error_is_rejected(dynamic, namespace):
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "i", "ports": [{"containerPort": "http"}]}]},
    }
    with pytest.raises(ApiException) as bad:
        dynamic.request("post", f"/api/v1/namespaces/{namespace}/pods", body=pod)
    assert bad.value.status == 400
    assert "cannot unmarshal string" in bad.value.body


def test_invalid_label_value_is_422(core, namespace):
    with pytest.raises(ApiException) as bad:
        core.create_namespaced_config_map(namespace, _cm("labelled", {"gpu": "not ok!"}))
    body = json.loads(bad.value.body)
    assert bad.value.status == 422
    assert body["details"]["causes"][0]["field"] == "metadata.labels"
    assert body["details"]["causes"][0]["message"].startswith(
        'Invalid value: "not ok!": a valid label'
    )


def test_secret_string_data_folds_into_data(core, namespace):
    secret = client.V1Secret(metadata=client.V1ObjectMeta(name="s"), string_data={"token": "abc"})
    created = core.create_namespaced_secret(namespace, secret)
    assert created.data == {"token": "YWJj"} and created.string_data is None
    assert created.type == "Opaque"


def test_json_patch_and_delete_collection(core, namespace):
    core.create_namespaced_config_map(namespace, _cm("jp", {"batch": "1"}, {"a": "1"}))
    core.create_namespaced_config_map(namespace, _cm("other", {"batch": "2"}))
    patched = core.patch_namespaced_config_map(
        "jp",
        namespace,
        [{"op": "add", "path": "/data/b", "value": "2"}, {"op": "remove", "path": "/data/a"}],
    )
    assert patched.data == {"b": "2"}
    with pytest.raises(ApiException) as failed_test:
        core.patch_namespaced_config_map(
            "jp", namespace, [{"op": "test", "path": "/data/b", "value": "x"}]
        )
    assert failed_test.value.status == 422
    core.delete_collection_namespaced_config_map(namespace, label_selector="batch=1")
    remaining = [c.metadata.name for c in core.list_namespaced_config_map(namespace).items]
    assert remaining == ["other"]
