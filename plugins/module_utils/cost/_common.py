# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared pieces of the cost package: the input error, number checks, Kubernetes quantities.

No I/O here.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import math
import re
from datetime import datetime

HOURS_PER_MONTH = 730.0  # 8760 / 12, the convention AWS and OpenCost use for monthly figures
HOURS_PER_YEAR = 8760.0


class CostInputError(ValueError):
    """Bad input: the message names the field and what is allowed."""

    def __init__(self, field, message):
        super(CostInputError, self).__init__("%s: %s" % (field, message))
        self.field = field


def number(value, field, minimum=0.0, maximum=None, allow_equal_min=True):
    """A finite float within bounds, else CostInputError naming ``field``."""
    if isinstance(value, bool) or value is None:
        raise CostInputError(field, "must be a number, got %r" % (value,))
    try:
        result = float(value)
    except (TypeError, ValueError):
        raise CostInputError(field, "must be a number, got %r" % (value,)) from None
    if math.isnan(result) or math.isinf(result):
        raise CostInputError(field, "must be a finite number, got %r" % (value,))
    if minimum is not None and (result < minimum or (not allow_equal_min and result == minimum)):
        relation = ">=" if allow_equal_min else ">"
        raise CostInputError(field, "must be %s %s, got %r" % (relation, minimum, value))
    if maximum is not None and result > maximum:
        raise CostInputError(field, "must be <= %s, got %r" % (maximum, value))
    return result


def as_of_date(value, field):
    """An ISO-8601 date or timestamp string, returned normalized (YYYY-MM-DD[THH:MM:SSZ])."""
    text = str(value or "").strip()
    if not text:
        raise CostInputError(field, "must be an ISO-8601 date (YYYY-MM-DD), got %r" % (value,))
    try:
        if len(text) == 10:
            return datetime.strptime(text, "%Y-%m-%d").strftime("%Y-%m-%d")
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise CostInputError(field, "must be an ISO-8601 date (YYYY-MM-DD), got %r" % (value,)) from None
    return parsed.strftime("%Y-%m-%dT%H:%M:%SZ")


_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)([a-zA-Z]*)$")
_SUFFIX = {
    "": 1.0,
    "m": 1e-3,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "P": 1e15,
    "Ki": 1024.0,
    "Mi": 1024.0**2,
    "Gi": 1024.0**3,
    "Ti": 1024.0**4,
    "Pi": 1024.0**5,
}


_PARSED = {}  # type: dict
_PARSED_MAX = 4096  # a cluster repeats a few request strings ("8", "64Gi") over and over


def quantity(value, field="quantity"):
    """A Kubernetes resource quantity ("500m", "32Gi", 4) as a float of base units.

    ``field`` (a string, or a callable returning one, so callers in hot loops format it only on
    error) names the value in the error."""
    if value is None or value == "":
        return 0.0
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    cached = _PARSED.get(value)
    if cached is not None:
        return cached
    match = _QUANTITY.match(str(value).strip())
    if not match or match.group(2) not in _SUFFIX:
        raise CostInputError(field() if callable(field) else field, "is not a Kubernetes quantity: %r" % (value,))
    result = float(match.group(1)) * _SUFFIX[match.group(2)]
    if len(_PARSED) < _PARSED_MAX:
        _PARSED[value] = result
    return result


def money(value):
    """Rounded for output (cents of a cent); the arithmetic keeps full precision."""
    return round(value, 6)
