# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError
from ansible_collections.gpuops.cluster.plugins.plugin_utils import cost_report as _report


def _check(snapshot, name):
    if not isinstance(snapshot, dict) or "totals" not in snapshot or "by_namespace" not in snapshot:
        raise AnsibleFilterError("%s: input must be the result of gpuops.cluster.cost_snapshot" % name)


def cost_report_html(snapshot, title="GPU cluster cost"):
    """The HTML report (matplotlib charts as inline SVG) of a cost_snapshot result."""
    _check(snapshot, "cost_report_html")
    try:
        return _report.report_html(snapshot, str(title))
    except ImportError as exc:
        raise AnsibleFilterError("cost_report_html: matplotlib is required on the controller (%s)" % exc) from exc


def cost_report_csv(snapshot):
    """Per-pod CSV rows of a cost_snapshot result."""
    _check(snapshot, "cost_report_csv")
    return _report.pods_csv(snapshot)


def cost_report_metrics(snapshot, cluster, prefix="cluster_cost"):
    """Prometheus text-format gauges (cluster_cost_usd and friends) of a cost_snapshot result."""
    _check(snapshot, "cost_report_metrics")
    try:
        return _report.metrics_text(snapshot, str(cluster), str(prefix))
    except ValueError as exc:
        raise AnsibleFilterError("cost_report_metrics: prefix makes an invalid %s" % exc) from exc


class FilterModule(object):
    def filters(self):
        return {
            "cost_report_html": cost_report_html,
            "cost_report_csv": cost_report_csv,
            "cost_report_metrics": cost_report_metrics,
        }
