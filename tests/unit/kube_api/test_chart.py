"""The sandbox's gpu-operator chart (sandbox/charts/gpu-operator): helm lints it, and from the
values the gpu_operator role renders it produces a ClusterPolicy that its own CRD (and, when
../shared is there, NVIDIA's) accepts unchanged, carrying the same settings as the
ClusterPolicy the role applies itself in its olm/out_of_band modes."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ansible_collections.gpuops.cluster.plugins.plugin_utils.gpu_operator import (
    render_cluster_policy,
    render_values,
)
from gpuops_kubeapi import schema

from conftest import REPO_ROOT, SHARED_CRDS

CHART = REPO_ROOT / "sandbox" / "charts" / "gpu-operator"
HELM = Path(sys.executable).parent / "helm"
pytestmark = pytest.mark.skipif(
    not HELM.exists(), reason=f"no helm binary at {HELM}: run `make helm` (tools/helm.sh)"
)


def _cfg(**overrides):
    """The settings dict the role builds (roles/gpu_operator/vars), from its defaults."""
    defaults = yaml.safe_load(
        (REPO_ROOT / "roles" / "gpu_operator" / "defaults" / "main.yml").read_text()
    )
    template = yaml.safe_load(
        (REPO_ROOT / "roles" / "gpu_operator" / "vars" / "main.yml").read_text()
    )
    cfg = {}
    for key in template["gpu_operator_cfg"]:
        value = defaults.get(f"gpu_operator_{key}")
        cfg[key] = "" if value is None else value
    cfg["platform"] = "kubernetes"
    cfg["extra_values"] = {}
    cfg.update(overrides)
    return cfg


def _render(values: dict, tmp_path: Path) -> list[dict]:
    values_file = tmp_path / "values.yaml"
    values_file.write_text(yaml.safe_dump(values))
    rendered = subprocess.run(
        [
            str(HELM),
            "template",
            "gpu-operator",
            str(CHART),
            "-n",
            "gpu-operator",
            "--include-crds",
            "-f",
            str(values_file),
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [d for d in yaml.safe_load_all(rendered) if d]


def _leaves(tree, prefix=()):
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            yield from _leaves(value, prefix + (key,))
        else:
            yield prefix + (key,), value


def _get(tree, path):
    for key in path:
        tree = tree[key]
    return tree


def _crd_schema(path: Path) -> dict:
    documents = [d for d in yaml.safe_load_all(path.read_text()) if d]
    crd = next(d for d in documents if d.get("kind") == "CustomResourceDefinition")
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def test_chart_lints():
    result = subprocess.run(
        [str(HELM), "lint", str(CHART)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {
            "mig_strategy": "mixed",
            "device_plugin_config_name": "plugin-config",
            "device_plugin_config_default": "any",
        },
        {
            "mig_strategy": "none",
            "driver_enabled": True,
            "driver_version": "580.95.05",
            "image_registry": "reg.local:5000",
        },
        {
            "platform": "openshift",
            "mig_manager_config_name": "custom-mig-parted",
            "cdi_enabled": False,
        },
    ],
    ids=["defaults", "mixed-sharing", "driver-registry", "openshift"],
)
def test_cluster_policy_from_role_values_is_valid_and_matches_the_role(overrides, tmp_path):
    cfg = _cfg(**overrides)
    documents = _render(render_values(cfg), tmp_path)
    kinds = sorted(d["kind"] for d in documents)
    assert kinds == ["ClusterPolicy", "CustomResourceDefinition", "Deployment", "ServiceAccount"]
    policy = next(d for d in documents if d["kind"] == "ClusterPolicy")
    schemas = [_crd_schema(CHART / "crds" / "nvidia.com_clusterpolicies.yaml")]
    if (SHARED_CRDS / "nvidia.com_clusterpolicies.yaml").exists():
        schemas.append(_crd_schema(SHARED_CRDS / "nvidia.com_clusterpolicies.yaml"))
    for node in schemas:
        candidate = copy.deepcopy(policy)
        assert schema.prune(candidate, node) == []  # nothing unknown: Strict validation passes
        assert schema.validate_structural(candidate, node) == []
    # Every setting the role puts in its own ClusterPolicy, the chart renders the same.
    expected = render_cluster_policy(cfg)["spec"]
    for path, value in _leaves(expected):
        if path == ("operator", "defaultRuntime"):
            continue  # the chart's value (docker) stands; the operator detects the runtime
        if path[-1] == "version" and value is None:
            continue
        assert _get(policy["spec"], path) == value, ".".join(path)
