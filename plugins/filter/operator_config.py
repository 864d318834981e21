# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters shared by the roles that configure the GPU Operator (mig, gpu_sharing)."""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

from ansible_collections.gpuops.cluster.plugins.plugin_utils._common import plain
from ansible_collections.gpuops.cluster.plugins.plugin_utils.operator_config import missing_nodes, policy_differs


def gpu_operator_missing_nodes(nodes, wanted):
    """Names of ``wanted`` (node names, or a mapping keyed by them) absent from the Node objects."""
    return missing_nodes(plain(nodes) or [], list(plain(wanted) or []))


def gpu_operator_policy_differs(policy, patch):
    """Whether the merge ``patch`` would change the ClusterPolicy object ``policy``."""
    return policy_differs(plain(policy) or {}, plain(patch) or {})


class FilterModule(object):
    def filters(self):
        return {
            "gpu_operator_missing_nodes": gpu_operator_missing_nodes,
            "gpu_operator_policy_differs": gpu_operator_policy_differs,
        }
