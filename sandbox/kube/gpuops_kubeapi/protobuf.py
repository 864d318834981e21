"""Protobuf request bodies (`application/vnd.kubernetes.protobuf`) for the kinds Go clients send
that way, decoded into the JSON form the rest of the stand-in handles.

client-go's typed clients write protobuf: helm stores its releases as Secrets through one (a
`k8s\\x00` magic, then a runtime.Unknown envelope holding apiVersion, kind and the object's
bytes). The wire format is read here from the field numbers of k8s.io/api's generated.proto
for Secret, ConfigMap and Namespace and their metadata; any other kind is answered 415 as
before (answers are always JSON, which those clients also read).
"""

from __future__ import annotations

import base64
import datetime
import json
from typing import Any

MAGIC = b"k8s\x00"
CONTENT_TYPE = "application/vnd.kubernetes.protobuf"


class ProtobufError(ValueError):
    pass


# Message specs: field number -> (json name, kind[, nested spec]); kinds: string, bytes
# (base64 in JSON), int, bool, message, map_string (map<string,string>), map_bytes
# (map<string,bytes>), repeated_string, repeated_message, time, raw_json (FieldsV1).
TIME = "time"
OWNER_REFERENCE = {
    1: ("kind", "string"),
    3: ("name", "string"),
    4: ("uid", "string"),
    5: ("apiVersion", "string"),
    6: ("controller", "bool"),
    7: ("blockOwnerDeletion", "bool"),
}
MANAGED_FIELDS_ENTRY = {
    1: ("manager", "string"),
    2: ("operation", "string"),
    3: ("apiVersion", "string"),
    4: ("time", TIME),
    6: ("fieldsType", "string"),
    7: ("fieldsV1", "raw_json"),
    8: ("subresource", "string"),
}
OBJECT_META = {
    1: ("name", "string"),
    2: ("generateName", "string"),
    3: ("namespace", "string"),
    4: ("selfLink", "string"),
    5: ("uid", "string"),
    6: ("resourceVersion", "string"),
    7: ("generation", "int"),
    8: ("creationTimestamp", TIME),
    9: ("deletionTimestamp", TIME),
    10: ("deletionGracePeriodSeconds", "int"),
    11: ("labels", "map_string"),
    12: ("annotations", "map_string"),
    13: ("ownerReferences", "repeated_message", OWNER_REFERENCE),
    14: ("finalizers", "repeated_string"),
    17: ("managedFields", "repeated_message", MANAGED_FIELDS_ENTRY),
}
KINDS = {
    ("v1", "Secret"): {
        1: ("metadata", "message", OBJECT_META),
        2: ("data", "map_bytes"),
        3: ("type", "string"),
        4: ("stringData", "map_string"),
        5: ("immutable", "bool"),
    },
    ("v1", "ConfigMap"): {
        1: ("metadata", "message", OBJECT_META),
        2: ("data", "map_string"),
        3: ("binaryData", "map_bytes"),
        4: ("immutable", "bool"),
    },
    ("v1", "Namespace"): {
        1: ("metadata", "message", OBJECT_META),
        2: ("spec", "message", {1: ("finalizers", "repeated_string")}),
        3: ("status", "message", {1: ("phase", "string")}),
    },
}


DELETE_OPTIONS = {
    1: ("gracePeriodSeconds", "int"),
    2: (
        "preconditions",
        "message",
        {1: ("uid", "string"), 2: ("resourceVersion", "string")},
    ),
    3: ("orphanDependents", "bool"),
    4: ("propagationPolicy", "string"),
    5: ("dryRun", "repeated_string"),
}


def _varint(data: bytes, position: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if position >= len(data) or shift > 63:
            raise ProtobufError("truncated varint")
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, position
        shift += 7


def _fields(data: bytes):
    """(field number, wire type, value) of a message: ints for varints, bytes otherwise."""
    position = 0
    while position < len(data):
        key, position = _varint(data, position)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, position = _varint(data, position)
        elif wire == 2:
            length, position = _varint(data, position)
            if position + length > len(data):
                raise ProtobufError("truncated field")
            value = data[position : position + length]
            position += length
        elif wire == 1:
            value, position = data[position : position + 8], position + 8
        elif wire == 5:
            value, position = data[position : position + 4], position + 4
        else:
            raise ProtobufError(f"unsupported wire type {wire}")
        yield number, wire, value


def _text(value: Any) -> str:
    if not isinstance(value, bytes):
        raise ProtobufError("expected a length-delimited field")
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ProtobufError("invalid UTF-8") from error


def _map_entry(value: bytes) -> tuple[str, bytes]:
    key, item = "", b""
    for number, _wire, field in _fields(value):
        if number == 1:
            key = _text(field)
        elif number == 2:
            item = field if isinstance(field, bytes) else b""
    return key, item


def _time(value: bytes) -> str:
    seconds = 0
    for number, wire, field in _fields(value):
        if number == 1 and wire == 0:
            seconds = field
    moment = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def decode_message(data: bytes, spec: dict[int, tuple]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for number, wire, value in _fields(data):
        entry = spec.get(number)
        if entry is None:
            continue  # a field this stand-in does not know: dropped, as pruning would
        name, kind = entry[0], entry[1]
        if kind == "string":
            obj[name] = _text(value)
        elif kind == "bytes":
            obj[name] = base64.b64encode(value).decode()
        elif kind == "int":
            if wire != 0:
                raise ProtobufError(f"{name}: expected a varint")
            obj[name] = value - (1 << 64) if value >= 1 << 63 else value
        elif kind == "bool":
            obj[name] = bool(value)
        elif kind == TIME:
            obj[name] = _time(value)
        elif kind == "raw_json":
            raw = b""
            for inner_number, _inner_wire, inner in _fields(value):
                if inner_number == 1:
                    raw = inner
            obj[name] = json.loads(raw or b"{}")
        elif kind == "message":
            obj[name] = decode_message(value, entry[2])
        elif kind == "repeated_message":
            obj.setdefault(name, []).append(decode_message(value, entry[2]))
        elif kind == "repeated_string":
            obj.setdefault(name, []).append(_text(value))
        elif kind in ("map_string", "map_bytes"):
            key, item = _map_entry(value)
            if kind == "map_string":
                obj.setdefault(name, {})[key] = item.decode("utf-8", "replace")
            else:
                obj.setdefault(name, {})[key] = base64.b64encode(item).decode()
    return obj


def decode(body: bytes) -> dict[str, Any]:
    """A protobuf request body as its JSON object; ProtobufError (415 upstream of the caller)
    for kinds this stand-in does not read."""
    if not body.startswith(MAGIC):
        raise ProtobufError("missing the k8s protobuf magic")
    api_version = kind = ""
    raw = b""
    for number, _wire, value in _fields(body[len(MAGIC) :]):
        if number == 1:
            for inner, _inner_wire, field in _fields(value):
                if inner == 1:
                    api_version = _text(field)
                elif inner == 2:
                    kind = _text(field)
        elif number == 2:
            raw = value
    spec = DELETE_OPTIONS if kind == "DeleteOptions" else KINDS.get((api_version, kind))
    if spec is None:
        raise ProtobufError(f"protobuf bodies of {api_version}/{kind} are not read here")
    obj = {"apiVersion": api_version, "kind": kind}
    obj.update(decode_message(raw, spec))
    return obj
