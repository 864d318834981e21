"""Security baseline: validation of the role's spec and the manifests it renders (pure)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from ansible_collections.gpuops.cluster.plugins.plugin_utils import security_baseline as sb
from ansible_collections.gpuops.cluster.plugins.plugin_utils import security_rbac as rbac

REPO = Path(__file__).resolve().parents[4]
DEFAULTS = yaml.safe_load((REPO / "roles" / "security_baseline" / "defaults" / "main.yml").read_text())
PREFIX = "security_baseline_"


def default_spec():
    """The role's defaults as the role collects them (its spec), minus the cluster connection."""
    spec = {k[len(PREFIX) :]: copy.deepcopy(v) for k, v in DEFAULTS.items() if k.startswith(PREFIX)}
    spec["mig_profiles"] = ["1g.10gb", "3g.40gb"]
    return spec


def by_kind(plan, kind):
    return [m for m in plan["manifests"] if m["kind"] == kind]


def test_defaults_render_without_errors():
    plan = sb.plan_baseline(default_spec())
    assert plan["errors"] == []
    kinds = [m["kind"] for m in plan["manifests"]]
    # Namespaces come first: everything namespaced is applied into an existing namespace.
    assert kinds[:3] == ["Namespace"] * 3
    assert set(kinds) == {
        "Namespace",
        "PriorityClass",
        "ClusterRole",
        "ResourceQuota",
        "LimitRange",
        "NetworkPolicy",
        "PodDisruptionBudget",
    }


def test_tenant_namespaces_are_restricted_with_pinned_version():
    plan = sb.plan_baseline(default_spec())
    labels = {m["metadata"]["name"]: m["metadata"]["labels"] for m in by_kind(plan, "Namespace")}
    for mode in ("enforce", "audit", "warn"):
        assert labels["ml-training"]["pod-security.kubernetes.io/" + mode] == "restricted"
        assert labels["ml-training"]["pod-security.kubernetes.io/%s-version" % mode] == "v1.31"
    assert labels["gpu-operator"]["pod-security.kubernetes.io/enforce"] == "privileged"
    # An exception still audits at restricted so what it lets through is recorded.
    assert labels["gpu-operator"]["pod-security.kubernetes.io/audit"] == "restricted"
    assert plan["namespaces"]["gpu-operator"]["reason"].startswith("The GPU Operator")


def test_default_deny_and_dns_in_every_guarded_namespace():
    plan = sb.plan_baseline(default_spec())
    policies = {(p["metadata"]["namespace"], p["metadata"]["name"]): p for p in by_kind(plan, "NetworkPolicy")}
    for ns in ("ml-training", "ml-serving", "gpu-operator"):
        deny = policies[(ns, sb.DEFAULT_DENY)]["spec"]
        assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
        dns = policies[(ns, sb.ALLOW_DNS)]["spec"]["egress"][0]
        assert dns["ports"] == [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]
        assert dns["to"][0]["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}
        assert dns["to"][0]["podSelector"] == {"matchLabels": {"k8s-app": "kube-dns"}}


def test_declared_allow_rendered_on_both_managed_sides_only():
    plan = sb.plan_baseline(default_spec())
    names = {(p["metadata"]["namespace"], p["metadata"]["name"]) for p in by_kind(plan, "NetworkPolicy")}
    # ingress-nginx is not managed: only the ingress side exists, in ml-serving.
    assert ("ml-serving", "gpuops-allow-ingress-to-models-ingress") in names
    assert ("ingress-nginx", "gpuops-allow-ingress-to-models-egress") not in names
    assert ("ml-training", "gpuops-allow-training-to-mlflow-egress") in names
    ingress = next(
        p for p in by_kind(plan, "NetworkPolicy") if p["metadata"]["name"] == "gpuops-allow-ingress-to-models-ingress"
    )
    assert ingress["spec"]["podSelector"] == {"matchLabels": {"app.kubernetes.io/component": "model-server"}}
    assert ingress["spec"]["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 8080}]
    # Every selector is a label Kubernetes or the workload sets, never an invented name: label.
    for policy in by_kind(plan, "NetworkPolicy"):
        assert "'name'" not in repr(policy["spec"])


def test_gpu_quotas_use_requests_only():
    spec = default_spec()
    spec["quotas"] = [
        {"namespace": "ml-training", "gpus": 4, "mig": {"1g.10gb": 7}, "cpu": "64", "memory": "512Gi", "pods": 100}
    ]
    plan = sb.plan_baseline(spec)
    assert plan["errors"] == []
    (quota,) = by_kind(plan, "ResourceQuota")
    assert quota["spec"]["hard"] == {
        "pods": "100",
        "requests.cpu": "64",
        "requests.memory": "512Gi",
        "requests.nvidia.com/gpu": "4",
        "requests.nvidia.com/mig-1g.10gb": "7",
    }


def test_priority_classes_and_pdbs():
    plan = sb.plan_baseline(default_spec())
    values = {p["metadata"]["name"]: p["value"] for p in by_kind(plan, "PriorityClass")}
    assert values["gpuops-production-inference"] > values["gpuops-training"] > values["gpuops-experiment"]
    (pdb,) = by_kind(plan, "PodDisruptionBudget")
    assert pdb["spec"] == {
        "selector": {"matchLabels": {"app.kubernetes.io/component": "model-server"}},
        "maxUnavailable": 1,
    }


def test_mig_profiles_from_mig_plan():
    configs = {
        "gpuops-all-1g.10gb-x7": [{"devices": "all", "mig-enabled": True, "mig-devices": {"1g.10gb": 7}}],
        "gpuops-custom-ab": [{"devices": [0], "mig-enabled": True, "mig-devices": {"3g.40gb": 2, "2g.20gb": 0}}],
    }
    assert sb.mig_profiles_of(configs) == ["1g.10gb", "3g.40gb"]


def _set(path, value):
    def change(spec):
        target = spec
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return change


BAD = [
    ("psa latest", _set(["psa_version"], "latest"), "security_baseline_psa_version"),
    ("no namespaces", _set(["namespaces"], []), "security_baseline_namespaces"),
    (
        "bad class",
        _set(["namespaces", 0, "class"], "team"),
        "security_baseline_namespaces[0].class: 'team'; allowed: tenant, operator, system",
    ),
    ("tenant privileged", _set(["namespaces", 0, "level"], "privileged"), "security_baseline_namespaces[0].level"),
    ("exception without reason", _set(["namespaces", 2, "reason"], ""), "security_baseline_namespaces[2].reason"),
    ("bad namespace name", _set(["namespaces", 0, "name"], "ML_Training"), "security_baseline_namespaces[0].name"),
    (
        "invented name label",
        _set(["dns", "pod_labels"], {"name": "kube-dns"}),
        "the label 'name' is not set by Kubernetes",
    ),
    (
        "port out of range",
        _set(["network_allows", 0, "ports"], [{"port": 70000}]),
        "security_baseline_network_allows[0].ports[0].port: 70000 is out of range",
    ),
    (
        "bad protocol",
        _set(["network_allows", 0, "ports"], [{"port": 80, "protocol": "HTTP"}]),
        "allowed: TCP, UDP, SCTP",
    ),
    ("allow without ports", _set(["network_allows", 0, "ports"], []), "opens every port"),
    (
        "allow between unmanaged",
        _set(["network_allows", 0, "to", "namespace"], "elsewhere"),
        "neither ingress-nginx nor elsewhere",
    ),
    ("wildcard verbs for engineer", _set(["rbac_roles", 0, "rules", 0, "verbs"], ["*"]), "wildcard in verbs"),
    (
        "wildcard resources for read-only",
        _set(["rbac_roles", 1, "rules", 0, "resources"], ["*"]),
        "wildcard in resources",
    ),
    (
        "read-only writes",
        _set(["rbac_roles", 1, "rules", 0, "verbs"], ["get", "delete"]),
        "read-only persona may only use get, list, watch",
    ),
    (
        "resourceNames with list",
        _set(["rbac_roles", 0, "rules", 0, "resourceNames"], ["x"]),
        "resourceNames cannot restrict list, watch",
    ),
    (
        "bad persona",
        _set(["rbac_roles", 0, "persona"], "root"),
        "persona: 'root'; allowed: ml-engineer, read-only, platform-admin",
    ),
    ("bad verb", _set(["rbac_roles", 0, "rules", 0, "verbs"], ["read"]), "is not a Kubernetes verb"),
    (
        "limits.nvidia.com/gpu",
        _set(["quotas", 0, "hard"], {"limits.nvidia.com/gpu": 4}),
        "limits.nvidia.com/gpu is not a valid quota",
    ),
    (
        "unknown mig profile",
        _set(["quotas", 0, "mig"], {"7g.80gb": 1}),
        "no MIG layout of the cluster exposes '7g.80gb'; allowed: 1g.10gb, 3g.40gb",
    ),
    ("negative gpus", _set(["quotas", 0, "gpus"], -1), "security_baseline_quotas[0].gpus: -1 is out of range"),
    ("bool gpus", _set(["quotas", 0, "gpus"], True), "security_baseline_quotas[0].gpus: True is out of range"),
    (
        "quota outside managed",
        _set(["quotas", 0, "namespace"], "default"),
        "security_baseline_quotas[0].namespace: 'default' is not a managed namespace",
    ),
    (
        "bad quantity",
        _set(["limit_range", "default", "memory"], "8 GB"),
        "security_baseline_limit_range.default.memory",
    ),
    ("inference below training", _set(["priority_classes", 0, "value"], 5000), "must be above gpuops-training"),
    ("system- priority name", _set(["priority_classes", 0, "name"], "system-gpu"), "system- is reserved"),
    ("pdb empty selector", _set(["pdbs", 0, "pod_labels"], {}), "an empty selector matches every pod"),
    ("pdb both budgets", _set(["pdbs", 0, "min_available"], 1), "set exactly one of min_available and max_unavailable"),
    ("pdb bad percent", _set(["pdbs", 0, "max_unavailable"], "150%"), "is not a count or a percentage"),
    ("unknown key", _set(["namespaces", 0, "levle"], "restricted"), "unknown keys ['levle']"),
    (
        "dns namespace guarded",
        _set(["namespaces", 0, "name"], "kube-system"),
        "holds cluster DNS; set default_deny: false",
    ),
]


@pytest.mark.parametrize("change, message", [(c, m) for _unused, c, m in BAD], ids=[b[0] for b in BAD])
def test_bad_input_rejected_naming_the_field(change, message):
    spec = default_spec()
    change(spec)
    plan = sb.plan_baseline(spec)
    assert plan["manifests"] == []
    assert len(plan["errors"]) == 1
    assert message in plan["errors"][0]


def test_not_a_dict():
    assert sb.plan_baseline(["x"])["errors"] == ["security_baseline: the role's collected variables must be a dict"]


def test_admin_may_use_wildcards_and_check_catches_hand_edits():
    plan = sb.plan_baseline(default_spec())
    roles = by_kind(plan, "ClusterRole")
    assert all(rbac.wildcard_problems(r) == [] for r in roles)
    edited = copy.deepcopy(next(r for r in roles if r["metadata"]["name"] == "gpuops-read-only"))
    edited["rules"][0]["apiGroups"] = ["*"]
    assert rbac.wildcard_problems(edited) == [
        "ClusterRole/gpuops-read-only rules[0]: wildcard in apiGroups ['*'] (only the platform-admin persona may use *)"
    ]
    # A role without the persona label is judged as non-admin.
    unlabelled = {
        "kind": "ClusterRole",
        "metadata": {"name": "x"},
        "rules": [{"apiGroups": ["*"], "resources": ["pods"], "verbs": ["get"]}],
    }
    assert len(rbac.wildcard_problems(unlabelled)) == 1


def test_bindings_per_namespace_and_cluster_wide():
    spec = default_spec()
    spec["rbac_bindings"] = [
        {
            "role": "gpuops-ml-engineer",
            "subjects": [{"kind": "Group", "name": "ml-team"}],
            "namespaces": ["ml-training", "ml-serving"],
        },
        {"role": "gpuops-platform-admin", "subjects": [{"kind": "Group", "name": "platform"}], "cluster_wide": True},
    ]
    plan = sb.plan_baseline(spec)
    assert plan["errors"] == []
    assert [
        (b["kind"], b["metadata"].get("namespace")) for b in plan["manifests"] if b["kind"].endswith("Binding")
    ] == [
        ("RoleBinding", "ml-training"),
        ("RoleBinding", "ml-serving"),
        ("ClusterRoleBinding", None),
    ]
    spec["rbac_bindings"] = [
        {"role": "cluster-admin", "subjects": [{"kind": "Group", "name": "x"}], "cluster_wide": True}
    ]
    assert "is not a ClusterRole of security_baseline_rbac_roles" in sb.plan_baseline(spec)["errors"][0]


def _job(name, labels, parallelism=1, namespace="ml-serving"):
    return {
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"parallelism": parallelism, "template": {"metadata": {"labels": labels}}},
    }


def test_single_replica_training_job_pdb_warning():
    pdb = {
        "metadata": {"name": "train", "namespace": "ml-serving"},
        "spec": {"selector": {"matchLabels": {"job": "llm"}}, "minAvailable": 1},
    }
    warnings = sb.pdb_drain_warnings([pdb], [_job("llm-train", {"job": "llm"})])
    assert len(warnings) == 1 and "blocks every node drain and Karpenter consolidation" in warnings[0]
    # Parallel Jobs, other namespaces, other labels: no warning.
    assert sb.pdb_drain_warnings([pdb], [_job("llm-train", {"job": "llm"}, parallelism=4)]) == []
    assert sb.pdb_drain_warnings([pdb], [_job("llm-train", {"job": "llm"}, namespace="x")]) == []
    assert sb.pdb_drain_warnings([pdb], [_job("other", {"job": "cv"})]) == []
    # maxUnavailable: 1 lets the single pod go: no warning; 0 or 0% blocks.
    lenient = copy.deepcopy(pdb)
    lenient["spec"] = {"selector": pdb["spec"]["selector"], "maxUnavailable": 1}
    assert sb.pdb_drain_warnings([lenient], [_job("llm-train", {"job": "llm"})]) == []
    lenient["spec"]["maxUnavailable"] = "0%"
    assert len(sb.pdb_drain_warnings([lenient], [_job("llm-train", {"job": "llm"})])) == 1


def test_training_pdb_declared_is_warned():
    spec = default_spec()
    spec["pdbs"].append(
        {
            "name": "train",
            "namespace": "ml-training",
            "pod_labels": {"job": "llm"},
            "min_available": 1,
            "workload": "training",
        }
    )
    plan = sb.plan_baseline(spec)
    assert plan["errors"] == [] and "covers a training workload" in plan["warnings"][0]


def gpu(admin_only, gpus=1):
    return {"gpus": [{}] * gpus, "driver": {"profiling_admin_only": admin_only}}


def test_profiling_admin_only():
    errors, warnings = sb.profiling_problems(
        {"a": gpu(True), "b": gpu(False), "c": gpu(None), "cpu": gpu(False, 0)}, []
    )
    assert len(errors) == 1 and errors[0].startswith("b: ") and "RmProfilingAdminOnly=0" in errors[0]
    assert len(warnings) == 1 and warnings[0].startswith("c: ")
    assert sb.profiling_problems({"b": gpu(False)}, ["b"]) == ([], [])
    with pytest.raises(sb.BaselineError, match="security_baseline_profiling_allowed_hosts"):
        sb.profiling_problems({}, "b")
