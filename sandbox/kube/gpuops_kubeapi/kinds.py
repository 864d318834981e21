"""Built-in kinds served by the stand-in, kept as data.

Each row says how discovery describes the resource and which storage strategy applies
(status subresource, generation tracking, what create does to status, what DELETE returns,
which field selectors the real apiserver accepts for it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

STANDARD_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
CREATE_ONLY = ("create",)
BASE_FIELD_LABELS = ("metadata.name", "metadata.namespace")
# Subresources: name -> (group, version, kind, verbs) as discovery lists them.
SCALE = ("scale", "autoscaling", "v1", "Scale", ("get", "patch", "update"))


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    kind: str
    plural: str
    singular: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    status_subresource: bool = False
    # Status a create starts from ("keep": whatever the client sent; None: dropped).
    status_on_create: Any = None
    tracks_generation: bool = False
    delete_returns_object: bool = False
    field_labels: tuple[str, ...] = BASE_FIELD_LABELS
    # Extra subresources for discovery: name -> (group, version, kind, verbs).
    extra_subresources: tuple[tuple[str, str, str, str, tuple[str, ...]], ...] = ()
    # jsonPath of CRD selectableFields, label -> path segments (custom resources only).
    selectable_fields: dict[str, tuple[str, ...]] = field(default_factory=dict)
    openapi_schema: dict[str, Any] | None = None  # CRD openAPIV3Schema of this version
    served_by_crd: str | None = None  # name of the CRD serving it
    # Verbs discovery lists; create-only kinds (access reviews) are answered, never stored.
    verbs: tuple[str, ...] = tuple(STANDARD_VERBS)
    # CRD scale subresource: (specReplicasPath, statusReplicasPath, labelSelectorPath).
    scale_paths: tuple[str, str, str] | None = None

    @property
    def virtual(self) -> bool:
        return self.verbs == CREATE_ONLY

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> tuple[str, str]:
        """Storage identity: one store per group/plural, whatever version is asked for."""
        return (self.group, self.plural)


POD_FIELD_LABELS = BASE_FIELD_LABELS + (
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "spec.hostNetwork",
    "status.phase",
    "status.podIP",
    "status.nominatedNodeName",
)

BUILTIN_TYPES: tuple[ResourceType, ...] = (
    ResourceType(
        "",
        "v1",
        "Namespace",
        "namespaces",
        "namespace",
        False,
        ("ns",),
        status_subresource=True,
        status_on_create={"phase": "Active"},
        delete_returns_object=True,
        field_labels=("metadata.name", "status.phase"),
    ),
    ResourceType(
        "",
        "v1",
        "Node",
        "nodes",
        "node",
        False,
        ("no",),
        status_subresource=True,
        status_on_create="keep",
        delete_returns_object=False,
        field_labels=("metadata.name", "spec.unschedulable"),
    ),
    ResourceType(
        "",
        "v1",
        "Pod",
        "pods",
        "pod",
        True,
        ("po",),
        ("all",),
        status_subresource=True,
        status_on_create={"phase": "Pending"},
        tracks_generation=True,
        delete_returns_object=True,
        field_labels=POD_FIELD_LABELS,
        extra_subresources=(
            ("binding", "", "v1", "Binding", ("create",)),
            ("eviction", "policy", "v1", "Eviction", ("create",)),
        ),
    ),
    ResourceType("", "v1", "ConfigMap", "configmaps", "configmap", True, ("cm",)),
    ResourceType(
        "",
        "v1",
        "Secret",
        "secrets",
        "secret",
        True,
        field_labels=BASE_FIELD_LABELS + ("type",),
    ),
    ResourceType(
        "",
        "v1",
        "ServiceAccount",
        "serviceaccounts",
        "serviceaccount",
        True,
        ("sa",),
        extra_subresources=(("token", "authentication.k8s.io", "v1", "TokenRequest", ("create",)),),
    ),
    ResourceType(
        "",
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        "persistentvolumeclaim",
        True,
        ("pvc",),
        status_subresource=True,
        status_on_create={"phase": "Pending"},
        delete_returns_object=True,
    ),
    ResourceType(
        "",
        "v1",
        "PersistentVolume",
        "persistentvolumes",
        "persistentvolume",
        False,
        ("pv",),
        status_subresource=True,
        status_on_create={"phase": "Pending"},
        delete_returns_object=True,
    ),
    ResourceType("", "v1", "Endpoints", "endpoints", "endpoints", True, ("ep",)),
    ResourceType(
        "",
        "v1",
        "Service",
        "services",
        "service",
        True,
        ("svc",),
        ("all",),
        status_subresource=True,
        status_on_create={"loadBalancer": {}},
        delete_returns_object=True,
    ),
    ResourceType(
        "",
        "v1",
        "ResourceQuota",
        "resourcequotas",
        "resourcequota",
        True,
        ("quota",),
        status_subresource=True,
        status_on_create=None,
    ),
    ResourceType("", "v1", "LimitRange", "limitranges", "limitrange", True, ("limits",)),
    ResourceType(
        "",
        "v1",
        "Event",
        "events",
        "event",
        True,
        ("ev",),
        field_labels=BASE_FIELD_LABELS
        + (
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "reason",
            "type",
        ),
    ),
    ResourceType(
        "apps",
        "v1",
        "Deployment",
        "deployments",
        "deployment",
        True,
        ("deploy",),
        ("all",),
        status_subresource=True,
        status_on_create={},
        tracks_generation=True,
        extra_subresources=(SCALE,),
    ),
    ResourceType(
        "apps",
        "v1",
        "DaemonSet",
        "daemonsets",
        "daemonset",
        True,
        ("ds",),
        ("all",),
        status_subresource=True,
        status_on_create={
            "currentNumberScheduled": 0,
            "desiredNumberScheduled": 0,
            "numberMisscheduled": 0,
            "numberReady": 0,
        },
        tracks_generation=True,
    ),
    ResourceType(
        "apps",
        "v1",
        "StatefulSet",
        "statefulsets",
        "statefulset",
        True,
        ("sts",),
        ("all",),
        status_subresource=True,
        status_on_create={"replicas": 0},
        tracks_generation=True,
        extra_subresources=(SCALE,),
    ),
    ResourceType(
        "apps",
        "v1",
        "ReplicaSet",
        "replicasets",
        "replicaset",
        True,
        ("rs",),
        ("all",),
        status_subresource=True,
        status_on_create={"replicas": 0},
        tracks_generation=True,
        extra_subresources=(SCALE,),
    ),
    ResourceType(
        "apps",
        "v1",
        "ControllerRevision",
        "controllerrevisions",
        "controllerrevision",
        True,
    ),
    ResourceType(
        "batch",
        "v1",
        "Job",
        "jobs",
        "job",
        True,
        categories=("all",),
        status_subresource=True,
        status_on_create={},
        tracks_generation=True,
        field_labels=BASE_FIELD_LABELS + ("status.successful",),
    ),
    ResourceType(
        "batch",
        "v1",
        "CronJob",
        "cronjobs",
        "cronjob",
        True,
        ("cj",),
        ("all",),
        status_subresource=True,
        status_on_create={},
        tracks_generation=True,
    ),
    ResourceType(
        "storage.k8s.io", "v1", "StorageClass", "storageclasses", "storageclass", False, ("sc",)
    ),
    ResourceType(
        "authorization.k8s.io",
        "v1",
        "SelfSubjectAccessReview",
        "selfsubjectaccessreviews",
        "selfsubjectaccessreview",
        False,
        verbs=CREATE_ONLY,
    ),
    ResourceType(
        "authorization.k8s.io",
        "v1",
        "SelfSubjectRulesReview",
        "selfsubjectrulesreviews",
        "selfsubjectrulesreview",
        False,
        verbs=CREATE_ONLY,
    ),
    ResourceType(
        "authorization.k8s.io",
        "v1",
        "SubjectAccessReview",
        "subjectaccessreviews",
        "subjectaccessreview",
        False,
        verbs=CREATE_ONLY,
    ),
    ResourceType(
        "authorization.k8s.io",
        "v1",
        "LocalSubjectAccessReview",
        "localsubjectaccessreviews",
        "localsubjectaccessreview",
        True,
        verbs=CREATE_ONLY,
    ),
    ResourceType(
        "authentication.k8s.io",
        "v1",
        "TokenReview",
        "tokenreviews",
        "tokenreview",
        False,
        verbs=CREATE_ONLY,
    ),
    ResourceType(
        "authentication.k8s.io",
        "v1",
        "SelfSubjectReview",
        "selfsubjectreviews",
        "selfsubjectreview",
        False,
        verbs=CREATE_ONLY,
    ),
    ResourceType("rbac.authorization.k8s.io", "v1", "Role", "roles", "role", True),
    ResourceType(
        "rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", "clusterrole", False
    ),
    ResourceType(
        "rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", "rolebinding", True
    ),
    ResourceType(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        "clusterrolebinding",
        False,
    ),
    ResourceType(
        "networking.k8s.io",
        "v1",
        "NetworkPolicy",
        "networkpolicies",
        "networkpolicy",
        True,
        ("netpol",),
        tracks_generation=True,
    ),
    ResourceType(
        "scheduling.k8s.io",
        "v1",
        "PriorityClass",
        "priorityclasses",
        "priorityclass",
        False,
        ("pc",),
    ),
    ResourceType(
        "policy",
        "v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        "poddisruptionbudget",
        True,
        ("pdb",),
        status_subresource=True,
        status_on_create={
            "currentHealthy": 0,
            "desiredHealthy": 0,
            "disruptionsAllowed": 0,
            "expectedPods": 0,
        },
        tracks_generation=True,
    ),
    ResourceType(
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        "customresourcedefinition",
        False,
        ("crd", "crds"),
        ("api-extensions",),
        status_subresource=True,
        status_on_create={},
        tracks_generation=True,
        delete_returns_object=True,
    ),
    ResourceType("coordination.k8s.io", "v1", "Lease", "leases", "lease", True),
    # Autoscaling (issue 12): the HPA KEDA creates, and the admission policy the autoscaling role
    # keeps training Jobs non-disruptable with (stored and served; CEL is not evaluated here).
    ResourceType(
        "autoscaling",
        "v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        "horizontalpodautoscaler",
        True,
        ("hpa",),
        ("all",),
        status_subresource=True,
        # The apiserver resets status on create; desiredReplicas is not omitempty.
        status_on_create={"desiredReplicas": 0},
        tracks_generation=True,
    ),
    ResourceType(
        "admissionregistration.k8s.io",
        "v1",
        "ValidatingAdmissionPolicy",
        "validatingadmissionpolicies",
        "validatingadmissionpolicy",
        False,
        ("vap",),
        ("api-extensions",),
        status_subresource=True,
        status_on_create=None,
        tracks_generation=True,
    ),
    ResourceType(
        "admissionregistration.k8s.io",
        "v1",
        "ValidatingAdmissionPolicyBinding",
        "validatingadmissionpolicybindings",
        "validatingadmissionpolicybinding",
        False,
        ("vapb",),
        ("api-extensions",),
        tracks_generation=True,
    ),
)

# Labels like "kubernetes.io/metadata.name" the apiserver sets on namespaces.
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"

# Namespaces every cluster starts with.
INITIAL_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


def group_priority(group: str) -> int:
    """Order /apis lists groups in (built-ins first, in the apiserver's order)."""
    order = [
        "apps",
        "events.k8s.io",
        "authentication.k8s.io",
        "authorization.k8s.io",
        "autoscaling",
        "batch",
        "certificates.k8s.io",
        "networking.k8s.io",
        "policy",
        "rbac.authorization.k8s.io",
        "storage.k8s.io",
        "admissionregistration.k8s.io",
        "apiextensions.k8s.io",
        "scheduling.k8s.io",
        "coordination.k8s.io",
    ]
    return order.index(group) if group in order else len(order)
