"""The simulated controllers by name, and the runner that hosts them."""

from __future__ import annotations

from typing import Any

from ..api import Cluster
from .runner import CONTROLLER_NAMES, Controller, Runner


def parse_controllers(value: str | None) -> list[str]:
    """'all' | 'none' | '' | 'a,b' -> names in CONTROLLER_NAMES order; ValueError otherwise."""
    if value is None or value.strip() in ("", "none"):
        return []
    if value.strip() == "all":
        return list(CONTROLLER_NAMES)
    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in CONTROLLER_NAMES]
    if unknown:
        raise ValueError(
            f"unknown controller(s) {', '.join(unknown)}; known: {', '.join(CONTROLLER_NAMES)}"
        )
    return [name for name in CONTROLLER_NAMES if name in names]


def controller_classes() -> dict[str, type[Controller]]:
    from .device_plugin import DevicePlugin
    from .gpu_operator import GpuOperator
    from .mig_manager import MigManager
    from .olm import Olm
    from .scheduler import Scheduler

    return {
        "gpu-operator": GpuOperator,
        "mig-manager": MigManager,
        "device-plugin": DevicePlugin,
        "scheduler": Scheduler,
        "olm": Olm,
    }


def build_runner(
    cluster: Cluster, names: list[str], options: dict[str, Any], resync: float = 0.5
) -> Runner:
    classes = controller_classes()
    options = dict(options, controllers=list(names))
    if options.get("openshift"):
        from .olm import serve_openshift

        serve_openshift(cluster)
    return Runner(cluster, [classes[name](cluster, options) for name in names], resync=resync)
