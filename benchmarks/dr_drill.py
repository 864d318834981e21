"""The DR drill's own overhead (issue 13, section 5): one namespace of 1,000 objects backed up by
the stand-in Velero server into moto's S3, then timed twice in one run:

- bare restore: a Velero Restore into a scratch namespace (namespaceMapping), created with the
  kubernetes client and polled until its phase is final (the reference), then the namespace
  deleted (timed apart: the drill's cleanup does the same); five times (DR_DRILL_BARE_RUNS),
  the medians taken;
- drill: playbooks/dr_drill.yml with dr_drill_execute=true on the same backup (pick, preflight,
  restore with the resource modifiers, compare, smoke checks, cleanup, report); five times
  (DR_DRILL_RUNS).

Prints each drill's per-step seconds from its report and three ratios of the medians to the
bare restore's (the issue's target: <= 1.3): the drill's own steps (their sum: what velero_drill spends from
picking the backup to the cleanup), the report's elapsed time (from the playbook's clock start,
with the module's start-up), and the ansible-playbook wall time (with Ansible's start-up,
argument checks and report writing). Run: .venv/bin/python benchmarks/dr_drill.py [OBJECTS]
(DR_DRILL_PLAYBOOK=path measures another copy of the playbook, e.g. an older one;
DR_DRILL_SHOW_OUTPUT=1 prints the playbook's output, e.g. with the profile_tasks callback).
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KUBE = ROOT / "sandbox" / "kube"
sys.path.insert(0, str(ROOT / "tests" / "helpers"))  # the objects the Velero tests create too

import velero_objects  # noqa: E402

GROUP, VERSION = velero_objects.GROUP, velero_objects.VERSION
NS = "velero"


def start_moto():
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return server, f"http://{host}:{port}"


def start_kube(state_dir: Path, endpoint: str):
    env = dict(
        os.environ,
        PYTHONPATH=str(KUBE),
        GPUOPS_SANDBOX_AWS_ENDPOINT=endpoint,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
    )
    command = [
        sys.executable,
        "-m",
        "gpuops_kubeapi",
        "serve",
        "--port",
        "0",
        "--state-dir",
        str(state_dir),
        "--kubeconfig-out",
        str(state_dir / "kubeconfig"),
        "--crds",
        "sandbox",
        "--controllers",
        "velero",
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, env=env, text=True)
    line = process.stdout.readline()
    if "serving" not in line:
        process.kill()
        raise SystemExit(f"stand-in did not start: {line!r}")
    return process, state_dir / "kubeconfig"


def wait(predicate, timeout=600.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise SystemExit("timed out")


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    import boto3
    from kubernetes import client, config

    moto, endpoint = start_moto()
    tmp = Path(tempfile.mkdtemp(prefix="bench-dr-drill-"))
    process, kubeconfig = start_kube(tmp, endpoint)
    try:
        api = config.new_client_from_config(str(kubeconfig))
        core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
        custom = client.CustomObjectsApi(api)
        bucket = f"bench-{uuid.uuid4().hex[:8]}"
        boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        ).create_bucket(Bucket=bucket)
        core.create_namespace({"metadata": {"name": NS}})
        prod = "bench-prod"
        core.create_namespace({"metadata": {"name": prod}})
        started = time.perf_counter()
        deployments = count // 5
        services = count // 5
        configmaps = count - deployments - services - 1  # + the Namespace itself
        for index in range(configmaps):
            core.create_namespaced_config_map(prod, {"metadata": {"name": f"cm-{index}"}, "data": {"i": str(index)}})
        for index in range(deployments):
            deployment = velero_objects.gpu_deployment(f"d-{index}", app=f"d{index}", image="x:1", gpus=1)
            apps.create_namespaced_deployment(prod, deployment)
        for index in range(services):
            core.create_namespaced_service(
                prod, {"metadata": {"name": f"s-{index}"}, "spec": {"ports": [{"port": 80}], "selector": {"app": "x"}}}
            )
        print(
            f"objects: {count} in namespace {prod} ({configmaps} ConfigMaps, {deployments} Deployments, "
            f"{services} Services, the Namespace); created in {time.perf_counter() - started:.1f} s"
        )
        location = velero_objects.storage_location("default", bucket, default=True)
        custom.create_namespaced_custom_object(GROUP, VERSION, NS, "backupstoragelocations", location)

        def phase(plural, name):
            obj = custom.get_namespaced_custom_object(GROUP, VERSION, NS, plural, name)
            return (obj.get("status") or {}).get("phase")

        wait(lambda: phase("backupstoragelocations", "default") == "Available")
        started = time.perf_counter()
        backup = velero_objects.backup("bench", [prod], "bench")
        custom.create_namespaced_custom_object(GROUP, VERSION, NS, "backups", backup)
        wait(lambda: phase("backups", "bench") in ("Completed", "PartiallyFailed", "Failed"))
        print(f"backup: {phase('backups', 'bench')} in {time.perf_counter() - started:.2f} s")

        # The bare restore, BARE_RUNS times (default 5): the median is the reference (a shared
        # 2-CPU machine makes single runs vary by a second or more).
        bare_times, delete_times = [], []
        for run in range(int(os.environ.get("DR_DRILL_BARE_RUNS", "5"))):
            name, scratch = f"bare-{run}", f"bare-scratch-{run}"
            started = time.perf_counter()
            custom.create_namespaced_custom_object(
                GROUP,
                VERSION,
                NS,
                "restores",
                {
                    "apiVersion": f"{GROUP}/{VERSION}",
                    "kind": "Restore",
                    "metadata": {"name": name},
                    "spec": {"backupName": "bench", "namespaceMapping": {prod: scratch}},
                },
            )
            wait(lambda name=name: phase("restores", name) in ("Completed", "PartiallyFailed", "Failed"))
            bare_times.append(time.perf_counter() - started)
            started = time.perf_counter()
            core.delete_namespace(scratch)
            wait(lambda scratch=scratch: scratch not in [n.metadata.name for n in core.list_namespace().items])
            delete_times.append(time.perf_counter() - started)
            print(
                f"bare restore {run + 1}: {phase('restores', name)} in {bare_times[-1]:.2f} s "
                f"(then its namespace deleted in {delete_times[-1]:.2f} s)"
            )
        bare = statistics.median(bare_times)
        deleted = statistics.median(delete_times)
        print(f"bare restore (median of {len(bare_times)}): {bare:.2f} s; namespace deletion {deleted:.2f} s")

        plans = {
            "bench": {
                "rto_minutes": 60,
                "rpo_minutes": 60,
                "schedule": "bench",
                "namespaces": [prod],
                "smoke_checks": [{"kind": "ConfigMap", "namespace": prod, "min_count": configmaps}],
            }
        }
        report_dir = tmp / "reports"
        env = dict(os.environ, K8S_AUTH_KUBECONFIG=str(kubeconfig), ANSIBLE_PYTHON_INTERPRETER=sys.executable)
        command = [
            str(Path(sys.executable).parent / "ansible-playbook"),
            "-i",
            "localhost,",
            "-c",
            "local",
            os.environ.get("DR_DRILL_PLAYBOOK") or str(ROOT / "playbooks" / "dr_drill.yml"),
            "-e",
            json.dumps(
                {
                    "dr_drill_plan": "bench",
                    "dr_drill_plans": plans,
                    "dr_drill_execute": True,
                    "dr_drill_report_dir": str(report_dir),
                }
            ),
        ]
        # The drill, DR_DRILL_RUNS times (default 5): the medians are compared with the bare
        # restore's, so one slow run on a shared machine does not decide the ratio.
        runs = []
        for run in range(int(os.environ.get("DR_DRILL_RUNS", "5"))):
            run_dir = report_dir / f"run-{run}"
            command[-1] = json.dumps(dict(json.loads(command[-1]), dr_drill_report_dir=str(run_dir)))
            started = time.perf_counter()
            result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
            wall = time.perf_counter() - started
            reports = sorted(run_dir.glob("*.json"))
            if result.returncode != 0 or not reports:
                print(result.stdout[-3000:])
                raise SystemExit("drill failed")
            # DR_DRILL_SHOW_OUTPUT=1, e.g. with ANSIBLE_CALLBACKS_ENABLED=ansible.posix.profile_tasks
            if os.environ.get("DR_DRILL_SHOW_OUTPUT"):
                print(result.stdout[-5000:])
            report = json.loads(reports[0].read_text())
            own = sum(step["seconds"] for step in report["steps"])
            restore = sum(step["seconds"] for step in report["steps"] if step["name"] == "restore")
            steps = "  ".join(f"{step['name']} {step['seconds']:.2f}" for step in report["steps"])
            print(
                f"drill {run + 1}: steps {own:.2f} s ({steps}); report elapsed {report['elapsed_minutes'] * 60:.2f} s; "
                f"ansible-playbook {wall:.2f} s; within_rto {report['within_rto']}, within_rpo {report['within_rpo']}, "
                f"production untouched {report.get('production_untouched')}"
            )
            runs.append((own, report["elapsed_minutes"] * 60, wall, restore))
        own, elapsed, wall, restore = (statistics.median(values) for values in zip(*runs))
        print(
            f"ratio to the bare restore (medians: drill of {len(runs)}, bare of {len(bare_times)}): "
            f"drill steps {own / bare:.2f} ({own:.2f} s vs {bare:.2f} s), report elapsed {elapsed / bare:.2f}, "
            f"ansible-playbook wall {wall / bare:.2f}; restore step alone {restore / bare:.2f}; target <= 1.3"
        )
        # The drill ends with its scratch namespace gone; a bare restore cleaned up by hand pays that too.
        print(f"drill steps to the bare restore with its namespace deletion: {own / (bare + deleted):.2f}")
    finally:
        os.kill(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
        moto.stop()


if __name__ == "__main__":
    main()
