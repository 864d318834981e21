#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: velero_schedule
short_description: Manage Velero Schedules and storage locations, and verify backups against their RPO
version_added: 0.1.0
description:
  - Manages Velero C(Schedule) objects, the C(BackupStorageLocation) and C(VolumeSnapshotLocation)
    objects, in Velero's namespace, by server-side apply with the field manager
    C(gpuops.cluster/velero_schedule). Check mode applies with C(dryRun=All), so it predicts
    exactly what the API server would store; C(changed) is true only when a managed field
    differs.
  - Every option is validated before anything is read or written; bad input fails naming the
    option path and what is allowed, with no change. Checked are a cron of exactly 5 fields (or
    a descriptor, or C(@every <duration>)), the TTL and RPO as Go durations, the Schedule in
    Velero's namespace (a Schedule elsewhere stays C(New) forever), included and excluded
    namespaces and resources that do not contradict each other, hooks only on pods the backup
    takes, and an RPO not shorter than the longest gap between two runs of the schedule.
  - With O(mode=verify) nothing is changed. For each schedule the module reads its Backups
    (label C(velero.io/schedule-name)), the last one and the last successful one (phase
    C(Completed) with every volume snapshot completed; C(PartiallyFailed), C(Failed),
    C(FailedValidation) and snapshots attempted > completed are failures), the age of the last
    successful backup against the RPO, the storage location's phase, and expired or expiring
    backups, and returns a verdict per schedule. It fails on a breach unless O(on_breach=warn).
  - Credentials never appear in the output; diffs redact CA certificates and secret-looking
    config values.
author:
  - gpuops.cluster developers (@gpuops)
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - gpuops.cluster.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  platform:
    platforms: posix
options:
  namespace:
    description: Velero's namespace; every object this module manages or reads lives there.
    type: str
    default: velero
  mode:
    description:
      - C(apply) manages the objects; C(verify) only reads and judges them.
    type: str
    choices: [apply, verify]
    default: apply
  state:
    description:
      - C(absent) deletes the named Schedules, VolumeSnapshotLocations and the
        BackupStorageLocation (by name) when they exist. Backups already taken are kept.
    type: str
    choices: [present, absent]
    default: present
  schedules:
    description:
      - Velero Schedules. With O(mode=verify) only C(name) and C(rpo) are read; none given means
        every Schedule in O(namespace).
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Schedule name (DNS-1123 label).
        type: str
        required: true
      namespace:
        description: Must be O(namespace) when given (a Schedule elsewhere is never run).
        type: str
      schedule:
        description: 5-field cron (minute hour day-of-month month day-of-week), a descriptor
          such as C(@daily), or C(@every 6h).
        type: str
      ttl:
        description: How long each Backup is kept, as a Go duration (C(720h)); default O(default_ttl).
        type: str
      rpo:
        description:
          - Recovery point objective as a Go duration. Must not be shorter than the longest gap
            between two runs; a warning is given when it is shorter than two gaps (one missed
            run breaches it). Stored as the annotation C(gpuops.cluster/rpo) so verify mode
            finds it.
        type: str
      paused:
        description: Whether the Schedule is paused.
        type: bool
        default: false
      included_namespaces:
        description: Namespaces to back up (C(*) for all).
        type: list
        elements: str
      excluded_namespaces:
        description: Namespaces left out (only with C(*) or no included namespaces).
        type: list
        elements: str
      included_resources:
        description: Resources (plural[.group]) to back up.
        type: list
        elements: str
      excluded_resources:
        description: Resources left out.
        type: list
        elements: str
      include_cluster_resources:
        description: Whether cluster-scoped resources are backed up.
        type: bool
      label_selector:
        description: 'C({match_labels: {key: value}}).'
        type: dict
      storage_location:
        description: BackupStorageLocation name.
        type: str
      volume_snapshot_locations:
        description: VolumeSnapshotLocation names.
        type: list
        elements: str
      snapshot_volumes:
        description: Whether to snapshot persistent volumes.
        type: bool
      default_volumes_to_fs_backup:
        description: Whether to back volumes up with the file-system backup.
        type: bool
      hooks:
        description:
          - Exec hooks, each C({name, included_namespaces, excluded_namespaces, label_selector,
            pre, post}); C(pre)/C(post) are lists of C({container, command, on_error, timeout}).
          - Velero runs them in pods it backs up; a hook on pods that are excluded can never run
            and is rejected (or a warning with O(hook_conflicts=warn)).
        type: list
        elements: dict
      skip_immediately:
        description: Skip the first run right after the Schedule is created or unpaused.
        type: bool
      use_owner_references_in_backup:
        description: Whether Backups get the Schedule as owner reference.
        type: bool
      labels:
        description: Labels of the Schedule.
        type: dict
  default_ttl:
    description: TTL of schedules that do not set one.
    type: str
    default: 720h
  backup_storage_location:
    description:
      - The BackupStorageLocation. Keys C(name) (default C(default)), C(provider), C(bucket),
        C(prefix), C(region), C(s3_force_path_style), C(s3_url), C(ca_cert) (PEM),
        C(credential) (C({name, key}) of a Secret in O(namespace)), C(access_mode)
        (C(ReadWrite) or C(ReadOnly)), C(default), C(config), C(validation_frequency).
    type: dict
  volume_snapshot_locations:
    description: VolumeSnapshotLocations, each C({name, provider, config, credential}).
    type: list
    elements: dict
  hook_conflicts:
    description: What a hook on resources the backup leaves out does.
    type: str
    choices: [error, warn]
    default: error
  on_breach:
    description: With O(mode=verify), whether a breached RPO or a failed verdict fails the task.
    type: str
    choices: [fail, warn]
    default: fail
  expiring_within:
    description: With O(mode=verify), backups expiring within this Go duration are reported.
    type: str
    default: 24h
requirements:
  - kubernetes >= 24.2.0
notes:
  - The Velero CRDs must be installed (Velero's Helm chart or C(velero install --crds-only)).
seealso:
  - name: Velero schedules
    description: Velero's documentation of schedules and TTLs.
    link: https://velero.io/docs/main/backup-reference/
"""

EXAMPLES = r"""
- name: Cluster state every 6 hours, kept 30 days, RPO 12 hours
  gpuops.cluster.velero_schedule:
    backup_storage_location:
      provider: aws
      bucket: gpuops-backups
      region: us-east-1
      credential: {name: cloud-credentials, key: cloud}
    schedules:
      - name: cluster-state
        schedule: "0 */6 * * *"
        ttl: 720h
        rpo: 12h
        included_namespaces: ["*"]
        excluded_namespaces: [kube-system]

- name: Fail when a schedule's last successful backup is older than its RPO
  gpuops.cluster.velero_schedule:
    mode: verify
    schedules:
      - name: cluster-state
"""

RETURN = r"""
objects:
  description: What happened to each managed object (kind, name, action create/update/delete/none, changed).
  returned: mode=apply
  type: list
  elements: dict
schedules:
  description: Per schedule - name, rpo_seconds (null when none declared), period_seconds (the
    longest gap between two runs).
  returned: mode=apply
  type: list
  elements: dict
verdicts:
  description:
    - Per schedule (mode=verify) - verdict (ok, warning, breach, failed), reasons, phase,
      last_backup, last_successful_backup, last_successful_age_seconds, rpo_seconds,
      within_rpo, backups_total, backups_failed, expired, expiring, storage_location.
  returned: mode=verify
  type: list
  elements: dict
breached:
  description: Names of schedules whose verdict is breach or failed.
  returned: mode=verify
  type: list
  elements: str
"""

import traceback  # noqa: E402

from ansible_collections.gpuops.cluster.plugins.module_utils.velero.spec import (  # noqa: E402
    VeleroParamError,
    validate,
)

try:
    from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.client import get_api_client
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.core import AnsibleK8SModule
except ImportError:  # pragma: no cover - the collection declares kubernetes.core as dependency
    AUTH_ARG_SPEC = {}
    AnsibleK8SModule = None


def argument_spec():
    spec = dict(AUTH_ARG_SPEC)
    spec.update(
        namespace=dict(type="str", default="velero"),
        mode=dict(type="str", choices=["apply", "verify"], default="apply"),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        schedules=dict(
            type="list",
            elements="dict",
            default=[],
            options=dict(
                name=dict(type="str", required=True),
                namespace=dict(type="str"),
                schedule=dict(type="str"),
                ttl=dict(type="str"),
                rpo=dict(type="str"),
                paused=dict(type="bool", default=False),
                included_namespaces=dict(type="list", elements="str"),
                excluded_namespaces=dict(type="list", elements="str"),
                included_resources=dict(type="list", elements="str"),
                excluded_resources=dict(type="list", elements="str"),
                include_cluster_resources=dict(type="bool"),
                label_selector=dict(type="dict"),
                storage_location=dict(type="str"),
                volume_snapshot_locations=dict(type="list", elements="str"),
                snapshot_volumes=dict(type="bool"),
                default_volumes_to_fs_backup=dict(type="bool"),
                hooks=dict(type="list", elements="dict"),
                skip_immediately=dict(type="bool"),
                use_owner_references_in_backup=dict(type="bool"),
                labels=dict(type="dict"),
            ),
        ),
        default_ttl=dict(type="str", default="720h"),
        backup_storage_location=dict(type="dict", no_log=False),
        volume_snapshot_locations=dict(type="list", elements="dict"),
        hook_conflicts=dict(type="str", choices=["error", "warn"], default="error"),
        on_breach=dict(type="str", choices=["fail", "warn"], default="fail"),
        expiring_within=dict(type="str", default="24h"),
    )
    return spec


def main():
    module = AnsibleK8SModule(argument_spec=argument_spec(), supports_check_mode=True)
    from ansible_collections.gpuops.cluster.plugins.module_utils.velero.kube import (
        VeleroKube,
        VeleroKubeError,
        apply_all,
        verify_all,
    )

    try:
        normalized, warnings = validate(module.params)
    except VeleroParamError as exc:
        module.fail_json(msg=str(exc), changed=False)
    for warning in warnings:
        module.warn(warning)
    try:
        client = get_api_client(module=module)
        kube = VeleroKube(client.client, check_mode=module.check_mode)
        if normalized["mode"] == "verify":
            verdicts = verify_all(kube, normalized)
            breached = [v["name"] for v in verdicts if v["verdict"] in ("breach", "failed")]
            result = dict(changed=False, verdicts=verdicts, breached=breached)
            if breached:
                message = "; ".join(
                    "%s: %s" % (v["name"], "; ".join(v["reasons"]))
                    for v in verdicts
                    if v["verdict"] in ("breach", "failed")
                )
                if normalized["on_breach"] == "fail":
                    module.fail_json(msg="backup verification failed: " + message, **result)
                module.warn("backup verification: " + message)
            module.exit_json(**result)
        result = apply_all(kube, normalized)
        if not module._diff:
            result.pop("diff")
        module.exit_json(**result)
    except VeleroKubeError as exc:
        module.fail_json(msg=str(exc), changed=False)
    except Exception as exc:  # ApiException and friends: the reason, never the request body
        reason = getattr(exc, "summary", None) or getattr(exc, "reason", None) or str(exc)
        body = getattr(exc, "body", None)
        module.fail_json(
            msg="Kubernetes API error: %s%s" % (reason, (" " + str(body)[:500]) if body else ""),
            exception=traceback.format_exc(),
        )


if __name__ == "__main__":
    main()
