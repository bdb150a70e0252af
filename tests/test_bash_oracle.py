"""preflight's reading of launch scripts against real bash (see bash_oracle.py): every
script runs under bash with recording launcher shims first on PATH and is evaluated by
preflight; no value preflight states may differ from what bash produced."""

from __future__ import annotations

import collections
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from bash_cases import cases, random_cases  # noqa: E402
from bash_oracle import check_all  # noqa: E402

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def test_preflight_never_states_a_value_bash_did_not_produce(capsys):
    all_cases = cases() + random_cases(120)
    assert len(all_cases) >= 400
    verdicts = check_all(all_cases)
    counts = collections.Counter(v.kind for v in verdicts)
    wrong = [v for v in verdicts if v.kind == "wrong"]
    with capsys.disabled():
        print(f"\nbash oracle: {len(verdicts)} scripts, {counts['exact']} exact, "
              f"{counts['unknown']} honest unknown, {counts['wrong']} wrong-concrete")
    assert not wrong, "\n".join(f"{v.case.name}: {'; '.join(v.notes)}" for v in wrong[:20])
    # the harness can tell: most scripts are read exactly, not waved through as unknown
    assert counts["exact"] > counts["unknown"]


def test_the_harness_catches_a_wrong_reading():
    """A shim-recorded launch that preflight would get wrong is reported as wrong: the
    oracle compares, it does not just run."""
    from bash_oracle import Call, Case, compare

    from preflight.launch.shell import evaluate_command

    case = Case("mismatch", "torchrun --nproc_per_node 2 t.py\n")
    trace = evaluate_command("torchrun --nproc_per_node 2 t.py", {"PATH": "/bin"}, cwd="/")
    right = Call("torchrun", "/", ("--nproc_per_node", "2", "t.py"), {"PATH": "/bin"})
    wrong = Call("torchrun", "/", ("--nproc_per_node", "4", "t.py"), {"PATH": "/bin"})
    missed = Call("torchrun", "/", ("--nproc_per_node", "2", "t.py"),
                  {"PATH": "/bin", "MASTER_PORT": "1"})
    assert compare(case, trace, [right], {}).kind == "exact"
    assert compare(case, trace, [wrong], {}).kind == "wrong"
    assert compare(case, trace, [missed], {}).kind == "wrong"
    assert compare(case, trace, [], {}).kind == "wrong"  # preflight says it runs
