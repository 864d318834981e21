# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""NVIDIA driver packages per distribution: pure resolution, no I/O.

`resolve_driver_plan` turns the role's settings plus a few host facts (distribution, version,
running kernel, Secure Boot state, GPU architectures) into everything the nvidia_driver role
needs to act: package names (with version pins), packages to hold and how, the headers package
for the running kernel, repositories (or the Debian/Ubuntu components to enable), the DNF
module stream, the modprobe module names, the initramfs command and the Secure Boot path.

Bad or unsupported combinations raise `DriverPlanError`, whose message names the variable to
change and what is allowed. The role calls this through the `driver_packages` filter before it
changes anything, so bad input fails early.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import re

from ansible_collections.gpuops.cluster.plugins.plugin_utils.config_formats import deb822_value

SOURCES = ("distribution", "nvidia_repo")
BUILDS = ("auto", "dkms", "precompiled")
PROFILES = ("compute", "full")
SECURE_BOOT_STATES = ("enabled", "disabled", "unknown")

# Architectures the open kernel modules support (Turing and later). Blackwell and later need them.
OPEN_CAPABLE = ("turing", "ampere", "ada", "hopper", "blackwell", "rubin")
OPEN_REQUIRED = ("blackwell", "rubin")
OPEN_MIN_BRANCH = 515
OPEN_DEFAULT_BRANCH = 560  # NVIDIA's installers default to the open modules from this branch on

REDHAT_LIKE = ("RedHat", "Rocky", "AlmaLinux", "CentOS", "OracleLinux")

# Debian's own driver packages, per release: the branch of the main `nvidia-*` packages and the
# `nvidia-tesla-<branch>-*` branches. Checked against the archive (bookworm 535.261.03,
# trixie 550.163.01); open kernel modules and GSP firmware only exist for the main branch.
DEBIAN_RELEASES = {
    "12": {"codename": "bookworm", "main": "535", "tesla": ("470", "535")},
    "13": {"codename": "trixie", "main": "550", "tesla": ("535",)},
}
DEBIAN_COMPONENTS = ("contrib", "non-free", "non-free-firmware")

UBUNTU_RELEASES = {"22.04": "jammy", "24.04": "noble"}
UBUNTU_COMPONENTS = ("restricted",)
# Ubuntu's dkms 2.8 (22.04) signs with the shim-signed MOK pair; dkms 3 reads framework.conf.d.
UBUNTU_DKMS2 = ("22.04",)

REDHAT_RELEASES = ("8", "9")

# NVIDIA's repository: one folder per distribution release and architecture.
REPO_FOLDERS = {
    ("Debian", "12"): "debian12",
    ("Debian", "13"): "debian13",
    ("Ubuntu", "22.04"): "ubuntu2204",
    ("Ubuntu", "24.04"): "ubuntu2404",
    ("RedHat", "8"): "rhel8",
    ("RedHat", "9"): "rhel9",
}
REPO_ARCH = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "sbsa", "arm64": "sbsa"}
REPO_KEYS = {"apt": "3bf863cc.pub", "dnf": "D42D0685.pub"}

UBUNTU_KERNEL_RE = re.compile(r"^\d+\.\d+\.\d+-\d+-([a-z0-9]+(?:-[a-z0-9]+)*)$")
BRANCH_RE = re.compile(r"^\d{3}$")
VERSION_RE = re.compile(r"^\d{3}(\.\d+){1,2}$")
DRIVER_VERSION_RE = re.compile(r"^(?:\d+:)?(\d{3}\.\d+(?:\.\d+)?)")


class DriverPlanError(ValueError):
    """Bad or unsupported settings; `variable` names the variable to change."""

    def __init__(self, variable, message):
        super().__init__("%s: %s" % (variable, message))
        self.variable = variable


def _as_bool_or_auto(value, variable):
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text == "auto":
        return "auto"
    if text in ("true", "yes", "on", "1"):
        return True
    if text in ("false", "no", "off", "0"):
        return False
    raise DriverPlanError(variable, "must be auto, true or false, got %r" % (value,))


def _choice(value, allowed, variable):
    if value not in allowed:
        raise DriverPlanError(variable, "must be one of %s, got %r" % (", ".join(allowed), value))
    return value


def family_of(distribution):
    if distribution == "Debian":
        return "Debian"
    if distribution == "Ubuntu":
        return "Ubuntu"
    if distribution in REDHAT_LIKE:
        return "RedHat"
    return None


def release_key(family, version):
    """'12.8' -> '12' (Debian), '22.04' stays (Ubuntu), '9.4' -> '9' (RHEL family)."""
    text = str(version or "").strip()
    if family == "Ubuntu":
        return text
    return text.split(".", 1)[0]


def driver_version_of(package_version):
    """'535.261.03-1~deb12u1' -> '535.261.03'; '3:550.127.05-1.el9' -> '550.127.05'; else None."""
    match = DRIVER_VERSION_RE.match(str(package_version or ""))
    return match.group(1) if match else None


def resolve_open_kernel_modules(setting, branch, architectures=()):
    """(open: bool, reason: str) for nvidia_driver_open_kernel_modules = auto | true | false."""
    value = _as_bool_or_auto(setting, "nvidia_driver_open_kernel_modules")
    branch_number = int(branch)
    archs = sorted({str(a).lower() for a in architectures or () if a})
    known = [a for a in archs if a != "unknown"]
    needs_open = [a for a in known if a in OPEN_REQUIRED]
    too_old = [a for a in known if a not in OPEN_CAPABLE]
    if value is True:
        if branch_number < OPEN_MIN_BRANCH:
            raise DriverPlanError(
                "nvidia_driver_open_kernel_modules",
                "open kernel modules need branch %d or later (nvidia_driver_branch is %s); "
                "set it to false or auto" % (OPEN_MIN_BRANCH, branch),
            )
        if too_old:
            raise DriverPlanError(
                "nvidia_driver_open_kernel_modules",
                "the open kernel modules do not support %s GPUs (Turing or later only); set it to false or auto"
                % ", ".join(too_old),
            )
        return True, "requested"
    if value is False:
        if needs_open:
            raise DriverPlanError(
                "nvidia_driver_open_kernel_modules",
                "%s GPUs work only with the open kernel modules; set it to true or auto" % ", ".join(needs_open),
            )
        return False, "requested"
    if too_old:
        if needs_open:
            raise DriverPlanError(
                "nvidia_driver_open_kernel_modules",
                "this host mixes %s GPUs (open modules only) with %s GPUs (proprietary only)"
                % (", ".join(needs_open), ", ".join(too_old)),
            )
        return False, "auto: %s GPUs need the proprietary modules" % ", ".join(too_old)
    if branch_number < OPEN_MIN_BRANCH:
        if needs_open:
            raise DriverPlanError(
                "nvidia_driver_branch",
                "%s GPUs need the open kernel modules, which need branch %d or later" % (", ".join(needs_open), 515),
            )
        return False, "auto: branch %s predates the open kernel modules" % branch
    if known:
        return True, "auto: every GPU (%s) supports the open kernel modules" % ", ".join(known)
    if branch_number >= OPEN_DEFAULT_BRANCH:
        return True, "auto: GPU architecture unknown; open is the default from branch %d" % OPEN_DEFAULT_BRANCH
    return False, "auto: GPU architecture unknown; proprietary is the default before branch %d" % OPEN_DEFAULT_BRANCH


def _pin(names, version, manager):
    if not version:
        return list(names)
    if manager == "apt":
        return ["%s=%s*" % (name, version) for name in names]
    return ["%s-%s*" % (name, version) for name in names]


def _repository(family, release, manager, arch, repo_url, key_url):
    folder = REPO_FOLDERS.get((family, release))
    repo_arch = REPO_ARCH.get(arch)
    if folder is None or repo_arch is None:
        raise DriverPlanError(
            "nvidia_driver_source",
            "NVIDIA's repository has no folder for %s %s on %s; use nvidia_driver_source=distribution"
            % (family, release, arch),
        )
    base = str(repo_url or "").rstrip("/")
    if not base:
        raise DriverPlanError("nvidia_driver_repo_url", "must be set when nvidia_driver_source is nvidia_repo")
    url = "%s/%s/%s/" % (base, folder, repo_arch)
    return {
        "kind": manager,
        "name": "gpuops-nvidia-%s" % folder,
        "url": url,
        "key_url": key_url or url + REPO_KEYS[manager],
        "folder": folder,
    }


def _debian_plan(plan, release, branch, version, source, open_modules, build, profile):
    info = DEBIAN_RELEASES.get(release)
    if info is None:
        raise DriverPlanError(
            "ansible_distribution_major_version",
            "Debian %s is not supported; supported: %s" % (release, ", ".join(sorted(DEBIAN_RELEASES))),
        )
    if build == "precompiled":
        raise DriverPlanError(
            "nvidia_driver_kernel_module_build",
            "Debian ships no precompiled NVIDIA modules; use dkms or auto",
        )
    plan["kernel_module_build"] = "dkms"
    plan["headers_package"] = "linux-headers-%s" % plan["kernel_release"] if plan["kernel_release"] else None
    if source == "nvidia_repo":
        name = "nvidia-open-%s" % branch if open_modules else "cuda-drivers-%s" % branch
        plan["packages"] = _pin([name], version, "apt")
        plan["hold"] = [name]
        plan["version_package"] = name
        plan["persistenced_package"] = "nvidia-persistenced"
        plan["module_names"] = ["nvidia"]
        return plan
    if branch == info["main"]:
        kernel = "nvidia-open-kernel-dkms" if open_modules else "nvidia-kernel-dkms"
        names = [kernel, "firmware-nvidia-gsp", "nvidia-smi", "libnvidia-ml1", "libnvidia-cfg1", "libcuda1"]
        if profile == "full":
            names = [kernel, "nvidia-driver", "firmware-nvidia-gsp"]
        plan["packages"] = _pin(names, version, "apt") + ["nvidia-persistenced"]
        plan["hold"] = names
        plan["version_package"] = kernel
        plan["module_names"] = ["nvidia", "nvidia-current"]
    elif branch in info["tesla"]:
        if open_modules:
            raise DriverPlanError(
                "nvidia_driver_open_kernel_modules",
                "Debian %s has no open kernel modules for the Tesla %s branch (only for %s); "
                "set it to false, or set nvidia_driver_branch to %s" % (release, branch, info["main"], info["main"]),
            )
        prefix = "nvidia-tesla-%s" % branch
        kernel = "%s-kernel-dkms" % prefix
        names = [kernel, "%s-smi" % prefix, "libnvidia-tesla-%s-ml1" % branch, "libnvidia-tesla-%s-cfg1" % branch]
        names.append("libnvidia-tesla-%s-cuda1" % branch)
        if profile == "full":
            names = [kernel, "%s-driver" % prefix]
        plan["packages"] = _pin(names, version, "apt") + ["nvidia-persistenced"]
        plan["hold"] = names
        plan["version_package"] = kernel
        plan["module_names"] = ["nvidia", prefix]
    else:
        allowed = sorted(set((info["main"],) + info["tesla"]))
        raise DriverPlanError(
            "nvidia_driver_branch",
            "Debian %s (%s) packages the branches %s, not %s; pick one of those or set "
            "nvidia_driver_source=nvidia_repo" % (release, info["codename"], ", ".join(allowed), branch),
        )
    plan["persistenced_package"] = "nvidia-persistenced"
    plan["components"] = list(DEBIAN_COMPONENTS)
    plan["codename"] = info["codename"]
    return plan


def _ubuntu_plan(plan, release, branch, version, source, open_modules, build, profile, server):
    if release not in UBUNTU_RELEASES:
        raise DriverPlanError(
            "ansible_distribution_version",
            "Ubuntu %s is not supported; supported: %s" % (release, ", ".join(sorted(UBUNTU_RELEASES))),
        )
    plan["codename"] = UBUNTU_RELEASES[release]
    kernel_release = plan["kernel_release"]
    if source == "nvidia_repo":
        if build == "precompiled":
            raise DriverPlanError(
                "nvidia_driver_kernel_module_build",
                "NVIDIA's Ubuntu repository is used with dkms here; for precompiled signed modules use "
                "nvidia_driver_source=distribution",
            )
        name = "nvidia-open-%s" % branch if open_modules else "cuda-drivers-%s" % branch
        plan["kernel_module_build"] = "dkms"
        plan["headers_package"] = "linux-headers-%s" % kernel_release if kernel_release else None
        plan["packages"] = _pin([name], version, "apt")
        plan["hold"] = [name]
        plan["version_package"] = name
        plan["persistenced_package"] = "nvidia-compute-utils-%s" % branch
        plan["module_names"] = ["nvidia"]
        return plan
    suffix = "-server" if server else ""
    flavour = suffix + ("-open" if open_modules else "")
    utils = "nvidia-utils-%s%s" % (branch, suffix)
    plan["persistenced_package"] = "nvidia-compute-utils-%s%s" % (branch, suffix)
    plan["module_names"] = ["nvidia"]
    plan["components"] = list(UBUNTU_COMPONENTS)
    if build == "auto":
        build = "precompiled" if kernel_release and UBUNTU_KERNEL_RE.match(kernel_release) else "dkms"
    if build == "precompiled":
        if not kernel_release or not UBUNTU_KERNEL_RE.match(kernel_release):
            raise DriverPlanError(
                "nvidia_driver_kernel_module_build",
                "precompiled modules exist only for Ubuntu's own kernels (like 5.15.0-91-generic), "
                "not for %r; use dkms" % (kernel_release,),
            )
        modules = "linux-modules-nvidia-%s%s-%s" % (branch, flavour, kernel_release)
        if profile == "full":
            names = ["nvidia-driver-%s%s" % (branch, flavour), utils]
        else:
            names = ["nvidia-headless-no-dkms-%s%s" % (branch, flavour), utils]
        plan["kernel_packages"] = [modules]
        plan["packages"] = [modules] + _pin(names, version, "apt")
        plan["hold"] = names + [modules]
        plan["kernel_module_build"] = "precompiled"
        plan["headers_package"] = None
        plan["version_package"] = utils
        plan["kernel_flavour"] = UBUNTU_KERNEL_RE.match(kernel_release).group(1)
        return plan
    names = [
        "nvidia-driver-%s%s" % (branch, flavour) if profile == "full" else "nvidia-headless-%s%s" % (branch, flavour)
    ]
    names.append(utils)
    plan["packages"] = _pin(names, version, "apt")
    plan["hold"] = names + ["nvidia-dkms-%s%s" % (branch, flavour)]
    plan["kernel_module_build"] = "dkms"
    plan["headers_package"] = "linux-headers-%s" % kernel_release if kernel_release else None
    plan["version_package"] = utils
    plan["dkms_mok_method"] = "shim_signed" if release in UBUNTU_DKMS2 else "framework_conf"
    return plan


def _redhat_plan(plan, release, branch, version, source, open_modules, build):
    if release not in REDHAT_RELEASES:
        raise DriverPlanError(
            "ansible_distribution_major_version",
            "RHEL-family %s is not supported; supported: %s" % (release, ", ".join(REDHAT_RELEASES)),
        )
    if source != "nvidia_repo":
        raise DriverPlanError(
            "nvidia_driver_source",
            "RHEL and its rebuilds do not package the NVIDIA driver; set it to nvidia_repo "
            "(a mirror of NVIDIA's repository through nvidia_driver_repo_url works too)",
        )
    if open_modules:
        if build == "precompiled":
            raise DriverPlanError(
                "nvidia_driver_kernel_module_build",
                "the open kernel modules come as the dkms stream %s-open on RHEL %s, not precompiled; "
                "use dkms or auto, or set nvidia_driver_open_kernel_modules=false" % (branch, release),
            )
        stream = "%s-open" % branch
        build = "dkms"
    else:
        if build == "auto":
            build = "precompiled" if plan["secure_boot"] == "enabled" else "dkms"
        stream = branch if build == "precompiled" else "%s-dkms" % branch
    plan["module_stream"] = "nvidia-driver:%s" % stream
    names = ["nvidia-driver", "nvidia-driver-cuda", "nvidia-driver-libs", "nvidia-persistenced"]
    if open_modules:
        names.append("kmod-nvidia-open-dkms")
    elif build == "dkms":
        names.append("kmod-nvidia-latest-dkms")
    else:
        names.append("kmod-nvidia-*")
    plan["packages"] = ["@%s/default" % plan["module_stream"]]
    if version:
        plan["packages"] += _pin(["nvidia-driver", "nvidia-driver-cuda"], version, "dnf")
    plan["hold"] = names
    plan["kernel_module_build"] = build
    plan["headers_package"] = (
        "kernel-devel-%s" % plan["kernel_release"] if build == "dkms" and plan["kernel_release"] else None
    )
    plan["version_package"] = "nvidia-driver"
    plan["persistenced_package"] = "nvidia-persistenced"
    plan["module_names"] = ["nvidia"]
    plan["needs_epel"] = build == "dkms"
    return plan


def resolve_driver_plan(
    distribution,
    distribution_version,
    branch,
    version=None,
    source="distribution",
    open_kernel_modules="auto",
    kernel_module_build="auto",
    profile="compute",
    secure_boot="disabled",
    mok_signing=False,
    kernel_release=None,
    gpu_architectures=(),
    architecture="x86_64",
    ubuntu_server=True,
    repo_url=None,
    repo_key_url=None,
):
    """Everything the nvidia_driver role installs and configures on one host, as a dict."""
    branch = str(branch or "").strip()
    if not BRANCH_RE.match(branch):
        raise DriverPlanError(
            "nvidia_driver_branch", "must be a driver branch of three digits like '535', got %r" % branch
        )
    version = str(version or "").strip() or None
    if version is not None:
        if not VERSION_RE.match(version):
            raise DriverPlanError(
                "nvidia_driver_version",
                "must be a driver version like '535.261.03' (or empty for the branch's newest), got %r" % version,
            )
        if version.split(".", 1)[0] != branch:
            raise DriverPlanError("nvidia_driver_version", "%s is not on nvidia_driver_branch %s" % (version, branch))
    _choice(source, SOURCES, "nvidia_driver_source")
    _choice(kernel_module_build, BUILDS, "nvidia_driver_kernel_module_build")
    _choice(profile, PROFILES, "nvidia_driver_profile")
    secure_boot = secure_boot if secure_boot in SECURE_BOOT_STATES else "unknown"
    family = family_of(distribution)
    if family is None:
        raise DriverPlanError(
            "ansible_distribution",
            "%s is not supported; supported: Debian 12/13, Ubuntu 22.04/24.04, RHEL/Rocky/AlmaLinux 8/9"
            % (distribution,),
        )
    release = release_key(family, distribution_version)
    open_modules, open_reason = resolve_open_kernel_modules(open_kernel_modules, branch, gpu_architectures)
    manager = "dnf" if family == "RedHat" else "apt"
    plan = {
        "family": family,
        "distribution": distribution,
        "release": release,
        "codename": None,
        "manager": manager,
        "branch": branch,
        "version": version,
        "source": source,
        "profile": profile,
        "open_kernel_modules": open_modules,
        "open_kernel_modules_reason": open_reason,
        "kernel_release": kernel_release or None,
        "kernel_module_build": None,
        "kernel_flavour": None,
        "kernel_packages": [],
        "headers_package": None,
        "packages": [],
        "hold": [],
        "hold_mechanism": "yum_versionlock" if manager == "dnf" else "dpkg_selections",
        "version_package": None,
        "persistenced_package": None,
        "persistenced_service": "nvidia-persistenced",
        "module_names": ["nvidia"],
        "module_stream": None,
        "needs_epel": False,
        "components": [],
        "repository": None,
        "secure_boot": secure_boot,
        "secure_boot_path": "none",
        "dkms_mok_method": "framework_conf",
        "initramfs_command": ["dracut", "--force", "--regenerate-all"]
        if manager == "dnf"
        else ["update-initramfs", "-u", "-k", "all"],
        "warnings": [],
    }
    _check_release(family, release)
    if source == "nvidia_repo":
        plan["repository"] = _repository(family, release, manager, architecture, repo_url, repo_key_url)
    if family == "Debian":
        _debian_plan(plan, release, branch, version, source, open_modules, kernel_module_build, profile)
    elif family == "Ubuntu":
        _ubuntu_plan(plan, release, branch, version, source, open_modules, kernel_module_build, profile, ubuntu_server)
    else:
        _redhat_plan(plan, release, branch, version, source, open_modules, kernel_module_build)
    _secure_boot(plan, bool(mok_signing))
    return plan


def _check_release(family, release):
    supported = {"Debian": sorted(DEBIAN_RELEASES), "Ubuntu": sorted(UBUNTU_RELEASES), "RedHat": list(REDHAT_RELEASES)}
    if release not in supported[family]:
        variable = "ansible_distribution_version" if family == "Ubuntu" else "ansible_distribution_major_version"
        name = {"RedHat": "RHEL-family"}.get(family, family)
        raise DriverPlanError(
            variable, "%s %s is not supported; supported: %s" % (name, release, ", ".join(supported[family]))
        )


def _secure_boot(plan, mok_signing):
    if plan["secure_boot"] == "unknown":
        plan["warnings"].append(
            "Secure Boot state unknown (no readable EFI variables); treated as disabled. "
            "Set nvidia_driver_secure_boot=enabled if it is on."
        )
    if plan["secure_boot"] != "enabled":
        plan["secure_boot_path"] = "dkms_mok" if mok_signing and plan["kernel_module_build"] == "dkms" else "none"
        return
    if plan["kernel_module_build"] == "precompiled":
        plan["secure_boot_path"] = "signed_precompiled"
        if plan["family"] == "RedHat":
            plan["warnings"].append(
                "RHEL precompiled modules are signed with NVIDIA's key: enroll it with mokutil before the reboot."
            )
        return
    if mok_signing:
        plan["secure_boot_path"] = "dkms_mok"
        return
    options = [
        "provide a Machine Owner Key enrolled with mokutil (nvidia_driver_mok_key_path and nvidia_driver_mok_cert_path)"
    ]
    if plan["family"] == "Ubuntu" and plan["source"] == "distribution":
        options.insert(0, "use Ubuntu's signed precompiled modules (nvidia_driver_kernel_module_build=precompiled)")
    if plan["family"] == "RedHat" and not plan["open_kernel_modules"]:
        options.insert(0, "use NVIDIA's signed precompiled stream (nvidia_driver_kernel_module_build=precompiled)")
    options.append("disable Secure Boot in the firmware")
    raise DriverPlanError(
        "nvidia_driver_mok_key_path",
        "Secure Boot is enabled and unsigned DKMS modules (%s, %s %s) would not load; either %s"
        % (plan["kernel_module_build"], plan["distribution"], plan["release"], "; or ".join(options)),
    )


# ---------------------------------------------------------------- apt sources


def _parse_one_line(text, path):
    entries = []
    for raw in (text or "").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line.startswith("deb ") and line != "deb":
            continue
        tokens = line.split()[1:]
        options = {}
        if tokens and tokens[0].startswith("["):
            opt_tokens = []
            while tokens:
                token = tokens.pop(0)
                opt_tokens.append(token)
                if token.endswith("]"):
                    break
            for item in " ".join(opt_tokens).strip("[]").split():
                if "=" in item:
                    key, value = item.split("=", 1)
                    options[key.lower()] = value
        if len(tokens) < 2:
            continue
        entries.append(
            {
                "path": path,
                "uri": tokens[0].rstrip("/"),
                "suite": tokens[1],
                "components": tokens[2:],
                "signed_by": options.get("signed-by"),
            }
        )
    return entries


def _parse_deb822(text, path):
    entries = []
    for stanza in re.split(r"\n\s*\n", text or ""):
        fields = {}
        key = None
        for raw in stanza.splitlines():
            if raw.startswith("#"):
                continue
            if raw[:1] in (" ", "\t") and key:
                fields[key] += "\n" + raw.strip()
                continue
            if ":" in raw:
                key, value = raw.split(":", 1)
                key = key.strip().lower()
                fields[key] = value.strip()
        if "deb" not in fields.get("types", "").split():
            continue
        if fields.get("enabled", "yes").lower() in ("no", "false"):
            continue
        signed_by = fields.get("signed-by")
        if signed_by and "\n" in signed_by:
            signed_by = None  # an inline key block: keep it out of our copy
        for uri in fields.get("uris", "").split():
            for suite in fields.get("suites", "").split():
                entries.append(
                    {
                        "path": path,
                        "uri": uri.rstrip("/"),
                        "suite": suite,
                        "components": fields.get("components", "").split(),
                        "signed_by": signed_by,
                    }
                )
    return entries


def parse_apt_sources(files):
    """[{path, content}] -> list of {path, uri, suite, components, signed_by} for 'deb' entries."""
    entries = []
    for item in files or ():
        path = item.get("path", "")
        content = item.get("content") or ""
        if path.endswith(".sources"):
            entries.extend(_parse_deb822(content, path))
        else:
            entries.extend(_parse_one_line(content, path))
    return entries


def missing_components(files, codename, components, mirror=None):
    """Stanzas (deb822 fields) that add the missing components to every suite of this release.

    Every entry that serves `codename` or `codename-*` with `main` is a suite of the release;
    those whose URI and suite together lack a required component get a stanza with just the missing
    ones. With `mirror` set (air-gapped sites), the suites are served from that URI instead when
    no entry for them has the components. Returns a list of {uris, suites, components, signed_by},
    sorted, for a stable file.
    """
    entries = parse_apt_sources(files)
    by_target = {}
    for entry in entries:
        suite = entry["suite"]
        if suite != codename and not suite.startswith(codename + "-"):
            continue
        target = by_target.setdefault((entry["uri"], suite), {"components": set(), "main": False, "signed_by": None})
        target["components"].update(entry["components"])
        if "main" in entry["components"]:
            target["main"] = True
            target["signed_by"] = target["signed_by"] or entry["signed_by"]
    enabled_by_suite = {}
    for (_uri, suite), target in by_target.items():
        enabled_by_suite.setdefault(suite, set()).update(target["components"])
    stanzas = []
    if mirror:
        mirror = mirror.rstrip("/")
        suites = sorted({suite for (_uri, suite), t in by_target.items() if t["main"]}) or [codename]
        for suite in suites:
            missing = [c for c in components if c not in enabled_by_suite.get(suite, set())]
            if missing:
                stanzas.append({"uris": mirror, "suites": suite, "components": missing, "signed_by": None})
        return stanzas
    for (uri, suite), target in sorted(by_target.items()):
        if not target["main"]:
            continue
        missing = [c for c in components if c not in target["components"]]
        if missing:
            stanzas.append({"uris": uri, "suites": suite, "components": missing, "signed_by": target["signed_by"]})
    return stanzas


def render_deb822(stanzas):
    """The text of a .sources file for the stanzas of missing_components (empty string for none)."""
    blocks = []
    for stanza in stanzas:
        lines = [
            "Types: deb",
            "URIs: %s" % deb822_value(stanza["uris"], "URIs"),
            "Suites: %s" % deb822_value(stanza["suites"], "Suites"),
            "Components: %s" % deb822_value(" ".join(stanza["components"]), "Components"),
        ]
        if stanza.get("signed_by"):
            lines.append("Signed-By: %s" % deb822_value(stanza["signed_by"], "Signed-By"))
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + ("\n" if blocks else "")


# ---------------------------------------------------------------- installed state


def packages_to_install(plan, installed):
    """Names from plan['packages'] (pins kept) that are missing or at another version.

    `installed` is ansible_facts.packages ({name: [{version: ...}, ...]}). DNF module specs
    (`@stream/profile`) count as missing when the version package is not installed.
    """
    installed = installed or {}
    todo = []
    for spec in plan.get("packages") or ():
        if spec.startswith("@"):
            if plan.get("version_package") not in installed:
                todo.append(spec)
            continue
        name, pinned = _split_spec(spec, plan.get("manager"))
        have = installed.get(name) or []
        if not have:
            todo.append(spec)
            continue
        if pinned and not any(driver_version_of(item.get("version")) == pinned for item in have):
            todo.append(spec)
    return todo


def _split_spec(spec, manager):
    if manager == "apt" and "=" in spec:
        name, version = spec.split("=", 1)
        return name, version.rstrip("*")
    if manager == "dnf" and spec.endswith("*"):
        match = re.match(r"^(.*)-(\d{3}(?:\.\d+){1,2})\*$", spec)
        if match:
            return match.group(1), match.group(2)
    return spec, None


def installed_driver_version(plan, installed):
    """Driver version of the installed version package, e.g. '535.261.03', or None."""
    have = (installed or {}).get(plan.get("version_package")) or []
    for item in have:
        version = driver_version_of(item.get("version"))
        if version:
            return version
    return None


def reboot_decision(module_loadable, loaded_state, loaded_version, installed_version, nouveau_loaded):
    """(reboot needed: bool, reasons: list, try_modprobe: bool) after the packages are in place."""
    if not module_loadable:
        return False, [], False
    reasons = []
    if nouveau_loaded:
        reasons.append("nouveau is loaded and holds the GPUs")
    if loaded_state == "loaded" and installed_version and loaded_version and loaded_version != installed_version:
        reasons.append("loaded module %s differs from installed %s" % (loaded_version, installed_version))
    if reasons:
        return True, reasons, False
    return False, [], loaded_state != "loaded"


# ---------------------------------------------------------------- one-shot host probe
