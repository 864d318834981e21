"""Pod Security Admission on pod create, the way kube-apiserver's PodSecurity plugin does it.

The namespace's ``pod-security.kubernetes.io/<mode>`` and ``<mode>-version`` labels pick a level
(privileged, baseline, restricted) and a version per mode:

- enforce: a violating pod is refused with 403 Forbidden, ``pods "<name>" is forbidden: violates
  PodSecurity "<level>:<version>": <reason> (<detail>), ...``;
- warn: the pod is created and the response carries ``would violate PodSecurity ...`` as a
  Warning header (not added when enforce already refuses);
- audit: the verdict is recorded as the audit annotation
  ``pod-security.kubernetes.io/audit-violations`` (the stand-in keeps the audit events it would
  log in ``Cluster.audit_events``).

Workloads with a pod template (Deployment, ReplicaSet, StatefulSet, DaemonSet, Job, CronJob,
ReplicationController, PodTemplate) get the warn and audit verdicts of their template on create,
never a refusal (enforce applies to pods only). Updates are not re-evaluated.

Checks (the Pod Security Standards, written from the upstream pod-security-admission checks'
reasons and details): baseline - host namespaces, privileged, non-default capabilities, hostPath
volumes, hostPort, seccompProfile (Unconfined), procMount, sysctls; restricted adds
allowPrivilegeEscalation, unrestricted capabilities (replaces the baseline one), restricted
volume types (replaces hostPath volumes), runAsNonRoot, runAsUser=0, seccompProfile
(RuntimeDefault or Localhost required). Baseline results come first, then restricted, each in
check-ID order, as the upstream evaluator lists them. AppArmor, SELinux and Windows host-process
checks are not modelled. Unlabelled namespaces are privileged (the apiserver's default
AdmissionConfiguration), so pods there are never checked.
"""

from __future__ import annotations

import re
from typing import Any

LEVELS = ("privileged", "baseline", "restricted")
MODES = ("enforce", "audit", "warn")
PREFIX = "pod-security.kubernetes.io/"
LATEST = "latest"
AUDIT_ANNOTATION = PREFIX + "audit-violations"
_VERSION = re.compile(r"^v1\.(0|[1-9][0-9]*)$")

BASELINE_CAPABILITIES = frozenset(
    (
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    )
)
SAFE_SYSCTLS = frozenset(
    (
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
    )
)
RESTRICTED_VOLUMES = (
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
)
_VOLUME_SOURCES = (
    "hostPath",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "gitRepo",
    "nfs",
    "iscsi",
    "glusterfs",
    "rbd",
    "flexVolume",
    "cinder",
    "cephfs",
    "flocker",
    "fc",
    "azureFile",
    "vsphereVolume",
    "quobyte",
    "azureDisk",
    "portworxVolume",
    "photonPersistentDisk",
    "scaleIO",
    "storageos",
    "image",
)


def _quote(names: list[str]) -> str:
    return ", ".join('"%s"' % n for n in names)


def _plural(names: list[str], singular: str, plural: str) -> str:
    return "%s %s" % (singular if len(names) == 1 else plural, _quote(names))


def _containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        *(spec.get("initContainers") or []),
        *(spec.get("containers") or []),
        *(spec.get("ephemeralContainers") or []),
    ]


def _sc(container: dict[str, Any]) -> dict[str, Any]:
    return container.get("securityContext") or {}


# ---------------------------------------------------------------- baseline checks (ID order)


def _capabilities_baseline(spec):
    bad, caps = [], set()
    for c in _containers(spec):
        added = [
            a
            for a in (_sc(c).get("capabilities") or {}).get("add") or []
            if a not in BASELINE_CAPABILITIES
        ]
        if added:
            bad.append(c.get("name", ""))
            caps.update(added)
    if bad:
        detail = "%s must not include %s in securityContext.capabilities.add" % (
            _plural(bad, "container", "containers"),
            _quote(sorted(caps)),
        )
        return "non-default capabilities", detail
    return None


def _host_namespaces(spec):
    used = ["%s=true" % f for f in ("hostNetwork", "hostPID", "hostIPC") if spec.get(f)]
    return ("host namespaces", ", ".join(used)) if used else None


def _host_path_volumes(spec):
    names = [v.get("name", "") for v in spec.get("volumes") or [] if "hostPath" in v]
    return ("hostPath volumes", _plural(names, "volume", "volumes")) if names else None


def _host_ports(spec):
    bad, ports = [], []
    for c in _containers(spec):
        used = [str(p["hostPort"]) for p in c.get("ports") or [] if p.get("hostPort")]
        if used:
            bad.append(c.get("name", ""))
            ports.extend(used)
    if bad:
        return "hostPort", "%s %s %s" % (
            _plural(bad, "container", "containers"),
            "uses hostPort" if len(ports) == 1 else "use hostPorts",
            ", ".join(ports),
        )
    return None


def _privileged(spec):
    bad = [c.get("name", "") for c in _containers(spec) if _sc(c).get("privileged") is True]
    if bad:
        return "privileged", "%s must not set securityContext.privileged=true" % _plural(
            bad, "container", "containers"
        )
    return None


def _proc_mount(spec):
    bad = [
        c.get("name", "")
        for c in _containers(spec)
        if _sc(c).get("procMount") not in (None, "Default")
    ]
    if bad:
        return "procMount", "%s must not set securityContext.procMount to %s" % (
            _plural(bad, "container", "containers"),
            _quote(
                sorted({_sc(c)["procMount"] for c in _containers(spec) if c.get("name", "") in bad})
            ),
        )
    return None


def _seccomp_baseline(spec):
    setters = []
    if ((spec.get("securityContext") or {}).get("seccompProfile") or {}).get(
        "type"
    ) == "Unconfined":
        setters.append("pod")
    bad = [
        c.get("name", "")
        for c in _containers(spec)
        if (_sc(c).get("seccompProfile") or {}).get("type") == "Unconfined"
    ]
    if bad:
        setters.append(_plural(bad, "container", "containers"))
    if setters:
        return (
            "seccompProfile",
            '%s must not set securityContext.seccompProfile.type to "Unconfined"'
            % " and ".join(setters),
        )
    return None


def _sysctls(spec):
    bad = [
        s.get("name", "")
        for s in (spec.get("securityContext") or {}).get("sysctls") or []
        if s.get("name") not in SAFE_SYSCTLS
    ]
    return ("forbidden sysctls", ", ".join(bad)) if bad else None


# ---------------------------------------------------------------- restricted checks (ID order)


def _allow_privilege_escalation(spec):
    bad = [
        c.get("name", "")
        for c in _containers(spec)
        if _sc(c).get("allowPrivilegeEscalation") is not False
    ]
    if bad:
        return (
            "allowPrivilegeEscalation != false",
            "%s must set securityContext.allowPrivilegeEscalation=false"
            % _plural(bad, "container", "containers"),
        )
    return None


def _capabilities_restricted(spec):
    missing, adding, caps = [], [], set()
    for c in _containers(spec):
        capabilities = _sc(c).get("capabilities")
        if not capabilities:
            missing.append(c.get("name", ""))
            continue
        if "ALL" not in (capabilities.get("drop") or []):
            missing.append(c.get("name", ""))
        added = [a for a in capabilities.get("add") or [] if a != "NET_BIND_SERVICE"]
        if added:
            adding.append(c.get("name", ""))
            caps.update(added)
    details = []
    if missing:
        details.append(
            '%s must set securityContext.capabilities.drop=["ALL"]'
            % _plural(missing, "container", "containers")
        )
    if adding:
        details.append(
            "%s must not include %s in securityContext.capabilities.add"
            % (_plural(adding, "container", "containers"), _quote(sorted(caps)))
        )
    return ("unrestricted capabilities", "; ".join(details)) if details else None


def _restricted_volumes(spec):
    bad, types = [], set()
    for volume in spec.get("volumes") or []:
        kinds = [k for k in _VOLUME_SOURCES if k in volume]
        if kinds:
            bad.append(volume.get("name", ""))
            types.update(kinds)
    if bad:
        word = (
            "uses restricted volume type"
            if len(bad) == 1 and len(types) == 1
            else "use restricted volume types"
        )
        return "restricted volume types", "%s %s %s" % (
            _plural(bad, "volume", "volumes"),
            word,
            _quote(sorted(types)),
        )
    return None


def _run_as_non_root(spec):
    setters = []
    pod_value = (spec.get("securityContext") or {}).get("runAsNonRoot")
    if pod_value is False:
        setters.append("pod")
    explicit, implicit = [], []
    for c in _containers(spec):
        value = _sc(c).get("runAsNonRoot")
        if value is False:
            explicit.append(c.get("name", ""))
        elif value is None and pod_value is not True:
            implicit.append(c.get("name", ""))
    if explicit:
        setters.append(_plural(explicit, "container", "containers"))
    if setters:
        return (
            "runAsNonRoot != true",
            "%s must not set securityContext.runAsNonRoot=false" % " and ".join(setters),
        )
    if implicit:
        return (
            "runAsNonRoot != true",
            "pod or %s must set securityContext.runAsNonRoot=true"
            % _plural(implicit, "container", "containers"),
        )
    return None


def _run_as_user(spec):
    setters = []
    if (spec.get("securityContext") or {}).get("runAsUser") == 0:
        setters.append("pod")
    bad = [c.get("name", "") for c in _containers(spec) if _sc(c).get("runAsUser") == 0]
    if bad:
        setters.append(_plural(bad, "container", "containers"))
    return (
        ("runAsUser=0", "%s must not set runAsUser=0" % " and ".join(setters)) if setters else None
    )


def _seccomp_restricted(spec):
    allowed = ("RuntimeDefault", "Localhost")
    pod_type = ((spec.get("securityContext") or {}).get("seccompProfile") or {}).get("type")
    setters, bad_types, explicit, implicit = [], set(), [], []
    if pod_type is not None and pod_type not in allowed:
        setters.append("pod")
        bad_types.add(pod_type)
    for c in _containers(spec):
        value = (_sc(c).get("seccompProfile") or {}).get("type")
        if value is None:
            if pod_type is None:
                implicit.append(c.get("name", ""))
        elif value not in allowed:
            explicit.append(c.get("name", ""))
            bad_types.add(value)
    if explicit:
        setters.append(_plural(explicit, "container", "containers"))
    if setters:
        return "seccompProfile", "%s must not set securityContext.seccompProfile.type to %s" % (
            " and ".join(setters),
            _quote(sorted(bad_types)),
        )
    if implicit:
        detail = (
            "pod or %s must set securityContext.seccompProfile.type to "
            '"RuntimeDefault" or "Localhost"'
        )
        return "seccompProfile", detail % _plural(implicit, "container", "containers")
    return None


BASELINE_CHECKS = (
    ("capabilities_baseline", _capabilities_baseline),
    ("hostNamespaces", _host_namespaces),
    ("hostPathVolumes", _host_path_volumes),
    ("hostPorts", _host_ports),
    ("privileged", _privileged),
    ("procMount", _proc_mount),
    ("seccompProfile_baseline", _seccomp_baseline),
    ("sysctls", _sysctls),
)
RESTRICTED_CHECKS = (
    ("allowPrivilegeEscalation", _allow_privilege_escalation),
    ("capabilities_restricted", _capabilities_restricted),
    ("restrictedVolumes", _restricted_volumes),
    ("runAsNonRoot", _run_as_non_root),
    ("runAsUser", _run_as_user),
    ("seccompProfile_restricted", _seccomp_restricted),
)
# Restricted checks that replace a baseline one at the restricted level.
OVERRIDDEN = {"capabilities_baseline", "hostPathVolumes", "seccompProfile_baseline"}


def evaluate(level: str, pod_spec: dict[str, Any]) -> list[tuple[str, str]]:
    """The (reason, detail) pairs of every failed check at ``level``; empty when the pod passes."""
    if level == "privileged":
        return []
    checks = list(BASELINE_CHECKS)
    if level == "restricted":
        checks = [c for c in checks if c[0] not in OVERRIDDEN] + list(RESTRICTED_CHECKS)
    return [result for _unused, check in checks if (result := check(pod_spec)) is not None]


def format_results(results: list[tuple[str, str]]) -> str:
    return ", ".join("%s (%s)" % (r, d) if d else r for r, d in results)


def namespace_policy(
    labels: dict[str, str] | None,
) -> tuple[dict[str, tuple[str, str]], str | None]:
    """``{mode: (level, version)}`` from a namespace's labels, and a parse error or None.

    A missing level is privileged; a missing version is latest; an invalid value is reported
    and the mode falls back to the strictest choice the apiserver makes for it (restricted for
    a bad level, latest for a bad version).
    """
    labels = labels or {}
    policy, errors = {}, []
    for mode in MODES:
        level = labels.get(PREFIX + mode, "privileged")
        if level not in LEVELS:
            errors.append("%s%s: invalid level %r" % (PREFIX, mode, level))
            level = "restricted"
        version = labels.get(PREFIX + mode + "-version", LATEST)
        if version != LATEST and not _VERSION.match(version):
            errors.append("%s%s-version: invalid version %r" % (PREFIX, mode, version))
            version = LATEST
        policy[mode] = (level, version)
    return policy, "; ".join(errors) or None


class Decision:
    """What admission decided: ``forbidden`` (the message) or None, warnings, audit annotations."""

    def __init__(self) -> None:
        self.forbidden: str | None = None
        self.warnings: list[str] = []
        self.audit_annotations: dict[str, str] = {}


# Kinds that carry a pod template: the path to it. Their creation is checked against the
# namespace's warn and audit levels only; enforce applies to pods alone.
TEMPLATE_PATHS = {
    "Deployment": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "Job": ("spec", "template"),
    "ReplicationController": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
    "PodTemplate": ("template",),
}


def pod_template(kind: str, obj: dict[str, Any]) -> dict[str, Any] | None:
    """The pod template of a workload object, or None when it has none."""
    if kind not in TEMPLATE_PATHS:
        return None
    node: Any = obj
    for key in TEMPLATE_PATHS[kind]:
        node = node.get(key) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else None


def admit(
    pod: dict[str, Any], namespace_labels: dict[str, str] | None, enforce: bool = True
) -> Decision:
    """Evaluate a pod (or, with ``enforce=False``, a workload's pod template) being created in a
    namespace with ``namespace_labels``."""
    decision = Decision()
    policy, error = namespace_policy(namespace_labels)
    if error:
        decision.audit_annotations[PREFIX + "error"] = "Failed to parse policy: " + error
    spec = pod.get("spec") or {}
    name = (pod.get("metadata") or {}).get("name", "")
    cache: dict[tuple[str, str], list[tuple[str, str]]] = {}

    def results(mode: str) -> list[tuple[str, str]]:
        key = policy[mode]
        if key not in cache:
            cache[key] = evaluate(key[0], spec)
        return cache[key]

    def label(mode: str) -> str:
        return "%s:%s" % policy[mode]

    if enforce:
        failed = results("enforce")
        decision.audit_annotations[PREFIX + "enforce-policy"] = label("enforce")
        if failed:
            decision.forbidden = 'pods "%s" is forbidden: violates PodSecurity "%s": %s' % (
                name,
                label("enforce"),
                format_results(failed),
            )
    audit = results("audit")
    if audit:
        decision.audit_annotations[AUDIT_ANNOTATION] = 'would violate PodSecurity "%s": %s' % (
            label("audit"),
            format_results(audit),
        )
    if decision.forbidden is None:
        warn = results("warn")
        if warn:
            decision.warnings.append(
                'would violate PodSecurity "%s": %s' % (label("warn"), format_results(warn))
            )
    return decision
