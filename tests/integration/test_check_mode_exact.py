"""site.yml --check on a fresh sandbox predicts, host by host and object by object, what the real
run then changes.

A test-only callback (callback_plugins/record_changes.py) records every changed result of both
runs; each is mapped to the object it changes (a Kubernetes object, a file, a GPU, a Slurm node,
a unit). The sets must be equal per host. Then the real run's Kubernetes objects and simulator
states are compared with what the check run left: the check run changed nothing.
"""

from __future__ import annotations

import json
from collections import defaultdict

import yaml
from conftest import REPO_ROOT, run_playbook

SITE = REPO_ROOT / "playbooks" / "site.yml"
CALLBACKS = REPO_ROOT / "tests" / "integration" / "callback_plugins"
FILE_ACTIONS = {"ansible.builtin.copy", "ansible.builtin.template", "ansible.builtin.file"}


def object_keys(entry):
    """The objects one changed result stands for."""
    action, args = entry["action"], entry["args"] or {}
    if action == "kubernetes.core.k8s":
        definition = args.get("definition") or {}
        if isinstance(definition, str):
            definition = yaml.safe_load(definition) or {}
        # A list definition (security_baseline applies every manifest in one call) stands for
        # each of its objects.
        definitions = definition if isinstance(definition, list) else [definition]
        return {
            (
                "k8s",
                args.get("kind") or item.get("kind"),
                args.get("namespace") or (item.get("metadata") or {}).get("namespace"),
                args.get("name") or (item.get("metadata") or {}).get("name"),
            )
            for item in definitions or [{}]
        }
    if action == "kubernetes.core.k8s_drain":
        return {("k8s", "Node", None, args.get("name"))}
    if action == "ansible.builtin.debug" and isinstance(entry["msg"], dict) and "object" in entry["msg"]:
        parts = entry["msg"]["object"].split("/")
        kind, namespace, name = (parts[0], None, parts[1]) if len(parts) == 2 else parts
        return {("k8s", kind, namespace, name)}
    if action in FILE_ACTIONS:
        return {("file", entry["dest"] or args.get("dest") or args.get("path"))}
    if action == "gpuops.cluster.mig_partition":
        return {("gpu", p["index"]) for p in entry["plan"] or [] if p.get("steps") or p.get("mode_change")}
    if action == "gpuops.cluster.slurm_node":
        return {("slurm", args.get("name"))}
    if action in ("ansible.builtin.systemd_service", "ansible.builtin.systemd"):
        return {("unit", args.get("name"))}
    return {(action, entry["task"])}


def changes(path):
    per_host = defaultdict(set)
    for line in path.read_text().splitlines():
        entry = json.loads(line)
        per_host[entry["host"]] |= object_keys(entry)
    return dict(per_host)


def run_site(sandbox, kube, record, *extra):
    env = dict(
        sandbox["env"],
        **kube.env,
        ANSIBLE_CALLBACK_PLUGINS=str(CALLBACKS),
        ANSIBLE_CALLBACKS_ENABLED="record_changes",
        GPUOPS_RECORD_CHANGES=str(record),
    )
    return run_playbook(SITE, *extra, env=env)


def test_check_mode_predicts_the_real_run_host_by_host_and_object_by_object(sandbox, kube, tmp_path):
    states = sorted((sandbox["dir"] / "hosts").glob("*/nvml-state.json"))
    before = {str(p): p.read_bytes() for p in states}
    check = run_site(sandbox, kube, tmp_path / "check.jsonl", "--check", "--diff")
    assert check.rc == 0, check
    assert {str(p): p.read_bytes() for p in states} == before  # check mode changed no GPU
    predicted = changes(tmp_path / "check.jsonl")

    real = run_site(sandbox, kube, tmp_path / "real.jsonl")
    assert real.rc == 0, real
    done = changes(tmp_path / "real.jsonl")

    assert sorted(predicted) == sorted(done), (sorted(predicted), sorted(done))
    for host in sorted(done):
        assert predicted[host] == done[host], (
            host,
            "predicted, not done: %s" % sorted(predicted[host] - done[host], key=str),
            "done, not predicted: %s" % sorted(done[host] - predicted[host], key=str),
        )
    # And per host, check mode reported a change exactly where the real run made one.
    assert {h: c["changed"] > 0 for h, c in check.recap.items()} == {h: c["changed"] > 0 for h, c in real.recap.items()}
