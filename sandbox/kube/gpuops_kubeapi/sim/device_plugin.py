"""Simulated NVIDIA device plugin sharing (time-slicing and MPS).

The device plugin's resources and GFD's labels are published in one pass by the gpu-operator
controller (see nodestate.py); this controller switches the sharing part on: with it, the
ConfigMap named by ClusterPolicy `spec.devicePlugin.config.name` (in the operator namespace)
is read, the entry chosen by the node label `nvidia.com/device-plugin.config`, else
`spec.devicePlugin.config.default`, else the only entry, and a v1 config with
`sharing.timeSlicing.resources[{name, replicas, rename}]` (or `sharing.mps`) multiplies that
resource's count (`renameByDefault: true` advertises it as `<name>.shared` instead and keeps
the product label; otherwise GFD's product label gets `-SHARED`), with the labels
`nvidia.com/gpu.replicas` and `nvidia.com/gpu.sharing-strategy` (time-slicing | mps | none).
`flags.migStrategy` in the config overrides the ClusterPolicy's MIG strategy, as upstream.
A config that cannot be used (ConfigMap or entry missing, not v1) keeps the ClusterPolicy
notReady with the reason. `failRequestsGreaterThanOne` is stored, not enforced.
The device IDs pods get (GPU and MIG UUIDs, `<UUID>::<n>` replicas) are assigned by the
kubelet's device manager (podresources.py) from what this pass advertises.

Without the gpu-operator controller nothing is published (the plugin is an operand of the
operator).
"""

from __future__ import annotations

from .runner import Controller


class DevicePlugin(Controller):
    name = "device-plugin"

    def reconcile(self) -> None:
        """Nothing of its own: the gpu-operator pass reads `options["controllers"]`."""
        return None
