# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""RBAC of the security baseline: persona roles, bindings, and the least-privilege check.

Pure functions, no I/O. Three personas (``ml-engineer``, ``read-only``, ``platform-admin``);
only ``platform-admin`` may use ``*`` in verbs, resources or apiGroups. ``resourceNames`` never
restricts list, watch, create or deletecollection (the API server authorizes those requests
before any object name is known, so such a rule either grants nothing or is read as granting
more than it does): a rule that pairs them is refused.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import re

from ansible_collections.gpuops.cluster.plugins.plugin_utils._common import shown

PERSONAS = ("ml-engineer", "read-only", "platform-admin")
ADMIN_PERSONA = "platform-admin"
ROLE_KINDS = ("ClusterRole", "Role")
SUBJECT_KINDS = ("User", "Group", "ServiceAccount")
VERBS = (
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
    "impersonate",
    "bind",
    "escalate",
    "use",
    "approve",
    "sign",
    "*",
)
READ_VERBS = ("get", "list", "watch")
NAMELESS_VERBS = ("list", "watch", "create", "deletecollection")
# Object names (DNS-1123 subdomain) and RBAC names (path segment: no '/', '%', '..').
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_RBAC_NAME = re.compile(r"^[A-Za-z0-9][-A-Za-z0-9_.:]{0,252}$")
_TOKEN = re.compile(r"^(\*|[a-z0-9][-a-z0-9./]*)?$")


class RbacError(ValueError):
    """Invalid RBAC input; the message names the field and the allowed values."""


def _strings(value, where, pattern=None, allow_empty_item=False):
    if not isinstance(value, list) or not value:
        raise RbacError("%s: must be a non-empty list of strings, got %s" % (where, shown(value)))
    for item in value:
        if not isinstance(item, str) or (not item and not allow_empty_item):
            raise RbacError("%s: %s is not a non-empty string" % (where, shown(item)))
        if pattern is not None and not pattern.match(item):
            raise RbacError("%s: %s is not a valid name" % (where, shown(item)))
    return list(value)


def wildcard_problems(role):
    """Least-privilege problems of one rendered (Cluster)Role object; empty when fine.

    ``role`` is a Kubernetes object; its persona is the ``gpuops.io/persona`` label (roles
    without it are judged as non-admin, so a wildcard anywhere else is a problem).
    """
    meta = role.get("metadata") or {}
    persona = (meta.get("labels") or {}).get("gpuops.io/persona")
    name = "%s/%s" % (role.get("kind", "Role"), meta.get("name"))
    problems = []
    for index, rule in enumerate(role.get("rules") or []):
        where = "%s rules[%d]" % (name, index)
        if persona != ADMIN_PERSONA:
            for field in ("verbs", "resources", "apiGroups", "nonResourceURLs"):
                values = rule.get(field) or []
                if any("*" in str(v) for v in values):
                    problems.append(
                        "%s: wildcard in %s %s (only the %s persona may use *)" % (where, field, values, ADMIN_PERSONA)
                    )
        if rule.get("resourceNames"):
            bad = sorted(set(rule.get("verbs") or []) & set(NAMELESS_VERBS + ("*",)))
            if bad:
                problems.append(
                    "%s: resourceNames cannot restrict %s (authorized before the object name is known)"
                    % (where, ", ".join(bad))
                )
    return problems


def _rule(rule, where, persona):
    if not isinstance(rule, dict):
        raise RbacError("%s: must be a dict with apiGroups, resources and verbs" % where)
    unknown = sorted(set(rule) - {"apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs"})
    if unknown:
        raise RbacError(
            "%s: unknown keys %s; allowed: apiGroups, resources, verbs, resourceNames, nonResourceURLs"
            % (where, unknown)
        )
    verbs = _strings(rule.get("verbs"), where + ".verbs")
    for verb in verbs:
        if verb not in VERBS:
            raise RbacError(
                "%s.verbs: %s is not a Kubernetes verb; allowed: %s" % (where, shown(verb), ", ".join(VERBS))
            )
    out = {}
    if "nonResourceURLs" in rule:
        out["nonResourceURLs"] = _strings(rule["nonResourceURLs"], where + ".nonResourceURLs")
    else:
        groups = _strings(rule.get("apiGroups"), where + ".apiGroups", _TOKEN, allow_empty_item=True)
        out["apiGroups"] = groups
        out["resources"] = _strings(rule.get("resources"), where + ".resources", _TOKEN)
    if "resourceNames" in rule:
        out["resourceNames"] = _strings(rule["resourceNames"], where + ".resourceNames", _DNS_SUBDOMAIN)
    out["verbs"] = verbs
    if persona == "read-only" and set(verbs) - set(READ_VERBS):
        raise RbacError(
            "%s.verbs: the read-only persona may only use %s, got %s"
            % (where, ", ".join(READ_VERBS), sorted(set(verbs) - set(READ_VERBS)))
        )
    return out


def render_roles(roles, managed_namespaces, labels):
    """(Cluster)Role objects for ``roles`` (validated); raises RbacError naming the field."""
    if not isinstance(roles, list):
        raise RbacError("security_baseline_rbac_roles: must be a list, got %s" % shown(roles))
    out = []
    seen = set()
    for index, role in enumerate(roles):
        where = "security_baseline_rbac_roles[%d]" % index
        if not isinstance(role, dict):
            raise RbacError("%s: must be a dict with name, persona and rules" % where)
        unknown = sorted(set(role) - {"name", "persona", "kind", "namespace", "rules"})
        if unknown:
            raise RbacError("%s: unknown keys %s; allowed: name, persona, kind, namespace, rules" % (where, unknown))
        name = role.get("name")
        if not isinstance(name, str) or not _RBAC_NAME.match(name):
            raise RbacError("%s.name: %s is not a valid role name" % (where, shown(name)))
        persona = role.get("persona")
        if persona not in PERSONAS:
            raise RbacError("%s.persona: %s; allowed: %s" % (where, shown(persona), ", ".join(PERSONAS)))
        kind = role.get("kind", "ClusterRole")
        if kind not in ROLE_KINDS:
            raise RbacError("%s.kind: %s; allowed: %s" % (where, shown(kind), ", ".join(ROLE_KINDS)))
        namespace = role.get("namespace")
        if kind == "Role":
            if namespace not in managed_namespaces:
                raise RbacError(
                    "%s.namespace: %s is not a managed namespace; allowed: %s"
                    % (where, shown(namespace), ", ".join(sorted(managed_namespaces)))
                )
        elif namespace is not None:
            raise RbacError("%s.namespace: a ClusterRole has no namespace (set kind: Role)" % where)
        if (kind, namespace, name) in seen:
            raise RbacError("%s.name: %s is declared twice" % (where, name))
        seen.add((kind, namespace, name))
        rules = role.get("rules")
        if not isinstance(rules, list) or not rules:
            raise RbacError("%s.rules: must be a non-empty list of rules" % where)
        obj = {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": kind,
            "metadata": {"name": name, "labels": dict(labels, **{"gpuops.io/persona": persona})},
            "rules": [_rule(rule, "%s.rules[%d]" % (where, i), persona) for i, rule in enumerate(rules)],
        }
        if kind == "Role":
            obj["metadata"]["namespace"] = namespace
        problems = wildcard_problems(obj)
        if problems:
            raise RbacError("%s: %s" % (where, "; ".join(problems)))
        out.append(obj)
    return out


def render_bindings(bindings, roles, managed_namespaces, labels):
    """RoleBindings (per namespace) and ClusterRoleBindings for ``bindings``; raises RbacError."""
    if not isinstance(bindings, list):
        raise RbacError("security_baseline_rbac_bindings: must be a list, got %s" % shown(bindings))
    cluster_roles = {r["metadata"]["name"] for r in roles if r["kind"] == "ClusterRole"}
    out = []
    for index, binding in enumerate(bindings):
        where = "security_baseline_rbac_bindings[%d]" % index
        if not isinstance(binding, dict):
            raise RbacError("%s: must be a dict with role, subjects and namespaces or cluster_wide" % where)
        unknown = sorted(set(binding) - {"name", "role", "subjects", "namespaces", "cluster_wide"})
        if unknown:
            raise RbacError(
                "%s: unknown keys %s; allowed: name, role, subjects, namespaces, cluster_wide" % (where, unknown)
            )
        role = binding.get("role")
        if role not in cluster_roles:
            raise RbacError(
                "%s.role: %s is not a ClusterRole of security_baseline_rbac_roles; allowed: %s"
                % (where, shown(role), ", ".join(sorted(cluster_roles)))
            )
        name = binding.get("name") or role
        if not isinstance(name, str) or not _RBAC_NAME.match(name):
            raise RbacError("%s.name: %s is not a valid binding name" % (where, shown(name)))
        subjects = binding.get("subjects")
        if not isinstance(subjects, list) or not subjects:
            raise RbacError("%s.subjects: must be a non-empty list of {kind, name}" % where)
        rendered_subjects = []
        for s_index, subject in enumerate(subjects):
            s_where = "%s.subjects[%d]" % (where, s_index)
            if not isinstance(subject, dict) or subject.get("kind") not in SUBJECT_KINDS:
                raise RbacError(
                    "%s.kind: %s; allowed: %s"
                    % (
                        s_where,
                        shown((subject or {}).get("kind") if isinstance(subject, dict) else subject),
                        ", ".join(SUBJECT_KINDS),
                    )
                )
            s_name = subject.get("name")
            if not isinstance(s_name, str) or not s_name or len(s_name) > 253:
                raise RbacError("%s.name: %s is not a subject name" % (s_where, shown(s_name)))
            item = {"kind": subject["kind"], "name": s_name}
            if subject["kind"] == "ServiceAccount":
                namespace = subject.get("namespace")
                if not isinstance(namespace, str) or not _DNS_LABEL.match(namespace):
                    raise RbacError(
                        "%s.namespace: a ServiceAccount subject needs its namespace, got %s"
                        % (s_where, shown(namespace))
                    )
                item["namespace"] = namespace
            else:
                item["apiGroup"] = "rbac.authorization.k8s.io"
            rendered_subjects.append(item)
        ref = {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role}
        cluster_wide = binding.get("cluster_wide", False)
        if not isinstance(cluster_wide, bool):
            raise RbacError("%s.cluster_wide: must be true or false, got %s" % (where, shown(cluster_wide)))
        if cluster_wide:
            out.append(
                {
                    "apiVersion": "rbac.authorization.k8s.io/v1",
                    "kind": "ClusterRoleBinding",
                    "metadata": {"name": name, "labels": dict(labels)},
                    "roleRef": ref,
                    "subjects": rendered_subjects,
                }
            )
            continue
        namespaces = binding.get("namespaces")
        if not isinstance(namespaces, list) or not namespaces:
            raise RbacError("%s.namespaces: must list managed namespaces (or set cluster_wide: true)" % where)
        for namespace in namespaces:
            if namespace not in managed_namespaces:
                raise RbacError(
                    "%s.namespaces: %s is not a managed namespace; allowed: %s"
                    % (where, shown(namespace), ", ".join(sorted(managed_namespaces)))
                )
            out.append(
                {
                    "apiVersion": "rbac.authorization.k8s.io/v1",
                    "kind": "RoleBinding",
                    "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
                    "roleRef": ref,
                    "subjects": rendered_subjects,
                }
            )
    return out
