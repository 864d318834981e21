# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""velero_drill against the cluster: one executed DR drill, step by step (preflight, restore,
compare, smoke checks, cleanup), each timed, reading with one list per kind and namespace,
through the kubernetes DynamicClient that kubernetes.core's get_api_client hands out. The
backup's contents come from Velero itself: a DownloadRequest for the backup's resource list,
else for its tarball, else (no DownloadRequest kind served) the source namespaces. The
decisions are drill.py's."""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import json
import time

from ansible_collections.gpuops.cluster.plugins.module_utils.velero import drill

FIELD_MANAGER = "gpuops.cluster/velero_drill"
DRILL_LABEL = "gpuops.cluster/dr-drill"


class DrillStepError(Exception):
    def __init__(self, message, detail=None):
        super().__init__(message)
        self.detail = detail


def _plain(obj):
    if obj is None:
        return None
    return obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)


class DrillKube:
    def __init__(self, dynamic, fetch=None, sleep=time.sleep, clock=time.monotonic):
        self.dynamic = dynamic
        self.fetch = fetch  # url -> (status, bytes); the module passes open_url's
        self.sleep = sleep
        self.clock = clock
        self._resources = {}

    def resource(self, api_version, kind):
        wanted = (api_version, kind)
        if wanted not in self._resources:
            self._resources[wanted] = self.dynamic.resources.get(api_version=api_version, kind=kind)
        return self._resources[wanted]

    def served(self, api_version, kind):
        try:
            self.resource(api_version, kind)
        except Exception:  # ResourceNotFoundError: the kind is not served
            return False
        return True

    def list(self, api_version, kind, namespace=None, label_selector=None):
        # The list's JSON as it came: the DynamicClient's ResourceInstance wrapping and its
        # to_dict cost more than the request itself on a namespace of a thousand objects.
        kwargs = {"namespace": namespace, "serialize": False}
        if label_selector:
            kwargs["label_selector"] = label_selector
        response = self.resource(api_version, kind).get(**kwargs)
        items = json.loads(response.data.decode("utf-8")).get("items") or []
        for item in items:  # list items come without kind / apiVersion
            item.setdefault("kind", kind)
            item.setdefault("apiVersion", api_version)
        return items

    def get(self, api_version, kind, namespace, name):
        from kubernetes.dynamic.exceptions import NotFoundError

        try:
            return _plain(self.resource(api_version, kind).get(name=name, namespace=namespace))
        except NotFoundError:
            return None

    def apply(self, body):
        return _plain(
            self.dynamic.server_side_apply(
                self.resource(body["apiVersion"], body["kind"]),
                body=body,
                name=body["metadata"]["name"],
                namespace=body["metadata"].get("namespace"),
                field_manager=FIELD_MANAGER,
                force_conflicts=True,
            )
        )

    def delete(self, api_version, kind, namespace, name):
        from kubernetes.dynamic.exceptions import NotFoundError

        try:
            self.resource(api_version, kind).delete(name=name, namespace=namespace)
        except NotFoundError:
            pass

    def objects(self, namespaces, kinds):
        """Every object of the kinds in the namespaces: one list per kind and namespace."""
        out = []
        for namespace in namespaces:
            for kind in kinds:
                out.extend(self.list(drill.KINDS[kind][0], kind, namespace))
        return out

    def watch_until(self, api_version, kind, namespace, name, done, timeout, what):
        """done(object or None) for one named object, seen through a watch as each change
        happens (as `kubectl wait` does), so the drill learns of the end when it comes, not at
        its next poll. List, then watch from the list's resourceVersion: no change between the
        two is missed. A watch that ends early or fails falls back to the backing-off poll."""
        deadline = self.clock() + timeout
        resource = self.resource(api_version, kind)
        events = None
        try:
            response = resource.get(namespace=namespace, field_selector="metadata.name=%s" % name, serialize=False)
            listing = json.loads(response.data.decode("utf-8"))
            value = done((listing.get("items") or [None])[0])
            if value:
                return value
            events = self.dynamic.watch(
                resource,
                namespace=namespace,
                name=name,
                resource_version=listing["metadata"]["resourceVersion"],
                timeout=max(int(timeout), 1),
            )
            for event in events:
                if event["type"] not in ("ADDED", "MODIFIED", "DELETED"):
                    continue  # BOOKMARK
                value = done(None if event["type"] == "DELETED" else event["raw_object"])
                if value:
                    return value
                if self.clock() >= deadline:
                    break
        except Exception:  # noqa: BLE001 - a broken stream; the poll below decides
            pass
        finally:
            if events is not None:
                events.close()  # the generator's finally closes the HTTP stream
        return self.wait(
            lambda: done(self.get(api_version, kind, namespace, name)),
            max(deadline - self.clock(), 0.01),
            what,
        )

    def wait(self, done, timeout, what):
        deadline = self.clock() + timeout
        for delay in drill.poll_delays():
            value = done()
            if value:
                return value
            if self.clock() >= deadline:
                raise DrillStepError("timed out after %d s waiting for %s" % (timeout, what))
            self.sleep(min(delay, max(deadline - self.clock(), 0.01)))
        return None  # pragma: no cover - poll_delays never ends


def _step(steps, name, started, status="ok", detail=None):
    entry = {"name": name, "status": status, "seconds": round(time.monotonic() - started, 3)}
    if detail is not None:
        entry["detail"] = detail
    steps.append(entry)


def request_contents(kube, params, target):
    """Ask Velero for one of the backup's files (a DownloadRequest); returns its name. Asked for
    before the restore is waited on, Velero answers it while the restore runs."""
    name = "%s-%s" % (params["drill_id"], target.lower())
    kube.apply(
        {
            "apiVersion": "velero.io/v1",
            "kind": "DownloadRequest",
            "metadata": {
                "name": name,
                "namespace": params["velero_namespace"],
                "labels": {DRILL_LABEL: params["drill_id"]},
            },
            "spec": {"target": {"kind": target, "name": params["backup"]}},
        }
    )
    return name


def backup_contents(kube, params, mapping, requested=None):
    """(expected keys, source) from Velero's DownloadRequest: the resource list, else the
    tarball; (None, reason) when the kind is not served or neither answers. `requested`: the
    name of the resource list's request, when it was asked for already."""
    if not requested and not kube.served("velero.io/v1", "DownloadRequest"):
        return None, "DownloadRequest not served"
    namespaces = params["namespaces"]
    kinds = params["compare_kinds"]
    for target, read in (
        ("BackupResourceList", drill.keys_from_resource_list),
        ("BackupContents", drill.keys_from_tarball),
    ):
        if target == "BackupResourceList" and requested:
            name = requested
        else:
            name = request_contents(kube, params, target)
        try:
            processed = kube.watch_until(
                "velero.io/v1",
                "DownloadRequest",
                params["velero_namespace"],
                name,
                _processed,
                params["download_timeout"],
                "DownloadRequest %s" % name,
            )
        except DrillStepError:
            continue  # not answered (an older Velero without this target kind)
        finally:
            kube.delete("velero.io/v1", "DownloadRequest", params["velero_namespace"], name)
        status, data = kube.fetch(processed)
        if status != 200:
            continue  # a backup written before its Velero wrote this file
        return read(data, namespaces, mapping, kinds), target
    return None, "neither BackupResourceList nor BackupContents could be downloaded"


def _processed(request):
    status = (request or {}).get("status") or {}
    if status.get("phase") == "Processed" and status.get("downloadURL"):
        return status["downloadURL"]
    return None


def execute(kube, params):
    """Run the drill; returns the result dict (never raises for a failed step: the step, its
    detail and the cleanup are in the result)."""
    mapping = dict((ns, params["scratch_prefix"] + ns) for ns in params["namespaces"])
    kinds = params["compare_kinds"]
    velero_ns = params["velero_namespace"]
    name = "dr-drill-%s" % params["drill_id"]
    steps = []
    result = {
        "backup": None,
        "backup_completed": None,
        "backup_age_seconds": None,
        "namespace_mapping": mapping,
        "steps": steps,
        "failed_step": None,
        "failure": None,
        "restored_counts": {},
        "differences": [],
        "smoke_failures": [],
        "contents_source": None,
        "restore_status": None,
        "production_untouched": None,
        "production_changes": [],
    }
    step, started = "pick-backup", time.monotonic()
    before = requested = None
    try:
        if params["backup"]:
            found = kube.get("velero.io/v1", "Backup", velero_ns, params["backup"])
            backups = [found] if found else []
        else:
            backups = kube.list("velero.io/v1", "Backup", velero_ns, "velero.io/schedule-name=%s" % params["schedule"])
        backup = drill.pick_backup(backups, params["backup"])
        if backup is None:
            raise DrillStepError(
                "no %s in namespace %s"
                % (
                    "backup named %s that completed" % params["backup"]
                    if params["backup"]
                    else "successful backup of schedule %s" % params["schedule"],
                    velero_ns,
                )
            )
        params = dict(params, backup=backup["metadata"]["name"])
        result["backup"] = backup["metadata"]["name"]
        result["backup_completed"] = backup["status"]["completionTimestamp"]
        result["backup_age_seconds"] = round(drill.age_seconds(backup, params["now"]), 1)
        _step(steps, step, started, detail=result["backup"])

        step, started = "preflight", time.monotonic()
        existing = sorted(n for n in mapping.values() if kube.get("v1", "Namespace", None, n) is not None)
        if existing:
            raise DrillStepError(
                "scratch namespace(s) %s already exist (a previous drill?); delete them first" % existing
            )
        production = kube.objects(params["namespaces"], kinds)
        before = drill.fingerprint(production)
        rules = drill.modifier_rules(production, mapping)
        _step(steps, step, started)
        if params.get("check_mode"):
            result["modifier_rules"] = rules
            return result

        step, started = "restore", time.monotonic()
        if kube.served("velero.io/v1", "DownloadRequest"):
            # Asked for before the Restore: Velero has answered it by the time the restore ends.
            requested = request_contents(kube, params, "BackupResourceList")
        kube.apply(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": name,
                    "namespace": velero_ns,
                    "labels": {"app.kubernetes.io/managed-by": "gpuops.cluster", DRILL_LABEL: params["drill_id"]},
                },
                "data": {"modifiers.yaml": _yaml({"version": "v1", "resourceModifierRules": rules})},
            }
        )
        kube.apply(
            {
                "apiVersion": "velero.io/v1",
                "kind": "Restore",
                "metadata": {"name": name, "namespace": velero_ns, "labels": {DRILL_LABEL: params["drill_id"]}},
                "spec": {
                    "backupName": params["backup"],
                    "includedNamespaces": params["namespaces"],
                    "namespaceMapping": mapping,
                    "resourceModifier": {"kind": "ConfigMap", "name": name},
                },
            }
        )
        status = kube.watch_until(
            "velero.io/v1", "Restore", velero_ns, name, _final, params["restore_timeout"], "Restore %s" % name
        )
        result["restore_status"] = status
        if status.get("phase") != "Completed":
            raise DrillStepError(
                "restore %s ended %s: %s (%s errors; velero restore describe %s --details)"
                % (
                    name,
                    status.get("phase"),
                    status.get("failureReason") or "; ".join(status.get("validationErrors") or []),
                    status.get("errors", 0),
                    name,
                ),
                detail=status,
            )
        _step(steps, step, started, detail=status)

        step, started = "compare", time.monotonic()
        expected, source = backup_contents(kube, params, mapping, requested)
        requested = None  # answered and deleted
        if expected is None:
            result["contents_warning"] = source
            expected, source = drill.keys_from_objects(production, mapping, kinds), "source namespaces"
        result["contents_source"] = source
        restored = kube.objects(list(mapping.values()), kinds)
        differences, counts = drill.compare(expected, restored, kinds)
        result["differences"], result["restored_counts"] = differences, counts
        if differences:
            raise DrillStepError(
                "restored objects differ from the backup's contents (%s): %s" % (source, "; ".join(differences[:20])),
                detail=differences,
            )
        _step(steps, step, started, detail={"source": source, "expected": len(expected)})

        step, started = "smoke-checks", time.monotonic()
        checks = params["smoke_checks"]
        found = []
        for check in checks:
            api_version, kind, namespace = check.get("api_version") or "v1", check["kind"], mapping[check["namespace"]]
            if kind in kinds and drill.KINDS[kind][0] == api_version:  # listed for the compare already
                items = [o for o in restored if o.get("kind") == kind and o["metadata"].get("namespace") == namespace]
            else:
                items = kube.list(api_version, kind, namespace)
            if check.get("name"):
                items = [i for i in items if i["metadata"]["name"] == check["name"]]
            found.append(len(items))
        failures = drill.judge_smoke(checks, found, restored, mapping)
        result["smoke_failures"] = failures
        if failures:
            raise DrillStepError("smoke checks failed: %s" % "; ".join(failures[:20]), detail=failures)
        _step(steps, step, started, detail=[])
    except DrillStepError as exc:
        result["failed_step"], result["failure"] = step, str(exc)
        _step(steps, step, started, status="failed", detail=exc.detail if exc.detail is not None else str(exc))
    except Exception as exc:  # API errors: the drill stops at this step, cleanup still runs
        reason = getattr(exc, "summary", None) or getattr(exc, "reason", None) or str(exc)
        result["failed_step"], result["failure"] = step, "Kubernetes API error: %s" % reason
        _step(steps, step, started, status="failed", detail=result["failure"])
    if before is not None:
        cleanup(kube, params, mapping, name, before, steps, result, requested)
    return result


def cleanup(kube, params, mapping, name, before, steps, result, requested=None):
    started = time.monotonic()
    try:
        for namespace in mapping.values():
            kube.delete("v1", "Namespace", None, namespace)
        kube.delete("v1", "ConfigMap", params["velero_namespace"], name)
        if requested:  # the drill stopped before its compare read the answer
            kube.delete("velero.io/v1", "DownloadRequest", params["velero_namespace"], requested)
        # Production is read again while the scratch namespaces terminate: the restore and its
        # modifiers are done, and the deletes above name only scratch objects.
        after = drill.fingerprint(kube.objects(params["namespaces"], params["compare_kinds"]))
        deadline = time.monotonic() + params["cleanup_timeout"]
        for namespace in mapping.values():
            kube.watch_until(
                "v1",
                "Namespace",
                None,
                namespace,
                lambda ns: ns is None,
                max(deadline - time.monotonic(), 0.01),
                "the scratch namespace %s to be deleted" % namespace,
            )
        result["production_changes"] = drill.fingerprint_changes(before, after)
        result["production_untouched"] = not result["production_changes"]
        _step(steps, "cleanup", started)
    except Exception as exc:  # noqa: BLE001 - reported, the drill's verdict says it
        reason = getattr(exc, "summary", None) or getattr(exc, "reason", None) or str(exc)
        _step(steps, "cleanup", started, status="failed", detail=str(reason))
        if not result["failed_step"]:
            result["failed_step"], result["failure"] = "cleanup", str(reason)


def _final(restore):
    status = (restore or {}).get("status") or {}
    return status if status.get("phase") in drill.FINAL_RESTORE_PHASES else None


def _yaml(data):
    import yaml

    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False)
