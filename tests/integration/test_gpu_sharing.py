"""The gpu_sharing role through ansible-playbook against the sandbox and the Kubernetes API
stand-in (its gpu-operator and device-plugin controllers publish the shared GPUs)."""

from __future__ import annotations

import yaml
from conftest import REPO_ROOT, load_fixture, run_playbook

# cluster_policy is a pytest fixture re-used from test_mig_role
from test_mig_role import cluster_policy, env_of, overlay  # noqa: F401  # pylint: disable=unused-import

PLAYBOOK = REPO_ROOT / "tests" / "integration" / "playbooks" / "sharing_apply.yml"
GROUP_VARS = REPO_ROOT / "inventories" / "sandbox" / "group_vars"


def test_time_slicing_and_mps_end_to_end(sandbox, kube, cluster_policy, tmp_path):  # noqa: F811
    from kubernetes import client

    l40s = yaml.safe_load((GROUP_VARS / "ng_cloud_l40s.yml").read_text())
    assert l40s["gpu_sharing_strategy"] == "time-slicing"
    extra = overlay(
        tmp_path, {"gpu-a100-01": {"mig_mode": "none", "gpu_sharing_strategy": "mps", "gpu_sharing_replicas": 2}}
    )
    args = ["-l", "eks-l40s-01,gpu-a100-01", *extra]
    run = run_playbook(PLAYBOOK, *args, env=env_of(sandbox, kube))
    assert run.rc == 0, run

    core = client.CoreV1Api(kube.api_client())
    ts_name = "time-slicing-%d" % l40s["gpu_sharing_replicas"]
    cm = core.read_namespaced_config_map("gpuops-device-plugin-config", "gpu-operator")
    assert sorted(cm.data) == ["default", "mps-2", ts_name]
    assert yaml.safe_load(cm.data[ts_name])["sharing"]["timeSlicing"]["resources"] == [
        {"name": "nvidia.com/gpu", "replicas": l40s["gpu_sharing_replicas"]}
    ]
    assert yaml.safe_load(cm.data["mps-2"])["sharing"]["mps"]["resources"] == [
        {"name": "nvidia.com/gpu", "replicas": 2}
    ]
    policy = cluster_policy.get(name="cluster-policy").to_dict()
    assert policy["spec"]["devicePlugin"]["config"] == {"name": "gpuops-device-plugin-config", "default": "default"}

    expected = {
        "eks-l40s-01": (ts_name, "time-slicing", l40s["gpu_sharing_replicas"]),
        "gpu-a100-01": ("mps-2", "mps", 2),
    }
    for node_name, (config, strategy, replicas) in expected.items():
        gpus = len(load_fixture(sandbox["fixtures"][node_name])["gpus"])
        node = core.read_node(node_name)
        labels = node.metadata.labels
        assert labels["nvidia.com/device-plugin.config"] == config
        assert labels["nvidia.com/gpu.sharing-strategy"] == strategy
        assert labels["nvidia.com/gpu.replicas"] == str(replicas)
        assert node.status.allocatable["nvidia.com/gpu"] == str(gpus * replicas)

    again = run_playbook(PLAYBOOK, *args, env=env_of(sandbox, kube))
    assert again.rc == 0, again
    assert sum(r["changed"] for r in again.recap.values()) == 0, again


def test_mps_on_a_mig_host_is_refused_before_anything_changes(sandbox, tmp_path):
    extra = overlay(
        tmp_path,
        {
            "gpu-h100-02": {"mig_mode": "none", "gpu_sharing_strategy": "mps", "gpu_sharing_replicas": 2},
            "eks-l40s-01": {"gpu_sharing_replicas": 1},
        },
    )
    run = run_playbook(PLAYBOOK, "-l", "gpu-h100-02,eks-l40s-01", *extra, env=sandbox["env"])
    assert run.rc != 0
    assert "GPU sharing configs rejected, nothing changed" in run.stdout, run
    assert (
        "gpu-h100-02: gpu_sharing_strategy: mps cannot share MIG devices, and gpu_probe reports MIG mode on"
        in run.stdout
    )
    assert "eks-l40s-01: gpu_sharing_replicas: must be an int >= 2" in run.stdout
