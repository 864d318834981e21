# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that validate or quote a value for the file format it is rendered into."""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError
from ansible_collections.gpuops.cluster.plugins.plugin_utils._common import plain
from ansible_collections.gpuops.cluster.plugins.plugin_utils.config_formats import (
    FormatError,
    modprobe_options,
    shell_quote,
    systemd_environment,
    systemd_exec,
    systemd_path,
    toml_path,
    toml_string,
)


def _wrap(function, *args):
    try:
        return function(*[plain(a) for a in args])
    except FormatError as exc:
        raise AnsibleFilterError(str(exc)) from None


def systemd_exec_filter(argv, what="command"):
    """ExecStart= value of an argv list (absolute program, arguments quoted for systemd)."""
    return _wrap(systemd_exec, argv, what)


def systemd_environment_filter(variables, what="environment"):
    """Environment= lines (a list) for a mapping of variables."""
    return _wrap(systemd_environment, variables, what)


def systemd_path_filter(path, what="path"):
    """An absolute path for a unit setting."""
    return _wrap(systemd_path, path, what)


def modprobe_options_filter(options, module, what="options"):
    """An ``options MODULE k=v ...`` line for modprobe.d."""
    return _wrap(modprobe_options, module, options, what)


def toml_string_filter(value, what="value"):
    return _wrap(toml_string, value, what)


def toml_path_filter(value, what="path"):
    return _wrap(toml_path, value, what)


def shell_quote_filter(value, what="value"):
    return _wrap(shell_quote, value, what)


class FilterModule(object):
    def filters(self):
        return {
            "systemd_exec": systemd_exec_filter,
            "systemd_environment": systemd_environment_filter,
            "systemd_path": systemd_path_filter,
            "modprobe_options": modprobe_options_filter,
            "toml_string": toml_string_filter,
            "toml_path": toml_path_filter,
            "shell_quote": shell_quote_filter,
        }
