"""Start a real Prometheus (Debian's `prometheus` package) on 127.0.0.1 and stop it by PID.

    server = PrometheusServer.start(workdir, scrape_configs=[...])   # ready when it returns
    server.query("up")                                                # instant query, result list
    server.reload(scrape_configs=[...])                               # POST /-/reload
    server.stop()

Install the package with tools/ensure-apt.sh prometheus (the make targets that need it do).
Prometheus listens on a port picked here (it cannot be given port 0), its TSDB lives in workdir.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import yaml

PROMETHEUS_BIN = os.environ.get("GPUOPS_PROMETHEUS_BIN", "prometheus")


class PrometheusError(RuntimeError):
    pass


def find_binary(name: str = PROMETHEUS_BIN) -> str | None:
    return shutil.which(name)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def render_config(
    scrape_configs: list[dict[str, Any]], scrape_interval: str = "1s", rule_files: list[str] | None = None
) -> dict[str, Any]:
    return {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
        "rule_files": list(rule_files or []),
        "scrape_configs": scrape_configs,
    }


class PrometheusServer:
    def __init__(self, process: subprocess.Popen, url: str, workdir: Path):
        self.process = process
        self.pid = process.pid
        self.url = url
        self.workdir = workdir
        self.config_path = workdir / "prometheus.yml"

    @classmethod
    def start(
        cls,
        workdir: Path,
        scrape_configs: list[dict[str, Any]],
        *,
        scrape_interval: str = "1s",
        rule_files: list[str] | None = None,
        timeout: float = 30.0,
    ) -> PrometheusServer:
        binary = find_binary()
        if binary is None:
            raise PrometheusError(
                "prometheus not found on PATH (install Debian's package: tools/ensure-apt.sh prometheus)"
            )
        workdir = Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        config_path = workdir / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(render_config(scrape_configs, scrape_interval, rule_files)))
        last_error = ""
        for _attempt in range(3):  # the picked port can be taken before Prometheus binds it
            port = _free_port()
            log = open(workdir / "prometheus.log", "ab")  # noqa: SIM115 - lives with the process
            process = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config_path}",
                    f"--storage.tsdb.path={workdir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    "--web.enable-lifecycle",
                    "--storage.tsdb.retention.time=1d",
                    "--log.level=warn",
                ],
                stdout=log,
                stderr=log,
                cwd=workdir,
                start_new_session=True,
            )
            log.close()
            server = cls(process, f"http://127.0.0.1:{port}", workdir)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if process.poll() is not None:
                    last_error = (workdir / "prometheus.log").read_text(errors="replace")[-2000:]
                    break
                try:
                    with urllib.request.urlopen(server.url + "/-/ready", timeout=2) as response:
                        if response.status == 200:
                            return server
                except OSError:
                    pass
                time.sleep(0.1)
            else:
                server.stop()
                raise PrometheusError(f"prometheus not ready after {timeout}s; see {workdir / 'prometheus.log'}")
        raise PrometheusError(f"prometheus did not start: {last_error}")

    def _get(self, path: str, params: dict[str, str]) -> Any:
        url = self.url + path + "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                body = json.load(response)
        except urllib.error.HTTPError as exc:  # 400/422: the query's error is in the body
            try:
                body = json.load(exc)
            except ValueError:
                raise PrometheusError(f"{path} {params}: HTTP {exc.code}") from None
        if body.get("status") != "success":
            raise PrometheusError(f"{path}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, promql: str) -> list[dict[str, Any]]:
        """Instant query: the result vector (list of {metric, value})."""
        return self._get("/api/v1/query", {"query": promql})["result"]

    def targets_up(self) -> bool:
        data = self._get("/api/v1/targets", {"state": "active"})
        targets = data.get("activeTargets", [])
        return bool(targets) and all(target.get("health") == "up" for target in targets)

    def wait_for(self, promql: str, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Poll until the query returns data (scrapes are asynchronous)."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(promql)
            if result:
                return result
            if time.monotonic() > deadline:
                raise PrometheusError(f"no data for {promql!r} after {timeout}s")
            time.sleep(0.2)

    def reload(
        self, scrape_configs: list[dict[str, Any]], scrape_interval: str = "1s", rule_files: list[str] | None = None
    ) -> None:
        self.config_path.write_text(yaml.safe_dump(render_config(scrape_configs, scrape_interval, rule_files)))
        request = urllib.request.Request(self.url + "/-/reload", method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        os.kill(self.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.kill(self.pid, signal.SIGKILL)
            self.process.wait()
