# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError
from ansible_collections.gpuops.cluster.plugins.plugin_utils.fleet_report import (
    build_fleet_report,
    merge_fleet_reports,
    render_fleet_table,
)


def fleet_report(hostvars, hosts):
    """Build the fleet report from hostvars for the given host names."""
    if not isinstance(hosts, (list, tuple)):
        raise AnsibleFilterError("fleet_report: 'hosts' must be a list of inventory host names")
    entries = []
    for name in hosts:
        host = hostvars.get(name) if hasattr(hostvars, "get") else hostvars[name]
        if host is None:
            raise AnsibleFilterError("fleet_report: host %r is not in the inventory" % (name,))
        entries.append(
            {
                "name": name,
                "groups": list(host.get("group_names") or []),
                "gpu": host.get("ansible_facts", {}).get("gpu"),
            }
        )
    return build_fleet_report(entries)


def fleet_report_merge(reports):
    """Merge fleet reports (from fleet_report) into one."""
    if not isinstance(reports, (list, tuple)):
        raise AnsibleFilterError("fleet_report_merge: input must be a list of fleet reports")
    try:
        return merge_fleet_reports(list(reports))
    except ValueError as exc:
        raise AnsibleFilterError("fleet_report_merge: %s" % exc) from exc


def fleet_table(report):
    """Render a fleet report (from fleet_report) as a text table."""
    if not isinstance(report, dict) or "hosts" not in report or "totals" not in report:
        raise AnsibleFilterError("fleet_table: input must be the output of gpuops.cluster.fleet_report")
    return render_fleet_table(report)


class FilterModule(object):
    def filters(self):
        return {"fleet_report": fleet_report, "fleet_report_merge": fleet_report_merge, "fleet_table": fleet_table}
