#!/usr/bin/env bash
# Run pytest on one test directory. A directory without tests (pytest exit code 5, "no tests
# collected") passes with a note; every other failure is reported as it is.
# Tests run in PYTEST_WORKERS processes (pytest-xdist; default: one per CPU, at least 2: the
# integration tests mostly wait on playbooks and containers), a test file per worker so that
# module-scoped fleets and stand-ins are started once.
set -euo pipefail

dir=$1
shift
if [ ! -d "$dir" ]; then
    echo "pytest: $dir does not exist: nothing to run"
    exit 0
fi
rc=0
workers=${PYTEST_WORKERS:-$(( $(nproc) > 2 ? $(nproc) : 2 ))}
.venv/bin/python -m pytest -n "$workers" --dist loadfile --durations=15 "$dir" "$@" || rc=$?
if [ "$rc" -eq 5 ]; then
    echo "pytest: no tests collected in $dir (yet): nothing to run"
    exit 0
fi
exit "$rc"
