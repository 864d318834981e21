"""Run playbooks the way AWX runs a job template: ansible-runner, in the execution environment.

AWX turns a job into an ansible-runner private data dir (project checkout, an inventory script
printing the inventory as JSON, env/extravars, env/envvars with the credentials it injects,
env/settings) and runs it in the job's execution environment container. This tool does the same
against the sandbox, so site.yml is exercised in the EE image through the engine AWX uses:

    tools/awx_jobs.py run --image gpuops/ee:latest --sandbox .sandbox --out build/awx-run
    tools/awx_jobs.py run ... --slices 3      # job_slice_count 3: three slice jobs in parallel,
                                              # then a job that merges their fleet reports

Job slicing follows AWX (awx/main/models/inventory.py, Inventory.get_script_data and
get_sliced_hosts, read from the AWX source): the inventory's hosts in name order, slice k of n
takes hosts[k-1::n]; every group is kept (with its variables and children) but lists only the
slice's hosts; host variables go with their hosts. Slices share nothing while they run. Each
slice publishes its fleet report with set_stats; AWX hands the artifacts of a workflow's parent
jobs to the next node as extra variables (a dict update), which is what the merge job gets here.

Credentials: the sandbox's kubeconfig is turned into what AWX's "OpenShift or Kubernetes API
Bearer Token" credential injects (K8S_AUTH_HOST, K8S_AUTH_API_KEY, K8S_AUTH_VERIFY_SSL,
K8S_AUTH_SSL_CA_CERT), and gpuops_kubeconfig is unset (null) for the job, so the roles reach the
API through the injected environment only.
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import json
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SANDBOX_INVENTORY = ROOT / "inventories" / "sandbox"
# Paths of the repository that a job's project does not need.
PROJECT_SKIP = (".sandbox", "build", ".venv", "reports", "tests/output")


# ------------------------------------------------------------------------------------ inventory


def export_inventory(inventory: Path) -> dict:
    """The inventory as AWX stores it after an import: groups with their variables and children,
    hosts with their own variables (`ansible-inventory --list --export`: nothing merged)."""
    out = subprocess.run(
        [str(BIN / "ansible-inventory"), "-i", str(inventory), "--list", "--export"],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    return json.loads(out.stdout)


def inventory_hosts(data: dict) -> list[str]:
    """Every host of an exported inventory, in name order (AWX: order_by('name'))."""
    hosts = set((data.get("_meta") or {}).get("hostvars") or {})
    for name, group in data.items():
        if name != "_meta" and isinstance(group, dict):
            hosts.update(group.get("hosts") or [])
    return sorted(hosts)


def awx_slice(data: dict, number: int, count: int) -> dict:
    """Slice `number` (1-based) of `count` of an exported inventory, as AWX's inventory script
    for that slice job prints it."""
    if count < 1 or not 1 <= number <= count:
        raise ValueError(f"slice {number} of {count}: need 1 <= number <= count")
    hosts = inventory_hosts(data)
    if count > 1:
        hosts = hosts[number - 1 :: count]
    keep = set(hosts)
    hostvars = (data.get("_meta") or {}).get("hostvars") or {}
    out: dict = {"all": {}}
    all_group = data.get("all") or {}
    if all_group.get("vars"):
        out["all"]["vars"] = all_group["vars"]
    grouped = set()
    group_names = []
    for name, group in data.items():
        if name in ("_meta", "all", "ungrouped") or not isinstance(group, dict):
            continue
        info = {}
        members = [h for h in group.get("hosts") or [] if h in keep]
        if members:
            info["hosts"] = members
            grouped.update(members)
        if group.get("children"):
            info["children"] = list(group["children"])
        if group.get("vars"):
            info["vars"] = group["vars"]
        if info:
            out[name] = info
        group_names.append(name)
    out["all"]["hosts"] = [h for h in hosts if h not in grouped]
    if group_names:
        out["all"]["children"] = group_names
    out["_meta"] = {"hostvars": {h: hostvars.get(h, {}) for h in hosts}}
    return out


def write_inventory_script(path: Path, data: dict) -> None:
    """AWX's inventory file: an executable Python script that prints the JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#! /usr/bin/env python3\n# -*- coding: utf-8 -*-\nprint(%r)\n" % json.dumps(data))
    path.chmod(stat.S_IRWXU)


# ----------------------------------------------------------------------------------- credentials


def k8s_credential_env(kubeconfig: Path, secrets_dir: Path, mount_as: str) -> dict:
    """What AWX's Kubernetes bearer-token credential injects, read from a kubeconfig's current
    context: K8S_AUTH_HOST, K8S_AUTH_API_KEY, K8S_AUTH_VERIFY_SSL and, with a CA, the CA file
    (written to secrets_dir, which the job sees as mount_as)."""
    config = yaml.safe_load(kubeconfig.read_text())
    context_name = config.get("current-context")
    context = next(c["context"] for c in config["contexts"] if c["name"] == context_name)
    cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == context["cluster"])
    user = next(u["user"] for u in config["users"] if u["name"] == context["user"])
    env = {"K8S_AUTH_HOST": cluster["server"], "K8S_AUTH_API_KEY": user.get("token", "")}
    ca = cluster.get("certificate-authority-data")
    if ca is None and cluster.get("certificate-authority"):
        ca = base64.b64encode(Path(cluster["certificate-authority"]).read_bytes()).decode()
    if ca:
        secrets_dir.mkdir(parents=True, exist_ok=True)
        (secrets_dir / "k8s-ca.crt").write_bytes(base64.b64decode(ca))
        env["K8S_AUTH_SSL_CA_CERT"] = f"{mount_as}/k8s-ca.crt"
        env["K8S_AUTH_VERIFY_SSL"] = "True"
    else:
        env["K8S_AUTH_VERIFY_SSL"] = str(
            not cluster.get("insecure-skip-tls-verify", False) and cluster["server"].startswith("https")
        ).lower()
    return env


# ---------------------------------------------------------------------------------------- jobs


def copy_project(dest: Path) -> None:
    """The project AWX would sync: the repository's files (tracked and untracked-not-ignored)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "-co", "--exclude-standard"], cwd=ROOT, check=True, capture_output=True
    ).stdout.split(b"\0")
    for raw in listed:
        name = raw.decode()
        if not name or any(name == p or name.startswith(p + "/") for p in PROJECT_SKIP):
            continue
        source = ROOT / name
        if not source.is_file():
            continue
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)


def prepare_job(
    pdd: Path,
    *,
    project: Path,
    inventory: dict,
    image: str,
    extravars: dict,
    envvars: dict,
    mounts: list[str],
) -> None:
    """An ansible-runner private data dir, AWX-style, running in `image`."""
    if pdd.exists():
        shutil.rmtree(pdd)
    (pdd / "env").mkdir(parents=True)
    # AWX checks the project out per job; a link-free copy per job keeps jobs independent.
    shutil.copytree(project, pdd / "project", symlinks=True)
    write_inventory_script(pdd / "inventory" / "hosts", inventory)
    (pdd / "env" / "extravars").write_text(json.dumps(extravars, indent=2))
    (pdd / "env" / "envvars").write_text(json.dumps(envvars, indent=2))
    settings = {
        "process_isolation": True,
        "process_isolation_executable": "docker",
        "container_image": image,
        # The sandbox's API stand-in listens on 127.0.0.1 of this machine.
        "container_options": ["--network=host"],
        "container_volume_mounts": mounts,
        "suppress_ansible_output": True,
    }
    (pdd / "env" / "settings").write_text(json.dumps(settings, indent=2))


def job_result(pdd: Path, ident: str) -> dict:
    """rc, status, the play recap (per host) and the set_stats artifacts of a finished job."""
    artifacts = pdd / "artifacts" / ident
    result = {
        "ident": ident,
        "rc": int((artifacts / "rc").read_text()) if (artifacts / "rc").is_file() else None,
        "status": (artifacts / "status").read_text().strip() if (artifacts / "status").is_file() else None,
        "recap": {},
        "artifacts": {},
        "stdout": str(artifacts / "stdout"),
    }
    for path in sorted((artifacts / "job_events").glob("*.json")):
        event = json.loads(path.read_text())
        if event.get("event") != "playbook_on_stats":
            continue
        data = event.get("event_data") or {}
        hosts = set()
        for key in ("ok", "changed", "failures", "dark", "skipped"):
            hosts.update((data.get(key) or {}).keys())
        result["recap"] = {
            host: {key: int((data.get(key) or {}).get(host, 0)) for key in ("ok", "changed", "failures", "dark")}
            for host in sorted(hosts)
        }
        result["artifacts"] = data.get("artifact_data") or {}
    return result


def run_job(pdd: Path, playbook: str, ident: str, timeout: int = 1200) -> dict:
    start = time.monotonic()
    proc = subprocess.run(
        [str(BIN / "ansible-runner"), "run", str(pdd), "-p", playbook, "--ident", ident],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    result = job_result(pdd, ident)
    result["seconds"] = round(time.monotonic() - start, 1)
    if result["rc"] is None:
        result["runner_error"] = (proc.stdout + proc.stderr)[-4000:]
    return result


def run_site(
    *,
    image: str,
    sandbox: Path,
    kubeconfig: Path,
    out: Path,
    slices: int = 1,
    inventory: Path = SANDBOX_INVENTORY,
    playbook: str = "playbooks/site.yml",
    extravars: dict | None = None,
) -> dict:
    """site.yml as one job (slices=1) or as `slices` slice jobs in parallel followed by a merge
    job (`extravars`: the job template's extra variables); returns every job's result, the
    report(s) and the times."""
    out.mkdir(parents=True, exist_ok=True)
    project = out / "project"
    if project.exists():
        shutil.rmtree(project)
    copy_project(project)
    exported = export_inventory(inventory)
    sandbox = sandbox.resolve()
    secrets = out / "credentials"
    envvars = {"GPUOPS_SANDBOX_DIR": str(sandbox)}
    envvars.update(k8s_credential_env(kubeconfig, secrets, str(secrets.resolve())))
    mounts = [f"{ROOT}:{ROOT}:ro", f"{sandbox}:{sandbox}:rw"]
    if secrets.is_dir():
        mounts.append(f"{secrets.resolve()}:{secrets.resolve()}:ro")
    base_vars = {
        # The sandbox inventory locates the simulator through inventory_dir, which an AWX
        # inventory (a script in the job's private data dir) does not have: name the checkout.
        "gpuops_repo_root": str(ROOT),
        # No kubeconfig: the job reaches the API with the injected K8S_AUTH_* only.
        "gpuops_kubeconfig": None,
        **(extravars or {}),
    }
    jobs = []
    for number in range(1, slices + 1):
        ident = f"slice-{number}-of-{slices}" if slices > 1 else "site"
        pdd = out / ident
        extravars = dict(base_vars, awx_job_id=1000 + number)
        prepare_job(
            pdd,
            project=project,
            inventory=awx_slice(exported, number, slices),
            image=image,
            extravars=extravars,
            envvars=envvars,
            mounts=mounts,
        )
        jobs.append((pdd, ident))
    start = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        results = list(pool.map(lambda job: run_job(job[0], playbook, job[1]), jobs))
    summary = {"slices": slices, "jobs": results, "seconds": round(time.monotonic() - start, 1)}
    for (pdd, _ident), result in zip(jobs, results):
        result["hosts"] = inventory_hosts(json.loads(_script_json(pdd / "inventory" / "hosts")))
    if slices > 1:
        # The workflow's next node: the slice jobs' artifacts, merged the way AWX hands parent
        # artifacts to a child node (dict update), are its extra variables.
        handed = {}
        for result in results:
            handed.update(result["artifacts"])
        pdd = out / "merge"
        prepare_job(
            pdd,
            project=project,
            inventory={"all": {"hosts": []}, "_meta": {"hostvars": {}}},
            image=image,
            extravars=dict(handed, awx_job_id=2000),
            envvars={},
            mounts=[],
        )
        merge = run_job(pdd, "playbooks/fleet_report_merge.yml", "merge")
        summary["merge"] = merge
        summary["report_dir"] = str(pdd / "project" / "reports")
    else:
        summary["report_dir"] = str(jobs[0][0] / "project" / "reports")
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary


def _script_json(path: Path) -> str:
    text = path.read_text()
    literal = text[text.index("print(") + len("print(") : text.rindex(")")]
    import ast

    return ast.literal_eval(literal)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    runp = sub.add_parser("run", help="site.yml through ansible-runner in the EE against a running sandbox")
    runp.add_argument("--image", required=True)
    runp.add_argument("--sandbox", type=Path, default=ROOT / ".sandbox", help="sandbox dir (make sandbox-up)")
    runp.add_argument("--kubeconfig", type=Path, help="default: SANDBOX/kube/kubeconfig")
    runp.add_argument("--out", type=Path, default=ROOT / "build" / "awx-run")
    runp.add_argument("--slices", type=int, default=1, help="job_slice_count (default 1: no slicing)")
    sl = sub.add_parser("slice", help="print the AWX inventory script data of one slice")
    sl.add_argument("number", type=int)
    sl.add_argument("count", type=int)
    sl.add_argument("--inventory", type=Path, default=SANDBOX_INVENTORY)
    args = parser.parse_args(argv)
    if args.command == "slice":
        print(json.dumps(awx_slice(export_inventory(args.inventory), args.number, args.count), indent=2))
        return 0
    summary = run_site(
        image=args.image,
        sandbox=args.sandbox,
        kubeconfig=args.kubeconfig or args.sandbox / "kube" / "kubeconfig",
        out=args.out,
        slices=args.slices,
    )
    failed = [
        job["ident"] for job in summary["jobs"] + ([summary["merge"]] if "merge" in summary else []) if job["rc"] != 0
    ]
    for job in summary["jobs"] + ([summary["merge"]] if "merge" in summary else []):
        print(
            f"awx-jobs: {job['ident']}: rc={job['rc']} {job['status']} in {job['seconds']} s,"
            f" hosts {job.get('hosts', [])}"
        )
    print(f"awx-jobs: {summary['slices']} job(s) in {summary['seconds']} s; reports in {summary['report_dir']}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
