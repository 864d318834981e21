#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: velero_drill
short_description: Execute one Velero disaster-recovery drill into scratch namespaces
version_added: 0.1.0
description:
  - The executing half of C(playbooks/dr_drill.yml), in one call so that the drill's own
    overhead stays small next to the restore it measures. Steps, each timed and reported
    with its status - C(preflight) (no scratch namespace may exist; production read with one
    list per kind and namespace), C(restore) (a resource-modifier ConfigMap that sets
    replicas to 0 and removes every C(nvidia.com/*) request and limit, a Restore with
    C(namespaceMapping) into the scratch namespaces, waited for through a watch from the
    list's resourceVersion, as C(kubectl wait) does, falling back to a poll that starts at
    50 ms and backs off to 2 s), C(compare) (the restored objects against the backup's own
    contents, read through Velero's C(DownloadRequest), asked for before the Restore so Velero
    has answered by the time it ends - the C(BackupResourceList), else the
    C(BackupContents) tarball, else, when the kind is not served, the source namespaces),
    C(smoke-checks) (the plan's checks, and no restored workload with replicas or GPUs), and
    C(cleanup) (scratch namespaces and the modifiers deleted, production proven untouched by
    its resourceVersions, read again while the scratch namespaces terminate; the step ends when
    they are gone).
  - A failed step stops the drill there; the cleanup always runs. The module then fails,
    naming the step, with the whole result.
  - The first step, C(pick-backup), finds the backup - the named one or the newest successful one
    of a schedule - and its age.
  - In check mode only C(pick-backup) and C(preflight) run (read-only).
author:
  - gpuops.cluster developers (@gpuops)
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - gpuops.cluster.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  backup:
    description:
      - The Backup to restore (in O(velero_namespace)); it must have completed (C(Completed) or
        C(PartiallyFailed)) with every volume snapshot completed.
      - Empty - the newest C(Completed) backup of O(schedule).
    type: str
    default: ""
  schedule:
    description: The Schedule whose newest successful backup is restored when O(backup) is empty.
    type: str
  namespaces:
    description: The source namespaces to restore (DNS-1123 labels).
    type: list
    elements: str
    required: true
  scratch_prefix:
    description: Prefix of the scratch namespaces (C(<prefix><namespace>)).
    type: str
    default: drill-
  velero_namespace:
    description: Velero's namespace.
    type: str
    default: velero
  drill_id:
    description: The drill's id; names the Restore and ConfigMap C(dr-drill-<id>) and labels them.
    type: str
    required: true
  compare_kinds:
    description: Kinds compared between the backup and the restore.
    type: list
    elements: str
    default: [Deployment, StatefulSet, Job, ConfigMap, Service]
    choices: [Deployment, StatefulSet, DaemonSet, Job, CronJob, ConfigMap, Secret, Service,
      ServiceAccount, PersistentVolumeClaim]
  smoke_checks:
    description:
      - Checks in the scratch copy of a source namespace, each C({kind, api_version (default v1),
        namespace (a source namespace), name (optional), min_count (default 1)}).
    type: list
    elements: dict
    default: []
  restore_timeout:
    description: Seconds to wait for the Restore (the plan's RTO, in the playbook).
    type: int
    default: 3600
  download_timeout:
    description: Seconds to wait for Velero to answer each DownloadRequest.
    type: int
    default: 30
  cleanup_timeout:
    description: Seconds to wait for the scratch namespaces to be deleted.
    type: int
    default: 300
  report:
    description:
      - Build the drill report and write it as C(dr-drill-<plan>-<drill_id>.json) and C(.txt) in
        C(dir) (on the host the drill runs on; created when missing; empty - not written).
        C(started) is when the drill's clock started (epoch seconds); the report's
        C(elapsed_minutes) runs from then to the end of the cleanup.
    type: dict
    suboptions:
      plan:
        description: The DR plan's name.
        type: str
        required: true
      rto_minutes:
        description: The plan's RTO.
        type: float
        required: true
      rpo_minutes:
        description: The plan's RPO.
        type: float
        required: true
      started:
        description: Epoch seconds when the drill's clock started (default - when this call began).
        type: float
      dir:
        description: Where the JSON and text reports go.
        type: str
        default: ""
notes:
  - The resource list names objects, not their owners; with O(compare_kinds) holding a kind
    that controllers create (Jobs of CronJobs), use the tarball or leave it out.
"""

EXAMPLES = r"""
- name: Drill the models plan on the newest successful backup of its schedule
  gpuops.cluster.velero_drill:
    schedule: models
    namespaces: [models]
    drill_id: "{{ now(utc=true).strftime('%Y%m%d%H%M%S') }}"
    restore_timeout: 900
    smoke_checks:
      - {kind: ConfigMap, namespace: models, min_count: 1}
  register: drill
"""

RETURN = r"""
backup:
  description: The backup restored (or that would be), null when none was found.
  returned: always
  type: str
backup_completed:
  description: Its completionTimestamp.
  returned: always
  type: str
backup_age_seconds:
  description: Seconds since it completed.
  returned: always
  type: float
steps:
  description: Per step - name, status (ok or failed), seconds, detail.
  returned: always
  type: list
  elements: dict
failed_step:
  description: The step that failed, or null.
  returned: always
  type: str
failure:
  description: Why it failed, or null.
  returned: always
  type: str
namespace_mapping:
  description: Source namespace -> scratch namespace.
  returned: always
  type: dict
restore_status:
  description: The Restore's status when it ended.
  returned: always
  type: dict
contents_source:
  description: Where the backup's contents came from - BackupResourceList, BackupContents or source namespaces.
  returned: always
  type: str
restored_counts:
  description: Restored objects per compared kind.
  returned: always
  type: dict
differences:
  description: Objects missing in the restore or restored but not in the backup.
  returned: always
  type: list
  elements: str
smoke_failures:
  description: Failed smoke checks.
  returned: always
  type: list
  elements: str
production_untouched:
  description: Whether the source namespaces' objects kept their resourceVersions (null when not checked).
  returned: always
  type: bool
production_changes:
  description: Objects of the source namespaces created, deleted or changed during the drill.
  returned: always
  type: list
  elements: str
report:
  description:
    - The drill report - plan, mode (dry_run or execute), drill_id, backup, backup_age_minutes,
      rpo_minutes, within_rpo, rto_minutes, elapsed_minutes, within_rto (null on a dry run),
      namespace_mapping, steps, failed_step, failure, restored_counts, differences,
      contents_source, smoke_failures, production_untouched, production_changes.
  returned: when O(report) is given
  type: dict
report_files:
  description: The report files written.
  returned: when O(report.dir) is set
  type: list
  elements: str
"""

import datetime  # noqa: E402
import re  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402

from ansible.module_utils.urls import open_url  # noqa: E402

try:
    from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.client import get_api_client
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.core import AnsibleK8SModule
except ImportError:  # pragma: no cover - the collection declares kubernetes.core as dependency
    AUTH_ARG_SPEC = {}
    AnsibleK8SModule = None

from ansible_collections.gpuops.cluster.plugins.module_utils.velero.drill import KINDS  # noqa: E402

LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


def argument_spec():
    spec = dict(AUTH_ARG_SPEC)
    spec.update(
        backup=dict(type="str", default=""),
        schedule=dict(type="str"),
        namespaces=dict(type="list", elements="str", required=True),
        scratch_prefix=dict(type="str", default="drill-"),
        velero_namespace=dict(type="str", default="velero"),
        drill_id=dict(type="str", required=True),
        compare_kinds=dict(
            type="list",
            elements="str",
            default=["Deployment", "StatefulSet", "Job", "ConfigMap", "Service"],
            choices=list(KINDS),
        ),
        smoke_checks=dict(type="list", elements="dict", default=[]),
        restore_timeout=dict(type="int", default=3600),
        download_timeout=dict(type="int", default=30),
        cleanup_timeout=dict(type="int", default=300),
        report=dict(
            type="dict",
            options=dict(
                plan=dict(type="str", required=True),
                rto_minutes=dict(type="float", required=True),
                rpo_minutes=dict(type="float", required=True),
                started=dict(type="float"),
                dir=dict(type="str", default=""),
            ),
        ),
    )
    return spec


def validate(params):
    """The options, checked before anything is read or written -> error message or None."""
    if params["backup"] and not NAME.match(params["backup"]):
        return "backup %r: a Velero backup name (lowercase letters, digits, '-', '.')" % params["backup"]
    if not params["backup"] and not LABEL.match(params.get("schedule") or ""):
        return "schedule %r: a Schedule name (DNS-1123 label), needed when backup is empty" % params.get("schedule")
    if not params["namespaces"]:
        return "namespaces: at least one namespace"
    for field in ("velero_namespace", "drill_id"):
        if not LABEL.match(params[field] or ""):
            return "%s %r: a DNS-1123 label (lowercase letters, digits, '-')" % (field, params[field])
    if not re.match(r"^[a-z0-9][-a-z0-9]{0,30}$", params["scratch_prefix"] or ""):
        return "scratch_prefix %r: up to 31 lowercase letters, digits, '-'" % params["scratch_prefix"]
    for namespace in params["namespaces"]:
        if not LABEL.match(namespace or "") or len(params["scratch_prefix"] + namespace) > 63:
            return "namespaces: %r is not a DNS-1123 label that stays within 63 characters with scratch_prefix %r" % (
                namespace,
                params["scratch_prefix"],
            )
    for index, check in enumerate(params["smoke_checks"]):
        if not isinstance(check.get("kind"), str) or not check.get("kind"):
            return "smoke_checks[%d].kind: required (a Kubernetes kind)" % index
        if check.get("namespace") not in params["namespaces"]:
            return "smoke_checks[%d].namespace %r: one of namespaces %s" % (
                index,
                check.get("namespace"),
                params["namespaces"],
            )
        if not isinstance(check.get("min_count", 1), int) or check.get("min_count", 1) < 0:
            return "smoke_checks[%d].min_count: a non-negative integer" % index
    for field in ("restore_timeout", "download_timeout", "cleanup_timeout"):
        if params[field] <= 0:
            return "%s: a positive number of seconds, not %s" % (field, params[field])
    report = params.get("report")
    if report:
        if not re.match(r"^[A-Za-z0-9][-A-Za-z0-9_.]{0,62}$", report["plan"] or ""):
            return "report.plan %r: letters, digits, '-', '_', '.' (it names the report files)" % report["plan"]
        for field in ("rto_minutes", "rpo_minutes"):
            if report[field] <= 0:
                return "report.%s: a positive number of minutes, not %s" % (field, report[field])
    return None


def write_report(module, params, result, started):
    """Build the report, write its JSON and text files; -> (report, files)."""
    import json
    import os
    import time

    from ansible_collections.gpuops.cluster.plugins.module_utils.velero.drill import build_report, report_text

    options = params["report"]
    mode = "dry_run" if module.check_mode else "execute"
    plan = dict(name=options["plan"], rto_minutes=options["rto_minutes"], rpo_minutes=options["rpo_minutes"])
    report = build_report(result, plan, params["drill_id"], mode, options.get("started") or started, time.time())
    files = []
    if options["dir"]:
        if not os.path.isdir(options["dir"]):
            os.makedirs(options["dir"], 0o755)
        base = os.path.join(options["dir"], "dr-drill-%s-%s" % (options["plan"], params["drill_id"]))
        for path, text in (
            (base + ".json", json.dumps(report, indent=4, sort_keys=True) + "\n"),
            (base + ".txt", report_text(report)),
        ):
            with open(path, "w") as handle:
                handle.write(text)
            os.chmod(path, 0o644)
            files.append(path)
    return report, files


def fetch(url):
    """GET a pre-signed URL -> (HTTP status, body)."""
    from ansible.module_utils.six.moves.urllib.error import HTTPError

    try:
        response = open_url(url, method="GET", timeout=60, validate_certs=True)
        return response.getcode(), response.read()
    except HTTPError as exc:
        return exc.code, b""


def main():
    module = AnsibleK8SModule(argument_spec=argument_spec(), supports_check_mode=True)
    from ansible_collections.gpuops.cluster.plugins.module_utils.velero.drill_kube import DrillKube, execute

    started = time.time()
    error = validate(module.params)
    if error:
        module.fail_json(msg=error, changed=False)
    params = dict(module.params, check_mode=module.check_mode, now=datetime.datetime.now(datetime.timezone.utc))
    try:
        kube = DrillKube(get_api_client(module=module).client, fetch=fetch)
        result = execute(kube, params)
    except Exception as exc:  # discovery and client errors before the drill began
        reason = getattr(exc, "summary", None) or getattr(exc, "reason", None) or str(exc)
        if not params["report"]:
            module.fail_json(msg="Kubernetes API error: %s" % reason, exception=traceback.format_exc())
        result = dict(steps=[], failed_step="pick-backup", failure="Kubernetes API error: %s" % reason)
    if params["report"]:
        try:
            result["report"], files = write_report(module, params, result, started)
        except OSError as exc:
            module.fail_json(msg="cannot write the drill report in %s: %s" % (params["report"]["dir"], exc), **result)
        if files:
            result["report_files"] = files
    if module.check_mode:  # a drill would restore (and clean up) when its preflight passes
        changed = not result["failed_step"]
    else:
        changed = any(s["name"] == "restore" for s in result["steps"])
    if result["failed_step"]:
        module.fail_json(
            msg="DR drill failed at step %s: %s" % (result["failed_step"], result["failure"]), changed=changed, **result
        )
    module.exit_json(changed=changed, **result)


if __name__ == "__main__":
    main()
