"""NetworkPolicy connectivity: the matrix computed from the baseline's policies matches its intent."""

from __future__ import annotations

import copy

import pytest
from ansible_collections.gpuops.cluster.plugins.plugin_utils import netpol_matrix as nm
from ansible_collections.gpuops.cluster.plugins.plugin_utils import security_baseline as sb
from test_security_baseline import default_spec

# One pod per role in each namespace the defaults talk about, plus a host outside the cluster.
ENDPOINTS = [
    {"name": "trainer", "namespace": "ml-training", "labels": {"app.kubernetes.io/name": "trainer"}},
    {"name": "model-server", "namespace": "ml-serving", "labels": {"app.kubernetes.io/component": "model-server"}},
    {"name": "serving-other", "namespace": "ml-serving", "labels": {"app.kubernetes.io/name": "batch"}},
    {"name": "operator", "namespace": "gpu-operator", "labels": {"app": "gpu-operator"}},
    {"name": "dcgm-exporter", "namespace": "gpu-operator", "labels": {"app": "nvidia-dcgm-exporter"}},
    {"name": "kube-dns", "namespace": "kube-system", "labels": {"k8s-app": "kube-dns"}},
    {"name": "ingress", "namespace": "ingress-nginx", "labels": {"app.kubernetes.io/name": "ingress-nginx"}},
    {"name": "prometheus", "namespace": "monitoring", "labels": {"app.kubernetes.io/name": "prometheus"}},
    {"name": "grafana", "namespace": "monitoring", "labels": {"app.kubernetes.io/name": "grafana"}},
    {"name": "mlflow", "namespace": "mlflow", "labels": {"app.kubernetes.io/name": "mlflow"}},
    {"name": "feast", "namespace": "feast", "labels": {"app.kubernetes.io/name": "feast"}},
    {"name": "apiserver", "namespace": None, "labels": {}, "ip": "10.0.0.1"},
]
PROBES = [
    (53, "UDP"),
    (53, "TCP"),
    (8080, "TCP"),
    (9090, "TCP"),
    (9400, "TCP"),
    (5000, "TCP"),
    (6566, "TCP"),
    (443, "TCP"),
    (22, "TCP"),
]


@pytest.fixture(scope="module")
def plan():
    result = sb.plan_baseline(default_spec())
    assert result["errors"] == []
    return result


def policies_of(plan):
    return [m for m in plan["manifests"] if m["kind"] == "NetworkPolicy"]


def test_baseline_policies_give_the_expected_matrix(plan):
    assert nm.mismatches(plan, policies_of(plan), ENDPOINTS, PROBES) == []


def test_the_matrix_itself(plan):
    m = nm.matrix(policies_of(plan), ENDPOINTS, PROBES)
    # DNS works from every guarded namespace, on UDP and TCP.
    for src in ("trainer", "model-server", "operator"):
        assert m[(src, "kube-dns", 53, "UDP")] and m[(src, "kube-dns", 53, "TCP")]
    # The declared allows work.
    assert m[("ingress", "model-server", 8080, "TCP")]
    assert m[("prometheus", "model-server", 9090, "TCP")]
    assert m[("prometheus", "dcgm-exporter", 9400, "TCP")]
    assert not m[("prometheus", "operator", 9400, "TCP")]
    assert not m[("grafana", "dcgm-exporter", 9400, "TCP")]
    assert m[("trainer", "mlflow", 5000, "TCP")]
    assert m[("model-server", "feast", 6566, "TCP")] and m[("serving-other", "feast", 6566, "TCP")]
    assert m[("operator", "apiserver", 443, "TCP")]
    # Everything else touching a guarded namespace is denied.
    assert not m[("ingress", "serving-other", 8080, "TCP")]  # not a model server
    assert not m[("grafana", "model-server", 9090, "TCP")]  # not prometheus
    assert not m[("ingress", "model-server", 9090, "TCP")]  # wrong port
    assert not m[("trainer", "model-server", 8080, "TCP")]  # tenant to tenant
    assert not m[("trainer", "feast", 6566, "TCP")]
    assert not m[("trainer", "apiserver", 443, "TCP")]
    assert not m[("trainer", "kube-dns", 8080, "TCP")]
    assert not m[("kube-dns", "trainer", 53, "UDP")]
    # Unmanaged to unmanaged stays open (the baseline does not govern it).
    assert m[("grafana", "mlflow", 22, "TCP")]


def test_a_missing_dns_policy_is_caught(plan):
    policies = [
        p
        for p in policies_of(plan)
        if not (p["metadata"]["name"] == sb.ALLOW_DNS and p["metadata"]["namespace"] == "ml-training")
    ]
    found = nm.mismatches(plan, policies, ENDPOINTS, PROBES)
    assert "trainer -> kube-dns UDP/53: policies deny, expected allow" in found


def test_an_extra_allow_is_caught(plan):
    policies = policies_of(plan) + [
        {
            "metadata": {"name": "too-open", "namespace": "ml-serving"},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{}]},
        }
    ]
    found = nm.mismatches(plan, policies, ENDPOINTS, PROBES)
    assert "trainer -> model-server TCP/8080: policies deny, expected allow" not in found
    assert "ingress -> serving-other TCP/8080: policies allow, expected deny" in found


def test_policy_semantics():
    pod = {"name": "a", "namespace": "n", "labels": {"app": "a"}}
    other = {"name": "b", "namespace": "n", "labels": {"app": "b"}}
    # Ingress-only policy (no policyTypes, no egress): egress stays open.
    ingress_only = {
        "metadata": {"namespace": "n"},
        "spec": {"podSelector": {"matchLabels": {"app": "b"}}, "ingress": []},
    }
    assert not nm.allowed([ingress_only], pod, other, 80)
    assert nm.allowed([ingress_only], other, pod, 80)
    # podSelector-only peers mean the policy's own namespace; endPort ranges; matchExpressions.
    rule = {
        "metadata": {"namespace": "n"},
        "spec": {
            "podSelector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["b"]}]},
            "ingress": [
                {"from": [{"podSelector": {"matchLabels": {"app": "a"}}}], "ports": [{"port": 8000, "endPort": 8100}]}
            ],
        },
    }
    assert nm.allowed([rule], pod, other, 8050)
    assert not nm.allowed([rule], pod, other, 8101)
    assert not nm.allowed([rule], dict(pod, namespace="m"), other, 8050)
    # ipBlock except.
    block = {
        "metadata": {"namespace": "n"},
        "spec": {
            "podSelector": {},
            "policyTypes": ["Egress"],
            "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}]}],
        },
    }
    assert nm.allowed([block], pod, {"name": "x", "namespace": None, "ip": "10.2.0.1"}, 1)
    assert not nm.allowed([block], pod, {"name": "x", "namespace": None, "ip": "10.1.0.1"}, 1)
    with pytest.raises(ValueError):
        nm.selector_matches({"matchExpressions": [{"key": "a", "operator": "Gt"}]}, {})


def test_intent_without_declared_allows(plan):
    bare = copy.deepcopy(plan)
    bare["allows"] = []
    by_name = {e["name"]: e for e in ENDPOINTS}
    src, dst = by_name["ingress"], by_name["model-server"]
    assert nm.expected(bare, src, dst, 8080, "TCP") is False
    assert nm.expected(plan, src, dst, 8080, "TCP") is True
