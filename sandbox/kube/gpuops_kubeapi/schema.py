"""Schemas: navigation (for patch merge keys and SSA list types), built-in validation with
kubernetes-validate's schema files, and CRD structural-schema pruning, defaulting and validation
with messages shaped like the apiextensions-apiserver's.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate

SCHEMA_VERSION_DIR = "v1.37.0-local"
Schema = dict[str, Any]


@functools.lru_cache(maxsize=1)
def builtin_definitions() -> dict[str, Schema]:
    """The OpenAPI definitions kubernetes-validate ships (loaded once, about 2 MB)."""
    base = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema" / SCHEMA_VERSION_DIR
    with open(base / "_definitions.json", encoding="utf-8") as handle:
        return json.load(handle)["$defs"]


@functools.lru_cache(maxsize=1)
def _gvk_index() -> dict[tuple[str, str, str], str]:
    index = {}
    for name, definition in builtin_definitions().items():
        for gvk in definition.get("x-kubernetes-group-version-kind") or []:
            index[(gvk["group"], gvk["version"], gvk["kind"])] = name
    return index


def builtin_root(group: str, version: str, kind: str) -> Schema | None:
    name = _gvk_index().get((group, version, kind))
    return {"$ref": f"#/$defs/{name}"} if name else None


def resolve(node: Schema | None) -> Schema | None:
    """Follow $ref (built-in definitions); CRD schemas have none."""
    while node is not None and "$ref" in node:
        node = builtin_definitions().get(node["$ref"].rsplit("/", 1)[-1])
    if (
        node is not None
        and "allOf" in node
        and "properties" not in node
        and len(node["allOf"]) == 1
    ):
        return resolve(node["allOf"][0])
    return node


def child(node: Schema | None, key: str) -> Schema | None:
    node = resolve(node)
    if node is None:
        return None
    properties = node.get("properties") or {}
    if key in properties:
        return properties[key]
    additional = node.get("additionalProperties")
    if isinstance(additional, dict):
        return additional
    return None


def items(node: Schema | None) -> Schema | None:
    node = resolve(node)
    if node is None:
        return None
    found = node.get("items")
    return found if isinstance(found, dict) else None


def list_keys(node: Schema | None) -> tuple[str, tuple[str, ...]]:
    """How server-side apply treats a list: ("map", keys), ("set", ()) or ("atomic", ())."""
    node = resolve(node) or {}
    list_type = node.get("x-kubernetes-list-type")
    if list_type == "map":
        return "map", tuple(node.get("x-kubernetes-list-map-keys") or ())
    if list_type == "set":
        return "set", ()
    merge_key = node.get("x-kubernetes-patch-merge-key")
    if list_type is None and merge_key:
        return "map", (merge_key,)
    return "atomic", ()


def patch_strategy(node: Schema | None) -> tuple[str, str | None]:
    """Strategic-merge-patch strategy of a field: ("merge", key) or ("replace", None)."""
    node = resolve(node) or {}
    strategies = (node.get("x-kubernetes-patch-strategy") or "").split(",")
    if "merge" in strategies:
        return "merge", node.get("x-kubernetes-patch-merge-key")
    return "replace", None


def is_atomic_map(node: Schema | None) -> bool:
    node = resolve(node) or {}
    return node.get("x-kubernetes-map-type") == "atomic"


# --------------------------------------------------------------------------- built-in validation


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def render_path(path: list[Any] | tuple[Any, ...]) -> str:
    rendered = ""
    for segment in path:
        if isinstance(segment, int):
            rendered += f"[{segment}]"
        else:
            rendered += ("." if rendered else "") + str(segment)
    return rendered


@functools.lru_cache(maxsize=None)
def _builtin_validator(definition: str) -> jsonschema.protocols.Validator:
    schema = {"$ref": f"#/$defs/{definition}", "$defs": builtin_definitions()}
    return jsonschema.validators.Draft202012Validator(schema)


class DecodeError(Exception):
    """A built-in object whose JSON cannot be decoded into its Go type (a 400 upstream)."""


def validate_builtin(
    group: str, version: str, kind: str, obj: dict[str, Any]
) -> list[dict[str, str]]:
    """Validate against the upstream OpenAPI schema; returns field causes (422) or raises
    DecodeError for type mismatches, which the real apiserver rejects while decoding."""
    definition = _gvk_index().get((group, version, kind))
    if definition is None:
        return []
    causes = []
    for error in _builtin_validator(definition).iter_errors(obj):
        field = render_path(list(error.absolute_path))
        if error.validator == "type":
            expected = error.validator_value
            expected = (
                [t for t in expected if t != "null"] if isinstance(expected, list) else [expected]
            )
            raise DecodeError(
                f'{kind} in version "{version}" cannot be handled as a {kind}: json: cannot '
                f"unmarshal {_json_type(error.instance)} into Go struct field {kind}.{field} of "
                f"type {expected[0] if expected else 'unknown'}"
            )
        if error.validator == "required":
            missing = re.findall(r"'([^']+)' is a required property", error.message)
            name = missing[0] if missing else "?"
            causes.append(
                {
                    "reason": "FieldValueRequired",
                    "message": "Required value",
                    "field": f"{field}.{name}" if field else name,
                }
            )
        elif error.validator == "enum":
            causes.append(_not_supported(field, error.instance, error.validator_value))
        else:
            causes.append(
                {
                    "reason": "FieldValueInvalid",
                    "message": f"Invalid value: {json.dumps(error.instance)}: {error.message}",
                    "field": field,
                }
            )
    return causes


def _not_supported(field: str, value: Any, allowed: list[Any]) -> dict[str, str]:
    supported = ", ".join(json.dumps(v) for v in allowed if v is not None)
    return {
        "reason": "FieldValueNotSupported",
        "message": f"Unsupported value: {json.dumps(value)}: supported values: {supported}",
        "field": field,
    }


# ------------------------------------------------------------------ CRD structural schemas

_ROOT_KEEP = ("apiVersion", "kind", "metadata")


def prune(
    obj: Any, node: Schema | None, path: tuple[Any, ...] = (), root: bool = True
) -> list[str]:
    """Drop fields the structural schema does not declare (unless x-kubernetes-preserve-unknown-
    fields); returns the dropped paths for `Warning` headers, in place like the apiserver."""
    dropped: list[str] = []
    if node is None:
        return dropped
    if isinstance(obj, dict):
        keep_meta = root or node.get("x-kubernetes-embedded-resource")
        if node.get("x-kubernetes-preserve-unknown-fields"):
            # Still prune inside declared properties (never the root's metadata).
            for key, sub in (node.get("properties") or {}).items():
                if keep_meta and key in _ROOT_KEEP:
                    continue
                if key in obj:
                    dropped += prune(obj[key], sub, path + (key,), False)
            return dropped
        properties = node.get("properties")
        additional = node.get("additionalProperties")
        embedded = node.get("x-kubernetes-embedded-resource")
        for key in list(obj):
            if (root or embedded) and key in _ROOT_KEEP:
                continue
            if properties is not None and key in properties:
                dropped += prune(obj[key], properties[key], path + (key,), False)
            elif isinstance(additional, dict):
                dropped += prune(obj[key], additional, path + (key,), False)
            elif additional is True:
                continue
            elif properties is not None or node.get("type") == "object":
                dropped.append(render_path(path + (key,)))
                del obj[key]
    elif isinstance(obj, list):
        item_schema = node.get("items")
        if isinstance(item_schema, dict):
            for index, item in enumerate(obj):
                dropped += prune(item, item_schema, path + (index,), False)
    return dropped


def apply_defaults(obj: Any, node: Schema | None) -> None:
    """Fill `default`s of missing properties, recursively, as CRD defaulting does."""
    if node is None:
        return
    if isinstance(obj, dict):
        for key, sub in (node.get("properties") or {}).items():
            if key not in obj and "default" in sub:
                obj[key] = copy.deepcopy(sub["default"])
            if key in obj:
                apply_defaults(obj[key], sub)
        additional = node.get("additionalProperties")
        if isinstance(additional, dict):
            for key in obj:
                apply_defaults(obj[key], additional)
    elif isinstance(obj, list) and isinstance(node.get("items"), dict):
        for item in obj:
            apply_defaults(item, node["items"])


_TYPE_CHECKS = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
}


def _invalid(field: str, value: Any, detail: str) -> dict[str, str]:
    shown = json.dumps(value) if not isinstance(value, (dict, list)) else f'"{_json_type(value)}"'
    return {
        "reason": "FieldValueInvalid",
        "message": f"Invalid value: {shown}: {field} in body {detail}",
        "field": field,
    }


def validate_structural(
    obj: Any, node: Schema | None, path: tuple[Any, ...] = ()
) -> list[dict[str, str]]:
    """Validate a custom resource against its CRD's openAPIV3Schema (no CEL rules)."""
    if node is None:
        return []
    field = render_path(path)
    causes: list[dict[str, str]] = []
    if obj is None:
        if node.get("nullable"):
            return []
        if node.get("type"):
            return [
                {
                    "reason": "FieldValueInvalid",
                    "message": f'Invalid value: "null": {field} in body must be of type '
                    f'{node["type"]}: "null"',
                    "field": field,
                }
            ]
        return []
    expected = node.get("type")
    if node.get("x-kubernetes-int-or-string"):
        if not (isinstance(obj, str) or _TYPE_CHECKS["integer"](obj)):
            return [_type_cause(field, obj, "integer or string")]
    elif expected and not _TYPE_CHECKS.get(expected, lambda v: True)(obj):
        return [_type_cause(field, obj, expected)]
    if "enum" in node and obj not in node["enum"]:
        causes.append(_not_supported(field, obj, node["enum"]))
    if isinstance(obj, str):
        if "maxLength" in node and len(obj) > node["maxLength"]:
            causes.append(
                {
                    "reason": "FieldValueTooLong",
                    "message": f"Too long: may not be more than {node['maxLength']} bytes",
                    "field": field,
                }
            )
        if "minLength" in node and len(obj) < node["minLength"]:
            causes.append(
                _invalid(field, obj, f"should be at least {node['minLength']} chars long")
            )
        if "pattern" in node and not re.search(node["pattern"], obj):
            causes.append(_invalid(field, obj, f"should match '{node['pattern']}'"))
    if isinstance(obj, (int, float)) and not isinstance(obj, bool):
        if "minimum" in node:
            exclusive = node.get("exclusiveMinimum")
            if obj < node["minimum"] or (exclusive and obj == node["minimum"]):
                relation = "greater than" if exclusive else "greater than or equal to"
                causes.append(_invalid(field, obj, f"should be {relation} {node['minimum']}"))
        if "maximum" in node:
            exclusive = node.get("exclusiveMaximum")
            if obj > node["maximum"] or (exclusive and obj == node["maximum"]):
                relation = "less than" if exclusive else "less than or equal to"
                causes.append(_invalid(field, obj, f"should be {relation} {node['maximum']}"))
    if isinstance(obj, list):
        if "maxItems" in node and len(obj) > node["maxItems"]:
            causes.append(
                {
                    "reason": "FieldValueTooMany",
                    "message": f"Too many: {len(obj)}: must have at most {node['maxItems']} items",
                    "field": field,
                }
            )
        if "minItems" in node and len(obj) < node["minItems"]:
            causes.append(_invalid(field, obj, f"should have at least {node['minItems']} items"))
        item_schema = node.get("items")
        if isinstance(item_schema, dict):
            for index, item in enumerate(obj):
                causes += validate_structural(item, item_schema, path + (index,))
    if isinstance(obj, dict):
        for required in node.get("required") or []:
            if required not in obj:
                causes.append(
                    {
                        "reason": "FieldValueRequired",
                        "message": "Required value",
                        "field": render_path(path + (required,)),
                    }
                )
        if "maxProperties" in node and len(obj) > node["maxProperties"]:
            causes.append(
                {
                    "reason": "FieldValueTooMany",
                    "message": f"Too many: {len(obj)}: must have at most "
                    f"{node['maxProperties']} items",
                    "field": field,
                }
            )
        if "minProperties" in node and len(obj) < node["minProperties"]:
            causes.append(
                _invalid(field, obj, f"should have at least {node['minProperties']} properties")
            )
        properties = node.get("properties") or {}
        additional = node.get("additionalProperties")
        for key, value in obj.items():
            if not path and key in _ROOT_KEEP:
                continue
            if key in properties:
                causes += validate_structural(value, properties[key], path + (key,))
            elif isinstance(additional, dict):
                causes += validate_structural(value, additional, path + (key,))
    for combinator in ("anyOf", "oneOf"):
        options = node.get(combinator)
        if options:
            passing = sum(1 for option in options if not validate_structural(obj, option, path))
            if passing == 0 or (combinator == "oneOf" and passing > 1):
                verb = (
                    "must validate one and only one schema (oneOf)"
                    if combinator == "oneOf"
                    else "must validate at least one schema (anyOf)"
                )
                causes.append(
                    {
                        "reason": "FieldValueInvalid",
                        "message": f'Invalid value: "object": {field} {verb}',
                        "field": field,
                    }
                )
    for option in node.get("allOf") or []:
        causes += validate_structural(obj, option, path)
    return causes


def _type_cause(field: str, value: Any, expected: str) -> dict[str, str]:
    actual = _json_type(value)
    return {
        "reason": "FieldValueInvalid",
        "message": f'Invalid value: "{actual}": {field} in body must be of type '
        f'{expected}: "{actual}"',
        "field": field,
    }


# ------------------------------------------------------------------ built-in serialization


def _is_map(node: Schema | None) -> bool:
    """A Go map (additionalProperties, no properties): omitempty drops it when empty."""
    node = resolve(node) or {}
    return isinstance(node.get("additionalProperties"), dict) and not node.get("properties")


def _is_array(node: Schema | None) -> bool:
    node = resolve(node) or {}
    kinds = node.get("type")
    return kinds == "array" or (isinstance(kinds, list) and "array" in kinds) or "items" in node


def normalize_builtin(obj: Any, node: Schema | None, path: tuple[Any, ...] = ()) -> list[str]:
    """What decoding into the Go type and encoding it again does to a built-in object, in
    place: fields the type does not have are dropped (returned, for `unknown field` warnings
    or a Strict 400), JSON nulls are dropped, and optional empty lists and maps disappear
    (`omitempty`): removing a Node's last taint leaves no `spec.taints: []`."""
    node = resolve(node)
    if node is None:
        return []
    dropped: list[str] = []
    if isinstance(obj, dict):
        properties = node.get("properties")
        additional = node.get("additionalProperties")
        required = set(node.get("required") or ())
        for key in list(obj):
            value = obj[key]
            if properties is not None and key in properties:
                sub = properties[key]
            elif isinstance(additional, dict):
                sub = additional
            elif properties is not None and not node.get("x-kubernetes-preserve-unknown-fields"):
                if path or key not in ("apiVersion", "kind"):
                    dropped.append(render_path(path + (key,)))
                    del obj[key]
                continue
            else:
                continue  # free-form (RawExtension, JSON): kept as sent
            if value is None:
                del obj[key]
                continue
            if isinstance(value, (dict, list)):
                dropped += normalize_builtin(value, sub, path + (key,))
                if (
                    not value
                    and key not in required
                    and (
                        (isinstance(value, list) and _is_array(sub))
                        or (isinstance(value, dict) and _is_map(sub))
                    )
                ):
                    del obj[key]
    elif isinstance(obj, list):
        item_node = node.get("items")
        if isinstance(item_node, dict):
            for index, item in enumerate(obj):
                if isinstance(item, (dict, list)):
                    dropped += normalize_builtin(item, item_node, path + (index,))
    return dropped
