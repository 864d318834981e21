"""Server-side apply: field sets in the FieldsV1 format, managedFields bookkeeping, apply
merging and conflict detection (a simplified structured-merge-diff).

A field set is a Python set of paths; a path is a tuple of FieldsV1 segments: "f:<name>",
"k:<json of list-map keys>" for items of associative lists, "v:<json>" for set items.
Owned paths are leaves (scalars, atomic lists/maps, empty maps) and associative list items.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from . import schema as schemas
from .errors import ApiError

Path = tuple[str, ...]
_MISSING = object()

# Metadata the apiserver owns; never part of a manager's field set.
_SYSTEM_METADATA = frozenset(
    {
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "managedFields",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "selfLink",
    }
)


def _item_key(item: Any, keys: tuple[str, ...]) -> str:
    present = {key: item[key] for key in keys if isinstance(item, dict) and key in item}
    return "k:" + json.dumps(present, sort_keys=True, separators=(",", ":"))


def _paths(value: Any, node: schemas.Schema | None, prefix: Path, out: set[Path]) -> None:
    if isinstance(value, dict):
        if not value or schemas.is_atomic_map(node):
            out.add(prefix)
            return
        for key, sub in value.items():
            _paths(sub, schemas.child(node, key), prefix + ("f:" + key,), out)
    elif isinstance(value, list):
        list_type, keys = schemas.list_keys(node)
        if list_type == "map" and keys and all(isinstance(i, dict) for i in value):
            item_node = schemas.items(node)
            for item in value:
                item_path = prefix + (_item_key(item, keys),)
                out.add(item_path)
                _paths(item, item_node, item_path, out)
        elif list_type == "set" and value:
            for item in value:
                out.add(prefix + ("v:" + json.dumps(item, separators=(",", ":")),))
        else:
            out.add(prefix)
    else:
        out.add(prefix)


def object_fields(obj: dict[str, Any], node: schemas.Schema | None, scope: str) -> set[Path]:
    """Owned-field paths of an object; scope "main" skips status, "status" keeps only status."""
    out: set[Path] = set()
    for key, value in obj.items():
        if key in ("apiVersion", "kind"):
            continue
        if (scope == "status") != (key == "status"):
            continue
        sub_node = schemas.child(node, key)
        if key == "metadata" and isinstance(value, dict):
            for meta_key, meta_value in value.items():
                if meta_key not in _SYSTEM_METADATA:
                    _paths(
                        meta_value,
                        schemas.child(sub_node, meta_key),
                        ("f:metadata", "f:" + meta_key),
                        out,
                    )
            continue
        _paths(value, sub_node, ("f:" + key,), out)
    return out


def value_at(obj: Any, path: Path) -> Any:
    current = obj
    for segment in path:
        kind, text = segment[:2], segment[2:]
        if kind == "f:":
            if not isinstance(current, dict) or text not in current:
                return _MISSING
            current = current[text]
        elif kind == "k:":
            wanted = json.loads(text)
            if not isinstance(current, list):
                return _MISSING
            current = next(
                (
                    i
                    for i in current
                    if isinstance(i, dict) and all(i.get(k) == v for k, v in wanted.items())
                ),
                _MISSING,
            )
            if current is _MISSING:
                return _MISSING
        elif kind == "v:":
            wanted = json.loads(text)
            if not isinstance(current, list) or wanted not in current:
                return _MISSING
            current = wanted
    return current


def remove_path(obj: Any, path: Path) -> None:
    parent = value_at(obj, path[:-1])
    last = path[-1]
    kind, text = last[:2], last[2:]
    if kind == "f:" and isinstance(parent, dict):
        parent.pop(text, None)
    elif kind in ("k:", "v:") and isinstance(parent, list):
        target = value_at(obj, path)
        if target is not _MISSING:
            parent.remove(target)


def to_fields_v1(paths: set[Path]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path in sorted(paths):
        node = tree
        for segment in path:
            node = node.setdefault(segment, {})
    # Owned nodes that also have owned children carry the "." marker.
    for path in paths:
        node = tree
        for segment in path:
            node = node[segment]
        if node and "." not in node:
            node["."] = {}
    return tree


def from_fields_v1(tree: dict[str, Any], prefix: Path = ()) -> set[Path]:
    out: set[Path] = set()
    for segment, children in tree.items():
        if segment == ".":
            continue
        path = prefix + (segment,)
        if not children or "." in children:
            out.add(path)
        if children:
            out |= from_fields_v1(children, path)
    return out


def render_field(path: Path) -> str:
    rendered = ""
    for segment in path:
        kind, text = segment[:2], segment[2:]
        if kind == "f:":
            rendered += "." + text
        elif kind == "k:":
            pairs = json.loads(text)
            rendered += "[" + ",".join(f"{k}={json.dumps(v)}" for k, v in pairs.items()) + "]"
        else:
            rendered += f"[={text}]"
    return rendered


def apply_merge(live: Any, applied: Any, node: schemas.Schema | None) -> Any:
    """Merge an applied configuration into the live object (structured merge)."""
    if isinstance(applied, dict) and isinstance(live, dict) and not schemas.is_atomic_map(node):
        result = dict(live)
        for key, value in applied.items():
            result[key] = apply_merge(live.get(key), value, schemas.child(node, key))
        return result
    if isinstance(applied, list) and isinstance(live, list):
        list_type, keys = schemas.list_keys(node)
        if list_type == "map" and keys:
            item_node = schemas.items(node)
            result = [copy.deepcopy(i) for i in live]
            index = {_item_key(item, keys): pos for pos, item in enumerate(result)}
            for item in applied:
                key = _item_key(item, keys)
                if key in index:
                    result[index[key]] = apply_merge(result[index[key]], item, item_node)
                else:
                    index[key] = len(result)
                    result.append(copy.deepcopy(item))
            return result
        if list_type == "set":
            return list(live) + [copy.deepcopy(i) for i in applied if i not in live]
    return copy.deepcopy(applied)


def _entry_key(entry: dict[str, Any]) -> tuple[str, str, str]:
    return (entry.get("manager", ""), entry.get("operation", ""), entry.get("subresource", ""))


class ManagedFields:
    """The managedFields of one object, as {(manager, operation, subresource): paths}."""

    def __init__(self, entries: list[dict[str, Any]] | None) -> None:
        self.sets: dict[tuple[str, str, str], set[Path]] = {}
        self.entries: dict[tuple[str, str, str], dict[str, Any]] = {}
        for entry in entries or []:
            key = _entry_key(entry)
            self.entries[key] = entry
            self.sets[key] = from_fields_v1(entry.get("fieldsV1") or {})

    def render(
        self, api_version: str, now: str, changed: set[tuple[str, str, str]]
    ) -> list[dict[str, Any]]:
        rendered = []
        for key, paths in self.sets.items():
            if not paths:
                continue
            manager, operation, subresource = key
            if key in changed or key not in self.entries:
                entry: dict[str, Any] = {
                    "manager": manager,
                    "operation": operation,
                    "apiVersion": api_version,
                    "time": now,
                    "fieldsType": "FieldsV1",
                    "fieldsV1": to_fields_v1(paths),
                }
                if subresource:
                    entry["subresource"] = subresource
            else:
                entry = self.entries[key]
            rendered.append(entry)
        return rendered


def _scope(subresource: str) -> str:
    return "status" if subresource == "status" else "main"


def record_update(
    old: dict[str, Any] | None,
    new: dict[str, Any],
    manager: str,
    node: schemas.Schema | None,
    api_version: str,
    now: str,
    subresource: str = "",
) -> list[dict[str, Any]]:
    """managedFields after a non-apply write: the writer owns what it changed, others lose it."""
    managed = ManagedFields((old or {}).get("metadata", {}).get("managedFields"))
    new_paths = object_fields(new, node, "main") | object_fields(new, node, "status")
    old_paths = (
        (object_fields(old, node, "main") | object_fields(old, node, "status")) if old else set()
    )
    changed_paths = (
        {p for p in new_paths if p not in old_paths or value_at(old, p) != value_at(new, p)}
        if old
        else object_fields(new, node, _scope(subresource))
    )
    key = (manager, "Update", subresource)
    changed_keys = set()
    for other_key, paths in managed.sets.items():
        kept = (paths & new_paths) - (changed_paths if other_key != key else set())
        if kept != paths:
            managed.sets[other_key] = kept
            changed_keys.add(other_key)
    if changed_paths:
        managed.sets[key] = managed.sets.get(key, set()) | changed_paths
        changed_keys.add(key)
    return managed.render(api_version, now, changed_keys)


def server_side_apply(
    live: dict[str, Any] | None,
    applied: dict[str, Any],
    manager: str,
    force: bool,
    node: schemas.Schema | None,
    api_version: str,
    now: str,
    subresource: str = "",
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Returns (merged object, managedFields); raises a 409 naming conflicting managers."""
    scope = _scope(subresource)
    applied_paths = object_fields(applied, node, scope)
    key = (manager, "Apply", subresource)
    base = live or {}
    managed = ManagedFields(base.get("metadata", {}).get("managedFields"))
    conflicts: dict[str, list[Path]] = {}
    for other_key, paths in managed.sets.items():
        if other_key[0] == manager:
            continue
        for path in sorted(paths & applied_paths):
            if value_at(base, path) != value_at(applied, path):
                conflicts.setdefault(other_key[0], []).append(path)
    changed_keys = set()
    if conflicts and not force:
        raise _conflict_error(conflicts, api_version)
    if conflicts:
        for other_key in managed.sets:
            lost = set(conflicts.get(other_key[0], []))
            if lost & managed.sets[other_key]:
                managed.sets[other_key] -= lost
                changed_keys.add(other_key)
    merged = apply_merge(copy.deepcopy(base), applied, node)
    previous = managed.sets.get(key, set())
    others = (
        set().union(*(p for k, p in managed.sets.items() if k != key)) if managed.sets else set()
    )
    # Fields this manager applied before, no longer applies, and nobody else owns: removed.
    for path in sorted(previous - applied_paths - others, key=len, reverse=True):
        # An atomic value applied above this path replaces it wholesale; leave it alone.
        covered = any(
            path[: len(a)] == a and not isinstance(value_at(applied, a), dict)
            for a in applied_paths
            if len(a) < len(path)
        )
        if not covered:
            remove_path(merged, path)
    if previous != applied_paths:
        changed_keys.add(key)
    managed.sets[key] = applied_paths
    return merged, managed.render(api_version, now, changed_keys)


def _conflict_error(conflicts: dict[str, list[Path]], api_version: str) -> ApiError:
    total = sum(len(paths) for paths in conflicts.values())
    causes = []
    lines = []
    for manager, paths in conflicts.items():
        for path in paths:
            causes.append(
                {
                    "reason": "FieldManagerConflict",
                    "message": f'conflict with "{manager}" using {api_version}',
                    "field": render_field(path),
                }
            )
    if total == 1:
        only = causes[0]
        message = f"Apply failed with 1 conflict: {only['message']}: {only['field']}"
    else:
        for manager, paths in conflicts.items():
            lines.append(f'conflicts with "{manager}" using {api_version}:')
            lines += [f"- {render_field(p)}" for p in paths]
        message = f"Apply failed with {total} conflicts: " + "\n".join(lines)
    return ApiError(409, "Conflict", message, {"causes": causes})
