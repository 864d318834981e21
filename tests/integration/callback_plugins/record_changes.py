# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Test-only callback: append every changed result to the JSON-lines file $GPUOPS_RECORD_CHANGES.

One line per changed task result (per loop item when the task loops): host, resolved action,
task name, module arguments, item, and the fields that identify the object (msg, dest, path,
result kind/name). tests/integration/test_site_sandbox.py compares a --check run with the
real run through it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: record_changes
type: aggregate
short_description: Record changed results as JSON lines (tests only)
description:
  - Appends one JSON object per changed task result to the file named by E(GPUOPS_RECORD_CHANGES).
requirements:
  - enabled in ANSIBLE_CALLBACKS_ENABLED
"""

import json  # noqa: E402  (after DOCUMENTATION, as Ansible plugins are laid out)
import os  # noqa: E402

from ansible.plugins.callback import CallbackBase  # noqa: E402


def _plain(value):
    try:
        return json.loads(json.dumps(value, default=str))
    except (TypeError, ValueError):
        return str(value)


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "record_changes"
    CALLBACK_NEEDS_ENABLED = True

    def _record(self, result, item=None):
        path = os.environ.get("GPUOPS_RECORD_CHANGES")
        data = result._result
        if not path or not data.get("changed") or data.get("skipped"):
            return
        task = result._task
        entry = {
            "host": result._host.get_name(),
            "action": getattr(task, "resolved_action", None) or task.action,
            "task": task.get_name(),
            "args": _plain((data.get("invocation") or {}).get("module_args") or task.args),
            "item": _plain(item if item is not None else data.get("item")),
            "msg": _plain(data.get("msg")),
            "dest": data.get("dest") or data.get("path"),
            "result": _plain({k: (data.get("result") or {}).get(k) for k in ("kind", "metadata")})
            if isinstance(data.get("result"), dict)
            else None,
            "plan": _plain(data.get("plan")) if isinstance(data.get("plan"), list) else None,
        }
        with open(path, "a") as handle:
            handle.write(json.dumps(entry, sort_keys=True) + "\n")

    def v2_runner_on_ok(self, result):
        if "results" in result._result:
            return  # a loop: its items were recorded one by one
        self._record(result)

    def v2_runner_item_on_ok(self, result):
        self._record(result, result._result.get("item"))
