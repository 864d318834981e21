# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Checks of cost_snapshot's options, all before any call: windows, selectors, label keys,
URLs, node groups, thresholds, TCO and split weights. Pure; raises CostInputError naming the
option and what is allowed."""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import re
from datetime import datetime
from typing import Any, Dict, Mapping

from ._common import CostInputError, number
from .allocation import split_weights
from .prices import COMMITMENT_TERMS
from .tco import validate_tco

WINDOW = re.compile(r"^([1-9][0-9]{0,4})([mhd])$")
WINDOW_SECONDS = {"m": 60, "h": 3600, "d": 86400}
MAX_WINDOW_SECONDS = 90 * 86400
# Kubernetes label key: optional DNS-subdomain prefix, then a name of <= 63 characters.
_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
LABEL_KEY = re.compile(r"^(([a-z0-9]([-a-z0-9]*[a-z0-9])?)(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?" + _NAME + "$")
LABEL_VALUE = re.compile(r"^(" + _NAME + ")?$")
SELECTOR_TERM = re.compile(
    r"^\s*(!?)\s*([^\s=!,()]+)\s*(?:(==|=|!=)\s*([^\s=!,()]*)|\s+(in|notin)\s*\(([^()]*)\))?\s*$"
)
NODE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


def window_seconds(value: Any, field: str = "prometheus_window") -> int:
    match = WINDOW.match(str(value or ""))
    if not match:
        raise CostInputError(
            field, "must be a Prometheus duration: a number then m, h or d (e.g. 1h, 7d), got %r" % (value,)
        )
    seconds = int(match.group(1)) * WINDOW_SECONDS[match.group(2)]
    if seconds < 300 or seconds > MAX_WINDOW_SECONDS:
        raise CostInputError(field, "must be between 5m and 90d, got %r" % (value,))
    return seconds


def min_age_seconds(value: Any, field: str = "reserved_min_age") -> int:
    """How long an on-demand node must have run to count as steady baseline: 1d to 365d."""
    match = WINDOW.match(str(value or ""))
    if not match or match.group(2) == "m":
        raise CostInputError(field, "must be a duration in hours or days (e.g. 720h, 30d), got %r" % (value,))
    seconds = int(match.group(1)) * WINDOW_SECONDS[match.group(2)]
    if seconds < 86400 or seconds > 365 * 86400:
        raise CostInputError(field, "must be between 1d and 365d, got %r" % (value,))
    return seconds


def check_label_key(key: Any, field: str) -> str:
    text = str(key) if isinstance(key, str) else ""
    if not text or len(text) > 316 or not LABEL_KEY.match(text):
        raise CostInputError(
            field, "must be a Kubernetes label key ([prefix/]name, name <= 63 of [A-Za-z0-9-_.]), got %r" % (key,)
        )
    return text


def check_selector(selector: Any, field: str) -> str:
    """A label selector in the API's string syntax (=, ==, !=, in, notin, exists, !key)."""
    if selector in (None, ""):
        return ""
    if not isinstance(selector, str):
        raise CostInputError(field, "must be a label selector string, got %r" % (selector,))
    depth = 0
    terms, start = [], 0
    for i, ch in enumerate(selector):
        depth += ch == "("
        depth -= ch == ")"
        if depth < 0:
            break
        if ch == "," and depth == 0:
            terms.append(selector[start:i])
            start = i + 1
    terms.append(selector[start:])
    if depth != 0:
        raise CostInputError(field, "has unbalanced parentheses: %r" % selector)
    for term in terms:
        match = SELECTOR_TERM.match(term)
        if not match:
            raise CostInputError(
                field, "term %r is not key, !key, key=value, key!=value, key in (a,b) or key notin (a,b)" % term.strip()
            )
        negate, key, op, value, set_op, values = match.groups()
        check_label_key(key, field)
        if negate and (op or set_op):
            raise CostInputError(field, "term %r: ! goes only before a bare key" % term.strip())
        for item in ([value] if op else []) + ([v.strip() for v in values.split(",")] if set_op else []):
            if not LABEL_VALUE.match(item):
                raise CostInputError(
                    field, "term %r: %r is not a label value (<= 63 of [A-Za-z0-9-_.])" % (term.strip(), item)
                )
    return selector


def _iso_day(value: Any, field: str) -> str:
    try:
        return datetime.strptime(str(value), "%Y-%m-%d").strftime("%Y-%m-%d")
    except ValueError:
        raise CostInputError(field, "must be a date YYYY-MM-DD, got %r" % (value,)) from None


def validate(params: Mapping[str, Any]) -> Dict[str, Any]:
    """Checked options (the module's params, defaults applied)."""
    out = dict(params)
    out["node_selector"] = check_selector(params.get("node_selector"), "node_selector")
    out["pod_selector"] = check_selector(params.get("pod_selector"), "pod_selector")
    out["label_keys"] = [check_label_key(k, "label_keys[%d]" % i) for i, k in enumerate(params.get("label_keys") or [])]
    out["node_group_labels"] = [
        check_label_key(k, "node_group_labels[%d]" % i) for i, k in enumerate(params.get("node_group_labels") or [])
    ]
    groups = params.get("node_groups") or {}
    if not isinstance(groups, Mapping):
        raise CostInputError("node_groups", "must be a mapping of node group -> list of node names")
    owner = {}  # type: Dict[str, str]
    for group, members in groups.items():
        if not isinstance(members, list):
            raise CostInputError("node_groups.%s" % group, "must be a list of node names")
        for member in members:
            if not isinstance(member, str) or not NODE_NAME.match(member):
                raise CostInputError("node_groups.%s" % group, "%r is not a node name (DNS subdomain)" % (member,))
            if member in owner and owner[member] != group:
                raise CostInputError(
                    "node_groups.%s" % group, "node %s is already in node group %s" % (member, owner[member])
                )
            owner[member] = str(group)
    out["group_of"] = owner
    page = params.get("page_size", 500)
    if isinstance(page, bool) or not isinstance(page, int) or not 1 <= page <= 10000:
        raise CostInputError("page_size", "must be an integer 1..10000, got %r" % (page,))
    out["page_size"] = page
    url = params.get("prometheus_url")
    if url and not re.match(r"^https?://[^\s/?#]+(/[^\s?#]*)?$", str(url)):
        raise CostInputError("prometheus_url", "must be an http:// or https:// URL without query, got %r" % (url,))
    out["window_seconds"] = window_seconds(params.get("prometheus_window", "1h"))
    out["reserved_min_age_seconds"] = min_age_seconds(params.get("reserved_min_age", "30d"))
    term = params.get("reserved_max_term", "1yr")
    if term not in COMMITMENT_TERMS:
        raise CostInputError("reserved_max_term", "must be one of %s, got %r" % (", ".join(COMMITMENT_TERMS), term))
    out["reserved_max_term"] = term
    out["low_activity"] = number(params.get("low_activity", 0.3), "low_activity", 0.0, 1.0, False)
    out["split_weights"] = split_weights(params.get("split_weights"), "split_weights")
    tcos = params.get("onprem_tco") or {}
    if not isinstance(tcos, Mapping):
        raise CostInputError("onprem_tco", "must be a mapping of node group -> TCO parameters")
    out["onprem_tco"] = {str(g): validate_tco(p, "onprem_tco.%s" % g) for g, p in tcos.items()}
    tolerant = params.get("interruption_tolerant_groups") or []
    if not isinstance(tolerant, list) or not all(isinstance(g, str) and g for g in tolerant):
        raise CostInputError("interruption_tolerant_groups", "must be a list of node group names")
    ce = params.get("cost_explorer")
    if ce:
        start = _iso_day(ce.get("start"), "cost_explorer.start")
        end = _iso_day(ce.get("end"), "cost_explorer.end")
        if end <= start:
            raise CostInputError("cost_explorer.end", "must be after cost_explorer.start (%s), got %s" % (start, end))
        out["cost_explorer"] = dict(
            ce, start=start, end=end, tag_key=check_label_key(ce.get("tag_key") or "", "cost_explorer.tag_key")
        )
    sources = [bool(params.get("price_file")), bool(params.get("aws_pricing")), bool(tcos)]
    if not any(sources):
        raise CostInputError("price_file", "no price source: give price_file, aws_pricing=true or onprem_tco")
    return out
