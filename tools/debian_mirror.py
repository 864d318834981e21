"""Print the Debian mirror URI this machine's apt sources use for a suite.

Reads deb822 files (/etc/apt/sources.list.d/*.sources) and one-line files
(/etc/apt/sources.list, /etc/apt/sources.list.d/*.list). The first "deb" entry whose
suites include the requested suite (default bookworm) wins. DEBIAN_MIRROR in the
environment overrides everything. Exits 1 when nothing is found.
"""

from __future__ import annotations

import glob
import os
import sys

APT_DIR = os.environ.get("APT_SOURCES_DIR", "/etc/apt")


def deb822_entries(path):
    record = {}
    key = None
    with open(path, encoding="utf-8") as handle:
        lines = handle.read().splitlines() + [""]
    for line in lines:
        if not line.strip():
            if record:
                yield record
            record, key = {}, None
            continue
        if line.lstrip().startswith("#"):
            continue
        if line[0] in " \t" and key:
            record[key] += " " + line.strip()
            continue
        if ":" in line:
            key, value = line.split(":", 1)
            key = key.strip().lower()
            record[key] = value.strip()
    # trailing record handled by the appended blank line


def one_line_entries(path):
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            words = line.split()
            if words[0] != "deb":
                continue
            words = words[1:]
            if words and words[0].startswith("["):
                while words and not words[0].endswith("]"):
                    words = words[1:]
                words = words[1:]
            if len(words) >= 2:
                yield {"types": "deb", "uris": words[0], "suites": words[1]}


def find(suite):
    entries = []
    for path in sorted(glob.glob(os.path.join(APT_DIR, "sources.list.d", "*.sources"))):
        entries.extend(deb822_entries(path))
    for path in [os.path.join(APT_DIR, "sources.list")] + sorted(
        glob.glob(os.path.join(APT_DIR, "sources.list.d", "*.list"))
    ):
        if os.path.isfile(path):
            entries.extend(one_line_entries(path))
    for entry in entries:
        if entry.get("enabled", "yes").lower() == "no":
            continue
        if "deb" not in entry.get("types", "").split():
            continue
        if suite in entry.get("suites", "").split():
            uris = entry.get("uris", "").split()
            if uris:
                return uris[0].rstrip("/")
    return None


def main():
    if os.environ.get("DEBIAN_MIRROR"):
        print(os.environ["DEBIAN_MIRROR"].rstrip("/"))
        return 0
    suite = sys.argv[1] if len(sys.argv) > 1 else "bookworm"
    uri = find(suite)
    if not uri:
        print(
            f"debian_mirror: no 'deb' source for suite {suite} in {APT_DIR}; set DEBIAN_MIRROR",
            file=sys.stderr,
        )
        return 1
    print(uri)
    return 0


if __name__ == "__main__":
    sys.exit(main())
