# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The MIG package, one responsibility per file:

- ``catalog``: MIG geometry per GPU model, as data (and built from NVML for unknown models);
- ``planner``: layouts to placements, live state to the smallest change (pure);
- ``parted``: mig-parted v1 configs: parse, validate, resolve per GPU (pure);
- ``selection``: option validation, GPU selection, desired state per GPU (pure);
- ``state``: the live state read through the NVML layer, and its shapes;
- ``executor``: NVML changes on one GPU with a journal that rolls back;
- ``force``: stopping the processes on instances a layout destroys;
- ``reset``: the GPU reset runner;
- ``runner``: one mig_partition run (module and boot launcher).
"""
