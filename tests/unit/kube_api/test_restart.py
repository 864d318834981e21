"""The state survives a restart through the snapshot in --state-dir; SIGTERM stops cleanly."""

from __future__ import annotations

import os

from kubernetes import client, config

from conftest import CRDS, start_server, stop_server


def _core(kubeconfig):
    configuration = client.Configuration()
    config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
    return client.ApiClient(configuration)


def test_snapshot_survives_restart(tmp_path):
    server = start_server(tmp_path, crds=CRDS)
    try:
        with _core(server.kubeconfig) as api:
            core = client.CoreV1Api(api)
            created = core.create_namespaced_config_map(
                "default",
                client.V1ConfigMap(metadata=client.V1ObjectMeta(name="kept"), data={"a": "b"}),
            )
            assert (tmp_path / "kubeapi.pid").read_text().strip() == str(server.process.pid)
    finally:
        stop_server(server)
    assert server.process.returncode == 0
    assert (tmp_path / "state.json").exists() and not (tmp_path / "kubeapi.pid").exists()

    again = start_server(tmp_path)
    try:
        with _core(again.kubeconfig) as api:
            kept = client.CoreV1Api(api).read_namespaced_config_map("kept", "default")
            assert kept.metadata.uid == created.metadata.uid and kept.data == {"a": "b"}
            groups = {g.name for g in client.ApisApi(api).get_api_versions().groups}
            assert {"karpenter.sh", "velero.io", "nvidia.com", "keda.sh"} <= groups
            newer = client.CoreV1Api(api).create_namespaced_config_map(
                "default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="newer"))
            )
            assert int(newer.metadata.resource_version) > int(created.metadata.resource_version)
    finally:
        stop_server(again)
    assert not os.path.exists(tmp_path / "kubeapi.pid")
