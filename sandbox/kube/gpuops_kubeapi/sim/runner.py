"""Run the simulated controllers in-process: a thread that wakes on every store change (and
every `resync` seconds, for changes outside the store such as a host's NVML state file) and
lets each controller reconcile. Controllers are level-triggered: each pass compares what is
stored with what should be and writes only the difference, through `Cluster` methods, so
watches, resourceVersions and managedFields behave as for any client."""

from __future__ import annotations

import abc
import json
import sys
import threading
import traceback
from typing import Any

from ..api import MERGE_PATCH, Cluster, WriteOptions, now
from ..errors import ApiError

CONTROLLER_NAMES = ("gpu-operator", "mig-manager", "device-plugin", "scheduler", "olm")


class Client:
    """What a controller may do: read and write through the API semantics, as itself."""

    def __init__(self, cluster: Cluster, manager: str) -> None:
        self.cluster = cluster
        self.manager = manager
        self._decoded: dict[tuple[str, str], dict[Any, tuple[int, dict[str, Any]]]] = {}

    def rtype(self, group: str, version: str, plural: str):
        return self.cluster.types.get((group, version, plural))

    def list(self, group: str, version: str, plural: str, namespace: str | None = None):
        resource_type = self.rtype(group, version, plural)
        if resource_type is None:
            return []
        scope = namespace if resource_type.namespaced and namespace else None
        with self.cluster.lock:
            records = list(self.cluster.store.scan(resource_type.key, scope, None))
        return [record.decode() for record in records]

    def records(self, group: str, version: str, plural: str):
        """The stored records of a kind (raw JSON, labels, selectable fields, rv), no decoding."""
        resource_type = self.rtype(group, version, plural)
        if resource_type is None:
            return []
        with self.cluster.lock:
            return list(self.cluster.store.scan(resource_type.key, None, None))

    def list_cached(self, group: str, version: str, plural: str):
        """Like list(), but objects unchanged since the last call (same resourceVersion) are
        not decoded again. The returned dicts are shared: read them, never change them."""
        cache = self._decoded.setdefault((group, plural), {})
        fresh = {}
        result = []
        for record in self.records(group, version, plural):
            hit = cache.get(record.key)
            obj = hit[1] if hit is not None and hit[0] == record.rv else record.decode()
            fresh[record.key] = (record.rv, obj)
            result.append(obj)
        self._decoded[(group, plural)] = fresh
        return result

    def get(self, group: str, version: str, plural: str, namespace: str | None, name: str):
        resource_type = self.rtype(group, version, plural)
        if resource_type is None:
            return None
        ns = (namespace or "") if resource_type.namespaced else ""
        record = self.cluster.store.get(resource_type.key, (ns, name))
        return record.decode() if record is not None else None

    def patch(self, group, version, plural, namespace, name, body, subresource="") -> Any:
        resource_type = self.rtype(group, version, plural)
        if resource_type is None:
            return None
        try:
            obj, _unused, _code = self.cluster.patch(
                resource_type,
                namespace,
                name,
                json.dumps(body).encode(),
                MERGE_PATCH,
                WriteOptions(field_manager=self.manager),
                subresource,
            )
        except ApiError as exc:
            if exc.code in (404, 409):  # gone or changed under us: the next pass sees it
                return None
            raise
        return obj

    def create(self, group, version, plural, namespace, body) -> Any:
        resource_type = self.rtype(group, version, plural)
        if resource_type is None:
            return None
        try:
            obj, _unused = self.cluster.create(
                resource_type, namespace, body, WriteOptions(field_manager=self.manager)
            )
        except ApiError as exc:
            if exc.code == 409:
                return None
            raise
        return obj

    def delete(self, group, version, plural, namespace, name) -> None:
        resource_type = self.rtype(group, version, plural)
        if resource_type is None:
            return
        try:
            self.cluster.delete(resource_type, namespace, name, WriteOptions(), None)
        except ApiError as exc:
            if exc.code != 404:
                raise

    def event(self, obj: dict[str, Any], reason: str, message: str, kind: str = "Normal"):
        """A core/v1 Event about `obj`, as controllers record them."""
        metadata = obj["metadata"]
        namespace = metadata.get("namespace") or "default"
        stamp = now()
        self.create(
            "",
            "v1",
            "events",
            namespace,
            {
                "metadata": {"generateName": f"{metadata['name']}.", "namespace": namespace},
                "involvedObject": {
                    "apiVersion": obj.get("apiVersion"),
                    "kind": obj.get("kind"),
                    "name": metadata["name"],
                    "namespace": metadata.get("namespace"),
                    "uid": metadata.get("uid"),
                },
                "reason": reason,
                "message": message,
                "type": kind,
                "source": {"component": self.manager},
                "firstTimestamp": stamp,
                "lastTimestamp": stamp,
                "count": 1,
            },
        )


class Controller(abc.ABC):
    name = ""
    # Whether a pass is due every resync period even when the store did not change (state
    # outside the store, such as a host's NVML state file, can change meanwhile).
    periodic = False

    def __init__(self, cluster: Cluster, options: dict[str, Any]) -> None:
        self.cluster = cluster
        self.options = options
        self.client = Client(cluster, self.name)

    @abc.abstractmethod
    def reconcile(self) -> None:
        """One pass: read the store, write what the real controller would."""


class Runner:
    def __init__(self, cluster: Cluster, controllers: list[Controller], resync: float = 0.5):
        self.cluster = cluster
        self.controllers = controllers
        self.resync = resync
        self.passes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="controllers", daemon=True)
        self._idle = threading.Event()

    def start(self) -> None:
        if self.controllers:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        store = self.cluster.store
        with store.changed:
            store.changed.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def run_once(self, store_changed: bool = True) -> None:
        for controller in self.controllers:
            if not store_changed and not controller.periodic:
                continue
            try:
                controller.reconcile()
            except Exception:  # a controller bug must not stop the others or the server
                print(f"controller {controller.name} failed:", file=sys.stderr)
                traceback.print_exc()
        self.passes += 1

    def _loop(self) -> None:
        store = self.cluster.store
        seen = -1
        while not self._stop.is_set():
            with store.changed:
                if store.resource_version == seen and not store.closed:
                    store.changed.wait(timeout=self.resync)
                if store.closed:
                    return
                changed = store.resource_version != seen
                seen = store.resource_version
            if self._stop.is_set():
                return
            self.run_once(changed)
            # Settle: if this pass wrote, the next loop runs at once (rv moved on).
