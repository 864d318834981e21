# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The monitoring role's plan: every Kubernetes object and file it writes, computed once from a
validated spec. Pure functions.

- the counters ConfigMap (dcgm-exporter's CSV: its defaults plus the extra counters) and the
  ClusterPolicy merge patch pointing ``spec.dcgmExporter`` at it (DCGM_EXPORTER_COLLECTORS,
  ``--kubernetes-virtual-gpus`` where GPUs are shared);
- operator mode: a ServiceMonitor for the GPU Operator's ``nvidia-dcgm-exporter`` Service and a
  PrometheusRule; scrape_config mode: a Prometheus ``scrape_configs`` list (Kubernetes pods of
  the exporter plus static bare-metal/Slurm targets) and a rules file, no Prometheus operator;
- the Grafana dashboards, one ConfigMap each with the sidecar's label.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import re

from ansible_collections.gpuops.cluster.plugins.plugin_utils.monitoring_dashboards import dashboard_json, dashboards
from ansible_collections.gpuops.cluster.plugins.plugin_utils.monitoring_rules import rule_groups
from ansible_collections.gpuops.cluster.plugins.plugin_utils.monitoring_spec import counters_csv, virtual_gpus

COUNTERS_KEY = "dcgm-metrics.csv"
COUNTERS_PATH = "/etc/dcgm-exporter/" + COUNTERS_KEY
EXPORTER_APP = "nvidia-dcgm-exporter"
EXPORTER_PORT = "gpu-metrics"
MANAGED_BY = {"app.kubernetes.io/managed-by": "gpuops.cluster", "app.kubernetes.io/part-of": "gpuops-monitoring"}


def _meta(name, namespace, labels=None):
    merged = dict(MANAGED_BY)
    merged.update(labels or {})
    return {"name": name, "namespace": namespace, "labels": merged}


def _node_label_meta(label):
    """Prometheus' meta label for a node label (attachMetadata.node)."""
    return "__meta_kubernetes_node_label_" + re.sub(r"[^a-zA-Z0-9_]", "_", label)


def clusterpolicy_patch(spec, shared):
    exporter = {
        "enabled": True,
        "config": {"name": spec["counters_configmap"]},
        "env": [{"name": "DCGM_EXPORTER_COLLECTORS", "value": COUNTERS_PATH}],
    }
    # Merge patches replace lists whole: args is always written, so turning sharing off
    # removes the flag again.
    exporter["args"] = ["--kubernetes-virtual-gpus"] if shared else []
    return {"spec": {"dcgmExporter": exporter}}


def _relabelings(spec):
    return [
        {"sourceLabels": ["__meta_kubernetes_pod_node_name"], "targetLabel": "node", "action": "replace"},
        {
            "sourceLabels": [_node_label_meta(spec["node_group_label"])],
            "targetLabel": "node_group",
            "action": "replace",
        },
    ]


def service_monitor(spec):
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": _meta("gpuops-dcgm-exporter", spec["exporter_namespace"], spec["rule_labels"]),
        "spec": {
            "jobLabel": "app",
            "selector": {"matchLabels": {"app": EXPORTER_APP}},
            "namespaceSelector": {"matchNames": [spec["exporter_namespace"]]},
            "attachMetadata": {"node": True},
            "endpoints": [
                {
                    "port": EXPORTER_PORT,
                    "path": "/metrics",
                    "interval": spec["scrape_interval"],
                    "honorLabels": False,
                    "relabelings": _relabelings(spec),
                }
            ],
        },
    }


def prometheus_rule(spec):
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": _meta("gpuops-gpu-alerts", spec["namespace"], spec["rule_labels"]),
        "spec": {"groups": rule_groups(spec)},
    }


def scrape_configs(spec):
    """Prometheus ``scrape_configs`` for a Prometheus without the operator."""
    configs = [
        {
            "job_name": spec["exporter_job"],
            "scrape_interval": spec["scrape_interval"],
            "kubernetes_sd_configs": [
                {
                    "role": "pod",
                    "namespaces": {"names": [spec["exporter_namespace"]]},
                    "attach_metadata": {"node": True},
                }
            ],
            "relabel_configs": [
                {"source_labels": ["__meta_kubernetes_pod_label_app"], "regex": EXPORTER_APP, "action": "keep"},
                {
                    "source_labels": ["__meta_kubernetes_pod_container_port_name"],
                    "regex": EXPORTER_PORT,
                    "action": "keep",
                },
                {"source_labels": ["__meta_kubernetes_pod_node_name"], "target_label": "node"},
                {"source_labels": [_node_label_meta(spec["node_group_label"])], "target_label": "node_group"},
            ],
        }
    ]
    if spec["static_targets"]:
        configs.append(
            {
                "job_name": spec["exporter_job"] + "-static",
                "scrape_interval": spec["scrape_interval"],
                "static_configs": [
                    {
                        "targets": [target["address"]],
                        "labels": dict(
                            {"node": target["host"]},
                            **({"node_group": target["node_group"]} if target.get("node_group") else {}),
                        ),
                    }
                    for target in spec["static_targets"]
                ],
            }
        )
    return configs


def dashboard_configmaps(spec):
    label_key, label_value = next(iter(spec["grafana_sidecar_label"].items()))
    objects = []
    for uid, model in sorted(dashboards(spec).items()):
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": _meta(uid, spec["grafana_namespace"], {label_key: label_value}),
                "data": {uid + ".json": dashboard_json(model)},
            }
        )
    return objects


def plan(spec, sharing_strategies=()):
    """Everything the role applies, in order: (ConfigMap, patch, monitors, rules, dashboards)."""
    shared = virtual_gpus(spec, sharing_strategies)
    objects = [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": _meta(spec["counters_configmap"], spec["exporter_namespace"]),
            "data": {COUNTERS_KEY: counters_csv(spec)},
        }
    ]
    if spec["mode"] == "operator":
        objects.append(service_monitor(spec))
        objects.append(prometheus_rule(spec))
    objects.extend(dashboard_configmaps(spec))
    return {
        "objects": objects,
        "clusterpolicy_patch": clusterpolicy_patch(spec, shared),
        "kubernetes_virtual_gpus": shared,
        "scrape_configs": scrape_configs(spec) if spec["mode"] == "scrape_config" else [],
        "rule_groups": rule_groups(spec),
        "namespaces": sorted({spec["exporter_namespace"], spec["namespace"], spec["grafana_namespace"]}),
    }
