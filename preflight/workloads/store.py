"""Create the rendezvous stores the way torchrun and its workers do; print one JSON line.

Two TCPStores, each on a port found by binding, each reading USE_LIBUV as torch does:
  agent   torch/distributed/elastic/utils/distributed.py `create_c10d_store` (the
          launcher's store: `use_libuv = os.environ.get("USE_LIBUV", "1") == "1"`)
  worker  torch/distributed/rendezvous.py env:// -> `_create_c10d_store` (what a rank's
          init_process_group does when TORCHELASTIC_USE_AGENT_STORE is not True)
A torch built without libuv raises "use_libuv was requested but PyTorch was build
without libuv support" from either (a hand-built torch); USE_LIBUV=0 selects the legacy store.

PREFLIGHT_TEST_NO_LIBUV=1 (test-only) makes TCPStore behave like such a build, for
boxes whose torch has libuv.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import timedelta
from typing import Any

from preflight.probes.ports import free_port

# The exact text as users report it from torch releases with the "build" typo (newer
# releases say "built"; the check matches both).
NO_LIBUV_TEXT = ("use_libuv was requested but PyTorch was build without libuv support, "
                 "run with USE_LIBUV=0 to disable it.")


# torch / dist: the modules the process imported, passed in (`Any`, see train.py).


def plant_missing_libuv(dist: Any) -> None:
    """Make TCPStore refuse use_libuv=True (its default) like a build without libuv."""
    real = dist.TCPStore

    def store(*args: Any, use_libuv: bool = True, **kwargs: Any) -> Any:
        if use_libuv:
            raise RuntimeError(NO_LIBUV_TEXT)
        return real(*args, use_libuv=use_libuv, **kwargs)

    dist.TCPStore = store
    setattr(sys.modules["torch.distributed.rendezvous"], "TCPStore", store)  # noqa: B010


def agent_store(dist: Any) -> Any:
    from torch.distributed.elastic.utils.distributed import create_c10d_store

    return create_c10d_store(is_server=True, server_addr="127.0.0.1", server_port=free_port(),
                             world_size=1, timeout=10, wait_for_workers=False)


def worker_store(dist: Any) -> Any:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()), RANK="0",
                      WORLD_SIZE="1")
    os.environ.pop("TORCHELASTIC_USE_AGENT_STORE", None)  # a 2-GPU DDP run pins it =0
    store, _, _ = next(dist.rendezvous("env://", timeout=timedelta(seconds=10)))
    return store


def main() -> None:
    import torch

    print(json.dumps(check_stores(torch)), flush=True)


def check_stores(torch: Any) -> dict[str, Any]:
    """Both stores; the result. Changes os.environ (MASTER_*, RANK, WORLD_SIZE) and, under
    PREFLIGHT_TEST_NO_LIBUV, TCPStore: run it last in a process."""
    import torch.distributed as dist

    requested = os.environ.get("USE_LIBUV")
    if os.environ.get("PREFLIGHT_TEST_NO_LIBUV"):
        plant_missing_libuv(dist)
    stores: list[dict[str, Any]] = []
    for name, make in (("agent", agent_store), ("worker", worker_store)):
        try:
            store = make(dist)
            stores.append({"store": name, "ok": True,
                           "libuv_backend": bool(getattr(store, "libuvBackend", False))})
        except Exception as exc:  # reported, judged by the check
            text = str(exc).strip().splitlines()
            stores.append({"store": name, "ok": False, "error": text[0] if text else repr(exc),
                           "type": type(exc).__name__})
    return {"USE_LIBUV": requested, "torch": torch.__version__, "stores": stores}


if __name__ == "__main__":
    main()
