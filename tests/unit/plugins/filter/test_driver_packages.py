"""The driver_packages filters as Ansible loads them (FilterModule); the role runs them for real in molecule."""

from __future__ import annotations

import base64

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.gpuops.cluster.plugins.filter.driver_packages import FilterModule

FILTERS = FilterModule().filters()

SETTINGS = {
    "distribution": "Debian",
    "distribution_version": "12",
    "branch": "535",
    "version": "",
    "source": "distribution",
    "open_kernel_modules": "auto",
    "kernel_module_build": "auto",
    "profile": "compute",
    "secure_boot": "disabled",
    "mok_signing": False,
    "kernel_release": "6.1.0-28-amd64",
    "gpu_architectures": ["ampere", "ampere"],
    "architecture": "x86_64",
    "ubuntu_server": True,
    "repo_url": "https://mirror.example.internal/cuda/repos",
    "repo_key_url": "",
}


def test_filter_names():
    assert sorted(FILTERS) == [
        "driver_apt_sources",
        "driver_installed_version",
        "driver_packages",
        "driver_packages_missing",
        "driver_reboot",
    ]


def test_driver_packages_from_role_settings():
    plan = FILTERS["driver_packages"](dict(SETTINGS))
    assert plan["open_kernel_modules"] is True
    assert plan["packages"][0] == "nvidia-open-kernel-dkms"


@pytest.mark.parametrize(
    "change, needle",
    [
        ({"branch": "999"}, "nvidia_driver_branch:"),
        ({"secure_boot": "enabled"}, "nvidia_driver_mok_key_path:"),
        ({"colour": "blue"}, "unknown setting(s) colour"),
        ({"distribution": None}, "missing setting(s) distribution"),
    ],
)
def test_driver_packages_errors(change, needle):
    settings = dict(SETTINGS, **change)
    with pytest.raises(AnsibleFilterError) as err:
        FILTERS["driver_packages"](settings)
    assert needle in str(err.value)


def test_driver_apt_sources_takes_slurp_results():
    content = "deb http://deb.example.org/debian bookworm main\n"
    results = [
        {"item": "/etc/apt/sources.list", "source": "/etc/apt/sources.list", "encoding": "base64",
         "content": base64.b64encode(content.encode()).decode()},
        {"item": "/etc/apt/sources.list.d/gone.list", "failed": True, "msg": "file not found"},
    ]  # fmt: skip
    text = FILTERS["driver_apt_sources"](results, "bookworm", ["contrib", "non-free"])
    assert text == "Types: deb\nURIs: http://deb.example.org/debian\nSuites: bookworm\nComponents: contrib non-free\n"
    assert FILTERS["driver_apt_sources"](results, "bookworm", ["main"]) == ""


def test_driver_reboot():
    state = {"loadable": True, "loaded_state": "loaded", "loaded_version": "535.216.01",
             "installed_version": "535.261.03", "nouveau": False}  # fmt: skip
    assert FILTERS["driver_reboot"](state) == {
        "required": True,
        "reasons": ["loaded module 535.216.01 differs from installed 535.261.03"],
        "modprobe": False,
    }
    assert FILTERS["driver_reboot"](dict(state, loadable=False))["required"] is False
