"""Workload scripts run under `torchrun` by preflight's workload checks.

Each is a standalone module (`python -m torch.distributed.run ... -m
preflight.workloads.<name>`): it imports torch itself, never pytest or the plugin,
and every rank writes its result as JSON for the check to read.
"""
