# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters behind the nvidia_driver role: per-distribution package resolution and helpers."""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import base64

from ansible.errors import AnsibleFilterError
from ansible_collections.gpuops.cluster.plugins.plugin_utils.driver_packages import (
    DriverPlanError,
    installed_driver_version,
    missing_components,
    packages_to_install,
    reboot_decision,
    render_deb822,
    resolve_driver_plan,
)

SETTINGS = {
    # filter input key -> resolve_driver_plan keyword
    "distribution": "distribution",
    "distribution_version": "distribution_version",
    "branch": "branch",
    "version": "version",
    "source": "source",
    "open_kernel_modules": "open_kernel_modules",
    "kernel_module_build": "kernel_module_build",
    "profile": "profile",
    "secure_boot": "secure_boot",
    "mok_signing": "mok_signing",
    "kernel_release": "kernel_release",
    "gpu_architectures": "gpu_architectures",
    "architecture": "architecture",
    "ubuntu_server": "ubuntu_server",
    "repo_url": "repo_url",
    "repo_key_url": "repo_key_url",
}
REQUIRED = ("distribution", "distribution_version", "branch")


def driver_packages(settings):
    """Resolve the driver plan for one host from a dict of settings (see driver_packages.yml)."""
    if not isinstance(settings, dict):
        raise AnsibleFilterError("driver_packages: input must be a dict of settings")
    unknown = sorted(set(settings) - set(SETTINGS))
    if unknown:
        raise AnsibleFilterError(
            "driver_packages: unknown setting(s) %s; known: %s" % (", ".join(unknown), ", ".join(sorted(SETTINGS)))
        )
    missing = [key for key in REQUIRED if settings.get(key) in (None, "")]
    if missing:
        raise AnsibleFilterError("driver_packages: missing setting(s) %s" % ", ".join(missing))
    kwargs = {SETTINGS[key]: value for key, value in settings.items() if value is not None}
    if "gpu_architectures" in kwargs:
        kwargs["gpu_architectures"] = list(kwargs["gpu_architectures"])
    try:
        return resolve_driver_plan(**kwargs)
    except DriverPlanError as exc:
        raise AnsibleFilterError(str(exc)) from exc


def _source_file(item):
    """{path, content} from a plain dict or from an ansible.builtin.slurp result (base64)."""
    path = item.get("path") or item.get("source") or item.get("item") or ""
    content = item.get("content")
    if content is None:
        return None
    if item.get("encoding") == "base64":
        content = base64.b64decode(content).decode("utf-8", "replace")
    return {"path": path, "content": content}


def driver_apt_sources(files, codename, components, mirror=None):
    """Text of a deb822 .sources file adding the missing components ('' when none are missing).

    `files`: [{path, content}] or the results of an ansible.builtin.slurp loop (unreadable files,
    without content, are left out).
    """
    if not isinstance(files, (list, tuple)):
        raise AnsibleFilterError("driver_apt_sources: input must be a list of {path, content} or slurp results")
    parsed = [f for f in (_source_file(item) for item in files if isinstance(item, dict)) if f]
    return render_deb822(missing_components(parsed, codename, list(components or ()), mirror or None))


def driver_packages_missing(plan, packages):
    """Package specs of the plan that are not installed (or not at the pinned version)."""
    return packages_to_install(plan, packages)


def driver_installed_version(plan, packages):
    """Driver version of the installed packages (from ansible_facts.packages), or None."""
    return installed_driver_version(plan, packages)


def driver_reboot(state):
    """{required, reasons, modprobe} from {loadable, loaded_state, loaded_version, installed_version, nouveau}."""
    if not isinstance(state, dict):
        raise AnsibleFilterError("driver_reboot: input must be a dict")
    required, reasons, modprobe = reboot_decision(
        bool(state.get("loadable")),
        state.get("loaded_state"),
        state.get("loaded_version"),
        state.get("installed_version"),
        bool(state.get("nouveau")),
    )
    return {"required": required, "reasons": reasons, "modprobe": modprobe}


class FilterModule(object):
    def filters(self):
        return {
            "driver_packages": driver_packages,
            "driver_apt_sources": driver_apt_sources,
            "driver_packages_missing": driver_packages_missing,
            "driver_installed_version": driver_installed_version,
            "driver_reboot": driver_reboot,
        }
