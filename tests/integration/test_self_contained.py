"""The sandbox stands on its own: `make demo`'s path (fleet render, tools/kube-up.sh, site.yml,
tools/kube-down.sh) with GPUOPS_SHARED_DIR pointing at an empty folder, as for a user who cloned
the repository and has no shared/ folder beside it."""

from __future__ import annotations

import os
import subprocess

from conftest import REPO_ROOT, VENV_BIN, run_playbook


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


def test_site_runs_with_no_shared_folder(sandbox, tmp_path):
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
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        assert "custom kinds from the sandbox's own CRDs" in up.stdout, up.stdout
        kubeconfig = sandbox["dir"] / "kube" / "kubeconfig"
        run = run_playbook(
            REPO_ROOT / "playbooks" / "site.yml",
            env={**sandbox["env"], "GPUOPS_SHARED_DIR": str(empty)},
        )
        assert run.rc == 0, run
        assert run.recap and all(h["failed"] == 0 for h in run.recap.values()), run.recap
        assert (sandbox["reports"] / "fleet.json").is_file()

        from kubernetes import client, config

        configuration = client.Configuration()
        config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
        with client.ApiClient(configuration) as api:
            crd = client.ApiextensionsV1Api(api).read_custom_resource_definition("clusterpolicies.nvidia.com")
            assert crd.metadata.annotations["gpuops.cluster/schema-source"] == "sandbox"
            policy = client.CustomObjectsApi(api).get_cluster_custom_object(
                "nvidia.com", "v1", "clusterpolicies", "cluster-policy"
            )
            assert policy["status"]["state"] == "ready", policy.get("status")
    finally:
        down = _tool("kube-down.sh", env)
        assert down.returncode == 0, down.stdout + down.stderr
