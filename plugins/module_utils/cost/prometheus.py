# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""GPU activity, framebuffer use and power over a window from Prometheus (dcgm-exporter's
metric names and labels: pod/namespace on per-pod series, Hostname = node, gpu = index)."""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import json
from typing import Any, Callable, Dict, Optional
from urllib.parse import urlencode

from ansible.module_utils.urls import open_url

ACTIVITY = 'avg by (namespace, pod) (avg_over_time(DCGM_FI_PROF_GR_ENGINE_ACTIVE{pod!=""}[%s]))'
FB_USED_MIB = 'max by (namespace, pod) (max_over_time(DCGM_FI_DEV_FB_USED{pod!=""}[%s]))'
# Power is per physical GPU; MIG rows repeat it, so one value per (node, gpu) first.
POWER_WATTS = "sum by (Hostname) (max by (Hostname, gpu) (avg_over_time(DCGM_FI_DEV_POWER_USAGE[%s])))"


class PrometheusError(Exception):
    pass


def _seconds(window_seconds: int) -> str:
    return "%ds" % window_seconds


class Prometheus(object):
    def __init__(self, url: str, timeout: float = 30.0, opener: Optional[Callable[..., Any]] = None):
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.opener = opener or open_url

    def query(self, promql: str) -> list:
        address = "%s/api/v1/query?%s" % (self.url, urlencode({"query": promql}))
        try:
            with self.opener(address, timeout=self.timeout) as response:
                body = json.loads(response.read().decode("utf-8"))
        except Exception as error:  # URLError, HTTPError, timeouts, bad JSON
            raise PrometheusError("Prometheus query failed at %s: %s" % (self.url, error)) from None
        if body.get("status") != "success":
            raise PrometheusError("Prometheus refused the query: %s" % body.get("error"))
        return (body.get("data") or {}).get("result") or []

    def by_pod(self, template: str, window_seconds: int, scale: float = 1.0) -> Dict[str, float]:
        result = {}
        for series in self.query(template % _seconds(window_seconds)):
            labels = series.get("metric") or {}
            result["%s/%s" % (labels.get("namespace"), labels.get("pod"))] = float(series["value"][1]) * scale
        return result

    def activity(self, window_seconds: int) -> Dict[str, float]:
        """Pod key -> mean graphics-engine activity 0..1 over the window."""
        return self.by_pod(ACTIVITY, window_seconds)

    def fb_used_gib(self, window_seconds: int) -> Dict[str, float]:
        return self.by_pod(FB_USED_MIB, window_seconds, 1.0 / 1024.0)

    def power_watts(self, window_seconds: int) -> Dict[str, float]:
        """Node name -> mean summed GPU draw (W) over the window."""
        result = {}
        for series in self.query(POWER_WATTS % _seconds(window_seconds)):
            result[(series.get("metric") or {}).get("Hostname")] = float(series["value"][1])
        return result
