"""/openapi/v3 (and /openapi/v2 as JSON), built from the same upstream definitions that validate
built-ins (kubernetes-validate) plus each served CRD version's schema.

What clients use it for: kubectl's and helm's validator asks /openapi/v3 whether the PATCH
operation of a kind takes the `fieldValidation` query parameter (queryParamVerifierV3); when it
does, they leave validation to the server (`fieldValidation=Strict`) instead of downloading the
protobuf /openapi/v2 document. `kubectl explain` reads the schemas under components.
"""

from __future__ import annotations

import hashlib
import json
import threading
from typing import Any

from . import schema as schemas
from .discovery import SERVER_VERSION
from .kinds import ResourceType

_REF_PREFIX = "#/$defs/"
_WRITE_PARAMETERS = ("dryRun", "fieldManager", "fieldValidation")
_LIST_PARAMETERS = (
    "allowWatchBookmarks",
    "continue",
    "fieldSelector",
    "labelSelector",
    "limit",
    "resourceVersion",
    "resourceVersionMatch",
    "sendInitialEvents",
    "timeoutSeconds",
    "watch",
)


def gv_path(group: str, version: str) -> str:
    return f"api/{version}" if not group else f"apis/{group}/{version}"


def _convert(node: Any) -> Any:
    """JSON-schema definitions -> OpenAPI 3 schema objects: $ref to components, `type` lists
    with "null" as `nullable`."""
    if isinstance(node, list):
        return [_convert(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted: dict[str, Any] = {}
    for key, value in node.items():
        if key == "$ref" and isinstance(value, str):
            converted[key] = "#/components/schemas/" + value.removeprefix(_REF_PREFIX)
        elif key == "type" and isinstance(value, list):
            kinds = [kind for kind in value if kind != "null"]
            if kinds:
                converted["type"] = kinds[0]
            if "null" in value:
                converted["nullable"] = True
        else:
            converted[key] = _convert(value)
    return converted


def _referenced(names: list[str]) -> dict[str, Any]:
    """The named built-in definitions and everything they reference."""
    definitions = schemas.builtin_definitions()
    found: dict[str, Any] = {}
    pending = list(names)
    while pending:
        name = pending.pop()
        if name in found or name not in definitions:
            continue
        found[name] = definitions[name]
        text = json.dumps(definitions[name])
        start = 0
        while True:
            start = text.find(_REF_PREFIX, start)
            if start < 0:
                break
            end = text.find('"', start)
            pending.append(text[start + len(_REF_PREFIX) : end])
            start = end
    return found


def _crd_schema_name(resource_type: ResourceType) -> str:
    group = ".".join(reversed(resource_type.group.split(".")))
    return f"{group}.{resource_type.version}.{resource_type.kind}"


def _parameter(name: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": True}}


def _operation(
    resource_type: ResourceType, action: str, schema_ref: str, parameters: tuple[str, ...]
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": f"{action}{resource_type.kind}",
        "parameters": [_parameter(name) for name in parameters],
        "responses": {
            "200": {
                "description": "OK",
                "content": {"application/json": {"schema": {"$ref": schema_ref}}},
            },
            "401": {"description": "Unauthorized"},
        },
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {
            "group": resource_type.group,
            "version": resource_type.version,
            "kind": resource_type.kind,
        },
    }
    if action in ("put", "post", "patch"):
        content_types = (
            [
                "application/apply-patch+yaml",
                "application/json-patch+json",
                "application/merge-patch+json",
                "application/strategic-merge-patch+json",
            ]
            if action == "patch"
            else ["application/json"]
        )
        operation["requestBody"] = {
            "content": {c: {"schema": {"$ref": schema_ref}} for c in content_types},
            "required": True,
        }
    return operation


class OpenApi:
    """Documents per group/version, rebuilt when the served kinds change (CRDs)."""

    def __init__(self, cluster) -> None:
        self.cluster = cluster
        self._lock = threading.Lock()
        self._cache: dict[tuple[int, str, str], bytes] = {}

    def _types(self, group: str, version: str) -> list[ResourceType]:
        return sorted(
            (
                t
                for (g, v, _unused), t in list(self.cluster.types.items())
                if (g, v) == (group, version)
            ),
            key=lambda t: t.plural,
        )

    def group_version_document(self, group: str, version: str) -> bytes | None:
        key = (self.cluster.types_epoch, group, version)
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None:
            return cached
        types = self._types(group, version)
        if not types:
            return None
        builtin_names = []
        components: dict[str, Any] = {}
        paths: dict[str, Any] = {}
        for resource_type in types:
            if resource_type.served_by_crd is None:
                root = schemas.builtin_root(
                    resource_type.group, resource_type.version, resource_type.kind
                )
                if root is None:
                    continue
                name = root["$ref"].removeprefix(_REF_PREFIX)
                builtin_names.append(name)
            else:
                name = _crd_schema_name(resource_type)
                crd_schema = dict(resource_type.openapi_schema or {"type": "object"})
                crd_schema["x-kubernetes-group-version-kind"] = [
                    {
                        "group": resource_type.group,
                        "version": resource_type.version,
                        "kind": resource_type.kind,
                    }
                ]
                components[name] = crd_schema
            ref = f"#/components/schemas/{name}"
            base = "/" + gv_path(group, version)
            if resource_type.namespaced:
                base += "/namespaces/{namespace}"
            collection = f"{base}/{resource_type.plural}"
            item = collection + "/{name}"
            verbs = set(resource_type.verbs)
            item_ops: dict[str, Any] = {}
            if "get" in verbs:
                item_ops["get"] = _operation(resource_type, "get", ref, ())
            if "update" in verbs:
                item_ops["put"] = _operation(resource_type, "put", ref, _WRITE_PARAMETERS)
            if "patch" in verbs:
                item_ops["patch"] = _operation(
                    resource_type, "patch", ref, _WRITE_PARAMETERS + ("force",)
                )
            if "delete" in verbs:
                item_ops["delete"] = _operation(
                    resource_type,
                    "delete",
                    ref,
                    ("dryRun", "gracePeriodSeconds", "propagationPolicy"),
                )
            if item_ops:
                paths[item] = item_ops
            collection_ops: dict[str, Any] = {}
            if "list" in verbs:
                collection_ops["get"] = _operation(resource_type, "list", ref, _LIST_PARAMETERS)
            if "create" in verbs:
                collection_ops["post"] = _operation(resource_type, "post", ref, _WRITE_PARAMETERS)
            if collection_ops:
                paths[collection] = collection_ops
            if resource_type.status_subresource:
                paths[item + "/status"] = {
                    "get": _operation(resource_type, "get", ref, ()),
                    "patch": _operation(
                        resource_type, "patch", ref, _WRITE_PARAMETERS + ("force",)
                    ),
                    "put": _operation(resource_type, "put", ref, _WRITE_PARAMETERS),
                }
        for name, definition in _referenced(builtin_names).items():
            components[name] = _convert(definition)
        document = {
            "openapi": "3.0.0",
            "info": {"title": "Kubernetes", "version": SERVER_VERSION["gitVersion"]},
            "paths": paths,
            "components": {"schemas": components},
        }
        data = json.dumps(document, separators=(",", ":")).encode()
        with self._lock:
            if len(self._cache) > 256:
                self._cache.clear()
            self._cache[key] = data
        return data

    def root(self) -> dict[str, Any]:
        """/openapi/v3: each group/version's relative URL, with a hash of its document."""
        paths = {}
        for group, versions in sorted(self.cluster.served_group_versions().items()):
            for version in versions:
                document = self.group_version_document(group, version)
                if document is None:
                    continue
                digest = hashlib.sha512(document).hexdigest()[:128].upper()
                path = gv_path(group, version)
                paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={digest}"}
        return {"paths": paths}

    def v2(self) -> bytes:
        """Swagger 2.0 JSON: every definition, paths left out (kubectl's JSON consumers read
        definitions only)."""
        definitions = {}
        for group, versions in self.cluster.served_group_versions().items():
            for version in versions:
                document = self.group_version_document(group, version)
                if document is None:
                    continue
                for name, value in json.loads(document)["components"]["schemas"].items():
                    definitions[name] = value
        text = json.dumps(
            {
                "swagger": "2.0",
                "info": {"title": "Kubernetes", "version": SERVER_VERSION["gitVersion"]},
                "paths": {},
                "definitions": definitions,
            },
            separators=(",", ":"),
        )
        return text.replace('"#/components/schemas/', '"#/definitions/').encode()
