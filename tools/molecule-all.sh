#!/usr/bin/env bash
# Run `molecule test -s NAME` for every scenario under molecule/ (each folder with a
# molecule.yml). Runs them all, then fails if any failed.
set -euo pipefail

shopt -s nullglob
scenarios=()
for f in molecule/*/molecule.yml; do
    scenarios+=("$(basename "$(dirname "$f")")")
done
if [ "${#scenarios[@]}" -eq 0 ]; then
    echo "molecule: no scenarios under molecule/"
    exit 0
fi

failed=()
for s in "${scenarios[@]}"; do
    echo "== molecule test -s $s"
    start=$SECONDS
    if molecule test -s "$s"; then
        echo "molecule: $s passed in $((SECONDS - start)) s"
    else
        echo "molecule: $s FAILED after $((SECONDS - start)) s"
        failed+=("$s")
    fi
done
if [ "${#failed[@]}" -gt 0 ]; then
    echo "molecule: failed scenarios: ${failed[*]}"
    exit 1
fi
echo "molecule: all ${#scenarios[@]} scenario(s) passed"
