"""Simulated gpu-operator controller (being written)."""

from __future__ import annotations

from .runner import Controller


class GpuOperator(Controller):
    name = "gpu-operator"

    def reconcile(self) -> None:
        return None
