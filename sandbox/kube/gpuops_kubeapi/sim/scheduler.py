"""Simulated scheduler controller (being written)."""

from __future__ import annotations

from .runner import Controller


class Scheduler(Controller):
    name = "scheduler"

    def reconcile(self) -> None:
        return None
