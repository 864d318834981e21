"""The sandbox's own CRDs (sandbox/kube/gpuops_kubeapi/data/crds) against the upstream ones.

The sandbox serves every custom kind from schemas written for it, so that it runs where the
upstream CRDs are not at hand. These tests keep them faithful: the same kinds, names, scope,
versions and subresources as upstream; no field upstream does not have; every typed field with
upstream's type, enum, default and bounds; and no field upstream keeps that the sandbox would
prune. Only the comparisons need ../shared/crds: the loading tests run without it.
"""

from __future__ import annotations

import glob
import os

import pytest
import yaml

from conftest import SANDBOX_CRDS, SHARED_CRDS, requires_shared_crds, start_server, stop_server

SANDBOX_FILES = sorted(os.path.basename(p) for p in glob.glob(str(SANDBOX_CRDS / "*.yaml")))
# Keywords a sandbox schema node may carry, checked for equality with upstream when present.
SAME_AS_UPSTREAM = (
    "type",
    "enum",
    "default",
    "format",
    "pattern",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "maxItems",
    "x-kubernetes-int-or-string",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-map-type",
)


def _load(path):
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def _schema_differences(ours, theirs, path="") -> list[str]:
    """Where a sandbox schema node says something upstream does not."""
    problems = []
    if theirs is None:
        return [f"{path or '.'}: not in the upstream schema"]
    for keyword in SAME_AS_UPSTREAM:
        if keyword in ours and ours[keyword] != theirs.get(keyword):
            problems.append(
                f"{path}: {keyword} {ours[keyword]!r}, upstream {theirs.get(keyword)!r}"
            )
    if not set(ours.get("required") or ()) <= set(theirs.get("required") or ()):
        problems.append(f"{path}: requires {ours['required']}, upstream {theirs.get('required')}")
    our_props = ours.get("properties") or {}
    their_props = theirs.get("properties") or {}
    if our_props and not ours.get("x-kubernetes-preserve-unknown-fields"):
        pruned = sorted(set(their_props) - set(our_props))
        if pruned:
            problems.append(f"{path}: would prune upstream fields {pruned}")
    for name, node in our_props.items():
        problems += _schema_differences(node, their_props.get(name), f"{path}.{name}")
    for keyword in ("items", "additionalProperties"):
        if isinstance(ours.get(keyword), dict):
            theirs_child = theirs.get(keyword) if isinstance(theirs.get(keyword), dict) else None
            problems += _schema_differences(ours[keyword], theirs_child, f"{path}.{keyword}")
    return problems


def test_the_sandbox_has_its_own_crd_for_every_upstream_kind():
    assert SANDBOX_FILES, SANDBOX_CRDS
    for name in SANDBOX_FILES:
        crd = _load(SANDBOX_CRDS / name)
        assert crd["kind"] == "CustomResourceDefinition", name
        assert crd["metadata"]["annotations"]["gpuops.cluster/schema-source"] == "sandbox", name
        spec = crd["spec"]
        assert name == f"{spec['group']}_{spec['names']['plural']}.yaml", name
        assert crd["metadata"]["name"] == f"{spec['names']['plural']}.{spec['group']}", name
    if SHARED_CRDS.is_dir():
        upstream = sorted(os.path.basename(p) for p in glob.glob(str(SHARED_CRDS / "*.yaml")))
        assert SANDBOX_FILES == upstream


@requires_shared_crds
@pytest.mark.parametrize("name", SANDBOX_FILES)
def test_sandbox_crd_declares_the_kind_as_upstream(name):
    ours, theirs = _load(SANDBOX_CRDS / name)["spec"], _load(SHARED_CRDS / name)["spec"]
    assert ours["group"] == theirs["group"]
    assert ours["scope"] == theirs["scope"]
    for key in ("kind", "listKind", "plural", "singular", "shortNames", "categories"):
        assert ours["names"].get(key) == theirs["names"].get(key), key
    versions = {v["name"]: v for v in theirs["versions"]}
    assert [v["name"] for v in ours["versions"]] == [v["name"] for v in theirs["versions"]]
    for version in ours["versions"]:
        upstream = versions[version["name"]]
        for key in ("served", "storage", "deprecated"):
            assert bool(version.get(key)) == bool(upstream.get(key)), (version["name"], key)
        assert (version.get("subresources") or {}) == (upstream.get("subresources") or {})


@requires_shared_crds
@pytest.mark.parametrize("name", SANDBOX_FILES)
def test_sandbox_schema_is_a_faithful_subset_of_upstream(name):
    theirs = {v["name"]: v for v in _load(SHARED_CRDS / name)["spec"]["versions"]}
    problems = []
    for version in _load(SANDBOX_CRDS / name)["spec"]["versions"]:
        ours_schema = version["schema"]["openAPIV3Schema"]
        their_schema = theirs[version["name"]]["schema"]["openAPIV3Schema"]
        problems += [
            f"{version['name']} {p}" for p in _schema_differences(ours_schema, their_schema)
        ]
    assert not problems, "\n".join(problems)


def test_stand_in_serves_every_custom_kind_from_the_sandbox_crds(tmp_path):
    """No ../shared needed: `--crds sandbox` serves every kind, and discovery lists them."""
    from kubernetes import client, config
    from kubernetes.dynamic import DynamicClient

    server = start_server(tmp_path, None, "--crds", "sandbox")
    try:
        configuration = client.Configuration()
        config.load_kube_config(
            config_file=str(server.kubeconfig), client_configuration=configuration
        )
        with client.ApiClient(configuration) as api:
            dynamic = DynamicClient(api)
            for name in SANDBOX_FILES:
                spec = _load(SANDBOX_CRDS / name)["spec"]
                storage = next(v["name"] for v in spec["versions"] if v["storage"])
                resource = dynamic.resources.get(
                    api_version=f"{spec['group']}/{storage}", kind=spec["names"]["kind"]
                )
                assert resource.namespaced == (spec["scope"] == "Namespaced"), name
                crd = client.ApiextensionsV1Api(api).read_custom_resource_definition(
                    f"{spec['names']['plural']}.{spec['group']}"
                )
                assert crd.metadata.annotations["gpuops.cluster/schema-source"] == "sandbox"
    finally:
        stop_server(server)
