"""kube-controller-manager's horizontal-pod-autoscaler controller for autoscaling/v2 HPAs with
External metrics (what KEDA creates), following upstream's replica calculation:

- every sync period (upstream 15 s; GPUOPS_SANDBOX_HPA_SYNC_SECONDS, the sandbox's tests use
  1 s) each HPA's External metrics are read from the external metrics API (the keda
  controller's `external_metric`);
- `AverageValue` target: usage ratio = value / (target x current replicas); within the
  tolerance (0.1) the replicas stay, else ceil(value / target);
  `Value` target: ratio = value / target; within the tolerance the replicas stay, else
  ceil(ratio x ready pods) (the Deployment's readyReplicas; ceil(ratio) from zero);
  several metrics: the largest proposal; a metric that cannot be read is skipped while others
  can be (ScalingActive False with FailedGetExternalMetric when none can);
- behavior: the recommendation is stabilized over `stabilizationWindowSeconds` (scale up: the
  lowest recommendation of the window, scale down: the highest), then limited by the policies
  over their `periodSeconds` (Pods: start +/- value; Percent: ceil(start x (1 + v/100)) up,
  trunc(start x (1 - v/100)) down; `selectPolicy` Max/Min/Disabled), the start being the
  replicas at the beginning of the period (from this controller's own scale events); defaults as
  upstream (scale down 300 s window, 100 %/15 s; scale up 0 s, max(100 %, 4 pods)/15 s);
- clamped to [minReplicas, maxReplicas]; a target at 0 replicas is left alone (ScalingDisabled);
- writes the Deployment's spec.replicas and the HPA status (currentReplicas, desiredReplicas,
  lastScaleTime, currentMetrics, conditions AbleToScale, ScalingActive, ScalingLimited).
Resource, Pods and Object metrics are not simulated.
"""

from __future__ import annotations

import math
import os
import time
from typing import Any

from ..api import now
from ..store import ObjectKey
from . import podutil
from .keda import ScalerError, external_metric
from .runner import KCM, WorkController

HPAS = ("autoscaling", "horizontalpodautoscalers")
TOLERANCE = 0.1
SYNC_ENV = "GPUOPS_SANDBOX_HPA_SYNC_SECONDS"
DEFAULT_UP = {
    "stabilizationWindowSeconds": 0,
    "selectPolicy": "Max",
    "policies": [
        {"type": "Percent", "value": 100, "periodSeconds": 15},
        {"type": "Pods", "value": 4, "periodSeconds": 15},
    ],
}
DEFAULT_DOWN = {
    "stabilizationWindowSeconds": 300,
    "selectPolicy": "Max",
    "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}],
}


def replicas_for_metric(
    value: float, target: float, metric_type: str, current: int, ready: int
) -> int:
    """Upstream's replica count for one External metric."""
    if metric_type == "AverageValue":
        if current > 0 and abs(1.0 - value / (target * current)) <= TOLERANCE:
            return current
        return math.ceil(value / target)
    ratio = value / target
    if current == 0:
        return math.ceil(ratio)
    if abs(1.0 - ratio) <= TOLERANCE:
        return current
    return math.ceil(ratio * ready)


def _rules(behavior: dict[str, Any] | None, direction: str) -> dict[str, Any]:
    default = DEFAULT_UP if direction == "scaleUp" else DEFAULT_DOWN
    rules = dict(default, **((behavior or {}).get(direction) or {}))
    return rules


def _changed_in(events: list[tuple[float, int]], period: float, moment: float) -> int:
    return sum(delta for stamp, delta in events if moment - stamp < period)


def scale_up_limit(current: int, ups, downs, rules, moment: float) -> int:
    if rules.get("selectPolicy") == "Disabled":
        return current
    pick = min if rules.get("selectPolicy") == "Min" else max
    result = None
    for policy in rules.get("policies") or []:
        period = policy["periodSeconds"]
        start = current - _changed_in(ups, period, moment) + _changed_in(downs, period, moment)
        if policy["type"] == "Pods":
            proposed = start + policy["value"]
        else:
            proposed = math.ceil(start * (1 + policy["value"] / 100.0))
        result = proposed if result is None else pick(result, proposed)
    return current if result is None else result


def scale_down_limit(current: int, ups, downs, rules, moment: float) -> int:
    if rules.get("selectPolicy") == "Disabled":
        return current
    # For scaling down, the policy allowing the largest change gives the lowest count.
    pick = max if rules.get("selectPolicy") == "Min" else min
    result = None
    for policy in rules.get("policies") or []:
        period = policy["periodSeconds"]
        start = current - _changed_in(ups, period, moment) + _changed_in(downs, period, moment)
        if policy["type"] == "Pods":
            proposed = start - policy["value"]
        else:
            proposed = int(start * (1 - policy["value"] / 100.0))
        result = proposed if result is None else pick(result, proposed)
    return current if result is None else result


class HorizontalPodAutoscaler(WorkController):
    name = "hpa"
    manager = KCM
    primary = HPAS
    periodic = True

    def __init__(self, cluster, options) -> None:
        super().__init__(cluster, options)
        self.period = float(os.environ.get(SYNC_ENV) or options.get("hpa_sync_seconds") or 15)
        self._recommendations: dict[ObjectKey, list[tuple[float, int]]] = {}
        self._ups: dict[ObjectKey, list[tuple[float, int]]] = {}
        self._downs: dict[ObjectKey, list[tuple[float, int]]] = {}
        self._last: dict[ObjectKey, float] = {}

    def sync(self, key: ObjectKey) -> None:
        namespace, name = key
        hpa = self.client.get("autoscaling", "v2", "horizontalpodautoscalers", namespace, name)
        if hpa is None:
            for table in (self._recommendations, self._ups, self._downs, self._last):
                table.pop(key, None)
            return
        moment = time.monotonic()
        last = self._last.get(key)
        if last is not None and moment - last < self.period:
            self.requeue(key, self.period - (moment - last))
            return
        self._last[key] = moment
        self.requeue(key, self.period)
        spec = hpa["spec"]
        ref = spec["scaleTargetRef"]
        if ref.get("kind") != "Deployment":
            return
        deployment = self.client.get("apps", "v1", "deployments", namespace, ref["name"])
        status = dict(hpa.get("status") or {})
        conditions = status.get("conditions") or []
        if deployment is None:
            conditions = podutil.set_condition(
                conditions,
                "AbleToScale",
                "False",
                "FailedGetScale",
                f'deployments/scale.apps "{ref["name"]}" not found',
            )
            self._write(hpa, dict(status, conditions=conditions))
            return
        current = deployment["spec"].get("replicas", 1)
        ready = (deployment.get("status") or {}).get("readyReplicas", 0)
        conditions = podutil.set_condition(
            conditions,
            "AbleToScale",
            "True",
            "SucceededGetScale",
            "the HPA controller was able to get the target's current scale",
        )
        minimum, maximum = spec.get("minReplicas", 1), spec["maxReplicas"]
        if current == 0 and minimum != 0:
            conditions = podutil.set_condition(
                conditions,
                "ScalingActive",
                "False",
                "ScalingDisabled",
                "scaling is disabled since the replica count of the target is zero",
            )
            self._write(
                hpa, dict(status, currentReplicas=0, desiredReplicas=0, conditions=conditions)
            )
            return
        proposals, current_metrics, failures = [], [], []
        for metric in spec.get("metrics") or []:
            if metric.get("type") != "External":
                continue
            external = metric["external"]
            target = external["target"]
            metric_type = target.get("type", "AverageValue")
            try:
                value, _unused = external_metric(
                    self.client,
                    namespace,
                    external["metric"]["name"],
                    (external["metric"].get("selector") or {}).get("matchLabels") or {},
                )
            except ScalerError as exc:
                failures.append(str(exc))
                continue
            threshold = float(
                podutil.parse_quantity(
                    target.get("averageValue" if metric_type == "AverageValue" else "value")
                )
                or 1
            )
            proposals.append(replicas_for_metric(value, threshold, metric_type, current, ready))
            shown = f"{int(value * 1000)}m" if value != int(value) else str(int(value))
            entry = {"metric": external["metric"]}
            if metric_type == "AverageValue":
                per_pod = value / max(current, 1)
                entry["current"] = {
                    "averageValue": f"{int(per_pod * 1000)}m"
                    if per_pod != int(per_pod)
                    else str(int(per_pod))
                }
            else:
                entry["current"] = {"value": shown}
            current_metrics.append({"type": "External", "external": entry})
        if not proposals:
            conditions = podutil.set_condition(
                conditions,
                "ScalingActive",
                "False",
                "FailedGetExternalMetric",
                "; ".join(failures) or "no metrics",
            )
            self._write(hpa, dict(status, currentReplicas=current, conditions=conditions))
            return
        conditions = podutil.set_condition(
            conditions,
            "ScalingActive",
            "True",
            "ValidMetricFound",
            "the HPA was able to successfully calculate a replica count from external metric",
        )
        desired = max(proposals)
        desired = self._stabilize(key, spec.get("behavior"), current, desired, moment)
        ups, downs = self._ups.setdefault(key, []), self._downs.setdefault(key, [])
        limited = desired
        if desired > current:
            limited = min(
                desired,
                scale_up_limit(
                    current, ups, downs, _rules(spec.get("behavior"), "scaleUp"), moment
                ),
            )
        elif desired < current:
            limited = max(
                desired,
                scale_down_limit(
                    current, ups, downs, _rules(spec.get("behavior"), "scaleDown"), moment
                ),
            )
        final = min(max(limited, minimum), maximum)
        if final != desired:
            reason = (
                "TooManyReplicas"
                if final == maximum and desired > maximum
                else "TooFewReplicas"
                if final == minimum and desired < minimum
                else "ScaleUpLimit"
                if desired > current
                else "ScaleDownLimit"
            )
            conditions = podutil.set_condition(
                conditions,
                "ScalingLimited",
                "True",
                reason,
                f"the desired replica count was limited to {final}",
            )
        else:
            conditions = podutil.set_condition(
                conditions,
                "ScalingLimited",
                "False",
                "DesiredWithinRange",
                "the desired count is within the acceptable range",
            )
        status.update(
            {
                "currentReplicas": current,
                "desiredReplicas": final,
                "currentMetrics": current_metrics,
            }
        )
        if final != current:
            self.client.patch(
                "apps", "v1", "deployments", namespace, ref["name"], {"spec": {"replicas": final}}
            )
            (ups if final > current else downs).append((moment, abs(final - current)))
            status["lastScaleTime"] = now()
            conditions = podutil.set_condition(
                conditions,
                "AbleToScale",
                "True",
                "SucceededRescale",
                f"the HPA controller was able to update the target scale to {final}",
            )
        horizon = 1800.0
        self._ups[key] = [e for e in ups if moment - e[0] < horizon]
        self._downs[key] = [e for e in downs if moment - e[0] < horizon]
        status["conditions"] = conditions
        self._write(hpa, status)

    def _stabilize(self, key, behavior, current: int, desired: int, moment: float) -> int:
        up_window = _rules(behavior, "scaleUp")["stabilizationWindowSeconds"]
        down_window = _rules(behavior, "scaleDown")["stabilizationWindowSeconds"]
        history = self._recommendations.setdefault(key, [])
        history.append((moment, desired))
        up, down = desired, desired
        for stamp, value in history:
            if moment - stamp <= up_window:
                up = min(up, value)
            if moment - stamp <= down_window:
                down = max(down, value)
        keep = max(up_window, down_window)
        self._recommendations[key] = [e for e in history if moment - e[0] <= keep]
        recommendation = current
        if recommendation < up:
            recommendation = up
        if recommendation > down:
            recommendation = down
        return recommendation

    def _write(self, hpa, status) -> None:
        status.setdefault("observedGeneration", hpa["metadata"].get("generation", 1))
        if status != (hpa.get("status") or {}):
            hpa["status"] = status
            self.client.update("autoscaling", "v2", "horizontalpodautoscalers", hpa, "status")
