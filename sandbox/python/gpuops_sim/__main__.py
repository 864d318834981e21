"""`python -m gpuops_sim ...`: see gpuops_sim.cli."""

import sys

from gpuops_sim.cli import main

sys.exit(main())
