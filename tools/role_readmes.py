"""Role README.md files, generated from docs/roles/<role>.md (the one source of truth).

Galaxy and Automation Hub refuse a collection whose roles have no README. The role reference is
written once, in docs/roles/<role>.md (what the docs site and the repository README link to);
every roles/<role>/README.md is generated from it by this tool, with relative links rewritten so
they still point at the same files from the role's folder, under a header that says where to
edit.

    tools/role_readmes.py            write every roles/<role>/README.md (make role-readmes)
    tools/role_readmes.py --check    exit 1 naming each README that is missing or stale, and each
                                     role without docs/roles/<role>.md (make build-check runs it)

A new role therefore needs only docs/roles/<role>.md; `make role-readmes` does the rest.
"""

from __future__ import annotations

import argparse
import posixpath
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEADER = (
    "<!-- Generated from docs/roles/{role}.md by tools/role_readmes.py (make role-readmes).\n"
    "     Edit that file, not this one: make build-check fails while this copy is stale. -->\n\n"
)
# Markdown inline links and images: [text](target "title") / ![alt](target).
LINK = re.compile(r"(!?\[[^\]]*\]\()([^)\s]+)((?:\s+\"[^\"]*\")?\))")
# Reference-style definitions: [label]: target
REF = re.compile(r"^(\s{0,3}\[[^\]]+\]:\s*)(\S+)(.*)$", re.MULTILINE)


def roles(root: Path) -> list[str]:
    """Every role of the collection: a folder under roles/ with tasks/ or meta/."""
    base = root / "roles"
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir() if p.is_dir() and ((p / "tasks").is_dir() or (p / "meta").is_dir()))


def _is_relative(target: str) -> bool:
    return not (
        target.startswith(("#", "/", "mailto:")) or re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", target) is not None
    )


def rewrite_target(target: str, source_dir: str, dest_dir: str) -> str:
    """A link written in source_dir (repo-relative, posix) re-expressed from dest_dir."""
    if not _is_relative(target):
        return target
    path, sep, fragment = target.partition("#")
    if not path:
        return target
    resolved = posixpath.normpath(posixpath.join(source_dir, path))
    return posixpath.relpath(resolved, dest_dir) + (sep + fragment if sep else "")


def render(role: str, source_text: str) -> str:
    source_dir, dest_dir = "docs/roles", f"roles/{role}"
    body = LINK.sub(lambda m: m.group(1) + rewrite_target(m.group(2), source_dir, dest_dir) + m.group(3), source_text)
    body = REF.sub(lambda m: m.group(1) + rewrite_target(m.group(2), source_dir, dest_dir) + m.group(3), body)
    if not body.endswith("\n"):
        body += "\n"
    return HEADER.format(role=role) + body


def plan(root: Path) -> tuple[dict[Path, str], list[str]]:
    """(README path -> wanted content, problems)."""
    wanted, problems = {}, []
    for role in roles(root):
        source = root / "docs" / "roles" / f"{role}.md"
        if not source.is_file():
            problems.append(f"roles/{role} has no docs/roles/{role}.md (its README.md is generated from it)")
            continue
        wanted[root / "roles" / role / "README.md"] = render(role, source.read_text(encoding="utf-8"))
    return wanted, problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 when a README is stale")
    parser.add_argument("--root", type=Path, default=ROOT, help="collection root (default: this checkout)")
    args = parser.parse_args(argv)

    wanted, problems = plan(args.root)
    stale = [path for path, text in wanted.items() if not path.is_file() or path.read_text(encoding="utf-8") != text]
    for message in problems:
        print(f"role-readmes: {message}", file=sys.stderr)
    if args.check:
        for path in stale:
            state = "stale" if path.is_file() else "missing"
            print(f"role-readmes: {path.relative_to(args.root)} is {state}: run `make role-readmes`", file=sys.stderr)
        if not stale and not problems:
            print(f"role-readmes: {len(wanted)} role README.md files match docs/roles/")
        return 1 if stale or problems else 0
    for path in stale:
        path.write_text(wanted[path], encoding="utf-8")
        print(f"role-readmes: wrote {path.relative_to(args.root)}")
    if not stale:
        print(f"role-readmes: {len(wanted)} role README.md files already match docs/roles/")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
