"""The simulated controllers by name, and the runner that hosts them."""

from __future__ import annotations

from typing import Any

from ..api import Cluster
from .runner import CONTROLLER_NAMES, Controller, Runner

# What --simulate-workloads switches on: workloads roll out with real (simulated) pods.
WORKLOAD_CONTROLLERS = (
    "serviceaccount",
    "deployment",
    "replicaset",
    "daemonset",
    "statefulset",
    "job",
    "disruption",
    "scheduler",
    "kubelet",
)


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
    from .cluster_autoscaler import ClusterAutoscaler
    from .cluster_dns import ClusterDns
    from .daemonset import DaemonSetController
    from .device_plugin import DevicePlugin
    from .disruption import Disruption
    from .gpu_operator import GpuOperator
    from .hpa import HorizontalPodAutoscaler
    from .job import JobController
    from .karpenter import Karpenter
    from .keda import Keda
    from .kubelet import Kubelet
    from .mig_manager import MigManager
    from .nodes import NodeLifecycle, TaintEviction
    from .olm import Olm
    from .scheduler import Scheduler
    from .serviceaccounts import ServiceAccounts
    from .statefulset import StatefulSetController
    from .velero import Velero
    from .workloads import DeploymentController, ReplicaSetController

    return {
        "serviceaccount": ServiceAccounts,
        "node-lifecycle": NodeLifecycle,
        "deployment": DeploymentController,
        "replicaset": ReplicaSetController,
        "daemonset": DaemonSetController,
        "statefulset": StatefulSetController,
        "job": JobController,
        "disruption": Disruption,
        "scheduler": Scheduler,
        "kubelet": Kubelet,
        "taint-eviction": TaintEviction,
        "gpu-operator": GpuOperator,
        "mig-manager": MigManager,
        "device-plugin": DevicePlugin,
        "olm": Olm,
        "velero": Velero,
        "karpenter": Karpenter,
        "keda": Keda,
        "hpa": HorizontalPodAutoscaler,
        "cluster-autoscaler": ClusterAutoscaler,
        "cluster-dns": ClusterDns,
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
