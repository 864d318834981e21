"""Runtime wiring on the converged container, read back by containerd itself where it can."""

import json

import pytest

RUNTIME = "/usr/bin/nvidia-container-runtime"


@pytest.fixture(scope="module")
def facts(node):
    return json.loads(node.file("/root/container_toolkit_facts.json").content_string)


def test_toolkit_install_skipped_with_reason(node, facts):
    assert facts["installed"] is False
    assert not node.package("nvidia-container-toolkit").is_installed


def test_containerd_1x_gets_a_block_in_config_toml(node, facts):
    version = node.check_output("containerd --version").split()[2]
    assert version.startswith("1.")
    decision = facts["decisions"]["containerd"]
    assert version.startswith(decision["version"])
    assert decision["mode"] == "config_block"
    # No drop-in: containerd 1.x would let it replace the whole CRI section.
    assert not node.file("/etc/containerd/conf.d/99-nvidia.toml").exists
    text = node.file("/etc/containerd/config.toml").content_string
    assert text.count("# BEGIN gpuops.cluster.container_toolkit: nvidia runtime") == 1


def test_containerd_reads_the_nvidia_runtime_and_keeps_debian_settings(node):
    dump = node.check_output("containerd config dump")
    assert '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia]' in dump
    nvidia = dump.split('[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia.options]', 1)[1]
    assert 'BinaryName = "%s"' % RUNTIME in nvidia.split("[", 1)[0]
    assert "SystemdCgroup = true" in nvidia.split("[", 1)[0]
    assert 'runtime_type = "io.containerd.runc.v2"' in dump
    # Debian's own CRI setting from its config.toml is still in force.
    assert 'bin_dir = "/usr/lib/cni"' in dump


def test_containerd_cdi_decision(facts):
    cdi = facts["decisions"]["containerd"]["cdi"]
    assert cdi.startswith("unsupported by containerd 1.6")


def test_crio_drop_in(node, facts):
    drop_in = node.file("/etc/crio/crio.conf.d/99-nvidia.toml")
    assert drop_in.mode == 0o644
    lines = drop_in.content_string.splitlines()
    assert "[crio.runtime.runtimes.nvidia]" in lines
    assert 'runtime_path = "%s"' % RUNTIME in lines
    assert 'runtime_type = "oci"' in lines
    assert "default_runtime" not in drop_in.content_string
    assert facts["decisions"]["crio"]["cdi"] == "unknown: CRI-O is not installed"


def test_docker_daemon_json_merged(node, facts):
    daemon = json.loads(node.file("/etc/docker/daemon.json").content_string)
    assert daemon == {
        "log-driver": "json-file",
        "log-opts": {"max-size": "10m"},
        "runtimes": {"crun": {"path": "/usr/bin/crun"}, "nvidia": {"path": RUNTIME, "args": []}},
    }
    assert facts["decisions"]["docker"]["cdi"] == "unknown: docker is not installed"


def test_cdi_spec_not_generated_without_nvidia_ctk(node, facts):
    spec = facts["decisions"]["cdi_spec"]
    assert spec["action"] == "skip: nvidia-ctk is not installed"
    assert spec["path"] == "/etc/cdi/nvidia.yaml"
    assert not node.file("/etc/cdi/nvidia.yaml").exists
    assert not node.file("/var/lib/gpuops/cdi-nvidia.driver-version").exists
