"""The cost_report role against the stand-in through ansible-playbook: every file written, the
metrics textfile parses, set_stats published; a second run changes nothing."""

# Fixtures are imported (a conftest.py here would shadow `from conftest import` elsewhere), so
# test arguments named after them look like redefinitions to ruff.
# ruff: noqa: F811

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from cost_standin import REPO, standin  # noqa: F401  pylint: disable=unused-import

PRICES = {
    "as_of": "2026-11-15",
    "source": "role test sheet",
    "instance_types": {
        "p4d.24xlarge": {"on_demand_hourly": 32.7726, "spot_hourly": 9.8318},
        "m5.xlarge": {"on_demand_hourly": 0.192},
    },
    "node_groups": {"onprem-a100": {"hourly": 6.0, "gpu_hourly": 2.0}, "inference": {"hourly": 4.0, "gpu_hourly": 2.5}},
}


def run_role(tmp_path, standin):
    playbook = tmp_path / "play.yml"
    playbook.write_text(
        textwrap.dedent(f"""\
        - hosts: localhost
          gather_facts: false
          vars:
            gpuops_kubeconfig: {standin.kubeconfig}
            gpuops_reports_dir: {tmp_path / "reports"}
            cost_report_price_file: {tmp_path / "prices.json"}
            cost_report_textfile_dir: {tmp_path / "textfile"}
            cost_report_cluster_name: role-test
            cost_report_interruption_tolerant_groups: [train]
            cost_report_label_keys: [team]
          roles:
            - gpuops.cluster.cost_report
        """)
    )
    env = dict(
        os.environ,
        ANSIBLE_COLLECTIONS_PATH=str(REPO / "build" / "collections"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_PYTHON_INTERPRETER=sys.executable,
        ANSIBLE_SHOW_CUSTOM_STATS="1",
    )
    env.pop("KUBECONFIG", None)
    run = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(playbook)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-5000:] + run.stderr[-2000:]
    return run.stdout


def test_role_writes_reports_and_is_idempotent(standin, tmp_path):
    from prometheus_client.parser import text_string_to_metric_families

    (tmp_path / "prices.json").write_text(json.dumps(PRICES))
    (tmp_path / "textfile").mkdir()
    first = run_role(tmp_path, standin)
    reports = tmp_path / "reports" / "cost"
    for name in ("cost.json", "cost.csv", "cost.html", "opencost-pricing.csv"):
        assert (reports / name).is_file(), name
    report = json.loads((reports / "cost.json").read_text())
    assert "generated_at" not in report
    assert report["by_node_group"]["onprem-a100"]["hourly"] == 6.0
    text = (tmp_path / "textfile" / "cluster_cost.prom").read_text()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    (total,) = [s for s in families["cluster_cost_usd"].samples if s.labels["component"] == "total"]
    assert total.labels["cluster"] == "role-test" and abs(total.value - report["totals"]["hourly"]) < 1e-6
    assert "Cluster cost: $" in first and "gpuops_cost_report" in first
    second = run_role(tmp_path, standin)
    assert "changed=0" in second, second[-3000:]
