"""The API semantics, free of HTTP: resource registry (built-ins and CRD-served types),
create/get/list/update/patch/apply/delete, namespaces, finalizers, CRDs and evictions."""

from __future__ import annotations

import base64
import calendar
import copy
import datetime
import json
import math
import random
import re
import uuid
from typing import Any

import yaml

from . import defaults, fieldsets, kinds, patches, pod_security, rbac
from . import schema as schemas
from .errors import (
    ApiError,
    already_exists,
    bad_request,
    conflict,
    invalid,
    not_found,
    unsupported_media_type,
)
from .kinds import ResourceType
from .selectors import (
    field_value,
    fields_match,
    label_errors,
    label_selector_object_matcher,
    labels_match,
    parse_field_selector,
    parse_label_selector,
)
from .store import Record, Store, decode_json, encode

_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_LABEL_HELP = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
    "must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex "
    "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
_DNS1123_SUBDOMAIN_HELP = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
    "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
# names.SimpleNameGenerator's alphabet (k8s.io/apimachinery/pkg/util/rand): no vowels.
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
CUSTOM_RESOURCE_PATCH_TYPES = [JSON_PATCH, MERGE_PATCH, APPLY_PATCH]
# core.MaxSecretSize: what a ConfigMap's or Secret's data may total.
MAX_DATA_BYTES = 1024 * 1024
DEFAULT_GRACE_SECONDS = 30


def now(offset: float = 0) -> str:
    stamp = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=offset)
    return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: Any) -> float | None:
    """Epoch seconds of an RFC 3339 timestamp as the API writes them (UTC, "Z"), None if
    unreadable. Controllers read many of these per pass: no strptime."""
    if not isinstance(value, str) or len(value) < 19 or value[4] != "-" or value[10] != "T":
        return None
    try:
        fields = (value[0:4], value[5:7], value[8:10], value[11:13], value[14:16], value[17:19])
        return float(calendar.timegm(tuple(int(f) for f in fields)))
    except ValueError:
        return None


def _without(obj: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in keys}


def _spec_part(obj: dict[str, Any]) -> dict[str, Any]:
    """What a generation bump looks at: everything but metadata and status."""
    return _without(obj, "metadata", "status", "apiVersion", "kind")


class WriteOptions:
    def __init__(
        self,
        dry_run: bool = False,
        field_manager: str = "",
        force: bool = False,
        propagation: str = "Background",
        identity: Any = None,
        grace_period: int | None = None,
    ):
        self.dry_run = dry_run
        self.field_manager = field_manager
        self.force = force
        # Deletes: what happens to dependents (Background/Foreground: deleted; Orphan: kept).
        self.propagation = propagation
        self.identity = identity  # auth.Identity of the caller (None: the stand-in itself)
        # Deletes: DeleteOptions.gracePeriodSeconds (None: the object's own default).
        self.grace_period = grace_period
        self.preconditions: dict[str, Any] | None = None


class Cluster:
    def __init__(self, store: Store | None = None) -> None:
        self.store = store or Store()
        # Set when the simulated kubelets run: Pods bound to a node then terminate gracefully
        # (deletionTimestamp, the kubelet removes them); without kubelets they go at once.
        self.kubelets = False
        # Bumped whenever the served kinds change (CRDs), for caches such as /openapi.
        self.types_epoch = 0
        # Indexed because k8s_drain and kubelets ask for the pods of one node.
        self.store.indexed_fields.setdefault(("", "pods"), ("spec.nodeName",))
        self.lock = self.store.lock
        self.types: dict[tuple[str, str, str], ResourceType] = {}  # (group, version, plural)
        for resource_type in kinds.BUILTIN_TYPES:
            self._register(resource_type)
        self.crd_types: dict[str, list[ResourceType]] = {}
        # Pod Security Admission's audit annotations, as the audit log would record them.
        self.audit_events: list[dict[str, Any]] = []

    # ------------------------------------------------------------------ registry

    def _register(self, resource_type: ResourceType) -> None:
        self.types_epoch += 1
        self.types[(resource_type.group, resource_type.version, resource_type.plural)] = (
            resource_type
        )

    def resource_type(self, group: str, version: str, plural: str) -> ResourceType:
        found = self.types.get((group, version, plural))
        if found is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource", {})
        return found

    def type_for_kind(self, api_version: str, kind: str) -> ResourceType | None:
        group, _unused, version = api_version.rpartition("/")
        for resource_type in self.types.values():
            if (resource_type.group, resource_type.version, resource_type.kind) == (
                group,
                version,
                kind,
            ):
                return resource_type
        return None

    def served_group_versions(self) -> dict[str, list[str]]:
        groups: dict[str, list[str]] = {}
        for group, version, _unused in self.types:
            versions = groups.setdefault(group, [])
            if version not in versions:
                versions.append(version)
        return groups

    def schema_node(self, resource_type: ResourceType) -> schemas.Schema | None:
        if resource_type.served_by_crd is not None:
            return resource_type.openapi_schema
        return schemas.builtin_root(resource_type.group, resource_type.version, resource_type.kind)

    # ------------------------------------------------------------------ records

    def make_record(self, resource_type: ResourceType, obj: dict[str, Any], rv: int) -> Record:
        metadata = obj.get("metadata") or {}
        fields = {}
        for label in resource_type.field_labels:
            path = resource_type.selectable_fields.get(label)
            value = field_value(obj, label, path)
            if value:
                fields[label] = value
        if resource_type.kind == "Pod":
            # Readiness drives PodDisruptionBudget arithmetic; not a selectable field.
            for condition in (obj.get("status") or {}).get("conditions") or []:
                if condition.get("type") == "Ready":
                    fields["ready"] = str(condition.get("status"))
        return Record(
            encode(obj),
            dict(metadata.get("labels") or {}),
            fields,
            rv,
            (metadata.get("namespace") or "", metadata.get("name", "")),
            tuple(ref["uid"] for ref in metadata.get("ownerReferences") or () if ref.get("uid")),
            next(
                (
                    (ref.get("kind", ""), ref.get("name", ""), ref.get("uid", ""))
                    for ref in metadata.get("ownerReferences") or ()
                    if ref.get("controller")
                ),
                None,
            ),
        )

    def _read_view(self, resource_type: ResourceType, record: Record) -> bytes:
        """Stored JSON as served at the asked version (CRD conversion strategy None)."""
        if resource_type.served_by_crd is None:
            return record.raw
        obj = record.decode()
        if obj.get("apiVersion") == resource_type.group_version:
            return record.raw
        obj["apiVersion"] = resource_type.group_version
        return encode(obj)

    def _namespace_of(self, resource_type: ResourceType, namespace: str | None) -> str:
        return (namespace or "") if resource_type.namespaced else ""

    # ------------------------------------------------------------------ reads

    def get(self, resource_type: ResourceType, namespace: str | None, name: str) -> bytes:
        record = self.store.get(
            resource_type.key, (self._namespace_of(resource_type, namespace), name)
        )
        if record is None:
            raise not_found(resource_type.group, resource_type.plural, name)
        return self._read_view(resource_type, record)

    def get_object(
        self, resource_type: ResourceType, namespace: str | None, name: str
    ) -> dict[str, Any]:
        return json.loads(self.get(resource_type, namespace, name))

    def selectors(
        self, resource_type: ResourceType, label_selector: str | None, field_selector: str | None
    ):
        label_requirements = parse_label_selector(label_selector)
        field_requirements = parse_field_selector(field_selector, resource_type.field_labels)
        return label_requirements, field_requirements

    def list(
        self,
        resource_type: ResourceType,
        namespace: str | None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int = 0,
        continue_token: str | None = None,
    ) -> bytes:
        label_requirements, field_requirements = self.selectors(
            resource_type, label_selector, field_selector
        )
        scope = namespace if resource_type.namespaced and namespace else None
        start_after = None
        with self.lock:
            list_rv = self.store.resource_version
        if continue_token:
            start_after, list_rv = _decode_continue(continue_token)
        items: list[bytes] = []
        last_key = None
        more = False
        records = None
        for requirement in field_requirements:
            if not requirement.negate:
                records = self.store.scan_indexed(
                    resource_type.key, requirement.field, requirement.value, scope, start_after
                )
                if records is not None:
                    break
        if records is None:
            records = self.store.scan(resource_type.key, scope, start_after)
        for record in records:
            if label_requirements and not labels_match(label_requirements, record.labels):
                continue
            if field_requirements and not fields_match(field_requirements, record.fields):
                continue
            if limit and len(items) >= limit:
                more = True
                break
            items.append(self._read_view(resource_type, record))
            last_key = record.key
        metadata: dict[str, Any] = {"resourceVersion": str(list_rv)}
        if more and last_key is not None:
            metadata["continue"] = _encode_continue(last_key, list_rv)
            if not label_requirements and not field_requirements:
                metadata["remainingItemCount"] = self.store.remaining_after(
                    resource_type.key, scope, last_key
                )
        head = json.dumps(
            {
                "kind": f"{resource_type.kind}List",
                "apiVersion": resource_type.group_version,
                "metadata": metadata,
            },
            separators=(",", ":"),
        )
        return head[:-1].encode() + b',"items":[' + b",".join(items) + b"]}"

    def namespace_phase(self, name: str) -> str | None:
        record = self.store.get(("", "namespaces"), ("", name))
        if record is None:
            return None
        return record.fields.get("status.phase", "Active")

    # ------------------------------------------------------------------ create

    def create(
        self,
        resource_type: ResourceType,
        namespace: str | None,
        body: Any,
        options: WriteOptions,
    ) -> tuple[dict[str, Any], list[str]]:
        obj = self._check_body(resource_type, body)
        metadata = obj.setdefault("metadata", {})
        if resource_type.namespaced:
            if metadata.get("namespace") and namespace and metadata["namespace"] != namespace:
                raise bad_request(
                    "the namespace of the provided object does not match the namespace sent on "
                    "the request"
                )
            metadata["namespace"] = namespace or metadata.get("namespace") or "default"
        else:
            metadata.pop("namespace", None)
        if not metadata.get("name") and metadata.get("generateName"):
            suffix = "".join(random.choices(_NAME_ALPHABET, k=5))
            metadata["name"] = metadata["generateName"] + suffix
        with self.lock:
            return self._create_locked(resource_type, obj, options)

    def _create_locked(self, resource_type, obj, options, applied_fields=None):
        metadata = obj["metadata"]
        name = metadata.get("name", "")
        self._validate_name(resource_type, obj)
        if resource_type.namespaced:
            phase = self.namespace_phase(metadata["namespace"])
            if phase is None:
                raise not_found("", "namespaces", metadata["namespace"])
            if phase == "Terminating":
                raise ApiError(
                    403,
                    "Forbidden",
                    f'{resource_type.plural} "{name}" is forbidden: unable to create new '
                    f"content in namespace {metadata['namespace']} because it is being "
                    "terminated",
                    {"name": name, "kind": resource_type.plural},
                )
        key = (metadata.get("namespace", ""), name)
        if self.store.get(resource_type.key, key) is not None:
            raise already_exists(resource_type.group, resource_type.plural, name)
        if resource_type.status_subresource and resource_type.status_on_create != "keep":
            if resource_type.status_on_create is None:
                obj.pop("status", None)
            else:
                obj["status"] = copy.deepcopy(resource_type.status_on_create)
        for system_field in (
            "resourceVersion",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "generation",
            "managedFields",
            "selfLink",
            "deletionGracePeriodSeconds",
        ):
            metadata.pop(system_field, None)
        metadata["uid"] = str(uuid.uuid4())
        self._prepare_special(resource_type, obj, None)
        self._default_structs(resource_type, obj)
        defaults.apply_defaults(resource_type.kind, obj)
        admission_warnings = []
        if resource_type.kind == "Pod" and resource_type.served_by_crd is None:
            defaults.admit_pod(obj)
            admission_warnings = self._admit_pod_security(obj)
        elif (
            resource_type.kind in pod_security.TEMPLATE_PATHS
            and resource_type.served_by_crd is None
        ):
            admission_warnings = self._admit_pod_security(obj, workload=True)
        warnings = self._validate(resource_type, obj) + admission_warnings
        metadata["creationTimestamp"] = now()
        if resource_type.tracks_generation:
            metadata["generation"] = 1
        if applied_fields:
            metadata["managedFields"] = applied_fields
        elif options.field_manager:
            managed = fieldsets.record_update(
                None,
                obj,
                options.field_manager,
                self.schema_node(resource_type),
                resource_type.group_version,
                metadata["creationTimestamp"],
            )
            if managed:
                metadata["managedFields"] = managed
        obj = _ordered(obj)
        if options.dry_run:
            metadata_out = obj["metadata"]
            metadata_out["resourceVersion"] = str(self.store.resource_version)
            return obj, warnings
        rv = self.store.next_rv()
        obj["metadata"]["resourceVersion"] = str(rv)
        self.store.put(resource_type.key, self.make_record(resource_type, obj, rv), "ADDED")
        self._after_write(resource_type, None, obj)
        return obj, warnings

    def _admit_pod_security(self, obj: dict[str, Any], workload: bool = False) -> list[str]:
        """Pod Security Admission (pod_security.py): raises 403 on enforce (pods only), returns
        warnings; a workload's pod template gets warnings and audit annotations only."""
        metadata = obj["metadata"]
        record = self.store.get(("", "namespaces"), ("", metadata["namespace"]))
        labels = record.labels if record is not None else {}
        if workload:
            template = pod_security.pod_template(obj["kind"], obj) or {}
            decision = pod_security.admit(template, labels, enforce=False)
        else:
            decision = pod_security.admit(obj, labels)
        if set(decision.audit_annotations) - {pod_security.PREFIX + "enforce-policy"}:
            self.audit_events = self.audit_events[-999:] + [
                {
                    "namespace": metadata["namespace"],
                    "name": metadata.get("name", ""),
                    "annotations": decision.audit_annotations,
                }
            ]
        if decision.forbidden:
            raise ApiError(
                403,
                "Forbidden",
                decision.forbidden,
                {"name": metadata.get("name", ""), "kind": "pods"},
            )
        return decision.warnings

    def _default_structs(self, resource_type: ResourceType, obj: dict[str, Any]) -> None:
        """Go structs serialize even when empty: built-ins always carry spec (and status when
        they have a status subresource), e.g. a Node created without a spec reads `spec: {}`."""
        if resource_type.served_by_crd is not None:
            return
        root = schemas.resolve(self.schema_node(resource_type)) or {}
        properties = root.get("properties") or {}
        if "spec" in properties:
            obj.setdefault("spec", {})
        if "status" in properties and resource_type.status_subresource:
            obj.setdefault("status", {})

    def _check_body(self, resource_type: ResourceType, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise bad_request(
                f'{resource_type.kind} in version "{resource_type.version}" cannot be handled as a '
                f"{resource_type.kind}: the object provided is not a JSON object"
            )
        obj = copy.deepcopy(body)
        api_version = obj.get("apiVersion") or resource_type.group_version
        kind = obj.get("kind") or resource_type.kind
        if api_version != resource_type.group_version or kind != resource_type.kind:
            raise bad_request(
                f"the API version in the data ({api_version}) does not match the expected API "
                f"version ({resource_type.group_version})"
                if api_version != resource_type.group_version
                else f"the kind in the data ({kind}) does not match the expected kind "
                f"({resource_type.kind})"
            )
        obj["apiVersion"], obj["kind"] = api_version, kind
        if not isinstance(obj.get("metadata", {}), dict):
            raise bad_request("metadata must be an object")
        return obj

    def _validate_name(self, resource_type: ResourceType, obj: dict[str, Any]) -> None:
        name = obj["metadata"].get("name")
        if not name:
            raise invalid(
                resource_type.kind,
                resource_type.group,
                "",
                [
                    {
                        "reason": "FieldValueRequired",
                        "message": "Required value: name or generateName is required",
                        "field": "metadata.name",
                    }
                ],
            )
        if resource_type.kind == "Namespace":
            if len(name) > 63 or not _DNS1123_LABEL.match(name):
                raise invalid(
                    "Namespace",
                    "",
                    name,
                    [
                        {
                            "reason": "FieldValueInvalid",
                            "message": f'Invalid value: "{name}": ' + _DNS1123_LABEL_HELP,
                            "field": "metadata.name",
                        }
                    ],
                )
        elif resource_type.group == rbac.RBAC_GROUP and not resource_type.served_by_crd:
            # ValidateRBACName: any path segment name (system:discovery is valid).
            problem = None
            if name in (".", ".."):
                problem = f"may not be '{name}'"
            for character in ("/", "%"):
                if character in name:
                    problem = f"may not contain '{character}'"
            if problem:
                raise invalid(
                    resource_type.kind,
                    resource_type.group,
                    name,
                    [
                        {
                            "reason": "FieldValueInvalid",
                            "message": f'Invalid value: "{name}": {problem}',
                            "field": "metadata.name",
                        }
                    ],
                )
        elif len(name) > 253 or not _DNS1123_SUBDOMAIN.match(name):
            raise invalid(
                resource_type.kind,
                resource_type.group,
                name,
                [
                    {
                        "reason": "FieldValueInvalid",
                        "message": f'Invalid value: "{name}": ' + _DNS1123_SUBDOMAIN_HELP,
                        "field": "metadata.name",
                    }
                ],
            )

    def _validate(self, resource_type: ResourceType, obj: dict[str, Any]) -> list[str]:
        """Prune/default/validate custom resources; schema-validate built-ins."""
        name = obj["metadata"].get("name", "")
        label_causes = label_errors(obj["metadata"].get("labels"))
        if label_causes:
            raise invalid(resource_type.kind, resource_type.group, name, label_causes)
        if resource_type.served_by_crd is not None:
            node = resource_type.openapi_schema
            dropped = schemas.prune(obj, node)
            schemas.apply_defaults(obj, node)
            causes = schemas.validate_structural(obj, node)
            if causes:
                raise invalid(resource_type.kind, resource_type.group, name, causes)
            return [f'unknown field "{path}"' for path in dropped]
        dropped = schemas.normalize_builtin(obj, self.schema_node(resource_type))
        try:
            causes = schemas.validate_builtin(
                resource_type.group, resource_type.version, resource_type.kind, obj
            )
        except schemas.DecodeError as error:
            raise bad_request(str(error)) from error
        causes += _kind_rules(resource_type.kind, obj)
        if causes:
            raise invalid(resource_type.kind, resource_type.group, name, causes)
        if resource_type.kind == "CustomResourceDefinition":
            self._validate_crd(obj)
        return [f'unknown field "{path}"' for path in dropped]

    def _validate_crd(self, obj: dict[str, Any]) -> None:
        spec = obj.get("spec") or {}
        expected = f"{spec.get('names', {}).get('plural')}.{spec.get('group')}"
        name = obj["metadata"]["name"]
        if name != expected:
            raise invalid(
                "CustomResourceDefinition",
                "apiextensions.k8s.io",
                name,
                [
                    {
                        "reason": "FieldValueInvalid",
                        "message": f'Invalid value: "{name}": '
                        'must be spec.names.plural+"."+spec.group',
                        "field": "metadata.name",
                    }
                ],
            )
        storage = [v for v in spec.get("versions") or [] if v.get("storage")]
        version_names = [v.get("name") for v in spec.get("versions") or []]
        if len(storage) != 1:
            raise invalid(
                "CustomResourceDefinition",
                "apiextensions.k8s.io",
                name,
                [
                    {
                        "reason": "FieldValueInvalid",
                        "message": f"Invalid value: {json.dumps(version_names)}: "
                        "must have exactly one version marked as storage version",
                        "field": "spec.versions",
                    }
                ],
            )

    # ------------------------------------------------------------------ updates

    def update(
        self,
        resource_type: ResourceType,
        namespace: str | None,
        name: str,
        body: Any,
        options: WriteOptions,
        subresource: str = "",
    ) -> tuple[dict[str, Any], list[str]]:
        incoming = self._check_body(resource_type, body)
        body_name = incoming.get("metadata", {}).get("name")
        if body_name and body_name != name:
            raise bad_request(
                f"the name of the object ({body_name}) does not match the name on the URL ({name})"
            )
        with self.lock:
            old = self.get_object(resource_type, namespace, name)
            wanted_rv = incoming.get("metadata", {}).get("resourceVersion")
            if wanted_rv and wanted_rv != old["metadata"]["resourceVersion"]:
                raise conflict(resource_type.group, resource_type.plural, name)
            new = self._merge_for_write(resource_type, old, incoming, subresource)
            return self._commit_update(resource_type, old, new, options, subresource)

    def patch(
        self,
        resource_type: ResourceType,
        namespace: str | None,
        name: str,
        raw_body: bytes,
        content_type: str,
        options: WriteOptions,
        subresource: str = "",
    ) -> tuple[dict[str, Any], list[str], int]:
        """Returns (object, warnings, HTTP code): 201 when an apply created the object."""
        content_type = content_type.split(";")[0].strip()
        accepted = [JSON_PATCH, MERGE_PATCH, APPLY_PATCH]
        if resource_type.served_by_crd is None:
            accepted.insert(2, STRATEGIC_PATCH)
        if content_type not in accepted:
            raise unsupported_media_type(content_type, accepted)
        body = _parse_patch_body(raw_body, content_type)
        if content_type == APPLY_PATCH:
            return self._apply(resource_type, namespace, name, body, options, subresource)
        with self.lock:
            old = self.get_object(resource_type, namespace, name)
            if content_type == JSON_PATCH:
                if not isinstance(body, list):
                    raise bad_request("json patch must be a list of operations")
                patched = patches.json_patch(old, body)
            elif content_type == MERGE_PATCH:
                patched = patches.json_merge_patch(old, body)
            else:
                patched = patches.strategic_merge_patch(old, body, self.schema_node(resource_type))
            if not isinstance(patched, dict):
                raise bad_request("patch produced a non-object")
            wanted_rv = (patched.get("metadata") or {}).get("resourceVersion")
            if wanted_rv and wanted_rv != old["metadata"]["resourceVersion"]:
                raise conflict(resource_type.group, resource_type.plural, name)
            patched = self._check_body(resource_type, patched)
            new = self._merge_for_write(resource_type, old, patched, subresource)
            obj, warnings = self._commit_update(resource_type, old, new, options, subresource)
            return obj, warnings, 200

    def _apply(self, resource_type, namespace, name, body, options, subresource):
        if not options.field_manager or options.field_manager == "__default__":
            raise invalid(
                "PatchOptions",
                "meta.k8s.io",
                "",
                [
                    {
                        "reason": "FieldValueRequired",
                        "message": "Required value: is required for apply patch",
                        "field": "fieldManager",
                    }
                ],
            )
        applied = self._check_body(resource_type, body)
        applied_meta = applied.setdefault("metadata", {})
        if applied_meta.get("name") and applied_meta["name"] != name:
            raise bad_request(
                f"the name of the object ({applied_meta['name']}) does not match the name "
                f"on the URL ({name})"
            )
        applied_meta["name"] = name
        if resource_type.namespaced:
            applied_meta["namespace"] = namespace
        node = self.schema_node(resource_type)
        with self.lock:
            record = self.store.get(
                resource_type.key, (self._namespace_of(resource_type, namespace), name)
            )
            if record is None:
                if subresource:
                    raise not_found(resource_type.group, resource_type.plural, name)
                merged, managed = fieldsets.server_side_apply(
                    None,
                    applied,
                    options.field_manager,
                    options.force,
                    node,
                    resource_type.group_version,
                    now(),
                )
                created, warnings = self._create_locked(
                    resource_type,
                    merged,
                    WriteOptions(options.dry_run, "", options.force),
                    applied_fields=managed,
                )
                return created, warnings, 201
            old = json.loads(self._read_view(resource_type, record))
            wanted_rv = applied_meta.get("resourceVersion")
            if wanted_rv and wanted_rv != old["metadata"]["resourceVersion"]:
                raise conflict(resource_type.group, resource_type.plural, name)
            merged, managed = fieldsets.server_side_apply(
                old,
                applied,
                options.field_manager,
                options.force,
                node,
                resource_type.group_version,
                now(),
                subresource,
            )
            merged["metadata"]["managedFields"] = managed
            new = self._merge_for_write(resource_type, old, merged, subresource)
            new["metadata"]["managedFields"] = managed
            obj, warnings = self._commit_update(
                resource_type,
                old,
                new,
                WriteOptions(options.dry_run, "", options.force),
                subresource,
            )
            return obj, warnings, 200

    def _merge_for_write(self, resource_type, old, incoming, subresource):
        """Carry what a write to this endpoint may not change from the stored object."""
        if subresource == "status":
            new = copy.deepcopy(old)
            if "status" in incoming:
                new["status"] = incoming["status"]
            else:
                new.pop("status", None)
            if "managedFields" in incoming.get("metadata", {}):
                new["metadata"]["managedFields"] = incoming["metadata"]["managedFields"]
            return new
        new = incoming
        metadata = new.setdefault("metadata", {})
        for system_field in (
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "namespace",
            "name",
        ):
            if system_field in old["metadata"]:
                metadata[system_field] = old["metadata"][system_field]
            else:
                metadata.pop(system_field, None)
        if "managedFields" not in metadata and "managedFields" in old["metadata"]:
            metadata["managedFields"] = old["metadata"]["managedFields"]
        if resource_type.status_subresource:
            if "status" in old:
                new["status"] = old["status"]
            else:
                new.pop("status", None)
        return new

    def _commit_update(self, resource_type, old, new, options, subresource):
        self._prepare_special(resource_type, new, old)
        defaults.apply_defaults(resource_type.kind, new)
        warnings = self._validate(resource_type, new)
        metadata = new["metadata"]
        if resource_type.tracks_generation and _spec_part(new) != _spec_part(old):
            metadata["generation"] = old["metadata"].get("generation", 0) + 1
        if options.field_manager:
            managed = fieldsets.record_update(
                old,
                new,
                options.field_manager,
                self.schema_node(resource_type),
                resource_type.group_version,
                now(),
                subresource,
            )
            if managed:
                metadata["managedFields"] = managed
            else:
                metadata.pop("managedFields", None)
        metadata["resourceVersion"] = old["metadata"]["resourceVersion"]
        new = _ordered(new)
        if new == old:
            return old, warnings  # a no-op write persists nothing, as upstream
        if old["metadata"].get("deletionTimestamp") and not metadata.get("finalizers"):
            if not options.dry_run:
                self._remove(resource_type, new)
            return new, warnings
        if options.dry_run:
            return new, warnings
        rv = self.store.next_rv()
        metadata["resourceVersion"] = str(rv)
        self.store.put(resource_type.key, self.make_record(resource_type, new, rv), "MODIFIED")
        self._after_write(resource_type, old, new)
        return new, warnings

    # ------------------------------------------------------------------ deletes

    def delete(
        self,
        resource_type: ResourceType,
        namespace: str | None,
        name: str,
        options: WriteOptions,
        preconditions: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        with self.lock:
            obj = self.get_object(resource_type, namespace, name)
            preconditions = preconditions or {}
            if (
                preconditions.get("resourceVersion")
                and preconditions["resourceVersion"] != obj["metadata"]["resourceVersion"]
            ):
                raise conflict(resource_type.group, resource_type.plural, name)
            if preconditions.get("uid") and preconditions["uid"] != obj["metadata"]["uid"]:
                raise conflict(resource_type.group, resource_type.plural, name)
            return self._delete_locked(resource_type, obj, options)

    def _grace_period(self, resource_type, obj, options) -> int:
        """The pod strategy's CheckGracefulDelete: the asked grace period, else the pod's
        terminationGracePeriodSeconds; 0 for pods never scheduled or already finished, and for
        every pod when no kubelet runs to finish the deletion."""
        if resource_type.kind != "Pod" or resource_type.served_by_crd or not self.kubelets:
            return 0
        spec = obj.get("spec") or {}
        period = options.grace_period
        if period is None:
            period = spec.get("terminationGracePeriodSeconds", DEFAULT_GRACE_SECONDS)
        if not spec.get("nodeName"):
            return 0
        if (obj.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            return 0
        return 1 if period < 0 else int(period)

    def _delete_locked(self, resource_type, obj, options):
        metadata = obj["metadata"]
        grace = self._grace_period(resource_type, obj, options)
        if grace > 0:
            current = metadata.get("deletionGracePeriodSeconds")
            if metadata.get("deletionTimestamp") and current is not None and current <= grace:
                return obj  # already terminating, at least as soon
            metadata["deletionTimestamp"] = now(grace)
            metadata["deletionGracePeriodSeconds"] = grace
            if options.dry_run:
                return obj
            rv = self.store.next_rv()
            metadata["resourceVersion"] = str(rv)
            self.store.put(resource_type.key, self.make_record(resource_type, obj, rv), "MODIFIED")
            return obj
        if metadata.get("finalizers") or resource_type.kind == "Namespace":
            if not metadata.get("deletionTimestamp") or metadata.get("deletionGracePeriodSeconds"):
                metadata["deletionTimestamp"] = now()
                metadata["deletionGracePeriodSeconds"] = 0
                if resource_type.kind == "Namespace":
                    obj.setdefault("status", {})["phase"] = "Terminating"
                if options.dry_run:
                    return obj
                rv = self.store.next_rv()
                metadata["resourceVersion"] = str(rv)
                self.store.put(
                    resource_type.key, self.make_record(resource_type, obj, rv), "MODIFIED"
                )
            if options.dry_run:
                return obj
            if resource_type.kind == "Namespace":
                self._cascade_namespace(metadata["name"])
                self._maybe_finish_namespace(metadata["name"])
            return obj
        if not options.dry_run:
            self._remove(resource_type, obj, options.propagation)
        if resource_type.delete_returns_object or resource_type.served_by_crd:
            return obj
        details = {
            "name": metadata["name"],
            "kind": resource_type.plural,
            "uid": metadata.get("uid"),
        }
        if resource_type.group:
            details["group"] = resource_type.group
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": details,
        }

    def _remove(
        self, resource_type: ResourceType, obj: dict[str, Any], propagation: str = "Background"
    ) -> None:
        rv = self.store.next_rv()
        obj["metadata"]["resourceVersion"] = str(rv)
        self.store.remove(resource_type.key, self.make_record(resource_type, obj, rv))
        self._collect_dependents(obj["metadata"].get("uid"), propagation)
        if resource_type.kind == "CustomResourceDefinition":
            self._unregister_crd(obj)
        elif resource_type.kind == "ClusterRole" and resource_type.served_by_crd is None:
            self.aggregate_cluster_roles()
        namespace = obj["metadata"].get("namespace")
        if namespace and self.namespace_phase(namespace) == "Terminating":
            self._maybe_finish_namespace(namespace)

    def _collect_dependents(self, owner_uid: str | None, propagation: str) -> None:
        """The garbage collector's job, done at once: dependents of a deleted owner are
        deleted, or with Orphan lose their ownerReference."""
        if not owner_uid:
            return
        types_by_key = {t.key: t for t in self.types.values()}
        for type_key, key in self.store.dependents(owner_uid):
            resource_type = types_by_key.get(type_key)
            record = self.store.get(type_key, key)
            if resource_type is None or record is None:
                continue
            dependent = record.decode()
            if propagation == "Orphan":
                metadata = dependent["metadata"]
                metadata["ownerReferences"] = [
                    ref for ref in metadata["ownerReferences"] if ref.get("uid") != owner_uid
                ] or None
                if metadata["ownerReferences"] is None:
                    del metadata["ownerReferences"]
                rv = self.store.next_rv()
                metadata["resourceVersion"] = str(rv)
                self.store.put(type_key, self.make_record(resource_type, dependent, rv), "MODIFIED")
            elif not dependent["metadata"].get("deletionTimestamp"):
                self._delete_locked(resource_type, dependent, WriteOptions())

    def delete_collection(self, resource_type, namespace, label_selector, field_selector, options):
        label_requirements, field_requirements = self.selectors(
            resource_type, label_selector, field_selector
        )
        scope = namespace if resource_type.namespaced and namespace else None
        with self.lock:
            deleted = []
            for record in list(self.store.scan(resource_type.key, scope, None)):
                if labels_match(label_requirements, record.labels) and fields_match(
                    field_requirements, record.fields
                ):
                    deleted.append(self._delete_locked(resource_type, record.decode(), options))
        return {
            "kind": f"{resource_type.kind}List",
            "apiVersion": resource_type.group_version,
            "metadata": {"resourceVersion": str(self.store.resource_version)},
            "items": [d for d in deleted if d.get("kind") != "Status"],
        }

    def _cascade_namespace(self, namespace: str) -> None:
        for resource_type in {t.key: t for t in self.types.values() if t.namespaced}.values():
            for record in list(self.store.scan(resource_type.key, namespace, None)):
                obj = record.decode()
                if not obj["metadata"].get("deletionTimestamp"):
                    self._delete_locked(resource_type, obj, WriteOptions())

    def _maybe_finish_namespace(self, namespace: str) -> None:
        for type_key in self.store.type_keys():
            if type_key == ("", "namespaces"):
                continue
            if next(iter(self.store.scan(type_key, namespace, None)), None) is not None:
                return
        record = self.store.get(("", "namespaces"), ("", namespace))
        if record is not None:
            obj = record.decode()
            obj.get("spec", {}).pop("finalizers", None)
            if not obj["metadata"].get("finalizers"):
                self._remove(self.types[("", "v1", "namespaces")], obj)

    # ------------------------------------------------------------------ special kinds

    def _prepare_special(self, resource_type, obj, old) -> None:
        metadata = obj["metadata"]
        if resource_type.kind == "Namespace":
            metadata.setdefault("labels", {})[kinds.NAMESPACE_NAME_LABEL] = metadata["name"]
            if old is None:
                obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        elif resource_type.kind == "CustomResourceDefinition":
            spec = obj.get("spec") or {}
            names = dict(spec.get("names") or {})
            names.setdefault("singular", (names.get("kind") or "").lower())
            names.setdefault("listKind", f"{names.get('kind')}List")
            obj["status"] = {
                "acceptedNames": names,
                "conditions": [
                    {
                        "type": "NamesAccepted",
                        "status": "True",
                        "reason": "NoConflicts",
                        "message": "no conflicts found",
                        "lastTransitionTime": _transition(old, "NamesAccepted"),
                    },
                    {
                        "type": "Established",
                        "status": "True",
                        "reason": "InitialNamesAccepted",
                        "message": "the initial names have been accepted",
                        "lastTransitionTime": _transition(old, "Established"),
                    },
                ],
                "storedVersions": [
                    v["name"] for v in spec.get("versions") or [] if v.get("storage")
                ],
            }
        elif resource_type.kind == "Secret":
            # The apiserver folds write-only stringData into data (base64) and drops it.
            string_data = obj.pop("stringData", None) or {}
            if string_data:
                data = obj.setdefault("data", {})
                for key, value in string_data.items():
                    data[key] = base64.b64encode(str(value).encode()).decode()
            obj.setdefault("type", "Opaque")
        elif resource_type.kind == "PodDisruptionBudget" and old is None:
            obj["status"] = self._pdb_status(obj)

    def _after_write(self, resource_type, old, new) -> None:
        if resource_type.kind == "CustomResourceDefinition":
            if old is not None:
                self._unregister_crd(old)
            self._register_crd(new)
        elif resource_type.kind == "ClusterRole" and resource_type.served_by_crd is None:
            self.aggregate_cluster_roles()

    def aggregate_cluster_roles(self) -> None:
        """The clusterrole-aggregation controller's work, done at once (like garbage
        collection here): aggregated ClusterRoles follow the roles their selectors match."""
        role_type = self.types[(rbac.RBAC_GROUP, "v1", "clusterroles")]

        def write(role: dict[str, Any]) -> None:
            rv = self.store.next_rv()
            role["metadata"]["resourceVersion"] = str(rv)
            self.store.put(role_type.key, self.make_record(role_type, role, rv), "MODIFIED")

        with self.lock:
            rbac.aggregate_cluster_roles(self, write)

    def _register_crd(self, crd: dict[str, Any]) -> None:
        spec = crd["spec"]
        names = spec["names"]
        registered = []
        for version in spec.get("versions") or []:
            if not version.get("served"):
                continue
            subresources = version.get("subresources") or {}
            selectable = {
                f["jsonPath"].lstrip("."): tuple(f["jsonPath"].lstrip(".").split("."))
                for f in version.get("selectableFields") or []
            }
            resource_type = ResourceType(
                group=spec["group"],
                version=version["name"],
                kind=names["kind"],
                plural=names["plural"],
                singular=names.get("singular") or names["kind"].lower(),
                namespaced=spec.get("scope") == "Namespaced",
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                status_subresource="status" in subresources,
                status_on_create=None,
                tracks_generation=True,
                delete_returns_object=True,
                field_labels=kinds.BASE_FIELD_LABELS + tuple(selectable),
                selectable_fields=selectable,
                openapi_schema=(version.get("schema") or {}).get("openAPIV3Schema"),
                served_by_crd=crd["metadata"]["name"],
                extra_subresources=(),
                scale_paths=_scale_paths(subresources.get("scale")),
            )
            self._register(resource_type)
            registered.append(resource_type)
        self.crd_types[crd["metadata"]["name"]] = registered

    def _unregister_crd(self, crd: dict[str, Any]) -> None:
        self.types_epoch += 1
        for resource_type in self.crd_types.pop(crd["metadata"]["name"], []):
            self.types.pop((resource_type.group, resource_type.version, resource_type.plural), None)
            if (
                self.store.get(
                    ("apiextensions.k8s.io", "customresourcedefinitions"),
                    ("", crd["metadata"]["name"]),
                )
                is None
            ):
                self.store.drop_type(resource_type.key)

    # ------------------------------------------------------------------ scale, binding, token

    def _scale_paths(self, resource_type: ResourceType) -> tuple[str, str, str]:
        if resource_type.scale_paths is not None:
            return resource_type.scale_paths
        return (".spec.replicas", ".status.replicas", ".spec.selector")

    def get_scale(self, resource_type, namespace, name) -> dict[str, Any]:
        """autoscaling/v1 Scale of a Deployment, ReplicaSet, StatefulSet or custom resource."""
        obj = self.get_object(resource_type, namespace, name)
        spec_path, status_path, selector_path = self._scale_paths(resource_type)
        metadata = obj["metadata"]
        selector = _path_get(obj, selector_path) if selector_path else None
        if isinstance(selector, dict):
            selector = selector_string(selector)
        scale: dict[str, Any] = {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                k: metadata[k]
                for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                if k in metadata
            },
            "spec": {},
            "status": {"replicas": _path_get(obj, status_path) or 0},
        }
        replicas = _path_get(obj, spec_path)
        if replicas:
            scale["spec"]["replicas"] = replicas
        if selector:
            scale["status"]["selector"] = selector
        return scale

    def update_scale(self, resource_type, namespace, name, body, options) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise bad_request("the body of a Scale must be a JSON object")
        replicas = (body.get("spec") or {}).get("replicas", 0)
        if not isinstance(replicas, int) or isinstance(replicas, bool):
            raise bad_request(
                'Scale in version "v1" cannot be handled as a Scale: json: cannot unmarshal '
                "into Go struct field ScaleSpec.spec.replicas of type int32"
            )
        if replicas < 0:
            raise invalid(
                "Scale",
                "autoscaling",
                name,
                [
                    {
                        "reason": "FieldValueInvalid",
                        "message": f"Invalid value: {replicas}: must be greater than or equal to 0",
                        "field": "spec.replicas",
                    }
                ],
            )
        with self.lock:
            obj = self.get_object(resource_type, namespace, name)
            wanted_rv = (body.get("metadata") or {}).get("resourceVersion")
            if wanted_rv and wanted_rv != obj["metadata"]["resourceVersion"]:
                raise conflict(resource_type.group, resource_type.plural, name)
            new = copy.deepcopy(obj)
            _path_set(new, self._scale_paths(resource_type)[0], replicas)
            self._commit_update(resource_type, obj, new, options, "")
            return self.get_scale(resource_type, namespace, name)

    def patch_scale(self, resource_type, namespace, name, raw, content_type, options):
        accepted = [JSON_PATCH, MERGE_PATCH, STRATEGIC_PATCH]
        if content_type not in accepted:
            raise unsupported_media_type(content_type, accepted)
        body = _parse_patch_body(raw, content_type)
        with self.lock:
            current = self.get_scale(resource_type, namespace, name)
            if content_type == JSON_PATCH:
                if not isinstance(body, list):
                    raise bad_request("json patch must be a list of operations")
                patched = patches.json_patch(current, body)
            elif content_type == MERGE_PATCH:
                patched = patches.json_merge_patch(current, body)
            else:
                patched = patches.strategic_merge_patch(current, body, None)
            if not isinstance(patched, dict):
                raise bad_request("patch produced a non-object")
            return self.update_scale(resource_type, namespace, name, patched, options)

    def bind(self, namespace: str, name: str, body: Any, options: WriteOptions) -> dict:
        """POST pods/<name>/binding (what the scheduler does): set spec.nodeName and the
        PodScheduled condition; a pod already on a node is a 409."""
        pods = self.types[("", "v1", "pods")]
        target = (body or {}).get("target") if isinstance(body, dict) else None
        if not isinstance(target, dict) or not target.get("name"):
            raise invalid(
                "Binding",
                "",
                name,
                [
                    {
                        "reason": "FieldValueRequired",
                        "message": "Required value",
                        "field": "target.name",
                    }
                ],
            )
        with self.lock:
            pod = self.get_object(pods, namespace, name)
            if pod["metadata"].get("deletionTimestamp"):
                raise conflict("", "pods/binding", name)
            assigned = (pod.get("spec") or {}).get("nodeName")
            if assigned:
                raise ApiError(
                    409,
                    "Conflict",
                    f'Operation cannot be fulfilled on pods/binding "{name}": pod {name} is '
                    f'already assigned to node "{assigned}"',
                    {"name": name, "kind": "pods/binding"},
                )
            new = copy.deepcopy(pod)
            new.setdefault("spec", {})["nodeName"] = target["name"]
            annotations = ((body.get("metadata") or {}).get("annotations")) or {}
            if annotations:
                new["metadata"].setdefault("annotations", {}).update(annotations)
            status = new.setdefault("status", {})
            conditions = [
                c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"
            ]
            conditions.append(
                {
                    "type": "PodScheduled",
                    "status": "True",
                    "lastProbeTime": None,
                    "lastTransitionTime": now(),
                }
            )
            status["conditions"] = conditions
            if not options.dry_run:
                self._commit_update(pods, pod, new, options, "")
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "code": 201,
        }

    def token_request(self, namespace, name, body, options, pki) -> dict[str, Any]:
        """POST serviceaccounts/<name>/token: a bound token (authentication.k8s.io/v1)."""
        accounts = self.types[("", "v1", "serviceaccounts")]
        account = self.get_object(accounts, namespace, name)
        if pki is None:
            raise ApiError(
                503, "ServiceUnavailable", "this server signs no tokens (started with --plain-http)"
            )
        body = body if isinstance(body, dict) else {}
        spec = body.get("spec") if isinstance(body.get("spec"), dict) else {}
        seconds = spec.get("expirationSeconds") or 3600
        if not isinstance(seconds, int) or seconds < 600:
            raise invalid(
                "TokenRequest",
                "authentication.k8s.io",
                name,
                [
                    {
                        "reason": "FieldValueInvalid",
                        "message": f"Invalid value: {seconds}: may not specify a duration less "
                        "than 10 minutes",
                        "field": "spec.expirationSeconds",
                    }
                ],
            )
        bound = spec.get("boundObjectRef")
        token, expiry = pki.bound_token(
            namespace,
            name,
            account["metadata"]["uid"],
            seconds,
            spec.get("audiences") or None,
            bound if isinstance(bound, dict) and bound.get("kind") else None,
        )
        stamp = datetime.datetime.fromtimestamp(expiry, datetime.timezone.utc)
        spec_out = dict(spec, expirationSeconds=seconds)
        spec_out.setdefault("audiences", ["https://kubernetes.default.svc.cluster.local"])
        spec_out.setdefault("boundObjectRef", None)
        return {
            "kind": "TokenRequest",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"name": name, "namespace": namespace, "creationTimestamp": None},
            "spec": spec_out,
            "status": {"token": token, "expirationTimestamp": stamp.strftime("%Y-%m-%dT%H:%M:%SZ")},
        }

    # ------------------------------------------------------------------ eviction

    def _pdb_status(
        self, pdb: dict[str, Any], exclude: tuple[str, str] | None = None
    ) -> dict[str, Any]:
        namespace = pdb["metadata"].get("namespace", "")
        matcher = label_selector_object_matcher((pdb.get("spec") or {}).get("selector"))
        expected = healthy = 0
        for record in self.store.scan(("", "pods"), namespace, None):
            if record.key == exclude or not matcher(record.labels):
                continue
            if record.fields.get("status.phase") in ("Succeeded", "Failed"):
                continue
            expected += 1
            if _pod_ready(record):
                healthy += 1
        spec = pdb.get("spec") or {}
        if spec.get("minAvailable") is not None:
            desired = _scaled(spec["minAvailable"], expected)
        elif spec.get("maxUnavailable") is not None:
            desired = max(0, expected - _scaled(spec["maxUnavailable"], expected))
        else:
            desired = expected
        return {
            "currentHealthy": healthy,
            "desiredHealthy": desired,
            "disruptionsAllowed": max(0, healthy - desired),
            "expectedPods": expected,
            "observedGeneration": pdb["metadata"].get("generation", 1),
        }

    def evict(self, namespace: str, name: str, body: Any, options: WriteOptions) -> dict[str, Any]:
        pods = self.types[("", "v1", "pods")]
        with self.lock:
            pod_record = self.store.get(pods.key, (namespace, name))
            if pod_record is None:
                raise not_found("", "pods", name)
            pod = pod_record.decode()
            delete_options = (body or {}).get("deleteOptions") or {}
            if delete_options.get("dryRun") == ["All"]:
                options = WriteOptions(True, options.field_manager)
            phase = pod.get("status", {}).get("phase")
            if phase not in ("Succeeded", "Failed", "Pending") and not pod["metadata"].get(
                "deletionTimestamp"
            ):
                matching = []
                for record in self.store.scan(("policy", "poddisruptionbudgets"), namespace, None):
                    pdb = record.decode()
                    if label_selector_object_matcher((pdb.get("spec") or {}).get("selector"))(
                        pod_record.labels
                    ):
                        matching.append(pdb)
                if len(matching) > 1:
                    raise ApiError(
                        500,
                        "InternalError",
                        "This pod has more than one PodDisruptionBudget, which the eviction "
                        "subresource does not support.",
                    )
                if matching:
                    pdb = matching[0]
                    status = self._pdb_status(pdb)
                    pod_healthy = _pod_ready(pod_record)
                    if (pod_healthy and status["disruptionsAllowed"] <= 0) or (
                        not pod_healthy and status["currentHealthy"] < status["desiredHealthy"]
                    ):
                        raise ApiError(
                            429,
                            "TooManyRequests",
                            "Cannot evict pod as it would violate the pod's disruption budget.",
                            {
                                "causes": [
                                    {
                                        "reason": "DisruptionBudget",
                                        "message": f"The disruption budget "
                                        f"{pdb['metadata']['name']} needs "
                                        f"{status['desiredHealthy']} healthy pods and has "
                                        f"{status['currentHealthy']} currently",
                                    }
                                ]
                            },
                        )
                    if not options.dry_run:
                        self._set_pdb_status(pdb, self._pdb_status(pdb, exclude=(namespace, name)))
            self._delete_locked(pods, pod, options)
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "code": 201,
        }

    def _set_pdb_status(self, pdb: dict[str, Any], status: dict[str, Any]) -> None:
        if pdb.get("status") == status:
            return
        pdb["status"] = status
        rv = self.store.next_rv()
        pdb["metadata"]["resourceVersion"] = str(rv)
        pdb_type = self.types[("policy", "v1", "poddisruptionbudgets")]
        self.store.put(pdb_type.key, self.make_record(pdb_type, pdb, rv), "MODIFIED")

    # ------------------------------------------------------------------ bootstrap / snapshots

    def bootstrap(self) -> None:
        """What every cluster starts with: its namespaces and the RBAC bootstrap policy
        (created when missing, as the apiserver's bootstrap controller does)."""
        namespaces = self.types[("", "v1", "namespaces")]
        for name in kinds.INITIAL_NAMESPACES:
            if self.store.get(namespaces.key, ("", name)) is None:
                self.create(namespaces, None, {"metadata": {"name": name}}, WriteOptions())
        for plural, obj in rbac.bootstrap_objects():
            resource_type = self.types[(rbac.RBAC_GROUP, "v1", plural)]
            if self.store.get(resource_type.key, ("", obj["metadata"]["name"])) is None:
                self.create(resource_type, None, obj, WriteOptions())

    def restore(self, snapshot: dict[str, Any]) -> None:
        """Load a snapshot: CRDs first so their types exist, then every other object."""
        with self.lock:
            objects = snapshot.get("objects") or {}
            crd_key = "apiextensions.k8s.io/customresourcedefinitions"
            ordered = [crd_key] + [k for k in objects if k != crd_key]
            for type_name in ordered:
                group, _unused, plural = type_name.rpartition("/")
                resource_type = next(
                    (t for t in self.types.values() if t.key == (group, plural)),
                    None,
                )
                if resource_type is None:
                    continue
                records = []
                for raw in objects.get(type_name) or []:
                    obj = json.loads(raw)
                    records.append(
                        self.make_record(
                            resource_type, obj, int(obj["metadata"]["resourceVersion"])
                        )
                    )
                    if resource_type.kind == "CustomResourceDefinition":
                        self._register_crd(obj)
                self.store.load(resource_type.key, records)
            self.store.resource_version = max(
                self.store.resource_version, int(snapshot.get("resourceVersion", 1))
            )

    def load_objects(self, resource_type: ResourceType, objects: list[dict[str, Any]]) -> None:
        """Bulk-load fully formed objects straight into the store (benchmarks, fixtures)."""
        records = []
        for obj in objects:
            rv = self.store.next_rv()
            metadata = obj.setdefault("metadata", {})
            metadata.setdefault("uid", str(uuid.uuid4()))
            metadata.setdefault("creationTimestamp", now())
            metadata["resourceVersion"] = str(rv)
            records.append(self.make_record(resource_type, obj, rv))
        self.store.load(resource_type.key, records)


def _transition(old: dict[str, Any] | None, condition_type: str) -> str:
    for condition in ((old or {}).get("status") or {}).get("conditions") or []:
        if condition.get("type") == condition_type:
            return condition.get("lastTransitionTime") or now()
    return now()


def _pod_ready(record: Record) -> bool:
    return record.fields.get("status.phase") == "Running" and record.fields.get("ready") == "True"


def _scaled(value: Any, total: int) -> int:
    if isinstance(value, str) and value.endswith("%"):
        return math.ceil(total * int(value[:-1]) / 100)
    return int(value)


def _ordered(obj: dict[str, Any]) -> dict[str, Any]:
    """apiVersion, kind, metadata first, as the apiserver serializes."""
    head = {k: obj[k] for k in ("apiVersion", "kind", "metadata") if k in obj}
    head.update({k: v for k, v in obj.items() if k not in head})
    return head


def _path_get(obj: Any, path: str) -> Any:
    for part in [p for p in path.split(".") if p]:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


def _path_set(obj: dict[str, Any], path: str, value: Any) -> None:
    parts = [p for p in path.split(".") if p]
    for part in parts[:-1]:
        obj = obj.setdefault(part, {})
    obj[parts[-1]] = value


def selector_string(selector: dict[str, Any]) -> str:
    """A metav1.LabelSelector as the string form (Scale status.selector), keys sorted."""
    requirements = []
    for key, value in (selector.get("matchLabels") or {}).items():
        requirements.append((key, f"{key}={value}"))
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression.get("key", ""), expression.get("operator")
        values = ",".join(sorted(expression.get("values") or []))
        if operator == "In":
            requirements.append((key, f"{key} in ({values})"))
        elif operator == "NotIn":
            requirements.append((key, f"{key} notin ({values})"))
        elif operator == "Exists":
            requirements.append((key, key))
        elif operator == "DoesNotExist":
            requirements.append((key, f"!{key}"))
    return ",".join(text for _unused, text in sorted(requirements))


def _parse_patch_body(raw: bytes, content_type: str) -> Any:
    if content_type != APPLY_PATCH:
        return decode_json(raw or b"null", "error decoding patch")
    try:
        return decode_json(raw or b"null", "error decoding patch")
    except ApiError:
        pass
    try:
        return yaml.safe_load(raw)
    except (yaml.YAMLError, RecursionError) as error:
        raise bad_request(f"error decoding YAML: {error}") from error


def _scale_paths(scale: Any) -> tuple[str, str, str] | None:
    if not isinstance(scale, dict):
        return None
    return (
        scale.get("specReplicasPath") or ".spec.replicas",
        scale.get("statusReplicasPath") or ".status.replicas",
        scale.get("labelSelectorPath") or "",
    )


def _data_size(obj: dict[str, Any], kind: str) -> int:
    total = 0
    for key in ("data", "binaryData") if kind == "ConfigMap" else ("data",):
        for value in (obj.get(key) or {}).values():
            if not isinstance(value, str):
                continue
            if kind == "Secret" or key == "binaryData":
                total += len(value) * 3 // 4 - value[-2:].count("=")
            else:
                total += len(value.encode())
    return total


def _kind_rules(kind: str, obj: dict[str, Any]) -> list[dict[str, str]]:
    """Validation rules of built-in kinds beyond their schema (pkg/apis/*/validation)."""
    causes = []
    if kind in ("ConfigMap", "Secret") and _data_size(obj, kind) > MAX_DATA_BYTES:
        causes.append(
            {
                "reason": "FieldValueTooLong",
                "message": f"Too long: may not be more than {MAX_DATA_BYTES} bytes",
                "field": "[]" if kind == "ConfigMap" else "data",
            }
        )
    if kind == "Job":
        template = (obj.get("spec") or {}).get("template") or {}
        policy = (template.get("spec") or {}).get("restartPolicy")
        if policy not in ("OnFailure", "Never"):
            causes.append(
                {
                    "reason": "FieldValueNotSupported",
                    "message": f'Unsupported value: "{policy or ""}": supported values: '
                    '"OnFailure", "Never"',
                    "field": "spec.template.spec.restartPolicy",
                }
            )
    return causes


def _encode_continue(last_key: tuple[str, str], rv: int) -> str:
    token = {"v": "meta.k8s.io/v1", "rv": rv, "start": "/".join(last_key) + "\x00"}
    return base64.urlsafe_b64encode(json.dumps(token).encode()).decode()


def _decode_continue(token: str) -> tuple[tuple[str, str], int]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode() + b"=" * (-len(token) % 4)))
        namespace, _unused, name = data["start"].rstrip("\x00").partition("/")
        return (namespace, name), int(data["rv"])
    except (ValueError, KeyError, TypeError) as error:
        raise bad_request(f"continue key is not valid: {error}") from error
