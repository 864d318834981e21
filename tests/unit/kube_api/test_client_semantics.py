"""Server-side apply, strategic merge, status subresource, watch, finalizers and namespace
cascade through the real kubernetes client (typed and dynamic)."""

from __future__ import annotations

import json
import threading

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from conftest import wait_for


def _pod(name, containers, labels=None):
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, labels=labels),
        spec=client.V1PodSpec(containers=containers),
    )


def test_server_side_apply_conflict_and_force(dynamic, namespace):
    configmaps = dynamic.resources.get(api_version="v1", kind="ConfigMap")
    body = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "ssa", "namespace": namespace},
        "data": {"a": "1", "b": "1"},
    }
    created = configmaps.server_side_apply(body=body, namespace=namespace, field_manager="alice")
    entry = created.metadata.managedFields[0]
    assert (entry.manager, entry.operation) == ("alice", "Apply")
    assert entry.fieldsV1.to_dict() == {"f:data": {"f:a": {}, "f:b": {}}}
    bob = {**body, "data": {"a": "2"}}
    with pytest.raises(ApiException) as conflict:
        configmaps.server_side_apply(body=bob, namespace=namespace, field_manager="bob")
    status = json.loads(conflict.value.body)
    assert conflict.value.status == 409 and status["reason"] == "Conflict"
    assert (
        status["message"] == 'Apply failed with 1 conflict: conflict with "alice" using v1: .data.a'
    )
    assert status["details"]["causes"] == [
        {
            "reason": "FieldManagerConflict",
            "message": 'conflict with "alice" using v1',
            "field": ".data.a",
        }
    ]
    forced = configmaps.server_side_apply(
        body=bob, namespace=namespace, field_manager="bob", force_conflicts=True
    )
    assert forced.data.to_dict() == {"a": "2", "b": "1"}
    owners = {e.manager: e.fieldsV1.to_dict() for e in forced.metadata.managedFields}
    assert owners == {"alice": {"f:data": {"f:b": {}}}, "bob": {"f:data": {"f:a": {}}}}
    # Alice stops applying "b": it is hers alone, so it is removed.
    shrunk = configmaps.server_side_apply(
        body={**body, "data": {}}, namespace=namespace, field_manager="alice"
    )
    assert shrunk.data.to_dict() == {"a": "2"}


def test_server_side_apply_dry_run_and_missing_manager(dynamic, namespace):
    configmaps = dynamic.resources.get(api_version="v1", kind="ConfigMap")
    body = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "ssa-dry"},
        "data": {"x": "y"},
    }
    result = configmaps.server_side_apply(
        body=body, namespace=namespace, field_manager="m", dry_run="All"
    )
    assert result.data.to_dict() == {"x": "y"}
    with pytest.raises(ApiException) as missing:
        configmaps.get(name="ssa-dry", namespace=namespace)
    assert missing.value.status == 404
    with pytest.raises(ApiException) as no_manager:
        configmaps.server_side_apply(body=body, namespace=namespace)
    assert no_manager.value.status == 422


def test_strategic_merge_of_containers(core, namespace):
    containers = [
        client.V1Container(
            name="app",
            image="app:1",
            env=[client.V1EnvVar(name="A", value="1"), client.V1EnvVar(name="B", value="1")],
            ports=[client.V1ContainerPort(container_port=80)],
        ),
        client.V1Container(name="sidecar", image="side:1"),
    ]
    core.create_namespaced_pod(namespace, _pod("smp", containers))
    patch = {
        "spec": {
            "containers": [
                {
                    "name": "app",
                    "image": "app:2",
                    "env": [{"name": "B", "value": "2"}, {"name": "C", "value": "3"}],
                    "ports": [{"containerPort": 443}],
                }
            ],
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}],
        }
    }
    patched = core.patch_namespaced_pod("smp", namespace, patch)
    by_name = {c.name: c for c in patched.spec.containers}
    assert set(by_name) == {"app", "sidecar"}  # merged by name, sidecar kept
    assert by_name["app"].image == "app:2"
    assert [(e.name, e.value) for e in by_name["app"].env] == [("A", "1"), ("B", "2"), ("C", "3")]
    assert sorted(p.container_port for p in by_name["app"].ports) == [80, 443]
    deleted = core.patch_namespaced_pod(
        "smp", namespace, {"spec": {"containers": [{"name": "sidecar", "$patch": "delete"}]}}
    )
    assert [c.name for c in deleted.spec.containers] == ["app"]
    # Tolerations are atomic (replace) upstream.
    replaced = core.patch_namespaced_pod(
        "smp", namespace, {"spec": {"tolerations": [{"key": "other", "operator": "Exists"}]}}
    )
    assert [t.key for t in replaced.spec.tolerations] == ["other"]


def test_merge_patch_replaces_lists(core, namespace):
    core.create_namespaced_pod(
        namespace,
        _pod(
            "mp", [client.V1Container(name="a", image="a"), client.V1Container(name="b", image="b")]
        ),
    )
    api = core.api_client
    patched = core.patch_namespaced_pod(
        "mp",
        namespace,
        {"spec": {"containers": [{"name": "a", "image": "a2"}]}},
        _content_type="application/merge-patch+json",
    )
    assert [c.name for c in patched.spec.containers] == ["a"]
    assert api is not None


def test_status_subresource_separates_spec_and_status(core, namespace):
    core.create_namespaced_pod(namespace, _pod("st", [client.V1Container(name="c", image="i")]))
    # Status sent to the main resource is ignored.
    main = core.patch_namespaced_pod(
        "st", namespace, {"metadata": {"labels": {"x": "y"}}, "status": {"phase": "Running"}}
    )
    assert main.status.phase == "Pending" and main.metadata.labels == {"x": "y"}
    # The status endpoint changes status only.
    status = core.patch_namespaced_pod_status(
        "st", namespace, {"metadata": {"labels": {"x": "z"}}, "status": {"phase": "Running"}}
    )
    assert status.status.phase == "Running" and status.metadata.labels == {"x": "y"}
    assert status.metadata.generation == 1


def test_generation_bumps_on_spec_changes_only(api_client, namespace):
    apps = client.AppsV1Api(api_client)
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "gen"},
        "spec": {
            "selector": {"matchLabels": {"app": "gen"}},
            "template": {
                "metadata": {"labels": {"app": "gen"}},
                "spec": {"containers": [{"name": "c", "image": "i"}]},
            },
        },
    }
    assert apps.create_namespaced_deployment(namespace, deployment).metadata.generation == 1
    labelled = apps.patch_namespaced_deployment(
        "gen", namespace, {"metadata": {"labels": {"a": "b"}}}
    )
    assert labelled.metadata.generation == 1
    scaled = apps.patch_namespaced_deployment("gen", namespace, {"spec": {"replicas": 3}})
    assert scaled.metadata.generation == 2


def test_watch_streams_added_modified_deleted(core, namespace):
    start = core.list_namespaced_config_map(namespace).metadata.resource_version
    events = []

    def consume():
        stream = watch.Watch()
        for event in stream.stream(
            core.list_namespaced_config_map, namespace, resource_version=start, timeout_seconds=5
        ):
            events.append((event["type"], event["object"].metadata.name))
            if event["type"] == "DELETED":
                stream.stop()

    consumer = threading.Thread(target=consume)
    consumer.start()
    core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="w"))
    )
    core.patch_namespaced_config_map("w", namespace, {"data": {"k": "v"}})
    core.delete_namespaced_config_map("w", namespace)
    consumer.join(timeout=10)
    assert events == [("ADDED", "w"), ("MODIFIED", "w"), ("DELETED", "w")]


def test_watch_without_resource_version_lists_first_and_times_out(core, namespace):
    core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="pre", labels={"w": "1"}))
    )
    core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="other"))
    )
    stream = watch.Watch()
    seen = [
        (e["type"], e["object"].metadata.name)
        for e in stream.stream(
            core.list_namespaced_config_map, namespace, label_selector="w=1", timeout_seconds=1
        )
    ]
    assert seen == [("ADDED", "pre")]


def test_finalizers_delay_deletion(core, namespace):
    core.create_namespaced_config_map(
        namespace,
        client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name="fin", finalizers=["example.com/hold"])
        ),
    )
    core.delete_namespaced_config_map("fin", namespace)
    held = core.read_namespaced_config_map("fin", namespace)
    assert held.metadata.deletion_timestamp is not None
    core.patch_namespaced_config_map("fin", namespace, {"metadata": {"finalizers": None}})
    with pytest.raises(ApiException) as gone:
        core.read_namespaced_config_map("fin", namespace)
    assert gone.value.status == 404


def test_namespace_cascade(core):
    name = "cascade-test"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    core.create_namespaced_config_map(
        name, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="a"))
    )
    core.create_namespaced_pod(name, _pod("p", [client.V1Container(name="c", image="i")]))
    deleted = core.delete_namespace(name)
    # Upstream answers with the Namespace (not a V1Status), which the typed client hands back
    # as a plain dict.
    assert deleted["status"]["phase"] == "Terminating"
    wait_for(lambda: name not in [n.metadata.name for n in core.list_namespace().items])
    assert core.list_namespaced_config_map(name).items == []
    assert core.list_pod_for_all_namespaces(field_selector=f"metadata.namespace={name}").items == []


def test_namespace_with_held_object_stays_terminating(core):
    name = "cascade-held"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    core.create_namespaced_config_map(
        name, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="h", finalizers=["x/y"]))
    )
    core.delete_namespace(name)
    assert core.read_namespace(name).status.phase == "Terminating"
    with pytest.raises(ApiException) as forbidden:
        core.create_namespaced_config_map(
            name, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="n"))
        )
    assert forbidden.value.status == 403
    core.patch_namespaced_config_map("h", name, {"metadata": {"finalizers": None}})
    wait_for(lambda: name not in [n.metadata.name for n in core.list_namespace().items])


def test_filtered_watch_sees_objects_enter_and_leave(core, namespace):
    core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="m"))
    )
    start = core.list_namespaced_config_map(namespace).metadata.resource_version
    core.patch_namespaced_config_map("m", namespace, {"metadata": {"labels": {"gpu": "yes"}}})
    core.patch_namespaced_config_map("m", namespace, {"metadata": {"labels": {"gpu": "no"}}})
    stream = watch.Watch()
    seen = [
        e["type"]
        for e in stream.stream(
            core.list_namespaced_config_map,
            namespace,
            label_selector="gpu=yes",
            resource_version=start,
            timeout_seconds=1,
        )
    ]
    assert seen == ["ADDED", "DELETED"]


def test_protobuf_bodies_are_refused_with_415(kube_server, namespace):
    # kubectl sends protobuf for built-ins; the stand-in speaks JSON only and says so.
    status, _headers, raw = kube_server.request(
        "POST",
        f"/api/v1/namespaces/{namespace}/configmaps",
        body=b"k8s\x00",
        headers={"Content-Type": "application/vnd.kubernetes.protobuf"},
    )
    body = json.loads(raw)
    assert status == 415 and body["reason"] == "UnsupportedMediaType"


def test_owner_deletion_collects_or_orphans_dependents(core, namespace):
    owner = core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="owner"))
    )
    reference = client.V1OwnerReference(
        api_version="v1", kind="ConfigMap", name="owner", uid=owner.metadata.uid
    )
    for name in ("dep-a", "dep-b"):
        core.create_namespaced_config_map(
            namespace,
            client.V1ConfigMap(
                metadata=client.V1ObjectMeta(name=name, owner_references=[reference])
            ),
        )
    core.delete_namespaced_config_map("owner", namespace)
    assert [c.metadata.name for c in core.list_namespaced_config_map(namespace).items] == []

    owner = core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="owner"))
    )
    reference.uid = owner.metadata.uid
    core.create_namespaced_config_map(
        namespace,
        client.V1ConfigMap(metadata=client.V1ObjectMeta(name="kept", owner_references=[reference])),
    )
    core.delete_namespaced_config_map("owner", namespace, propagation_policy="Orphan")
    kept = core.read_namespaced_config_map("kept", namespace)
    assert kept.metadata.owner_references is None
