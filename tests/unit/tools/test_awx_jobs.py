"""AWX job slicing as tools/awx_jobs.py reproduces it (AWX's Inventory.get_script_data)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tools"))
import awx_jobs  # noqa: E402

EXPORTED = {
    "_meta": {"hostvars": {"b1": {"x": 1}, "a1": {}, "c1": {"y": 2}, "lone": {"z": 3}, "d1": {}}},
    "all": {"children": ["ungrouped", "gpu", "cpu", "empty"], "vars": {"v": "all"}},
    "ungrouped": {"hosts": ["lone"]},
    "gpu": {"children": ["ng_a", "ng_b"], "vars": {"g": 1}},
    "ng_a": {"hosts": ["a1", "b1"]},
    "ng_b": {"hosts": ["c1", "d1"]},
    "cpu": {"hosts": ["d1"]},
    "empty": {},
}


def test_hosts_in_name_order():
    assert awx_jobs.inventory_hosts(EXPORTED) == ["a1", "b1", "c1", "d1", "lone"]


@pytest.mark.parametrize("count", [1, 2, 3, 5])
def test_slices_partition_the_hosts_like_awx(count):
    seen = []
    for number in range(1, count + 1):
        data = awx_jobs.awx_slice(EXPORTED, number, count)
        hosts = awx_jobs.inventory_hosts(data)
        assert hosts == awx_jobs.inventory_hosts(EXPORTED)[number - 1 :: count]
        assert set(data["_meta"]["hostvars"]) == set(hosts)
        seen += hosts
    assert sorted(seen) == awx_jobs.inventory_hosts(EXPORTED)


def test_groups_keep_vars_and_children_but_only_slice_hosts():
    data = awx_jobs.awx_slice(EXPORTED, 1, 2)  # a1, c1, lone
    assert data["all"]["vars"] == {"v": "all"}
    assert data["gpu"] == {"children": ["ng_a", "ng_b"], "vars": {"g": 1}}
    assert data["ng_a"] == {"hosts": ["a1"]}
    assert data["ng_b"] == {"hosts": ["c1"]}
    # cpu lost its only host and has no vars or children: not emitted, still a child of all.
    assert "cpu" not in data and "cpu" in data["all"]["children"]
    assert "empty" in data["all"]["children"]
    # Ungrouped hosts of the slice sit directly under all.
    assert data["all"]["hosts"] == ["lone"]
    assert data["_meta"]["hostvars"] == {"a1": {}, "c1": {"y": 2}, "lone": {"z": 3}}


def test_bad_slice_numbers_are_refused():
    for number, count in ((0, 2), (3, 2), (1, 0)):
        with pytest.raises(ValueError, match="slice"):
            awx_jobs.awx_slice(EXPORTED, number, count)


def test_inventory_script_prints_the_data(tmp_path):
    import subprocess

    script = tmp_path / "inventory" / "hosts"
    data = awx_jobs.awx_slice(EXPORTED, 2, 2)
    awx_jobs.write_inventory_script(script, data)
    out = subprocess.run([str(script)], check=True, capture_output=True, text=True).stdout
    assert json.loads(out) == data


def test_the_sandbox_inventory_slices_cover_it(tmp_path):
    exported = awx_jobs.export_inventory(awx_jobs.SANDBOX_INVENTORY)
    hosts = awx_jobs.inventory_hosts(exported)
    assert "cpu-01" in hosts and len(hosts) >= 5
    slices = [awx_jobs.awx_slice(exported, n, 3) for n in (1, 2, 3)]
    assert sorted(h for s in slices for h in awx_jobs.inventory_hosts(s)) == hosts
    for data in slices:
        # Cluster-wide settings live in the all group, so every slice has them.
        assert data["all"]["vars"]["gpuops_kube_api_host"] == "localhost"


def test_k8s_credential_env_from_a_kubeconfig(tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: k, cluster: {server: 'https://127.0.0.1:6443', certificate-authority-data: 'Q0EK'}}]\n"
        "users: [{name: u, user: {token: secret}}]\n"
        "contexts: [{name: c, context: {cluster: k, user: u}}]\n"
    )
    env = awx_jobs.k8s_credential_env(kubeconfig, tmp_path / "creds", "/creds")
    assert env == {
        "K8S_AUTH_HOST": "https://127.0.0.1:6443",
        "K8S_AUTH_API_KEY": "secret",
        "K8S_AUTH_SSL_CA_CERT": "/creds/k8s-ca.crt",
        "K8S_AUTH_VERIFY_SSL": "True",
    }
    assert (tmp_path / "creds" / "k8s-ca.crt").read_bytes() == b"CA\n"
