"""pod-security-denied and network-policy-dns findings (plugin_utils/health_policies.py)."""

from __future__ import annotations

from ansible_collections.gpuops.cluster.plugins.plugin_utils.health_policies import (
    network_policy_dns_findings,
    pod_security_findings,
)

PSA = (
    'Error creating: pods "web-abc" is forbidden: violates PodSecurity "restricted:v1.33": '
    'privileged (container "main" must not set securityContext.privileged=true)'
)


def event(kind, name, reason, message, stamp="2026-12-01T10:00:00Z", count=1):
    return {
        "metadata": {"namespace": "team-a"},
        "involvedObject": {"kind": kind, "namespace": "team-a", "name": name},
        "reason": reason,
        "message": message,
        "lastTimestamp": stamp,
        "count": count,
    }


def test_pod_security_denials_grouped_per_workload():
    events = [
        event("ReplicaSet", "web-abc", "FailedCreate", PSA, count=3),
        event("ReplicaSet", "web-abc", "FailedCreate", PSA.replace("privileged", "hostPath"), "2026-12-01T09:00:00Z"),
        event("Job", "quota", "FailedCreate", 'Error creating: pods "q" is forbidden: exceeded quota: gpu'),
        event("ReplicaSet", "web-abc", "SuccessfulCreate", "Created pod: web-abc-1"),
    ]
    (found,) = pod_security_findings(events)
    assert found["check"] == "pod-security-denied" and found["subject"] == "ReplicaSet/team-a/web-abc"
    assert "(4 time(s))" in found["finding"] and "privileged (container" in found["finding"]
    assert "namespace class" in found["fix"]
    assert pod_security_findings([]) == []


def ns(name, **labels):
    return {"metadata": {"name": name, "labels": dict(labels, **{"kubernetes.io/metadata.name": name})}}


def pod(name, namespace="team-a", phase="Running", **labels):
    return {
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {},
        "status": {"phase": phase},
    }


DENY = {
    "metadata": {"name": "default-deny", "namespace": "team-a"},
    "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
}
DNS_ALLOW = {
    "metadata": {"name": "allow-dns", "namespace": "team-a"},
    "spec": {
        "podSelector": {},
        "policyTypes": ["Egress"],
        "egress": [
            {
                "to": [
                    {
                        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                        "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                    }
                ],
                "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
            }
        ],
    },
}
NAMESPACES = [ns("team-a"), ns("team-b"), ns("kube-system")]
PODS = [
    pod("web", app="web"),
    pod("done", phase="Succeeded"),
    pod("other", "team-b"),
    pod("dns", "kube-system", **{"k8s-app": "kube-dns"}),
]


def test_default_deny_without_dns_allow():
    assert network_policy_dns_findings([], PODS, NAMESPACES, []) == []
    (found,) = network_policy_dns_findings([DENY], PODS, NAMESPACES, [])
    assert found["subject"] == "Namespace/team-a" and found["severity"] == "critical"
    assert "1 pod(s)" in found["finding"] and "UDP+TCP" in found["finding"] and found["finding"].endswith(": web")
    assert network_policy_dns_findings([DENY, DNS_ALLOW], PODS, NAMESPACES, []) == []


def test_dns_allow_to_the_wrong_labels_or_udp_only():
    wrong = {
        "metadata": DNS_ALLOW["metadata"],
        "spec": dict(
            DNS_ALLOW["spec"],
            egress=[
                dict(
                    DNS_ALLOW["spec"]["egress"][0], to=[{"namespaceSelector": {"matchLabels": {"name": "kube-system"}}}]
                )
            ],
        ),
    }
    (found,) = network_policy_dns_findings([DENY, wrong], PODS, NAMESPACES, [])
    assert "UDP+TCP" in found["finding"]
    udp_only = {
        "metadata": DNS_ALLOW["metadata"],
        "spec": dict(
            DNS_ALLOW["spec"], egress=[dict(DNS_ALLOW["spec"]["egress"][0], ports=[{"protocol": "UDP", "port": 53}])]
        ),
    }
    (found,) = network_policy_dns_findings([DENY, udp_only], PODS, NAMESPACES, [])
    assert found["severity"] == "warning" and "port 53 TCP denied" in found["finding"]


def test_dns_pods_isolated_for_ingress():
    lockdown = {"metadata": {"name": "deny", "namespace": "kube-system"}, "spec": {"podSelector": {}}}
    found = network_policy_dns_findings([lockdown], PODS, NAMESPACES, [])
    assert [f["subject"] for f in found] == ["Namespace/team-a", "Namespace/team-b"]
    # The Service's selector names the DNS pods.
    service = {"metadata": {"name": "kube-dns", "namespace": "kube-system"}, "spec": {"selector": {"app": "coredns"}}}
    assert network_policy_dns_findings([lockdown], PODS, NAMESPACES, [service])[0]["finding"].count("pod(s)") == 1
