"""`make kube-up` stands on its own: tools/kube-up.sh with GPUOPS_SHARED_DIR pointing at an
empty folder, as for a user who cloned the repository and has no shared/ folder beside it, serves
the sandbox's own CRDs, and tools/kube-down.sh stops it. (site.yml's every layer against such a
cluster is test_site_sandbox's: its `world` serves the sandbox's own CRDs only.)"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from conftest import REPO_ROOT, VENV_BIN, crd_sources


def _tool(name, env):
    return subprocess.run(
        ["bash", str(REPO_ROOT / "tools" / name)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_kube_up_serves_the_sandbox_crds_with_no_shared_folder(sandbox, tmp_path):
    empty = tmp_path / "no-shared"
    empty.mkdir()
    env = dict(
        os.environ,
        SANDBOX_DIR=str(sandbox["dir"]),
        GPUOPS_SHARED_DIR=str(empty),
        PY=str(VENV_BIN / "python"),
        GPUOPS_KUBE_PORT="0",
    )
    env.pop("GPUOPS_KUBECONFIG", None)
    env.pop("KUBECONFIG", None)
    up = _tool("kube-up.sh", env)
    pidfile = sandbox["dir"] / "kube" / "kubeapi.pid"
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        assert "custom kinds from the sandbox's own CRDs" in up.stdout, up.stdout
        kubeconfig = sandbox["dir"] / "kube" / "kubeconfig"

        from kubernetes import client, config

        configuration = client.Configuration()
        config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
        with client.ApiClient(configuration) as api:
            sources = crd_sources(api)
            assert "clusterpolicies.nvidia.com" in sources, sources
            assert set(sources.values()) == {"sandbox"}, sources
        pid = int(pidfile.read_text())
    finally:
        down = _tool("kube-down.sh", env)
        assert down.returncode == 0, down.stdout + down.stderr
    assert not Path(f"/proc/{pid}").exists(), down.stdout  # stopped, by its PID
