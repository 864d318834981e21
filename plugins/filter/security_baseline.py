# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the security_baseline role: validate the spec, render the manifests, and check."""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError
from ansible_collections.gpuops.cluster.plugins.plugin_utils._common import plain
from ansible_collections.gpuops.cluster.plugins.plugin_utils.security_baseline import (
    BaselineError,
    mig_profiles_of,
    pdb_drain_warnings,
    plan_baseline,
    profiling_problems,
)
from ansible_collections.gpuops.cluster.plugins.plugin_utils.security_rbac import wildcard_problems


def security_baseline_plan(spec):
    """Validate the role's collected variables; ``{manifests, errors, warnings, ...}``."""
    return plan_baseline(plain(spec))


def security_baseline_mig_profiles(mig_plan):
    """MIG profiles the mig role's operator configs expose (``mig_plan_all``), sorted."""
    if mig_plan is None:
        return []
    if not isinstance(mig_plan, dict):
        raise AnsibleFilterError("security_baseline_mig_profiles: input must be the mig role's mig_plan_all")
    return mig_profiles_of(plain(mig_plan.get("configs")))


def security_baseline_pdb_warnings(pdbs, jobs):
    """Warnings for PDBs that select a single-replica Job's pods (they block every drain)."""
    return pdb_drain_warnings(plain(pdbs) or [], plain(jobs) or [])


def security_baseline_rbac_problems(roles):
    """Least-privilege problems of (Cluster)Role objects: wildcards outside the admin persona,
    resourceNames on list/watch/create/deletecollection. Empty when fine."""
    problems = []
    for role in plain(roles) or []:
        problems.extend(wildcard_problems(role))
    return problems


def security_baseline_profiling(hostvars, hosts, allowed_hosts=None):
    """``{errors, warnings}`` of RmProfilingAdminOnly on ``hosts`` from their gpu_probe facts."""
    if not isinstance(hosts, (list, tuple)):
        raise AnsibleFilterError("security_baseline_profiling: 'hosts' must be a list of inventory host names")
    facts = {}
    for name in hosts:
        host = hostvars.get(name) if hasattr(hostvars, "get") else hostvars[name]
        facts[name] = plain(((host or {}).get("ansible_facts") or {}).get("gpu"))
    try:
        errors, warnings = profiling_problems(facts, plain(allowed_hosts) if allowed_hosts is not None else [])
    except BaselineError as exc:
        return {"errors": [str(exc)], "warnings": []}
    return {"errors": errors, "warnings": warnings}


class FilterModule(object):
    def filters(self):
        return {
            "security_baseline_plan": security_baseline_plan,
            "security_baseline_mig_profiles": security_baseline_mig_profiles,
            "security_baseline_pdb_warnings": security_baseline_pdb_warnings,
            "security_baseline_rbac_problems": security_baseline_rbac_problems,
            "security_baseline_profiling": security_baseline_profiling,
        }
