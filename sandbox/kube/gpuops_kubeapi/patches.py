"""Patch formats: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and strategic merge patch
driven by the x-kubernetes-patch-strategy / x-kubernetes-patch-merge-key of the upstream
OpenAPI schema (the same source kubectl's and the apiserver's patch metadata come from).
"""

from __future__ import annotations

import copy
from typing import Any

from . import schema as schemas
from .errors import ApiError, bad_request


def json_merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 as the apiserver applies it (evanphx/json-patch MergePatch): a value that lands
    where there was nothing (or no object) to merge into has its nulls pruned all the way down,
    inside lists too, so `requests: {memory: null}` in a replaced container list is dropped,
    not stored."""
    if not isinstance(patch, dict):
        if isinstance(target, dict):
            return copy.deepcopy(patch)
        return prune_nulls(copy.deepcopy(patch))
    if not isinstance(target, dict):
        return prune_nulls(copy.deepcopy(patch))
    result = dict(target)
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif result.get(key) is None:
            result[key] = prune_nulls(copy.deepcopy(value))
        else:
            result[key] = json_merge_patch(result[key], value)
    return result


def prune_nulls(value: Any) -> Any:
    """Drop null members of objects, recursively (list elements stay, their insides pruned)."""
    if isinstance(value, dict):
        for key in [k for k, v in value.items() if v is None]:
            del value[key]
        for item in value.values():
            prune_nulls(item)
    elif isinstance(value, list):
        for item in value:
            prune_nulls(item)
    return value


# ---------------------------------------------------------------------------- JSON patch


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise bad_request(f"invalid JSON pointer {path!r}")
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _container(doc: Any, parts: list[str]) -> Any:
    for part in parts:
        doc = doc[int(part)] if isinstance(doc, list) else doc[part]
    return doc


def json_patch(doc: Any, operations: list[dict[str, Any]]) -> Any:
    doc = copy.deepcopy(doc)
    try:
        for operation in operations:
            op, parts = operation["op"], _pointer(operation["path"])
            if op == "test":
                if _container(doc, parts) != operation["value"]:
                    raise ApiError(
                        422,
                        "Invalid",
                        "the server rejected our request due to an error in our request",
                    )
                continue
            if op in ("move", "copy"):
                value = copy.deepcopy(_container(doc, _pointer(operation["from"])))
                if op == "move":
                    doc = _remove(doc, _pointer(operation["from"]))
                doc = _add(doc, parts, value)
            elif op == "add":
                doc = _add(doc, parts, copy.deepcopy(operation["value"]))
            elif op == "remove":
                doc = _remove(doc, parts)
            elif op == "replace":
                doc = _remove(doc, parts)
                doc = _add(doc, parts, copy.deepcopy(operation["value"]))
            else:
                raise bad_request(f"Unexpected kind: {op}")
    except (KeyError, IndexError, ValueError, TypeError) as error:
        raise ApiError(
            422,
            "Invalid",
            f"the server rejected our request due to an error in our request: {error}",
        ) from error
    return doc


def _add(doc: Any, parts: list[str], value: Any) -> Any:
    if not parts:
        return value
    parent = _container(doc, parts[:-1])
    last = parts[-1]
    if isinstance(parent, list):
        parent.insert(len(parent) if last == "-" else int(last), value)
    else:
        parent[last] = value
    return doc


def _remove(doc: Any, parts: list[str]) -> Any:
    parent = _container(doc, parts[:-1])
    last = parts[-1]
    if isinstance(parent, list):
        del parent[int(last)]
    else:
        del parent[last]
    return doc


# ----------------------------------------------------------------- strategic merge patch

_DIRECTIVE = "$patch"
_RETAIN_KEYS = "$retainKeys"
_ELEMENT_ORDER = "$setElementOrder/"
_DELETE_PRIMITIVES = "$deleteFromPrimitiveList/"


def strategic_merge_patch(original: Any, patch: Any, node: schemas.Schema | None) -> Any:
    """Apply a strategic merge patch; `node` is the schema of `original` (None: plain merge)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if not isinstance(original, dict):
        original = {}
    directive = patch.get(_DIRECTIVE)
    if directive == "delete":
        return None
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != _DIRECTIVE}
    result = dict(original)
    retain = patch.get(_RETAIN_KEYS)
    for key, value in patch.items():
        if key in (_DIRECTIVE, _RETAIN_KEYS) or key.startswith(_ELEMENT_ORDER):
            continue
        if key.startswith(_DELETE_PRIMITIVES):
            field = key[len(_DELETE_PRIMITIVES) :]
            result[field] = [v for v in result.get(field) or [] if v not in value]
            continue
        sub_node = schemas.child(node, key)
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list):
            result[key] = _merge_list(result.get(key), value, sub_node)
        elif isinstance(value, dict) and not _replaces(sub_node):
            merged = strategic_merge_patch(result.get(key), value, sub_node)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        else:
            result[key] = copy.deepcopy(value)
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _replaces(node: schemas.Schema | None) -> bool:
    """Maps merge in strategic merge patch unless their patch strategy says replace (the
    x-kubernetes-map-type used by server-side apply plays no part here)."""
    resolved = schemas.resolve(node) or {}
    return "replace" in (resolved.get("x-kubernetes-patch-strategy") or "").split(",")


def _merge_list(original: Any, patch: list[Any], node: schemas.Schema | None) -> list[Any]:
    strategy, merge_key = schemas.patch_strategy(node)
    original = list(original) if isinstance(original, list) else []
    if any(isinstance(item, dict) and item.get(_DIRECTIVE) == "replace" for item in patch):
        return [copy.deepcopy(i) for i in patch if not (isinstance(i, dict) and _DIRECTIVE in i)]
    if strategy != "merge":
        return copy.deepcopy(patch)
    if merge_key is None:
        # Merge-strategy primitive list (e.g. metadata.finalizers): a union, order kept.
        merged = list(original)
        for item in patch:
            if item not in merged:
                merged.append(copy.deepcopy(item))
        return merged
    item_node = schemas.items(node)
    merged = [copy.deepcopy(item) for item in original]
    for item in patch:
        if not isinstance(item, dict):
            continue
        key_value = item.get(merge_key)
        position = next(
            (
                i
                for i, existing in enumerate(merged)
                if isinstance(existing, dict) and existing.get(merge_key) == key_value
            ),
            None,
        )
        if item.get(_DIRECTIVE) == "delete":
            if position is not None:
                del merged[position]
            continue
        if position is None:
            merged.append(strategic_merge_patch({}, item, item_node))
        else:
            merged[position] = strategic_merge_patch(merged[position], item, item_node)
    return merged
