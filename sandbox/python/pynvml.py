"""Sandbox stand-in for nvidia-ml-py: `import pynvml` loads the NVML simulator.

Only on PYTHONPATH in the sandbox; real hosts import the real nvidia-ml-py.
"""

# The drop-in re-exports the whole API, so the wildcard is the point here.
from gpuops_sim.nvml import *  # noqa: F401,F403  # pylint: disable=wildcard-import,unused-wildcard-import
from gpuops_sim.nvml import __all__  # noqa: F401
