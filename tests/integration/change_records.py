"""What a site.yml run changed, object by object, from the test-only callback
(callback_plugins/record_changes.py): every changed result of a run is recorded and mapped to the
object it changes (a Kubernetes object, a file, a GPU, a Slurm node, a unit), so a --check run's
prediction can be compared with what the real run then did."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import yaml

CALLBACKS = Path(__file__).resolve().parent / "callback_plugins"
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
    if action == "gpuops.cluster.karpenter_pool":
        return {("karpenter", args.get("name"))}
    if action == "gpuops.cluster.velero_schedule":
        return {("velero", s.get("name")) for s in args.get("schedules") or []} | {("velero-bsl", None)}
    if action == "gpuops.cluster.mig_partition":
        return {("gpu", p["index"]) for p in entry["plan"] or [] if p.get("steps") or p.get("mode_change")}
    if action == "gpuops.cluster.slurm_node":
        return {("slurm", args.get("name"))}
    if action in ("ansible.builtin.systemd_service", "ansible.builtin.systemd"):
        return {("unit", args.get("name"))}
    return {(action, entry["task"])}


def changes(path):
    """Host -> the objects its changed results stand for. The callback writes only changed
    results, so a run that changed nothing leaves no file."""
    per_host = defaultdict(set)
    if not path.exists():
        return {}
    for line in path.read_text().splitlines():
        entry = json.loads(line)
        per_host[entry["host"]] |= object_keys(entry)
    return dict(per_host)


def recording_env(record: Path) -> dict[str, str]:
    """Environment for an ansible-playbook run whose changed results go to `record` (JSON lines)."""
    return {
        "ANSIBLE_CALLBACK_PLUGINS": str(CALLBACKS),
        "ANSIBLE_CALLBACKS_ENABLED": "record_changes",
        "GPUOPS_RECORD_CHANGES": str(record),
    }
