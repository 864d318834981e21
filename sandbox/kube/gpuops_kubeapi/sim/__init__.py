"""Simulated cluster: the fleet's Nodes bound to simulated GPUs, and in-process controllers
(gpu-operator, mig-manager, device-plugin, scheduler, olm) that react to store changes and
write through the same API code paths clients use."""
