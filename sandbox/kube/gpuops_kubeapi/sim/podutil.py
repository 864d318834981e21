"""Pod arithmetic the controllers share, as upstream's helpers define it: resource quantities
and requests, readiness and availability, taints and tolerations, node affinity, pod templates
and their hashes, owner references and status conditions. Pure functions, no I/O."""

from __future__ import annotations

import copy
import json
import re
import time
from decimal import Decimal, InvalidOperation
from typing import Any

from ..api import now, parse_time
from ..selectors import label_selector_object_matcher

SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # k8s.io/apimachinery/pkg/util/rand
_SUFFIXES = {
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50,
    "Ei": Decimal(2) ** 60,
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
}
_QUANTITY = re.compile(r"^([+-]?[0-9.]+)([eE][+-]?[0-9]+|Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$")


# ----------------------------------------------------------------------------- quantities


def parse_quantity(value: Any) -> Decimal | None:
    """resource.Quantity in base units ("500m" -> 0.5, "1Gi" -> 1073741824); None if bad."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return Decimal(str(value))
    if not isinstance(value, str):
        return None
    match = _QUANTITY.match(value.strip())
    if not match:
        return None
    number, suffix = match.group(1), match.group(2) or ""
    try:
        amount = Decimal(number)
    except InvalidOperation:
        return None
    if suffix[:1] in ("e", "E") and len(suffix) > 1:
        return amount * (Decimal(10) ** int(suffix[1:]))
    return amount * _SUFFIXES[suffix]


def format_cpu(amount: Decimal) -> str:
    millis = int(amount * 1000)
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


def _container_requests(container: dict[str, Any]) -> dict[str, Decimal]:
    resources = container.get("resources") or {}
    merged = dict(resources.get("limits") or {})
    merged.update(resources.get("requests") or {})
    totals = {}
    for name, value in merged.items():
        amount = parse_quantity(value)
        if amount is not None:
            totals[name] = amount
    return totals


def pod_requests(pod: dict[str, Any]) -> dict[str, Decimal]:
    """What the scheduler counts for a pod: the sum of its containers' requests (limits when
    no request is set), at least each init container's, plus the pod overhead."""
    spec = pod.get("spec") or {}
    totals: dict[str, Decimal] = {}
    for container in spec.get("containers") or []:
        for name, amount in _container_requests(container).items():
            totals[name] = totals.get(name, Decimal(0)) + amount
    sidecars: dict[str, Decimal] = {}
    for container in spec.get("initContainers") or []:
        requests = _container_requests(container)
        if container.get("restartPolicy") == "Always":  # sidecars run alongside
            for name, amount in requests.items():
                sidecars[name] = sidecars.get(name, Decimal(0)) + amount
            continue
        for name, amount in requests.items():
            wanted = amount + sidecars.get(name, Decimal(0))
            if wanted > totals.get(name, Decimal(0)):
                totals[name] = wanted
    for name, amount in sidecars.items():
        totals[name] = totals.get(name, Decimal(0)) + amount
    for name, value in (spec.get("overhead") or {}).items():
        amount = parse_quantity(value)
        if amount is not None:
            totals[name] = totals.get(name, Decimal(0)) + amount
    return totals


# ------------------------------------------------------------------------ pod state


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for entry in (obj.get("status") or {}).get("conditions") or []:
        if entry.get("type") == kind:
            return entry
    return None


def is_ready(pod: dict[str, Any]) -> bool:
    ready = condition(pod, "Ready")
    return bool(ready and ready.get("status") == "True")


def is_available(pod: dict[str, Any], min_ready_seconds: int, moment: float) -> bool:
    """Ready for at least minReadySeconds (podutil.IsPodAvailable)."""
    if not is_ready(pod):
        return False
    if not min_ready_seconds:
        return True
    since = parse_time((condition(pod, "Ready") or {}).get("lastTransitionTime"))
    return since is not None and since + min_ready_seconds <= moment


def available_in(pod: dict[str, Any], min_ready_seconds: int, moment: float) -> float | None:
    """Seconds until a ready pod becomes available, None if it is not ready."""
    if not is_ready(pod):
        return None
    since = parse_time((condition(pod, "Ready") or {}).get("lastTransitionTime")) or moment
    return max(since + min_ready_seconds - moment, 0.0)


def is_terminating(pod: dict[str, Any]) -> bool:
    return bool(pod["metadata"].get("deletionTimestamp"))


def is_finished(pod: dict[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def is_active(pod: dict[str, Any]) -> bool:
    """controller.IsPodActive: not finished and not being deleted."""
    return not is_finished(pod) and not is_terminating(pod)


# --------------------------------------------------------------------- taints, affinity


def tolerates(toleration: dict[str, Any], taint: dict[str, Any]) -> bool:
    """v1.Toleration.ToleratesTaint."""
    if toleration.get("effect") and toleration["effect"] != taint.get("effect"):
        return False
    if toleration.get("key") and toleration["key"] != taint.get("key"):
        return False
    operator = toleration.get("operator") or "Equal"
    if operator == "Exists":
        return True
    if operator == "Equal":
        return (toleration.get("value") or "") == (taint.get("value") or "")
    return False


def untolerated(
    taints: list[dict[str, Any]], tolerations: list[dict[str, Any]], effects: tuple[str, ...]
) -> dict[str, Any] | None:
    """The first taint with one of `effects` that no toleration covers."""
    for taint in taints:
        if taint.get("effect") not in effects:
            continue
        if not any(tolerates(t, taint) for t in tolerations if isinstance(t, dict)):
            return taint
    return None


def _expression_matches(expression: dict[str, Any], value: str | None) -> bool:
    operator = expression.get("operator")
    values = expression.get("values") or []
    if operator == "In":
        return value is not None and value in values
    if operator == "NotIn":
        return value is None or value not in values
    if operator == "Exists":
        return value is not None
    if operator == "DoesNotExist":
        return value is None
    if operator in ("Gt", "Lt") and value is not None and len(values) == 1:
        try:
            have, bound = int(value), int(values[0])
        except ValueError:
            return False
        return have > bound if operator == "Gt" else have < bound
    return False


def _term_matches(term: dict[str, Any], node: dict[str, Any]) -> bool:
    expressions = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not expressions and not fields:
        return False  # an empty term matches nothing
    labels = node["metadata"].get("labels") or {}
    for expression in expressions:
        if not _expression_matches(expression, labels.get(expression.get("key", ""))):
            return False
    for expression in fields:
        value = node["metadata"].get("name") if expression.get("key") == "metadata.name" else None
        if not _expression_matches(expression, value):
            return False
    return True


def node_selector_matches(pod_spec: dict[str, Any], node: dict[str, Any]) -> bool:
    """nodeSelector and requiredDuringSchedulingIgnoredDuringExecution node affinity."""
    labels = node["metadata"].get("labels") or {}
    for key, value in (pod_spec.get("nodeSelector") or {}).items():
        if labels.get(key) != value:
            return False
    affinity = ((pod_spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    )
    if affinity:
        terms = affinity.get("nodeSelectorTerms") or []
        if not any(_term_matches(term, node) for term in terms):
            return False
    return True


def node_ready(node: dict[str, Any]) -> bool:
    ready = condition(node, "Ready")
    return bool(ready and ready.get("status") == "True")


# ---------------------------------------------------------------- templates and owners


def fnv32a(data: bytes) -> int:
    value = 0x811C9DC5
    for byte in data:
        value ^= byte
        value = (value * 0x01000193) & 0xFFFFFFFF
    return value


def safe_encode(text: str) -> str:
    return "".join(SAFE_ALPHABET[ord(c) % len(SAFE_ALPHABET)] for c in text)


def template_hash(template: Any, collision_count: int | None = None) -> str:
    """controller.ComputeHash's shape: FNV-32a over the template (and collisionCount),
    decimal, safe-encoded (e.g. "7d9c5f8b6")."""
    data = json.dumps(template, sort_keys=True, separators=(",", ":")).encode()
    if collision_count:
        data += str(collision_count).encode()
    return safe_encode(str(fnv32a(data)))


def owner_reference(owner: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": owner.get("apiVersion"),
        "kind": owner.get("kind"),
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def pod_from_template(
    template: dict[str, Any],
    owner: dict[str, Any],
    *,
    name: str | None = None,
    generate_name: str | None = None,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """controller.GetPodFromTemplate: the template's labels, annotations, finalizers and spec,
    owned by `owner` (controller: true)."""
    template = template or {}
    meta = template.get("metadata") or {}
    metadata: dict[str, Any] = {
        "namespace": owner["metadata"].get("namespace"),
        "labels": dict(meta.get("labels") or {}, **(labels or {})),
        "ownerReferences": [owner_reference(owner)],
    }
    merged_annotations = dict(meta.get("annotations") or {}, **(annotations or {}))
    if merged_annotations:
        metadata["annotations"] = merged_annotations
    if meta.get("finalizers"):
        metadata["finalizers"] = list(meta["finalizers"])
    if name:
        metadata["name"] = name
    else:
        metadata["generateName"] = generate_name or f"{owner['metadata']['name']}-"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": copy.deepcopy(template.get("spec") or {}),
    }


def selector_matcher(owner: dict[str, Any]):
    """A function of labels for the owner's spec.selector (an empty selector matches nothing
    for workloads, as their validation requires one)."""
    selector = (owner.get("spec") or {}).get("selector")
    if not selector:
        return lambda labels: False
    return label_selector_object_matcher(selector)


# ------------------------------------------------------------------------- conditions


def set_condition(
    conditions: list[dict[str, Any]],
    kind: str,
    status: str,
    reason: str,
    message: str,
    *,
    with_update_time: bool = False,
    stamp: str | None = None,
) -> list[dict[str, Any]]:
    """A new conditions list with `kind` set; lastTransitionTime kept while the status
    stays the same, and the list unchanged when nothing but times would change."""
    stamp = stamp or now()
    result = []
    found = False
    for entry in conditions:
        if entry.get("type") != kind:
            result.append(entry)
            continue
        found = True
        if (entry.get("status"), entry.get("reason"), entry.get("message")) == (
            status,
            reason,
            message,
        ):
            result.append(entry)
            continue
        updated = dict(entry, status=status, reason=reason, message=message)
        if entry.get("status") != status:
            updated["lastTransitionTime"] = stamp
        if with_update_time:
            updated["lastUpdateTime"] = stamp
        result.append(updated)
    if not found:
        entry = {"type": kind, "status": status}
        if with_update_time:
            entry["lastUpdateTime"] = stamp
        entry.update(lastTransitionTime=stamp, reason=reason, message=message)
        result.append(entry)
    return result


def monotonic_to_wall(delay: float) -> float:
    return time.time() + delay


def resolve_int_or_percent(value: Any, total: int, round_up: bool) -> int:
    """intstr.GetScaledValueFromIntOrPercent."""
    if isinstance(value, str) and value.endswith("%"):
        try:
            percent = int(value[:-1])
        except ValueError:
            return 0
        scaled = Decimal(total * percent) / Decimal(100)
        return int(
            scaled.to_integral_value(rounding="ROUND_CEILING" if round_up else "ROUND_FLOOR")
        )
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0
