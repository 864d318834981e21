"""Discovery documents (/version, /api, /apis, /api/v1, /apis/<group>/<version>) built from
the registry, in the legacy (non-aggregated) format the Python clients read."""

from __future__ import annotations

import re
from typing import Any

from .api import Cluster
from .kinds import SCALE, group_priority

SERVER_VERSION = {
    "major": "1",
    "minor": "34",
    "emulationMajor": "1",
    "emulationMinor": "34",
    "minCompatibilityMajor": "1",
    "minCompatibilityMinor": "33",
    "gitVersion": "v1.34.0+gpuops-sandbox",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2025-08-27T00:00:00Z",
    "goVersion": "go1.24.6",
    "compiler": "gc",
    "platform": "linux/amd64",
}


def version_priority(version: str) -> tuple[int, int, int]:
    """Kubernetes version ordering: GA > beta > alpha, higher numbers first."""
    match = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", version)
    if not match:
        return (0, 0, 0)
    stability = {"alpha": 1, "beta": 2, None: 3}[match.group(2)]
    return (stability, int(match.group(1)), int(match.group(3) or 0))


def api_versions(address: str) -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": address}],
    }


def _group_entry(name: str, versions: list[str]) -> dict[str, Any]:
    ordered = sorted(versions, key=version_priority, reverse=True)
    entries = [{"groupVersion": f"{name}/{v}", "version": v} for v in ordered]
    return {"name": name, "versions": entries, "preferredVersion": entries[0]}


def api_group_list(cluster: Cluster) -> dict[str, Any]:
    groups = cluster.served_group_versions()
    names = sorted((g for g in groups if g), key=lambda g: (group_priority(g), g))
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [_group_entry(name, groups[name]) for name in names],
    }


def api_group(cluster: Cluster, group: str) -> dict[str, Any] | None:
    versions = cluster.served_group_versions().get(group)
    if not versions:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group_entry(group, versions)}


def api_resource_list(cluster: Cluster, group: str, version: str) -> dict[str, Any] | None:
    types = [
        t for (g, v, _unused), t in sorted(cluster.types.items()) if (g, v) == (group, version)
    ]
    if not types:
        return None
    resources = []
    for resource_type in types:
        entry: dict[str, Any] = {
            "name": resource_type.plural,
            "singularName": resource_type.singular,
            "namespaced": resource_type.namespaced,
            "kind": resource_type.kind,
            "verbs": list(resource_type.verbs),
        }
        if resource_type.short_names:
            entry["shortNames"] = list(resource_type.short_names)
        if resource_type.categories:
            entry["categories"] = list(resource_type.categories)
        resources.append(entry)
        if resource_type.status_subresource:
            resources.append(
                {
                    "name": f"{resource_type.plural}/status",
                    "singularName": "",
                    "namespaced": resource_type.namespaced,
                    "kind": resource_type.kind,
                    "verbs": ["get", "patch", "update"],
                }
            )
        subresources = resource_type.extra_subresources
        if resource_type.scale_paths is not None:
            subresources += (SCALE,)
        for sub_name, sub_group, sub_version, sub_kind, verbs in subresources:
            sub_entry: dict[str, Any] = {
                "name": f"{resource_type.plural}/{sub_name}",
                "singularName": "",
                "namespaced": resource_type.namespaced,
                "kind": sub_kind,
                "verbs": list(verbs),
            }
            if sub_group:
                sub_entry["group"] = sub_group
                sub_entry["version"] = sub_version
            resources.append(sub_entry)
    group_version = f"{group}/{version}" if group else version
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    }
