# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the gpu_sharing role: validate sharing requests and render the device-plugin config."""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError
from ansible_collections.gpuops.cluster.plugins.plugin_utils._common import plain
from ansible_collections.gpuops.cluster.plugins.plugin_utils.gpu_sharing import (
    DEFAULT_CONFIG,
    clusterpolicy_patch,
    node_label_changes,
    node_sharing_problems,
    plan_sharing,
    render_configmap,
)


def gpu_sharing_plan(hostvars, hosts, default_config=DEFAULT_CONFIG, request_var="gpu_sharing_request"):
    """Validate the sharing requests of ``hosts`` and group them into named configs."""
    if not isinstance(hosts, (list, tuple)):
        raise AnsibleFilterError("gpu_sharing_plan: 'hosts' must be a list of inventory host names")
    items = {}
    for name in hosts:
        host = hostvars.get(name) if hasattr(hostvars, "get") else hostvars[name]
        if host is None:
            raise AnsibleFilterError("gpu_sharing_plan: host %r is not in the inventory" % (name,))
        facts = host.get("ansible_facts") or {}
        items[name] = {"request": plain(host.get(request_var)), "gpu": plain(facts.get("gpu"))}
    return plan_sharing(items, plain(default_config))


def gpu_sharing_configmap(plan, name, namespace, default_config=DEFAULT_CONFIG, nodes=None, existing=None, labels=None):
    """The device-plugin ConfigMap (one key per config) for a gpu_sharing_plan result.

    ``nodes``: the Node objects; ``existing``: the data of the ConfigMap in the cluster. Its keys
    stay only while a node outside the plan names them in its label.
    """
    if not isinstance(plan, dict) or "configs" not in plan:
        raise AnsibleFilterError("gpu_sharing_configmap: input must be the output of gpuops.cluster.gpu_sharing_plan")
    return render_configmap(
        plain(plan["configs"]),
        str(name),
        str(namespace),
        plain(default_config),
        plain(labels),
        plain(nodes) or [],
        plain(existing) or {},
        list(plan.get("nodes") or {}),
    )


def gpu_sharing_node_labels(nodes, plan):
    """The node label patches (nvidia.com/device-plugin.config) a gpu_sharing_plan result needs."""
    if not isinstance(plan, dict) or "nodes" not in plan:
        raise AnsibleFilterError("gpu_sharing_node_labels: 'plan' must be the output of gpu_sharing_plan")
    return node_label_changes(plain(plan), plain(nodes) or [])


def gpu_sharing_clusterpolicy_patch(configmap_name, default_config=DEFAULT_CONFIG):
    """Merge patch for the ClusterPolicy: the device plugin reads ``configmap_name``."""
    return clusterpolicy_patch(plain(configmap_name), plain(default_config))


def gpu_sharing_node_problems(nodes, plan):
    """What the listed Node objects do not reflect yet (labels, allocatable); empty when done."""
    if not isinstance(plan, dict) or "nodes" not in plan:
        raise AnsibleFilterError("gpu_sharing_node_problems: 'plan' must be the output of gpu_sharing_plan")
    nodes = plain(nodes)
    plan = plain(plan)
    by_name = {(n.get("metadata") or {}).get("name"): n for n in nodes or []}
    problems = []
    for node_name in sorted(plan["nodes"]):
        config_name = plan["nodes"][node_name]
        node = by_name.get(node_name)
        if node is None:
            problems.append("%s: no such Node" % node_name)
            continue
        config = plan["configs"].get(config_name) if config_name else None
        problems.extend(node_sharing_problems(node, config_name, config))
    return problems


class FilterModule(object):
    def filters(self):
        return {
            "gpu_sharing_plan": gpu_sharing_plan,
            "gpu_sharing_configmap": gpu_sharing_configmap,
            "gpu_sharing_node_labels": gpu_sharing_node_labels,
            "gpu_sharing_clusterpolicy_patch": gpu_sharing_clusterpolicy_patch,
            "gpu_sharing_node_problems": gpu_sharing_node_problems,
        }
