# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The GPU Operator plumbing the mig and gpu_sharing roles share. Pure functions.

Both hand the operator a ConfigMap of named configs, point a ClusterPolicy section at it, and
label each node with the config it takes (``nvidia.com/mig.config`` for mig-manager,
``nvidia.com/device-plugin.config`` for the device plugin):

- ``configmap``: the object, with exactly the configs given;
- ``retained``: the configs of an existing ConfigMap that nodes outside this run's plan still
  name in their label (so a ``--limit`` run never pulls a config from under a node); every
  other key goes, so a config written for a value that was fixed since is removed;
- ``label_changes``: the node label patches that differ from what the nodes carry (so a
  converged cluster gets none, and check mode lists exactly the nodes a real run labels);
- ``clusterpolicy_patch`` / ``policy_differs``: the merge patch of one ClusterPolicy section
  and whether the live policy already holds it.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

LABEL_MIG = "nvidia.com/mig.config"
LABEL_MIG_STATE = "nvidia.com/mig.config.state"
LABEL_SHARING = "nvidia.com/device-plugin.config"


def _meta(node):
    return (node or {}).get("metadata") or {}


def node_names(nodes):
    return sorted(_meta(n).get("name") for n in nodes or [] if _meta(n).get("name"))


def missing_nodes(nodes, wanted):
    """Names in ``wanted`` (a mapping or list of node names) that are not among ``nodes``."""
    have = set(node_names(nodes))
    return sorted(name for name in wanted if name not in have)


def label_changes(nodes, wanted, label, clear=()):
    """Patches for the nodes whose ``label`` is not what ``wanted`` says.

    wanted: {node name: value, or None to remove the label}. Returns
    ``[{"name": node, "from": current or None, "to": value or None, "labels": {label: value,
    <clear>: None}}]``, sorted by node; nodes missing from ``nodes`` are left out (see
    ``missing_nodes``).
    """
    by_name = {_meta(n).get("name"): n for n in nodes or []}
    changes = []
    for name in sorted(wanted):
        node = by_name.get(name)
        if node is None:
            continue
        current = (_meta(node).get("labels") or {}).get(label)
        value = wanted[name]
        if current == value or (value is None and current is None):
            continue
        labels = {label: value}
        labels.update((key, None) for key in clear)
        changes.append({"name": name, "from": current, "to": value, "labels": labels})
    return changes


def retained(nodes, label, managed, available):
    """Values of ``label`` on nodes not in ``managed`` that name one of ``available``.

    These configs stay in the ConfigMap although this run's plan does not declare them: nodes
    outside the plan (not in the play) still use them.
    """
    keep = set()
    managed = set(managed)
    for node in nodes or []:
        name = _meta(node).get("name")
        if name in managed:
            continue
        value = (_meta(node).get("labels") or {}).get(label)
        if value in available:
            keep.add(value)
    return sorted(keep)


def configmap(name, namespace, data, labels=None):
    metadata = {"name": name, "namespace": namespace}
    if labels:
        metadata["labels"] = dict(labels)
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": dict(data)}


def clusterpolicy_patch(section, configmap_name, default, extra=None):
    """Merge patch: ClusterPolicy ``spec.<section>.config`` names the ConfigMap and its default."""
    spec = {section: {"config": {"name": configmap_name, "default": default}}}
    for key, value in (extra or {}).items():
        if key == section:
            spec[section].update(value)
        else:
            spec[key] = value
    return {"spec": spec}


def _contains(have, want):
    if isinstance(want, dict):
        return isinstance(have, dict) and all(_contains(have.get(k), v) for k, v in want.items())
    return have == want


def policy_differs(policy, patch):
    """Whether applying the merge ``patch`` would change the ClusterPolicy object ``policy``."""
    return not _contains(policy or {}, patch)
