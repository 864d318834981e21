"""roles/autoscaling tasks/karpenter.yml: one karpenter_pool per cloud node group against the
Kubernetes API stand-in and moto's EC2; a non-cloud pool is skipped; check mode predicts, a
rerun reports changed=0."""

from __future__ import annotations

import pytest

from conftest import (
    REPO_ROOT,
    SANDBOX_CRDS,
    ansible_playbook,
    api_client_for,
    start_server,
    stop_server,
)

PLAYBOOK = """
- name: Karpenter pools of the autoscaling role
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Pools
      ansible.builtin.include_role:
        name: gpuops.cluster.autoscaling
        tasks_from: karpenter
"""


@pytest.fixture(scope="module")
def moto_endpoint():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield "http://%s:%d" % (host, port)
    server.stop()


def _play(tmp_path, kubeconfig, endpoint, pools, check=False):
    playbook = tmp_path / "karpenter.yml"
    playbook.write_text(PLAYBOOK)
    env = dict(
        ANSIBLE_COLLECTIONS_PATH=str(REPO_ROOT / "build" / "collections"),
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
    )
    for pool in pools:
        pool.setdefault("endpoint_url", endpoint)
    result = ansible_playbook(
        kubeconfig,
        playbook,
        *(["--check", "--diff"] if check else []),
        extra_vars={"autoscaling_karpenter_pools": pools},
        env=env,
    )
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
    return result.stdout


def test_cloud_pools_applied_on_prem_skipped_rerun_unchanged(tmp_path, moto_endpoint):
    if not (
        REPO_ROOT / "build" / "collections" / "ansible_collections" / "gpuops" / "cluster"
    ).exists():
        pytest.skip("run `make collection` first")
    server = start_server(tmp_path / "kube", SANDBOX_CRDS)
    try:
        import boto3

        ec2 = boto3.client(
            "ec2",
            region_name="us-east-1",
            endpoint_url=moto_endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(
            VpcId=vpc, CidrBlock="10.0.1.0/24", AvailabilityZone="us-east-1a"
        )["Subnet"]["SubnetId"]
        pools = [
            {
                "name": "h100-train",
                "instance_types": ["p5.48xlarge"],
                "capacity_types": ["spot", "on-demand"],
                "ami_alias": "al2023@v20250505",
                "role": "KarpenterNodeRole",
                "subnet_selector": [{"id": subnet}],
                "security_group_selector": [{"name": "nodes"}],
                "termination_grace_period": "24h",
                "limits": {"gpu": "32"},
                "mig_layout": {"3g.40gb": 2},
            },
            {"name": "onprem-a100", "cloud": False, "instance_types": ["not.checked"]},
        ]
        predicted = _play(tmp_path, server.kubeconfig, moto_endpoint, pools, check=True)
        assert "changed=1" in predicted and "h100-train" in predicted
        assert "onprem-a100" not in predicted  # not a cloud node group: not looped over
        first = _play(tmp_path, server.kubeconfig, moto_endpoint, pools)
        assert "changed=1" in first, first[-3000:]
        from kubernetes import dynamic

        with api_client_for(server) as api:
            dyn = dynamic.DynamicClient(api)
            pool = dyn.resources.get(api_version="karpenter.sh/v1", kind="NodePool").get(
                name="h100-train"
            )
            overlay = dyn.resources.get(
                api_version="karpenter.sh/v1alpha1", kind="NodeOverlay"
            ).get(name="h100-train-p5-48xlarge")
            assert pool.spec.limits["nvidia.com/gpu"] == "32"
            assert dict(overlay.spec.capacity) == {"nvidia.com/mig-3g.40gb": "16"}
            names = [
                p.metadata.name
                for p in dyn.resources.get(api_version="karpenter.sh/v1", kind="NodePool")
                .get()
                .items
            ]
            assert names == ["h100-train"]
        second = _play(tmp_path, server.kubeconfig, moto_endpoint, pools)
        assert "changed=0" in second and "failed=0" in second, second[-3000:]
    finally:
        stop_server(server)
