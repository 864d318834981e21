# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError
from ansible_collections.gpuops.cluster.plugins.plugin_utils.gpu_operator import (
    capacity_shortfalls,
    check_compat,
    expected_gpus,
    node_problem,
    render_cluster_policy,
    render_values,
    validate_config,
)


def _cfg(cfg, name):
    if not isinstance(cfg, dict):
        raise AnsibleFilterError("%s: input must be the gpu_operator settings dict" % name)
    return dict(cfg)


def gpu_operator_config_errors(cfg):
    """Messages for every invalid gpu_operator_* setting (empty list when all are valid)."""
    return validate_config(_cfg(cfg, "gpu_operator_config_errors"))


def gpu_operator_values(cfg):
    """Helm values for the gpu-operator chart."""
    cfg = _cfg(cfg, "gpu_operator_values")
    errors = validate_config(cfg)
    if errors:
        raise AnsibleFilterError("gpu_operator_values: " + "; ".join(errors))
    return render_values(cfg)


def gpu_operator_cluster_policy(cfg):
    """The ClusterPolicy object for the olm and out_of_band modes."""
    cfg = _cfg(cfg, "gpu_operator_cluster_policy")
    errors = validate_config(cfg)
    if errors:
        raise AnsibleFilterError("gpu_operator_cluster_policy: " + "; ".join(errors))
    return render_cluster_policy(cfg)


def _host(hostvars, name):
    host = hostvars.get(name) if hasattr(hostvars, "get") else hostvars[name]
    if host is None:
        raise AnsibleFilterError("host %r is not in the inventory" % (name,))
    return host


def _gpu_facts(host):
    facts = host.get("ansible_facts") or {}
    return facts.get("gpu") or host.get("gpu")


def gpu_operator_compat(cfg, matrix, cluster, hostvars, hosts):
    """Check the install against the compatibility matrix; returns {errors, warnings, checked}."""
    cfg = _cfg(cfg, "gpu_operator_compat")
    driver_hosts = []
    for name in hosts or []:
        facts = _gpu_facts(_host(hostvars, name))
        if not facts or not facts.get("gpus"):
            continue
        driver = facts.get("driver") or {}
        driver_hosts.append({"host": name, "state": driver.get("state"), "version": driver.get("version")})
    return check_compat(matrix, cfg, dict(cluster or {}), driver_hosts)


def gpu_operator_expected_gpus(hostvars, hosts, mig_strategy, driver_enabled=False):
    """{node name: {host, expected, reason, problem}} for every Kubernetes GPU node among hosts."""
    result = {}
    for name in hosts or []:
        host = _host(hostvars, name)
        if not host.get("gpuops_kube_node", False):
            continue
        node = host.get("gpuops_kube_node_name") or name
        facts = _gpu_facts(host)
        count, reason = expected_gpus(facts, mig_strategy)
        problem = node_problem(facts, mig_strategy, bool(driver_enabled))
        loaded = ((facts or {}).get("driver") or {}).get("state") == "loaded"
        result[node] = {"host": name, "expected": count, "reason": reason, "problem": problem, "driver_loaded": loaded}
    return result


def gpu_operator_capacity(expected, nodes):
    """{shortfalls, report, skipped} comparing expected counts with the Nodes' allocatable."""
    if not isinstance(expected, dict):
        raise AnsibleFilterError("gpu_operator_capacity: input must be the output of gpu_operator_expected_gpus")
    counts = {name: item["expected"] for name, item in expected.items() if item.get("expected") is not None}
    skipped = sorted(
        "%s (%s)" % (name, item.get("reason")) for name, item in expected.items() if item.get("expected") is None
    )
    shortfalls, report = capacity_shortfalls(counts, list(nodes or []))
    return {"shortfalls": shortfalls, "report": report, "skipped": skipped}


def gpu_operator_capacity_line(item):
    """One line for a node of gpu_operator_capacity's report or shortfalls."""
    if not isinstance(item, dict) or "node" not in item:
        raise AnsibleFilterError("gpu_operator_capacity_line: input must be an item of gpu_operator_capacity")
    if item.get("reason") == "no such Node":
        return "%s: expected %s nvidia.com/gpu, no such Node" % (item["node"], item.get("expected"))
    replicas = item.get("replicas") or 1
    return "%s: expected %s, advertised %s %s%s" % (
        item["node"],
        item.get("expected"),
        "nothing" if item.get("advertised") is None else item.get("advertised"),
        item.get("resource") or "nvidia.com/gpu",
        " (%d replicas per GPU)" % replicas if replicas > 1 else "",
    )


class FilterModule(object):
    def filters(self):
        return {
            "gpu_operator_config_errors": gpu_operator_config_errors,
            "gpu_operator_values": gpu_operator_values,
            "gpu_operator_cluster_policy": gpu_operator_cluster_policy,
            "gpu_operator_compat": gpu_operator_compat,
            "gpu_operator_expected_gpus": gpu_operator_expected_gpus,
            "gpu_operator_capacity": gpu_operator_capacity,
            "gpu_operator_capacity_line": gpu_operator_capacity_line,
        }
