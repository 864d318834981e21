"""Check what a built collection tarball ships (make build-check).

Users install the tarball; it must not carry the sandbox, the tools that drive it, the tests
that need it, benchmarks, molecule scenarios or developer configuration, and it must carry what
the collection needs at run time and what the docs site, ansible-test sanity and
ansible-builder (meta/execution-environment.yml and the files it names) read.

    tools/tarball_check.py build/dist/gpuops-cluster-X.Y.Z.tar.gz
"""

from __future__ import annotations

import argparse
import fnmatch
import sys
import tarfile
from pathlib import Path

import yaml

# Never in the tarball (a path equal to one of these or under it).
FORBIDDEN = (
    "sandbox",
    "benchmarks",
    "molecule",
    "tools",
    "awx",
    "inventories/sandbox",
    "tests/unit",
    "tests/helpers",
    "tests/integration",
    "tests/output",
    "Makefile",
    "ansible.cfg",
    "ruff.toml",
    ".ansible-lint",
    ".yamllint",
    ".gitignore",
    ".ci",
    ".venv",
    ".sandbox",
    "build",
    "reports",
    "requirements-dev.txt",
    "requirements-floor.txt",
    "execution-environment.yml",
)
# Always in the tarball.
REQUIRED = (
    "MANIFEST.json",
    "FILES.json",
    "README.md",
    "LICENSE",
    "meta/runtime.yml",
    "meta/execution-environment.yml",
    "requirements.txt",
    "bindep.txt",
    "changelogs/changelog.yaml",
    "docs/quickstart.md",
    "playbooks/site.yml",
)
# Patterns that must match at least one member each.
REQUIRED_GLOBS = ("plugins/modules/*.py", "docs/roles/*.md", "roles/*/README.md")


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + "/")


def check(members: list[str], root: Path | None = None) -> list[str]:
    """Problems with a tarball holding `members` (paths relative to the collection root)."""
    names = {m.rstrip("/") for m in members if m.rstrip("/") not in ("", ".")}
    problems = []
    for name in sorted(names):
        for prefix in FORBIDDEN:
            if _under(name, prefix):
                problems.append(f"{name}: must not be shipped (under {prefix})")
                break
    for name in REQUIRED:
        if name not in names:
            problems.append(f"{name}: missing from the tarball")
    for pattern in REQUIRED_GLOBS:
        if not fnmatch.filter(names, pattern):
            problems.append(f"{pattern}: nothing matches in the tarball")
    # Every role carries its README (Galaxy refuses a role without one).
    roles = {n.split("/")[1] for n in names if n.startswith("roles/") and n.count("/") >= 2}
    for role in sorted(roles):
        if f"roles/{role}/README.md" not in names:
            problems.append(f"roles/{role}/README.md: missing (run `make role-readmes`)")
    # The files meta/execution-environment.yml names are shipped with it.
    if root is not None and (root / "meta" / "execution-environment.yml").is_file():
        ee = yaml.safe_load((root / "meta" / "execution-environment.yml").read_text()) or {}
        for key in ("python", "system"):
            ref = (ee.get("dependencies") or {}).get(key)
            if isinstance(ref, str) and ref not in names:
                problems.append(f"{ref}: named by meta/execution-environment.yml ({key}) but not shipped")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tarball", type=Path)
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    args = parser.parse_args(argv)
    with tarfile.open(args.tarball) as tar:
        infos = tar.getmembers()
    members = [m.name[2:] if m.name.startswith("./") else m.name for m in infos]
    problems = check(members, args.root)
    for problem in problems:
        print(f"tarball-check: {problem}", file=sys.stderr)
    if problems:
        return 1
    files = sum(1 for m in infos if m.isfile())
    print(f"tarball-check: {args.tarball.name}: {len(members)} entries ({files} files) ship what they should")
    return 0


if __name__ == "__main__":
    sys.exit(main())
