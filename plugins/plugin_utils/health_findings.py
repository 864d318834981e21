# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Findings of playbooks/health_check.yml, from facts and objects it read. Pure functions.

A finding is ``{check, severity, subject, finding, fix}``; ``check`` is the anchor the monitoring
role's alerts link to (``runbook_url: playbooks/health_check.yml#<check>``).
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

SEVERITIES = ("critical", "warning", "info")


def finding(check, severity, subject, finding, fix):
    return {"check": check, "severity": severity, "subject": subject, "finding": finding, "fix": fix}


def gpu_findings(host, gpu):
    """GPU not detected / unhealthy, from one host's gpu_probe facts (ansible_facts.gpu)."""
    found = []
    driver = (gpu or {}).get("driver") or {}
    gpus = (gpu or {}).get("gpus") or []
    if not gpus:
        return found
    if driver.get("state") != "loaded":
        found.append(
            finding(
                "gpu-not-detected",
                "critical",
                host,
                "NVIDIA driver is %s (%d GPUs on the PCI bus)" % (driver.get("state") or "absent", len(gpus)),
                "Install or load the driver: gpuops.cluster.nvidia_driver (reboot if the module cannot load).",
            )
        )
        return found
    nvml = driver.get("nvml") or {}
    if not nvml.get("available", True):
        found.append(
            finding(
                "gpu-not-detected",
                "critical",
                host,
                "NVML unusable: %s" % (nvml.get("reason") or "unknown"),
                "Match the user-space libraries to the loaded kernel module (nvidia_driver role), then re-run.",
            )
        )
        return found
    for item in gpus:
        health = item.get("health") or {}
        status = health.get("status")
        if status in (None, "healthy"):
            continue
        pci = (item.get("pci") or {}).get("bus_id") or "?"
        subject = "%s GPU %s (%s)" % (host, item.get("index") if item.get("index") is not None else "?", pci)
        reasons = "; ".join(health.get("reasons") or []) or status
        lost = "lost" in reasons.lower() or "fallen off" in reasons.lower()
        severity = "warning" if status == "degraded" else "critical"
        fix = (
            "Drain the node, reset the GPU (nvidia-smi -r) or reboot; Xid 79 recurring means reseat or RMA."
            if lost
            else "Drain the node and check nvidia-smi -q (ECC, remapped rows, NVLink); RMA on row-remap failure."
        )
        found.append(finding("gpu-not-detected", severity, subject, "GPU %s: %s" % (status, reasons), fix))
    return found


def _conditions(obj):
    return {c.get("type"): c for c in ((obj.get("status") or {}).get("conditions") or [])}


def kube_findings(pods, nodes):
    """Pods pending / OOM-killed and nodes not Ready, from k8s_info resources."""
    found = []
    for node in nodes or []:
        name = (node.get("metadata") or {}).get("name")
        ready = _conditions(node).get("Ready") or {}
        if ready.get("status") != "True":
            found.append(
                finding(
                    "nodes-not-ready",
                    "critical",
                    "Node/%s" % name,
                    "Node not Ready: %s" % (ready.get("message") or ready.get("reason") or "no Ready condition"),
                    "Check the kubelet and the GPU Operator pods on the node; cordon and drain if it stays down.",
                )
            )
    for pod in pods or []:
        meta = pod.get("metadata") or {}
        subject = "Pod/%s/%s" % (meta.get("namespace"), meta.get("name"))
        status = pod.get("status") or {}
        scheduled = _conditions(pod).get("PodScheduled") or {}
        if status.get("phase") == "Pending" and scheduled.get("status") == "False":
            message = scheduled.get("message") or scheduled.get("reason") or "unschedulable"
            mig = "nvidia.com/mig-" in message
            found.append(
                finding(
                    "pods-pending",
                    "warning",
                    subject,
                    "Pending: %s" % message,
                    (
                        "The MIG profile asked for is not exposed by any node's layout: pick one the layouts "
                        "expose or change the layout (gpuops.cluster.mig)."
                        if mig
                        else "Compare the requests with the nodes' allocatable (nvidia.com/gpu), taints and "
                        "quotas; scale the GPU node group (Karpenter NodePool limits) if capacity is short."
                    ),
                )
            )
        for container in status.get("containerStatuses") or []:
            terminated = ((container.get("lastState") or {}).get("terminated")) or (
                (container.get("state") or {}).get("terminated") or {}
            )
            if terminated.get("reason") == "OOMKilled":
                found.append(
                    finding(
                        "oom",
                        "warning",
                        "%s container %s" % (subject, container.get("name")),
                        "OOMKilled (exit %s, %s restarts)"
                        % (terminated.get("exitCode"), container.get("restartCount", 0)),
                        "Raise the container's memory limit or reduce its batch size; GPU OOM shows in the logs as "
                        "CUDA out of memory (GpuMemoryNearlyFull alert).",
                    )
                )
    return found


def report(findings):
    """Findings sorted by severity and subject, with counts."""
    order = {name: i for i, name in enumerate(SEVERITIES)}
    ordered = sorted(findings, key=lambda f: (order.get(f["severity"], 9), f["check"], f["subject"]))
    counts = {name: sum(1 for f in ordered if f["severity"] == name) for name in SEVERITIES}
    return {"healthy": not ordered, "counts": counts, "findings": ordered}


def report_text(result):
    if result["healthy"]:
        return "health check: no findings\n"
    lines = ["health check: %s" % ", ".join("%d %s" % (n, s) for s, n in result["counts"].items() if n)]
    for f in result["findings"]:
        lines.append("[%s] %s %s: %s" % (f["severity"].upper(), f["check"], f["subject"], f["finding"]))
        lines.append("    fix: %s" % f["fix"])
    return "\n".join(lines) + "\n"
