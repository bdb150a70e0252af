"""What a launch script writes from a here-document, held to real bash (heredoc_cases.py):
preflight's kept content must be byte for byte what bash wrote, or "not known"."""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from bash_oracle import make_shims  # noqa: E402
from heredoc_cases import SHAPES, Shape, compare, run_shape  # noqa: E402

from preflight.launch.shell import Trace, Written  # noqa: E402

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def test_kept_content_is_what_bash_writes(capsys):
    assert len(SHAPES) >= 30
    with tempfile.TemporaryDirectory(prefix="heredoc-oracle-") as tmp:
        shims = make_shims(Path(tmp) / "shims")
        outcomes = [compare(s, *run_shape(s, Path(tmp) / f"c{i}", shims))
                    for i, s in enumerate(SHAPES)]
    wrong = [f"{o.shape.name}: {w}" for o in outcomes for w in o.wrong]
    exact = sum(len(o.exact) for o in outcomes)
    unknown = sum(len(o.unknown) for o in outcomes)
    with capsys.disabled():
        print(f"\nheredoc oracle: {len(SHAPES)} scripts, {exact} files exact, {unknown} "
              f"honest unknown, {len(wrong)} wrong")
    assert not wrong, "\n".join(wrong)
    # the harness can tell: most files are read exactly, not waved through as unknown
    assert exact > 2 * unknown
    by_name = {o.shape.name: o for o in outcomes}
    # unknown beats wrong where it must: a write that may not run, output not evaluated
    # `cat > a.txt <<EOF &`: bash may not have finished it when the next line reads it
    assert any(p.endswith("a.txt") for p in by_name["background"].unknown)
    assert any(p.endswith("b.txt") for p in by_name["background"].exact)  # `X=1 &`: unset
    for name in ("if-undecided", "unknown-substitution", "echo-overwrites", "sed-in-place",
                 "append-to-disk-file", "pipe-into-tee", "while-loop"):
        assert by_name[name].unknown and not by_name[name].exact, name
    for name in ("if-decided", "if-then-rewrite", "tee-append", "append-known", "escapes",
                 "dash-tabs", "quoted-backslash", "for-unrolled", "rewrite-disk-file"):
        assert by_name[name].exact and not by_name[name].unknown, name


def test_the_harness_catches_a_wrong_content(tmp_path):
    shape = Shape("wrong", "cat > a.txt <<EOF\nx\nEOF\n")
    path = str(tmp_path / "a.txt")
    said = Trace((), {}, (), None, (), {path: Written("y\n", "run.sh:1")})
    assert compare(shape, said, {path: b"x\n"}).wrong
    assert compare(shape, said, {}).wrong  # preflight says a file bash never wrote
    missed = Trace((), {}, (), None, (), {})
    assert compare(shape, missed, {path: b"x\n"}).wrong  # a write preflight missed
    right = Trace((), {}, (), None, (), {path: Written("x\n", "run.sh:1")})
    assert compare(shape, right, {path: b"x\n"}).exact == [path]


def test_a_script_the_script_writes_is_read_as_written():
    """`cat > launch.sh <<EOF` then `bash launch.sh` / `source env.sh`: what runs is what
    the script wrote (not a file on disk, not nothing), held to real bash."""
    from bash_oracle import Case, check_all
    from heredoc_cases import GENERATED, GENERATED_FILES

    cases = [Case(name, text, files=GENERATED_FILES.get(name, {}))
             for name, text in GENERATED.items()]
    verdicts = {v.case.name: v for v in check_all(cases)}
    assert not [v for v in verdicts.values() if v.kind == "wrong"], \
        [(v.case.name, v.notes) for v in verdicts.values() if v.kind == "wrong"]
    for name in ("bash-generated", "source-generated", "source-stale-disk"):
        assert verdicts[name].kind == "exact", (name, verdicts[name].notes)
