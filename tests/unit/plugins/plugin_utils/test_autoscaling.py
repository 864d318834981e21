"""The autoscaling role's spec: validation (every bad input named, nothing rendered) and rendering
of KEDA ScaledObjects, cluster-autoscaler annotations, RBAC and the training policy (pure)."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import jsonschema
import pytest
import yaml
from ansible_collections.gpuops.cluster.plugins.plugin_utils import autoscaling as a

REPO = Path(__file__).resolve().parents[4]
SHARED = Path(os.environ.get("GPUOPS_SHARED_DIR") or REPO.parent / "shared") / "crds"
SANDBOX_CRDS = REPO / "sandbox" / "kube" / "gpuops_kubeapi" / "data" / "crds"

ONPREM = {
    "name": "onprem-a100",
    "platform": "onprem",
    "machine_deployment": {"name": "md-a100", "namespace": "capi"},
    "min_size": 0,
    "max_size": 4,
    "capacity": {"cpu": 64, "memory": "512Gi", "gpu_count": 8},
    "taints": [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}],
}
MIG = dict(ONPREM, name="onprem-h100-mig", mig=True, min_size=1, machine_deployment={"name": "md-h100"})
CLOUD = {"name": "eks-l40s", "platform": "cloud"}
LLM = {
    "deployment": "llm",
    "namespace": "inference",
    "node_group": "onprem-a100",
    "min_replicas": 1,
    "max_replicas": 8,
    "triggers": [
        {"kind": "queue_depth", "metric": "vllm:num_requests_waiting", "target": 10},
        {"kind": "gpu_activity", "target": 80},
        {"kind": "p99_latency", "histogram": "vllm:e2e_request_latency_seconds", "target": 2.5},
    ],
}


def spec(**kwargs):
    base = {
        "prometheus_url": "http://prometheus.monitoring:9090",
        "node_groups": [copy.deepcopy(ONPREM), copy.deepcopy(MIG), copy.deepcopy(CLOUD)],
        "inference": [copy.deepcopy(LLM)],
        "training_namespaces": ["training"],
    }
    base.update(kwargs)
    return base


def scaled_object(result, name="llm"):
    return next(o for o in result["scaled_objects"] if o["kind"] == "ScaledObject" and o["metadata"]["name"] == name)


def test_a_valid_spec_renders_without_errors():
    result = a.plan(spec())
    assert result["errors"] == []
    so = scaled_object(result)
    assert so["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "llm"}
    assert (so["spec"]["minReplicaCount"], so["spec"]["maxReplicaCount"]) == (1, 8)
    assert "cooldownPeriod" not in so["spec"]


def test_metric_types_follow_what_the_query_returns():
    triggers = {t["name"]: t for t in scaled_object(a.plan(spec()))["spec"]["triggers"]}
    # A total (queue) is divided by the replicas: AverageValue; averages and quantiles are not.
    assert triggers["queue-depth"]["metricType"] == "AverageValue"
    assert triggers["queue-depth"]["metadata"]["query"].startswith("sum(vllm:num_requests_waiting{")
    assert triggers["gpu-activity"]["metricType"] == "Value"
    assert triggers["p99-latency"]["metricType"] == "Value"
    assert triggers["p99-latency"]["metadata"]["query"].startswith("histogram_quantile(0.99,")
    assert triggers["p99-latency"]["metadata"]["threshold"] == "2.5"
    for trigger in triggers.values():
        assert trigger["type"] == "prometheus"
        assert "metricName" not in trigger["metadata"]
        assert all(isinstance(v, str) for v in trigger["metadata"].values())


def test_gpu_activity_uses_gr_engine_active_on_mig_pools_and_gpu_util_elsewhere():
    plain = scaled_object(a.plan(spec()))
    mig = scaled_object(a.plan(spec(inference=[dict(LLM, node_group="onprem-h100-mig")])))
    query = {t["name"]: t["metadata"]["query"] for t in plain["spec"]["triggers"]}["gpu-activity"]
    assert "DCGM_FI_DEV_GPU_UTIL" in query
    query = {t["name"]: t["metadata"]["query"] for t in mig["spec"]["triggers"]}["gpu-activity"]
    assert "DCGM_FI_PROF_GR_ENGINE_ACTIVE" in query and "DCGM_FI_DEV_GPU_UTIL" not in query
    # Ratio 0-1 scaled to the same percent the target is given in.
    assert query.endswith("* 100")


def test_behavior_defaults_are_the_issues_numbers():
    behavior = scaled_object(a.plan(spec()))["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] == 300
    assert behavior["scaleDown"]["policies"] == [{"type": "Percent", "value": 10, "periodSeconds": 60}]
    assert behavior["scaleUp"]["stabilizationWindowSeconds"] == 0
    assert behavior["scaleUp"]["selectPolicy"] == "Max"
    assert {(p["type"], p["value"], p["periodSeconds"]) for p in behavior["scaleUp"]["policies"]} == {
        ("Percent", 100, 15),
        ("Pods", 10, 15),
    }


def test_behavior_override_keeps_the_other_direction():
    item = dict(LLM, behavior={"scaleDown": {"stabilizationWindowSeconds": 5}})
    behavior = scaled_object(a.plan(spec(inference=[item])))["spec"]["advanced"]["horizontalPodAutoscalerConfig"][
        "behavior"
    ]
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] == 5
    assert behavior["scaleDown"]["policies"] == a.DEFAULT_BEHAVIOR["scaleDown"]["policies"]
    assert behavior["scaleUp"] == a.DEFAULT_BEHAVIOR["scaleUp"]


def test_cooldown_only_with_min_zero_else_a_warning():
    result = a.plan(spec(inference=[dict(LLM, cooldown_period=60)]))
    assert result["errors"] == []
    assert "cooldownPeriod" not in scaled_object(result)["spec"]
    assert any("cooldown_period" in w and "min_replicas 0" in w for w in result["warnings"])
    result = a.plan(spec(inference=[dict(LLM, cooldown_period=60, min_replicas=0)]))
    assert scaled_object(result)["spec"]["cooldownPeriod"] == 60
    assert not [w for w in result["warnings"] if "cooldown" in w]


def test_fallback_defaults_and_override():
    so = scaled_object(a.plan(spec()))
    assert so["spec"]["fallback"] == {"failureThreshold": 3, "replicas": 1, "behavior": "currentReplicasIfHigher"}
    item = dict(LLM, fallback={"failure_threshold": 5, "replicas": 4, "behavior": "static"})
    so = scaled_object(a.plan(spec(inference=[item])))
    assert so["spec"]["fallback"] == {"failureThreshold": 5, "replicas": 4, "behavior": "static"}


def test_trigger_authentication_references_the_secret_not_its_value():
    item = dict(LLM, auth={"mode": "bearer", "secret": "prom-token"})
    result = a.plan(spec(inference=[item]))
    auth = next(o for o in result["scaled_objects"] if o["kind"] == "TriggerAuthentication")
    assert auth["metadata"] == {
        "name": "llm-prometheus",
        "namespace": "inference",
        "labels": {"app.kubernetes.io/managed-by": "gpuops.cluster"},
    }
    assert auth["spec"] == {"secretTargetRef": [{"parameter": "bearerToken", "name": "prom-token", "key": "token"}]}
    for trigger in scaled_object(result)["spec"]["triggers"]:
        assert trigger["authenticationRef"] == {"name": "llm-prometheus", "kind": "TriggerAuthentication"}
        assert trigger["metadata"]["authModes"] == "bearer"


def test_machine_deployment_annotations_for_scale_from_zero():
    result = a.plan(spec())
    md = next(o for o in result["machine_deployments"] if o["metadata"]["name"] == "md-a100")
    ann = md["metadata"]["annotations"]
    assert ann[a.CAPI_MIN] == "0" and ann[a.CAPI_MAX] == "4"
    assert ann[a.CAPACITY + "cpu"] == "64"
    assert ann[a.CAPACITY + "memory"] == "512Gi"
    assert ann[a.CAPACITY + "gpu-type"] == "nvidia.com/gpu"
    assert ann[a.CAPACITY + "gpu-count"] == "8"
    assert ann[a.CAPACITY + "labels"] == "cluster-api/accelerator=onprem-a100"
    assert ann[a.CAPACITY + "taints"] == "nvidia.com/gpu=present:NoSchedule"
    assert set(md["metadata"]) == {"name", "namespace", "annotations"}  # no spec: annotations only


def test_gpu_total_flags_match_the_accelerator_labels():
    result = a.plan(spec())
    args = result["cluster_autoscaler"]["args"]
    assert args[0] == "--cloud-provider=clusterapi"
    assert "--gpu-total=onprem-a100:0:32" in args
    assert "--gpu-total=onprem-h100-mig:8:32" in args
    explicit = a.plan(
        spec(
            gpu_total=[
                {"accelerator": "onprem-a100", "min": 0, "max": 16},
                {"accelerator": "onprem-h100-mig", "max": 8},
            ]
        )
    )
    assert explicit["errors"] == []
    assert "--gpu-total=onprem-a100:0:16" in explicit["cluster_autoscaler"]["args"]


def test_cloud_only_and_onprem_only_parts_switch_off():
    cloud = a.plan(spec(node_groups=[CLOUD], inference=[dict(LLM, node_group="eks-l40s")]))
    assert cloud["errors"] == []
    assert cloud["machine_deployments"] == []
    assert cloud["cluster_autoscaler"] == {"enabled": False, "objects": [], "args": []}
    onprem = a.plan(spec())
    kinds = sorted({o["kind"] for o in onprem["cluster_autoscaler"]["objects"]})
    assert kinds == ["ClusterRole", "ClusterRoleBinding", "ServiceAccount"]
    none = a.plan({"prometheus_url": "http://p:9090"})
    assert none["errors"] == [] and none["scaled_objects"] == [] and none["training"]["policy"] == []


def test_cluster_autoscaler_rbac_can_scale_machine_deployments():
    objects = a.plan(spec(cluster_autoscaler={"infrastructure_templates": ["metal3machinetemplates"]}))[
        "cluster_autoscaler"
    ]["objects"]
    management = next(o for o in objects if o["metadata"]["name"] == "gpuops-cluster-autoscaler-management")
    capi = next(r for r in management["rules"] if r["apiGroups"] == ["cluster.x-k8s.io"])
    assert {"machinedeployments", "machinedeployments/scale", "machines", "machinesets"} <= set(capi["resources"])
    assert {"get", "list", "watch", "patch", "update"} <= set(capi["verbs"])
    infra = next(r for r in management["rules"] if r["apiGroups"] == ["infrastructure.cluster.x-k8s.io"])
    assert infra["resources"] == ["metal3machinetemplates"] and infra["verbs"] == ["get", "list", "watch"]
    binding = next(
        o
        for o in objects
        if o["kind"] == "ClusterRoleBinding" and o["roleRef"]["name"] == management["metadata"]["name"]
    )
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "cluster-autoscaler", "namespace": "kube-system"}]


def test_training_policy_and_namespace_labels():
    training = a.plan(spec())["training"]
    assert training["namespaces"] == [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": "training", "labels": {a.TRAINING_LABEL: "true"}},
        }
    ]
    policy, binding = training["policy"]
    assert policy["kind"] == "ValidatingAdmissionPolicy"
    assert policy["spec"]["matchConstraints"]["resourceRules"][0]["resources"] == ["jobs"]
    assert a.DO_NOT_DISRUPT in policy["spec"]["validations"][0]["expression"]
    assert binding["spec"]["policyName"] == policy["metadata"]["name"]
    assert binding["spec"]["matchResources"]["namespaceSelector"] == {"matchLabels": {a.TRAINING_LABEL: "true"}}
    assert binding["spec"]["validationActions"] == ["Deny"]


def test_mig_scale_from_zero_is_a_warning_naming_the_field():
    result = a.plan(spec(node_groups=[dict(MIG, min_size=0)], inference=[]))
    assert result["errors"] == []
    assert any(
        w.startswith("autoscaling_node_groups[0].min_size:") and "nvidia.com/mig-" in w for w in result["warnings"]
    )


BAD = [
    ({"inference": [dict(LLM, deployment="LLM_1")]}, "autoscaling_inference[0].deployment"),
    ({"inference": [dict(LLM, namespace=None)]}, "autoscaling_inference[0].namespace"),
    ({"inference": [dict(LLM, min_replicas=5, max_replicas=2)]}, "autoscaling_inference[0].max_replicas"),
    ({"inference": [dict(LLM, max_replicas=0)]}, "autoscaling_inference[0].max_replicas"),
    ({"inference": [dict(LLM, min_replicas=True)]}, "autoscaling_inference[0].min_replicas"),
    ({"inference": [dict(LLM, triggers=[])]}, "autoscaling_inference[0].triggers"),
    ({"inference": [dict(LLM, triggers=[{"kind": "cpu", "target": 1}])]}, "autoscaling_inference[0].triggers[0].kind"),
    (
        {"inference": [dict(LLM, triggers=[{"kind": "queue_depth", "target": 1}])]},
        "autoscaling_inference[0].triggers[0].metric",
    ),
    (
        {"inference": [dict(LLM, triggers=[{"kind": "queue_depth", "metric": "q", "target": 0}])]},
        "autoscaling_inference[0].triggers[0].target",
    ),
    (
        {"inference": [dict(LLM, triggers=[{"kind": "gpu_activity", "target": 180}])]},
        "autoscaling_inference[0].triggers[0].target",
    ),
    (
        {"inference": [dict(LLM, triggers=[{"kind": "gpu_activity", "target": 80, "metric_type": "AverageValue"}])]},
        "autoscaling_inference[0].triggers[0].metric_type",
    ),
    (
        {"inference": [dict(LLM, triggers=[{"kind": "custom", "query": "avg(x)", "target": 1}])]},
        "autoscaling_inference[0].triggers[0].metric_type",
    ),
    (
        {
            "inference": [
                dict(
                    LLM,
                    node_group="onprem-h100-mig",
                    triggers=[
                        {"kind": "custom", "query": "max(DCGM_FI_DEV_GPU_UTIL)", "target": 80, "metric_type": "Value"}
                    ],
                )
            ]
        },
        "autoscaling_inference[0].triggers[0].query",
    ),
    (
        {"inference": [dict(LLM, triggers=[{"kind": "custom", "query": "x", "target": 1, "metricName": "x"}])]},
        "autoscaling_inference[0].triggers[0].metricName",
    ),
    ({"inference": [dict(LLM, node_group="nope")]}, "autoscaling_inference[0].node_group"),
    ({"inference": [dict(LLM, prometheus_url="ftp://x")]}, "autoscaling_inference[0].prometheus_url"),
    ({"inference": [dict(LLM, fallback={"replicas": 20})]}, "autoscaling_inference[0].fallback.replicas"),
    ({"inference": [dict(LLM, fallback={"behavior": "sometimes"})]}, "autoscaling_inference[0].fallback.behavior"),
    (
        {
            "inference": [
                dict(LLM, behavior={"scaleUp": {"policies": [{"type": "Pods", "value": 0, "periodSeconds": 15}]}})
            ]
        },
        "autoscaling_inference[0].behavior.scaleUp.policies[0].value",
    ),
    (
        {"inference": [dict(LLM, behavior={"scaleDown": {"selectPolicy": "Avg"}})]},
        "autoscaling_inference[0].behavior.scaleDown.selectPolicy",
    ),
    ({"inference": [dict(LLM, auth={"mode": "oauth", "secret": "s"})]}, "autoscaling_inference[0].auth.mode"),
    ({"inference": [LLM, LLM]}, "autoscaling_inference: two entries render the same ScaledObject"),
    ({"inference": [dict(LLM, replicas=3)]}, "autoscaling_inference[0].replicas"),
    ({"node_groups": [dict(ONPREM, platform="metal")], "inference": []}, "autoscaling_node_groups[0].platform"),
    ({"node_groups": [dict(ONPREM, max_size=None)], "inference": []}, "autoscaling_node_groups[0].max_size"),
    ({"node_groups": [dict(ONPREM, min_size=5, max_size=2)], "inference": []}, "autoscaling_node_groups[0].max_size"),
    (
        {"node_groups": [dict(ONPREM, capacity={"gpu_count": 8})], "inference": []},
        "autoscaling_node_groups[0].capacity.cpu",
    ),
    (
        {"node_groups": [dict(ONPREM, capacity={"cpu": "lots", "memory": "1Gi"})], "inference": []},
        "autoscaling_node_groups[0].capacity.cpu",
    ),
    (
        {
            "node_groups": [dict(ONPREM, capacity=dict(ONPREM["capacity"], gpu_type="nvidia.com/mig-1g.10gb"))],
            "inference": [],
        },
        "autoscaling_node_groups[0].capacity.gpu_type",
    ),
    (
        {"node_groups": [dict(ONPREM, taints=[{"key": "nvidia.com/gpu", "effect": "Never"}])], "inference": []},
        "autoscaling_node_groups[0].taints[0].effect",
    ),
    (
        {"node_groups": [dict(ONPREM, labels={"cluster-api/accelerator": "other"})], "inference": []},
        "autoscaling_node_groups[0].labels",
    ),
    (
        {"node_groups": [dict(CLOUD, max_size=3)], "inference": []},
        "autoscaling_node_groups[0].max_size: only for platform onprem",
    ),
    ({"node_groups": [ONPREM, ONPREM], "inference": []}, "autoscaling_node_groups[1].name"),
    (
        {"node_groups": [dict(ONPREM, machine_deployment="md-a100")], "inference": []},
        "autoscaling_node_groups[0].machine_deployment",
    ),
    ({"gpu_total": [{"accelerator": "h100", "max": 8}]}, "autoscaling_gpu_total[0].accelerator"),
    (
        {"gpu_total": [{"accelerator": "onprem-a100", "max": 8}]},
        "autoscaling_gpu_total: lists no entry for accelerator onprem-h100-mig",
    ),
    ({"training_namespaces": ["Training"]}, "autoscaling_training_namespaces[0]"),
    ({"cluster_autoscaler": {"enabled": "yes"}}, "autoscaling_cluster_autoscaler.enabled"),
    (
        {"cluster_autoscaler": {"infrastructure_templates": ["pods"]}},
        "autoscaling_cluster_autoscaler.infrastructure_templates",
    ),
]


@pytest.mark.parametrize("override,field", BAD, ids=[field for _unused, field in BAD])
def test_bad_input_is_rejected_naming_the_field_and_nothing_is_rendered(override, field):
    result = a.plan(spec(**override))
    assert result["errors"], result
    assert any(error.startswith(field) for error in result["errors"]), result["errors"]
    assert result["scaled_objects"] == [] and result["machine_deployments"] == []
    assert result["cluster_autoscaler"]["objects"] == [] and result["training"]["policy"] == []


def test_not_a_mapping():
    assert a.plan(["x"])["errors"] == ["autoscaling: the role's inputs must be a mapping"]


def _crd_schema(name, version):
    for folder in (SHARED, SANDBOX_CRDS):
        path = folder / name
        if path.is_file():
            crd = yaml.safe_load(path.read_text())
            for entry in crd["spec"]["versions"]:
                if entry["name"] == version:
                    return folder, entry["schema"]["openAPIV3Schema"]
    pytest.skip("CRD %s not found in %s or %s" % (name, SHARED, SANDBOX_CRDS))


@pytest.mark.parametrize(
    "kind,crd",
    [("ScaledObject", "keda.sh_scaledobjects.yaml"), ("TriggerAuthentication", "keda.sh_triggerauthentications.yaml")],
)
def test_rendered_keda_objects_validate_against_the_crd_schema(kind, crd):
    _folder, schema = _crd_schema(crd, "v1alpha1")
    item = dict(LLM, auth={"mode": "basic", "secret": "prom"}, cooldown_period=30, min_replicas=0)
    for obj in a.plan(spec(inference=[item]))["scaled_objects"]:
        if obj["kind"] == kind:
            jsonschema.validate(obj, schema)


def test_objects_in_apply_order_rbac_and_namespaces_first():
    result = a.plan(spec())
    kinds = [o["kind"] for o in result["objects"]]
    assert kinds.index("Namespace") < kinds.index("ValidatingAdmissionPolicy") < kinds.index("ScaledObject")
    assert kinds.index("ClusterRole") < kinds.index("ScaledObject") < kinds.index("MachineDeployment")
    assert len(result["objects"]) == (
        len(result["cluster_autoscaler"]["objects"])
        + len(result["training"]["namespaces"])
        + len(result["training"]["policy"])
        + len(result["scaled_objects"])
        + len(result["machine_deployments"])
    )
    assert a.plan(spec(inference=[dict(LLM, max_replicas=0)]))["objects"] == []


def test_apply_report_pairs_results_with_objects_in_order():
    objects = [
        {"kind": "Namespace", "metadata": {"name": "training"}},
        {"kind": "ScaledObject", "metadata": {"name": "llm", "namespace": "inference"}},
        {"kind": "MachineDeployment", "metadata": {"name": "md", "namespace": "capi"}},
    ]
    diff = {"before": {"a": 1}, "after": {"a": 2}}
    applied = {
        "changed": True,
        "result": {"results": [{"changed": False}, {"changed": True, "diff": diff}, {"changed": True}]},
    }
    report = a.apply_report(objects, applied)
    assert report == {
        "changed": ["ScaledObject/inference/llm", "MachineDeployment/capi/md"],
        "unchanged": ["Namespace/training"],
        "diffs": {"ScaledObject/inference/llm": diff},
    }
    # One definition: the module returns that result itself.
    single = a.apply_report(objects[:1], {"changed": True, "result": {"kind": "Namespace"}})
    assert single["changed"] == ["Namespace/training"]
    with pytest.raises(ValueError, match="3 objects but 2 results"):
        a.apply_report(objects, {"result": {"results": [{}, {}]}})
