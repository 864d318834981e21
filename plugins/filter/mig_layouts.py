# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the mig role: validate inventory MIG layouts and render what applies them."""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError
from ansible_collections.gpuops.cluster.plugins.module_utils.mig.planner import MigLayoutError
from ansible_collections.gpuops.cluster.plugins.plugin_utils._common import plain
from ansible_collections.gpuops.cluster.plugins.plugin_utils.mig_layouts import (
    clusterpolicy_mig_patch,
    node_label_changes,
    operator_configmap,
    operator_status,
    partition_args,
    plan_hosts,
    render_host_layout_file,
    verify_host,
)


def _hostvar(hostvars, name):
    host = hostvars.get(name) if hasattr(hostvars, "get") else hostvars[name]
    if host is None:
        raise AnsibleFilterError("host %r is not in the inventory" % (name,))
    return host


def mig_plan(hostvars, hosts, request_var="mig_request"):
    """Validate the MIG requests of ``hosts`` against their gpu facts (see plugin_utils.mig_layouts)."""
    if not isinstance(hosts, (list, tuple)):
        raise AnsibleFilterError("mig_plan: 'hosts' must be a list of inventory host names")
    items = {}
    for name in hosts:
        host = _hostvar(hostvars, name)
        facts = host.get("ansible_facts") or {}
        items[name] = {"request": plain(host.get(request_var)), "gpu": plain(facts.get("gpu"))}
    return plan_hosts(items)


def mig_configmap(plan, name, namespace, nodes=None, existing=None, labels=None):
    """The mig-parted ConfigMap (key config.yaml) for the operator-mode hosts of a mig_plan result.

    ``nodes``: the Node objects; ``existing``: the config.yaml text of the ConfigMap in the cluster.
    Configs of ``existing`` are kept only while a node outside the plan names them in its label.
    """
    if not isinstance(plan, dict) or "configs" not in plan:
        raise AnsibleFilterError("mig_configmap: input must be the output of gpuops.cluster.mig_plan")
    try:
        return operator_configmap(
            plain(plan), str(name), str(namespace), plain(nodes) or [], plain(existing) or None, plain(labels)
        )
    except MigLayoutError as exc:
        raise AnsibleFilterError("mig_configmap: %s" % exc) from exc


def mig_node_labels(nodes, plan):
    """The node label patches (nvidia.com/mig.config) the operator-mode hosts of a mig_plan result need."""
    if not isinstance(plan, dict) or "operator_nodes" not in plan:
        raise AnsibleFilterError("mig_node_labels: 'plan' must be the output of gpuops.cluster.mig_plan")
    return node_label_changes(plain(plan), plain(nodes) or [])


def mig_layout_file(host_plan):
    """mig-parted v1 text of one host's layout (for /etc/gpuops/mig-layout.yaml)."""
    try:
        return render_host_layout_file(plain(host_plan))
    except (MigLayoutError, KeyError, TypeError) as exc:
        raise AnsibleFilterError("mig_layout_file: %s" % exc) from exc


def mig_partition_args(host_plan):
    """The gpuops.cluster.mig_partition options (config, config_name, gpus) that apply one host's plan."""
    if not isinstance(host_plan, dict) or not host_plan.get("managed"):
        raise AnsibleFilterError("mig_partition_args: input must be a managed host's entry of a mig_plan result")
    return partition_args(plain(host_plan))


def mig_clusterpolicy_patch(configmap_name, strategy=None):
    """Merge patch for the ClusterPolicy: mig-manager reads ``configmap_name``."""
    return clusterpolicy_mig_patch(plain(configmap_name), plain(strategy))


def mig_verify(host_plan, gpu_facts):
    """List of differences between a host's planned MIG state and its gpu facts (empty: as planned)."""
    if not isinstance(host_plan, dict):
        raise AnsibleFilterError("mig_verify: input must be one host's entry of a mig_plan result")
    return verify_host(plain(host_plan), plain(gpu_facts))


def mig_operator_status(nodes, plan):
    """Where the operator-mode nodes of a mig_plan result stand (success, pending, failed)."""
    if not isinstance(plan, dict) or "operator_nodes" not in plan:
        raise AnsibleFilterError("mig_operator_status: 'plan' must be the output of gpuops.cluster.mig_plan")
    return operator_status(plain(nodes), plain(plan["operator_nodes"]))


class FilterModule(object):
    def filters(self):
        return {
            "mig_plan": mig_plan,
            "mig_configmap": mig_configmap,
            "mig_node_labels": mig_node_labels,
            "mig_layout_file": mig_layout_file,
            "mig_partition_args": mig_partition_args,
            "mig_clusterpolicy_patch": mig_clusterpolicy_patch,
            "mig_verify": mig_verify,
            "mig_operator_status": mig_operator_status,
        }
