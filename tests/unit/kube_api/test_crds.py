"""CustomResourceDefinitions: discovery follows CRDs, custom resources are pruned, defaulted
and validated against the CRD's openAPIV3Schema (the upstream CRDs in ../shared/crds where they
are, else the sandbox's own, which test_sandbox_crds.py keeps faithful to them)."""

from __future__ import annotations

import json

import pytest
import yaml
from kubernetes.client.rest import ApiException
from kubernetes.dynamic.exceptions import ConflictError, ResourceNotFoundError

from conftest import CRDS, wait_for


def _crd(file_name):
    with open(CRDS / file_name, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def _nodepool(name, **spec_overrides):
    spec = {
        "template": {
            "spec": {
                "nodeClassRef": {
                    "group": "karpenter.k8s.aws",
                    "kind": "EC2NodeClass",
                    "name": "gpu",
                },
                "requirements": [
                    {"key": "karpenter.k8s.aws/instance-family", "operator": "In", "values": ["p5"]}
                ],
            }
        },
        "limits": {"nvidia.com/gpu": 64},
    }
    spec.update(spec_overrides)
    return {
        "apiVersion": "karpenter.sh/v1",
        "kind": "NodePool",
        "metadata": {"name": name},
        "spec": spec,
    }


@pytest.fixture(scope="module")
def nodepools(dynamic):
    crds = dynamic.resources.get(
        api_version="apiextensions.k8s.io/v1", kind="CustomResourceDefinition"
    )
    try:
        crds.create(body=_crd("karpenter.sh_nodepools.yaml"))
    except ConflictError:  # another test of this session (a playbook) installed it already
        pass
    yield wait_for(lambda: dynamic.resources.get(api_version="karpenter.sh/v1", kind="NodePool"))
    crds.delete(name="nodepools.karpenter.sh")


def test_crd_status_is_established(dynamic, nodepools):
    crds = dynamic.resources.get(
        api_version="apiextensions.k8s.io/v1", kind="CustomResourceDefinition"
    )
    crd = crds.get(name="nodepools.karpenter.sh")
    conditions = {c["type"]: c["status"] for c in crd.status.conditions}
    assert conditions == {"NamesAccepted": "True", "Established": "True"}
    assert crd.status.acceptedNames.kind == "NodePool"


def test_discovery_shows_custom_kind(api_client, nodepools):
    from kubernetes import client

    resources = client.CustomObjectsApi(api_client).get_api_resources("karpenter.sh", "v1")
    by_name = {r.name: r for r in resources.resources}
    assert by_name["nodepools"].kind == "NodePool" and not by_name["nodepools"].namespaced
    assert "nodepools/status" in by_name
    assert nodepools.namespaced is False


def test_valid_nodepool_is_accepted_and_defaulted(nodepools):
    created = nodepools.create(body=_nodepool("gpu-ok", weight=10, unknownField="dropped"))
    assert created.metadata.generation == 1
    assert created.spec.disruption.consolidateAfter == "0s"  # schema default applied
    assert created.spec.disruption.budgets[0].nodes == "10%"
    assert "unknownField" not in created.to_dict()["spec"]  # pruned: no preserve-unknown-fields
    nodepools.delete(name="gpu-ok")


def test_invalid_nodepool_type_is_422_naming_field(nodepools):
    with pytest.raises(ApiException) as bad:
        nodepools.create(body=_nodepool("gpu-bad", weight="heavy"))
    body = json.loads(bad.value.body)
    assert bad.value.status == 422 and body["reason"] == "Invalid"
    assert body["details"]["causes"] == [
        {
            "reason": "FieldValueInvalid",
            "message": 'Invalid value: "string": spec.weight in body must be of type integer: '
            '"string"',
            "field": "spec.weight",
        }
    ]
    assert body["message"].startswith('NodePool.karpenter.sh "gpu-bad" is invalid: spec.weight')


def test_invalid_nodepool_range_enum_and_required(nodepools):
    bad_pool = _nodepool("gpu-bad2", weight=1000)
    bad_pool["spec"]["template"]["spec"]["requirements"][0]["operator"] = "Sometimes"
    del bad_pool["spec"]["template"]["spec"]["nodeClassRef"]
    with pytest.raises(ApiException) as bad:
        nodepools.create(body=bad_pool)
    causes = {c["field"]: c for c in json.loads(bad.value.body)["details"]["causes"]}
    assert causes["spec.weight"]["message"].endswith("should be less than or equal to 100")
    assert (
        causes["spec.template.spec.requirements[0].operator"]["reason"] == "FieldValueNotSupported"
    )
    assert causes["spec.template.spec.nodeClassRef"]["message"] == "Required value"


def test_custom_resource_status_subresource_and_generation(nodepools):
    nodepools.create(body=_nodepool("gpu-status"))
    status = {
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "Ready",
                "message": "",
                "lastTransitionTime": "2026-01-01T00:00:00Z",
            }
        ]
    }
    body = {
        "apiVersion": "karpenter.sh/v1",
        "kind": "NodePool",
        "metadata": {"name": "gpu-status"},
        "status": status,
    }
    patched = nodepools.status.patch(
        body=body, name="gpu-status", content_type="application/merge-patch+json"
    )
    assert patched.status.conditions[0].type == "Ready"
    assert patched.metadata.generation == 1  # status writes never bump generation
    # A status change through the main resource is ignored.
    main = nodepools.patch(
        body={"status": {"conditions": []}, "spec": {"weight": 5}},
        name="gpu-status",
        content_type="application/merge-patch+json",
    )
    assert main.status.conditions[0].type == "Ready"
    assert main.metadata.generation == 2
    nodepools.delete(name="gpu-status")


def test_strategic_merge_is_rejected_for_custom_resources(nodepools):
    nodepools.create(body=_nodepool("gpu-smp"))
    with pytest.raises(ApiException) as bad:
        nodepools.patch(body={"spec": {"weight": 3}}, name="gpu-smp")
    assert bad.value.status == 415
    nodepools.delete(name="gpu-smp")


def test_velero_schedule_wrong_type_rejected(dynamic):
    crds = dynamic.resources.get(
        api_version="apiextensions.k8s.io/v1", kind="CustomResourceDefinition"
    )
    crds.create(body=_crd("velero.io_schedules.yaml"))
    try:
        schedules = wait_for(
            lambda: dynamic.resources.get(api_version="velero.io/v1", kind="Schedule")
        )
        good = {
            "apiVersion": "velero.io/v1",
            "kind": "Schedule",
            "metadata": {"name": "nightly"},
            "spec": {"schedule": "0 2 * * *", "template": {"ttl": "72h0m0s"}},
        }
        assert schedules.create(body=good, namespace="default").spec.schedule == "0 2 * * *"
        bad = json.loads(json.dumps(good))
        bad["metadata"]["name"] = "broken"
        bad["spec"]["paused"] = "yes"
        with pytest.raises(ApiException) as rejected:
            schedules.create(body=bad, namespace="default")
        assert rejected.value.status == 422
        assert json.loads(rejected.value.body)["details"]["causes"][0]["field"] == "spec.paused"
    finally:
        crds.delete(name="schedules.velero.io")


def test_crd_delete_removes_kind_and_objects(dynamic, tmp_path):
    from kubernetes.dynamic import DynamicClient
    from kubernetes.dynamic.discovery import LazyDiscoverer

    crds = dynamic.resources.get(
        api_version="apiextensions.k8s.io/v1", kind="CustomResourceDefinition"
    )
    crds.create(body=_crd("keda.sh_triggerauthentications.yaml"))
    kind = dynamic.resources.get(api_version="keda.sh/v1alpha1", kind="TriggerAuthentication")
    kind.create(
        body={
            "apiVersion": "keda.sh/v1alpha1",
            "kind": "TriggerAuthentication",
            "metadata": {"name": "ta"},
            "spec": {},
        },
        namespace="default",
    )
    crds.delete(name="triggerauthentications.keda.sh")
    fresh = DynamicClient(
        dynamic.client, discoverer=LazyDiscoverer, cache_file=str(tmp_path / "c.json")
    )
    with pytest.raises(ResourceNotFoundError):
        fresh.resources.get(api_version="keda.sh/v1alpha1", kind="TriggerAuthentication")


def test_pruned_fields_warn_or_fail_in_strict_mode(kube_server, nodepools):
    def post(name, query=""):
        body = json.dumps(_nodepool(name, surprise=True)).encode()
        status, headers, raw = kube_server.request(
            "POST",
            f"/apis/karpenter.sh/v1/nodepools{query}",
            body=body,
            headers={"Content-Type": "application/json"},
        )
        return status, headers, json.loads(raw)

    status, headers, created = post("warned")
    assert status == 201 and "surprise" not in created["spec"]
    assert headers.get("Warning") == '299 - "unknown field \\"spec.surprise\\""'
    status, _headers, refused = post("strict", "?fieldValidation=Strict")
    assert status == 400
    assert refused["message"] == 'strict decoding error: unknown field "spec.surprise"'
    nodepools.delete(name="warned")
