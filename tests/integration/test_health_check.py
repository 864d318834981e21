"""playbooks/health_check.yml against the sandbox and the Kubernetes API stand-in: healthy hosts
give no findings; faults injected into the simulator and the cluster each give theirs."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import REPO_ROOT, run_playbook
from test_mig_role import env_of

PLAYBOOK = REPO_ROOT / "playbooks" / "health_check.yml"
HEALTHY = ["-l", "gpu-a100-01,gpu-h100-01,localhost"]


def _report(tmp_path, name):
    return json.loads((tmp_path / name / "health-check.json").read_text())


GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
PRIVILEGED = {
    "containers": [{"name": "main", "image": "cuda", "securityContext": {"privileged": True}}],
}


def _inject_cluster_faults(kube):
    """One fault per cluster check, each made the way it happens (the simulated controllers
    write the events and conditions), except the NodeClaim launch failure: the stand-in Karpenter
    does not simulate EC2 running out of capacity, so its Launched=False status is written as
    Karpenter writes it."""
    from kubernetes import client

    api = kube.api_client()
    core = client.CoreV1Api(api)
    custom = client.CustomObjectsApi(api)
    # nodes-not-scaling: a NodePool capped at 0 GPUs gets a GPU pod only it could take (Karpenter
    # records "exceed limits"); a NodeClaim EC2 could not fill; a node group at its max size.
    custom.create_cluster_custom_object(
        "karpenter.sh",
        "v1",
        "nodepools",
        {
            "metadata": {"name": "capped"},
            "spec": {
                "template": {
                    "metadata": {"labels": {"pool": "capped"}},
                    "spec": {
                        "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "default"},
                        "requirements": [
                            {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": ["p4d.24xlarge"]}
                        ],
                    },
                },
                "limits": {"nvidia.com/gpu": "0"},
            },
        },
    )
    core.create_namespaced_pod(
        "default",
        {
            "metadata": {"name": "capped-train"},
            "spec": {
                "nodeSelector": {"pool": "capped"},
                "tolerations": [GPU_TOLERATION],
                "containers": [{"name": "main", "image": "cuda", "resources": {"limits": {"nvidia.com/gpu": "1"}}}],
            },
        },
    )
    claim = custom.create_cluster_custom_object(
        "karpenter.sh",
        "v1",
        "nodeclaims",
        {
            "metadata": {"name": "capped-ice", "labels": {"karpenter.sh/nodepool": "elsewhere"}},
            "spec": {
                "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "default"},
                "requirements": [
                    {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": ["p5.48xlarge"]}
                ],
            },
        },
    )
    claim["status"] = {
        "conditions": [
            {
                "type": "Launched",
                "status": "False",
                "reason": "InsufficientCapacity",
                "message": "creating instance, insufficient capacity",
                "lastTransitionTime": claim["metadata"]["creationTimestamp"],
            }
        ]
    }
    custom.replace_cluster_custom_object_status("karpenter.sh", "v1", "nodeclaims", "capped-ice", claim)
    core.create_namespace({"metadata": {"name": "capi"}})
    custom.create_namespaced_custom_object(
        "cluster.x-k8s.io",
        "v1beta2",
        "capi",
        "machinedeployments",
        {
            "metadata": {
                "name": "cpu-pool",
                "annotations": {
                    "cluster.x-k8s.io/cluster-api-autoscaler-node-group-min-size": "1",
                    "cluster.x-k8s.io/cluster-api-autoscaler-node-group-max-size": "1",
                    "capacity.cluster-autoscaler.kubernetes.io/cpu": "4",
                    "capacity.cluster-autoscaler.kubernetes.io/memory": "16Gi",
                },
            },
            "spec": {
                "clusterName": "sandbox",
                "replicas": 1,
                "selector": {"matchLabels": {"pool": "cpu"}},
                "template": {
                    "metadata": {"labels": {"pool": "cpu"}},
                    "spec": {
                        "clusterName": "sandbox",
                        "bootstrap": {"dataSecretName": "cpu-pool"},
                        "infrastructureRef": {
                            "apiGroup": "infrastructure.cluster.x-k8s.io",
                            "kind": "DockerMachineTemplate",
                            "name": "cpu-pool",
                        },
                    },
                },
            },
        },
    )
    # pod-security-denied: a privileged ReplicaSet in a restricted namespace.
    restricted = {
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/enforce-version": "latest",
    }
    core.create_namespace({"metadata": {"name": "tenant", "labels": restricted}})
    client.AppsV1Api(api).create_namespaced_replica_set(
        "tenant",
        {
            "metadata": {"name": "rooted"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "rooted"}},
                "template": {"metadata": {"labels": {"app": "rooted"}}, "spec": PRIVILEGED},
            },
        },
    )
    # network-policy-dns: a running pod under a default-deny with no DNS allow.
    core.create_namespace({"metadata": {"name": "locked"}})
    core.create_namespaced_pod(
        "locked",
        {
            "metadata": {"name": "app", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "main", "image": "nginx"}]},
        },
    )
    client.NetworkingV1Api(api).create_namespaced_network_policy(
        "locked",
        {"metadata": {"name": "default-deny"}, "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}},
    )
    # dns: CoreDNS lost its ready endpoints.
    endpoints = core.read_namespaced_endpoints("kube-dns", "kube-system")
    address = endpoints.subsets[0].addresses
    core.patch_namespaced_endpoints(
        "kube-dns",
        "kube-system",
        {
            "subsets": [
                {
                    "notReadyAddresses": [{"ip": a.ip} for a in address],
                    "ports": [{"name": "dns", "port": 53, "protocol": "UDP"}],
                }
            ]
        },
    )
    # backups: a Schedule whose RPO no successful backup meets.
    core.create_namespace({"metadata": {"name": "velero"}})
    custom.create_namespaced_custom_object(
        "velero.io",
        "v1",
        "velero",
        "schedules",
        {
            "metadata": {"name": "nightly", "annotations": {"gpuops.cluster/rpo": "26h"}},
            "spec": {"schedule": "0 2 * * *", "template": {"includedNamespaces": ["tenant"]}},
        },
    )
    kube.wait_for(
        lambda: (
            any(
                "exceed limits for nodepool: capped" in (e.message or "")
                for e in core.list_namespaced_event("default").items
            )
            and any("violates PodSecurity" in (e.message or "") for e in core.list_namespaced_event("tenant").items)
        ),
        timeout=30,
        message="Karpenter's limits event and the ReplicaSet's FailedCreate",
    )


def test_healthy_then_each_injected_fault_found(sandbox, kube, tmp_path):
    from kubernetes import client

    env = env_of(sandbox, kube)
    run = run_playbook(PLAYBOOK, *HEALTHY, "-e", f"health_check_report_dir={tmp_path / 'ok'}", env=env)
    assert run.rc == 0, run
    assert _report(tmp_path, "ok") == {
        "healthy": True,
        "counts": {"critical": 0, "warning": 0, "info": 0},
        "findings": [],
    }

    # Faults: GPU 2 of gpu-a100-01 falls off the bus; a pod asks for more GPUs than any node has.
    state = sandbox["dir"] / "hosts" / "gpu-a100-01" / "nvml-state.json"
    subprocess.run(
        [sys.executable, "-m", "gpuops_sim", "inject", "--state", str(state), "--gpu", "2", "--call", "*"]
        + ["--error", "GPU_IS_LOST"],
        env=dict(sandbox["env"], PYTHONPATH=str(REPO_ROOT / "sandbox" / "python")),
        check=True,
    )
    core = client.CoreV1Api(kube.api_client())
    core.create_namespaced_pod(
        "default",
        {
            "metadata": {"name": "greedy"},
            "spec": {
                "containers": [{"name": "main", "image": "cuda", "resources": {"limits": {"nvidia.com/gpu": "64"}}}]
            },
        },
    )
    kube.wait_for(
        lambda: any(
            c.type == "PodScheduled" and c.status == "False"
            for c in (core.read_namespaced_pod("greedy", "default").status.conditions or [])
        ),
        message="pod greedy marked unschedulable",
    )
    _inject_cluster_faults(kube)
    run = run_playbook(PLAYBOOK, *HEALTHY, "-e", f"health_check_report_dir={tmp_path / 'bad'}", env=env)
    assert run.rc == 0, run
    found = {(f["check"], f["subject"]): f for f in _report(tmp_path, "bad")["findings"]}
    assert sorted(key for key in found if key[0] != "gpu-not-detected") == [
        ("backups", "Schedule/velero/nightly"),
        ("dns", "Service/kube-system/kube-dns"),
        ("network-policy-dns", "Namespace/locked"),
        ("nodes-not-scaling", "MachineDeployment/capi/cpu-pool"),
        ("nodes-not-scaling", "NodeClaim/capped-ice"),
        ("nodes-not-scaling", "NodePool/capped"),
        ("pod-security-denied", "ReplicaSet/tenant/rooted"),
        ("pods-pending", "Pod/default/capped-train"),
        ("pods-pending", "Pod/default/greedy"),
    ], sorted(found)
    assert [check for check, _unused in found].count("gpu-not-detected") == 1, sorted(found)
    assert "nvidia.com/gpu 0/0" in found[("nodes-not-scaling", "NodePool/capped")]["finding"]
    assert "could not place default/capped-train" in found[("nodes-not-scaling", "NodePool/capped")]["finding"]
    assert "InsufficientCapacity" in found[("nodes-not-scaling", "NodeClaim/capped-ice")]["finding"]
    assert "1 of max 1" in found[("nodes-not-scaling", "MachineDeployment/capi/cpu-pool")]["finding"]
    psa = found[("pod-security-denied", "ReplicaSet/tenant/rooted")]
    assert 'violates PodSecurity "restricted:latest"' in psa["finding"] and psa["severity"] == "critical"
    assert found[("network-policy-dns", "Namespace/locked")]["finding"].endswith(": app")
    assert "no ready endpoints (2 not ready)" in found[("dns", "Service/kube-system/kube-dns")]["finding"]
    assert "no successful backup: RPO 26h0m0s cannot be met" in found[("backups", "Schedule/velero/nightly")]["finding"]
    gpu = next(f for (check, _unused), f in found.items() if check == "gpu-not-detected")
    assert gpu["subject"].startswith("gpu-a100-01 GPU") and "0000:47:00.0" in gpu["subject"], gpu
    assert "GPU_IS_LOST" in gpu["finding"] and gpu["severity"] == "critical"
    assert "Insufficient nvidia.com/gpu" in found[("pods-pending", "Pod/default/greedy")]["finding"]
    assert (tmp_path / "bad" / "health-check.txt").read_text().startswith("health check: 6 critical, 4 warning")


def test_bad_inputs_rejected_naming_the_field(tmp_path):
    """Before anything is read or written: a setting of the wrong type (the argument spec) and an
    RPO that is not a duration (the health_rpo_errors check) each fail the play naming the field."""
    inventory = tmp_path / "hosts.ini"
    inventory.write_text("localhost ansible_connection=local\n[gpu_nodes]\n")
    common = ["-e", "health_check_kube=false", "-e", f"health_check_report_dir={tmp_path}"]
    # pylint resolves run_playbook to tests/unit/kube_api/conftest.py's, whose signature differs.
    run = run_playbook(  # pylint: disable=redundant-keyword-arg
        PLAYBOOK, *common, "-e", "health_check_dns=maybe", inventory=inventory
    )
    assert run.rc != 0 and "health_check_dns" in run.stdout, run
    run = run_playbook(  # pylint: disable=redundant-keyword-arg
        PLAYBOOK, *common, "-e", '{"health_check_backup_rpo": {"nightly": "a day"}}', inventory=inventory
    )
    assert run.rc != 0, run
    assert "health_check_backup_rpo[nightly]='a day' is not a duration" in run.stdout + run.stderr, run
    assert not (tmp_path / "health-check.json").exists()
