"""Simulated NVIDIA MIG Manager (k8s-mig-manager).

Watches the node label `nvidia.com/mig.config`. When it names a config that is not applied
yet (or the ConfigMap changed), it sets `nvidia.com/mig.config.state=pending`, applies the
selected entry of the ConfigMap named by ClusterPolicy `spec.migManager.config.name` (key
`config.yaml`, mig-parted v1) to the node's simulated GPUs by running
`python -m gpuops_sim.mig_parted apply` with the host's NVML simulator environment (so the
simulator's faults, placement rules and busy GPUs apply), then sets `success`, or `failed`
with the reason in the annotation `sandbox.gpuops.io/mig.config.error` and a Warning Event on
the Node. Like mig-parted, a GPU whose layout differs loses all its instances before the new
ones are created; GPUs already as wanted are untouched.

Without `spec.migManager.config.name` the config is generated from the node's hardware, as
the operator's default does: `all-disabled`, `all-enabled` and `all-<profile>` for every GPU
instance profile (as many as fit). Removing the label stops management (the state label
goes). Differences from upstream: no operand pods are stopped or restarted (the device plugin
here re-reads the simulated GPUs by itself), no `rebooting` state (a mode change that needs
a reset the GPU's clients block fails instead), the config is applied synchronously inside
the controller pass.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from typing import Any

import yaml

from . import nodestate
from .fleet import FIXTURE_ANNOTATION, STATE_ANNOTATION
from .gpu_operator import active_policy, node_view, operator_namespace
from .gpus import _SIM_PATH
from .runner import Controller

ERROR_ANNOTATION = "sandbox.gpuops.io/mig.config.error"


def generated_config(view: dict[str, Any]) -> dict[str, Any]:
    """mig-parted v1 config from the node's hardware (the operator's default ConfigMap)."""
    from gpuops_sim import fixture as sim_fixture

    configs: dict[str, Any] = {
        "all-disabled": [{"devices": "all", "mig-enabled": False}],
        "all-enabled": [{"devices": "all", "mig-enabled": True, "mig-devices": {}}],
    }
    fixture = sim_fixture.load(view["fixture"])
    for gpu in fixture["gpus"]:
        geometry = gpu["model"]["mig_geometry"]
        if geometry is None:
            continue
        for profile in geometry["gpu_instance_profiles"]:
            name = f"all-{profile['name']}"
            if name not in configs:
                configs[name] = [
                    {
                        "devices": "all",
                        "mig-enabled": True,
                        "mig-devices": {profile["name"]: profile["max"]},
                    }
                ]
    return {"version": "v1", "mig-configs": configs}


class MigManager(Controller):
    name = "mig-manager"

    def __init__(self, cluster, options):
        super().__init__(cluster, options)
        # node name -> (config name, ConfigMap resourceVersion) last acted on
        self.done: dict[str, tuple[str, str]] = {}

    def reconcile(self) -> None:
        if self.client.rtype("nvidia.com", "v1", "clusterpolicies") is None:
            return
        policy, _unused = active_policy(self.client)
        if policy is None:
            return
        spec = nodestate.policy_spec(policy)
        if not nodestate.enabled(spec, "migManager"):
            return
        map_name = ((spec.get("migManager") or {}).get("config") or {}).get("name")
        config_map = None
        if map_name:
            config_map = self.client.get(
                "", "v1", "configmaps", operator_namespace(self.client), map_name
            )
        for node in self.client.list("", "v1", "nodes"):
            self._node(node, map_name, config_map)

    def _node(self, node, map_name, config_map) -> None:
        metadata = node["metadata"]
        name = metadata["name"]
        labels = metadata.get("labels") or {}
        annotations = metadata.get("annotations") or {}
        wanted = labels.get(nodestate.MIG_CONFIG)
        if not wanted:
            self.done.pop(name, None)
            if nodestate.MIG_CONFIG_STATE in labels:
                self._label(name, None)
            return
        # The mig-manager DaemonSet runs where the operator deploys it: MIG-capable GPU nodes
        # (GFD's nvidia.com/mig.capable=true) whose operands are not switched off.
        if (
            labels.get("nvidia.com/gpu.deploy.mig-manager") == "false"
            or labels.get(nodestate.DEPLOY_OPERANDS) == "false"
            or labels.get("nvidia.com/mig.capable") != "true"
            or not annotations.get(FIXTURE_ANNOTATION)
        ):
            return
        key = (wanted, (config_map or {}).get("metadata", {}).get("resourceVersion", ""))
        if self.done.get(name) == key and labels.get(nodestate.MIG_CONFIG_STATE) in (
            "success",
            "failed",
        ):
            return
        self._label(name, "pending")
        error = self._apply(node, wanted, map_name, config_map)
        self.done[name] = key
        if error is None:
            self._label(name, "success", clear_error=ERROR_ANNOTATION in annotations)
            return
        self.client.patch(
            "", "v1", "nodes", None, name, {"metadata": {"annotations": {ERROR_ANNOTATION: error}}}
        )
        self._label(name, "failed")
        self.client.event(
            self.client.get("", "v1", "nodes", None, name) or node,
            "MigConfigFailed",
            f"applying MIG config {wanted!r}: {error}",
            "Warning",
        )

    def _label(self, name: str, state: str | None, clear_error: bool = False) -> None:
        body: dict[str, Any] = {"metadata": {"labels": {nodestate.MIG_CONFIG_STATE: state}}}
        if clear_error:
            body["metadata"]["annotations"] = {ERROR_ANNOTATION: None}
        self.client.patch("", "v1", "nodes", None, name, body)

    def _apply(self, node, wanted, map_name, config_map) -> str | None:
        annotations = node["metadata"].get("annotations") or {}
        if map_name:
            if config_map is None:
                return f"ConfigMap {map_name} not found"
            text = (config_map.get("data") or {}).get("config.yaml")
            if text is None:
                return f"ConfigMap {map_name} has no config.yaml"
            try:
                config = yaml.safe_load(text)
            except yaml.YAMLError as exc:
                return f"ConfigMap {map_name} config.yaml: {exc}"
        else:
            view = node_view(node)
            if view is None or not view.get("fixture"):
                return "node has no simulated GPUs"
            config = generated_config(view)
        state = annotations.get(STATE_ANNOTATION)
        view = node_view(node) or {}
        env = dict(
            os.environ,
            PYTHONPATH=os.path.abspath(_SIM_PATH),
            GPUOPS_NVML_SIM_FIXTURE=view.get("fixture") or annotations[FIXTURE_ANNOTATION],
        )
        if state:
            env["GPUOPS_NVML_SIM_STATE"] = state
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as handle:
            yaml.safe_dump(config, handle)
            path = handle.name
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "gpuops_sim.mig_parted", "apply", "-f", path, "-c", wanted],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
        finally:
            os.unlink(path)
        if proc.returncode != 0:
            return (proc.stderr.strip() or proc.stdout.strip() or "mig-parted failed")[-1000:]
        try:
            json.loads(proc.stdout)
        except ValueError:
            return f"mig-parted: unexpected output {proc.stdout[:200]!r}"
        return None
