"""Sandbox stand-in for nvidia-ml-py: `import pynvml` loads the NVML simulator.

Only on PYTHONPATH in the sandbox; real hosts import the real nvidia-ml-py.
"""

from gpuops_sim.nvml import *  # noqa: F401,F403
from gpuops_sim.nvml import __all__  # noqa: F401
