"""The k8s action group: module_defaults on group/gpuops.cluster.k8s reach kubernetes.core.

Against the Kubernetes API stand-in, with no other way for the modules to find it: K8S_AUTH_*,
KUBECONFIG and GPUOPS_KUBECONFIG are removed from the environment and HOME is an empty folder
(no ~/.kube/config).
"""

from __future__ import annotations

import json
import os
import sys

from conftest import REPO_ROOT, run_playbook

PLAYBOOK = REPO_ROOT / "tests" / "integration" / "playbooks" / "action_group.yml"


def _clean_env(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("K8S_AUTH_") and k not in ("KUBECONFIG",)}
    env["HOME"] = str(home)
    return env


def _run(tmp_path, group_kubeconfig, use_group=True):
    out = tmp_path / "answer.json"
    env = _clean_env(tmp_path)
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n")
    # inventory is keyword-only: pylint mistakes it for the first of the positional arguments
    run = run_playbook(  # pylint: disable=redundant-keyword-arg
        PLAYBOOK,
        "-e",
        f"out_file={out}",
        "-e",
        f"group_kubeconfig={group_kubeconfig}",
        "-e",
        f"use_group={use_group}",
        env=env,
        inventory=inventory,
    )
    return run, out


def test_group_defaults_reach_kubernetes_core(kube_factory, tmp_path, monkeypatch):
    for key in [k for k in os.environ if k.startswith("K8S_AUTH_") or k in ("KUBECONFIG", "GPUOPS_KUBECONFIG")]:
        monkeypatch.delenv(key)
    kube = kube_factory(crds=None, controllers=None, register_fleet=False)
    run, out = _run(tmp_path, kube.kubeconfig)
    assert run.rc == 0, run
    answer = json.loads(out.read_text())
    # The stand-in's own namespaces: the modules talked to this server.
    assert {"default", "kube-system", "kube-public", "kube-node-lease"} <= set(answer["namespaces"]), answer
    assert answer["major"] == "1"


def test_without_the_group_defaults_the_modules_find_no_cluster(kube_factory, tmp_path, monkeypatch):
    for key in [k for k in os.environ if k.startswith("K8S_AUTH_") or k in ("KUBECONFIG", "GPUOPS_KUBECONFIG")]:
        monkeypatch.delenv(key)
    kube = kube_factory(crds=None, controllers=None, register_fleet=False)
    run, out = _run(tmp_path, kube.kubeconfig, use_group=False)
    assert run.rc != 0, run
    assert not out.exists()


def test_a_wrong_kubeconfig_in_the_group_is_the_one_used(tmp_path, monkeypatch):
    for key in [k for k in os.environ if k.startswith("K8S_AUTH_") or k in ("KUBECONFIG", "GPUOPS_KUBECONFIG")]:
        monkeypatch.delenv(key)
    missing = tmp_path / "no-such-kubeconfig"
    run, out = _run(tmp_path, missing)
    assert run.rc != 0, run
    assert str(missing) in run.stdout, run
    assert not out.exists()
