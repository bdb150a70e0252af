"""An unrelated one-test pytest run with pytest-preflight installed, against the same run
with its entry point blocked (`-p no:preflight`), in pairs after a warm-up pair. Prints the
medians and the per-pair ratio (with / without) with its min-max, for wall time and for the
CPU time of the pytest process.

    python benchmarks/unrelated_pytest.py [--pairs 12]

Acceptance (issue 13): <= 1.05x. The test `tests/test_face.py::
test_unrelated_pytest_run_is_at_most_5_percent_slower` measures the shim's own cost inside
one run instead: paired whole runs spread about +-20% per pair on a 2-core box.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pairs import paired, user_env


def one_run(work: Path, *extra: str) -> tuple[float, float]:
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             *extra], cwd=work, env=user_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"pytest {' '.join(extra)} failed in {work}")
    return time.perf_counter() - started, usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=12)
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="unrelated-pytest-") as tmp:
        work = Path(tmp)
        (work / "test_one.py").write_text("def test_one():\n    assert True\n")
        cpu: dict[str, list[float]] = {"with": [], "without": []}

        def run(name: str, *extra: str) -> float:
            wall, used = one_run(work, *extra)
            cpu[name].append(used)
            return wall

        # A = blocked, B = installed: the printed ratio is with / without.
        result = paired(lambda: run("without", "-p", "no:preflight"), lambda: run("with"),
                        opts.pairs)
    print(result.line("without the shim (-p no:preflight)", "with pytest-preflight"))
    warm = 1  # paired() ran one warm-up pair: its CPU times are the first of each list
    cpu_result = type(result)(cpu["without"][warm:], cpu["with"][warm:])
    print(cpu_result.line("CPU without", "CPU with"))


if __name__ == "__main__":
    main()
