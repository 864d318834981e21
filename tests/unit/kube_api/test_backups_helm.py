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
import uuid

import pytest

import velero_env
from conftest import PLAYBOOKS, REPO_ROOT, ansible_playbook
from sandbox_charts import chart_repository, helm_env, pinned_chart_version
from velero_env import CREDS, GROUP, NS, VERSION

HELM = REPO_ROOT / ".venv" / "bin" / "helm"
CHART_VERSION = pinned_chart_version("backups", "backups_helm_chart_version")
pytestmark = pytest.mark.skipif(
    not HELM.exists(), reason=f"no helm binary at {HELM}: run `make helm`"
)

s3_endpoint, s3, velero_server = velero_env.s3_endpoint, velero_env.s3, velero_env.velero_server
api, core, custom = velero_env.api, velero_env.core, velero_env.custom


@pytest.fixture
def chart_repo(tmp_path):
    """The sandbox chart repository on 127.0.0.1 (started here, stopped by its PID)."""
    with chart_repository(tmp_path / "charts", "velero", CHART_VERSION, HELM) as url:
        yield url


def _run(server, tmp_path, *args, **extra_vars):
    return ansible_playbook(
        server.kubeconfig,
        PLAYBOOKS / "backups_helm.yml",
        *args,
        extra_vars=extra_vars,
        env=helm_env(tmp_path / "helm", HELM),
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
        chart_version=CHART_VERSION,
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
