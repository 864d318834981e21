# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The cost report's renderings of a cost_snapshot result, on the controller: CSV rows, an HTML
page with matplotlib charts (inline SVG, no script), and Prometheus text-format metrics for a
node-exporter textfile collector or a pushgateway."""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import csv
import html
import io
import math
import re
from typing import Any, Dict, List, Mapping

CSV_COLUMNS = (
    "namespace",
    "pod",
    "node",
    "node_group",
    "gpu_kind",
    "gpu_requests",
    "gpu_hourly",
    "cpu_hourly",
    "memory_hourly",
    "hourly",
    "monthly",
    "gpu_activity",
    "gpu_unused_hourly",
)
_METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")


def pods_csv(snapshot: Mapping[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in snapshot.get("pods") or []:
        requests = ";".join("%s=%g" % (k, v) for k, v in sorted((row.get("gpu_requests") or {}).items()))
        values = dict(row, gpu_requests=requests, monthly=round(row["hourly"] * 730.0, 6))
        writer.writerow(["" if values.get(c) is None else _safe_cell(values.get(c)) for c in CSV_COLUMNS])
    return out.getvalue()


def _safe_cell(value: Any) -> Any:
    """No formula injection when the CSV is opened in a spreadsheet."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    return value


# ------------------------------------------------------------------ Prometheus text format


def _label_value(value: Any) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _sample(name: str, labels: Mapping[str, Any], value: float) -> str:
    if not _METRIC_NAME.match(name):
        raise ValueError("metric name %r" % name)
    inner = ",".join('%s="%s"' % (k, _label_value(v)) for k, v in sorted(labels.items()))
    return "%s{%s} %s" % (name, inner, repr(float(value)))


def metrics_text(snapshot: Mapping[str, Any], cluster: str, prefix: str = "cluster_cost") -> str:
    """Gauges of the snapshot's totals, idle, namespaces, node groups and savings."""
    base = {"cluster": cluster}
    families = []  # type: List[tuple]
    totals = snapshot["totals"]
    families.append(
        (
            "%s_usd" % prefix,
            "Hourly cost of the cluster's nodes in USD, by component.",
            [
                (dict(base, component=c), totals["%s_hourly" % c if c != "total" else "hourly"])
                for c in ("total", "gpu", "cpu", "memory")
            ],
        )
    )
    families.append(
        ("%s_usd_monthly" % prefix, "Monthly (730 h) cost of the cluster's nodes in USD.", [(base, totals["monthly"])])
    )
    families.append(
        ("%s_allocated_usd" % prefix, "Hourly cost requested by pods in USD.", [(base, totals["allocated_hourly"])])
    )
    idle = snapshot["idle"]
    families.append(
        (
            "%s_idle_usd" % prefix,
            "Hourly cost of idle capacity in USD, by resource and GPU kind.",
            [(dict(base, resource="gpu", kind=k), v) for k, v in sorted(idle["gpu_by_kind_hourly"].items())]
            + [(dict(base, resource=r, kind=""), idle["%s_hourly" % r]) for r in ("cpu", "memory")],
        )
    )
    families.append(
        (
            "%s_namespace_usd" % prefix,
            "Hourly cost per namespace in USD.",
            [(dict(base, namespace=n), row["hourly"]) for n, row in sorted(snapshot["by_namespace"].items())],
        )
    )
    families.append(
        (
            "%s_node_group_usd" % prefix,
            "Hourly cost per node group in USD.",
            [(dict(base, node_group=n), row["hourly"]) for n, row in sorted(snapshot["by_node_group"].items())],
        )
    )
    savings = {}  # type: Dict[str, float]
    for rec in snapshot.get("recommendations") or []:
        savings[rec["category"]] = savings.get(rec["category"], 0.0) + rec["savings_monthly"]
    families.append(
        (
            "%s_savings_usd_monthly" % prefix,
            "Projected monthly savings in USD, by recommendation category.",
            [(dict(base, category=c), v) for c, v in sorted(savings.items())],
        )
    )
    lines = []
    for name, help_text, samples in families:
        lines.append("# HELP %s %s" % (name, help_text))
        lines.append("# TYPE %s gauge" % name)
        lines.extend(_sample(name, labels, value) for labels, value in samples)
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ HTML with charts


def _svg(figure) -> str:
    import matplotlib

    out = io.StringIO()
    # The same numbers draw the same bytes: fixed id salt, no date (the role's second run changes nothing).
    with matplotlib.rc_context({"svg.hashsalt": "gpuops-cost"}):
        figure.savefig(out, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = out.getvalue()
    return text[text.index("<svg") :]


def _bar_chart(title: str, rows: Mapping[str, Mapping[str, float]], parts: List[tuple], xlabel: str) -> str:
    from matplotlib.figure import Figure

    names = list(rows)[:15]
    if not names:  # nothing to draw: no empty axes
        return ""
    figure = Figure(figsize=(7.5, 0.45 * max(len(names), 2) + 1.2))
    axes = figure.subplots()
    left = [0.0] * len(names)
    for key, label, color in parts:
        values = [rows[n].get(key, 0.0) for n in names]
        axes.barh(names, values, left=left, label=label, color=color)
        left = [a + b for a, b in zip(left, values)]
    axes.invert_yaxis()
    axes.set_xlabel(xlabel)
    axes.set_title(title)
    if len(parts) > 1:  # under the axes, where it covers no bar
        axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=len(parts), fontsize="small", frameon=False)
    return _svg(figure)


def _utilization_chart(pods: List[Mapping[str, Any]]) -> str:
    from matplotlib.figure import Figure

    measured = [p for p in pods if p.get("gpu_activity") is not None and p.get("gpu_hourly")]
    figure = Figure(figsize=(7.5, 4))
    axes = figure.subplots()
    axes.scatter(
        [p["gpu_activity"] * 100 for p in measured], [p["gpu_hourly"] * 730 for p in measured], color="#d62728"
    )
    # Pods at the same point (replicas of one deployment) get one label, not overprinted ones.
    points = {}  # type: Dict[tuple, List[str]]
    for p in measured:
        point = (round(p["gpu_activity"] * 100, 1), round(p["gpu_hourly"] * 730, 2))
        points.setdefault(point, []).append("%s/%s" % (p["namespace"], p["pod"]))
    for (x, y), names in sorted(points.items()):
        label = names[0] if len(names) == 1 else "%s and %d more" % (names[0], len(names) - 1)
        axes.annotate(label, (x, y), xytext=(4, 3), textcoords="offset points", fontsize="x-small")
    axes.set_xlim(0, 100)
    axes.set_xlabel("GPU activity over the window (%)")
    axes.set_ylabel("GPU cost ($/month)")
    axes.set_title("GPU utilization vs cost")
    return _svg(figure)


def _mig_chart(nodes: List[Mapping[str, Any]]) -> str:
    rows = {}
    for node in nodes:
        slices = node.get("mig_slices")
        if slices:
            rows[node["name"]] = {
                "allocated": slices["allocated"],
                "idle": slices["configured"] - slices["allocated"],
                "unpartitioned": slices["total"] - slices["configured"],
            }
    if not rows:
        return ""
    return _bar_chart(
        "MIG compute slices",
        rows,
        [
            ("allocated", "allocated", "#2ca02c"),
            ("idle", "in an instance, unused", "#ff7f0e"),
            ("unpartitioned", "in no instance / whole GPU", "#c7c7c7"),
        ],
        "compute slices",
    )


def _money(value: Any) -> str:
    return "—" if value is None else "$%s" % format(value, ",.2f")


def _table(headers: List[str], rows: List[List[Any]]) -> str:
    head = "".join("<th>%s</th>" % html.escape(h) for h in headers)
    body = "".join("<tr>%s</tr>" % "".join("<td>%s</td>" % html.escape(str(c)) for c in row) for row in rows)
    return "<table><thead><tr>%s</tr></thead><tbody>%s</tbody></table>" % (head, body)


def _monthly(rows: Mapping[str, Mapping[str, float]]) -> Dict[str, Dict[str, float]]:
    keys = ("gpu_hourly", "cpu_hourly", "memory_hourly", "hourly", "idle_gpu_hourly")
    return {name: {k: row.get(k, 0.0) * 730.0 for k in keys} for name, row in rows.items()}


def _value(value: Any) -> str:
    if isinstance(value, Mapping):
        return ", ".join("%s: %s" % (k, v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return str(value)


def change_text(action: Mapping[str, Any]) -> str:
    """One line a person can act on: the purchase (reserved), the role variable, the follow-up."""
    parts = []
    purchase = action.get("purchase")
    if purchase:
        upfront = purchase.get("upfront_total_usd") or 0
        parts.append(
            "Buy %d x %s %s (%s, %s, %s%s)"
            % (
                purchase["count"],
                purchase["instance_type"],
                purchase["kind"].replace("-", " "),
                purchase["term"],
                purchase["purchase_option"],
                purchase["offering_class"],
                ", %s upfront" % _money(upfront) if upfront else "",
            )
        )
    parts.append(
        "%s: %s = %s on node group %s"
        % (action["role"], action["variable"], _value(action["value"]), action.get("node_group"))
    )
    if action.get("then") and not purchase:
        parts.append("then " + action["then"])
    return "; ".join(parts)


def _pct(value: Any) -> str:
    return "%.0f%%" % (value * 100) if is_finite(value) else "?"


def evidence_text(rec: Mapping[str, Any]) -> str:
    """The evidence in a sentence, by category (the full evidence is in cost.json)."""
    ev = rec.get("evidence") or {}
    category = rec["category"]
    if category == "mig_rightsize":
        return "GPU activity %s on %s (%s), %.1f GiB framebuffer used" % (
            _pct(ev.get("gpu_activity")),
            ev.get("node"),
            ev.get("gpu_model"),
            ev.get("gpu_memory_used_gib") or 0.0,
        )
    if category == "sharing_replicas":
        return "mean activity %s per GPU with %s replicas on %s GPU(s)" % (
            _pct(ev.get("mean_activity_per_gpu")),
            ev.get("replicas"),
            ev.get("gpus"),
        )
    if category == "spot":
        return "; ".join(
            "%s: spot %s/h in %s vs on-demand %s/h (%s, as of %s)"
            % (
                n["node"],
                _money(n["spot_hourly"]),
                n.get("zone") or "any zone",
                _money(n["on_demand_hourly"]),
                n["source"],
                n["as_of"],
            )
            for n in ev.get("nodes") or []
        )
    if category == "consolidate":
        text = "0 of %s GPUs allocated, %s CPU cores requested" % (ev.get("gpu_count"), _num(ev.get("cpu_allocated")))
        if ev.get("energy_hourly") is not None:
            text += "; owned: energy %s/h of %s/h" % (
                _money(ev["energy_hourly"]),
                _money(ev["energy_hourly"] + ev.get("sunk_hourly", 0.0)),
            )
        return text
    if category == "reserved":
        steady = ev.get("steady_nodes") or []
        best = ev.get("commitment") or {}
        return (
            "%d of %s on-demand nodes up >= %s d and in use (%s); on-demand %s/h (%s); %s effective %s/h (%s, as of %s)"
            % (
                len(steady),
                ev.get("on_demand_nodes"),
                _num(ev.get("min_age_days")),
                ", ".join("%s %s d" % (n["node"], _num(n["age_days"])) for n in steady),
                _money(ev.get("on_demand_hourly")),
                ev.get("on_demand_source"),
                best.get("term"),
                _money(best.get("effective_hourly_usd")),
                best.get("source"),
                best.get("as_of"),
            )
        )
    return ""


def _num(value: Any) -> str:
    return ("%g" % value) if is_finite(value) else "?"


def report_html(snapshot: Mapping[str, Any], title: str = "GPU cluster cost") -> str:
    import matplotlib

    matplotlib.use("Agg")
    totals = snapshot["totals"]
    idle = snapshot["idle"]
    monthly = _monthly
    split = [("gpu_hourly", "GPU", "#1f77b4"), ("cpu_hourly", "CPU", "#9467bd"), ("memory_hourly", "memory", "#8c564b")]
    charts = [_bar_chart("Cost by namespace ($/month)", monthly(snapshot["by_namespace"]), split, "$/month")]
    for key, groups in sorted((snapshot.get("by_label") or {}).items()):
        charts.append(_bar_chart("Cost by %s ($/month)" % key, monthly(groups), split, "$/month"))
    charts.append(
        _bar_chart(
            "Idle GPU cost by pool ($/month)",
            monthly(snapshot["by_node_group"]),
            [("idle_gpu_hourly", "idle GPU", "#ff7f0e")],
            "$/month",
        )
    )
    if any(p.get("gpu_activity") is not None for p in snapshot.get("pods") or []):
        charts.append(_utilization_chart(snapshot["pods"]))
    mig = _mig_chart(snapshot.get("nodes") or [])
    if mig:
        charts.append(mig)
    recs = snapshot.get("recommendations") or []
    rec_rows = [
        [
            r["category"] + (" (or %s)" % ", ".join(r["alternatives"]) if r.get("alternatives") else ""),
            r["subject"],
            _money(r["current_monthly"]),
            _money(r["projected_monthly"]),
            _money(r["savings_monthly"]),
            r["effort"],
            change_text(r["action"]),
            evidence_text(r),
        ]
        for r in recs
    ]
    compare = (snapshot.get("opencost_comparison") or {}).get("pods") or []
    compare_rows = [
        [
            "%s/%s" % (c["namespace"], c["pod"]),
            _money(c["ours_gpu_hourly"] * 730),
            _money(c["opencost_gpu_hourly"] * 730),
            "same" if c["equal"] else c["reason"],
        ]
        for c in compare
    ]
    summary = [
        ["Total", _money(totals["monthly"])],
        ["GPU", _money(totals["gpu_hourly"] * 730)],
        ["CPU", _money(totals["cpu_hourly"] * 730)],
        ["Memory", _money(totals["memory_hourly"] * 730)],
        ["Requested by pods", _money(totals["allocated_hourly"] * 730)],
        ["Idle GPU", _money(idle["gpu_hourly"] * 730)],
    ]
    if idle.get("gpu_allocated_unused_hourly") is not None:
        summary.append(["GPU allocated but unused", _money(idle["gpu_allocated_unused_hourly"] * 730)])
    if snapshot.get("savings_monthly_total") is not None:
        summary.append(["Savings found (alternatives counted once)", _money(snapshot["savings_monthly_total"])])
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>%s</title>" % html.escape(title),
        "<style>body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}th{background:#f0f0f0}"
        ".charts svg{max-width:100%;height:auto;display:block;margin:1em 0}</style></head><body>",
        "<h1>%s</h1><p>%s%d nodes, %d GPUs, %d pods holding resources. Monthly = 730 h.</p>"
        % (
            html.escape(title),
            "Snapshot of %s: " % html.escape(str(snapshot["generated_at"])) if snapshot.get("generated_at") else "",
            snapshot["counts"]["nodes"],
            snapshot["counts"]["gpus"],
            snapshot["counts"]["pods"],
        ),
        "<h2>Summary ($/month)</h2>",
        _table(["", "$/month"], summary),
        "<h2>Recommendations</h2>",
        _table(["Category", "Subject", "Now", "Then", "Saves", "Effort", "Change", "Evidence"], rec_rows)
        if rec_rows
        else "<p>None.</p>",
        "" if snapshot["by_namespace"] else "<p>No pod holds resources: there is no cost by namespace or label.</p>",
        "<div class='charts'>%s</div>" % "".join(charts),
        "<h2>Beside OpenCost's GPU formula ($/month of GPU)</h2>",
        _table(["Pod", "Ours", "OpenCost", "Why they differ"], compare_rows) if compare_rows else "<p>No GPU pods.</p>",
        "<h2>Price sources</h2><ul>%s</ul>"
        % "".join("<li>%s</li>" % html.escape(s) for s in snapshot.get("price_sources") or []),
        "</body></html>",
    ]
    return "\n".join(parts)


def is_finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)
