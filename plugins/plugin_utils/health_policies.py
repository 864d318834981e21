# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Health checks ``pod-security-denied`` and ``network-policy-dns``. Pure functions.

Pod Security Admission refuses a pod at create time, so a workload's pods never exist: what is
left is the controller's ``FailedCreate`` Warning event on the ReplicaSet / Job / DaemonSet /
StatefulSet, whose message carries kube-apiserver's text ``... is forbidden: violates PodSecurity
"<level>:<version>": <what>``.

NetworkPolicy denials are not recorded anywhere a client can read, but the one that breaks every
workload can be computed from the objects: a pod selected by an egress-isolating policy (a
default-deny) that no rule lets reach the cluster DNS pods on port 53, or DNS pods whose own
ingress policies refuse it. The semantics are netpol_matrix's (networking.k8s.io/v1).
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

from ansible_collections.gpuops.cluster.plugins.plugin_utils.health_findings import finding
from ansible_collections.gpuops.cluster.plugins.plugin_utils.netpol_matrix import NAMESPACE_NAME_LABEL, allowed

PSA_MARK = "violates PodSecurity"
DNS_NAMESPACE = "kube-system"
DNS_SERVICE = "kube-dns"
DNS_POD_LABELS = {"k8s-app": "kube-dns"}
FINISHED = ("Succeeded", "Failed")


def _meta(obj):
    return obj.get("metadata") or {}


def pod_security_findings(events):
    """One finding per workload whose pods Pod Security Admission refused (latest message)."""
    latest = {}
    for event in events or []:
        message = event.get("message") or ""
        if event.get("reason") != "FailedCreate" or PSA_MARK not in message:
            continue
        involved = event.get("involvedObject") or {}
        key = (involved.get("kind"), involved.get("namespace") or _meta(event).get("namespace"), involved.get("name"))
        stamp = event.get("lastTimestamp") or event.get("eventTime") or ""
        seen = latest.get(key, ("", "", 0))
        newer = stamp >= seen[0]
        latest[key] = (stamp if newer else seen[0], message if newer else seen[1], seen[2] + (event.get("count") or 1))
    found = []
    for (kind, namespace, name), (_stamp, message, count) in sorted(latest.items(), key=lambda i: str(i[0])):
        found.append(
            finding(
                "pod-security-denied",
                "critical",
                "%s/%s/%s" % (kind, namespace, name),
                "pods refused by Pod Security Admission (%d time(s)): %s" % (count, message),
                "Make the pod template meet the namespace's level (restricted: runAsNonRoot, "
                "allowPrivilegeEscalation false, capabilities drop ALL, seccompProfile RuntimeDefault, no "
                "hostPath/hostNetwork); a platform component that needs more belongs in a namespace class "
                "of gpuops.cluster.security_baseline with its reason, never a relabelled tenant namespace.",
            )
        )
    return found


def dns_endpoint(services):
    """The DNS pods as a netpol_matrix endpoint: kube-system, the kube-dns Service's selector."""
    for service in services or []:
        meta = _meta(service)
        if meta.get("namespace") == DNS_NAMESPACE and meta.get("name") == DNS_SERVICE:
            selector = (service.get("spec") or {}).get("selector") or DNS_POD_LABELS
            return {"name": "cluster-dns", "namespace": DNS_NAMESPACE, "labels": dict(selector), "ip": None}
    return {"name": "cluster-dns", "namespace": DNS_NAMESPACE, "labels": dict(DNS_POD_LABELS), "ip": None}


def network_policy_dns_findings(policies, pods, namespaces, services):
    """Per namespace, the running pods that cannot reach the cluster DNS on 53 (UDP or TCP)."""
    if not policies:
        return []
    namespace_labels = {}
    for namespace in namespaces or []:
        name = _meta(namespace).get("name")
        labels = dict(_meta(namespace).get("labels") or {})
        labels.setdefault(NAMESPACE_NAME_LABEL, name)
        namespace_labels[name] = labels
    dns = dns_endpoint(services)
    blocked = {}
    for pod in pods or []:
        meta = _meta(pod)
        if (pod.get("status") or {}).get("phase") in FINISHED or meta.get("deletionTimestamp"):
            continue
        if (pod.get("spec") or {}).get("hostNetwork"):
            continue  # NetworkPolicy does not apply to host-network pods
        endpoint = {
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "labels": meta.get("labels") or {},
            "ip": (pod.get("status") or {}).get("podIP"),
        }
        if endpoint["namespace"] == dns["namespace"] and all(
            endpoint["labels"].get(k) == v for k, v in dns["labels"].items()
        ):
            continue
        denied = [
            protocol
            for protocol in ("UDP", "TCP")
            if not allowed(policies, endpoint, dns, 53, protocol, namespace_labels)
        ]
        if denied:
            blocked.setdefault(endpoint["namespace"], []).append((endpoint["name"], tuple(denied)))
    found = []
    for namespace, items in sorted(blocked.items()):
        protocols = sorted({p for _name, denied in items for p in denied}, reverse=True)
        names = sorted(name for name, _denied in items)
        found.append(
            finding(
                "network-policy-dns",
                "critical" if "UDP" in protocols else "warning",
                "Namespace/%s" % namespace,
                "%d pod(s) cannot reach the cluster DNS (%s/%s port 53 %s denied by NetworkPolicy): %s"
                % (len(names), DNS_NAMESPACE, DNS_SERVICE, "+".join(protocols), ", ".join(names[:5])),
                "Add an egress allow to the DNS pods on UDP and TCP 53 next to the default-deny "
                "(namespaceSelector kubernetes.io/metadata.name: kube-system, podSelector k8s-app: kube-dns), "
                "as gpuops.cluster.security_baseline renders for its managed namespaces.",
            )
        )
    return found
