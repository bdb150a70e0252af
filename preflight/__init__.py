"""preflight: GO / NO-GO checks for a multi-GPU training node, run as pytest tests."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["Finding", "Severity", "__version__"]


def __getattr__(name: str) -> Any:
    # Lazy: pytest imports this package for the pytest11 shim in every run of the
    # environment; the model is loaded only when used.
    if name in ("Finding", "Severity"):
        from preflight import model

        return getattr(model, name)
    raise AttributeError(f"module 'preflight' has no attribute {name!r}")
