# ruff: noqa: E501  (scripts as data: a line of bash stays one line here)
"""Scripts that write files from here-documents, and the harness that holds preflight's
kept content (`Trace.written`) to what real bash writes.

Each case runs twice in the same directory: preflight evaluates the script first (it
executes nothing, so it sees the directory as the job would before it starts), then real
bash runs it with the bash oracle's recording shims first on PATH. Every file bash
leaves behind (besides the script) must be one preflight knows the script writes, and
where preflight states its content, bash must have written exactly those bytes; where
preflight says "not known", anything goes (unknown beats wrong).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from bash_oracle import base_env

from preflight.launch.shell import Trace, evaluate_script

TAB = "\t"


@dataclass(frozen=True)
class Shape:
    name: str
    script: str
    env: dict[str, str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)  # on disk before the script runs


ACC = "distributed_type: MULTI_GPU\nnum_processes: ${NGPU}\n"

SHAPES = [
    Shape("plain-var", "NGPU=4\ncat > acc.yaml <<EOF\n" + ACC + "EOF\n"),
    Shape("env-var", "cat > acc.yaml <<EOF\n" + ACC + "EOF\n", {"NGPU": "8"}),
    Shape("unset-var", "cat > acc.yaml <<EOF\nnum_processes: $NGPU\nport: ${PORT}x\nEOF\n"),
    Shape("default-unset", "cat > acc.yaml <<EOF\nnum_processes: ${X:-4}\nEOF\n"),
    Shape("default-set", "cat > acc.yaml <<EOF\nnum_processes: ${X:-4}\nEOF\n", {"X": "2"}),
    Shape("default-empty", "X=\ncat > acc.yaml <<EOF\na: ${X:-4} b: ${X-5}\nEOF\n"),
    Shape("assign-default", "cat > a.yaml <<EOF\nn: ${Y:=6}\nEOF\necho \"$Y\" > /dev/null\n"),
    Shape("arithmetic", "NGPU=4\nNNODES=2\ncat > acc.yaml <<EOF\nnum_processes: $(( NGPU * NNODES ))\nhalf: $((NGPU/2))\nEOF\n"),
    Shape("pure-substitution", "cat > acc.yaml <<EOF\nname: $(echo hi there)\ndir: $(basename /x/y.sh .sh)\nEOF\n"),
    Shape("unknown-substitution", "cat > acc.yaml <<EOF\nnum_processes: $(nvidia-smi -L | wc -l)\nEOF\n"),
    Shape("backquotes", "cat > a.txt <<EOF\nv: `echo q`\nEOF\n"),
    Shape("escapes", "X=1\ncat > a.txt <<EOF\nlit: \\$X \\\\ \\` \\\" \\x \"q\" 'q' $X\nEOF\n"),
    Shape("backslash-newline", "X=7\ncat > a.txt <<EOF\none \\\ntwo $X\\\n three\nEOF\n"),
    Shape("double-backslash-newline", "cat > a.txt <<EOF\nend \\\\\nnext\nEOF\n"),
    Shape("quoted-single", "X=1\ncat > a.txt <<'EOF'\n$X ${Y:-2} $(date) \\$ \\\\\nEOF\n"),
    Shape("quoted-double", "X=1\ncat > a.txt <<\"EOF\"\n$X `date` \\\n\nEOF\n"),
    Shape("quoted-backslash", "X=1\ncat > a.txt <<\\EOF\n$X \"$X\"\nEOF\n"),
    Shape("dash-tabs", f"X=3\ncat > a.txt <<-EOF\n{TAB}a: $X\n{TAB}{TAB}b: 2\n  c: 1\n{TAB}EOF\n"),
    Shape("dash-quoted-tabs", f"cat > a.txt <<-'EOF'\n{TAB}a: $X\n{TAB}EOF\n"),
    Shape("space-before-delimiter", "X=9\ncat > a.txt << EOF\nx=$X\nEOF\n"),
    Shape("redirect-after", "X=2\ncat <<EOF > a.txt\nx=$X\nEOF\n"),
    Shape("cat-dash", "cat - > a.txt <<EOF\nx\nEOF\n"),
    Shape("clobber", "cat >| a.txt <<EOF\nx\nEOF\n"),
    Shape("both-streams", "cat &> a.txt <<EOF\nx\nEOF\n"),
    Shape("stderr-file", "cat > a.txt 2> err.txt <<EOF\nx\nEOF\n"),
    Shape("append-known", "cat > a.txt <<EOF\none\nEOF\ncat >> a.txt <<EOF\ntwo $((1+1))\nEOF\n"),
    Shape("append-to-disk-file", "cat >> a.txt <<EOF\ntwo\nEOF\n", files={"a.txt": "one\n"}),
    Shape("append-new-file", "cat >> a.txt <<EOF\ntwo\nEOF\n"),
    Shape("tee", "tee a.txt <<EOF >/dev/null\nn: ${N:-1}\nEOF\n"),
    Shape("tee-stdout", "tee a.txt <<EOF\nn: 1\nEOF\n"),
    Shape("tee-two-files", "tee a.txt b.txt <<EOF > c.txt\nn: 1\nEOF\n"),
    Shape("tee-append", "cat > a.txt <<EOF\none\nEOF\ntee -a a.txt <<EOF >/dev/null\ntwo\nEOF\n"),
    Shape("tee-dashdash", "tee -- a.txt <<EOF >/dev/null\nx\nEOF\n"),
    Shape("rewrite", "cat > a.txt <<EOF\nfirst\nEOF\ncat > a.txt <<EOF\nsecond\nEOF\n"),
    Shape("rewrite-disk-file", "cat > a.txt <<EOF\nscript\nEOF\n", files={"a.txt": "disk\n"}),
    Shape("if-undecided", "if [ -n \"$(cat /nonexistent 2>/dev/null)\" ]; then\n  cat > a.txt <<EOF\nx\nEOF\nfi\n"),
    Shape("if-undecided-else", "if [ -n \"$(cat /nonexistent 2>/dev/null)\" ]; then\n  cat > a.txt <<EOF\nx\nEOF\nelse\n  cat > a.txt <<EOF\ny\nEOF\nfi\n"),
    Shape("background", "cat > a.txt <<EOF &\nx\nEOF\nwait\nX=1 &\ncat > b.txt <<EOF\n${X:-unset}\nEOF\n"),
    Shape("if-decided", "N=2\nif [ \"$N\" = 2 ]; then\n  cat > a.txt <<EOF\nyes $N\nEOF\nelse\n  cat > a.txt <<EOF\nno\nEOF\nfi\n"),
    Shape("if-then-rewrite", "if [ -n \"$(cat /nonexistent 2>/dev/null)\" ]; then cat > a.txt <<EOF\nx\nEOF\nfi\ncat > a.txt <<EOF\nsure\nEOF\n"),
    Shape("and-list-undecided", "[ -n \"$(cat /nonexistent 2>/dev/null)\" ] && cat > a.txt <<EOF\nx\nEOF\ntrue\n"),
    Shape("function", "write() {\n  cat > \"$1\" <<EOF\nn: $2\nEOF\n}\nwrite a.txt 4\n"),
    Shape("subshell", "( cat > a.txt <<EOF\nsub\nEOF\n)\n"),
    Shape("group", "{ cat > a.txt <<EOF\ngroup\nEOF\n}\n"),
    Shape("cd-then-write", "mkdir -p sub\ncd sub\ncat > a.txt <<EOF\nin sub\nEOF\n"),
    Shape("dir-variable", "D=out\nmkdir -p \"$D\"\ncat > \"$D/a.txt\" <<EOF\nx\nEOF\n"),
    Shape("echo-overwrites", "cat > a.txt <<EOF\nx\nEOF\necho y > a.txt\n"),
    Shape("sed-in-place", "cat > a.txt <<EOF\nn: 4\nEOF\nsed -i 's/4/8/' a.txt\n"),
    Shape("rm-after", "cat > a.txt <<EOF\nx\nEOF\nrm -f a.txt\n"),
    Shape("touch-new-and-written", "cat > a.txt <<EOF\nx\nEOF\ntouch a.txt b.txt\n"),
    Shape("cp-over", "cat > a.txt <<EOF\nx\nEOF\ncat > b.txt <<EOF\ny\nEOF\ncp b.txt a.txt\n"),
    Shape("pipe-into-tee", "cat <<EOF | tee a.txt > /dev/null\nx\nEOF\n"),
    Shape("quotes-in-braces", "cat > a.txt <<EOF\n${X:-\"4\"} ${X:-'5'} \"${Y:-6}\"\nEOF\n"),
    Shape("trims-and-length", "F=model.tar.gz\ncat > a.txt <<EOF\n${F%%.*} ${F#*.} ${#F} ${F/tar/zip}\nEOF\n"),
    Shape("array", "A=(x \"y z\")\ncat > a.txt <<EOF\n${A[@]} ${A[1]} ${#A[@]}\nEOF\n"),
    Shape("tilde-and-dollar-quote", "cat > a.txt <<EOF\n~/x $'a\\tb' \\$'c'\nEOF\n"),
    Shape("empty-body", "cat > a.txt <<EOF\nEOF\n"),
    Shape("unicode", "N=2\ncat > a.txt <<EOF\nnom: café × $N\nEOF\n"),
    Shape("for-unrolled", "cat > a.txt <<EOF\nhead\nEOF\nfor i in 1 2; do\n  cat >> a.txt <<EOF\nitem $i\nEOF\ndone\n"),
    Shape("while-loop", "n=0\nwhile [ $n -lt 2 ]; do\n  cat > a.txt <<EOF\n$n\nEOF\n  n=$((n+1))\ndone\n"),
    Shape("two-heredocs", "cat > a.txt <<A; cat > b.txt <<B\none\nA\ntwo\nB\n"),
    Shape("set-u-ok", "set -u\nN=1\ncat > a.txt <<EOF\n$N\nEOF\n"),
    Shape("set-u-unset", "set -u\ncat > a.txt <<EOF\n$NOPE\nEOF\ncat > b.txt <<EOF\nb\nEOF\n"),
    Shape("set-u-unset-heredoc-first", "set -u\ncat <<EOF > a.txt\n$NOPE\nEOF\n"),
    Shape("set-eu-unset", "set -eu\ncat > a.txt <<EOF\n$NOPE\nEOF\ncat > b.txt <<EOF\nb\nEOF\n"),
    Shape("set-u-unset-builtin", "set -u\nread -r -d '' V <<EOF || true\n$NOPE\nEOF\n"
          "cat > b.txt <<EOF\nb\nEOF\n"),
    Shape("hostfile", "cat > hostfile <<EOF\nnode-a slots=${GPUS:-8}\nnode-b slots=${GPUS:-8}\nEOF\n"),
    Shape("ds-json-quoted", "cat > ds.json <<'JSON'\n{\"zero_optimization\": {\"stage\": 2}, \"x\": \"$Y\"}\nJSON\n"),
    Shape("swift-yaml", "cat > sft.yaml <<EOF\nmodel: Qwen/Qwen2.5-7B\nENV:\n  NPROC_PER_NODE: ${NPROC:-2}\nEOF\n"),
]


@dataclass
class Outcome:
    shape: Shape
    exact: list[str]  # files whose content preflight states, bash wrote the same
    unknown: list[str]  # files preflight says the script may write, content not known
    wrong: list[str]  # a stated content bash did not write, or a write preflight missed


def written_by_bash(workdir: Path, before: set[str]) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in workdir.rglob("*")
            if p.is_file() and str(p) not in before}


def run_shape(shape: Shape, workdir: Path, shims: Path) -> tuple[Trace, dict[str, bytes]]:
    """preflight's trace of the script, then the files real bash leaves in workdir."""
    workdir.mkdir(parents=True, exist_ok=True)
    for rel, text in shape.files.items():
        (workdir / rel).write_text(text)
    script = workdir / "run.sh"
    script.write_text(shape.script)
    env = {**base_env(shims, str(workdir)), **shape.env,
           "ORACLE_LOG": str(workdir.parent / f".{workdir.name}.log")}
    trace = evaluate_script(str(script), env, cwd=str(workdir))
    before = {str(script)}
    subprocess.run(["bash", "run.sh"], cwd=workdir, env=env, stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=20,
                   check=False)
    files = written_by_bash(workdir, before)
    for rel, text in shape.files.items():  # untouched files from before are not writes
        path = str(workdir / rel)
        if files.get(path) == text.encode() and path not in trace.written:
            del files[path]
    return trace, files


def compare(shape: Shape, trace: Trace, files: dict[str, bytes]) -> Outcome:
    out = Outcome(shape, [], [], [])
    for path, data in sorted(files.items()):
        kept = trace.written.get(path)
        if kept is None:
            out.wrong.append(f"{path}: bash wrote it, preflight does not know it is written")
        elif kept.text is None:
            pass
        elif kept.text.encode() != data:
            out.wrong.append(f"{path}: preflight {kept.text!r}, bash {data!r}")
        else:
            out.exact.append(path)
    for path, kept in sorted(trace.written.items()):
        if kept.text is None:  # whether bash wrote it or not (a branch it did not take)
            out.unknown.append(path)
        elif path not in files:
            out.wrong.append(f"{path}: preflight {kept.text!r}, bash left no such file")
    return out


# Scripts that write a script and then source or run it: the launcher it starts is found
# in what the script wrote (Trace.commands), compared by the bash oracle (bash_oracle.py).
GENERATED = {
    "bash-generated": "N=4\ncat > launch.sh <<EOF\ntorchrun --nproc_per_node $N train.py\nEOF\n"
                      "bash launch.sh\n",
    "source-generated": "cat > env.sh <<'EOF'\nexport NP=${NP:-3}\nEOF\nsource env.sh\n"
                        "torchrun --nproc_per_node $NP train.py\n",
    "source-stale-disk": "cat > env.sh <<EOF\nexport NP=2\nEOF\n. ./env.sh\n"
                         "torchrun --nproc_per_node $NP train.py\n",
    "generated-unknown": "cat > launch.sh <<EOF\ntorchrun --nproc_per_node $(nproc) train.py\n"
                         "EOF\nbash launch.sh\n",
    "source-unknown": "cat > env.sh <<EOF\nexport NP=$(nproc)\nEOF\nsource env.sh\n"
                      "torchrun --nproc_per_node $NP train.py\n",
}
GENERATED_FILES = {"source-stale-disk": {"env.sh": "export NP=7\n"}}
GENERATED["generated-maybe"] = (
    "if [ -n \"$(cat /nonexistent)\" ]; then\ncat > launch.sh <<EOF\ntorchrun --nproc_per_node 2 "
    "train.py\nEOF\nfi\n[ -f launch.sh ] && bash launch.sh\ntrue\n")
GENERATED_FILES["generated-maybe-disk"] = {"launch.sh": "torchrun --nproc_per_node 5 t.py\n"}
GENERATED["generated-maybe-disk"] = (
    "if [ -n \"$(cat /nonexistent)\" ]; then\ncat > launch.sh <<EOF\ntorchrun --nproc_per_node 2 "
    "train.py\nEOF\nfi\nbash launch.sh\n")
