"""kube-controller-manager's disruption controller: every PodDisruptionBudget's status follows
its pods (currentHealthy, desiredHealthy, disruptionsAllowed, expectedPods,
observedGeneration and the DisruptionAllowed condition: SufficientPods / InsufficientPods),
recomputed whenever a pod of its namespace changes."""

from __future__ import annotations

from ..store import ObjectKey
from . import podutil
from .runner import KCM, WorkController

PODS = ("", "pods")
BUDGETS = ("policy", "poddisruptionbudgets")


class Disruption(WorkController):
    name = "disruption"
    manager = KCM
    primary = BUDGETS

    def keys_for(self, type_key, key, event, before):
        if type_key == BUDGETS:
            return (key,)
        if type_key == PODS:
            with self.cluster.lock:
                return [r.key for r in self.cluster.store.scan(BUDGETS, key[0], None)]
        return ()

    def sync(self, key: ObjectKey) -> None:
        record = self.client.record(BUDGETS, key)
        if record is None:
            return
        budget = record.decode()
        with self.cluster.lock:
            status = self.cluster._pdb_status(budget)
        allowed = status["disruptionsAllowed"] > 0
        status["conditions"] = podutil.set_condition(
            (budget.get("status") or {}).get("conditions") or [],
            "DisruptionAllowed",
            "True" if allowed else "False",
            "SufficientPods" if allowed else "InsufficientPods",
            "",
        )
        for entry in status["conditions"]:
            entry.setdefault("observedGeneration", budget["metadata"].get("generation", 1))
        old = budget.get("status") or {}
        merged = dict(old, **status)
        if merged != old:
            budget["status"] = merged
            self.client.update("policy", "v1", "poddisruptionbudgets", budget, "status")
