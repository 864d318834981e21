# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the monitoring role: validate its spec and compute everything it applies, once."""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError
from ansible_collections.gpuops.cluster.plugins.plugin_utils._common import plain
from ansible_collections.gpuops.cluster.plugins.plugin_utils.monitoring_objects import plan
from ansible_collections.gpuops.cluster.plugins.plugin_utils.monitoring_spec import MonitoringSpecError, validate


def monitoring_plan(spec, sharing_strategies=None):
    """``{errors, objects, clusterpolicy_patch, kubernetes_virtual_gpus, scrape_configs, rule_groups, namespaces}``.

    ``errors`` lists every invalid setting (then nothing else is computed)."""
    if not isinstance(spec, dict):
        raise AnsibleFilterError("monitoring_plan: input must be the role's spec (a dict)")
    try:
        valid = validate(plain(spec))
    except MonitoringSpecError as exc:
        return {"errors": exc.errors, "objects": []}
    result = plan(valid, [str(s) for s in plain(sharing_strategies or [])])
    result["errors"] = []
    return result


class FilterModule(object):
    def filters(self):
        return {"monitoring_plan": monitoring_plan}
