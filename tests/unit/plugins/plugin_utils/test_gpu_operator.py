"""GPU Operator values, ClusterPolicy, compatibility and capacity rules (pure logic).

Upstream truth comes from the workplace's shared/ folder: the chart's values.yaml and the
ClusterPolicy CRD (shared/reference/SOURCES.txt, shared/crds/SOURCES.txt say where from).
"""

from __future__ import annotations

import copy
import itertools
import os
from pathlib import Path

import jsonschema
import pytest
import yaml
from ansible_collections.gpuops.cluster.plugins.plugin_utils import gpu_operator as go

REPO = Path(__file__).resolve().parents[4]
SHARED = Path(os.environ.get("GPUOPS_SHARED_DIR") or REPO.parent / "shared")
REFERENCE_VALUES = SHARED / "reference" / "gpu-operator-values.yaml"
CLUSTERPOLICY_CRD = SHARED / "crds" / "nvidia.com_clusterpolicies.yaml"
ROLE = REPO / "roles" / "gpu_operator"

needs_shared = pytest.mark.skipif(
    not (REFERENCE_VALUES.is_file() and CLUSTERPOLICY_CRD.is_file()),
    reason=f"upstream reference files not found under {SHARED} (set GPUOPS_SHARED_DIR)",
)


@pytest.fixture(scope="module")
def reference():
    return yaml.safe_load(REFERENCE_VALUES.read_text())


@pytest.fixture(scope="module")
def crd_schema():
    crd = yaml.safe_load(CLUSTERPOLICY_CRD.read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v.get("storage")]
    return version["schema"]["openAPIV3Schema"]


def role_defaults():
    """The settings dict as the role builds it from defaults/main.yml (vars/main.yml maps names)."""
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    mapping = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())["gpu_operator_cfg"]
    cfg = {}
    for key, template in mapping.items():
        if key == "platform":  # resolved from the API at run time
            cfg[key] = "kubernetes"
            continue
        var = template.strip("{} ").split("|")[0].strip()
        cfg[key] = defaults[var]
    return cfg


def variants():
    """A spread of settings: every install mode, platform, MIG strategy, driver on/off with
    precompiled or pinned versions, every optional feature on and off, a registry mirror."""
    base = role_defaults()
    yield "defaults", base
    for mode, platform, strategy in itertools.product(go.INSTALL_MODES, ("kubernetes", "openshift"), go.MIG_STRATEGIES):
        yield f"{mode}-{platform}-{strategy}", dict(base, install_mode=mode, platform=platform, mig_strategy=strategy)
    yield "driver-pinned", dict(base, driver_enabled=True, driver_version="580.95.05", driver_kernel_module_type="open")
    yield "driver-precompiled", dict(base, driver_enabled=True, driver_precompiled=True, driver_branch="570")
    yield (
        "everything-on",
        dict(
            base,
            toolkit_enabled=True,
            dcgm_exporter_service_monitor=True,
            device_plugin_config_name="device-plugin-config",
            device_plugin_config_default="a100-ts4",
            mig_manager_config_name="custom-mig-parted-config",
            image_registry="registry.example.org:5000/mirror",
            tolerations=[{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoExecute"}],
            node_selector={"node-role.kubernetes.io/infra": ""},
        ),
    )
    yield (
        "everything-off",
        dict(base, dcgm_exporter_enabled=False, nfd_enabled=False, cdi_enabled=False, tolerations=[]),
    )


VARIANTS = list(variants())


@needs_shared
@pytest.mark.parametrize("name,cfg", VARIANTS, ids=[name for name, _unused in VARIANTS])
def test_every_values_path_exists_upstream(reference, name, cfg):
    assert go.validate_config(cfg) == []
    values = go.render_values(cfg)
    assert go.missing_paths(values, reference) == [], name


@needs_shared
def test_a_typo_in_a_values_path_is_caught(reference):
    values = go.render_values(role_defaults())
    values["devicePlugin"]["confg"] = {"name": "x"}
    values["dcgmExporter"]["serviceMonitor"]["enable"] = True
    assert sorted(go.missing_paths(values, reference)) == [
        "dcgmExporter.serviceMonitor.enable",
        "devicePlugin.confg.name",
    ]


@needs_shared
def test_the_component_image_table_matches_upstream(reference):
    """Every component with a `repository` upstream is in COMPONENT_IMAGES, with the same
    repository, image and version, so the registry override misses none."""
    found = {}

    def walk(node, path):
        if isinstance(node, dict):
            if "repository" in node and "image" in node:
                found[".".join(path)] = (node["repository"], node["image"], node.get("version"))
            for key, value in node.items():
                walk(value, path + (key,))

    walk(reference, ())
    assert found == go.COMPONENT_IMAGES


@needs_shared
def test_registry_override_rewrites_every_repository(reference):
    cfg = dict(role_defaults(), image_registry="mirror.example:5000/nv")
    values = go.render_values(cfg)
    upstream = {path: repo for path, (repo, _i, _v) in go.COMPONENT_IMAGES.items() if repo}
    for path, repo in upstream.items():
        node = values
        for key in path.split("."):
            node = node[key]
        assert node["repository"] == "mirror.example:5000/nv/" + repo.split("/", 1)[1], path
    assert values["vgpuManager"] == {"enabled": False} or "repository" not in values.get("vgpuManager", {})


def test_rewrite_registry():
    assert go.rewrite_registry("nvcr.io/nvidia/k8s", "reg:5000") == "reg:5000/nvidia/k8s"
    assert go.rewrite_registry("nvcr.io/nvidia", "reg.example/mirror/") == "reg.example/mirror/nvidia"
    assert go.rewrite_registry("", "reg") == ""
    assert go.rewrite_registry("nvcr.io/nvidia", "") == "nvcr.io/nvidia"


def test_extra_values_merge_last():
    cfg = dict(
        role_defaults(),
        extra_values={
            "devicePlugin": {"enabled": False, "env": [{"name": "A", "value": "1"}]},
            "gds": {"enabled": True},
        },
    )
    values = go.render_values(cfg)
    assert values["devicePlugin"]["enabled"] is False
    assert values["devicePlugin"]["env"] == [{"name": "A", "value": "1"}]
    assert values["gds"] == {"enabled": True}
    assert values["driver"]["enabled"] is False  # untouched settings stay


def test_driver_settings():
    base = role_defaults()
    assert go.render_values(base)["driver"] == {"enabled": False}
    pinned = go.render_values(dict(base, driver_enabled=True, driver_version="580.95.05"))["driver"]
    assert pinned == {"enabled": True, "version": "580.95.05", "usePrecompiled": False, "kernelModuleType": "auto"}
    pre = go.render_values(dict(base, driver_enabled=True, driver_precompiled=True, driver_branch="570"))["driver"]
    assert pre["usePrecompiled"] is True and pre["version"] == "570"


def test_openshift_values_use_the_driver_toolkit():
    values = go.render_values(dict(role_defaults(), platform="openshift"))
    assert values["platform"] == {"openshift": True}
    assert values["operator"]["use_ocp_driver_toolkit"] is True
    assert "use_ocp_driver_toolkit" not in go.render_values(role_defaults())["operator"]


@needs_shared
@pytest.mark.parametrize("name,cfg", VARIANTS, ids=[name for name, _unused in VARIANTS])
def test_cluster_policy_validates_against_the_crd(crd_schema, name, cfg):
    policy = go.render_cluster_policy(cfg)
    jsonschema.validate(policy, crd_schema)
    # The API server prunes unknown fields silently, so every path must also be declared.
    assert _undeclared(policy["spec"], crd_schema["properties"]["spec"]) == [], name


@needs_shared
def test_crd_check_catches_a_bad_cluster_policy(crd_schema):
    policy = go.render_cluster_policy(role_defaults())
    bad = copy.deepcopy(policy)
    bad["spec"]["mig"]["strategy"] = "dual"
    with pytest.raises(jsonschema.ValidationError, match="dual"):
        jsonschema.validate(bad, crd_schema)
    bad = copy.deepcopy(policy)
    del bad["spec"]["gfd"]
    with pytest.raises(jsonschema.ValidationError, match="gfd"):
        jsonschema.validate(bad, crd_schema)
    bad = copy.deepcopy(policy)
    bad["spec"]["devicePlugin"]["confg"] = {"name": "x"}
    assert _undeclared(bad["spec"], crd_schema["properties"]["spec"]) == ["devicePlugin.confg"]


def _undeclared(tree, schema, path=()):
    missing = []
    for key, value in tree.items():
        props = schema.get("properties") or {}
        if key not in props:
            if not schema.get("x-kubernetes-preserve-unknown-fields") and not schema.get("additionalProperties"):
                missing.append(".".join(path + (key,)))
            continue
        if isinstance(value, dict):
            missing.extend(_undeclared(value, props[key], path + (key,)))
    return missing


def test_cluster_policy_contents():
    cfg = dict(
        role_defaults(),
        platform="openshift",
        device_plugin_config_name="dp",
        device_plugin_config_default="ts",
        mig_manager_config_name="mig-cfg",
        mig_strategy="mixed",
    )
    policy = go.render_cluster_policy(cfg)
    assert policy["apiVersion"] == "nvidia.com/v1" and policy["kind"] == "ClusterPolicy"
    assert policy["metadata"] == {"name": "cluster-policy"}
    spec = policy["spec"]
    assert spec["operator"] == {"use_ocp_driver_toolkit": True, "defaultRuntime": "crio"}
    assert spec["devicePlugin"]["config"] == {"name": "dp", "default": "ts"}
    assert spec["migManager"] == {"enabled": True, "config": {"name": "mig-cfg"}}
    assert spec["mig"] == {"strategy": "mixed"}
    assert "repository" not in spec["toolkit"]  # the operator's own image defaults
    mirrored = go.render_cluster_policy(dict(cfg, image_registry="reg:5000"))["spec"]
    assert mirrored["toolkit"]["repository"] == "reg:5000/nvidia/k8s"
    assert mirrored["toolkit"]["image"] == "container-toolkit" and mirrored["toolkit"]["version"]


@pytest.mark.parametrize(
    "change,variable",
    [
        ({"install_mode": "kubectl"}, "gpu_operator_install_mode"),
        ({"platform": "eks"}, "gpu_operator_platform"),
        ({"mig_strategy": "all"}, "gpu_operator_mig_strategy"),
        ({"chart_version": "latest"}, "gpu_operator_chart_version"),
        ({"namespace": "GPU_Operator"}, "gpu_operator_namespace"),
        ({"cluster_policy_name": "Cluster Policy"}, "gpu_operator_cluster_policy_name"),
        ({"device_plugin_config_name": "Bad Name"}, "gpu_operator_device_plugin_config_name"),
        ({"device_plugin_config_default": "ts"}, "gpu_operator_device_plugin_config_name"),
        ({"driver_version": "r580"}, "gpu_operator_driver_version"),
        ({"driver_branch": "58"}, "gpu_operator_driver_branch"),
        ({"driver_version": "570.1.2", "driver_branch": "580"}, "gpu_operator_driver_branch"),
        ({"driver_precompiled": True}, "gpu_operator_driver_enabled"),
        ({"driver_precompiled": True, "driver_enabled": True}, "gpu_operator_driver_branch"),
        ({"driver_kernel_module_type": "closed"}, "gpu_operator_driver_kernel_module_type"),
        ({"image_registry": "https://reg"}, "gpu_operator_image_registry"),
        ({"tolerations": {"key": "a"}}, "gpu_operator_tolerations"),
        ({"tolerations": [{"key": "a", "operator": "In"}]}, "gpu_operator_tolerations[0]"),
        ({"node_selector": ["a"]}, "gpu_operator_node_selector"),
        ({"extra_values": "x"}, "gpu_operator_extra_values"),
        ({"ready_timeout": -1}, "gpu_operator_ready_timeout"),
    ],
)
def test_bad_settings_name_the_variable(change, variable):
    errors = go.validate_config(dict(role_defaults(), **change))
    assert errors, change
    assert any(variable in error for error in errors), errors


MATRIX = yaml.safe_load((ROLE / "vars" / "compat.yml").read_text())["gpu_operator_compat_matrix"]


def _compat(cfg=None, kube="1.34", platform="kubernetes", openshift="", hosts=()):
    cfg = dict(role_defaults(), **(cfg or {}))
    return go.check_compat(MATRIX, cfg, {"kubernetes": kube, "platform": platform, "openshift": openshift}, list(hosts))


def test_compat_matrix_data_is_consistent():
    for series, entry in MATRIX.items():
        assert all(go.chart_series(v) == series for v in entry["chart_versions"]), series
        assert all(go.driver_branch(b) == b for b in entry["driver_branches"]), series
        for key in ("kubernetes", "openshift"):
            assert go._minor(entry[key]["min"]) <= go._minor(entry[key]["max"]), (series, key)
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    series = go.chart_series(defaults["gpu_operator_chart_version"])
    assert defaults["gpu_operator_chart_version"] in MATRIX[series]["chart_versions"]
    assert defaults["gpu_operator_olm_channel"] == "v" + series


def test_compat_inside_the_matrix():
    loaded = [{"host": "a", "state": "loaded", "version": "550.127.05"}]
    result = _compat(hosts=loaded)
    assert result["errors"] == [] and result["warnings"] == []


def test_compat_kubernetes_outside():
    series = go.chart_series(role_defaults()["chart_version"])
    high = MATRIX[series]["kubernetes"]["max"]
    too_new = "1.%d" % (int(high.split(".")[1]) + 1)
    (error,) = _compat(kube=too_new)["errors"]
    assert f"Kubernetes {too_new} is not supported" in error
    assert MATRIX[series]["kubernetes"]["min"] in error and high in error


def test_compat_unknown_series_and_unreleased_chart():
    (error,) = _compat({"chart_version": "v24.9.2"})["errors"]
    assert "24.9 is not in the compatibility matrix" in error
    (error,) = _compat({"chart_version": "v25.10.9"})["errors"]
    assert "v25.10.9 is not a released 25.10.x chart version" in error


def test_compat_openshift():
    assert _compat(platform="openshift", openshift="4.19.7")["errors"] == []
    # On OpenShift the OpenShift range decides, not the Kubernetes one.
    assert _compat(kube="1.99", platform="openshift", openshift="4.19.7")["errors"] == []
    (error,) = _compat(platform="openshift", openshift="4.11.3")["errors"]
    assert "OpenShift 4.11.3 is not supported" in error
    result = _compat(platform="openshift", openshift="")
    assert result["errors"] == [] and "OpenShift version unknown" in result["warnings"][0]


def test_compat_host_drivers_when_the_operator_driver_is_off():
    hosts = [
        {"host": "new", "state": "installed", "version": None},
        {"host": "old", "state": "loaded", "version": "470.256.02"},
        {"host": "ok", "state": "loaded", "version": "570.172.08"},
    ]
    result = _compat(hosts=hosts)
    (error,) = result["errors"]
    assert "host driver branch not supported" in error and "old (470.256.02)" in error and "ok" not in error
    assert result["warnings"] == ["new: host driver installed, version unknown: branch not checked"]


def test_compat_operator_driver():
    (error,) = _compat({"driver_enabled": True, "driver_branch": "470"})["errors"]
    assert "driver branch 470 (gpu_operator_driver_branch)" in error
    assert _compat({"driver_enabled": True, "driver_version": "580.95.05"})["errors"] == []
    loaded = [{"host": "gpu-1", "state": "loaded", "version": "580.95.05"}]
    (error,) = _compat({"driver_enabled": True}, hosts=loaded)["errors"]
    assert "already run a host driver: gpu-1" in error and "gpu_operator_driver_enabled: false" in error


def _gpu(status="healthy", mig=False, devices=0):
    return {
        "health": {"status": status},
        "mig": {"current": mig, "devices": [{"uuid": "MIG-%d" % i} for i in range(devices)]},
    }


def test_expected_gpus_rule():
    facts = {
        "source": "nvml",
        "gpus": [_gpu(mig=True, devices=3), _gpu(mig=True, devices=7), _gpu(mig=True), _gpu(), _gpu("unhealthy")],
    }
    assert go.expected_gpus(facts, "none")[0] == 4
    assert go.expected_gpus(facts, "single")[0] == 3 + 7 + 0 + 1
    assert go.expected_gpus(facts, "mixed")[0] == 1
    assert go.expected_gpus({"source": "nvml", "gpus": [_gpu("degraded")] * 2}, "single")[0] == 2
    count, reason = go.expected_gpus(
        {"source": "pci", "driver": {"nvml": {"reason": "driver not loaded"}}, "gpus": [_gpu("unknown")]}, "single"
    )
    assert count is None and "driver not loaded" in reason
    assert go.expected_gpus(None, "single") == (None, "no gpu facts")


def _node(name, gpus=None, replicas=None, shared=False):
    labels = {"nvidia.com/gpu.replicas": str(replicas)} if replicas else {}
    allocatable = {"cpu": "64"}
    if gpus is not None:
        allocatable["nvidia.com/gpu.shared" if shared else "nvidia.com/gpu"] = str(gpus)
    return {"metadata": {"name": name, "labels": labels}, "status": {"allocatable": allocatable}}


def test_capacity_shortfalls():
    nodes = [_node("a", 8), _node("b", 7), _node("c", 12, replicas=4), _node("d"), _node("e", 8, 2, shared=True)]
    shortfalls, report = go.capacity_shortfalls({"a": 8, "b": 8, "c": 4, "d": 4, "e": 4, "gone": 2}, nodes)
    assert [s["node"] for s in shortfalls] == ["b", "c", "d", "gone"]
    by_node = {s["node"]: s for s in shortfalls}
    assert (by_node["b"]["expected"], by_node["b"]["advertised"]) == (8, 7)
    assert (by_node["c"]["expected"], by_node["c"]["advertised"], by_node["c"]["replicas"]) == (16, 12, 4)
    assert by_node["d"]["advertised"] is None
    assert by_node["gone"]["reason"] == "no such Node"
    line = {r["node"]: r for r in report}["e"]
    assert line == {"node": "e", "expected": 8, "advertised": 8, "resource": "nvidia.com/gpu.shared", "replicas": 2}


def test_capacity_over_reporting_is_not_a_shortfall():
    assert go.capacity_shortfalls({"a": 4}, [_node("a", 8)])[0] == []


def _mig_gpu(index, profiles, status="healthy"):
    return {
        "index": index,
        "health": {"status": status},
        "mig": {
            "current": True,
            "gpu_instances": [{"profile": p} for p in profiles],
            "devices": [{"uuid": "MIG-%d-%d" % (index, i)} for i in range(len(profiles))],
        },
    }


def test_node_problem_mig_single_layout():
    uniform = {"source": "nvml", "driver": {"state": "loaded"}, "gpus": [_mig_gpu(0, ["1g.10gb"] * 7)] * 2}
    assert go.node_problem(uniform, "single", False) is None
    mixed = {
        "source": "nvml",
        "driver": {"state": "loaded"},
        "gpus": [_mig_gpu(0, ["3g.40gb", "2g.20gb"]), _mig_gpu(1, []), dict(_gpu(), index=2)],
    }
    problem = go.node_problem(mixed, "single", False)
    assert "gpu_operator_mig_strategy single" in problem
    assert "2g.20gb, 3g.40gb" in problem and "1 GPU(s) without MIG" in problem and "without instances: 1" in problem
    assert go.node_problem(mixed, "mixed", False) is None
    assert go.node_problem(mixed, "none", False) is None


def test_node_problem_driver_not_loaded():
    facts = {"source": "pci", "driver": {"state": "installed"}, "gpus": [_gpu("unknown")]}
    assert "NVIDIA driver installed and gpu_operator_driver_enabled is false" in go.node_problem(facts, "single", False)
    assert go.node_problem(facts, "single", True) is None
    assert go.node_problem({"source": "none", "gpus": []}, "single", False) is None
