"""Simulated device-plugin controller (being written)."""

from __future__ import annotations

from .runner import Controller


class DevicePlugin(Controller):
    name = "device-plugin"

    def reconcile(self) -> None:
        return None
