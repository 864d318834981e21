"""Simulated KEDA (operator + metrics API server) for ScaledObjects with Prometheus triggers.

As upstream KEDA does, per ScaledObject (keda.sh/v1alpha1):
- creates and keeps an autoscaling/v2 HorizontalPodAutoscaler `keda-hpa-<name>` (owned by the
  ScaledObject) with one External metric per trigger, named `s<index>-prometheus` and selected
  by the label `scaledobject.keda.sh/name`, its target `AverageValue` (default) or `Value` from
  the trigger's `metricType`, `minReplicas` max(minReplicaCount, 1), `maxReplicas`, and the
  behavior of `advanced.horizontalPodAutoscalerConfig`;
- polls the triggers every `pollingInterval` seconds (default 30): the Prometheus HTTP API
  (`/api/v1/query`) at GPUOPS_SANDBOX_PROMETHEUS_URL when set (the sandbox's Prometheus; a
  trigger's `serverAddress` is usually a cluster DNS name), else the trigger's `serverAddress`.
  A query must return at most one sample (more is an error, as upstream); none reads 0
  (`ignoreNullValues` defaults true). A trigger is active when its value exceeds
  `activationThreshold` (default 0);
- scales the target from zero to max(minReplicaCount, 1) when active, and to zero when every
  trigger was inactive for `cooldownPeriod` (default 300 s) with minReplicaCount 0 (in between
  the HPA scales);
- counts consecutive failures per metric in `status.health`; once a metric failed
  `fallback.failureThreshold` times the metrics API answers the HPA with the value that makes it
  compute `fallback.replicas` (with `currentReplicasIfHigher`: never below the current replicas),
  and the `Fallback` condition is True;
- status: `Ready`, `Active`, `Fallback`, `Paused` conditions, `hpaName`, `scaleTargetKind`,
  `originalReplicaCount`, `externalMetricNames`, `lastActiveTime`, `health`.

`external_metric()` is the metrics API the hpa controller asks (keda-metrics-apiserver upstream):
it runs the trigger's query at that moment (`useCachedMetrics` false). Only `prometheus`
triggers and Deployment targets are simulated; `authenticationRef` is accepted and not used (the
sandbox's Prometheus has no auth).
"""

from __future__ import annotations

import json
import math
import os
import time
import urllib.parse
import urllib.request
from typing import Any

from ..api import now
from ..store import ObjectKey
from . import podutil
from .runner import WorkController

SCALED = ("keda.sh", "scaledobjects")
HPAS = ("autoscaling", "horizontalpodautoscalers")
DEPLOYMENTS = ("apps", "deployments")
NAME_LABEL = "scaledobject.keda.sh/name"
MANAGER = "keda-operator"
PROMETHEUS_ENV = "GPUOPS_SANDBOX_PROMETHEUS_URL"


class ScalerError(Exception):
    pass


def prometheus_value(server: str, query: str, timeout: float = 2.0) -> float:
    """The query's single value, as KEDA's prometheus scaler reads it."""
    url = server.rstrip("/") + "/api/v1/query?" + urllib.parse.urlencode({"query": query})
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - 127.0.0.1 in the sandbox
            body = json.load(response)
    except Exception as exc:  # connection refused, HTTP error, bad JSON
        raise ScalerError(f"prometheus query failed: {exc}") from exc
    if body.get("status") != "success":
        raise ScalerError(f"prometheus query failed: {body.get('error')}")
    data = body.get("data") or {}
    result = data.get("result")
    if data.get("resultType") == "scalar":
        value = result[1]
    elif not result:
        return 0.0  # ignoreNullValues: true
    elif len(result) > 1:
        raise ScalerError(f"prometheus query {query} returned multiple elements")
    else:
        value = result[0]["value"][1]
    number = float(value)
    if math.isnan(number) or math.isinf(number):
        raise ScalerError(f"prometheus query {query} returned {value}")
    return number


def trigger_server(trigger: dict[str, Any]) -> str:
    return os.environ.get(PROMETHEUS_ENV) or (trigger.get("metadata") or {}).get(
        "serverAddress", ""
    )


def metric_name(index: int, trigger: dict[str, Any]) -> str:
    return f"s{index}-{trigger.get('type', 'prometheus')}"


def hpa_name(scaled: dict[str, Any]) -> str:
    advanced = scaled["spec"].get("advanced") or {}
    return (advanced.get("horizontalPodAutoscalerConfig") or {}).get("name") or (
        f"keda-hpa-{scaled['metadata']['name']}"
    )


def _float(text: Any, default: float) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return default


def external_metric(
    client, namespace: str, name: str, selector: dict[str, str]
) -> tuple[float, str]:
    """(value, target type) of External metric `name` for the ScaledObject the selector names,
    as keda-metrics-apiserver answers the HPA. Raises ScalerError when it cannot be read."""
    so_name = (selector or {}).get(NAME_LABEL)
    scaled = (
        client.get("keda.sh", "v1alpha1", "scaledobjects", namespace, so_name) if so_name else None
    )
    if scaled is None:
        raise ScalerError(f"no ScaledObject for metric {name}")
    triggers = scaled["spec"].get("triggers") or []
    for index, trigger in enumerate(triggers):
        if metric_name(index, trigger) != name:
            continue
        fallback = scaled["spec"].get("fallback")
        health = ((scaled.get("status") or {}).get("health") or {}).get(name) or {}
        target = _float((trigger.get("metadata") or {}).get("threshold"), 1.0)
        metric_type = trigger.get("metricType") or "AverageValue"
        try:
            return prometheus_value(
                trigger_server(trigger), trigger["metadata"]["query"]
            ), metric_type
        except ScalerError:
            if fallback and health.get("numberOfFailures", 0) >= fallback.get(
                "failureThreshold", 3
            ):
                deployment = client.get(
                    "apps", "v1", "deployments", namespace, scaled["spec"]["scaleTargetRef"]["name"]
                )
                current = ((deployment or {}).get("spec") or {}).get("replicas", 1)
                replicas = fallback.get("replicas", 1)
                if fallback.get("behavior") == "currentReplicasIfHigher":
                    replicas = max(replicas, current)
                elif fallback.get("behavior") == "currentReplicasIfLower":
                    replicas = min(replicas, current)
                elif fallback.get("behavior") == "currentReplicas":
                    replicas = current
                # The value that makes the HPA compute `replicas` for this target type.
                if metric_type == "AverageValue":
                    return float(replicas) * target, metric_type
                return target * replicas / max(current, 1), metric_type
            raise
    raise ScalerError(f"ScaledObject {so_name} has no metric {name}")


class Keda(WorkController):
    name = "keda"
    manager = MANAGER
    primary = SCALED
    periodic = True

    def __init__(self, cluster, options) -> None:
        super().__init__(cluster, options)
        self._inactive_since: dict[ObjectKey, float] = {}

    def keys_for(self, type_key, key, event, before):
        if type_key == SCALED:
            # As upstream's controller (generation-changed and paused-annotation predicates): a
            # status-only update, such as this controller's own health counts, does not trigger
            # a poll (each poll wrote the status, which triggered the next: a loop counting
            # failures several times a second); polls come every pollingInterval (the requeue).
            if event.type == "MODIFIED" and before is not None:
                old, new = (
                    before.decode().get("metadata") or {},
                    event.record.decode().get("metadata") or {},
                )
                if old.get("generation") == new.get("generation") and old.get(
                    "annotations"
                ) == new.get("annotations"):  # (annotations: the paused ones)
                    return ()
            return (key,)
        if type_key == DEPLOYMENTS:
            with self.cluster.lock:
                records = list(self.cluster.store.scan(SCALED, key[0], None))
            return [
                r.key for r in records if r.decode()["spec"]["scaleTargetRef"]["name"] == key[1]
            ]
        return ()

    def sync(self, key: ObjectKey) -> None:
        namespace, name = key
        scaled = self.client.get("keda.sh", "v1alpha1", "scaledobjects", namespace, name)
        if scaled is None:
            self._inactive_since.pop(key, None)
            return
        spec = scaled["spec"]
        self.requeue(key, float(spec.get("pollingInterval", 30)))
        status = dict(scaled.get("status") or {})
        conditions = status.get("conditions") or []
        target_ref = spec["scaleTargetRef"]
        deployment = None
        if target_ref.get("kind", "Deployment") == "Deployment":
            deployment = self.client.get("apps", "v1", "deployments", namespace, target_ref["name"])
        if deployment is None:
            conditions = podutil.set_condition(
                conditions,
                "Ready",
                "False",
                "ScaledObjectCheckFailed",
                "Target resource doesn't exist",
            )
            self._write_status(scaled, dict(status, conditions=conditions))
            return
        if "originalReplicaCount" not in status:
            status["originalReplicaCount"] = deployment["spec"].get("replicas", 1)
        triggers = spec.get("triggers") or []
        health = dict(status.get("health") or {})
        active = False
        fallback_on = False
        errors = []
        for index, trigger in enumerate(triggers):
            metric = metric_name(index, trigger)
            entry = dict(health.get(metric) or {"numberOfFailures": 0, "status": "Happy"})
            try:
                value = prometheus_value(
                    trigger_server(trigger), (trigger.get("metadata") or {}).get("query", "")
                )
                entry = {"numberOfFailures": 0, "status": "Happy"}
                if value > _float((trigger.get("metadata") or {}).get("activationThreshold"), 0.0):
                    active = True
            except ScalerError as exc:
                errors.append(str(exc))
                entry = {
                    "numberOfFailures": entry.get("numberOfFailures", 0) + 1,
                    "status": "Failing",
                }
                fallback = spec.get("fallback")
                if fallback and entry["numberOfFailures"] >= fallback.get("failureThreshold", 3):
                    fallback_on = True
            health[metric] = entry
        self._ensure_hpa(scaled, triggers)
        self._scale_zero(key, spec, deployment, active)
        status.update(
            {
                "hpaName": hpa_name(scaled),
                "scaleTargetKind": "apps/v1.Deployment",
                "externalMetricNames": [metric_name(i, t) for i, t in enumerate(triggers)],
                "health": health,
            }
        )
        if active:
            status["lastActiveTime"] = now()
        conditions = podutil.set_condition(
            conditions,
            "Ready",
            "True" if not errors else "False",
            "ScaledObjectReady" if not errors else "ScaledObjectCheckFailed",
            "ScaledObject is defined correctly and is ready for scaling"
            if not errors
            else "; ".join(errors),
        )
        conditions = podutil.set_condition(
            conditions,
            "Active",
            "True" if active else "False",
            "ScalerActive" if active else "ScalerNotActive",
            "Scaling is performed because triggers are active"
            if active
            else "Scaling is not performed because triggers are not active",
        )
        conditions = podutil.set_condition(
            conditions,
            "Fallback",
            "True" if fallback_on else "False",
            "FallbackExists" if fallback_on else "NoFallbackFound",
            "At least one trigger is falling back on this scaled object"
            if fallback_on
            else "No fallbacks are active on this scaled object",
        )
        conditions = podutil.set_condition(
            conditions,
            "Paused",
            "False",
            "ScaledObjectUnpaused",
            "pause annotation removed for ScaledObject",
        )
        status["conditions"] = conditions
        self._write_status(scaled, status)

    def _write_status(self, scaled, status) -> None:
        if status != (scaled.get("status") or {}):
            scaled["status"] = status
            self.client.update("keda.sh", "v1alpha1", "scaledobjects", scaled, "status")

    def _ensure_hpa(self, scaled, triggers) -> None:
        spec = scaled["spec"]
        metadata = scaled["metadata"]
        metrics = []
        for index, trigger in enumerate(triggers):
            threshold = str((trigger.get("metadata") or {}).get("threshold", "1"))
            kind = trigger.get("metricType") or "AverageValue"
            target = {
                "type": kind,
                "averageValue" if kind == "AverageValue" else "value": threshold,
            }
            metrics.append(
                {
                    "type": "External",
                    "external": {
                        "metric": {
                            "name": metric_name(index, trigger),
                            "selector": {"matchLabels": {NAME_LABEL: metadata["name"]}},
                        },
                        "target": target,
                    },
                }
            )
        hpa_spec = {
            "scaleTargetRef": {
                "apiVersion": spec["scaleTargetRef"].get("apiVersion", "apps/v1"),
                "kind": spec["scaleTargetRef"].get("kind", "Deployment"),
                "name": spec["scaleTargetRef"]["name"],
            },
            "minReplicas": max(spec.get("minReplicaCount", 0), 1),
            "maxReplicas": spec.get("maxReplicaCount", 100),
            "metrics": metrics,
        }
        behavior = ((spec.get("advanced") or {}).get("horizontalPodAutoscalerConfig") or {}).get(
            "behavior"
        )
        if behavior:
            hpa_spec["behavior"] = behavior
        name = hpa_name(scaled)
        existing = self.client.get(
            "autoscaling", "v2", "horizontalpodautoscalers", metadata["namespace"], name
        )
        labels = {
            "app.kubernetes.io/managed-by": MANAGER,
            "app.kubernetes.io/name": name,
            "app.kubernetes.io/part-of": metadata["name"],
            NAME_LABEL: metadata["name"],
        }
        if existing is None:
            self.client.create(
                "autoscaling",
                "v2",
                "horizontalpodautoscalers",
                metadata["namespace"],
                {
                    "apiVersion": "autoscaling/v2",
                    "kind": "HorizontalPodAutoscaler",
                    "metadata": {
                        "name": name,
                        "namespace": metadata["namespace"],
                        "labels": labels,
                        "ownerReferences": [podutil.owner_reference(scaled)],
                    },
                    "spec": hpa_spec,
                },
            )
        elif {k: existing["spec"].get(k) for k in hpa_spec} != hpa_spec:
            self.client.patch(
                "autoscaling",
                "v2",
                "horizontalpodautoscalers",
                metadata["namespace"],
                name,
                {"spec": hpa_spec},
            )

    def _scale_zero(self, key, spec, deployment, active) -> None:
        replicas = deployment["spec"].get("replicas", 1)
        minimum = spec.get("minReplicaCount", 0)
        moment = time.monotonic()
        if active:
            self._inactive_since.pop(key, None)
            if replicas == 0:
                self._set_replicas(deployment, max(minimum, 1))
            return
        since = self._inactive_since.setdefault(key, moment)
        if minimum == 0 and replicas > 0:
            cooldown = float(spec.get("cooldownPeriod", 300))
            if moment - since >= cooldown:
                self._set_replicas(deployment, 0)
            else:
                self.requeue(key, cooldown - (moment - since))

    def _set_replicas(self, deployment, replicas) -> None:
        metadata = deployment["metadata"]
        self.client.patch(
            "apps",
            "v1",
            "deployments",
            metadata["namespace"],
            metadata["name"],
            {"spec": {"replicas": replicas}},
        )
