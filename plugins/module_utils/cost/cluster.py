# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read Nodes and Pods through the kubernetes client, a page at a time (limit/continue), as
plain dicts (the raw JSON: no model objects are built for 100,000 pods)."""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import json
from typing import Any, Callable, Iterator, List


def _pages(call: Callable[..., Any], page_size: int, **kwargs: Any) -> Iterator[List[Any]]:
    token = None
    while True:
        args = dict(kwargs, limit=page_size, _preload_content=False)
        if token:
            args["_continue"] = token
        response = call(**args)
        body = json.loads(response.data)
        yield body.get("items") or []
        token = (body.get("metadata") or {}).get("continue")
        if not token:
            return


def list_nodes(core_api: Any, page_size: int, label_selector: str = "") -> List[Any]:
    items = []  # type: List[Any]
    for page in _pages(core_api.list_node, page_size, label_selector=label_selector or None):
        items.extend(page)
    return items


def list_pods(core_api: Any, page_size: int, label_selector: str = "") -> Iterator[Any]:
    """Pods of all namespaces that hold resources (field selector: not Succeeded nor Failed)."""
    for page in _pages(
        core_api.list_pod_for_all_namespaces,
        page_size,
        label_selector=label_selector or None,
        field_selector="status.phase!=Succeeded,status.phase!=Failed",
    ):
        yield from page
