"""Bad requests answered as kube-apiserver answers them (JSON Status, the right code, never a
500 or an HTML page), request limits, and a bounded load run: 200 concurrent clients and 300
rapid watch connect/close cycles against one server (127.0.0.1 only), every request answered
and the server back to its idle thread count. The load run prints its figures (pytest -s)."""

from __future__ import annotations

import collections
import json
import socket
import ssl
import threading
import time
from urllib.parse import urlsplit

import pytest

from conftest import start_server, stop_server, wait_for


def _raw(server, data: bytes, read_timeout: float = 10.0) -> bytes:
    """Send raw bytes over TLS and read the answer until the server closes or times out."""
    parts = urlsplit(server.url)
    context = server.ssl_context()
    with socket.create_connection((parts.hostname, parts.port), timeout=read_timeout) as plain:
        with context.wrap_socket(plain, server_hostname=parts.hostname) as tls:
            tls.sendall(data)
            chunks = []
            try:
                while True:
                    chunk = tls.recv(65536)
                    if not chunk:
                        break
                    chunks.append(chunk)
                    if b"\r\n\r\n" in b"".join(chunks) and _complete(b"".join(chunks)):
                        break
            except (TimeoutError, ssl.SSLError, ConnectionResetError):
                pass
    return b"".join(chunks)


def _complete(response: bytes) -> bool:
    head, _unused, body = response.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":", 1)[1])
    return False


def _status(response: bytes) -> tuple[int, dict]:
    head, _unused, body = response.partition(b"\r\n\r\n")
    code = int(head.split(b" ", 2)[1])
    return code, json.loads(body) if body else {}


def _thread_count(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    return -1


def _rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return -1.0


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        ("/api/v1/namespaces?limit=abc", 'strconv.ParseInt: parsing "abc": invalid syntax'),
        ("/api/v1/pods?watch=true&timeoutSeconds=soon", 'parsing "soon"'),
        ("/api/v1/pods?watch=true&resourceVersion=abc", "resourceVersion: Invalid value"),
        ("/api/v1/pods?watch=maybe", 'strconv.ParseBool: parsing "maybe"'),
        ("/api/v1/pods?continue=%%%", "continue key is not valid"),
        ("/api/v1/pods?labelSelector=a%20in%20(", ""),
    ],
)
def test_bad_query_parameters_are_400(kube_server, path, fragment):
    status, headers, body = kube_server.request("GET", path)
    assert status == 400 and headers["Content-Type"] == "application/json"
    parsed = json.loads(body)
    assert parsed["kind"] == "Status" and parsed["reason"] == "BadRequest"
    assert fragment in parsed["message"]


def test_malformed_requests_get_json_status(kube_server):
    token = kube_server.token.encode()
    auth = b"Authorization: Bearer " + token + b"\r\n"
    cases = [
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET /api HTTP/1.1 extra words\r\n\r\n", 400),
        (b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        (b"HEAD /api/v1/namespaces HTTP/1.1\r\nHost: x\r\n" + auth + b"\r\n", 405),
        (b"OPTIONS /api/v1/namespaces HTTP/1.1\r\nHost: x\r\n" + auth + b"\r\n", 405),
        (b"BREW /api/v1/namespaces HTTP/1.1\r\nHost: x\r\n" + auth + b"\r\n", 405),
        (
            b"POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: x\r\n"
            + auth
            + b"Content-Length: abc\r\n\r\n",
            400,
        ),
        (
            b"POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: x\r\n"
            + auth
            + b"Content-Length: -1\r\n\r\n",
            400,
        ),
    ]
    for request, code in cases:
        response = _raw(kube_server, request)
        assert response.startswith(b"HTTP/1.1 %d" % code), (request[:60], response[:200])
        head = response.partition(b"\r\n\r\n")[0].lower()
        assert b"content-type: application/json" in head, response[:300]
        if not request.startswith(b"HEAD"):
            parsed = _status(response)[1]
            assert parsed["kind"] == "Status" and parsed["code"] == code


def test_deeply_nested_json_is_400_not_500(kube_server, namespace):
    deep = b'{"a":' * 5000 + b"1" + b"}" * 5000
    body = (
        b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"deep"},"data":{},"x":'
        + deep
        + b"}"
    )
    status, _unused, raw = kube_server.request(
        "POST",
        f"/api/v1/namespaces/{namespace}/configmaps",
        body=body,
        headers={"Content-Type": "application/json"},
    )
    assert status == 400 and "exceeded max depth" in json.loads(raw)["message"]
    status, _unused, raw = kube_server.request(
        "PATCH",
        f"/api/v1/namespaces/{namespace}/configmaps/x",
        body=deep,
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert status == 400


def test_request_and_object_size_limits(kube_server, namespace, core):
    big = "x" * (3 * 1024 * 1024)
    body = json.dumps(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "huge"}, "data": {"a": big}}
    )
    status, _unused, raw = kube_server.request(
        "POST", f"/api/v1/namespaces/{namespace}/configmaps", body=body.encode()
    )
    assert status == 413
    assert json.loads(raw)["reason"] == "RequestEntityTooLarge"
    assert json.loads(raw)["message"] == "Request entity too large: limit is 3145728"
    # Just over 1 MiB of data fits a request but not a ConfigMap (core.MaxSecretSize).
    over = {"a": "y" * (1024 * 1024), "b": "z"}
    status, _unused, raw = kube_server.request(
        "POST",
        f"/api/v1/namespaces/{namespace}/configmaps",
        body=json.dumps(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big"}, "data": over}
        ).encode(),
    )
    assert status == 422
    assert json.loads(raw)["message"] == (
        'ConfigMap "big" is invalid: []: Too long: may not be more than 1048576 bytes'
    )
    status, _unused, raw = kube_server.request(
        "POST",
        f"/api/v1/namespaces/{namespace}/secrets",
        body=json.dumps(
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "big"}, "stringData": over}
        ).encode(),
    )
    assert status == 422 and "data: Too long" in json.loads(raw)["message"]
    assert core.list_namespaced_config_map(namespace).items == []


def test_load_every_request_answered_threads_and_memory_bounded(tmp_path):
    """200 concurrent clients (each: list, create, get, patch, delete over one keep-alive TLS
    connection) and 300 watches opened and dropped, against a fresh server."""
    server = start_server(tmp_path / "load")
    pid = server.process.pid
    try:
        parts = urlsplit(server.url)
        context = server.ssl_context()
        token = server.token
        time.sleep(0.5)
        threads_before, rss_before = _thread_count(pid), _rss_mib(pid)
        codes: collections.Counter = collections.Counter()
        sent = [0]
        lock = threading.Lock()
        start = threading.Barrier(200)

        def request(connection, method, path, body=None):
            content_type = (
                "application/merge-patch+json" if method == "PATCH" else "application/json"
            )
            headers = {"Authorization": f"Bearer {token}", "Content-Type": content_type}
            with lock:
                sent[0] += 1
            try:
                connection.request(method, path, body=body, headers=headers)
                response = connection.getresponse()
                response.read()
                code = response.status
            except OSError as error:
                code = type(error).__name__
            with lock:
                codes[code] += 1

        def client_run(index):
            import http.client

            connection = http.client.HTTPSConnection(
                parts.hostname, parts.port, timeout=60, context=context
            )
            start.wait()
            name = f"load-{index}"
            base = "/api/v1/namespaces/default/configmaps"
            request(connection, "GET", "/api/v1/namespaces")
            request(
                connection,
                "POST",
                base,
                json.dumps({"metadata": {"name": name}, "data": {"i": str(index)}}),
            )
            request(connection, "GET", f"{base}/{name}")
            request(connection, "PATCH", f"{base}/{name}", '{"data":{"j":"1"}}')
            request(connection, "DELETE", f"{base}/{name}")
            connection.close()

        workers = [threading.Thread(target=client_run, args=(i,)) for i in range(200)]
        started = time.monotonic()
        for worker in workers:
            worker.start()
        peak = 0
        while any(w.is_alive() for w in workers):
            peak = max(peak, _thread_count(pid))
            time.sleep(0.05)
        for worker in workers:
            worker.join()
        load_seconds = time.monotonic() - started

        watch_codes: collections.Counter = collections.Counter()
        for _unused in range(300):
            with socket.create_connection((parts.hostname, parts.port), timeout=10) as plain:
                with context.wrap_socket(plain, server_hostname=parts.hostname) as tls:
                    tls.sendall(
                        b"GET /api/v1/namespaces/default/configmaps?watch=true HTTP/1.1\r\n"
                        b"Host: x\r\nAuthorization: Bearer " + token.encode() + b"\r\n\r\n"
                    )
                    first = tls.recv(64)
                    watch_codes[int(first.split(b" ", 2)[1]) if first else "closed"] += 1
            # dropped without reading further or ending the request
        settled = wait_for(
            lambda: _thread_count(pid) <= threads_before and _thread_count(pid), timeout=20
        )
        rss_after = _rss_mib(pid)
        answered = sum(n for code, n in codes.items() if isinstance(code, int))
        print(
            f"\nload: {sent[0]} requests sent by 200 concurrent clients in {load_seconds:.1f} s, "
            f"{answered} answered, by code {dict(sorted(codes.items(), key=str))}; "
            f"300 watch connect/close cycles {dict(watch_codes)}; threads before "
            f"{threads_before}, peak {peak}, after {settled}; RSS before {rss_before:.0f} MiB, "
            f"after {rss_after:.0f} MiB"
        )
        assert sent[0] == 1000 and answered == 1000
        assert codes[200] == 800 and codes[201] == 200  # list/get/patch/delete 200, create 201
        assert watch_codes == {200: 300}
        assert settled <= threads_before
        assert rss_after < rss_before + 150
        assert peak <= threads_before + 512
    finally:
        stop_server(server)
