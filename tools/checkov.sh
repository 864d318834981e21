#!/usr/bin/env bash
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# Scan every manifest the security_baseline role renders with checkov: 0 failed checks outside
# tools/checkov/exceptions.yml. checkov lives in its own venv (build/checkov-venv) so its
# dependencies never touch .venv's pins; it runs offline (--skip-download).
set -euo pipefail
cd "$(dirname "$0")/.."
CHECKOV_VERSION=3.3.30
VENV=build/checkov-venv
OUT=build/checkov
PY=${PY:-.venv/bin/python}

if [ ! -x "$VENV/bin/checkov" ] || [ "$("$VENV/bin/checkov" --version 2>/dev/null)" != "$CHECKOV_VERSION" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "checkov==$CHECKOV_VERSION"
fi
rm -rf "$OUT"
mkdir -p "$OUT/manifests"
"$PY" tools/security_manifests.py "$OUT/manifests" tools/checkov/security_baseline_bindings.yml
set +e
"$VENV/bin/checkov" --directory "$OUT/manifests" --framework kubernetes --skip-download \
    --output json > "$OUT/results.json" 2> "$OUT/stderr.log"
status=$?
set -e
if [ $status -gt 1 ]; then
    echo "checkov failed to run (exit $status):" >&2
    tail -20 "$OUT/stderr.log" >&2
    exit $status
fi
"$PY" - "$OUT/results.json" tools/checkov/exceptions.yml <<'PYEOF'
import json
import sys

import yaml

results = json.load(open(sys.argv[1]))
if isinstance(results, dict):
    results = [results]
accepted = {(e["check"], e["resource"]) for e in yaml.safe_load(open(sys.argv[2]))}
failed, excepted, passed = [], 0, 0
for report in results:
    checks = report.get("results") or {}
    passed += len(checks.get("passed_checks") or [])
    for check in checks.get("failed_checks") or []:
        if (check["check_id"], check["resource"]) in accepted:
            excepted += 1
        else:
            failed.append("%s %s (%s): %s" % (check["check_id"], check["resource"], check["file_path"], check["check_name"]))
print("checkov: %d passed, %d failed, %d accepted by tools/checkov/exceptions.yml" % (passed, len(failed), excepted))
for line in failed:
    print("  FAILED " + line)
sys.exit(1 if failed else 0)
PYEOF
