"""`preflight`: run the installed checks from any directory; `preflight info`: the node;
`preflight merge` / `preflight cluster`: one verdict for N nodes (preflight/cluster).

`preflight [pytest args]` is `pytest <installed preflight/checks> [pytest args]` and
exits with pytest's code, so the exit code is the verdict (0 GO, 1 NO-GO, 4 bad input).
"""

from __future__ import annotations

import sys
from pathlib import Path

CHECKS_DIR = Path(__file__).parent / "checks"


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["info"]:
        from preflight.info import main as info_main

        return info_main(args[1:])
    if args[:1] in (["merge"], ["cluster"]):  # preflight/cluster: one verdict for N nodes
        from preflight import cluster

        return (cluster.merge_main if args[0] == "merge" else cluster.cluster_main)(args[1:])
    import os

    import pytest

    # A gate loads only what it needs: other installed plugins (hypothesis alone costs
    # half a second) stay out unless PREFLIGHT_AUTOLOAD=1. rootdir and config at the checks
    # keep a user's unrelated pytest.ini / pyproject.toml / conftest out of the run.
    plugins = ["-p", "no:cacheprovider"]
    if os.environ.get("PREFLIGHT_AUTOLOAD") != "1":
        os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
        plugins += ["-p", "preflight.plugin", "-p", "pytest_timeout"]
    return int(pytest.main([str(CHECKS_DIR), "--rootdir", str(CHECKS_DIR),
                            "-c", str(CHECKS_DIR / "gate.ini"), *plugins, *args]))


if __name__ == "__main__":
    sys.exit(main())
