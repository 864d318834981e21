# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of playbooks/health_check.yml: findings from gpu_probe facts and Kubernetes objects."""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import datetime

from ansible.errors import AnsibleFilterError
from ansible_collections.gpuops.cluster.plugins.plugin_utils._common import plain
from ansible_collections.gpuops.cluster.plugins.plugin_utils.health_backups import backup_findings, rpo_errors
from ansible_collections.gpuops.cluster.plugins.plugin_utils.health_dns import dns_findings
from ansible_collections.gpuops.cluster.plugins.plugin_utils.health_findings import (
    gpu_findings,
    kube_findings,
    report,
    report_text,
)
from ansible_collections.gpuops.cluster.plugins.plugin_utils.health_policies import (
    network_policy_dns_findings,
    pod_security_findings,
)
from ansible_collections.gpuops.cluster.plugins.plugin_utils.health_scaling import (
    autoscaler_findings,
    karpenter_findings,
)

# What health_cluster_findings reads from its input: k8s_info resources per key.
CLUSTER_KEYS = (
    "pods",
    "events",
    "nodepools",
    "nodeclaims",
    "machinedeployments",
    "networkpolicies",
    "namespaces",
    "services",
    "endpoints",
    "endpointslices",
    "schedules",
    "backups",
    "backupstoragelocations",
)


def health_gpu_findings(gpu, host):
    """Findings of one host's ansible_facts.gpu."""
    return gpu_findings(str(host), plain(gpu) or {})


def health_kube_findings(pods, nodes):
    """Findings of Pods and Nodes (k8s_info resources)."""
    return kube_findings(plain(pods) or [], plain(nodes) or [])


def health_cluster_findings(objects, backup_rpo=None, dns=True):
    """nodes-not-scaling, pod-security-denied, network-policy-dns, dns and backups findings from
    {key: k8s_info resources} (keys: CLUSTER_KEYS; a missing key reads as no objects)."""
    objects = plain(objects) or {}
    unknown = sorted(set(objects) - set(CLUSTER_KEYS) - {"nodes"})
    if unknown:
        raise AnsibleFilterError(
            "health_cluster_findings: unknown keys %s; allowed: %s" % (", ".join(unknown), ", ".join(CLUSTER_KEYS))
        )

    def get(key):
        return objects.get(key) or []

    now = datetime.datetime.now(datetime.timezone.utc)
    found = karpenter_findings(get("nodepools"), get("nodeclaims"), get("pods"), get("events"), now)
    found += autoscaler_findings(get("machinedeployments"), get("pods"))
    found += pod_security_findings(get("events"))
    found += network_policy_dns_findings(get("networkpolicies"), get("pods"), get("namespaces"), get("services"))
    if dns:
        found += dns_findings(get("services"), get("endpoints"), get("endpointslices"))
    try:
        found += backup_findings(
            get("schedules"), get("backups"), get("backupstoragelocations"), now, plain(backup_rpo) or {}
        )
    except ValueError as error:
        raise AnsibleFilterError(str(error)) from error
    return found


def health_rpo_errors(rpos):
    """Problems of health_check_backup_rpo, one message per bad entry ([] when valid)."""
    return rpo_errors(plain(rpos))


def health_report(findings):
    """Sorted findings with counts: {healthy, counts, findings}."""
    return report(plain(findings) or [])


def health_report_text(result):
    return report_text(plain(result))


class FilterModule(object):
    def filters(self):
        return {
            "health_gpu_findings": health_gpu_findings,
            "health_kube_findings": health_kube_findings,
            "health_cluster_findings": health_cluster_findings,
            "health_rpo_errors": health_rpo_errors,
            "health_report": health_report,
            "health_report_text": health_report_text,
        }
