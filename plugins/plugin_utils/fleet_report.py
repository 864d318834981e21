# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fleet report: gpu_probe facts of many hosts folded into one stable summary.

Pure functions, no I/O. The report holds only what describes the fleet (identity, driver,
health verdicts, counts) and no telemetry or timestamps, so writing it again on an unchanged
fleet changes nothing and a re-run of site.yml stays changed=0.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

HEALTH_STATES = ("healthy", "degraded", "unhealthy", "unknown")


def _host_entry(name, groups, gpu_facts):
    if not gpu_facts:
        return {
            "name": name,
            "groups": sorted(groups),
            "probed": False,
            "source": None,
            "driver": None,
            "gpu_count": 0,
            "models": {},
            "memory_total_mib": 0,
            "health": {state: 0 for state in HEALTH_STATES},
            "mig_capable": 0,
            "mig_enabled": 0,
            "nvswitch_count": 0,
            "nvml_reason": None,
            "problems": [
                {
                    "gpu": None,
                    "status": "unknown",
                    "reasons": ["no gpu facts: the probe failed or the host was unreachable"],
                }
            ],
        }
    summary = gpu_facts.get("summary") or {}
    driver = gpu_facts.get("driver") or {}
    problems = []
    for gpu in gpu_facts.get("gpus") or []:
        health = gpu.get("health") or {}
        status = health.get("status", "unknown")
        # PCI-only hosts are 'unknown' by construction; the host line already says why.
        if status in ("healthy",) or (status == "unknown" and gpu_facts.get("source") == "pci"):
            continue
        problems.append(
            {
                "gpu": gpu.get("index"),
                "pci_bus_id": (gpu.get("pci") or {}).get("bus_id"),
                "name": gpu.get("name"),
                "status": status,
                "reasons": list(health.get("reasons") or []),
            }
        )
    return {
        "name": name,
        "groups": sorted(groups),
        "probed": True,
        "source": gpu_facts.get("source"),
        "driver": {
            "state": driver.get("state"),
            "version": driver.get("version"),
            "kernel_module": driver.get("kernel_module"),
            "cuda_driver_version": driver.get("cuda_driver_version"),
        },
        "gpu_count": int(summary.get("count") or 0),
        "models": dict(sorted((summary.get("models") or {}).items())),
        "memory_total_mib": int(summary.get("memory_total_mib") or 0),
        "health": {state: int(summary.get(state) or 0) for state in HEALTH_STATES},
        "mig_capable": int(summary.get("mig_capable") or 0),
        "mig_enabled": int(summary.get("mig_enabled") or 0),
        "nvswitch_count": len(gpu_facts.get("nvswitches") or []),
        "nvml_reason": ((driver.get("nvml") or {}).get("reason")),
        "problems": problems,
    }


def build_fleet_report(hosts):
    """Fold per-host gpu facts into a fleet report.

    hosts: iterable of dicts {"name": str, "groups": [str], "gpu": facts-or-None}.
    """
    entries = [_host_entry(h["name"], h.get("groups") or [], h.get("gpu")) for h in hosts]
    return _report(entries)


def _report(entries):
    """The report of host entries: sorted by name, with the fleet totals."""
    entries = sorted(entries, key=lambda e: e["name"])
    by_model = {}
    for entry in entries:
        for model, count in entry["models"].items():
            by_model[model] = by_model.get(model, 0) + count
    totals = {
        "hosts": len(entries),
        "hosts_probed": sum(1 for e in entries if e["probed"]),
        "hosts_with_gpus": sum(1 for e in entries if e["gpu_count"]),
        "gpus": sum(e["gpu_count"] for e in entries),
        "memory_total_mib": sum(e["memory_total_mib"] for e in entries),
        "by_model": dict(sorted(by_model.items())),
        "mig_capable": sum(e["mig_capable"] for e in entries),
        "mig_enabled": sum(e["mig_enabled"] for e in entries),
    }
    for state in HEALTH_STATES:
        totals[state] = sum(e["health"][state] for e in entries)
    return {"format": 1, "totals": totals, "hosts": entries}


def merge_fleet_reports(reports):
    """One fleet report from several (e.g. the slices of an AWX sliced job, each covering its
    own hosts): the host entries together, totals computed again. A host in more than one report
    must have the same entry in each; ValueError otherwise, or when an input is not a report."""
    entries = {}
    for index, report in enumerate(reports):
        if not isinstance(report, dict) or report.get("format") != 1 or not isinstance(report.get("hosts"), list):
            raise ValueError("report %d is not a fleet report (format 1 with a hosts list)" % index)
        for entry in report["hosts"]:
            name = entry.get("name") if isinstance(entry, dict) else None
            if not name:
                raise ValueError("report %d has a host entry without a name" % index)
            if name in entries and entries[name] != entry:
                raise ValueError("host %s differs between the reports" % name)
            entries[name] = entry
    return _report(list(entries.values()))


def _driver_cell(entry):
    driver = entry["driver"]
    if not driver:
        return "-"
    if driver["state"] == "loaded":
        return "%s %s" % (driver.get("version") or "?", driver.get("kernel_module") or "")
    return driver["state"] or "-"


def _models_cell(entry):
    if not entry["models"]:
        return "-"
    return ", ".join("%dx %s" % (count, model.replace("NVIDIA ", "")) for model, count in entry["models"].items())


def _gpu_label(problem):
    if problem.get("gpu") is None and not problem.get("pci_bus_id"):
        return "host"
    parts = []
    if problem.get("gpu") is not None:
        parts.append("GPU %s" % problem["gpu"])
    if problem.get("pci_bus_id"):
        parts.append("(%s)" % problem["pci_bus_id"] if parts else "PCI %s" % problem["pci_bus_id"])
    return " ".join(parts)


def render_fleet_table(report):
    """Human-readable table of a fleet report, followed by the problems found."""
    header = ("HOST", "SOURCE", "DRIVER", "GPUS", "MODELS", "MEM GiB", "HEALTHY", "MIG")
    rows = []
    for entry in report["hosts"]:
        health = entry["health"]
        healthy = "%d/%d" % (health["healthy"], entry["gpu_count"]) if entry["gpu_count"] else "-"
        mig = "%d/%d" % (entry["mig_enabled"], entry["mig_capable"]) if entry["mig_capable"] else "-"
        rows.append(
            (
                entry["name"],
                entry["source"] or "-",
                _driver_cell(entry).strip(),
                str(entry["gpu_count"]),
                _models_cell(entry),
                "%.0f" % (entry["memory_total_mib"] / 1024.0),
                healthy,
                mig,
            )
        )
    widths = [max(len(str(row[i])) for row in [header] + rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in [header] + rows]
    totals = report["totals"]
    lines.append("")
    lines.append(
        "%d hosts (%d with GPUs), %d GPUs, %.0f GiB GPU memory: %d healthy, %d degraded, "
        "%d unhealthy, %d unknown; MIG enabled on %d of %d capable GPUs."
        % (
            totals["hosts"],
            totals["hosts_with_gpus"],
            totals["gpus"],
            totals["memory_total_mib"] / 1024.0,
            totals["healthy"],
            totals["degraded"],
            totals["unhealthy"],
            totals["unknown"],
            totals["mig_enabled"],
            totals["mig_capable"],
        )
    )
    notes = []
    for entry in report["hosts"]:
        if entry["probed"] and entry["source"] == "pci" and entry["gpu_count"]:
            notes.append("%s: PCI only (%s)" % (entry["name"], entry["nvml_reason"] or "NVML unavailable"))
        for problem in entry["problems"]:
            where = _gpu_label(problem)
            notes.append(
                "%s %s: %s: %s"
                % (entry["name"], where, problem["status"], "; ".join(problem["reasons"]) or "no reason given")
            )
    if notes:
        lines.append("")
        lines.append("Problems and notes:")
        lines.extend("  - " + note for note in notes)
    return "\n".join(lines) + "\n"
