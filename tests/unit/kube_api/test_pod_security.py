"""Pod Security Admission in the stand-in: the checks (pure) and the create path over HTTP."""

# ruff: noqa: E501 - the upstream messages are compared whole, one per line

from __future__ import annotations

import json
import uuid

import pytest
from gpuops_kubeapi import pod_security as psa

RESTRICTED_OK = {
    "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
    "containers": [
        {
            "name": "app",
            "image": "registry.example/app:1",
            "securityContext": {
                "allowPrivilegeEscalation": False,
                "capabilities": {"drop": ["ALL"]},
            },
        }
    ],
}
PRIVILEGED = {
    "containers": [{"name": "driver", "image": "x", "securityContext": {"privileged": True}}]
}
PSA = "pod-security.kubernetes.io/"


def labels(enforce=None, warn=None, audit=None, version="v1.31"):
    out = {}
    for mode, level in (("enforce", enforce), ("warn", warn), ("audit", audit)):
        if level:
            out[PSA + mode] = level
            out[PSA + mode + "-version"] = version
    return out


def test_restricted_pod_passes_every_level():
    for level in psa.LEVELS:
        assert psa.evaluate(level, RESTRICTED_OK) == []


def test_privileged_pod_against_restricted_lists_every_reason_in_upstream_order():
    assert psa.format_results(psa.evaluate("restricted", PRIVILEGED)) == (
        'privileged (container "driver" must not set securityContext.privileged=true), '
        'allowPrivilegeEscalation != false (container "driver" must set securityContext.allowPrivilegeEscalation=false), '
        'unrestricted capabilities (container "driver" must set securityContext.capabilities.drop=["ALL"]), '
        'runAsNonRoot != true (pod or container "driver" must set securityContext.runAsNonRoot=true), '
        'seccompProfile (pod or container "driver" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")'
    )
    assert psa.evaluate("baseline", PRIVILEGED) == [
        ("privileged", 'container "driver" must not set securityContext.privileged=true')
    ]
    assert psa.evaluate("privileged", PRIVILEGED) == []


@pytest.mark.parametrize(
    "change, level, expected",
    [
        (
            {"hostNetwork": True, "hostPID": True},
            "baseline",
            ("host namespaces", "hostNetwork=true, hostPID=true"),
        ),
        (
            {"volumes": [{"name": "dev", "hostPath": {"path": "/dev"}}]},
            "baseline",
            ("hostPath volumes", 'volume "dev"'),
        ),
        (
            {"volumes": [{"name": "dev", "hostPath": {"path": "/dev"}}]},
            "restricted",
            ("restricted volume types", 'volume "dev" uses restricted volume type "hostPath"'),
        ),
        (
            {
                "securityContext": {
                    "runAsNonRoot": True,
                    "runAsUser": 0,
                    "seccompProfile": {"type": "RuntimeDefault"},
                }
            },
            "restricted",
            ("runAsUser=0", "pod must not set runAsUser=0"),
        ),
        (
            {"securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "Unconfined"}}},
            "baseline",
            (
                "seccompProfile",
                'pod must not set securityContext.seccompProfile.type to "Unconfined"',
            ),
        ),
        (
            {
                "securityContext": {
                    "runAsNonRoot": True,
                    "seccompProfile": {"type": "RuntimeDefault"},
                    "sysctls": [{"name": "kernel.msgmax", "value": "1"}],
                }
            },
            "baseline",
            ("forbidden sysctls", "kernel.msgmax"),
        ),
    ],
)
def test_single_checks(change, level, expected):
    spec = json.loads(json.dumps(RESTRICTED_OK))
    spec.update(change)
    assert psa.evaluate(level, spec) == [expected]


def test_capabilities():
    spec = json.loads(json.dumps(RESTRICTED_OK))
    spec["containers"][0]["securityContext"]["capabilities"] = {
        "drop": ["ALL"],
        "add": ["SYS_ADMIN", "NET_BIND_SERVICE"],
    }
    assert psa.evaluate("restricted", spec) == [
        (
            "unrestricted capabilities",
            'container "app" must not include "SYS_ADMIN" in securityContext.capabilities.add',
        )
    ]
    assert psa.evaluate("baseline", spec) == [
        (
            "non-default capabilities",
            'container "app" must not include "SYS_ADMIN" in securityContext.capabilities.add',
        )
    ]
    spec["containers"][0]["securityContext"]["capabilities"] = {"add": ["NET_BIND_SERVICE"]}
    assert psa.evaluate("baseline", spec) == []


def test_enforce_refuses_warn_and_audit_report():
    decision = psa.admit(
        {"metadata": {"name": "p"}, "spec": PRIVILEGED},
        labels("restricted", "restricted", "restricted"),
    )
    assert decision.forbidden.startswith(
        'pods "p" is forbidden: violates PodSecurity "restricted:v1.31": privileged ('
    )
    # No warning on a request that is refused anyway; the audit annotation is recorded.
    assert decision.warnings == []
    assert decision.audit_annotations[psa.AUDIT_ANNOTATION].startswith(
        'would violate PodSecurity "restricted:v1.31": privileged ('
    )
    decision = psa.admit(
        {"metadata": {"name": "p"}, "spec": PRIVILEGED},
        labels("privileged", "baseline", "restricted"),
    )
    assert decision.forbidden is None
    assert decision.warnings == [
        'would violate PodSecurity "baseline:v1.31": privileged (container "driver" must not set securityContext.privileged=true)'
    ]
    assert decision.audit_annotations[PSA + "enforce-policy"] == "privileged:v1.31"


def test_unlabelled_namespace_is_privileged_and_bad_labels_are_reported():
    decision = psa.admit({"metadata": {"name": "p"}, "spec": PRIVILEGED}, {})
    assert decision.forbidden is None and decision.warnings == []
    decision = psa.admit(
        {"metadata": {"name": "p"}, "spec": PRIVILEGED}, {PSA + "enforce": "strict"}
    )
    assert "invalid level 'strict'" in decision.audit_annotations[PSA + "error"]
    assert decision.forbidden is not None  # an invalid level is evaluated as restricted


# ------------------------------------------------------------------ through the API


def _namespace(core, ns_labels):
    from kubernetes import client

    name = f"psa-{uuid.uuid4().hex[:8]}"
    core.create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=ns_labels))
    )
    return name


def _pod_body(name, spec):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def test_api_refuses_privileged_pod_in_restricted_namespace(core):
    from kubernetes.client.rest import ApiException

    ns = _namespace(core, labels("restricted", "restricted", "restricted"))
    with pytest.raises(ApiException) as error:
        core.create_namespaced_pod(ns, _pod_body("gpu-burn", PRIVILEGED))
    assert error.value.status == 403
    body = json.loads(error.value.body)
    assert body["reason"] == "Forbidden"
    assert body["message"].startswith(
        'pods "gpu-burn" is forbidden: violates PodSecurity "restricted:v1.31": privileged '
        '(container "driver" must not set securityContext.privileged=true), allowPrivilegeEscalation != false'
    )
    # Dry-run goes through admission too; a compliant pod is created.
    with pytest.raises(ApiException):
        core.create_namespaced_pod(ns, _pod_body("gpu-burn", PRIVILEGED), dry_run="All")
    created = core.create_namespaced_pod(ns, _pod_body("ok", RESTRICTED_OK))
    assert created.metadata.name == "ok"


def test_api_warn_mode_sends_warning_header(kube_server):
    ns_body = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": f"psa-{uuid.uuid4().hex[:8]}",
            "labels": labels("baseline", "restricted"),
        },
    }
    status, _headers, _body = kube_server.request(
        "POST",
        "/api/v1/namespaces",
        json.dumps(ns_body).encode(),
        {"Content-Type": "application/json"},
    )
    assert status == 201
    ns = ns_body["metadata"]["name"]
    pod = _pod_body("web", {"containers": [{"name": "web", "image": "x"}]})
    status, headers, _body = kube_server.request(
        "POST",
        f"/api/v1/namespaces/{ns}/pods",
        json.dumps(pod).encode(),
        {"Content-Type": "application/json"},
    )
    assert status == 201
    warning = headers.get("Warning", "")
    assert warning.startswith(
        '299 - "would violate PodSecurity \\"restricted:v1.31\\": allowPrivilegeEscalation != false'
    )


@pytest.fixture(scope="module")
def core(api_client):
    from kubernetes import client

    return client.CoreV1Api(api_client)


def test_audit_events_in_process():
    from gpuops_kubeapi.api import Cluster, WriteOptions

    cluster = Cluster()
    cluster.bootstrap()
    namespaces = cluster.resource_type("", "v1", "namespaces")
    pods = cluster.resource_type("", "v1", "pods")
    cluster.create(
        namespaces,
        None,
        {"metadata": {"name": "tenant", "labels": labels(audit="restricted")}},
        WriteOptions(),
    )
    cluster.create(pods, "tenant", _pod_body("p", PRIVILEGED), WriteOptions())
    (event,) = cluster.audit_events
    assert event["name"] == "p" and event["namespace"] == "tenant"
    assert event["annotations"][psa.AUDIT_ANNOTATION].startswith(
        'would violate PodSecurity "restricted:v1.31": privileged'
    )


def test_workload_templates_get_warnings_and_audit_never_refusal():
    from gpuops_kubeapi.api import Cluster, WriteOptions

    cluster = Cluster()
    cluster.bootstrap()
    namespaces = cluster.resource_type("", "v1", "namespaces")
    deployments = cluster.resource_type("apps", "v1", "deployments")
    cluster.create(
        namespaces,
        None,
        {
            "metadata": {
                "name": "tenant",
                "labels": labels("restricted", "restricted", "restricted"),
            }
        },
        WriteOptions(),
    )
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "burn"},
        "spec": {
            "selector": {"matchLabels": {"app": "burn"}},
            "template": {"metadata": {"labels": {"app": "burn"}}, "spec": PRIVILEGED},
        },
    }
    created, warnings = cluster.create(deployments, "tenant", deployment, WriteOptions())
    assert created["metadata"]["name"] == "burn"
    assert warnings[-1].startswith(
        'would violate PodSecurity "restricted:v1.31": privileged (container "driver"'
    )
    (event,) = cluster.audit_events
    assert "enforce-policy" not in json.dumps(event)
    assert psa.pod_template(
        "CronJob", {"spec": {"jobTemplate": {"spec": {"template": {"spec": {}}}}}}
    ) == {"spec": {}}
    assert psa.pod_template("ConfigMap", {"spec": {"template": {}}}) is None
