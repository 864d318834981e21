# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one NVML access layer of the collection (gpu_probe, mig_partition, the MIG boot launcher).

- ``bindings``: loading nvidia-ml-py, error codes and texts, the nvmlInit/nvmlShutdown session;
- ``device``: the call policy (``Caller``): strict for planning and applying (a failed call
  raises ``NvmlCallError`` naming the GPU, the call and the error), tolerant for facts (the
  error is recorded under the field being read and the read goes on);
- ``mig_state``: MIG mode, profiles, GPU/compute instances, MIG devices and processes of one GPU,
  read through a Caller (so the same reader serves facts and changes);
- ``facts``: the read-only GPU facts of gpu_probe.
"""
