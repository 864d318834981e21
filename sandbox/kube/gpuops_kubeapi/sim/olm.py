"""Simulated olm controller (being written)."""

from __future__ import annotations

from .runner import Controller


class Olm(Controller):
    name = "olm"

    def reconcile(self) -> None:
        return None


def serve_openshift(cluster) -> None:  # noqa: ARG001 - filled in with the OLM controller
    return None
