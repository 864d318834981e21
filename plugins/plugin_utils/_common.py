# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Small helpers the controller-side plugin_utils share (private to the collection)."""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import re


def plain(value):
    """A deep copy made of plain dict/list/str/int/float/bool/None (Ansible passes tagged subclasses)."""
    if isinstance(value, dict):
        return {str(k) if isinstance(k, str) else k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    return value


def is_int(value):
    """An int that is not a bool (YAML's true is not a count)."""
    return isinstance(value, int) and not isinstance(value, bool)


def empty(value):
    return value is None or value == "" or value == {} or value == []


def shown(value, limit=64):
    """A variable's value for an error message: repr, at most ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_ranges(request, ranges, error):
    """Raise ``error`` for the first setting of ``request`` outside its bounds.

    ``ranges`` maps a request key to (variable name, low, high); a whole number given as a
    string (extra vars arrive as text) counts as that number.
    """
    for key, (variable, low, high) in ranges.items():
        if key not in request:
            continue
        value = request[key]
        if isinstance(value, str) and re.match(r"^-?[0-9]{1,6}$", value):
            value = int(value)
        if not is_int(value) or not low <= value <= high:
            raise error("%s: %s is out of range; allowed: %d-%d" % (variable, shown(value), low, high))
