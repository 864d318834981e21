"""The converged container: Debian's driver packages installed, held and configured."""

import json

import pytest

# Debian 12's own packages for branch 535, proprietary modules (the default for a host whose GPU
# architecture is unknown and a branch before 560), headless compute profile.
DRIVER_PACKAGES = [
    "nvidia-kernel-dkms",
    "firmware-nvidia-gsp",
    "nvidia-smi",
    "libnvidia-ml1",
    "libnvidia-cfg1",
    "libcuda1",
]


@pytest.mark.parametrize("name", DRIVER_PACKAGES + ["nvidia-persistenced"])
def test_package_installed(node, name):
    assert node.package(name).is_installed


def test_driver_branch(node):
    assert node.package("nvidia-kernel-dkms").version.startswith("535.")


@pytest.mark.parametrize("name", DRIVER_PACKAGES)
def test_package_held(node, name):
    selection = node.check_output("dpkg --get-selections %s", name).split()
    assert selection[0].split(":")[0] == name
    assert selection[1] == "hold"


def test_no_x_server(node):
    """--no-install-recommends and the compute profile keep the X server out."""
    assert not node.package("xserver-xorg-core").is_installed
    assert not node.package("nvidia-driver").is_installed


def test_components_enabled_through_the_role(node):
    # prepare.yml left only 'main' in sources.list; the role adds the rest in its own file.
    assert node.file("/etc/apt/sources.list").content_string.split()[3:] == ["main"]
    sources = node.file("/etc/apt/sources.list.d/gpuops-nvidia-bookworm.sources")
    assert sources.exists
    assert "Components: contrib non-free non-free-firmware" in sources.content_string
    assert "Suites: bookworm" in sources.content_string


def test_nouveau_blacklisted(node):
    blacklist = node.file("/etc/modprobe.d/gpuops-blacklist-nouveau.conf")
    assert blacklist.mode == 0o644
    lines = [line for line in blacklist.content_string.splitlines() if not line.startswith("#")]
    assert "blacklist nouveau" in lines
    assert "options nouveau modeset=0" in lines


def test_module_options(node):
    lines = node.file("/etc/modprobe.d/gpuops-nvidia.conf").content_string.splitlines()
    # Debian loads the module as nvidia-current; the plain name covers NVIDIA's packaging.
    assert "options nvidia NVreg_RestrictProfilingToAdminUsers=1" in lines
    assert "options nvidia-current NVreg_RestrictProfilingToAdminUsers=1" in lines


def test_modprobe_reads_the_options(node):
    config = node.check_output("modprobe --showconfig")
    assert "options nvidia_current NVreg_RestrictProfilingToAdminUsers=1" in config


def test_persistenced_enabled(node):
    assert node.service("nvidia-persistenced").is_enabled


def test_facts_say_not_loadable_in_container(node):
    facts = json.loads(node.file("/root/nvidia_driver_facts.json").content_string)
    assert facts["in_container"] is True
    assert facts["module_loadable"] is False
    assert facts["module_reason"].startswith("module cannot load here (container")
    assert facts["reboot_required"] is False
    assert facts["installed_version"] == node.package("nvidia-kernel-dkms").version.split("-")[0]
    assert facts["skip_reason"] == ""


def test_no_nvidia_module_loaded(node):
    modules = node.run("cat /proc/modules")  # absent on some VMs
    assert not [line for line in modules.stdout.splitlines() if line.startswith("nvidia")]
