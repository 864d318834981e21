#!/usr/bin/env bash
# `make lint`: every linter runs even when an earlier one fails; exit 1 if any failed.
set -uo pipefail

PY_DIRS=()
for d in plugins sandbox tests benchmarks tools; do
    [ -d "$d" ] && PY_DIRS+=("$d")
done

failed=()
step() {
    local name=$1
    shift
    echo "== $name"
    if ! "$@"; then
        failed+=("$name")
    fi
}

step ansible-lint ansible-lint --offline
step yamllint yamllint --strict .
step "ruff check" ruff check "${PY_DIRS[@]}"
step "ruff format --check" ruff format --check "${PY_DIRS[@]}"
step "antsibull-changelog lint" antsibull-changelog lint
# Module, plugin and role docs as the docs site renders them (needs the collection link that
# `make collection` keeps, found through ANSIBLE_COLLECTIONS_PATH).
# The linter copies the collection and its dependencies (kubernetes.core, from the venv) to a
# temporary tree; a source inside a git work tree is copied as git tracks it, which is nothing for
# the venv's collections (.venv is ignored): the ceiling keeps git from finding our repository
# above them.
GIT_CEILING_DIRECTORIES=$(pwd)
export GIT_CEILING_DIRECTORIES
step "antsibull-docs lint-collection-docs" antsibull-docs lint-collection-docs --plugin-docs \
    "${ANSIBLE_COLLECTIONS_PATH:-build/collections}/ansible_collections/gpuops/cluster"

if [ "${#failed[@]}" -gt 0 ]; then
    echo "lint: FAILED: ${failed[*]}"
    exit 1
fi
echo "lint: all linters passed"
