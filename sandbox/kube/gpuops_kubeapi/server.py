"""HTTP layer: TLS, authentication and authorization, request limits, then routing Kubernetes API
paths onto the Cluster, with JSON, Status errors, Warning headers and chunked watch streams.

Every answer is JSON, as kube-apiserver's: malformed request lines, unsupported methods, URLs
over 64 KiB, bad query parameters and oversized bodies get a `Status` with the right code, never
an HTML page or a 500. Connections are served by at most `max_connections` threads (more wait
in the listen backlog, answered as threads free up); idle keep-alive connections close after
IDLE_SECONDS; a watch whose client went away ends within WATCH_POLL_SECONDS.
"""

from __future__ import annotations

import select
import socket
import ssl
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

from . import discovery, protobuf, rbac
from .api import Cluster, WriteOptions
from .auth import Authenticator, Identity, Pki, Unauthorized
from .errors import ApiError, bad_request, method_not_allowed, unsupported_media_type
from .kinds import ResourceType
from .openapi import OpenApi
from .selectors import fields_match, labels_match
from .store import MAX_JSON_DEPTH, decode_json, encode, json_depth

MAX_WATCH_SECONDS = 1800
MAX_BODY_BYTES = 3 * 1024 * 1024  # the apiserver's --max-request-bytes default body limit
DISCARD_BYTES = 256 * 1024
MAX_CONNECTIONS = 512
IDLE_SECONDS = 60
HANDSHAKE_SECONDS = 10
WATCH_POLL_SECONDS = 0.5
_TRUE = ("1", "t", "T", "true", "TRUE", "True")
_FALSE = ("0", "f", "F", "false", "FALSE", "False")
_NOT_FOUND = "the server could not find the requested resource"


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


# Lingering close (shutdown_request): how long, and how much unread input, before the close.
LINGER_SECONDS = 0.5
LINGER_MAX_BYTES = 1 << 20


class _BodyError(ApiError):
    """A request body that cannot be read (bad length, too large): answered, then the
    connection is closed since its remaining bytes cannot be trusted."""


def _unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


class KubeApiServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024  # bursts of clients wait here instead of being refused

    def __init__(
        self,
        address: tuple[str, int],
        cluster: Cluster,
        verbose: bool = False,
        pki: Pki | None = None,
        max_connections: int = MAX_CONNECTIONS,
    ):
        super().__init__(address, RequestHandler)
        self.cluster = cluster
        self.verbose = verbose
        self.pki = pki
        self.token_pki = pki  # signs TokenRequests (also with --plain-http)
        self.tls_context = pki.server_context() if pki is not None else None
        # Without a PKI (plain HTTP), every request is the admin, as on the old insecure port.
        self.authenticator = Authenticator(pki, cluster) if pki is not None else None
        self.authorizer = rbac.RbacAuthorizer(cluster)
        self.openapi = OpenApi(cluster)
        self._slots = threading.BoundedSemaphore(max_connections)
        self._stopping = False
        self.connections = 0

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        scheme = "https" if self.tls_context is not None else "http"
        return f"{scheme}://{host}:{port}"

    def shutdown(self) -> None:
        self._stopping = True
        super().shutdown()

    def process_request(self, request, client_address) -> None:
        # At most max_connections threads: when all are busy, the accept loop waits here and
        # further connections queue in the listen backlog until a thread is free.
        while not self._slots.acquire(timeout=0.5):
            if self._stopping:
                self.shutdown_request(request)
                return
        try:
            thread = threading.Thread(
                target=self.process_request_thread,
                args=(request, client_address),
                name="kubeapi-connection",
                daemon=True,
            )
            thread.start()
        except BaseException:
            self._slots.release()
            self.shutdown_request(request)
            raise

    def process_request_thread(self, request, client_address) -> None:
        self.connections += 1
        connection = request
        try:
            if self.tls_context is not None:
                connection = self._handshake(request)
                if connection is None:
                    return
            self.finish_request(connection, client_address)
        except Exception:
            self.handle_error(connection, client_address)
        finally:
            if connection is not None:
                self.shutdown_request(connection)
            self.connections -= 1
            self._slots.release()

    def shutdown_request(self, request) -> None:
        """Close a connection the way Go's net/http does after an early answer (a 414, a
        refused body): shut the write side, then read and drop what the client is still sending
        for a moment, so the close does not reset the connection before the client has read the
        answer (closing with unread input sends a TCP RST, which the client sees mid-send)."""
        try:
            request.shutdown(socket.SHUT_WR)  # an SSLSocket drops TLS first, as socketserver's did
            request.settimeout(LINGER_SECONDS)
            deadline = time.monotonic() + LINGER_SECONDS
            drained = 0
            while time.monotonic() < deadline and drained < LINGER_MAX_BYTES:
                chunk = request.recv(65536)
                if not chunk:
                    break
                drained += len(chunk)
        except OSError:
            pass
        self.close_request(request)

    def _handshake(self, raw: socket.socket):
        raw.settimeout(HANDSHAKE_SECONDS)
        try:
            wrapped = self.tls_context.wrap_socket(
                raw, server_side=True, do_handshake_on_connect=False
            )
            wrapped.do_handshake()
            return wrapped
        except (OSError, ValueError):  # ssl.SSLError is an OSError: bad CA, garbage, timeout
            try:
                raw.close()
            except OSError:
                pass
            return None

    def handle_error(self, request, client_address) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, (OSError, TimeoutError)):
            return  # the peer went away or stalled; nothing to answer
        traceback.print_exc()


def _route_parts(path: str) -> list[str]:
    """Path segments, each percent-decoded (clients escape ':' in names such as
    system:discovery)."""
    return [unquote(p) for p in path.split("/") if p]


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
    parts = _route_parts(path)
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
        if len(rest) > 5:
            return None
        return _Route(group, version, rest[1], rest[2], _at(rest, 3), _at(rest, 4) or "", True)
    if len(rest) > 3:
        return None
    return _Route(group, version, None, rest[0], _at(rest, 1), _at(rest, 2) or "", False)


def _at(parts: list[str], index: int) -> str | None:
    return parts[index] if len(parts) > index else None


class RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "gpuops-kubeapi"
    timeout = IDLE_SECONDS  # idle keep-alive connections and stalled requests end
    server: KubeApiServer

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without this, Nagle plus delayed ACKs
        # add ~40 ms to every keep-alive request.
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        self.body = b""
        self.query: dict[str, str] = {}
        self.identity: Identity | None = None

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        if self.server.verbose:
            sys.stderr.write("%s - %s\n" % (self.address_string(), format % args))

    def send_error(self, code: int, message: str | None = None, explain: str | None = None):
        """The stdlib's error page, as a Status (malformed request lines, over-long URLs and
        headers, unknown methods)."""
        reasons = {400: "BadRequest", 405: "MethodNotAllowed", 408: "Timeout"}
        if code == 501:  # "Unsupported method": the apiserver answers 405
            code = 405
            message = "the server does not allow this method on the requested resource"
        text = message or self.responses.get(code, ("error",))[0]
        self.close_connection = True
        # An unparsable request line leaves the stdlib at HTTP/0.9, which has no status line
        # or headers; Go's server answers garbage with a full HTTP/1.1 response.
        if getattr(self, "request_version", "HTTP/0.9") == "HTTP/0.9":
            self.request_version = "HTTP/1.1"
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": text,
            "code": code,
        }
        if code in reasons:
            body["reason"] = reasons[code]
        try:
            self._send(code, body)
        except OSError:
            pass

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

    def do_HEAD(self) -> None:  # noqa: N802
        self._refuse_method()

    def do_OPTIONS(self) -> None:  # noqa: N802
        self._refuse_method()

    def _refuse_method(self) -> None:
        self._has_body_pending()
        error = method_not_allowed()
        if self.command == "HEAD":  # same headers as a GET would get, and no body
            data = encode(error.status())
            self.send_response(error.code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            return
        self._send(error.code, error.status())

    # ------------------------------------------------------------------ plumbing

    def _has_body_pending(self) -> bool:
        """Whether a body was announced that has not been read: the connection then closes
        after the answer (its bytes cannot be skipped safely)."""
        announced = self.headers.get("Transfer-Encoding") or (
            (self.headers.get("Content-Length") or "0").strip() not in ("", "0")
        )
        if announced and not getattr(self, "_body_read", False):
            self.close_connection = True
            return True
        return False

    def _handle(self, method: str) -> None:
        self._body_read = False
        try:
            split = urlsplit(self.path)
            try:
                parsed = parse_qs(split.query, keep_blank_values=True, max_num_fields=1000)
            except ValueError as error:
                raise bad_request(f"invalid query: {error}") from error
            self.query = {k: v[-1] for k, v in parsed.items()}
            path = split.path or "/"
            self.identity = self._authenticate(path)
            self._authorize(method, path, split.query)
            self.body = self._read_body()
            self._body_read = True
            self._route(method, path)
        except ApiError as error:
            if isinstance(error, _BodyError):
                self.close_connection = True
            else:
                self._has_body_pending()
            self._send(error.code, error.status())
        except (BrokenPipeError, ConnectionResetError, TimeoutError, ssl.SSLError):
            self.close_connection = True
        except RecursionError:
            self._send(400, bad_request("the request is nested too deeply").status())
        except Exception as error:  # a bug here must still answer like an apiserver would
            traceback.print_exc()
            self._has_body_pending()
            self._send(
                500, ApiError(500, "InternalError", f"Internal error occurred: {error}").status()
            )

    # ------------------------------------------------------------------ authn / authz

    def _authenticate(self, path: str) -> Identity:
        authenticator = self.server.authenticator
        if authenticator is None:
            from .auth import ADMIN

            identity = ADMIN
        else:
            peer = None
            if isinstance(self.connection, ssl.SSLSocket):
                peer = self.connection.getpeercert() or None
            try:
                identity = authenticator.authenticate(path, self.headers.get("Authorization"), peer)
            except Unauthorized:
                raise _unauthorized() from None
        return self._impersonate(identity)

    def _impersonate(self, identity: Identity) -> Identity:
        user = self.headers.get("Impersonate-User")
        groups = self.headers.get_all("Impersonate-Group") or []
        if not user and not groups:
            return identity
        if not user:
            raise bad_request("requested impersonation of groups without a user")
        checks = []
        if user.startswith("system:serviceaccount:") and user.count(":") == 3:
            _unused, _unused2, namespace, name = user.split(":")
            checks.append(("serviceaccounts", namespace, name))
            target_groups = [
                "system:serviceaccounts",
                f"system:serviceaccounts:{namespace}",
            ]
        else:
            checks.append(("users", "", user))
            target_groups = []
        checks += [("groups", "", group) for group in groups]
        for resource, namespace, name in checks:
            attributes = rbac.Attributes(
                identity, "impersonate", True, "", "", "v1", namespace, resource, "", name
            )
            allowed, reason = self.server.authorizer.authorize(attributes)
            if not allowed:
                raise rbac.forbidden(attributes, reason)
        from .auth import AUTHENTICATED

        return Identity(user, tuple(dict.fromkeys(target_groups + groups + [AUTHENTICATED])))

    def _authorize(self, method: str, path: str, raw_query: str) -> None:
        identity = self.identity
        if identity is None or identity.privileged:
            return
        attributes = rbac.request_attributes(identity, method, path, raw_query)
        allowed, reason = self.server.authorizer.authorize(attributes)
        if not allowed:
            raise rbac.forbidden(attributes, reason)

    # ------------------------------------------------------------------ bodies

    def _read_body(self) -> bytes:
        encoding = (self.headers.get("Transfer-Encoding") or "").strip().lower()
        if encoding and encoding != "identity":
            if encoding != "chunked":
                raise _BodyError(501, "", f"unsupported Transfer-Encoding {encoding!r}")
            return self._read_chunked()
        length = self.headers.get("Content-Length")
        if length is None:
            return b""
        length = length.strip()
        if not length.isdigit():
            raise _BodyError(400, "BadRequest", f'invalid Content-Length "{length[:32]}"')
        size = int(length)
        if size > MAX_BODY_BYTES:
            # Like the apiserver (which reads limit+1 bytes and Go's server, which discards up
            # to 256 KiB more), take in what fits that bound so an ordinary client reads the
            # answer; the rest is never read and the connection closes.
            remaining = min(size, MAX_BODY_BYTES + DISCARD_BYTES)
            while remaining > 0:
                chunk = self.rfile.read(min(remaining, 65536))
                if not chunk:
                    break
                remaining -= len(chunk)
            raise _too_large()
        data = self.rfile.read(size) if size else b""
        if len(data) < size:
            raise ConnectionResetError("request body ended early")
        return data

    def _read_chunked(self) -> bytes:
        chunks, total = [], 0
        while True:
            line = self.rfile.readline(1026)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise _BodyError(400, "BadRequest", "malformed chunked encoding") from None
            if size < 0:
                raise _BodyError(400, "BadRequest", "malformed chunked encoding")
            if size == 0:
                while self.rfile.readline(1026) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            total += size
            if total > MAX_BODY_BYTES:
                raise _too_large()
            chunk = self.rfile.read(size)
            if len(chunk) < size:
                raise ConnectionResetError("request body ended early")
            chunks.append(chunk)
            self.rfile.readline(3)

    def _send(self, code: int, payload: Any, warnings: list[str] | None = None) -> None:
        data = payload if isinstance(payload, bytes) else encode(payload)
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-cache, private")
        for warning in warnings or []:
            escaped = warning.replace("\\", "\\\\").replace('"', '\\"')
            self.send_header("Warning", f'299 - "{escaped}"')
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def _json_body(self) -> Any:
        if not self.body:
            return None
        content_type = (self.headers.get("Content-Type") or "application/json").split(";")[0]
        content_type = content_type.strip()
        if content_type == protobuf.CONTENT_TYPE:
            try:
                return protobuf.decode(self.body)
            except protobuf.ProtobufError:
                raise unsupported_media_type(
                    content_type, ["application/json", "application/yaml"]
                ) from None
        if content_type not in ("application/json", "application/yaml", "*/*", ""):
            raise unsupported_media_type(content_type, ["application/json", "application/yaml"])
        if content_type == "application/yaml":
            try:
                value = yaml.safe_load(self.body)
            except (yaml.YAMLError, RecursionError) as error:
                raise bad_request(f"error decoding YAML: {error}") from error
            if json_depth(value) > MAX_JSON_DEPTH:
                raise bad_request("error decoding YAML: exceeded max depth")
            return value
        return decode_json(self.body, "couldn't get version/kind; json parse error")

    # ------------------------------------------------------------------ query parameters

    def _int_param(self, name: str, default: int = 0) -> int:
        value = self.query.get(name)
        if value in (None, ""):
            return default
        text = value[1:] if value[:1] in "+-" else value
        if not text.isdigit():
            raise bad_request(f'strconv.ParseInt: parsing "{value}": invalid syntax')
        return int(value)

    def _bool_param(self, name: str) -> bool:
        value = self.query.get(name)
        if value in (None, ""):
            return False
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
        raise bad_request(f'strconv.ParseBool: parsing "{value}": invalid syntax')

    def _options(self, for_apply: bool = False) -> WriteOptions:
        dry_run = self.query.get("dryRun")
        if dry_run not in (None, "", "All"):
            raise bad_request(f'Invalid value: "{dry_run}": supported values: "All"')
        manager = self.query.get("fieldManager")
        if not manager and not for_apply:
            manager = (self.headers.get("User-Agent") or "unknown").split("/")[0][:128]
        force = self._bool_param("force")
        validation = self.query.get("fieldValidation")
        if validation not in (None, "", "Ignore", "Warn", "Strict"):
            raise bad_request(
                f'fieldValidation: Unsupported value: "{validation}": supported values: '
                '"Ignore", "Warn", "Strict"'
            )
        return WriteOptions(dry_run == "All", manager or "", force, identity=self.identity)

    def _check_strict(self, warnings: list[str]) -> list[str]:
        mode = self.query.get("fieldValidation", "Warn")
        if mode == "Strict" and warnings:
            raise bad_request("strict decoding error: " + ", ".join(warnings))
        return [] if mode == "Ignore" else warnings

    # ------------------------------------------------------------------ routing

    def _route(self, method: str, path: str) -> None:
        cluster = self.server.cluster
        stripped = path.rstrip("/") or "/"
        if stripped in ("/healthz", "/readyz", "/livez"):
            if method != "GET":
                raise method_not_allowed()
            data = b"ok"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        if stripped.startswith("/openapi/"):
            return self._openapi(method, stripped)
        discovery_path = stripped in ("/version", "/api", "/apis") or (
            stripped.startswith("/apis/") and stripped.count("/") == 2
        )
        if method != "GET" and discovery_path:
            raise method_not_allowed()  # discovery documents are read-only
        if stripped == "/version":
            return self._send(200, discovery.SERVER_VERSION)
        if stripped == "/api":
            host, port = self.server.server_address[:2]
            return self._send(200, discovery.api_versions(f"{host}:{port}"))
        if stripped == "/apis":
            return self._send(200, discovery.api_group_list(cluster))
        parts = _route_parts(path)
        if parts[:1] == ["apis"] and len(parts) == 2:
            group_doc = discovery.api_group(cluster, parts[1])
            if group_doc is None:
                raise ApiError(404, "NotFound", _NOT_FOUND, {})
            return self._send(200, group_doc)
        route = parse_path(path)
        if route is None:
            raise ApiError(404, "NotFound", _NOT_FOUND, {})
        if route.plural is None:
            resource_list = discovery.api_resource_list(cluster, route.group, route.version)
            if resource_list is None:
                raise ApiError(404, "NotFound", _NOT_FOUND, {})
            if method != "GET":
                raise method_not_allowed()
            return self._send(200, resource_list)
        resource_type = cluster.resource_type(route.group, route.version, route.plural)
        if route.namespaced_path and not resource_type.namespaced:
            raise ApiError(404, "NotFound", _NOT_FOUND, {})
        if not route.namespaced_path and route.name and resource_type.namespaced:
            raise ApiError(404, "NotFound", _NOT_FOUND, {})
        if route.subresource and route.subresource not in self._subresources(resource_type):
            raise ApiError(404, "NotFound", _NOT_FOUND, {})
        if resource_type.virtual:
            if route.name is not None or method != "POST":
                raise method_not_allowed()
            return self._review(resource_type, route.namespace)
        if route.name is None:
            return self._collection(method, resource_type, route)
        return self._item(method, resource_type, route)

    def _openapi(self, method: str, path: str) -> None:
        if method != "GET":
            raise method_not_allowed()
        openapi = self.server.openapi
        if path == "/openapi/v3":
            return self._send(200, openapi.root())
        if path.startswith("/openapi/v3/"):
            parts = path[len("/openapi/v3/") :].split("/")
            if parts[0] == "api" and len(parts) == 2:
                document = openapi.group_version_document("", parts[1])
            elif parts[0] == "apis" and len(parts) == 3:
                document = openapi.group_version_document(parts[1], parts[2])
            else:
                document = None
            if document is None:
                raise ApiError(404, "NotFound", _NOT_FOUND, {})
            return self._send(200, document)
        if path == "/openapi/v2":
            accept = self.headers.get("Accept") or "application/json"
            if "json" not in accept and "*/*" not in accept:
                raise ApiError(
                    406,
                    "NotAcceptable",
                    "only application/json is served for /openapi/v2 by this stand-in",
                )
            return self._send(200, openapi.v2())
        raise ApiError(404, "NotFound", _NOT_FOUND, {})

    @staticmethod
    def _subresources(resource_type: ResourceType) -> set[str]:
        names = {sub[0] for sub in resource_type.extra_subresources}
        if resource_type.status_subresource:
            names.add("status")
        if resource_type.scale_paths is not None:
            names.add("scale")
        return names

    def _review(self, resource_type: ResourceType, namespace: str | None) -> None:
        body = self._json_body()
        if not isinstance(body, dict):
            raise bad_request(f"the body of a {resource_type.kind} must be a JSON object")
        result = rbac.review(self.server, resource_type.kind, body, self.identity, namespace)
        return self._send(201, result)

    def _collection(self, method: str, resource_type: ResourceType, route: _Route) -> None:
        cluster = self.server.cluster
        if method == "GET":
            if self._bool_param("watch"):
                return self._watch(resource_type, route.namespace)
            limit = self._int_param("limit")
            self._int_param("timeoutSeconds")
            body = cluster.list(
                resource_type,
                route.namespace,
                self.query.get("labelSelector"),
                self.query.get("fieldSelector"),
                max(limit, 0),
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
                self._delete_options(),
            )
            return self._send(200, result)
        raise method_not_allowed()

    def _delete_options(self) -> WriteOptions:
        delete_options = self._json_body() or {}
        if not isinstance(delete_options, dict):
            raise bad_request("DeleteOptions must be a JSON object")
        options = self._options()
        if delete_options.get("dryRun") == ["All"]:
            options.dry_run = True
        propagation = delete_options.get("propagationPolicy") or self.query.get("propagationPolicy")
        if delete_options.get("orphanDependents") is True:
            propagation = "Orphan"
        if propagation not in (None, "Background", "Foreground", "Orphan"):
            raise bad_request(f'Unsupported value: "{propagation}"')
        options.propagation = propagation or "Background"
        grace = delete_options.get("gracePeriodSeconds")
        if grace is None and self.query.get("gracePeriodSeconds") not in (None, ""):
            grace = self._int_param("gracePeriodSeconds")
        if grace is not None and (not isinstance(grace, int) or isinstance(grace, bool)):
            raise bad_request("gracePeriodSeconds must be an integer")
        options.grace_period = grace
        options.preconditions = delete_options.get("preconditions")
        self._orphan_false = delete_options.get("orphanDependents") is False
        return options

    def _item(self, method: str, resource_type: ResourceType, route: _Route) -> None:
        cluster = self.server.cluster
        name = route.name or ""
        subresource = route.subresource
        if subresource in ("eviction", "binding", "token"):
            if method != "POST":
                raise method_not_allowed()
            body = self._json_body()
            options = self._options()
            if subresource == "eviction":
                result = cluster.evict(route.namespace or "", name, body, options)
            elif subresource == "binding":
                result = cluster.bind(route.namespace or "", name, body, options)
            else:
                result = cluster.token_request(
                    route.namespace or "", name, body, options, self.server.token_pki
                )
            return self._send(201, result)
        if subresource == "scale":
            return self._scale(method, resource_type, route)
        if method == "GET":
            if self._bool_param("watch"):
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
            options = self._delete_options()
            result = cluster.delete(
                resource_type, route.namespace, name, options, options.preconditions
            )
            pending = result.get("metadata", {}).get("deletionTimestamp") and not options.dry_run
            still_there = pending and self._exists(resource_type, route.namespace, name)
            # Upstream answers 202 only for a pending delete that asked orphanDependents=false.
            accepted = still_there and getattr(self, "_orphan_false", False)
            return self._send(202 if accepted else 200, result)
        raise method_not_allowed()

    def _scale(self, method: str, resource_type: ResourceType, route: _Route) -> None:
        cluster = self.server.cluster
        namespace, name = route.namespace, route.name or ""
        if method == "GET":
            return self._send(200, cluster.get_scale(resource_type, namespace, name))
        if method == "PUT":
            body = self._json_body()
            return self._send(
                200, cluster.update_scale(resource_type, namespace, name, body, self._options())
            )
        if method == "PATCH":
            content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip()
            return self._send(
                200,
                cluster.patch_scale(
                    resource_type, namespace, name, self.body, content_type, self._options()
                ),
            )
        raise method_not_allowed()

    def _exists(self, resource_type: ResourceType, namespace: str | None, name: str) -> bool:
        try:
            self.server.cluster.get(resource_type, namespace, name)
            return True
        except ApiError:
            return False

    # ------------------------------------------------------------------ watch

    def _peer_closed(self) -> bool:
        """Whether the client hung up (a watch's client sends nothing after its request)."""
        connection = self.connection
        try:
            readable, _unused, _unused2 = select.select([connection], [], [], 0)
        except (OSError, ValueError):
            return True
        if not readable:
            return False
        try:
            if isinstance(connection, ssl.SSLSocket):
                connection.setblocking(False)
                try:
                    data = connection.recv(1)
                except ssl.SSLWantReadError:
                    return False
                finally:
                    connection.setblocking(True)
                    connection.settimeout(self.timeout)
            else:
                data = connection.recv(1, socket.MSG_PEEK)
        except (OSError, ValueError):
            return True
        return not data or isinstance(connection, ssl.SSLSocket)

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
        timeout = self._int_param("timeoutSeconds", MAX_WATCH_SECONDS)
        if timeout <= 0:
            timeout = MAX_WATCH_SECONDS
        deadline = time.monotonic() + min(timeout, MAX_WATCH_SECONDS)
        requested_rv = self.query.get("resourceVersion")
        if requested_rv not in (None, "") and not requested_rv.isdigit():
            raise bad_request(
                f'resourceVersion: Invalid value: "{requested_rv}": strconv.ParseUint: parsing '
                f'"{requested_rv}": invalid syntax'
            )

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
            self.wfile.flush()
            while not store.closed and not self.server._stopping:
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
                        store.changed.wait(min(remaining, WATCH_POLL_SECONDS))
                if not pending:
                    if self._peer_closed():
                        self.close_connection = True
                        return
                    continue
                for event in reversed(pending):
                    cursor = event.rv
                    if event.type_key != resource_type.key:
                        continue
                    event_type = _filtered_event_type(event, wanted)
                    if event_type:
                        self._chunk_raw(event_type, cluster._read_view(resource_type, event.record))
                self.wfile.flush()
            self._end_chunks()
        except (BrokenPipeError, ConnectionResetError, TimeoutError, ssl.SSLError, OSError):
            self.close_connection = True

    def _chunk_raw(self, event_type: str, raw: bytes) -> None:
        data = b'{"type":"' + event_type.encode() + b'","object":' + raw + b"}\n"
        self.wfile.write(f"{len(data):X}\r\n".encode() + data + b"\r\n")

    def _chunk(self, payload: dict[str, Any]) -> None:
        data = encode(payload) + b"\n"
        self.wfile.write(f"{len(data):X}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _end_chunks(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


def _too_large() -> _BodyError:
    return _BodyError(
        413,
        "RequestEntityTooLarge",
        f"Request entity too large: limit is {MAX_BODY_BYTES}",
    )
