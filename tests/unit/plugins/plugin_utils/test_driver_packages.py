"""Per-distribution NVIDIA driver resolution (pure logic): names, repositories, streams, holds, errors."""

from __future__ import annotations

import pytest
from ansible_collections.gpuops.cluster.plugins.plugin_utils.driver_packages import (
    DriverPlanError,
    driver_version_of,
    installed_driver_version,
    missing_components,
    packages_to_install,
    parse_apt_sources,
    reboot_decision,
    render_deb822,
    resolve_driver_plan,
    resolve_open_kernel_modules,
)

REPO = "https://mirror.example.internal/nvidia/cuda/repos"


KERNELS = {"Debian": "6.1.0-28-amd64", "Ubuntu": "5.15.0-91-generic"}
RHEL_KERNEL = "5.14.0-427.13.1.el9_4.x86_64"


def plan(distribution="Debian", release="12", branch="535", **kw):
    """resolve_driver_plan with a kernel of the distribution and a mirror URL; `version` is the driver's."""
    kw.setdefault("kernel_release", KERNELS.get(distribution, RHEL_KERNEL))
    kw.setdefault("repo_url", REPO)
    return resolve_driver_plan(distribution, release, branch, **kw)


# ------------------------------------------------------------------ Debian


@pytest.mark.parametrize(
    "release, branch, open_modules, kernel_pkg, gsp",
    [
        ("12", "535", False, "nvidia-kernel-dkms", "firmware-nvidia-gsp"),
        ("12", "535", True, "nvidia-open-kernel-dkms", "firmware-nvidia-gsp"),
        ("13", "550", False, "nvidia-kernel-dkms", "firmware-nvidia-gsp"),
        ("13", "550", True, "nvidia-open-kernel-dkms", "firmware-nvidia-gsp"),
    ],
)
def test_debian_main_branch(release, branch, open_modules, kernel_pkg, gsp):
    result = plan("Debian", release + ".4", branch, open_kernel_modules=open_modules)
    assert result["release"] == release
    assert result["codename"] == {"12": "bookworm", "13": "trixie"}[release]
    assert result["packages"] == [
        kernel_pkg,
        gsp,
        "nvidia-smi",
        "libnvidia-ml1",
        "libnvidia-cfg1",
        "libcuda1",
        "nvidia-persistenced",
    ]
    assert result["hold"] == [kernel_pkg, gsp, "nvidia-smi", "libnvidia-ml1", "libnvidia-cfg1", "libcuda1"]
    assert result["hold_mechanism"] == "dpkg_selections"
    assert result["components"] == ["contrib", "non-free", "non-free-firmware"]
    assert result["headers_package"] == "linux-headers-6.1.0-28-amd64"
    assert result["kernel_module_build"] == "dkms"
    assert result["module_names"] == ["nvidia", "nvidia-current"]
    assert result["version_package"] == kernel_pkg
    assert result["repository"] is None
    assert result["initramfs_command"] == ["update-initramfs", "-u", "-k", "all"]


def test_debian_full_profile():
    result = plan(profile="full", open_kernel_modules=False)
    assert result["packages"] == ["nvidia-kernel-dkms", "nvidia-driver", "firmware-nvidia-gsp", "nvidia-persistenced"]


@pytest.mark.parametrize("release, branch", [("12", "470"), ("13", "535")])
def test_debian_tesla_branch(release, branch):
    result = plan("Debian", release, branch, open_kernel_modules=False)
    prefix = "nvidia-tesla-%s" % branch
    assert result["packages"][0] == prefix + "-kernel-dkms"
    assert prefix + "-smi" in result["packages"]
    assert "libnvidia-tesla-%s-cuda1" % branch in result["packages"]
    assert result["module_names"] == ["nvidia", prefix]


def test_debian_tesla_has_no_open_modules():
    with pytest.raises(DriverPlanError) as err:
        plan("Debian", "13", "535", open_kernel_modules=True)
    assert err.value.variable == "nvidia_driver_open_kernel_modules"


def test_debian_version_pin():
    result = plan(version="535.261.03", open_kernel_modules=False)
    assert result["packages"][0] == "nvidia-kernel-dkms=535.261.03*"
    assert result["packages"][-1] == "nvidia-persistenced"  # its own version line, never pinned
    assert result["hold"][0] == "nvidia-kernel-dkms"


@pytest.mark.parametrize("release, branch, allowed", [("12", "550", "470, 535"), ("13", "570", "535, 550")])
def test_debian_unpackaged_branch(release, branch, allowed):
    with pytest.raises(DriverPlanError) as err:
        plan("Debian", release, branch, open_kernel_modules=False)
    assert err.value.variable == "nvidia_driver_branch"
    assert allowed in str(err.value)
    assert "nvidia_repo" in str(err.value)


def test_debian_precompiled_is_refused():
    with pytest.raises(DriverPlanError) as err:
        plan(kernel_module_build="precompiled")
    assert err.value.variable == "nvidia_driver_kernel_module_build"


@pytest.mark.parametrize("release, folder", [("12", "debian12"), ("13", "debian13")])
@pytest.mark.parametrize("open_modules, package", [(True, "nvidia-open-570"), (False, "cuda-drivers-570")])
def test_debian_nvidia_repo(release, folder, open_modules, package):
    result = plan("Debian", release, "570", source="nvidia_repo", open_kernel_modules=open_modules)
    assert result["repository"]["url"] == "%s/%s/x86_64/" % (REPO, folder)
    assert result["repository"]["key_url"] == "%s/%s/x86_64/3bf863cc.pub" % (REPO, folder)
    assert result["packages"] == [package]
    assert result["hold"] == [package]
    assert result["components"] == []


def test_debian_unsupported_release():
    with pytest.raises(DriverPlanError) as err:
        plan("Debian", "11", "470")
    assert err.value.variable == "ansible_distribution_major_version"


# ------------------------------------------------------------------ Ubuntu


@pytest.mark.parametrize("release, codename", [("22.04", "jammy"), ("24.04", "noble")])
@pytest.mark.parametrize(
    "server, open_modules, flavour",
    [(True, False, "-server"), (True, True, "-server-open"), (False, False, ""), (False, True, "-open")],
)
def test_ubuntu_precompiled(release, codename, server, open_modules, flavour):
    result = plan("Ubuntu", release, "535", ubuntu_server=server, open_kernel_modules=open_modules)
    modules = "linux-modules-nvidia-535%s-5.15.0-91-generic" % flavour
    suffix = "-server" if server else ""
    assert result["codename"] == codename
    assert result["kernel_module_build"] == "precompiled"
    assert result["kernel_flavour"] == "generic"
    assert result["packages"] == [modules, "nvidia-headless-no-dkms-535%s" % flavour, "nvidia-utils-535%s" % suffix]
    assert modules in result["hold"]
    assert result["headers_package"] is None
    assert result["components"] == ["restricted"]
    assert result["persistenced_package"] == "nvidia-compute-utils-535%s" % suffix


def test_ubuntu_cloud_kernel_flavour():
    result = plan("Ubuntu", "24.04", "550", kernel_release="6.8.0-1015-aws", open_kernel_modules=True)
    assert result["kernel_flavour"] == "aws"
    assert result["packages"][0] == "linux-modules-nvidia-550-server-open-6.8.0-1015-aws"


def test_ubuntu_custom_kernel_falls_back_to_dkms():
    result = plan("Ubuntu", "22.04", "535", kernel_release="6.9.3-custom", open_kernel_modules=False)
    assert result["kernel_module_build"] == "dkms"
    assert result["packages"] == ["nvidia-headless-535-server", "nvidia-utils-535-server"]
    assert result["headers_package"] == "linux-headers-6.9.3-custom"
    assert "nvidia-dkms-535-server" in result["hold"]


def test_ubuntu_custom_kernel_precompiled_is_refused():
    with pytest.raises(DriverPlanError) as err:
        plan("Ubuntu", "22.04", "535", kernel_release="6.9.3-custom", kernel_module_build="precompiled")
    assert err.value.variable == "nvidia_driver_kernel_module_build"


def test_ubuntu_full_profile_precompiled():
    result = plan("Ubuntu", "24.04", "550", profile="full", open_kernel_modules=False)
    assert result["packages"] == [
        "linux-modules-nvidia-550-server-5.15.0-91-generic",
        "nvidia-driver-550-server",
        "nvidia-utils-550-server",
    ]


def test_ubuntu_version_pin_skips_kernel_modules():
    result = plan("Ubuntu", "22.04", "535", version="535.183.01", open_kernel_modules=False)
    assert result["packages"][0] == "linux-modules-nvidia-535-server-5.15.0-91-generic"
    assert result["packages"][1:] == [
        "nvidia-headless-no-dkms-535-server=535.183.01*",
        "nvidia-utils-535-server=535.183.01*",
    ]


@pytest.mark.parametrize("release, folder", [("22.04", "ubuntu2204"), ("24.04", "ubuntu2404")])
def test_ubuntu_nvidia_repo(release, folder):
    result = plan("Ubuntu", release, "570", source="nvidia_repo", open_kernel_modules=True)
    assert result["repository"]["url"].endswith("/%s/x86_64/" % folder)
    assert result["packages"] == ["nvidia-open-570"]
    assert result["kernel_module_build"] == "dkms"


def test_ubuntu_nvidia_repo_arm64():
    result = plan("Ubuntu", "24.04", "570", source="nvidia_repo", architecture="aarch64", open_kernel_modules=True)
    assert result["repository"]["url"].endswith("/ubuntu2404/sbsa/")


def test_ubuntu_unsupported_release():
    with pytest.raises(DriverPlanError) as err:
        plan("Ubuntu", "20.04", "535")
    assert err.value.variable == "ansible_distribution_version"


@pytest.mark.parametrize("release, method", [("22.04", "shim_signed"), ("24.04", "framework_conf")])
def test_ubuntu_dkms_secure_boot_with_mok(release, method):
    result = plan(
        "Ubuntu",
        release,
        "535",
        kernel_module_build="dkms",
        secure_boot="enabled",
        mok_signing=True,
        open_kernel_modules=False,
    )
    assert result["secure_boot_path"] == "dkms_mok"
    assert result["dkms_mok_method"] == method


# ------------------------------------------------------------------ RHEL family


@pytest.mark.parametrize("distribution", ["RedHat", "Rocky", "AlmaLinux"])
@pytest.mark.parametrize("release", ["8", "9"])
def test_rhel_streams(distribution, release):
    dkms = plan(distribution, release + ".4", "550", source="nvidia_repo", open_kernel_modules=False)
    assert dkms["module_stream"] == "nvidia-driver:550-dkms"
    assert dkms["packages"] == ["@nvidia-driver:550-dkms/default"]
    assert dkms["hold_mechanism"] == "yum_versionlock"
    assert "kmod-nvidia-latest-dkms" in dkms["hold"]
    assert dkms["headers_package"] == "kernel-devel-5.14.0-427.13.1.el9_4.x86_64"
    assert dkms["needs_epel"] is True
    assert dkms["repository"]["url"] == "%s/rhel%s/x86_64/" % (REPO, release)
    assert dkms["repository"]["key_url"].endswith("/D42D0685.pub")
    assert dkms["initramfs_command"][0] == "dracut"

    opened = plan(distribution, release, "550", source="nvidia_repo", open_kernel_modules=True)
    assert opened["module_stream"] == "nvidia-driver:550-open"
    assert "kmod-nvidia-open-dkms" in opened["hold"]

    pre = plan(
        distribution, release, "550", source="nvidia_repo", open_kernel_modules=False, kernel_module_build="precompiled"
    )
    assert pre["module_stream"] == "nvidia-driver:550"
    assert pre["headers_package"] is None
    assert pre["needs_epel"] is False


def test_rhel_secure_boot_auto_picks_precompiled():
    result = plan("Rocky", "9", "535", source="nvidia_repo", secure_boot="enabled", open_kernel_modules=False)
    assert result["module_stream"] == "nvidia-driver:535"
    assert result["secure_boot_path"] == "signed_precompiled"
    assert any("enroll" in w for w in result["warnings"])


def test_rhel_version_pin():
    result = plan("RedHat", "9", "550", source="nvidia_repo", version="550.127.05", open_kernel_modules=False)
    assert result["packages"] == [
        "@nvidia-driver:550-dkms/default",
        "nvidia-driver-550.127.05*",
        "nvidia-driver-cuda-550.127.05*",
    ]


def test_rhel_needs_nvidia_repo():
    with pytest.raises(DriverPlanError) as err:
        plan("Rocky", "9", "550")
    assert err.value.variable == "nvidia_driver_source"


def test_rhel_open_precompiled_is_refused():
    with pytest.raises(DriverPlanError) as err:
        plan("RedHat", "9", "550", source="nvidia_repo", open_kernel_modules=True, kernel_module_build="precompiled")
    assert err.value.variable == "nvidia_driver_kernel_module_build"


@pytest.mark.parametrize("distribution, version", [("Fedora", "40"), ("Amazon", "2023"), ("RedHat", "7")])
def test_unsupported_distributions(distribution, version):
    with pytest.raises(DriverPlanError) as err:
        plan(distribution, version, "550", source="nvidia_repo")
    assert err.value.variable in ("ansible_distribution", "ansible_distribution_major_version")


# ------------------------------------------------------------------ Secure Boot


@pytest.mark.parametrize(
    "distribution, version, source, hint",
    [
        ("Debian", "12", "distribution", None),
        ("Ubuntu", "22.04", "distribution", "precompiled"),
        ("RedHat", "9", "nvidia_repo", "precompiled"),
    ],
)
def test_secure_boot_without_a_path_fails_explaining(distribution, version, source, hint):
    with pytest.raises(DriverPlanError) as err:
        plan(
            distribution,
            version,
            "535",
            source=source,
            kernel_module_build="dkms",
            secure_boot="enabled",
            open_kernel_modules=False,
        )
    message = str(err.value)
    assert err.value.variable == "nvidia_driver_mok_key_path"
    assert "nvidia_driver_mok_cert_path" in message
    assert "disable Secure Boot" in message
    assert (hint in message) if hint else ("nvidia_driver_kernel_module_build=precompiled" not in message)


def test_secure_boot_debian_with_mok():
    result = plan(secure_boot="enabled", mok_signing=True, open_kernel_modules=False)
    assert result["secure_boot_path"] == "dkms_mok"


def test_secure_boot_ubuntu_signed_precompiled():
    result = plan("Ubuntu", "24.04", "550", secure_boot="enabled", open_kernel_modules=True)
    assert result["secure_boot_path"] == "signed_precompiled"


def test_secure_boot_unknown_warns():
    result = plan(secure_boot="unknown", open_kernel_modules=False)
    assert result["secure_boot_path"] == "none"
    assert any("nvidia_driver_secure_boot" in w for w in result["warnings"])


# ------------------------------------------------------------------ settings


@pytest.mark.parametrize(
    "kwargs, variable",
    [
        ({"branch": "5xx"}, "nvidia_driver_branch"),
        ({"branch": "5350"}, "nvidia_driver_branch"),
        ({"version": "535"}, "nvidia_driver_version"),
        ({"version": "550.127.05"}, "nvidia_driver_version"),
        ({"source": "ppa"}, "nvidia_driver_source"),
        ({"kernel_module_build": "akmods"}, "nvidia_driver_kernel_module_build"),
        ({"profile": "desktop"}, "nvidia_driver_profile"),
        ({"open_kernel_modules": "maybe"}, "nvidia_driver_open_kernel_modules"),
        ({"source": "nvidia_repo", "repo_url": ""}, "nvidia_driver_repo_url"),
        ({"source": "nvidia_repo", "architecture": "ppc64le"}, "nvidia_driver_source"),
    ],
)
def test_bad_settings_name_the_variable(kwargs, variable):
    with pytest.raises(DriverPlanError) as err:
        plan(**kwargs)
    assert err.value.variable == variable
    assert str(err.value).startswith(variable + ":")


@pytest.mark.parametrize(
    "setting, branch, archs, expected",
    [
        ("auto", "535", ["ampere", "hopper"], True),
        ("auto", "535", ["volta"], False),
        ("auto", "470", ["ampere"], False),
        ("auto", "535", [], False),
        ("auto", "560", [], True),
        ("auto", "550", ["unknown"], False),
        ("auto", "570", ["blackwell"], True),
        ("true", "535", ["turing"], True),
        (False, "535", ["hopper"], False),
    ],
)
def test_open_kernel_modules(setting, branch, archs, expected):
    assert resolve_open_kernel_modules(setting, branch, archs)[0] is expected


@pytest.mark.parametrize(
    "setting, branch, archs, variable",
    [
        (True, "470", [], "nvidia_driver_open_kernel_modules"),
        (True, "535", ["volta"], "nvidia_driver_open_kernel_modules"),
        (False, "570", ["blackwell"], "nvidia_driver_open_kernel_modules"),
        ("auto", "570", ["blackwell", "volta"], "nvidia_driver_open_kernel_modules"),
        ("auto", "470", ["blackwell"], "nvidia_driver_branch"),
    ],
)
def test_open_kernel_modules_conflicts(setting, branch, archs, variable):
    with pytest.raises(DriverPlanError) as err:
        resolve_open_kernel_modules(setting, branch, archs)
    assert err.value.variable == variable


# ------------------------------------------------------------------ apt sources

BOOKWORM_MAIN = """\
# stock install
deb http://deb.example.org/debian bookworm main
deb http://deb.example.org/debian bookworm-updates main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://security.example.org/debian-security \
bookworm-security main
deb http://deb.example.org/debian bookworm-backports main contrib
"""

TRIXIE_DEB822 = """\
Types: deb
URIs: http://deb.example.org/debian/
Suites: trixie trixie-updates
Components: main non-free-firmware
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb deb-src
URIs: http://security.example.org/debian-security
Suites: trixie-security
Components: main contrib non-free non-free-firmware
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
Enabled: no
URIs: http://old.example.org/debian
Suites: trixie
Components: main
"""


def test_parse_one_line_and_deb822():
    entries = parse_apt_sources(
        [
            {"path": "/etc/apt/sources.list", "content": BOOKWORM_MAIN},
            {"path": "/x/debian.sources", "content": TRIXIE_DEB822},
        ]
    )
    assert len(entries) == 4 + 3
    assert entries[2]["signed_by"] == "/usr/share/keyrings/debian-archive-keyring.gpg"
    assert entries[2]["uri"] == "http://security.example.org/debian-security"
    assert {e["suite"] for e in entries if e["path"].endswith(".sources")} == {
        "trixie",
        "trixie-updates",
        "trixie-security",
    }


def test_missing_components_one_line():
    stanzas = missing_components(
        [{"path": "/etc/apt/sources.list", "content": BOOKWORM_MAIN}],
        "bookworm",
        ["contrib", "non-free", "non-free-firmware"],
    )
    assert [(s["uris"], s["suites"], s["components"]) for s in stanzas] == [
        ("http://deb.example.org/debian", "bookworm", ["contrib", "non-free", "non-free-firmware"]),
        ("http://deb.example.org/debian", "bookworm-backports", ["non-free", "non-free-firmware"]),
        ("http://deb.example.org/debian", "bookworm-updates", ["contrib", "non-free", "non-free-firmware"]),
        (
            "http://security.example.org/debian-security",
            "bookworm-security",
            ["contrib", "non-free", "non-free-firmware"],
        ),
    ]
    assert stanzas[3]["signed_by"] == "/usr/share/keyrings/debian-archive-keyring.gpg"
    text = render_deb822(stanzas)
    assert (
        "Types: deb\nURIs: http://deb.example.org/debian\nSuites: bookworm\n"
        "Components: contrib non-free non-free-firmware\n" in text
    )
    assert text.count("Types: deb") == 4


def test_missing_components_deb822_and_nothing_missing():
    files = [{"path": "/etc/apt/sources.list.d/debian.sources", "content": TRIXIE_DEB822}]
    stanzas = missing_components(files, "trixie", ["contrib", "non-free", "non-free-firmware"])
    assert [(s["suites"], s["components"]) for s in stanzas] == [
        ("trixie", ["contrib", "non-free"]),
        ("trixie-updates", ["contrib", "non-free"]),
    ]
    full = "deb http://deb.example.org/debian bookworm main contrib non-free non-free-firmware\n"
    assert (
        missing_components([{"path": "/etc/apt/sources.list", "content": full}], "bookworm", ["contrib", "non-free"])
        == []
    )
    assert render_deb822([]) == ""


def test_missing_components_from_a_mirror():
    stanzas = missing_components(
        [{"path": "/etc/apt/sources.list", "content": BOOKWORM_MAIN}],
        "bookworm",
        ["non-free"],
        mirror="http://apt.site.lan/debian/",
    )
    assert {s["uris"] for s in stanzas} == {"http://apt.site.lan/debian"}
    assert [s["suites"] for s in stanzas] == ["bookworm", "bookworm-backports", "bookworm-security", "bookworm-updates"]


def test_ubuntu_restricted():
    text = (
        "deb http://archive.example.org/ubuntu jammy main universe\n"
        "deb http://archive.example.org/ubuntu jammy-updates main restricted\n"
    )
    stanzas = missing_components([{"path": "/etc/apt/sources.list", "content": text}], "jammy", ["restricted"])
    assert [(s["suites"], s["components"]) for s in stanzas] == [("jammy", ["restricted"])]


# ------------------------------------------------------------------ installed state


def test_driver_version_of():
    assert driver_version_of("535.261.03-1~deb12u1") == "535.261.03"
    assert driver_version_of("3:550.127.05-1.el9") == "550.127.05"
    assert driver_version_of("535.183.01-0ubuntu0.22.04.1") == "535.183.01"
    assert driver_version_of("1.2") is None
    assert driver_version_of(None) is None


def test_packages_to_install_and_installed_version():
    p = plan(version="535.261.03", open_kernel_modules=False)
    installed = {
        "nvidia-kernel-dkms": [{"version": "535.216.01-1"}],
        "nvidia-smi": [{"version": "535.261.03-1"}],
        "nvidia-persistenced": [{"version": "535.171.04-1~deb12u1"}],
    }
    todo = packages_to_install(p, installed)
    assert "nvidia-kernel-dkms=535.261.03*" in todo  # other version installed
    assert "nvidia-smi=535.261.03*" not in todo
    assert "libcuda1=535.261.03*" in todo  # missing
    assert "nvidia-persistenced" not in todo
    assert installed_driver_version(p, installed) == "535.216.01"
    assert installed_driver_version(p, {}) is None

    rhel = plan("RedHat", "9", "550", source="nvidia_repo", open_kernel_modules=False)
    assert packages_to_install(rhel, {}) == ["@nvidia-driver:550-dkms/default"]
    assert packages_to_install(rhel, {"nvidia-driver": [{"version": "550.127.05"}]}) == []


@pytest.mark.parametrize(
    "loadable, state, loaded, installed, nouveau, expected",
    [
        (False, "none", None, "535.261.03", True, (False, False)),
        (True, "loaded", "535.261.03", "535.261.03", False, (False, False)),
        (True, "loaded", "535.216.01", "535.261.03", False, (True, False)),
        (True, "none", None, "535.261.03", True, (True, False)),
        (True, "none", None, "535.261.03", False, (False, True)),
        (True, "installed", None, "535.261.03", False, (False, True)),
    ],
)
def test_reboot_decision(loadable, state, loaded, installed, nouveau, expected):
    required, reasons, modprobe = reboot_decision(loadable, state, loaded, installed, nouveau)
    assert (required, modprobe) == expected
    assert bool(reasons) == required
