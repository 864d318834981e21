"""Authorization: request attributes as the apiserver's RequestInfoFactory derives them, the RBAC
authorizer over the stored Roles/ClusterRoles/bindings, the bootstrap policy every cluster
starts with (cluster-admin, admin/edit/view by aggregation, discovery roles), and upstream's 403
message (`pods is forbidden: User "x" cannot list resource "pods" in API group "" in the
namespace "y"`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote

from .auth import AUTHENTICATED, UNAUTHENTICATED, Identity
from .errors import ApiError
from .selectors import label_selector_object_matcher

RBAC_GROUP = "rbac.authorization.k8s.io"
NAMESPACE_SUBRESOURCES = ("status", "finalize")
VERBS = {"POST": "create", "GET": "get", "HEAD": "get", "PUT": "update", "PATCH": "patch"}
VERBS["DELETE"] = "delete"


@dataclass
class Attributes:
    """authorizer.Attributes of one request."""

    user: Identity
    verb: str
    resource_request: bool
    path: str = ""
    api_group: str = ""
    api_version: str = ""
    namespace: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""


def request_attributes(identity: Identity, method: str, path: str, query: str) -> Attributes:
    verb = VERBS.get(method, method.lower())
    parts = [unquote(p) for p in path.split("/") if p]
    if parts[:1] == ["api"] and len(parts) >= 3:
        group, version, rest = "", parts[1], parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 4:
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return Attributes(identity, verb, False, path=path or "/")
    namespace = ""
    if rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in NAMESPACE_SUBRESOURCES:
            rest = rest[2:]
    resource, name, subresource = rest[0], "", ""
    if len(rest) >= 2:
        name = rest[1]
    if len(rest) >= 3:
        subresource = rest[2]
    params = parse_qs(query or "")
    if not name and verb == "get":
        verb = "watch" if (params.get("watch") or [""])[-1] in ("true", "1") else "list"
        for selector in params.get("fieldSelector") or []:
            for term in selector.split(","):
                key, _unused, value = term.partition("=")
                if key == "metadata.name" and value and not value.startswith("="):
                    name = value
    elif name and verb == "get" and (params.get("watch") or [""])[-1] in ("true", "1"):
        verb = "watch"
    if not name and verb == "delete":
        verb = "deletecollection"
    return Attributes(
        identity, verb, True, path, group, version, namespace, resource, subresource, name
    )


def forbidden(attributes: Attributes, reason: str = "") -> ApiError:
    """403 as responsewriters.Forbidden renders it (apierrors.NewForbidden around the message)."""
    user = attributes.user.user
    if not attributes.resource_request:
        message = f'User "{user}" cannot {attributes.verb} path "{attributes.path}"'
        qualified, details = "", {}
    else:
        resource = attributes.resource
        if attributes.subresource:
            resource += "/" + attributes.subresource
        scope = (
            f'in the namespace "{attributes.namespace}"'
            if attributes.namespace
            else "at the cluster scope"
        )
        message = (
            f'User "{user}" cannot {attributes.verb} resource "{resource}" in API group '
            f'"{attributes.api_group}" {scope}'
        )
        qualified = attributes.resource + (
            "." + attributes.api_group if attributes.api_group else ""
        )
        details = {"kind": attributes.resource}
        if attributes.name:
            details["name"] = attributes.name
        if attributes.api_group:
            details["group"] = attributes.api_group
    if reason:
        message = f"{message}: {reason}"
    if qualified:
        target = f'{qualified} "{attributes.name}"' if attributes.name else qualified
        text = f"{target} is forbidden: {message}"
    else:
        text = f"forbidden: {message}"
    return ApiError(403, "Forbidden", text, details)


# ------------------------------------------------------------------------------ matching


def _rule_allows(rule: dict[str, Any], attributes: Attributes) -> bool:
    verbs = rule.get("verbs") or []
    if "*" not in verbs and attributes.verb not in verbs:
        return False
    if not attributes.resource_request:
        for url in rule.get("nonResourceURLs") or []:
            if url == "*" or url == attributes.path:
                return True
            if url.endswith("*") and attributes.path.startswith(url[:-1]):
                return True
        return False
    groups = rule.get("apiGroups") or []
    if "*" not in groups and attributes.api_group not in groups:
        return False
    combined = attributes.resource
    if attributes.subresource:
        combined += "/" + attributes.subresource
    resources = rule.get("resources") or []
    matched = False
    for resource in resources:
        if resource == "*" or resource == combined:
            matched = True
            break
        if attributes.subresource and resource == "*/" + attributes.subresource:
            matched = True
            break
    if not matched:
        return False
    names = rule.get("resourceNames") or []
    return not names or attributes.name in names


def _subject_matches(subject: dict[str, Any], identity: Identity, binding_ns: str) -> bool:
    kind = subject.get("kind")
    if kind == "User":
        return subject.get("name") == identity.user
    if kind == "Group":
        return subject.get("name") in identity.groups
    if kind == "ServiceAccount":
        namespace = subject.get("namespace") or binding_ns
        return identity.user == f"system:serviceaccount:{namespace}:{subject.get('name')}"
    return False


class RbacAuthorizer:
    """Allows a request when some binding that names the user (or a group of theirs) grants a
    rule that covers it; system:masters is allowed everything (the privileged-group
    authorizer that comes first upstream)."""

    def __init__(self, cluster) -> None:
        self.cluster = cluster

    def _decoded(self, type_key, namespace):
        return [record.decode() for record in self.cluster.store.scan(type_key, namespace, None)]

    def rules_for(
        self, identity: Identity, namespace: str
    ) -> tuple[list[tuple[dict[str, Any], str]], list[str]]:
        """Every (rule, where it comes from) that applies to the user in `namespace` ("" =
        cluster scope only), and the errors met on the way (bindings to missing roles)."""
        store = self.cluster.store
        rules: list[tuple[dict[str, Any], str]] = []
        errors: list[str] = []
        with self.cluster.lock:
            bindings = [(b, "") for b in self._decoded((RBAC_GROUP, "clusterrolebindings"), None)]
            if namespace:
                bindings += [
                    (b, namespace) for b in self._decoded((RBAC_GROUP, "rolebindings"), namespace)
                ]
            for binding, binding_ns in bindings:
                subject = next(
                    (
                        s
                        for s in binding.get("subjects") or []
                        if _subject_matches(s, identity, binding_ns)
                    ),
                    None,
                )
                if subject is None:
                    continue
                ref = binding.get("roleRef") or {}
                ref_name = ref.get("name", "")
                if ref.get("kind") == "ClusterRole":
                    record = store.get((RBAC_GROUP, "clusterroles"), ("", ref_name))
                    missing = f'clusterrole.rbac.authorization.k8s.io "{ref_name}" not found'
                else:
                    record = store.get((RBAC_GROUP, "roles"), (binding_ns, ref_name))
                    missing = f'role.rbac.authorization.k8s.io "{ref_name}" not found'
                if record is None:
                    errors.append(missing)
                    continue
                source = _describe(binding, binding_ns, ref, subject)
                rules.extend((rule, source) for rule in record.decode().get("rules") or [])
        return rules, errors

    def authorize(self, attributes: Attributes) -> tuple[bool, str]:
        """(allowed, reason) as the RBAC authorizer answers."""
        if attributes.user.privileged:
            return True, ""
        rules, errors = self.rules_for(attributes.user, attributes.namespace)
        for rule, source in rules:
            if _rule_allows(rule, attributes):
                return True, f"RBAC: allowed by {source}"
        if not errors:
            return False, ""
        joined = errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]"
        return False, f"RBAC: {joined}"


def _describe(binding: dict, namespace: str, ref: dict, subject: dict) -> str:
    """As the RBAC authorizer's allowed reason names the grant."""
    name = binding["metadata"]["name"]
    where = f'RoleBinding "{name}/{namespace}"' if namespace else f'ClusterRoleBinding "{name}"'
    who = subject.get("name", "")
    if subject.get("kind") == "ServiceAccount":
        who = f"{who}/{subject.get('namespace') or namespace}"
    return f'{where} of {ref.get("kind")} "{ref.get("name")}" to {subject.get("kind")} "{who}"'


def aggregate_cluster_roles(cluster, write) -> None:
    """What the clusterrole-aggregation controller does, at once: a ClusterRole with an
    aggregationRule gets the rules of every ClusterRole its selectors match (by name order).
    `write(role)` stores a changed role."""
    records = list(cluster.store.scan((RBAC_GROUP, "clusterroles"), None, None))
    roles = [record.decode() for record in records]
    for _unused in range(len(roles) + 1):  # aggregated roles can aggregate others: to a fixpoint
        if not _aggregate_pass(roles, write):
            return


def _aggregate_pass(roles: list[dict[str, Any]], write) -> bool:
    changed = False
    for role in roles:
        selectors = (role.get("aggregationRule") or {}).get("clusterRoleSelectors")
        if not selectors:
            continue
        matchers = [label_selector_object_matcher(s) for s in selectors]
        rules: list[dict[str, Any]] = []
        seen: set[str] = set()
        for other in sorted(roles, key=lambda r: r["metadata"]["name"]):
            if other["metadata"]["name"] == role["metadata"]["name"]:
                continue
            labels = other["metadata"].get("labels") or {}
            if not any(matcher(labels) for matcher in matchers):
                continue
            for rule in other.get("rules") or []:
                key = json.dumps(rule, sort_keys=True)
                if key not in seen:
                    seen.add(key)
                    rules.append(rule)
        if (role.get("rules") or []) != rules:
            role["rules"] = rules
            write(role)
            changed = True
    return changed


# -------------------------------------------------------------------- bootstrap policy

_READ = ["get", "list", "watch"]
_WRITE = ["create", "delete", "deletecollection", "patch", "update"]


def _rule(groups, resources, verbs):
    return {"apiGroups": list(groups), "resources": list(resources), "verbs": list(verbs)}


_VIEW_CORE = [
    "configmaps",
    "endpoints",
    "persistentvolumeclaims",
    "persistentvolumeclaims/status",
    "pods",
    "replicationcontrollers",
    "replicationcontrollers/scale",
    "serviceaccounts",
    "services",
    "services/status",
    "bindings",
    "events",
    "limitranges",
    "namespaces/status",
    "pods/log",
    "pods/status",
    "replicationcontrollers/status",
    "resourcequotas",
    "resourcequotas/status",
]
_APPS = [
    "controllerrevisions",
    "daemonsets",
    "daemonsets/status",
    "deployments",
    "deployments/scale",
    "deployments/status",
    "replicasets",
    "replicasets/scale",
    "replicasets/status",
    "statefulsets",
    "statefulsets/scale",
    "statefulsets/status",
]
_BATCH = ["cronjobs", "cronjobs/status", "jobs", "jobs/status"]
_WRITE_CORE = [
    "pods",
    "pods/attach",
    "pods/exec",
    "pods/portforward",
    "pods/proxy",
    "pods/eviction",
    "configmaps",
    "endpoints",
    "persistentvolumeclaims",
    "replicationcontrollers",
    "replicationcontrollers/scale",
    "secrets",
    "serviceaccounts",
    "services",
    "services/proxy",
]
_WRITE_APPS = [
    "daemonsets",
    "deployments",
    "deployments/rollback",
    "deployments/scale",
    "replicasets",
    "replicasets/scale",
    "statefulsets",
    "statefulsets/scale",
]

BOOTSTRAP_CLUSTER_ROLES: list[dict[str, Any]] = [
    {
        "name": "cluster-admin",
        "rules": [
            _rule(["*"], ["*"], ["*"]),
            {"nonResourceURLs": ["*"], "verbs": ["*"]},
        ],
    },
    {
        "name": "system:discovery",
        "rules": [
            {
                "nonResourceURLs": [
                    "/api",
                    "/api/*",
                    "/apis",
                    "/apis/*",
                    "/healthz",
                    "/livez",
                    "/openapi",
                    "/openapi/*",
                    "/readyz",
                    "/version",
                    "/version/",
                ],
                "verbs": ["get"],
            }
        ],
    },
    {
        "name": "system:public-info-viewer",
        "rules": [
            {
                "nonResourceURLs": ["/healthz", "/livez", "/readyz", "/version", "/version/"],
                "verbs": ["get"],
            }
        ],
    },
    {
        "name": "system:basic-user",
        "rules": [
            _rule(["authentication.k8s.io"], ["selfsubjectreviews"], ["create"]),
            _rule(
                ["authorization.k8s.io"],
                ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                ["create"],
            ),
        ],
    },
    {
        "name": "system:aggregate-to-view",
        "labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"},
        "rules": [
            _rule([""], _VIEW_CORE + ["namespaces"], _READ),
            _rule(["apps"], _APPS, _READ),
            _rule(["autoscaling"], ["horizontalpodautoscalers"], _READ),
            _rule(["batch"], _BATCH, _READ),
            _rule(["policy"], ["poddisruptionbudgets", "poddisruptionbudgets/status"], _READ),
            _rule(["networking.k8s.io"], ["ingresses", "networkpolicies"], _READ),
            _rule(["coordination.k8s.io"], ["leases"], _READ),
        ],
    },
    {
        "name": "system:aggregate-to-edit",
        "labels": {"rbac.authorization.k8s.io/aggregate-to-edit": "true"},
        "rules": [
            _rule([""], _WRITE_CORE, _WRITE),
            _rule([""], ["secrets", "serviceaccounts/token"], _READ + ["create"]),
            _rule(["apps"], _WRITE_APPS, _WRITE),
            _rule(["autoscaling"], ["horizontalpodautoscalers"], _WRITE),
            _rule(["batch"], ["cronjobs", "jobs"], _WRITE),
            _rule(["policy"], ["poddisruptionbudgets"], _WRITE),
            _rule(["networking.k8s.io"], ["ingresses", "networkpolicies"], _WRITE),
            _rule(["coordination.k8s.io"], ["leases"], _WRITE),
        ],
    },
    {
        "name": "system:aggregate-to-admin",
        "labels": {"rbac.authorization.k8s.io/aggregate-to-admin": "true"},
        "rules": [
            _rule(["authorization.k8s.io"], ["localsubjectaccessreviews"], ["create"]),
            _rule([RBAC_GROUP], ["rolebindings", "roles"], _READ + _WRITE),
        ],
    },
]
# view is part of edit and edit of admin through their own labels, as upstream labels them.
for _name, _label in (("view", "edit"), ("edit", "admin"), ("admin", None)):
    BOOTSTRAP_CLUSTER_ROLES.append(
        {
            "name": _name,
            "labels": {f"rbac.authorization.k8s.io/aggregate-to-{_label}": "true"}
            if _label
            else {},
            "aggregation": f"rbac.authorization.k8s.io/aggregate-to-{_name}",
        }
    )

BOOTSTRAP_CLUSTER_ROLE_BINDINGS = [
    ("cluster-admin", "cluster-admin", [("Group", "system:masters")]),
    ("system:discovery", "system:discovery", [("Group", AUTHENTICATED)]),
    ("system:basic-user", "system:basic-user", [("Group", AUTHENTICATED)]),
    (
        "system:public-info-viewer",
        "system:public-info-viewer",
        [("Group", AUTHENTICATED), ("Group", UNAUTHENTICATED)],
    ),
]


def bootstrap_objects() -> list[tuple[str, dict[str, Any]]]:
    """(plural, object) for every bootstrap ClusterRole and ClusterRoleBinding."""
    meta_labels = {"kubernetes.io/bootstrapping": "rbac-defaults"}
    annotations = {"rbac.authorization.kubernetes.io/autoupdate": "true"}
    objects = []
    for spec in BOOTSTRAP_CLUSTER_ROLES:
        role: dict[str, Any] = {
            "apiVersion": f"{RBAC_GROUP}/v1",
            "kind": "ClusterRole",
            "metadata": {
                "name": spec["name"],
                "labels": dict(meta_labels, **(spec.get("labels") or {})),
                "annotations": dict(annotations),
            },
        }
        if "aggregation" in spec:
            role["aggregationRule"] = {
                "clusterRoleSelectors": [{"matchLabels": {spec["aggregation"]: "true"}}]
            }
            role["rules"] = []
        else:
            role["rules"] = spec["rules"]
        objects.append(("clusterroles", role))
    for name, role_name, subjects in BOOTSTRAP_CLUSTER_ROLE_BINDINGS:
        objects.append(
            (
                "clusterrolebindings",
                {
                    "apiVersion": f"{RBAC_GROUP}/v1",
                    "kind": "ClusterRoleBinding",
                    "metadata": {
                        "name": name,
                        "labels": dict(meta_labels),
                        "annotations": dict(annotations),
                    },
                    "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": role_name},
                    "subjects": [
                        {"apiGroup": RBAC_GROUP, "kind": kind, "name": subject}
                        for kind, subject in subjects
                    ],
                },
            )
        )
    return objects


# ------------------------------------------------------------------------ access reviews


def _spec_attributes(identity: Identity, spec: dict[str, Any]) -> Attributes:
    resource = spec.get("resourceAttributes")
    if isinstance(resource, dict):
        return Attributes(
            identity,
            resource.get("verb") or "",
            True,
            "",
            resource.get("group") or "",
            resource.get("version") or "",
            resource.get("namespace") or "",
            resource.get("resource") or "",
            resource.get("subresource") or "",
            resource.get("name") or "",
        )
    non_resource = spec.get("nonResourceAttributes") or {}
    return Attributes(
        identity, non_resource.get("verb") or "", False, non_resource.get("path") or ""
    )


def _user_info(identity: Identity) -> dict[str, Any]:
    info: dict[str, Any] = {"username": identity.user, "groups": list(identity.groups)}
    if identity.uid:
        info["uid"] = identity.uid
    return info


def review(server, kind: str, body: dict[str, Any], identity: Identity, namespace: str | None):
    """Answer a create of an access/token review: nothing is stored, status is filled in."""
    spec = body.get("spec") if isinstance(body.get("spec"), dict) else {}
    group = (
        "authentication.k8s.io"
        if kind in ("TokenReview", "SelfSubjectReview")
        else ("authorization.k8s.io")
    )
    result: dict[str, Any] = {
        "kind": kind,
        "apiVersion": f"{group}/v1",
        "metadata": {"creationTimestamp": None},
    }
    if kind == "SelfSubjectReview":
        result["status"] = {"userInfo": _user_info(identity)}
        return result
    result["spec"] = spec
    if kind == "TokenReview":
        token = spec.get("token") or ""
        found = server.authenticator.token_identity(token) if server.authenticator else None
        if found is None:
            result["status"] = {"authenticated": False, "error": "invalid bearer token"}
        else:
            result["status"] = {
                "authenticated": True,
                "user": _user_info(found),
                "audiences": spec.get("audiences")
                or ["https://kubernetes.default.svc.cluster.local"],
            }
        return result
    if kind in ("SubjectAccessReview", "LocalSubjectAccessReview"):
        subject = Identity(
            spec.get("user") or "", tuple(spec.get("groups") or ()), spec.get("uid") or ""
        )
        if not subject.user and not subject.groups:
            raise ApiError(
                422,
                "Invalid",
                f'{kind}.authorization.k8s.io "" is invalid: spec.user: Invalid value: "": at '
                "least one of user or group must be specified",
            )
    else:
        subject = identity
    if kind == "LocalSubjectAccessReview":
        attrs_namespace = (spec.get("resourceAttributes") or {}).get("namespace") or ""
        if attrs_namespace != namespace:
            raise ApiError(
                400,
                "BadRequest",
                f"spec.resourceAttributes.namespace must match namespace: {namespace}",
            )
        result["metadata"]["namespace"] = namespace
    if kind == "SelfSubjectRulesReview":
        rules, errors = server.authorizer.rules_for(subject, spec.get("namespace") or "")
        if subject.privileged:
            rules = [(rule, "") for rule in BOOTSTRAP_CLUSTER_ROLES[0]["rules"]]
        resource_rules = [
            {k: rule[k] for k in ("verbs", "apiGroups", "resources", "resourceNames") if k in rule}
            for rule, _unused in rules
            if rule.get("resources")
        ]
        non_resource_rules = [
            {"verbs": rule.get("verbs") or [], "nonResourceURLs": rule["nonResourceURLs"]}
            for rule, _unused in rules
            if rule.get("nonResourceURLs")
        ]
        result["status"] = {
            "resourceRules": resource_rules,
            "nonResourceRules": non_resource_rules,
            "incomplete": bool(errors),
        }
        if errors:
            result["status"]["evaluationError"] = "; ".join(errors)
        return result
    allowed, reason = server.authorizer.authorize(_spec_attributes(subject, spec))
    status: dict[str, Any] = {"allowed": allowed}
    if reason:
        status["reason"] = reason
    result["status"] = status
    return result
