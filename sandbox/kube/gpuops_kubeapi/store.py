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

TypeKey = tuple[str, str]  # (group, plural)
ObjectKey = tuple[str, str]  # (namespace, name); namespace "" for cluster-scoped
EVENT_LOG_SIZE = 20000


def encode(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class Record:
    """One stored object: its JSON plus what selectors need, pre-extracted."""

    __slots__ = ("fields", "key", "labels", "raw", "rv")

    def __init__(
        self, raw: bytes, labels: dict[str, str], fields: dict[str, str], rv: int, key: ObjectKey
    ):
        self.raw = raw
        self.labels = labels
        self.fields = fields
        self.rv = rv
        self.key = key

    def decode(self) -> dict[str, Any]:
        return json.loads(self.raw)


class Event:
    __slots__ = ("record", "rv", "type", "type_key")

    def __init__(self, rv: int, event_type: str, type_key: TypeKey, record: Record):
        self.rv = rv
        self.type = event_type
        self.type_key = type_key
        self.record = record


class Store:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.resource_version = 1
        self._objects: dict[TypeKey, dict[ObjectKey, Record]] = collections.defaultdict(dict)
        self._order: dict[TypeKey, list[ObjectKey]] = collections.defaultdict(list)
        self.events: collections.deque[Event] = collections.deque(maxlen=EVENT_LOG_SIZE)
        self.closed = False

    def next_rv(self) -> int:
        with self.lock:
            self.resource_version += 1
            return self.resource_version

    def get(self, type_key: TypeKey, key: ObjectKey) -> Record | None:
        return self._objects.get(type_key, {}).get(key)

    def count(self, type_key: TypeKey) -> int:
        return len(self._objects.get(type_key, {}))

    def put(self, type_key: TypeKey, record: Record, event_type: str) -> None:
        with self.lock:
            objects = self._objects[type_key]
            if record.key not in objects:
                bisect.insort(self._order[type_key], record.key)
            objects[record.key] = record
            self.events.append(Event(record.rv, event_type, type_key, record))
            self.changed.notify_all()

    def remove(self, type_key: TypeKey, record: Record) -> None:
        """Remove; `record` is the object as of its deletion (carrying the deletion's rv)."""
        with self.lock:
            objects = self._objects[type_key]
            if objects.pop(record.key, None) is not None:
                order = self._order[type_key]
                del order[bisect.bisect_left(order, record.key)]
            self.events.append(Event(record.rv, "DELETED", type_key, record))
            self.changed.notify_all()

    def load(self, type_key: TypeKey, records: list[Record]) -> None:
        """Bulk insert without events (benchmarks, snapshots)."""
        with self.lock:
            objects = self._objects[type_key]
            for record in records:
                objects[record.key] = record
            self._order[type_key] = sorted(objects)

    def scan(
        self, type_key: TypeKey, namespace: str | None, start_after: ObjectKey | None
    ) -> Iterator[Record]:
        """Records in key order (namespace, name) after `start_after`; namespace None: all."""
        with self.lock:
            order = self._order.get(type_key, [])
            objects = self._objects.get(type_key, {})
            if namespace is not None:
                low = (namespace, "") if start_after is None else max(start_after, (namespace, ""))
                position = (
                    bisect.bisect_right(order, low)
                    if start_after
                    else bisect.bisect_left(order, low)
                )
            else:
                position = bisect.bisect_right(order, start_after) if start_after else 0
            keys = order[position:]
        for key in keys:
            if namespace is not None and key[0] != namespace:
                break
            record = objects.get(key)
            if record is not None:
                yield record

    def remaining_after(self, type_key: TypeKey, namespace: str | None, last: ObjectKey) -> int:
        order = self._order.get(type_key, [])
        position = bisect.bisect_right(order, last)
        if namespace is None:
            return len(order) - position
        end = bisect.bisect_left(order, (namespace + "\x00", ""))
        return max(0, end - position)

    def type_keys(self) -> list[TypeKey]:
        return [key for key, objects in self._objects.items() if objects]

    def drop_type(self, type_key: TypeKey) -> None:
        with self.lock:
            self._objects.pop(type_key, None)
            self._order.pop(type_key, None)

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
