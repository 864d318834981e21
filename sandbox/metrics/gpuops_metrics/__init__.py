"""The sandbox's metrics plane: a real Prometheus (Debian's package) started and stopped by PID,
and (sandbox/metrics/gpuops_metrics/exporter.py, when built) a DCGM-exporter-shaped endpoint
served from the NVML simulator."""
