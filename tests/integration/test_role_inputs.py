"""Every role against bad input, table-driven: one playbook run per role, one host per bad setting.

Each host must fail before anything changes, the output naming the setting (and what is allowed)
for that host; the simulated hosts' NVML state, their file trees, the Kubernetes objects and the
Slurm nodes are compared before and after. Host roles (nvidia_driver, container_toolkit) run in
check mode on this machine, so even a missed check could change nothing.
"""

from __future__ import annotations

import hashlib
import json
import os

import pytest
import yaml
from conftest import REPO_ROOT, run_playbook

PLAYBOOK = REPO_ROOT / "tests" / "integration" / "playbooks" / "role_inputs.yml"
SECRET = "s3cr3t-value-7Q"
SLURM = REPO_ROOT / "sandbox" / "slurm" / "slurm_standin.py"

MIG = {
    "count-float": ({"mig_layout": {"1g.5gb": 1e12}}, "mig_layout.1g.5gb: count must be an integer 0-64"),
    "unknown-profile": ({"mig_layout": {"9g.90gb": 1}}, "unknown profile '9g.90gb'"),
    "env-newline": (
        {"mig_boot_environment": {"A": "x\nExecStartPre=/bin/sh -c id"}},
        "mig_boot_environment.A: must not contain line breaks",
    ),
    "env-name": ({"mig_boot_environment": {"A B": "x"}}, "mig_boot_environment: variable names must be letters"),
    "reset-newline": (
        {"mig_reset_command": ["nvidia-smi", "-r\nExecStartPre=/bin/id"]},
        "mig_reset_command[1]: must be at most 4096 characters, without NUL or line breaks",
    ),
    "reset-placeholder": ({"mig_reset_command": ["nvidia-smi", "{gpu}"]}, "mig_reset_command[1]: unknown placeholder"),
    "root-relative": ({"mig_host_root": "../../etc"}, "mig_host_root: must be an absolute path"),
    "root-dotdot": ({"mig_host_root": "/tmp/../etc"}, "mig_host_root: must be an absolute path"),
    "driver-wait": (
        {"mig_boot_driver_wait": 1000000000},
        "mig_boot_driver_wait: 1000000000 is out of range; allowed: 0-3600",
    ),
    "wait-negative": (
        {"mig_operator_wait_timeout": -5},
        "mig_operator_wait_timeout: -5 is out of range; allowed: 0-86400",
    ),
    "reboot-timeout": ({"mig_reboot_timeout": 1}, "mig_reboot_timeout: 1 is out of range; allowed: 60-86400"),
    "python-args": ({"mig_boot_python": "/usr/bin/python3 -c evil"}, "mig_boot_python: must be an absolute path"),
    "override-99": (
        {"mig_gpu_layouts": [{"gpus": [99], "mig_enabled": False}]},
        "mig_gpu_layouts[0].gpus: GPU 99 not on this host",
    ),
    "override-twice": (
        {"mig_gpu_layouts": [{"gpus": [1], "mig_enabled": False}, {"gpus": [1], "mig_enabled": False}]},
        "mig_gpu_layouts[1].gpus: GPU 1 is already in mig_gpu_layouts[0]",
    ),
    "config-secret": (
        {"mig_layout": {}, "mig_config_name": "c", "mig_config_file": "{{ secret_file }}"},
        "mig_config_file",
    ),
}
SHARING = {
    "replicas-huge": ({"gpu_sharing_replicas": 1000000000000}, "gpu_sharing_replicas: must be an int >= 2 and <= 128"),
    "replicas-one": ({"gpu_sharing_replicas": 1}, "gpu_sharing_replicas: must be an int >= 2"),
    "strategy": ({"gpu_sharing_strategy": "always"}, "gpu_sharing_strategy"),
    "resource-name": (
        {"gpu_sharing_resources": [{"name": "amd.com/gpu", "replicas": 2}]},
        "gpu_sharing_resources[0].name: 'amd.com/gpu' is not a device plugin resource",
    ),
    "resource-replicas": (
        {"gpu_sharing_resources": [{"name": "nvidia.com/gpu", "replicas": 10000}]},
        "gpu_sharing_resources[0].replicas: must be an int >= 2 and <= 128",
    ),
    "resource-devices": (
        {"gpu_sharing_resources": [{"name": "nvidia.com/gpu", "replicas": 2, "devices": ["0; rm"]}]},
        "gpu_sharing_resources[0].devices",
    ),
    "rename-newline": (
        {"gpu_sharing_resources": [{"name": "nvidia.com/gpu", "replicas": 2, "rename": "gpu\nshared"}]},
        "gpu_sharing_resources[0].rename",
    ),
    "config-name": (
        {"gpu_sharing_config_name": "Bad Name!"},
        "gpu_sharing_config_name: 'Bad Name!' is not a valid name",
    ),
    "wait-timeout": ({"gpu_sharing_wait_timeout": 10**9}, "gpu_sharing_wait_timeout: 1000000000 is out of range"),
    "wait-delay": ({"gpu_sharing_wait_delay": 0}, "gpu_sharing_wait_delay: 0 is out of range; allowed: 1-3600"),
}
NODE_MAINTENANCE = {
    "owner": ({"node_maintenance_owner": "Bad Owner"}, "node_maintenance_owner must be a lower-case word"),
    "reason-newline": ({"node_maintenance_reason": "x\ny"}, "node_maintenance_reason must be one line"),
    "reason-long": ({"node_maintenance_reason": "x" * 201}, "node_maintenance_reason must be one line of 1-200"),
    "drain-timeout": ({"node_maintenance_drain_timeout": -1}, "node_maintenance_drain_timeout (0-86400)"),
    "retry-delay": ({"node_maintenance_drain_retry_delay": 0}, "node_maintenance_drain_retry_delay (1-3600)"),
    "grace": ({"node_maintenance_drain_grace_period": 10**9}, "node_maintenance_drain_grace_period (-1-86400)"),
    "on-failure": ({"node_maintenance_on_drain_failure": "maybe"}, "node_maintenance_on_drain_failure"),
    "poll": ({"node_maintenance_slurm_poll_interval": 0}, "node_maintenance_slurm_poll_interval (1-3600)"),
    "slurm-name": (
        {"node_maintenance_slurm_node": True, "node_maintenance_slurm_node_name": "gpu;reboot"},
        "name: not a Slurm node name",
    ),
}
DRIVER = {
    "branch": ({"nvidia_driver_branch": "5355"}, "nvidia_driver_branch must be three digits"),
    "version": ({"nvidia_driver_version": "535.x"}, "nvidia_driver_version must be empty or a driver version"),
    "options-newline": (
        {"nvidia_driver_module_options": {"NVreg_X": "1\ninstall nvidia /bin/sh -c id"}},
        "nvidia_driver_module_options.NVreg_X: must not contain line breaks",
    ),
    "options-key": ({"nvidia_driver_module_options": {"a b": 1}}, "nvidia_driver_module_options: parameter names"),
    "options-space": (
        {"nvidia_driver_module_options": {"NVreg_X": "a b"}},
        "nvidia_driver_module_options.NVreg_X: allowed",
    ),
    "repo-url": (
        {"nvidia_driver_repo_url": "ftp://mirror/x"},
        "nvidia_driver_repo_url, nvidia_driver_repo_key_url: must be",
    ),
    "mirror-newline": (
        {"nvidia_driver_distribution_mirror": "http://m/\nTypes: deb"},
        "nvidia_driver_distribution_mirror must be empty or",
    ),
    "mok-quote": (
        {"nvidia_driver_mok_key_path": '/k"$(id)', "nvidia_driver_mok_cert_path": "/c.der"},
        "are set together or not at all, as absolute paths",
    ),
    "mok-one": ({"nvidia_driver_mok_key_path": "/k.priv"}, "are set together or not at all"),
    "reboot-timeout": ({"nvidia_driver_reboot_timeout": 5}, "nvidia_driver_reboot_timeout must be 60-86400"),
}
TOOLKIT = {
    "runtimes-empty": ({"container_toolkit_runtimes": []}, "container_toolkit_runtimes must name at least one"),
    "version": (
        {"container_toolkit_version": "1.17; rm -rf /"},
        "container_toolkit_version must be empty or a version",
    ),
    "path-space": (
        {"container_toolkit_runtime_path": "/usr/bin/nvidia container runtime"},
        "container_toolkit_runtime_path and",
    ),
    "path-relative": (
        {"container_toolkit_runtime_path": "nvidia-container-runtime"},
        "container_toolkit_runtime_path and",
    ),
    "path-quote": (
        {"container_toolkit_runtime_path": '/usr/bin/x"\nBinaryName = "/bin/sh'},
        "container_toolkit_runtime_path and",
    ),
    "cdi-newline": (
        {"container_toolkit_cdi_spec": "/etc/cdi/x\n.yaml"},
        "container_toolkit_runtime_path and container_toolkit_cdi_spec must be absolute",
    ),
    "repo-url": (
        {"container_toolkit_repo_url": "gopher://x"},
        "container_toolkit_repo_url and container_toolkit_repo_key_url",
    ),
    "key-url": (
        {"container_toolkit_repo_key_url": "http://x/ key"},
        "container_toolkit_repo_url and container_toolkit_repo_key_url",
    ),
}
ROLES = {
    "mig": (MIG, False),
    "gpu_sharing": (SHARING, False),
    "node_maintenance": (NODE_MAINTENANCE, False),
    "nvidia_driver": (DRIVER, True),
    "container_toolkit": (TOOLKIT, True),
}


def test_every_role_has_at_least_eight_cases():
    assert all(len(cases) >= 8 for cases, _check in ROLES.values()), {r: len(c) for r, (c, _x) in ROLES.items()}


def tree_digest(path):
    digest = hashlib.sha256()
    for folder, dirs, files in sorted(os.walk(path)):
        dirs.sort()
        for name in sorted(files):
            full = os.path.join(folder, name)
            digest.update(full.encode())
            if not os.path.islink(full):
                with open(full, "rb") as handle:
                    digest.update(handle.read())
    return digest.hexdigest()


def kube_objects(kube):
    """Nodes, ConfigMaps, ClusterPolicies in the stand-in, without volatile fields."""
    from kubernetes import client

    core = client.CoreV1Api(kube.api_client())
    nodes = {
        n.metadata.name: (n.metadata.labels, n.metadata.annotations, n.spec.unschedulable)
        for n in core.list_node().items
    }
    maps = {(c.metadata.namespace, c.metadata.name): c.data for c in core.list_config_map_for_all_namespaces().items}
    return json.dumps(
        {"nodes": nodes, "configmaps": {"/".join(k): v for k, v in maps.items()}}, sort_keys=True, default=str
    )


@pytest.mark.parametrize("role", sorted(ROLES))
def test_bad_input_fails_each_host_before_anything_changes(sandbox, kube, tmp_path, role):
    cases, check_mode = ROLES[role]
    secret = tmp_path / "secret.yaml"
    secret.write_text("password: %s\n" % SECRET)
    sim_host = "gpu-a100-01"
    host_dir = sandbox["dir"] / "hosts" / sim_host
    base = {
        # The overlay inventory lives elsewhere: the sandbox's paths are pinned here.
        "gpuops_repo_root": str(REPO_ROOT),
        "gpuops_sandbox_fixture": "a100-sxm4-40gb-x8",
        "gpuops_sandbox_host_dir": str(host_dir),
        "gpuops_kube_node": False,
        "mig_mode": "host",
        "mig_layout": {"1g.5gb": 7},
        "mig_host_root": str(host_dir / "root"),
        "gpu_sharing_strategy": "time-slicing",
        "gpu_sharing_replicas": 2,
        "node_maintenance_kube_node": False,
        "node_maintenance_slurm_node": False,
        "node_maintenance_scontrol": str(REPO_ROOT / "sandbox" / "slurm" / "bin" / "scontrol"),
        "node_maintenance_squeue": str(REPO_ROOT / "sandbox" / "slurm" / "bin" / "squeue"),
        "container_toolkit_install_package": False,
        "secret_file": str(secret),
    }
    hosts = {
        "bad-%s-%s" % (role.replace("_", "-"), name): dict(base, **settings) for name, (settings, _n) in cases.items()
    }
    overlay = tmp_path / "bad.yml"
    overlay.write_text(yaml.safe_dump({"all": {"children": {"bad_inputs": {"hosts": hosts}}}}))
    before = (
        (host_dir / "nvml-state.json").read_bytes(),
        tree_digest(host_dir / "root"),
        kube_objects(kube),
    )
    env = dict(sandbox["env"], **kube.env)
    args = ["-i", str(overlay), "-e", "role_under_test=%s" % role]
    if check_mode:
        args.append("--check")
    run = run_playbook(PLAYBOOK, *args, env=env)
    assert run.rc != 0, run
    text = " ".join(run.stdout.split())
    for name, (_settings, needle) in cases.items():
        host = "bad-%s-%s" % (role.replace("_", "-"), name)
        assert run.recap[host]["failed"] == 1 and run.recap[host]["changed"] == 0, (host, run.recap.get(host))
        assert " ".join(needle.split()) in text, (host, needle)
    assert SECRET not in run.stdout + run.stderr
    after = (
        (host_dir / "nvml-state.json").read_bytes(),
        tree_digest(host_dir / "root"),
        kube_objects(kube),
    )
    assert after == before
