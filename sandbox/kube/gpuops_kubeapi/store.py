"""In-memory object store: objects kept as serialized JSON (compact, and a list response is a
join of bytes), a global resourceVersion counter, a bounded event log for watches, and JSON
snapshots for surviving a restart."""

from __future__ import annotations

import bisect
import collections
import json
import os
import threading
from typing import Any, Iterator

from .errors import bad_request

TypeKey = tuple[str, str]  # (group, plural)
ObjectKey = tuple[str, str]  # (namespace, name); namespace "" for cluster-scoped
EVENT_LOG_SIZE = 20000
MAX_JSON_DEPTH = 300  # deeper bodies are refused (400), before any recursive processing


def encode(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def json_depth(value: Any) -> int:
    """Nesting depth of decoded JSON, without recursion."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in node.values())
        elif isinstance(node, list):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in node)
    return deepest


def decode_json(data: bytes, context: str) -> Any:
    """json.loads with the apiserver's answers for bad input: 400, never a RecursionError."""
    try:
        value = json.loads(data)
    except RecursionError:
        raise bad_request(f"{context}: exceeded max depth") from None
    except ValueError as error:
        raise bad_request(f"{context}: {error}") from error
    if json_depth(value) > MAX_JSON_DEPTH:
        raise bad_request(f"{context}: exceeded max depth")
    return value


class Record:
    """One stored object: its JSON plus what selectors need, pre-extracted."""

    __slots__ = ("controller", "fields", "key", "labels", "owners", "raw", "rv")

    def __init__(
        self,
        raw: bytes,
        labels: dict[str, str],
        fields: dict[str, str],
        rv: int,
        key: ObjectKey,
        owners: tuple[str, ...] = (),
        controller: tuple[str, str, str] | None = None,
    ):
        self.raw = raw
        self.labels = labels
        self.fields = fields
        self.rv = rv
        self.key = key
        self.owners = owners  # uids in metadata.ownerReferences, for garbage collection
        # (kind, name, uid) of the ownerReference with controller: true, for controllers.
        self.controller = controller

    def decode(self) -> dict[str, Any]:
        return json.loads(self.raw)


class Event:
    __slots__ = ("previous", "record", "rv", "type", "type_key")

    def __init__(
        self,
        rv: int,
        event_type: str,
        type_key: TypeKey,
        record: Record,
        previous: Record | None = None,
    ):
        self.rv = rv
        self.type = event_type
        self.type_key = type_key
        self.record = record
        # The state before a MODIFIED, so filtered watches see objects enter and leave.
        self.previous = previous


class Store:
    def __init__(self, indexed_fields: dict[TypeKey, tuple[str, ...]] | None = None) -> None:
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.resource_version = 1
        self._objects: dict[TypeKey, dict[ObjectKey, Record]] = collections.defaultdict(dict)
        # Sorted keys and, aligned with them, the records: a list page is a slice, no lookups.
        self._keys: dict[TypeKey, list[ObjectKey]] = collections.defaultdict(list)
        self._records: dict[TypeKey, list[Record]] = collections.defaultdict(list)
        # field label -> value -> keys, for equality field selectors such as spec.nodeName=X.
        self.indexed_fields = indexed_fields or {}
        self._index: dict[TypeKey, dict[str, dict[str, set[ObjectKey]]]] = collections.defaultdict(
            lambda: collections.defaultdict(lambda: collections.defaultdict(set))
        )
        # owner uid -> dependents, for garbage collection on delete.
        self._dependents: dict[str, set[tuple[TypeKey, ObjectKey]]] = collections.defaultdict(set)
        self.events: collections.deque[Event] = collections.deque(maxlen=EVENT_LOG_SIZE)
        self.closed = False
        # resourceVersion of the last bulk load (no events): controllers resync past it.
        self.resynced_at = 0

    def next_rv(self) -> int:
        with self.lock:
            self.resource_version += 1
            return self.resource_version

    def get(self, type_key: TypeKey, key: ObjectKey) -> Record | None:
        return self._objects.get(type_key, {}).get(key)

    def count(self, type_key: TypeKey) -> int:
        return len(self._objects.get(type_key, {}))

    def dependents(self, owner_uid: str) -> list[tuple[TypeKey, ObjectKey]]:
        with self.lock:
            return sorted(self._dependents.get(owner_uid, ()))

    def _unindex(self, type_key: TypeKey, record: Record) -> None:
        for owner in record.owners:
            dependents = self._dependents.get(owner)
            if dependents is not None:
                dependents.discard((type_key, record.key))
                if not dependents:
                    del self._dependents[owner]
        for label in self.indexed_fields.get(type_key, ()):
            keys = self._index[type_key][label].get(record.fields.get(label, ""))
            if keys is not None:
                keys.discard(record.key)

    def _add_index(self, type_key: TypeKey, record: Record) -> None:
        for owner in record.owners:
            self._dependents[owner].add((type_key, record.key))
        for label in self.indexed_fields.get(type_key, ()):
            self._index[type_key][label][record.fields.get(label, "")].add(record.key)

    def put(self, type_key: TypeKey, record: Record, event_type: str) -> None:
        with self.lock:
            objects = self._objects[type_key]
            keys, records = self._keys[type_key], self._records[type_key]
            position = bisect.bisect_left(keys, record.key)
            previous = objects.get(record.key)
            if previous is not None:
                self._unindex(type_key, previous)
                records[position] = record
            else:
                keys.insert(position, record.key)
                records.insert(position, record)
            objects[record.key] = record
            self._add_index(type_key, record)
            self.events.append(Event(record.rv, event_type, type_key, record, previous))
            self.changed.notify_all()

    def remove(self, type_key: TypeKey, record: Record) -> None:
        """Remove; `record` is the object as of its deletion (carrying the deletion's rv)."""
        with self.lock:
            previous = self._objects[type_key].pop(record.key, None)
            if previous is not None:
                self._unindex(type_key, previous)
                keys = self._keys[type_key]
                position = bisect.bisect_left(keys, record.key)
                del keys[position]
                del self._records[type_key][position]
            self.events.append(Event(record.rv, "DELETED", type_key, record))
            self.changed.notify_all()

    def load(self, type_key: TypeKey, records: list[Record]) -> None:
        """Bulk insert without events (benchmarks, snapshots)."""
        with self.lock:
            objects = self._objects[type_key]
            for record in records:
                previous = objects.get(record.key)
                if previous is not None:
                    self._unindex(type_key, previous)
                objects[record.key] = record
                self._add_index(type_key, record)
            ordered = sorted(objects.items())
            self._keys[type_key] = [key for key, _unused in ordered]
            self._records[type_key] = [record for _unused, record in ordered]
            self.resynced_at = self.resource_version

    def scan(
        self, type_key: TypeKey, namespace: str | None, start_after: ObjectKey | None
    ) -> Iterator[Record]:
        """Records in key order (namespace, name) after `start_after`; namespace None: all."""
        with self.lock:
            keys = self._keys.get(type_key, [])
            records = self._records.get(type_key, [])
            if namespace is not None:
                low = (namespace, "") if start_after is None else max(start_after, (namespace, ""))
                position = bisect.bisect_right(keys, low)
                end = bisect.bisect_left(keys, (namespace + "\x00", ""))
            else:
                position = bisect.bisect_right(keys, start_after) if start_after else 0
                end = len(keys)
            # A consistent snapshot of the range (reference copies only).
            snapshot = records[position:end]
        yield from snapshot

    def scan_indexed(
        self,
        type_key: TypeKey,
        label: str,
        value: str,
        namespace: str | None,
        start_after: ObjectKey | None,
    ) -> Iterator[Record] | None:
        """Like scan, restricted to records whose indexed `label` equals `value`; None when
        the field is not indexed."""
        if label not in self.indexed_fields.get(type_key, ()):
            return None
        with self.lock:
            keys = sorted(self._index[type_key][label].get(value, ()))
            objects = self._objects[type_key]
            found = [objects[key] for key in keys if key in objects]
        return (
            record
            for record in found
            if (start_after is None or record.key > start_after)
            and (namespace is None or record.key[0] == namespace)
        )

    def remaining_after(self, type_key: TypeKey, namespace: str | None, last: ObjectKey) -> int:
        keys = self._keys.get(type_key, [])
        position = bisect.bisect_right(keys, last)
        if namespace is None:
            return len(keys) - position
        end = bisect.bisect_left(keys, (namespace + "\x00", ""))
        return max(0, end - position)

    def type_keys(self) -> list[TypeKey]:
        return [key for key, objects in self._objects.items() if objects]

    def drop_type(self, type_key: TypeKey) -> None:
        with self.lock:
            self._objects.pop(type_key, None)
            self._keys.pop(type_key, None)
            self._records.pop(type_key, None)
            self._index.pop(type_key, None)

    # -------------------------------------------------------------- snapshots

    def save(self, path: str) -> None:
        with self.lock:
            data = {
                "resourceVersion": self.resource_version,
                "objects": {
                    f"{group}/{plural}": [record.raw.decode("utf-8") for record in objects.values()]
                    for (group, plural), objects in self._objects.items()
                    if objects
                },
            }
        temporary = path + ".tmp"
        with open(temporary, "w", encoding="utf-8") as handle:
            json.dump(data, handle)
        os.replace(temporary, path)

    @staticmethod
    def read_snapshot(path: str) -> dict[str, Any] | None:
        if not os.path.exists(path):
            return None
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
