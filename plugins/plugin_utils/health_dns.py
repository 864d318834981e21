# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Health check ``dns``: the cluster DNS Service and its ready endpoints. Pure functions.

Every pod resolves names through the ``kube-dns`` Service in kube-system (CoreDNS keeps that
name for compatibility). Without the Service, or with no ready address behind it (the
Endpoints' ``subsets[].addresses``, or EndpointSlices labelled ``kubernetes.io/service-name:
kube-dns`` with ``conditions.ready`` not false), lookups time out everywhere.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

from ansible_collections.gpuops.cluster.plugins.plugin_utils.health_findings import finding

NAMESPACE = "kube-system"
SERVICE = "kube-dns"
SLICE_LABEL = "kubernetes.io/service-name"


def _named(objects):
    for obj in objects or []:
        meta = obj.get("metadata") or {}
        if meta.get("namespace") == NAMESPACE and meta.get("name") == SERVICE:
            return obj
    return None


def ready_addresses(endpoints, slices):
    """The ready DNS pod addresses, from the Endpoints object and the EndpointSlices."""
    out = []
    for subset in (endpoints or {}).get("subsets") or []:
        out.extend(a.get("ip") for a in subset.get("addresses") or [])
    for item in slices or []:
        meta = item.get("metadata") or {}
        if meta.get("namespace") != NAMESPACE or (meta.get("labels") or {}).get(SLICE_LABEL) != SERVICE:
            continue
        for endpoint in item.get("endpoints") or []:
            if (endpoint.get("conditions") or {}).get("ready") is not False:
                out.extend(endpoint.get("addresses") or [])
    return sorted(set(a for a in out if a))


def dns_findings(services, endpoints, slices=None):
    """The kube-dns Service absent, or without a ready address behind it."""
    service = _named(services)
    subject = "Service/%s/%s" % (NAMESPACE, SERVICE)
    if service is None:
        return [
            finding(
                "dns",
                "critical",
                subject,
                "no kube-dns Service: pods cannot resolve names",
                "Reinstall the cluster DNS add-on (kubeadm: `kubeadm init phase addon coredns`; EKS: the "
                "coredns add-on) so Service kube-system/kube-dns exists at the cluster's DNS IP.",
            )
        ]
    ep = _named(endpoints)
    if ready_addresses(ep, slices):
        return []
    not_ready = sum(len(s.get("notReadyAddresses") or []) for s in (ep or {}).get("subsets") or [])
    return [
        finding(
            "dns",
            "critical",
            subject,
            "kube-dns has no ready endpoints%s: lookups time out"
            % (" (%d not ready)" % not_ready if not_ready else "" if ep else " (no Endpoints object)"),
            "Check the CoreDNS pods in kube-system (kubectl -n kube-system get pods -l k8s-app=kube-dns): "
            "scheduling (tolerations for tainted GPU nodes), crash loops (a forward loop in the Corefile), "
            "and that the Service's selector matches them.",
        )
    ]
