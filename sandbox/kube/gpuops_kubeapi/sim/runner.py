"""Run the simulated controllers in-process: a thread that wakes on every store change, when a
controller asked to be woken at a time (grace periods, tolerationSeconds, TTLs, simulated
container run times), and every `resync` seconds for controllers whose inputs live outside the
store (a host's NVML state file).

Controllers are level-triggered: each pass compares what is stored with what should be and
writes only the difference, through `Cluster` methods, so watches, resourceVersions and
managedFields behave as for any client. Like informers, a pass is told what changed since the
previous one (the store's event log, per kind and object key) so work is proportional to the
changes, not to the cluster; the first pass, and any pass after the event log overflowed, is a
full resync (`changes` is None).
"""

from __future__ import annotations

import abc
import heapq
import json
import sys
import threading
import time
import traceback
from typing import Any, Iterable

from ..api import MERGE_PATCH, Cluster, WriteOptions, now
from ..errors import ApiError
from ..store import Event, ObjectKey, Record, TypeKey

CONTROLLER_NAMES = (
    "serviceaccount",
    "node-lifecycle",
    "deployment",
    "replicaset",
    "daemonset",
    "statefulset",
    "job",
    "disruption",
    "scheduler",
    "kubelet",
    "taint-eviction",
    "gpu-operator",
    "mig-manager",
    "device-plugin",
    "olm",
    "velero",
    "karpenter",
    "keda",
    "hpa",
    "cluster-autoscaler",
    "cluster-dns",
)
KCM = "kube-controller-manager"

# kind -> object key -> (last event, state before the first event of this pass)
Changes = dict[TypeKey, dict[ObjectKey, tuple[Event, Record | None]]]


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

    def records(self, group: str, version: str, plural: str, namespace: str | None = None):
        """The stored records of a kind (raw JSON, labels, selectable fields, rv), no decoding."""
        resource_type = self.rtype(group, version, plural)
        if resource_type is None:
            return []
        scope = namespace if resource_type.namespaced and namespace else None
        with self.cluster.lock:
            return list(self.cluster.store.scan(resource_type.key, scope, None))

    def record(self, type_key: TypeKey, key: ObjectKey) -> Record | None:
        return self.cluster.store.get(type_key, key)

    def dependents(self, owner_uid: str, type_key: TypeKey) -> list[Record]:
        """Records of `type_key` whose ownerReferences name `owner_uid`."""
        store = self.cluster.store
        found = []
        with self.cluster.lock:
            for dependent_type, key in store.dependents(owner_uid):
                if dependent_type == type_key:
                    record = store.get(type_key, key)
                    if record is not None:
                        found.append(record)
        return found

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

    def update(self, group, version, plural, obj, subresource="") -> Any:
        """PUT with the object's resourceVersion (optimistic, as controllers write status):
        None when it changed meanwhile or is gone; the next pass sees the new state."""
        resource_type = self.rtype(group, version, plural)
        if resource_type is None:
            return None
        metadata = obj["metadata"]
        try:
            result, _unused = self.cluster.update(
                resource_type,
                metadata.get("namespace"),
                metadata["name"],
                obj,
                WriteOptions(field_manager=self.manager),
                subresource,
            )
        except ApiError as exc:
            if exc.code in (404, 409):
                return None
            raise
        return result

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

    def delete(
        self,
        group,
        version,
        plural,
        namespace,
        name,
        grace: int | None = None,
        propagation: str = "Background",
        uid: str | None = None,
    ) -> None:
        resource_type = self.rtype(group, version, plural)
        if resource_type is None:
            return
        options = WriteOptions(propagation=propagation, grace_period=grace)
        try:
            self.cluster.delete(
                resource_type, namespace, name, options, {"uid": uid} if uid else None
            )
        except ApiError as exc:
            if exc.code not in (404, 409):
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
                    "resourceVersion": metadata.get("resourceVersion"),
                },
                "reason": reason,
                "message": message,
                "type": kind,
                "source": {"component": self.manager},
                "reportingComponent": self.manager,
                "firstTimestamp": stamp,
                "lastTimestamp": stamp,
                "count": 1,
            },
        )


class Controller(abc.ABC):
    name = ""
    # The field manager and event source it writes as (default: its name).
    manager = ""
    # Whether a pass is due every resync period even when the store did not change (state
    # outside the store, such as a host's NVML state file, can change meanwhile).
    periodic = False

    def __init__(self, cluster: Cluster, options: dict[str, Any]) -> None:
        self.cluster = cluster
        self.options = options
        self.client = Client(cluster, self.manager or self.name)
        # What changed since the previous pass (None: everything, a full resync).
        self.changes: Changes | None = None

    @abc.abstractmethod
    def reconcile(self) -> None:
        """One pass: read the store, write what the real controller would."""

    def next_wake(self) -> float | None:
        """Monotonic time this controller wants a pass at, even if nothing changes."""
        return None


class WorkController(Controller):
    """A controller with a work queue of primary object keys, as kube-controller-manager's:
    events on watched kinds map to the keys they concern, `sync(key)` reconciles one, and
    `requeue(key, seconds)` asks for a later sync (time-driven state)."""

    primary: TypeKey = ("", "")

    def __init__(self, cluster: Cluster, options: dict[str, Any]) -> None:
        super().__init__(cluster, options)
        self._timers: list[tuple[float, ObjectKey]] = []

    def keys_for(
        self, type_key: TypeKey, key: ObjectKey, event: Event, before: Record | None
    ) -> Iterable[ObjectKey]:
        """Primary keys an event concerns (default: the primary kind's own events)."""
        return (key,) if type_key == self.primary else ()

    def all_keys(self) -> Iterable[ObjectKey]:
        with self.cluster.lock:
            return [r.key for r in self.cluster.store.scan(self.primary, None, None)]

    @abc.abstractmethod
    def sync(self, key: ObjectKey) -> None:
        """Reconcile one primary object (it may be gone)."""

    def requeue(self, key: ObjectKey, seconds: float) -> None:
        heapq.heappush(self._timers, (time.monotonic() + max(seconds, 0.0), key))

    def next_wake(self) -> float | None:
        return self._timers[0][0] if self._timers else None

    def reconcile(self) -> None:
        keys: set[ObjectKey] = set()
        if self.changes is None:
            keys.update(self.all_keys())
        else:
            for type_key, events in self.changes.items():
                for key, (event, before) in events.items():
                    keys.update(self.keys_for(type_key, key, event, before))
        moment = time.monotonic()
        while self._timers and self._timers[0][0] <= moment:
            keys.add(heapq.heappop(self._timers)[1])
        for key in sorted(keys):
            self.sync(key)


class Runner:
    def __init__(self, cluster: Cluster, controllers: list[Controller], resync: float = 0.5):
        self.cluster = cluster
        self.controllers = controllers
        self.resync = resync
        self.passes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="controllers", daemon=True)
        self._cursor = -1  # resourceVersion up to which events were handed out

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

    def collect_changes(self) -> Changes | None:
        """Events since the last pass, newest per object (None: resync everything)."""
        store = self.cluster.store
        with store.lock:
            cursor, self._cursor = self._cursor, store.resource_version
            if cursor < 0 or store.resynced_at > cursor:
                return None
            events = store.events
            if events and len(events) == events.maxlen and events[0].rv > cursor + 1:
                return None  # the log no longer reaches back to the last pass
            pending = []
            for event in reversed(events):
                if event.rv <= cursor:
                    break
                pending.append(event)
        changes: Changes = {}
        for event in reversed(pending):
            per_kind = changes.setdefault(event.type_key, {})
            first = per_kind.get(event.record.key)
            before = first[1] if first is not None else event.previous
            per_kind[event.record.key] = (event, before)
        return changes

    def run_once(self, store_changed: bool = True) -> None:
        changes = self.collect_changes() if store_changed or self._cursor < 0 else {}
        moment = time.monotonic()
        for controller in self.controllers:
            due = (controller.next_wake() or float("inf")) <= moment
            if not store_changed and not controller.periodic and not due:
                continue
            controller.changes = changes
            try:
                controller.reconcile()
            except Exception:  # a controller bug must not stop the others or the server
                print(f"controller {controller.name} failed:", file=sys.stderr)
                traceback.print_exc()
        self.passes += 1

    def _timeout(self) -> float:
        moment = time.monotonic()
        wakes = [w for w in (c.next_wake() for c in self.controllers) if w is not None]
        timeout = self.resync if any(c.periodic for c in self.controllers) else 5.0
        if wakes:
            timeout = min(timeout, max(min(wakes) - moment, 0.0))
        return timeout

    def _loop(self) -> None:
        store = self.cluster.store
        seen = -1
        while not self._stop.is_set():
            with store.changed:
                if store.resource_version == seen and not store.closed:
                    timeout = self._timeout()
                    if timeout > 0:
                        store.changed.wait(timeout=timeout)
                if store.closed:
                    return
                changed = store.resource_version != seen
                seen = store.resource_version
            if self._stop.is_set():
                return
            self.run_once(changed)
            # Settle: if this pass wrote, the next loop runs at once (rv moved on).


class NodesOfThePass:
    """Mixin for a controller that looks nodes up by name: each reconcile pass decodes the
    nodes once (the dicts are shared: read only)."""

    _nodes: dict[str, dict[str, Any]] | None = None

    def reconcile(self) -> None:
        self._nodes = None
        super().reconcile()  # type: ignore[misc]

    def _node(self, name: str) -> dict[str, Any] | None:
        if self._nodes is None:
            self._nodes = {
                n["metadata"]["name"]: n
                for n in self.client.list_cached("", "v1", "nodes")  # type: ignore[attr-defined]
            }
        return self._nodes.get(name)
