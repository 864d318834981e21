"""NVML simulator for the gpuops.cluster sandbox (see sandbox/README.md)."""

__version__ = "1.0.0"
