"""preflight: GO / NO-GO checks for a multi-GPU training node, run as pytest tests."""

from preflight.model import Finding, Severity

__version__ = "0.1.0"
__all__ = ["Finding", "Severity", "__version__"]
