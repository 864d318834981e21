"""HTTP layer: routes Kubernetes API paths onto the Cluster, with JSON, Status errors,
Warning headers and chunked watch streams."""

from __future__ import annotations

import json
import socket
import sys
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

from . import discovery
from .api import Cluster, WriteOptions
from .errors import ApiError, bad_request, method_not_allowed, unsupported_media_type
from .kinds import ResourceType
from .selectors import fields_match, labels_match
from .store import encode

MAX_WATCH_SECONDS = 1800


def _filtered_event_type(event, wanted) -> str | None:
    """What a filtered watch reports: an object modified into the filter is ADDED, one
    modified out of it is DELETED, as the apiserver's watch cache does."""
    now_matches = wanted(event.record)
    if event.type != "MODIFIED" or event.previous is None:
        return event.type if now_matches else None
    before_matches = wanted(event.previous)
    if now_matches:
        return "MODIFIED" if before_matches else "ADDED"
    return "DELETED" if before_matches else None


class KubeApiServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], cluster: Cluster, verbose: bool = False):
        super().__init__(address, RequestHandler)
        self.cluster = cluster
        self.verbose = verbose

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


class _Route:
    def __init__(
        self,
        group: str,
        version: str,
        namespace: str | None,
        plural: str | None,
        name: str | None,
        subresource: str,
        namespaced_path: bool,
    ):
        self.group = group
        self.version = version
        self.namespace = namespace
        self.plural = plural
        self.name = name
        self.subresource = subresource
        self.namespaced_path = namespaced_path


def parse_path(path: str) -> _Route | None:
    parts = [p for p in path.split("/") if p]
    if parts[:1] == ["api"] and len(parts) >= 2:
        group, version, rest = "", parts[1], parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    if not rest:
        return _Route(group, version, None, None, None, "", False)
    if (
        rest[0] == "namespaces"
        and len(rest) >= 3
        and not (len(rest) == 3 and rest[2] in ("status", "finalize"))
    ):
        return _Route(group, version, rest[1], rest[2], _at(rest, 3), _at(rest, 4) or "", True)
    return _Route(group, version, None, rest[0], _at(rest, 1), _at(rest, 2) or "", False)


def _at(parts: list[str], index: int) -> str | None:
    return parts[index] if len(parts) > index else None


class RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "gpuops-kubeapi"
    server: KubeApiServer

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without this, Nagle plus delayed ACKs
        # add ~40 ms to every keep-alive request.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        if self.server.verbose:
            sys.stderr.write("%s - %s\n" % (self.address_string(), format % args))

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._handle("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._handle("POST")

    def do_PUT(self) -> None:  # noqa: N802
        self._handle("PUT")

    def do_PATCH(self) -> None:  # noqa: N802
        self._handle("PATCH")

    def do_DELETE(self) -> None:  # noqa: N802
        self._handle("DELETE")

    # ------------------------------------------------------------------ plumbing

    def _handle(self, method: str) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
            self.body = self.rfile.read(length) if length else b""
            split = urlsplit(self.path)
            self.query = {
                k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()
            }
            self._route(method, split.path)
        except ApiError as error:
            self._send(error.code, error.status())
        except BrokenPipeError:
            pass
        except Exception as error:  # a bug here must still answer like an apiserver would
            traceback.print_exc()
            self._send(
                500, ApiError(500, "InternalError", f"Internal error occurred: {error}").status()
            )

    def _send(self, code: int, payload: Any, warnings: list[str] | None = None) -> None:
        data = payload if isinstance(payload, bytes) else encode(payload)
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for warning in warnings or []:
            escaped = warning.replace("\\", "\\\\").replace('"', '\\"')
            self.send_header("Warning", f'299 - "{escaped}"')
        self.end_headers()
        self.wfile.write(data)

    def _json_body(self) -> Any:
        if not self.body:
            return None
        content_type = (self.headers.get("Content-Type") or "application/json").split(";")[0]
        if content_type not in ("application/json", "application/yaml", "*/*", ""):
            raise unsupported_media_type(content_type, ["application/json", "application/yaml"])
        if content_type == "application/yaml":
            try:
                return yaml.safe_load(self.body)
            except yaml.YAMLError as error:
                raise bad_request(f"error decoding YAML: {error}") from error
        try:
            return json.loads(self.body)
        except ValueError as error:
            raise bad_request(f"couldn't get version/kind; json parse error: {error}") from error

    def _options(self, for_apply: bool = False) -> WriteOptions:
        dry_run = self.query.get("dryRun")
        if dry_run not in (None, "", "All"):
            raise bad_request(f'Invalid value: "{dry_run}": supported values: "All"')
        manager = self.query.get("fieldManager")
        if not manager and not for_apply:
            manager = (self.headers.get("User-Agent") or "unknown").split("/")[0][:128]
        force = (self.query.get("force") or "").lower() == "true"
        return WriteOptions(dry_run == "All", manager or "", force)

    def _check_strict(self, warnings: list[str]) -> list[str]:
        mode = self.query.get("fieldValidation", "Warn")
        if mode == "Strict" and warnings:
            raise bad_request("strict decoding error: " + ", ".join(warnings))
        return [] if mode == "Ignore" else warnings

    # ------------------------------------------------------------------ routing

    def _route(self, method: str, path: str) -> None:
        cluster = self.server.cluster
        if path in ("/healthz", "/readyz", "/livez"):
            data = b"ok"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        if path.rstrip("/") == "/version":
            return self._send(200, discovery.SERVER_VERSION)
        if path.rstrip("/") == "/api":
            host, port = self.server.server_address[:2]
            return self._send(200, discovery.api_versions(f"{host}:{port}"))
        if path.rstrip("/") == "/apis":
            return self._send(200, discovery.api_group_list(cluster))
        parts = [p for p in path.split("/") if p]
        if parts[:1] == ["apis"] and len(parts) == 2:
            group_doc = discovery.api_group(cluster, parts[1])
            if group_doc is None:
                raise ApiError(
                    404, "NotFound", "the server could not find the requested resource", {}
                )
            return self._send(200, group_doc)
        route = parse_path(path)
        if route is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource", {})
        if route.plural is None:
            resource_list = discovery.api_resource_list(cluster, route.group, route.version)
            if resource_list is None or method != "GET":
                raise ApiError(
                    404, "NotFound", "the server could not find the requested resource", {}
                )
            return self._send(200, resource_list)
        resource_type = cluster.resource_type(route.group, route.version, route.plural)
        if route.namespaced_path and not resource_type.namespaced:
            raise ApiError(404, "NotFound", "the server could not find the requested resource", {})
        if not route.namespaced_path and route.name and resource_type.namespaced:
            raise ApiError(404, "NotFound", "the server could not find the requested resource", {})
        if route.subresource and route.subresource not in self._subresources(resource_type):
            raise ApiError(404, "NotFound", "the server could not find the requested resource", {})
        if route.name is None:
            return self._collection(method, resource_type, route)
        return self._item(method, resource_type, route)

    @staticmethod
    def _subresources(resource_type: ResourceType) -> set[str]:
        names = {sub[0] for sub in resource_type.extra_subresources}
        if resource_type.status_subresource:
            names.add("status")
        return names

    def _collection(self, method: str, resource_type: ResourceType, route: _Route) -> None:
        cluster = self.server.cluster
        if method == "GET":
            if self.query.get("watch") in ("true", "1", "True"):
                return self._watch(resource_type, route.namespace)
            limit = int(self.query.get("limit") or 0)
            body = cluster.list(
                resource_type,
                route.namespace,
                self.query.get("labelSelector"),
                self.query.get("fieldSelector"),
                limit,
                self.query.get("continue"),
            )
            return self._send(200, body)
        if method == "POST":
            obj, warnings = cluster.create(
                resource_type, route.namespace, self._json_body(), self._options()
            )
            return self._send(201, obj, self._check_strict(warnings))
        if method == "DELETE":
            result = cluster.delete_collection(
                resource_type,
                route.namespace,
                self.query.get("labelSelector"),
                self.query.get("fieldSelector"),
                self._options(),
            )
            return self._send(200, result)
        raise method_not_allowed()

    def _item(self, method: str, resource_type: ResourceType, route: _Route) -> None:
        cluster = self.server.cluster
        name = route.name or ""
        subresource = route.subresource
        if subresource == "eviction":
            if method != "POST":
                raise method_not_allowed()
            result = cluster.evict(route.namespace or "", name, self._json_body(), self._options())
            return self._send(201, result)
        if method == "GET":
            if self.query.get("watch") in ("true", "1", "True"):
                return self._watch(resource_type, route.namespace, name)
            return self._send(200, cluster.get(resource_type, route.namespace, name))
        if method == "PUT":
            obj, warnings = cluster.update(
                resource_type,
                route.namespace,
                name,
                self._json_body(),
                self._options(),
                subresource,
            )
            return self._send(200, obj, self._check_strict(warnings))
        if method == "PATCH":
            content_type = self.headers.get("Content-Type") or ""
            obj, warnings, code = cluster.patch(
                resource_type,
                route.namespace,
                name,
                self.body,
                content_type,
                self._options(for_apply=content_type.startswith("application/apply-patch")),
                subresource,
            )
            return self._send(code, obj, self._check_strict(warnings))
        if method == "DELETE":
            if subresource:
                raise method_not_allowed()
            delete_options = self._json_body() or {}
            options = self._options()
            if delete_options.get("dryRun") == ["All"]:
                options.dry_run = True
            propagation = delete_options.get("propagationPolicy") or self.query.get(
                "propagationPolicy"
            )
            if delete_options.get("orphanDependents") is True:
                propagation = "Orphan"
            if propagation not in (None, "Background", "Foreground", "Orphan"):
                raise bad_request(f'Unsupported value: "{propagation}"')
            options.propagation = propagation or "Background"
            result = cluster.delete(
                resource_type,
                route.namespace,
                name,
                options,
                delete_options.get("preconditions"),
            )
            pending = result.get("metadata", {}).get("deletionTimestamp") and not options.dry_run
            still_there = pending and self._exists(resource_type, route.namespace, name)
            return self._send(202 if still_there else 200, result)
        raise method_not_allowed()

    def _exists(self, resource_type: ResourceType, namespace: str | None, name: str) -> bool:
        try:
            self.server.cluster.get(resource_type, namespace, name)
            return True
        except ApiError:
            return False

    # ------------------------------------------------------------------ watch

    def _watch(
        self, resource_type: ResourceType, namespace: str | None, name: str | None = None
    ) -> None:
        cluster = self.server.cluster
        store = cluster.store
        label_requirements, field_requirements = cluster.selectors(
            resource_type,
            self.query.get("labelSelector"),
            self.query.get("fieldSelector"),
        )
        scope = namespace if resource_type.namespaced and namespace else None
        timeout = float(self.query.get("timeoutSeconds") or MAX_WATCH_SECONDS)
        deadline = time.monotonic() + min(timeout, MAX_WATCH_SECONDS)
        requested_rv = self.query.get("resourceVersion")

        def wanted(record) -> bool:
            if scope is not None and record.key[0] != scope:
                return False
            if name is not None and record.key[1] != name:
                return False
            return labels_match(label_requirements, record.labels) and fields_match(
                field_requirements, record.fields
            )

        initial = []
        too_old = None
        with store.lock:
            if requested_rv in (None, "", "0"):
                cursor = store.resource_version
                initial = [r for r in store.scan(resource_type.key, scope, None) if wanted(r)]
            else:
                cursor = int(requested_rv)
                log_full = len(store.events) == store.events.maxlen
                if log_full and store.events and cursor < store.events[0].rv - 1:
                    too_old = cursor
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            if too_old is not None:
                error = ApiError(
                    410,
                    "Expired",
                    f"too old resource version: {too_old} ({store.events[0].rv - 1})",
                )
                self._chunk({"type": "ERROR", "object": error.status()})
                return self._end_chunks()
            for record in initial:
                self._chunk_raw("ADDED", cluster._read_view(resource_type, record))
            while not store.closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                with store.changed:
                    pending = []
                    for event in reversed(store.events):
                        if event.rv <= cursor:
                            break
                        pending.append(event)
                    if not pending:
                        store.changed.wait(min(remaining, 1.0))
                        continue
                for event in reversed(pending):
                    cursor = event.rv
                    if event.type_key != resource_type.key:
                        continue
                    event_type = _filtered_event_type(event, wanted)
                    if event_type:
                        self._chunk_raw(event_type, cluster._read_view(resource_type, event.record))
            self._end_chunks()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _chunk_raw(self, event_type: str, raw: bytes) -> None:
        data = b'{"type":"' + event_type.encode() + b'","object":' + raw + b"}\n"
        self.wfile.write(f"{len(data):X}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _chunk(self, payload: dict[str, Any]) -> None:
        data = encode(payload) + b"\n"
        self.wfile.write(f"{len(data):X}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _end_chunks(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()
