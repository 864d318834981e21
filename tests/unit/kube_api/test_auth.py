"""TLS, authentication and RBAC authorization of the stand-in, through the real kubernetes
client: what a kubeconfig without the CA, a wrong token, a client certificate and a
least-privilege ServiceAccount meet, as against a real cluster."""

from __future__ import annotations

import base64
import json

import pytest
import urllib3
import yaml
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from conftest import api_client_for, wait_for

RBAC = "rbac.authorization.k8s.io"


def _token_client(server, token: str) -> client.ApiClient:
    """An ApiClient trusting the server's CA and authenticating with `token`."""
    configuration = client.Configuration()
    config.load_kube_config(config_file=str(server.kubeconfig), client_configuration=configuration)
    configuration.refresh_api_key_hook = None  # else the kubeconfig's token comes back
    configuration.api_key = {"authorization": f"Bearer {token}"}
    return client.ApiClient(configuration)


def test_serves_tls_and_a_kubeconfig_without_its_ca_fails_to_verify(kube_server, tmp_path):
    assert kube_server.url.startswith("https://127.0.0.1:")
    kubeconfig = yaml.safe_load(kube_server.kubeconfig.read_text())
    del kubeconfig["clusters"][0]["cluster"]["certificate-authority-data"]
    stripped = tmp_path / "no-ca.yaml"
    stripped.write_text(yaml.safe_dump(kubeconfig))
    configuration = client.Configuration()
    config.load_kube_config(config_file=str(stripped), client_configuration=configuration)
    configuration.retries = 0
    with client.ApiClient(configuration) as api:
        with pytest.raises(urllib3.exceptions.MaxRetryError) as failed:
            client.VersionApi(api).get_code()
    assert "CERTIFICATE_VERIFY_FAILED" in str(failed.value)


def test_missing_or_wrong_credentials_are_401(kube_server):
    for headers in ({}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic eDp5"}):
        status, _unused, body = kube_server.request(
            "GET", "/api/v1/namespaces", headers=headers, token=False
        )
        assert status == 401
        assert json.loads(body) == {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": "Unauthorized",
            "reason": "Unauthorized",
            "code": 401,
        }
    status, _unused, body = kube_server.request("GET", "/livez", token=False)
    assert (status, body) == (200, b"ok")  # anonymous on the health endpoints only
    with _token_client(kube_server, "forged") as api:
        with pytest.raises(ApiException) as refused:
            client.CoreV1Api(api).list_namespace()
    assert refused.value.status == 401


def test_client_certificate_authenticates_as_its_subject(kube_server):
    with api_client_for(kube_server, context="gpuops-sandbox-cert") as api:
        review = client.AuthenticationV1Api(api).create_self_subject_review(
            {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
        )
    assert review.status.user_info.username == "kubernetes-admin"
    assert "system:masters" in review.status.user_info.groups


def test_service_account_bound_to_a_role_gets_403_outside_it(kube_server, core, namespace):
    rbac = client.RbacAuthorizationV1Api(core.api_client)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "reader"}})
    rbac.create_namespaced_role(
        namespace,
        {
            "metadata": {"name": "pod-reader"},
            "rules": [
                {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}
            ],
        },
    )
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": "reader-binding"},
            "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": "pod-reader"},
            "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": namespace}],
        },
    )
    token = core.create_namespaced_service_account_token(
        "reader", namespace, {"spec": {"expirationSeconds": 3600}}
    ).status.token
    user = f"system:serviceaccount:{namespace}:reader"
    with _token_client(kube_server, token) as api:
        sa_core = client.CoreV1Api(api)
        assert sa_core.list_namespaced_pod(namespace).items == []
        cases = [
            (
                lambda: sa_core.list_namespaced_config_map(namespace),
                f'configmaps is forbidden: User "{user}" cannot list resource "configmaps" in API '
                f'group "" in the namespace "{namespace}"',
            ),
            (
                lambda: sa_core.list_namespaced_pod("default"),
                f'pods is forbidden: User "{user}" cannot list resource "pods" in API group "" in '
                'the namespace "default"',
            ),
            (
                lambda: sa_core.read_node("any"),
                f'nodes "any" is forbidden: User "{user}" cannot get resource "nodes" in API group '
                '"" at the cluster scope',
            ),
            (
                lambda: sa_core.create_namespaced_pod(
                    namespace, {"metadata": {"name": "p"}, "spec": {"containers": []}}
                ),
                f'pods is forbidden: User "{user}" cannot create resource "pods" in API group "" '
                f'in the namespace "{namespace}"',
            ),
            (
                lambda: client.AppsV1Api(api).list_namespaced_deployment(namespace),
                f'deployments.apps is forbidden: User "{user}" cannot list resource "deployments" '
                f'in API group "apps" in the namespace "{namespace}"',
            ),
        ]
        for call, message in cases:
            with pytest.raises(ApiException) as refused:
                call()
            body = json.loads(refused.value.body)
            assert refused.value.status == 403 and body["reason"] == "Forbidden"
            assert body["message"] == message
        # Discovery is open to every authenticated user (system:discovery).
        assert client.CoreApi(api).get_api_versions().versions == ["v1"]
        review = client.AuthorizationV1Api(api).create_self_subject_access_review(
            {
                "spec": {
                    "resourceAttributes": {
                        "namespace": namespace,
                        "verb": "delete",
                        "resource": "pods",
                    }
                }
            }
        )
        assert review.status.allowed is False
    # The admin impersonating the ServiceAccount meets the same rules.
    impersonated = client.CoreV1Api(core.api_client)
    with pytest.raises(ApiException) as refused:
        impersonated.list_namespaced_config_map(namespace, _headers={"Impersonate-User": user})
    assert refused.value.status == 403 and user in json.loads(refused.value.body)["message"]
    # A binding to a missing role says so, as the RBAC authorizer does.
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": "dangling"},
            "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": "missing"},
            "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": namespace}],
        },
    )
    with _token_client(kube_server, token) as api:
        with pytest.raises(ApiException) as refused:
            client.CoreV1Api(api).list_namespaced_secret(namespace)
    assert json.loads(refused.value.body)["message"].endswith(
        ': RBAC: role.rbac.authorization.k8s.io "missing" not found'
    )
    # Deleting the ServiceAccount invalidates its tokens.
    core.delete_namespaced_service_account("reader", namespace)
    with _token_client(kube_server, token) as api:
        with pytest.raises(ApiException) as refused:
            client.CoreV1Api(api).list_namespaced_pod(namespace)
    assert refused.value.status == 401


def test_aggregated_cluster_roles_follow_their_labelled_parts(core):
    rbac = client.RbacAuthorizationV1Api(core.api_client)
    view = rbac.read_cluster_role("view")
    assert any("pods" in (rule.resources or []) for rule in view.rules)
    rbac.create_cluster_role(
        {
            "metadata": {
                "name": "widgets-view",
                "labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"},
            },
            "rules": [{"apiGroups": ["example.com"], "resources": ["widgets"], "verbs": ["get"]}],
        }
    )
    try:
        for name in ("view", "edit", "admin"):  # view is part of edit, edit of admin
            rules = rbac.read_cluster_role(name).rules
            assert any("widgets" in (rule.resources or []) for rule in rules), name
    finally:
        rbac.delete_cluster_role("widgets-view")
    assert not any("widgets" in (r.resources or []) for r in rbac.read_cluster_role("admin").rules)


def test_legacy_token_secret_is_filled_and_accepted(cluster, cluster_api, cluster_namespace):
    core = client.CoreV1Api(cluster_api)
    ns = cluster_namespace
    core.create_namespaced_service_account(ns, {"metadata": {"name": "legacy"}})
    core.create_namespaced_secret(
        ns,
        {
            "metadata": {
                "name": "legacy-token",
                "annotations": {"kubernetes.io/service-account.name": "legacy"},
            },
            "type": "kubernetes.io/service-account-token",
        },
    )
    secret = wait_for(
        lambda: (s := core.read_namespaced_secret("legacy-token", ns)).data and s, timeout=10
    )
    assert base64.b64decode(secret.data["namespace"]).decode() == ns
    token = base64.b64decode(secret.data["token"]).decode()
    with _token_client(cluster, token) as api:
        review = client.AuthenticationV1Api(api).create_self_subject_review(
            {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
        )
    assert review.status.user_info.username == f"system:serviceaccount:{ns}:legacy"
