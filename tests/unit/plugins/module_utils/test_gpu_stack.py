"""gpu_stack (the gpu_stack_facts module's logic): parsing and collecting with stand-in commands."""

from __future__ import annotations

import os

import pytest
from ansible_collections.gpuops.cluster.plugins.module_utils import gpu_stack

DPKG = (
    "nvidia-kernel-dkms\t535.261.03-1\thold ok installed\n"
    "libnvidia-ml1\t535.261.03-1\tinstall ok installed\n"
    "nvidia-driver\t535.261.03-1\tunknown ok not-installed\n"
    "nvidia-settings\t535.171.04-1\tdeinstall ok config-files\n"
    "nvidia-container-toolkit\t1.17.8-1\tinstall ok installed\n"
    "garbage line\n"
)


def test_parse_dpkg_keeps_installed_packages_and_their_selections():
    packages, selections = gpu_stack.parse_dpkg(DPKG)
    assert packages == {
        "nvidia-kernel-dkms": [{"version": "535.261.03-1"}],
        "libnvidia-ml1": [{"version": "535.261.03-1"}],
        "nvidia-container-toolkit": [{"version": "1.17.8-1"}],
    }
    assert selections == {
        "nvidia-kernel-dkms": "hold",
        "libnvidia-ml1": "install",
        "nvidia-container-toolkit": "install",
    }
    assert gpu_stack.parse_dpkg("") == ({}, {})


def test_parse_rpm():
    assert gpu_stack.parse_rpm("kmod-nvidia\t0:550.1-1.el9\n\n") == {"kmod-nvidia": [{"version": "0:550.1-1.el9"}]}


@pytest.mark.parametrize(
    ("text", "version"),
    [
        ("containerd containerd.io 1.7.24 88bf19b2105c8b17560993bee28a01ddc2f97182", "1.7.24"),
        ("containerd github.com/containerd/containerd/v2 v2.0.2 c507a0257ea6462fbd6f5ba4f5c74facb04021f4", "2.0.2"),
        ("Docker version 28.1.1, build 4eba377", "28.1.1"),
        ("", None),
        ("no version here", None),
    ],
)
def test_parse_version(text, version):
    assert gpu_stack.parse_version(text)["version"] == version


def test_crio_version_is_read_from_its_version_line():
    text = "crio version 1.30.4\nVersion:        1.30.4\nGitCommit:      1234567890\n"
    assert gpu_stack.parse_crio_version(text) == {"version": "1.30.4", "major": 1, "minor": 30, "patch": 4}


def test_cgroup_detection():
    assert gpu_stack.cgroup_says_container("0::/init.scope\n") is False
    assert gpu_stack.cgroup_says_container("0::/system.slice/docker-abc.scope\n") is True
    assert gpu_stack.cgroup_says_container("12:devices:/docker/0123abcd\n") is True
    assert gpu_stack.cgroup_says_container("0::/kubepods/besteffort/pod1\n") is True


class Host:
    """Stand-in commands: argv[0] -> (rc, stdout); missing programs raise OSError like the module's runner."""

    def __init__(self, programs):
        self.programs = programs
        self.calls = []

    def run(self, argv):
        self.calls.append(list(argv))
        name = os.path.basename(argv[0])
        if name not in self.programs:
            raise OSError(2, "No such file or directory")
        answer = self.programs[name]
        return answer(argv) if callable(answer) else answer

    def which(self, name):
        return "/usr/bin/" + name if name in self.programs else None


def test_collect_one_round_trip(tmp_path):
    managed = tmp_path / "gpuops-nvidia.conf"
    managed.write_text("options nvidia NVreg_RestrictProfilingToAdminUsers=1\n")
    host = Host(
        {
            "systemd-detect-virt": (0, "docker\n", ""),
            "dpkg-query": (0, DPKG, ""),
            "systemctl": lambda argv: (
                0,
                "\n".join("enabled" if argv[1] == "is-enabled" else "active" for _x in argv[2:]),
                "",
            ),
            "containerd": (0, "containerd containerd.io 1.7.24 88bf19b\n", ""),
        }
    )
    facts = gpu_stack.collect(
        {
            "packages": True,
            "services": ["nvidia-persistenced.service"],
            "runtimes": ["containerd", "docker"],
            "toolkit": True,
            "files": [str(managed), str(tmp_path / "absent")],
        },
        host.run,
        host.which,
    )
    assert facts["container"] == {"detected": True, "how": "systemd-detect-virt: docker"}
    assert facts["package_manager"] == "dpkg"
    assert facts["selections"]["nvidia-kernel-dkms"] == "hold"
    assert facts["services"] == {"nvidia-persistenced.service": {"enabled": "enabled", "active": "active"}}
    assert facts["runtimes"]["containerd"]["version"] == "1.7.24" and facts["runtimes"]["containerd"]["active"]
    assert facts["runtimes"]["docker"]["installed"] is False and facts["runtimes"]["docker"]["version"] is None
    assert facts["toolkit"] == {"installed": True, "version": "1.17.8-1"}
    state = facts["files"][str(managed)]
    assert state["exists"] and state["type"] == "file" and len(state["sha1"]) == 40
    assert facts["files"][str(tmp_path / "absent")] == {"exists": False}
    # Every command ran without a shell, once.
    assert sorted(c[0].split("/")[-1] for c in host.calls) == [
        "containerd",
        "dpkg-query",
        "systemctl",
        "systemctl",
        "systemd-detect-virt",
    ]


def test_a_bare_host_without_tools():
    facts = gpu_stack.collect(
        {"packages": True, "services": ["x.service"], "runtimes": ["crio"], "toolkit": True},
        Host({}).run,
        Host({}).which,
    )
    assert facts["package_manager"] is None and facts["packages"] == {}
    assert facts["services"] == {"x.service": {"enabled": "unknown", "active": "unknown"}}
    assert facts["runtimes"]["crio"]["installed"] is False
    assert facts["toolkit"] == {"installed": False, "version": None}


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"services": ["x; rm -rf /"]}, "services:"),
        ({"runtimes": ["podman"]}, "runtimes:"),
        ({"files": ["relative/path"]}, "files:"),
        ({"files": ["/a\nb"]}, "files:"),
        ({"files": ["/x"] * 65}, "files: at most 64"),
    ],
)
def test_bad_options(params, needle):
    with pytest.raises(ValueError, match=needle):
        gpu_stack.collect(params, Host({}).run, Host({}).which)
