"""Simulated mig-manager controller (being written)."""

from __future__ import annotations

from .runner import Controller


class MigManager(Controller):
    name = "mig-manager"

    def reconcile(self) -> None:
        return None
