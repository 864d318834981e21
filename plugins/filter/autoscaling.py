# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the autoscaling role: validate its inputs and render the objects it applies."""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

from ansible_collections.gpuops.cluster.plugins.plugin_utils._common import plain
from ansible_collections.gpuops.cluster.plugins.plugin_utils.autoscaling import apply_report, plan


def autoscaling_plan(spec):
    """Validate the autoscaling role's inputs and render its objects (errors listed, never raised)."""
    return plan(plain(spec))


def autoscaling_apply_report(applied, objects):
    """Which of the objects one kubernetes.core.k8s call applied changed: {changed, unchanged, diffs}."""
    return apply_report(plain(objects), plain(applied))


class FilterModule(object):
    def filters(self):
        return {"autoscaling_plan": autoscaling_plan, "autoscaling_apply_report": autoscaling_apply_report}
