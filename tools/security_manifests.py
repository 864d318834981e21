# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Write every manifest the security_baseline role renders to a folder (one file per object).

Renders the role's defaults and, when given, extra variable files (YAML with
``security_baseline_*`` keys) through the same plugin_utils the role's filters call, so a
scanner (tools/checkov.sh) sees exactly what the role applies. Usage:
``security_manifests.py OUT_DIR [VARS.yml ...]``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
PREFIX = "security_baseline_"


def _import_plan():
    collections = REPO / "build" / "collections"
    if not (collections / "ansible_collections" / "gpuops" / "cluster").exists():
        sys.exit("build/collections missing: run `make collection` first")
    sys.path.insert(0, str(collections))
    from ansible_collections.gpuops.cluster.plugins.plugin_utils.security_baseline import plan_baseline

    return plan_baseline


def spec_from(variables: dict) -> dict:
    return {k[len(PREFIX) :]: v for k, v in variables.items() if k.startswith(PREFIX)}


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    out = Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    plan_baseline = _import_plan()
    defaults = yaml.safe_load((REPO / "roles" / "security_baseline" / "defaults" / "main.yml").read_text())
    sets = [("defaults", defaults)]
    for extra in argv[1:]:
        merged = dict(defaults)
        merged.update(yaml.safe_load(Path(extra).read_text()) or {})
        sets.append((Path(extra).stem, merged))
    count = 0
    for label, variables in sets:
        plan = plan_baseline(spec_from(variables))
        if plan["errors"]:
            print("%s: %s" % (label, plan["errors"]), file=sys.stderr)
            return 1
        for manifest in plan["manifests"]:
            meta = manifest["metadata"]
            name = "%s-%s-%s-%s.yaml" % (
                label,
                manifest["kind"].lower(),
                meta.get("namespace", "cluster"),
                meta["name"],
            )
            (out / name).write_text(yaml.safe_dump(manifest, sort_keys=False))
            count += 1
    print("%d manifests written to %s" % (count, out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
