"""The backups role with backups_install=helm, for real: the helm 3 binary `make helm` puts in
the venv, kubernetes.core.helm_repository and kubernetes.core.helm, against the Kubernetes API
stand-in running the velero controller with moto's S3.

No chart repository is reachable here, so sandbox/charts/repo.py serves the sandbox's velero
chart on 127.0.0.1 at the version the role pins. Check mode installs nothing; the install
renders the storage location and the credentials Secret from the role's (vaulted) variables
through the chart's values, the stand-in validates that location with those credentials and
the schedule's first backup completes; a rerun changes nothing."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import uuid

import pytest
import yaml

import velero_env
from conftest import ANSIBLE_PLAYBOOK, PLAYBOOKS, REPO_ROOT
from velero_env import CREDS, GROUP, NS, VERSION

HELM = REPO_ROOT / ".venv" / "bin" / "helm"
pytestmark = pytest.mark.skipif(
    not HELM.exists(), reason=f"no helm binary at {HELM}: run `make helm`"
)

s3_endpoint, s3, velero_server = velero_env.s3_endpoint, velero_env.s3, velero_env.velero_server
api, core, custom = velero_env.api, velero_env.core, velero_env.custom


def _pinned_chart_version() -> str:
    defaults = yaml.safe_load(
        (REPO_ROOT / "roles" / "backups" / "defaults" / "main.yml").read_text()
    )
    return defaults["backups_helm_chart_version"]


@pytest.fixture
def chart_repo(tmp_path):
    """The sandbox chart repository on 127.0.0.1 (started here, stopped by its PID)."""
    process = subprocess.Popen(
        [
            sys.executable,
            str(REPO_ROOT / "sandbox" / "charts" / "repo.py"),
            "--dir",
            str(tmp_path / "charts"),
            "--chart",
            f"velero={_pinned_chart_version()}",
            "--helm",
            str(HELM),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    line = process.stdout.readline()
    if "serving" not in line:
        process.kill()
        process.wait()
        raise RuntimeError(f"chart repository did not start: {line!r}")
    yield line.rsplit(" ", 1)[-1].strip()
    os.kill(process.pid, signal.SIGTERM)
    process.wait(timeout=20)


def _run(server, tmp_path, *args, **extra_vars):
    home = tmp_path / "helm"
    env = dict(
        os.environ,
        K8S_AUTH_KUBECONFIG=str(server.kubeconfig),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_PYTHON_INTERPRETER=sys.executable,
        HELM_CONFIG_HOME=str(home / "config"),
        HELM_CACHE_HOME=str(home / "cache"),
        HELM_DATA_HOME=str(home / "data"),
        PATH=f"{HELM.parent}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    env.pop("KUBECONFIG", None)
    command = [
        str(ANSIBLE_PLAYBOOK),
        "-i",
        "localhost,",
        "-c",
        "local",
        str(PLAYBOOKS / "backups_helm.yml"),
    ]
    command += [*args, "-e", json.dumps(extra_vars)]
    return subprocess.run(
        command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def _releases(core, release):
    secrets = core.list_namespaced_secret(NS, label_selector=f"owner=helm,name={release}").items
    return {int(s.metadata.labels["version"]): s.metadata.labels["status"] for s in secrets}


def test_backups_role_installs_velero_by_helm(
    velero_server, core, custom, s3, chart_repo, tmp_path
):
    ns = f"w-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": ns}})
    bucket = f"b-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    names = {"bsl_name": f"l-{uuid.uuid4().hex[:6]}", "schedule_name": f"s-{uuid.uuid4().hex[:6]}"}
    extra = dict(
        names,
        repo_name=f"r{uuid.uuid4().hex[:6]}",
        repo_url=chart_repo,
        chart_version=_pinned_chart_version(),
        bucket=bucket,
        workload_ns=ns,
        access_key=CREDS["AWS_ACCESS_KEY_ID"],
        secret_key=CREDS["AWS_SECRET_ACCESS_KEY"],
    )

    checked = _run(velero_server, tmp_path, "--check", **extra)
    assert checked.returncode == 0, checked.stdout[-5000:]
    assert _releases(core, "velero") == {}  # check mode installed nothing
    assert CREDS["AWS_SECRET_ACCESS_KEY"] not in checked.stdout

    installed = _run(velero_server, tmp_path, **extra)
    assert installed.returncode == 0, installed.stdout[-6000:]
    assert CREDS["AWS_SECRET_ACCESS_KEY"] not in installed.stdout  # values are no_log
    assert _releases(core, "velero") == {1: "deployed"}
    bsl = custom.get_namespaced_custom_object(
        GROUP, VERSION, NS, "backupstoragelocations", names["bsl_name"]
    )
    assert bsl["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    assert bsl["spec"]["objectStorage"] == {"bucket": bucket, "prefix": "cluster"}
    assert bsl["spec"]["config"] == {"region": "us-east-1", "s3ForcePathStyle": "true"}
    assert bsl["spec"]["credential"] == {"name": "gpuops-backup-credentials", "key": "cloud"}
    assert bsl["status"]["phase"] == "Available"  # the stand-in validated it with those keys
    secret = core.read_namespaced_secret("gpuops-backup-credentials", NS)
    assert secret.metadata.labels["app.kubernetes.io/managed-by"] == "Helm"
    assert CREDS["AWS_ACCESS_KEY_ID"] in base64.b64decode(secret.data["cloud"]).decode()
    schedule = custom.get_namespaced_custom_object(
        GROUP, VERSION, NS, "schedules", names["schedule_name"]
    )
    assert schedule["status"]["phase"] == "Enabled" and schedule["status"].get("lastBackup")
    # The role applied the schedule only: the location is the release's alone.
    managers = {m["manager"] for m in bsl["metadata"].get("managedFields") or []}
    assert "gpuops.cluster/velero_schedule" not in managers, managers

    rerun = _run(velero_server, tmp_path, **extra)
    assert rerun.returncode == 0, rerun.stdout[-5000:]
    assert "changed=0" in rerun.stdout, rerun.stdout[-5000:]
    assert _releases(core, "velero") == {1: "deployed"}
