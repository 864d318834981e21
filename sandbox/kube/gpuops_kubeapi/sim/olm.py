"""Simulated Operator Lifecycle Manager (and, with `--openshift`, the OpenShift API groups
platform detection looks at).

At start it serves the OLM kinds (minimal stand-in CRDs in `data/olm-crds.yaml`:
Subscription, OperatorGroup, ClusterServiceVersion, InstallPlan, CatalogSource, and
PackageManifest in packages.operators.coreos.com) and lists the catalog of
`data/packages.yaml` as PackageManifests in `openshift-marketplace`. Then, per Subscription:

1. package or channel unknown: condition ResolutionFailed=True with upstream's message shape;
2. else an InstallPlan (`install-xxxxx`, approval from `installPlanApproval`, Automatic is
   approved at once; Manual waits for `spec.approved: true`, phase RequiresApproval);
3. approved: phase Complete, the ClusterServiceVersion `<csv>` created in the Subscription's
   namespace (phase Succeeded, `alm-examples` annotation), the operator's CRDs created (GPU
   Operator: the upstream ClusterPolicy/NVIDIADriver CRDs; NFD: NodeFeatureDiscovery), the
   Subscription `state: AtLatestKnown`, `currentCSV`/`installedCSV` set. Without an
   OperatorGroup in the namespace the CSV fails (`NoOperatorGroup`), as upstream.

Differences from upstream: no catalog images or bundle unpacking, no operator Deployments,
no upgrades between CSVs (a channel change installs the new CSV and removes the old one), no
dependency resolution, CRDs stay when the CSV is deleted (as upstream).
"""

from __future__ import annotations

import copy
import json
import os
import random
import string
from typing import Any

import yaml

from .. import crd_sources
from ..api import Cluster, WriteOptions
from .runner import Controller

DATA_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data")
MARKETPLACE = "openshift-marketplace"
OPENSHIFT_VERSION = "4.16.21"
SUB = ("operators.coreos.com", "v1alpha1", "subscriptions")
IP = ("operators.coreos.com", "v1alpha1", "installplans")
CSV = ("operators.coreos.com", "v1alpha1", "clusterserviceversions")
OG = ("operators.coreos.com", "v1", "operatorgroups")


def _documents(path: str) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as handle:
        documents = [d for d in yaml.safe_load_all(handle) if isinstance(d, dict)]
    # A `kind: List` stands for its items, as kubectl reads it.
    expanded: list[dict[str, Any]] = []
    for document in documents:
        if document.get("kind") == "List":
            expanded.extend(i for i in document.get("items") or [] if isinstance(i, dict))
        else:
            expanded.append(document)
    return expanded


def install_crds(cluster: Cluster, path: str) -> list[str]:
    """Create the CRDs of a file that do not exist yet; returns their names."""
    crd_type = cluster.types[("apiextensions.k8s.io", "v1", "customresourcedefinitions")]
    names = []
    for document in _documents(path):
        if document.get("kind") != "CustomResourceDefinition":
            continue
        name = document["metadata"]["name"]
        names.append(name)
        if cluster.store.get(crd_type.key, ("", name)) is None:
            cluster.create(crd_type, None, document, WriteOptions(field_manager="olm"))
    return names


def _ensure(cluster: Cluster, group, version, plural, namespace, body) -> None:
    resource_type = cluster.types[(group, version, plural)]
    ns = namespace or ""
    if cluster.store.get(resource_type.key, (ns, body["metadata"]["name"])) is None:
        cluster.create(resource_type, namespace, body, WriteOptions(field_manager="gpuops-kubeapi"))


def serve_openshift(cluster: Cluster) -> None:
    """What makes a client see OpenShift: config.openshift.io ClusterVersion `version`,
    route.openshift.io and security.openshift.io served, the openshift-* namespaces."""
    install_crds(cluster, os.path.join(DATA_DIR, "openshift-crds.yaml"))
    for name in ("openshift-operators", MARKETPLACE, "openshift-config"):
        _ensure(cluster, "", "v1", "namespaces", None, {"metadata": {"name": name}})
    _ensure(
        cluster,
        "config.openshift.io",
        "v1",
        "clusterversions",
        None,
        {
            "apiVersion": "config.openshift.io/v1",
            "kind": "ClusterVersion",
            "metadata": {"name": "version"},
            "spec": {"channel": "stable-4.16", "clusterID": "5d9c1f4e-0a53-4f38-9a8f-3e6f0c1d2b7a"},
        },
    )
    cv_type = cluster.types[("config.openshift.io", "v1", "clusterversions")]
    record = cluster.store.get(cv_type.key, ("", "version"))
    if record is not None and not (record.decode().get("status") or {}).get("desired"):
        status = {
            "desired": {"version": OPENSHIFT_VERSION, "image": "", "channels": ["stable-4.16"]},
            "history": [
                {
                    "state": "Completed",
                    "version": OPENSHIFT_VERSION,
                    "image": "",
                    "verified": False,
                    "startedTime": "2025-01-01T00:00:00Z",
                    "completionTime": "2025-01-01T00:30:00Z",
                }
            ],
            "observedGeneration": 1,
            "versionHash": "sandbox",
            "conditions": [
                {
                    "type": "Available",
                    "status": "True",
                    "lastTransitionTime": "2025-01-01T00:30:00Z",
                }
            ],
        }
        cluster.patch(
            cv_type,
            None,
            "version",
            json.dumps({"status": status}).encode(),
            "application/merge-patch+json",
            WriteOptions(field_manager="cluster-version-operator"),
            "status",
        )


def catalog() -> dict[str, Any]:
    with open(os.path.join(DATA_DIR, "packages.yaml"), encoding="utf-8") as handle:
        return yaml.safe_load(handle)["packages"]


class Olm(Controller):
    name = "olm"

    def __init__(self, cluster, options):
        super().__init__(cluster, options)
        self.packages = catalog()
        install_crds(cluster, os.path.join(DATA_DIR, "olm-crds.yaml"))
        _ensure(cluster, "", "v1", "namespaces", None, {"metadata": {"name": MARKETPLACE}})
        for name, package in self.packages.items():
            _ensure(
                cluster,
                "packages.operators.coreos.com",
                "v1",
                "packagemanifests",
                MARKETPLACE,
                self._package_manifest(name, package),
            )

    @staticmethod
    def _package_manifest(name: str, package: dict[str, Any]) -> dict[str, Any]:
        return {
            "apiVersion": "packages.operators.coreos.com/v1",
            "kind": "PackageManifest",
            "metadata": {
                "name": name,
                "namespace": MARKETPLACE,
                "labels": {
                    "catalog": package["catalogSource"],
                    "catalog-namespace": MARKETPLACE,
                    "operatorframework.io/arch.amd64": "supported",
                },
            },
            "spec": {},
            "status": {
                "catalogSource": package["catalogSource"],
                "catalogSourceNamespace": MARKETPLACE,
                "packageName": name,
                "provider": {"name": package["provider"]},
                "defaultChannel": package["defaultChannel"],
                "channels": [
                    {
                        "name": channel,
                        "currentCSV": entry["csv"],
                        "currentCSVDesc": {
                            "displayName": package["displayName"],
                            "version": str(entry["version"]),
                        },
                    }
                    for channel, entry in package["channels"].items()
                ],
            },
        }

    def _crd_paths(self, package: dict[str, Any]) -> list[str]:
        paths = []
        for entry in package.get("crds") or []:
            if entry.startswith("shared:"):
                # Upstream CRDs where they are at hand, else the sandbox's own.
                filename = entry.split(":", 1)[1]
                locations = [*(self.options.get("shared_crds") or []), crd_sources.SANDBOX_CRDS_DIR]
                for location in locations:
                    candidate = (
                        location if os.path.isfile(location) else os.path.join(location, filename)
                    )
                    if os.path.basename(candidate) == filename and os.path.isfile(candidate):
                        paths.append(candidate)
                        break
            else:
                paths.append(os.path.join(DATA_DIR, entry))
        return paths

    def reconcile(self) -> None:
        for sub in self.client.list(*SUB):
            self._subscription(sub)

    def _sub_status(self, sub, status) -> None:
        current = sub.get("status") or {}
        if all(current.get(k) == v for k, v in status.items()):
            return
        meta = sub["metadata"]
        self.client.patch(*SUB, meta["namespace"], meta["name"], {"status": status}, "status")

    def _subscription(self, sub: dict[str, Any]) -> None:
        meta = sub["metadata"]
        namespace = meta["namespace"]
        spec = sub.get("spec") or {}
        package_name = spec.get("name")
        package = self.packages.get(package_name)
        channel = spec.get("channel") or (package or {}).get("defaultChannel")
        if package is None or channel not in package["channels"]:
            what = (
                f"no operators found in package {package_name}"
                if package is None
                else f"no operators found in channel {channel} of package {package_name}"
            )
            message = (
                f"constraints not satisfiable: {what} in the catalog referenced by subscription "
                f"{meta['name']}, subscription {meta['name']} exists"
            )
            self._sub_status(
                sub,
                {
                    "state": "UpgradePending",
                    "conditions": [
                        {
                            "type": "ResolutionFailed",
                            "status": "True",
                            "reason": "ConstraintsNotSatisfiable",
                            "message": message,
                            "lastTransitionTime": (sub.get("status") or {}).get("lastUpdated")
                            or meta.get("creationTimestamp"),
                        }
                    ],
                    "lastUpdated": meta.get("creationTimestamp"),
                },
            )
            return
        csv_name = package["channels"][channel]["csv"]
        status = sub.get("status") or {}
        plan_name = (status.get("installPlanRef") or {}).get("name")
        plan = self.client.get(*IP, namespace, plan_name) if plan_name else None
        if plan is None or csv_name not in (plan.get("spec") or {}).get(
            "clusterServiceVersionNames", []
        ):
            plan = self._new_plan(sub, csv_name)
            if plan is None:
                return
        plan_spec = plan.get("spec") or {}
        plan_ref = {
            "apiVersion": "operators.coreos.com/v1alpha1",
            "kind": "InstallPlan",
            "name": plan["metadata"]["name"],
            "namespace": namespace,
            "uid": plan["metadata"]["uid"],
            "resourceVersion": plan["metadata"]["resourceVersion"],
        }
        base = {
            "installPlanRef": plan_ref,
            "installplan": {
                "apiVersion": "operators.coreos.com/v1alpha1",
                "kind": "InstallPlan",
                "name": plan["metadata"]["name"],
                "uuid": plan["metadata"]["uid"],
            },
            "installPlanGeneration": 1,
            "catalogHealth": [],
            "conditions": [],
            "lastUpdated": meta.get("creationTimestamp"),
        }
        if not plan_spec.get("approved"):
            self._plan_phase(plan, "RequiresApproval")
            self._sub_status(sub, dict(base, state="UpgradePending", currentCSV=csv_name))
            return
        csv_phase = self._install(sub, package, csv_name, channel)
        self._plan_phase(plan, "Complete")
        if csv_phase == "Succeeded":
            state = "AtLatestKnown"
            self._sub_status(
                sub, dict(base, state=state, currentCSV=csv_name, installedCSV=csv_name)
            )
        else:
            self._sub_status(sub, dict(base, state="UpgradePending", currentCSV=csv_name))

    def _new_plan(self, sub, csv_name):
        meta = sub["metadata"]
        spec = sub.get("spec") or {}
        approval = spec.get("installPlanApproval") or "Automatic"
        suffix = "".join(random.choices(string.ascii_lowercase + string.digits, k=5))
        plan = self.client.create(
            *IP,
            meta["namespace"],
            {
                "apiVersion": "operators.coreos.com/v1alpha1",
                "kind": "InstallPlan",
                "metadata": {
                    "name": f"install-{suffix}",
                    "namespace": meta["namespace"],
                    "ownerReferences": [
                        {
                            "apiVersion": "operators.coreos.com/v1alpha1",
                            "kind": "Subscription",
                            "name": meta["name"],
                            "uid": meta["uid"],
                            "blockOwnerDeletion": False,
                            "controller": False,
                        }
                    ],
                },
                "spec": {
                    "approval": approval,
                    "approved": approval == "Automatic",
                    "clusterServiceVersionNames": [csv_name],
                    "generation": 1,
                },
            },
        )
        if plan is not None:
            self._plan_phase(plan, "Installing" if approval == "Automatic" else "RequiresApproval")
        return plan

    def _plan_phase(self, plan, phase) -> None:
        if (plan.get("status") or {}).get("phase") == phase:
            return
        meta = plan["metadata"]
        self.client.patch(
            *IP,
            meta["namespace"],
            meta["name"],
            {"status": {"phase": phase, "catalogSources": []}},
            "status",
        )

    def _install(self, sub, package, csv_name, channel) -> str:
        namespace = sub["metadata"]["namespace"]
        groups = self.client.list(*OG, namespace)
        phase, reason, message = (
            "Succeeded",
            "InstallSucceeded",
            "install strategy completed with no errors",
        )
        if not groups:
            phase, reason = "Failed", "NoOperatorGroup"
            message = "csv in namespace with no operatorgroups"
        elif len(groups) > 1:
            phase, reason = "Failed", "TooManyOperatorGroups"
            message = (
                "csv created in namespace with multiple operatorgroups, can't pick one "
                "automatically"
            )
        for other in self.client.list(*CSV, namespace):
            labels = other["metadata"].get("labels") or {}
            if (
                labels.get("olm.package") == sub["spec"]["name"]
                and other["metadata"]["name"] != csv_name
            ):
                self.client.delete(*CSV, namespace, other["metadata"]["name"])
        csv = self.client.get(*CSV, namespace, csv_name)
        version = str(package["channels"][channel]["version"])
        if csv is None:
            csv = self.client.create(
                *CSV,
                namespace,
                {
                    "apiVersion": "operators.coreos.com/v1alpha1",
                    "kind": "ClusterServiceVersion",
                    "metadata": {
                        "name": csv_name,
                        "namespace": namespace,
                        "labels": {
                            "olm.package": sub["spec"]["name"],
                            f"operators.coreos.com/{sub['spec']['name']}.{namespace}": "",
                        },
                        "annotations": {
                            "alm-examples": json.dumps(
                                copy.deepcopy(package.get("almExamples") or [])
                            ),
                            "olm.operatorGroup": groups[0]["metadata"]["name"] if groups else "",
                        },
                    },
                    "spec": {
                        "displayName": package["displayName"],
                        "version": version,
                        "provider": {"name": package["provider"]},
                        "install": {"strategy": "deployment"},
                    },
                },
            )
            if csv is None:
                return "Pending"
        if phase == "Succeeded":
            for path in self._crd_paths(package):
                install_crds(self.cluster, path)
        current = csv.get("status") or {}
        if current.get("phase") != phase or current.get("reason") != reason:
            self.client.patch(
                *CSV,
                namespace,
                csv_name,
                {
                    "status": {
                        "phase": phase,
                        "reason": reason,
                        "message": message,
                        "requirementStatus": [],
                        "conditions": [{"phase": phase, "reason": reason, "message": message}],
                    }
                },
                "status",
            )
        return phase
