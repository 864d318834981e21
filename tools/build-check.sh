#!/usr/bin/env bash
# Build the collection, install the tarball into a temporary collections path, and render the
# documentation of every module (plugins/modules/*.py) and of every role with
# meta/argument_specs.yml from that install. Fails if any does not render.
set -euo pipefail

ROOT=$(pwd)
BIN="$ROOT/.venv/bin"
DIST=build/dist
NS=$(awk '$1 == "namespace:" {print $2}' galaxy.yml)
NAME=$(awk '$1 == "name:" {print $2; exit}' galaxy.yml)
VERSION=$(awk '$1 == "version:" {print $2}' galaxy.yml)

# Role READMEs are generated from docs/roles/<role>.md: stale or missing ones fail here.
"$BIN/python" tools/role_readmes.py --check

rm -rf "$DIST"
mkdir -p "$DIST"
"$BIN/ansible-galaxy" collection build --force --output-path "$DIST" .
tarball="$DIST/$NS-$NAME-$VERSION.tar.gz"
test -f "$tarball"

# What users install: nothing of the sandbox, tools or dev configs; everything the docs site,
# sanity and the execution environment need.
"$BIN/python" tools/tarball_check.py "$tarball"

# The execution environment's build context (ansible-builder create, offline) and its contents:
# collections, Python and system requirements, the helm step.
"$BIN/python" tools/ee.py context

# Galaxy's and Automation Hub's own upload checker (galaxy-importer: content, docs through
# ansible-doc, ansible-lint on the collection, changelog), offline. Any WARNING or ERROR line fails.
gi_dir=$(mktemp -d)
start=$SECONDS
if (cd "$gi_dir" && PATH="$BIN:$PATH" GALAXY_IMPORTER_CONFIG="$ROOT/tools/galaxy-importer.cfg" \
        "$BIN/python" -m galaxy_importer.main "$ROOT/$tarball" >"$gi_dir/import.log" 2>&1) \
    && grep -q '^Importer processing completed successfully' "$gi_dir/import.log" \
    && ! grep -qE '^(WARNING|ERROR)|: (WARNING|ERROR)' "$gi_dir/import.log"; then
    echo "build-check: galaxy-importer passed in $((SECONDS - start)) s (no warnings)"
    rm -rf "$gi_dir"
else
    echo "build-check: galaxy-importer FAILED after $((SECONDS - start)) s:" >&2
    grep -v '^Loading ' "$gi_dir/import.log" >&2
    rm -rf "$gi_dir"
    exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Only the temporary install (and the collections the ansible package bundles) is visible from
# here on: no ansible.cfg, no build/collections link, so the checkout cannot stand in for the
# tarball.
export ANSIBLE_CONFIG="$tmp/ansible.cfg"
: >"$ANSIBLE_CONFIG"
export ANSIBLE_COLLECTIONS_PATH="$tmp/collections"
"$BIN/ansible-galaxy" collection install --offline --no-deps --force -p "$tmp/collections" "$ROOT/$tarball" >/dev/null
installed="$tmp/collections/ansible_collections/$NS/$NAME"
test -f "$installed/MANIFEST.json"
echo "build-check: $tarball ($(du -h "$tarball" | cut -f1)) installed to a temporary path"

cd "$tmp"

failures=0
checked=0
render() {
    local kind=$1 fqcn=$2 out err
    out="$tmp/doc.out"
    err="$tmp/doc.err"
    checked=$((checked + 1))
    if "$BIN/ansible-doc" -t "$kind" "$fqcn" >"$out" 2>"$err" && [ -s "$out" ] \
        && ! grep -qE '\[(ERROR|WARNING)\]' "$err" \
        && "$BIN/ansible-doc" -t "$kind" --json "$fqcn" 2>/dev/null \
            | "$BIN/python" -c 'import json,sys; d=json.load(sys.stdin); k=sys.argv[1]; assert d.get(k, {}).get("doc") or d.get(k, {}).get("entry_points"), k' "$fqcn" 2>/dev/null; then
        echo "  ok    $kind $fqcn"
    else
        echo "  FAIL  $kind $fqcn"
        sed 's/^/        /' "$err" | head -n 20
        failures=$((failures + 1))
    fi
}

shopt -s nullglob
for f in "$installed"/plugins/modules/*.py; do
    mod=$(basename "$f" .py)
    [ "$mod" = __init__ ] && continue
    render module "$NS.$NAME.$mod"
done
for spec in "$installed"/roles/*/meta/argument_specs.yml "$installed"/roles/*/meta/argument_specs.yaml; do
    role=$(basename "$(dirname "$(dirname "$spec")")")
    render role "$NS.$NAME.$role"
done

# Everything in the checkout must have made it into the tarball.
cd "$ROOT"
for f in plugins/modules/*.py roles/*/meta/argument_specs.yml; do
    [ -e "$installed/$f" ] || { echo "  FAIL  $f missing from the tarball"; failures=$((failures + 1)); }
done

echo "build-check: $checked documented plugins/roles rendered, $failures failed"
[ "$failures" -eq 0 ]
