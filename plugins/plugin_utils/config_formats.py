# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One validating or quoting helper per file format a role writes. Pure functions.

Every value a role renders into a systemd unit, a modprobe.d file, a TOML drop-in or a file a
shell sources goes through the helper for that format: what the format cannot carry safely
(a line break, which would start a new directive such as ``ExecStartPre=`` or ``install``) is
refused with a ``FormatError`` naming the variable and what is allowed; the rest is quoted for
that format. Errors never echo the refused value (it may be a secret); they say what is wrong.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import re

MAX_VALUE = 4096
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_ABS_PATH = re.compile(r"^/[A-Za-z0-9._/+@:=-]{0,4095}$")
_MODULE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_PARAM = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_PARAM_VALUE = re.compile(r"^[A-Za-z0-9_.,:/+=-]{1,1024}$")


class FormatError(ValueError):
    """A value a format cannot carry; the message names the variable and what is allowed."""


def _text(value, what):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if not isinstance(value, str):
        raise FormatError("%s: must be a string or a number, got %s" % (what, type(value).__name__))
    if len(value) > MAX_VALUE:
        raise FormatError("%s: at most %d characters" % (what, MAX_VALUE))
    if _CONTROL.search(value):
        raise FormatError(
            "%s: must not contain line breaks or other control characters (they would start a new "
            "directive in the file)" % what
        )
    return value


# ------------------------------------------------------------------------------ systemd


def _systemd_quoted(value, variables=True):
    """A double-quoted systemd word: C-style escapes and specifiers (%) disarmed; with
    ``variables``, ``$`` too (command lines expand $VAR, Environment= does not)."""
    quoted = value.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
    if variables:
        quoted = quoted.replace("$", "$$")
    return '"%s"' % quoted


def systemd_path(value, what="path"):
    """An absolute path for a unit setting (ConditionPathExists=, WorkingDirectory=, ...)."""
    value = _text(value, what)
    if not _ABS_PATH.match(value) or "/../" in value + "/" or value.endswith("/.."):
        raise FormatError(
            "%s: must be an absolute path of letters, digits and . _ / + @ : = - (no spaces, no '..')" % what
        )
    return value.replace("%", "%%")


def systemd_exec(argv, what="command"):
    """``ExecStart=`` value for an argv list: an absolute program, every argument quoted."""
    if not isinstance(argv, (list, tuple)) or not argv:
        raise FormatError("%s: must be a non-empty list (the program first)" % what)
    items = [_text(item, "%s[%d]" % (what, position)) for position, item in enumerate(argv)]
    systemd_path(items[0], "%s[0]" % what)
    return " ".join([items[0]] + [_systemd_quoted(item) for item in items[1:]])


def systemd_environment(variables, what="environment"):
    """``Environment=`` lines for a mapping of variable names to values, sorted by name."""
    if not isinstance(variables, dict):
        raise FormatError("%s: must be a mapping of variable names to values" % what)
    lines = []
    for name in sorted(variables, key=str):
        if not isinstance(name, str) or not _ENV_NAME.match(name):
            raise FormatError("%s: variable names must be letters, digits and _ (not starting with a digit)" % what)
        value = _text(variables[name], "%s.%s" % (what, name))
        lines.append("Environment=%s" % _systemd_quoted("%s=%s" % (name, value), variables=False))
    return lines


def systemd_word(value, what="value", pattern=None, allowed=None):
    """A bare word for a unit (a choice, a name); checked against ``pattern``."""
    value = _text(value, what)
    if pattern is not None and not re.match(pattern, value):
        raise FormatError("%s: not allowed; allowed: %s" % (what, allowed or pattern))
    return value.replace("%", "%%")


# ------------------------------------------------------------------------------ modprobe.d


def modprobe_options(module, options, what="options"):
    """An ``options MODULE key=value ...`` line; keys and values from a safe character set only.

    modprobe.d has no quoting that survives every tool reading it (initramfs hooks parse it
    too), so values are limited to letters, digits and ``_ . , : / + = -``.
    """
    if not isinstance(module, str) or not _MODULE.match(module):
        raise FormatError("%s: module name must be letters, digits, _ and -" % what)
    if not isinstance(options, dict):
        raise FormatError("%s: must be a mapping of module parameter to value" % what)
    parts = ["options", module]
    for key in sorted(options, key=str):
        if not isinstance(key, str) or not _PARAM.match(key):
            raise FormatError("%s: parameter names must be letters, digits and _ (like NVreg_EnableGpuFirmware)" % what)
        value = options[key]
        if isinstance(value, bool):
            value = 1 if value else 0
        if isinstance(value, float) or value is None or isinstance(value, (list, dict)):
            raise FormatError("%s.%s: must be an integer or a word, got %s" % (what, key, type(value).__name__))
        text = _text(value, "%s.%s" % (what, key))
        if not _PARAM_VALUE.match(text):
            raise FormatError(
                "%s.%s: allowed: integers, or words of letters, digits and _ . , : / + = - "
                "(no spaces, quotes or #)" % (what, key)
            )
        parts.append("%s=%s" % (key, text))
    return " ".join(parts)


# ------------------------------------------------------------------------------ TOML


def toml_string(value, what="value"):
    """A TOML basic string ("..." with \\ and " escaped); control characters refused."""
    value = _text(value, what)
    return '"%s"' % value.replace("\\", "\\\\").replace('"', '\\"')


def toml_path(value, what="path"):
    """An absolute path as a TOML basic string."""
    systemd_path(value, what)
    return toml_string(value, what)


# ------------------------------------------------------------------------------ deb822 / URLs

_URL = re.compile(r"^(https?|file)://[^\s\"'\\<>{}|^`]{1,2000}$")


def url(value, what="url"):
    """An http(s) or file URL without whitespace, quotes or control characters."""
    value = _text(value, what)
    if not _URL.match(value):
        raise FormatError("%s: must be an http://, https:// or file:// URL without spaces or quotes" % what)
    return value


def deb822_value(value, what="value"):
    """A deb822 field value on one line (URIs, suites, components, key paths)."""
    value = _text(value, what)
    if not value.strip():
        raise FormatError("%s: must not be empty" % what)
    return value


# ------------------------------------------------------------------------------ shell


def shell_quote(value, what="value"):
    """A single-quoted POSIX shell word (for files a shell sources, like DKMS's framework.conf)."""
    value = _text(value, what)
    return "'%s'" % value.replace("'", "'\"'\"'")
