"""The environment `cluster --ray` gives every node's preflight: the communication settings
(NCCL, gloo, torch.distributed) and the preflight settings of the shell it runs in.

A Ray task runs in its worker's environment, which is the node's raylet's (what `ray
start` had there), never the driver's: `NCCL_SOCKET_IFNAME=eth0 preflight cluster --ray`
judged every node without it, while the job launched from the same shell meant to run
with it (a job passes it the same way: its runtime_env `env_vars`). The node tasks get
them as Ray's runtime_env `env_vars`, set in the worker before it starts
(ray/_private/runtime_env/context.py RuntimeEnvContext.exec_worker -> update_envs), and
so in the node's preflight and in the sweep's torchrun and ranks, which inherit it.

Never a secret: a secret-named variable, or a value that holds a known secret (a
secret-named variable's value, a `.env` value, a token shape: the run's Scrubber), stays
on this machine. Nor a value with `$`: Ray passes each value through os.path.expandvars
on the node and drops an unset `${VAR}` (ray/_private/utils.py update_envs), so the node
would see another value. Only the names are printed and written.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from preflight.redact import Scrubber, is_secret_name

# What the job's collectives read: NCCL (NCCL_SOCKET_IFNAME, NCCL_IB_HCA, NCCL_DEBUG), gloo
# (GLOO_SOCKET_IFNAME), torch.distributed (TORCH_NCCL_*, TORCH_DISTRIBUTED_DEBUG; USE_LIBUV:
# the TCPStore backend), the allocator (PYTORCH_CUDA_ALLOC_CONF), UCX and NVSHMEM.
PREFIXES = ("NCCL_", "GLOO_", "TORCH_", "PYTORCH_", "UCX_", "NVSHMEM_")
NAMES = frozenset(("USE_LIBUV", "CUDA_DEVICE_MAX_CONNECTIONS"))
# The node run's own settings (plugin.SETTINGS' PREFLIGHT_* variables), as the options
# passed on are; not PREFLIGHT_REPORT_DIR: `cluster` names each node's report dir.
SETTINGS = frozenset(("PREFLIGHT_PROFILE", "PREFLIGHT_ENV_FILE", "PREFLIGHT_EXPECT_ENV",
                      "PREFLIGHT_NVML_REPLAY", "PREFLIGHT_LAUNCH_SCRIPT",
                      "PREFLIGHT_LAUNCH_CMD"))


@dataclass
class NodeEnv:
    """`env_vars` for the node tasks' runtime_env, and the variables left out, with why."""

    env_vars: dict[str, str] = field(default_factory=dict)
    left_out: dict[str, str] = field(default_factory=dict)

    def runtime_env(self) -> dict[str, dict[str, str]] | None:
        return {"env_vars": dict(self.env_vars)} if self.env_vars else None


def wanted(name: str) -> bool:
    return name.startswith(PREFIXES) or name in NAMES or name in SETTINGS


def env_file_path(node_args: list[str], environ: Mapping[str, str]) -> str | None:
    """The `.env` the nodes' preflight reads (--env-file, PREFLIGHT_ENV_FILE, ./.env)."""
    path = None
    for arg, following in zip(node_args, [*node_args[1:], ""], strict=False):
        if arg == "--env-file":
            path = following
        elif arg.startswith("--env-file="):
            path = arg.partition("=")[2]
    path = path or environ.get("PREFLIGHT_ENV_FILE") or None
    if path is None and Path(".env").is_file():
        path = ".env"
    return path


def scrubber_for(node_args: list[str], environ: Mapping[str, str]) -> Scrubber:
    """The secrets this run knows (as the node run's plugin collects them): secret-named
    variables' values and the `.env` values (an unreadable `.env`: the nodes say so)."""
    from preflight.probes import dotenv

    scrubber = Scrubber()
    scrubber.add_environ(environ)
    path = env_file_path(node_args, environ)
    if path is not None:
        try:
            scrubber.add_mapping(dotenv.read(path).values)
        except Exception:  # EnvFileError, OSError: every node's preflight names it
            pass
    return scrubber


def node_env(environ: Mapping[str, str], scrubber: Scrubber) -> NodeEnv:
    out = NodeEnv()
    for name in sorted(environ):
        if not wanted(name):
            continue
        value = environ[name]
        if is_secret_name(name):
            out.left_out[name] = "secret-named"
        elif scrubber.text(value) != value:
            out.left_out[name] = "its value is a secret or a `.env` value"
        elif "$" in value:
            out.left_out[name] = "Ray would expand the `$` in its value on the node"
        else:
            out.env_vars[name] = value
    return out


def for_nodes(node_args: list[str], environ: Mapping[str, str] | None = None) -> NodeEnv:
    environ = os.environ if environ is None else environ
    return node_env(environ, scrubber_for(node_args, environ))
