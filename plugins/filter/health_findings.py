# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of playbooks/health_check.yml: findings from gpu_probe facts and Kubernetes objects."""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

from ansible_collections.gpuops.cluster.plugins.plugin_utils._common import plain
from ansible_collections.gpuops.cluster.plugins.plugin_utils.health_findings import (
    gpu_findings,
    kube_findings,
    report,
    report_text,
)


def health_gpu_findings(gpu, host):
    """Findings of one host's ansible_facts.gpu."""
    return gpu_findings(str(host), plain(gpu) or {})


def health_kube_findings(pods, nodes):
    """Findings of Pods and Nodes (k8s_info resources)."""
    return kube_findings(plain(pods) or [], plain(nodes) or [])


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
            "health_report": health_report,
            "health_report_text": health_report_text,
        }
