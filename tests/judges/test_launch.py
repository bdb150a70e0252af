"""The launch judges in-process, from tables: a launch line (evaluated by the real
`preflight.launch.spec`, nothing run) and what the node showed -> the problems, their
kinds and fixes, or the skip. The end-to-end runs through the plugin stay in
tests/test_launch_checks.py."""

from __future__ import annotations

import posixpath
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import pytest

from preflight.fixes import PLACEHOLDER, is_command, split
from preflight.judges import launch as judge
from preflight.launch.spec import LaunchSpec, load
from preflight.model import Kind, Verdict
from preflight.redact import MASK

ENV = {"PATH": "/usr/bin:/bin", "HOME": "/root"}


def spec_of(cmd: str, env: Mapping[str, str] | None = None, cwd: str = "/") -> LaunchSpec:
    return load(None, cmd, {**ENV, **(env or {})}, cwd=cwd)


def script_of(tmp_path, text: str, env: Mapping[str, str] | None = None) -> LaunchSpec:
    path = tmp_path / "run.sh"
    path.write_text(text)
    return load(str(path), None, {**ENV, **(env or {})}, cwd=str(tmp_path))


@dataclass(frozen=True)
class Want:
    """What a verdict must show: the deciding kind (None: passes), texts in the message,
    texts in the fix, the skip reason's start, the `ok` summary's start."""

    kind: Kind | None = None
    says: tuple[str, ...] = ()
    fix: tuple[str, ...] = ()
    skip: str = ""
    ok: str = ""
    evidence: Mapping[str, object] = field(default_factory=dict)


def _fix(v: Verdict) -> str:
    return "\n".join(dict.fromkeys(p.fix for p in v.deciding if p.fix)) or v.fix


def check(v: Verdict, want: Want) -> None:
    if want.skip:
        assert v.skip.startswith(want.skip), v
        return
    assert not v.skip, v.skip
    deciding = v.deciding
    assert (deciding[0].kind if deciding else None) is want.kind, v.problems
    for text in want.says:
        assert text in v.message, (text, v.message)
    for text in want.fix:
        assert text in _fix(v), (text, _fix(v))
    if want.kind is None:
        assert v.ok.startswith(want.ok), v.ok
    for key, value in want.evidence.items():
        assert v.evidence[key] == value, (key, v.evidence[key])


# llamafactory-cli train relaunches under torchrun on MASTER_PORT only with more than one
# visible GPU or FORCE_TORCHRUN (LLaMA-Factory launcher.py:61): the node's count decides.
LMF = "MASTER_PORT=29501 llamafactory-cli train x.yaml"
LMF_NESTED = "torchrun --nproc_per_node 2 --master_port 29501 --no-python lmf train x.yaml"
ONE, TWO = judge.GpuCount(1, ""), judge.GpuCount(2, "")
UNREAD = judge.GpuCount(None, "NVML unavailable: NVML Shared Library Not Found")


# -- nested-launcher -------------------------------------------------------------------

NESTED = [
    ("one torchrun", "torchrun --nproc_per_node 2 --master_port 29501 train.py", {}, {},
     Want(ok="one launcher layer per job (torchrun)")),
    ("torchrun runs torchrun",
     "torchrun --nproc_per_node 2 -m torch.distributed.run --nproc_per_node 2 train.py", {},
     {}, Want(Kind.BLOCKER, ("nested launchers: torchrun at <--launch-cmd>:1",
                             "starts python -m torch.distributed.run"),
              ("keep one launcher: drop torchrun",))),
    ("torchrun runs swift, which relaunches",
     "torchrun --nproc_per_node 2 --master_port 29501 /usr/bin/swift rlhf --model m",
     {"NPROC_PER_NODE": "2"}, {},
     Want(Kind.BLOCKER, ("relaunched by swift rlhf",), ("NPROC_PER_NODE=2 swift ...",
                                                         "python -m swift.cli.rlhf"))),
    ("the suite itself under torchrun", "torchrun --nproc_per_node 2 train.py", {},
     {"LOCAL_RANK": "0"},
     Want(Kind.BLOCKER, ("preflight itself runs under torchrun (LOCAL_RANK set)",),
          ("unset TORCHELASTIC_RUN_ID LOCAL_RANK",))),
    ("a launcher that is not known", 'L="$(cat launcher.txt)"; $L train.py', {}, {},
     Want(Kind.UNKNOWN, ("cannot tell the launch layers",),
          ("keep one distributed launcher per job",))),
    ("no launcher at all", "python train.py", {}, {},
     Want(ok="no distributed launcher in the script")),
    ("swift under torchrun may relaunch after an eval",
     'eval "$(cat e)"; torchrun --nproc_per_node 2 /usr/bin/swift rlhf', {}, {},
     Want(Kind.UNKNOWN, ("starts torchrun (relaunched by swift rlhf)", "if it starts at all: "
                         "swift relaunches itself under torchrun only if NPROC_PER_NODE"),
          ("keep one distributed launcher per job",))),
    # the incident's own line, on a machine where `which swift` finds nothing: what
    # torchrun starts is not known, so "one launcher layer" would be a guess
    ("torchrun runs a program that is not known",
     "torchrun --nproc_per_node 4 --master_port 29501 $(which swift) rlhf --model m",
     {"NPROC_PER_NODE": "4"}, {},
     Want(Kind.UNKNOWN, ("cannot tell what torchrun at <--launch-cmd>:1 starts",
                         "⟨$(which swift)⟩ may hold torchrun options"))),
    ("torchrun runs a program from an unknown variable",
     'T="$(cat trainer.txt)"; torchrun --nproc_per_node 2 "$T" rlhf', {}, {},
     Want(Kind.UNKNOWN, ("cannot tell what torchrun at <--launch-cmd>:1 starts",))),
    ("a launcher in a command substitution",
     "OUT=$(torchrun --nproc_per_node 2 -m torch.distributed.run train.py)", {}, {},
     Want(Kind.BLOCKER, ("nested launchers: torchrun at <--launch-cmd>:1",))),
]


@pytest.mark.parametrize("cmd, env, under, want", [c[1:] for c in NESTED],
                         ids=[c[0] for c in NESTED])
def test_nested_launcher(cmd, env, under, want):
    check(judge.nested_launcher(judge.NestedFacts(spec_of(cmd, env), under)), want)


GATED_NESTED = [
    ("one GPU: llamafactory-cli runs as one worker", LMF_NESTED, {}, ONE,
     Want(ok="one launcher layer per job (torchrun)")),
    ("two GPUs: each worker relaunches torchrun", LMF_NESTED, {}, TWO,
     Want(Kind.BLOCKER, ("starts torchrun (relaunched by lmf train)",),
          ("FORCE_TORCHRUN=1 NPROC_PER_NODE=2 llamafactory-cli train",))),
    ("count not read", LMF_NESTED, {}, UNREAD,
     Want(Kind.UNKNOWN, ("if it starts at all", "the node's GPU count could not be read "
                         "(NVML unavailable"))),
    ("one GPU, FORCE_TORCHRUN", LMF_NESTED, {"FORCE_TORCHRUN": "1"}, ONE,
     Want(Kind.BLOCKER, ("starts torchrun (relaunched by lmf train)",))),
]


@pytest.mark.parametrize("cmd, env, gpus, want", [c[1:] for c in GATED_NESTED],
                         ids=[c[0] for c in GATED_NESTED])
def test_nested_launcher_behind_a_relaunch_the_gpu_count_decides(cmd, env, gpus, want):
    check(judge.nested_launcher(judge.NestedFacts(spec_of(cmd, env), {}, gpus)), want)
def test_a_guard_is_shown_as_written(tmp_path):
    # the parser reads [[ ]] and (( )) in rewritten shapes; a message showed them
    # (`⁑arith " G % N != 0 "`) to the user
    spec = script_of(tmp_path, "G=16; N=3\nif (( G % N != 0 )); then\n  exit 1\nfi\n"
                               "torchrun train.py\n")
    check(judge.nested_launcher(judge.NestedFacts(spec, {})),
          Want(Kind.UNKNOWN, ("the script exits at line 3 ((( G % N != 0 )))",)))
    empty = script_of(tmp_path, '[[ -z "${DATA:-}" && -n x ]] && exit 1\ntorchrun t.py\n')
    check(judge.empty_variable(empty),
          Want(Kind.BLOCKER, ('because DATA is empty ([[ -z "${DATA:-}" && -n x ]])',)))


def test_nested_launcher_without_a_script_and_after_an_exit(tmp_path):
    check(judge.nested_launcher(judge.NestedFacts(None, {})), Want(skip="no launch script"))
    guarded = script_of(tmp_path, '[ -z "$DATA" ] && exit 1\ntorchrun train.py\n')
    check(judge.nested_launcher(judge.NestedFacts(guarded, {})),
          Want(skip="the script exits at line 1 before it launches anything"))
    plain = script_of(tmp_path, "exit 3\ntorchrun train.py\n")
    check(judge.nested_launcher(judge.NestedFacts(plain, {})),
          Want(Kind.UNKNOWN, ("the script exits at line 1 (exit 3)",)))


# -- empty-variable --------------------------------------------------------------------

EMPTY = [
    ("an empty path part", 'swift sft --dataset "data/${DATASET}/train.jsonl"', {},
     Want(Kind.BLOCKER, ("DATASET is empty at <--launch-cmd>:1",
                         "-> data//train.jsonl"), ("export DATASET=<value>",))),
    ("set", 'swift sft --dataset "data/${DATASET}/train.jsonl"', {"DATASET": "x"},
     Want(ok="no variable expands empty")),
    ("a default", 'swift sft --dataset "data/${DATASET:-x}/train.jsonl"', {},
     Want(ok="no variable expands empty")),
    # slime / Megatron scripts build their arguments in arrays: an empty variable there
    # is the same pitfall (bash: A=(--wandb-key ${K}) with K unset has 1 element)
    ("an empty path part inside an array", 'A=(--data d/${K}/x); python t.py ${A[@]}', {},
     Want(Kind.BLOCKER, ("K is empty at <--launch-cmd>:1", "-> d//x"))),
    ("an array element that vanishes",
     'W=(--use-wandb --wandb-key ${WANDB_KEY}); python3 train.py "${W[@]}"', {},
     Want(Kind.BLOCKER, ("WANDB_KEY is empty", "(nothing: the argument vanishes)"))),
    ("appended to an array", 'A=(--a 1); A+=(--key $K); python t.py "${A[@]}"', {},
     Want(Kind.BLOCKER, ("K is empty",))),
    ("an array never passed to a program", 'A=(--key ${K}); echo "${A[@]}"', {},
     Want(ok="no variable expands empty")),
    ("a quoted empty argument stays", 'python t.py --key "${K}"', {},
     Want(Kind.BLOCKER, ("K is empty", "-> '' (an empty argument)"))),
]


@pytest.mark.parametrize("cmd, env, want", [c[1:] for c in EMPTY], ids=[c[0] for c in EMPTY])
def test_empty_variable(cmd, env, want):
    check(judge.empty_variable(spec_of(cmd, env)), want)


def test_each_empty_variable_carries_its_own_fix_once(tmp_path):
    spec = script_of(tmp_path, 'swift sft --model "$M/x" --dataset "$D/y" --val_dataset "$D/z"'
                               '\n[ -z "$E" ] && exit 1\n')
    v = judge.empty_variable(spec)
    fixes = [p.fix for p in v.problems]
    assert [f.split("=")[0] for f in fixes] == ["export M", "export D", "", "export E"]
    assert v.evidence["exits_at"] == {"line": "run.sh:2", "guard": '[ -z "$E" ]',
                                      "empty": ["E"]}
    guarded = judge.empty_variable(script_of(tmp_path, '[ -z "$E" ] && exit 1\ntorchrun x\n'))
    assert guarded.problems[-1].text.startswith("the script exits at line 1 because E")
    assert guarded.problems[-1].fix.startswith("export E=<value>")


# -- launch-inputs ---------------------------------------------------------------------


def inputs(spec: LaunchSpec, exists=(), dirs=(), writable=("/",)) -> judge.InputsFacts:
    """Facts as the adapter reads them, from sets: paths that exist, directories that
    exist (besides /), writable ones."""
    out_dirs = judge.output_dirs(spec)

    def near(d: str) -> str:
        while d not in dirs and d != "/":
            d = posixpath.dirname(d)
        return d

    nearest = {d: near(d) for d in out_dirs}
    return judge.InputsFacts(
        spec, exists={p: p in exists for p in judge.input_paths(spec)},
        is_dir={d: d in dirs for d in out_dirs}, nearest=nearest,
        writable={b: b in writable for b in nearest.values()})


INPUTS = [
    ("a missing model", "swift sft --model /models/q --output_dir /out", (), ("/out",),
     ("/", "/out"),
     Want(Kind.BLOCKER, ("--model /models/q does not exist (<--launch-cmd>:1)",),
          ("fix --model at <--launch-cmd>:1",))),
    ("everything there", "swift sft --model /models/q --output_dir /out", ("/models/q",),
     ("/out",), ("/out",), Want(ok="1 input path(s) exist, 1 output(s) writable")),
    ("an output under a read-only disk", "swift sft --model /m --output_dir /ro/out",
     ("/m",), ("/ro",), (),
     Want(Kind.BLOCKER, ("--output_dir /ro/out: /ro is not writable",),
          ("ls -ld /ro   # its owner and mode", "create /ro/out on a writable disk"))),
    ("a redirect into a missing directory", "echo hi > /nodir/x.log", (), (), ("/",),
     Want(Kind.BLOCKER, ("directory /nodir does not exist, bash/tee fail there",),
          ("mkdir -p /nodir",))),
    ("a path not known", 'swift sft --model "$(cat which-model)"', (), (), ("/",),
     Want(Kind.UNKNOWN, ("cannot check: --model",),
          ("point the flags at paths that exist",))),
    ("no paths", "swift sft --lr 1e-5", (), (), ("/",),
     Want(skip="the launch command gives no model/dataset/checkpoint/output paths")),
    # bash creates the file before the launch opens it (a config written from a heredoc)
    ("a config the script writes first",
     "cat > /cfg.yaml <<EOF\nnum_processes: 2\nEOF\n"
     "accelerate launch --config_file /cfg.yaml /t.py", ("/t.py",), ("/",), ("/",),
     Want(ok="1 input path(s) exist")),
    # swift opens its config first (main.py:42-47): one the script writes is there
    ("a swift config the script writes first",
     "cat > /sft.yaml <<EOF\nmodel: $(cat /which)\nEOF\nswift sft /sft.yaml --dataset /d.jsonl",
     ("/d.jsonl",), ("/",), ("/",), Want(ok="1 input path(s) exist")),
    ("a swift config nobody writes", "swift sft /sft.yaml --dataset /d.jsonl", ("/d.jsonl",),
     ("/",), ("/",), Want(Kind.BLOCKER, ("/sft.yaml does not exist",))),
    ("a config written from a quoted here-document",
     "cat > /ds.json <<'JSON'\n{\"zero\": 2}\nJSON\ndeepspeed /t.py --deepspeed /ds.json",
     ("/t.py",), ("/",), ("/",), Want(ok="1 input path(s) exist")),
    # torchrun -m runs a module (torch run.py `--module`): swift.cli.rlhf is not a file
    ("a swift module under torchrun",
     "torchrun --nproc_per_node=2 -m swift.cli.rlhf --rlhf_type grpo --dataset /d.jsonl",
     ("/d.jsonl",), ("/",), ("/",), Want(ok="1 input path(s) exist")),
    # a timestamped run directory: made by mkdir -p, then the log written into it
    ("one unknown run directory, made then used",
     'R=/out/run-$(date +%s)\nmkdir -p "$R"\nL=$R/train.log\nA=(--output_dir "$R")\n'
     'python /t.py "${A[@]}" 2>&1 | tee "$L"', ("/t.py",), ("/", "/out"), ("/out",),
     Want(ok="1 input path(s) exist, 2 output(s) writable")),
    ("a second $(date) is another directory",
     'R=/out/run-$(date +%s)\nmkdir -p "$R"\nR=/out/run-$(date +%s)\n'
     'python /t.py > "$R/train.log"', ("/t.py",), ("/", "/out"), ("/out",),
     Want(Kind.UNKNOWN, ("cannot check: > (redirect) /out/run-",))),
    ("the same text from two evaluations",
     'mkdir -p /out/run-$(date +%s)\npython /t.py > /out/run-$(date +%s)/train.log',
     ("/t.py",), ("/", "/out"), ("/out",),
     Want(Kind.UNKNOWN, ("cannot check: > (redirect) /out/run-",))),
    ("a log into a directory never made",
     'python /t.py > "/out/run-$(date +%s)/train.log"', ("/t.py",), ("/", "/out"),
     ("/out",), Want(Kind.UNKNOWN, ("cannot check: > (redirect) /out/run-",))),
    ("a config the script may write",
     "if [ -n \"$(cat /f)\" ]; then echo a > /cfg.yaml; fi\nswift sft --config /cfg.yaml", (),
     ("/",), ("/",), Want(Kind.UNKNOWN, ("--config /cfg.yaml", "it may be written by"))),
]


@pytest.mark.parametrize("cmd, exists, dirs, writable, want", [c[1:] for c in INPUTS],
                         ids=[c[0] for c in INPUTS])
def test_launch_inputs(cmd, exists, dirs, writable, want):
    check(judge.launch_inputs(inputs(spec_of(cmd), exists, dirs, writable)), want)


def test_a_path_fix_splits_into_its_command_alone():
    """`cmd   # advice` where the advice held `; mkdir -p /ro/out on a writable disk, ...`:
    split starts a new piece at `; ` and kept that sentence as a second command line."""
    from preflight.fixes import split

    missing = judge.launch_inputs(inputs(spec_of("swift sft --model /models/q"), (), (), ("/",)))
    ro = judge.launch_inputs(inputs(spec_of("swift sft --model /m --output_dir /ro/out"),
                                    ("/m",), ("/ro",), ()))
    assert [split(p.fix)[0] for p in missing.problems + ro.problems] == [
        "ls -la /models", "ls -ld /ro"]


def test_an_accelerate_config_written_by_the_script_is_read(tmp_path):
    # accelerate reads the file bash wrote just before: its here-document, expanded
    spec = script_of(tmp_path, "P=29555\ncat > cfg.yaml <<EOF\ndistributed_type: MULTI_GPU\n"
                               "num_processes: 2\nmain_process_port: $P\nEOF\n"
                               "accelerate launch --config_file cfg.yaml t.py\n")
    layer = spec.jobs[-1].distributed[0]
    assert (layer.error, layer.nproc, layer.port) == ("", 2, 29555)
    assert layer.nproc_source == f"num_processes in {tmp_path}/cfg.yaml"
    # and what it holds decides: without distributed_type accelerate stops
    spec = script_of(tmp_path, "cat > cfg.yaml <<EOF\nnum_processes: 2\nEOF\n"
                               "accelerate launch --config_file cfg.yaml t.py\n")
    assert "has no distributed_type" in spec.jobs[-1].distributed[0].error


def test_an_accelerate_config_the_script_writes_unknown_is_unknown_not_missing(tmp_path):
    # a part of the here-document not known: what accelerate reads is not known either
    spec = script_of(tmp_path, "cat > cfg.yaml <<EOF\ndistributed_type: MULTI_GPU\n"
                               "num_processes: $(nvidia-smi -L | wc -l)\n"
                               "main_process_port: 29555\nEOF\n"
                               "accelerate launch --config_file cfg.yaml t.py\n")
    layer = spec.jobs[-1].distributed[0]
    assert not layer.error and layer.port is None and layer.nproc is None
    assert "is written by the script at run.sh:1" in layer.port_text
    check(judge.launch_ports(judge.PortsFacts(spec, {}, {}, "40000")),
          Want(Kind.UNKNOWN, ("is written by the script at run.sh:1",)))


def test_only_the_first_three_missing_inputs_carry_a_fix():
    spec = spec_of("swift sft --dataset /a.jsonl /b.jsonl /c.jsonl /d.jsonl /e.jsonl")
    v = judge.launch_inputs(inputs(spec))
    assert len(v.problems) == 4 and [bool(p.fix) for p in v.problems] == [1, 1, 1, 0]
    assert len(v.evidence["missing"]) == 5


# -- grpo-batch ------------------------------------------------------------------------

GRPO = [
    ("3 processes, 8 generations",
     "NPROC_PER_NODE=3 swift rlhf --rlhf_type grpo --num_generations 8",
     Want(Kind.BLOCKER, ("generation_batch_size 3 % num_generations 8 = 3",
                         "(ms-swift swift/"), ("--num_generations one of [3]",))),
    ("4 processes, 4 generations",
     "NPROC_PER_NODE=4 swift rlhf --rlhf_type grpo --num_generations 4",
     Want(ok="generation_batch_size = per_device_train_batch_size 1 x world_size 4 x "
             "steps_per_generation 1 = 4, divisible by 4")),
    ("num_generations not known",
     'NPROC_PER_NODE=4 swift rlhf --rlhf_type grpo --num_generations "$(cat n)"',
     Want(Kind.UNKNOWN, ("cannot do the GRPO batch arithmetic: <--launch-cmd>:1: "
                         "--num_generations",))),
    ("not GRPO", "NPROC_PER_NODE=4 swift rlhf --rlhf_type dpo",
     Want(skip="no GRPO run")),
]


@pytest.mark.parametrize("cmd, want", [c[1:] for c in GRPO], ids=[c[0] for c in GRPO])
def test_grpo_batch(cmd, want):
    check(judge.grpo_batch_divisible(spec_of(cmd)), want)


# -- launch-ports ----------------------------------------------------------------------

TAKEN = judge.Bind("EADDRINUSE Address already in use", (judge.Holder(4242, "python x"),))
TORCHRUN = "torchrun --nproc_per_node 2 --master_port 29501 train.py"
PORTS = [
    ("free", TORCHRUN, {}, {}, Want(ok="ports free: 29501")),
    ("taken", TORCHRUN, {}, {29501: TAKEN},
     Want(Kind.BLOCKER, ("port 29501 of torchrun at <--launch-cmd>:1 cannot be bound: "
                         "EADDRINUSE Address already in use (held by pid 4242)",),
          ("torchrun --master_port 40000",))),
    ("taken, accelerate picks another",
     "accelerate launch --num_processes 2 --main_process_port 29600 train.py", {},
     {29600: TAKEN}, Want(Kind.WARNING, ("accelerate will pick a free one instead",))),
    ("MASTER_PORT exported for torchrun", "torchrun --nproc_per_node 2 train.py",
     {"MASTER_PORT": "1234"}, {},
     Want(Kind.WARNING, ("MASTER_PORT=1234 is exported for torchrun", "does not read it"))),
    ("two layers, one port",
     "torchrun --nproc_per_node 2 --master_port 29501 -m torch.distributed.run "
     "--nproc_per_node 2 --master_port 29501 train.py", {}, {},
     Want(Kind.BLOCKER, ("both use port 29501",))),
    ("a port not known", 'torchrun --nproc_per_node 2 --master_port "$(cat p)" train.py',
     {}, {}, Want(Kind.UNKNOWN, ("cannot check the ports: torchrun at <--launch-cmd>:1",))),
    ("another node's rendezvous",
     "torchrun --nnodes 2 --nproc_per_node 2 --master_addr 10.9.9.9 --master_port 29501 "
     "train.py", {}, {29501: TAKEN}, Want(ok="ports free: 29501")),
    ("no launcher", "python train.py", {}, {}, Want(skip="no distributed launcher")),

    ("after an eval", 'eval "$(cat env.txt)"; torchrun --master_port 29501 train.py', {}, {},
     Want(Kind.UNKNOWN, ("cannot check the ports: torchrun at <--launch-cmd>:1: port "
                         "⟨unknown⟩ (not known: ⟨$PET_RDZV_BACKEND⟩",))),
    ("swift may relaunch after an eval", 'eval "$(cat env.txt)"; swift rlhf', {}, {},
     Want(Kind.UNKNOWN, ("torchrun (relaunched by swift rlhf) at <--launch-cmd>:1: port",))),
]


@pytest.mark.parametrize("cmd, env, binds, want", [c[1:] for c in PORTS],
                         ids=[c[0] for c in PORTS])
def test_launch_ports(cmd, env, binds, want):
    spec = spec_of(cmd, env)
    local = {a: a in ("127.0.0.1", "localhost") for a in map(judge.master_of,
                                                            judge.distributed(spec))
             if a and "⟨" not in a}  # as the adapter: an address not known is not looked up
    check(judge.launch_ports(judge.PortsFacts(spec, local, binds, "40000")), want)


GATED_PORTS = [
    ("one GPU: no relaunch binds the held port", LMF, {}, ONE, {29501: TAKEN},
     Want(ok="no launcher binds a port on this node (torchrun (relaunched by "
             "llamafactory-cli train) at <--launch-cmd>:1: not started: 1 GPU on the "
             "node")),
    ("no GPU: no relaunch", LMF, {}, judge.GpuCount(0, ""), {29501: TAKEN},
     Want(ok="no launcher binds a port on this node")),
    ("two GPUs: the relaunch binds it", LMF, {}, TWO, {29501: TAKEN},
     Want(Kind.BLOCKER, ("port 29501 of torchrun (relaunched by llamafactory-cli train) at "
                         "<--launch-cmd>:1 cannot be bound",), ("MASTER_PORT=40000",))),
    ("count not read: unknown, naming NVML", LMF, {}, UNREAD, {29501: TAKEN},
     Want(Kind.UNKNOWN, ("cannot be bound: EADDRINUSE", "if torchrun (relaunched by "
                         "llamafactory-cli train) starts at all", "the node's GPU count could "
                         "not be read (NVML unavailable: NVML Shared Library Not Found)"),
          ("MASTER_PORT=40000",))),
    ("count not read, port free", LMF, {}, UNREAD, {}, Want(ok="ports free: 29501")),
    ("one GPU, FORCE_TORCHRUN: it relaunches", LMF, {"FORCE_TORCHRUN": "1"}, ONE,
     {29501: TAKEN}, Want(Kind.BLOCKER, ("port 29501 of torchrun (relaunched",))),
    ("one visible of two: CUDA_VISIBLE_DEVICES decides in the launch", LMF,
     {"CUDA_VISIBLE_DEVICES": "1"}, TWO, {29501: TAKEN},
     Want(skip="no distributed launcher")),
    ("two GPUs, USE_RAY: no relaunch", LMF, {"USE_RAY": "1"}, TWO, {29501: TAKEN},
     Want(skip="no distributed launcher")),
    ("two GPUs, CUDA_VISIBLE_DEVICES not known: it may narrow them",
     'CUDA_VISIBLE_DEVICES="$(cat gpus)" ' + LMF, {}, TWO, {29501: TAKEN},
     Want(Kind.UNKNOWN, ("CUDA_VISIBLE_DEVICES may narrow them",))),
    ("one GPU, CUDA_VISIBLE_DEVICES not known: still at most one",
     'CUDA_VISIBLE_DEVICES="$(cat gpus)" ' + LMF, {}, ONE, {29501: TAKEN},
     Want(ok="no launcher binds a port on this node")),
    ("under torchrun, one GPU: one layer on the port", LMF_NESTED, {}, ONE, {},
     Want(ok="ports free: 29501")),
    ("under torchrun, two GPUs: both layers on the port", LMF_NESTED, {}, TWO, {},
     Want(Kind.BLOCKER, ("and torchrun at <--launch-cmd>:1 both use port 29501",))),
    ("under torchrun, count not read", LMF_NESTED, {}, UNREAD, {},
     Want(Kind.UNKNOWN, ("both use port 29501, if both start", "could not be read"))),
]


@pytest.mark.parametrize("cmd, env, gpus, binds, want", [c[1:] for c in GATED_PORTS],
                         ids=[c[0] for c in GATED_PORTS])
def test_launch_ports_behind_a_relaunch_the_gpu_count_decides(cmd, env, gpus, binds, want):
    spec = spec_of(cmd, env)
    local = {"127.0.0.1": True}
    check(judge.launch_ports(judge.PortsFacts(spec, local, binds, "40000", gpus)), want)


def test_a_held_port_behind_a_relaunch_that_may_not_start_is_unknown():
    """swift relaunches only when NPROC_PER_NODE or NNODES is set, and an eval may set
    them: a taken port there is UNKNOWN, not a NO-GO (the GPU count does not decide)."""
    spec = spec_of('eval "$(cat env.txt)"; swift rlhf --model m')
    job = spec.jobs[0]
    # the eval hides the port and address too: give the layer known ones
    inner = replace(job.layers[1], port=29501, port_text="29501", master_addr="127.0.0.1")
    assert inner.maybe and inner.gpu_gate is None
    spec = replace(spec, jobs=(replace(job, layers=(job.layers[0], inner, *job.layers[2:])),))
    v = judge.launch_ports(judge.PortsFacts(spec, {"127.0.0.1": True}, {29501: TAKEN},
                                            "40000", TWO))
    check(v, Want(Kind.UNKNOWN, ("cannot be bound", "if torchrun (relaunched by swift rlhf) "
                                 "starts at all: swift relaunches itself under torchrun only "
                                 "if NPROC_PER_NODE or NNODES is set")))


# -- launch-gpus -----------------------------------------------------------------------

GPUS = [
    ("enough", "torchrun --nproc_per_node 2 train.py", {}, 4,
     Want(ok="torchrun: 2 process(es), 4 GPU(s) visible")),
    ("too many processes", "torchrun --nproc_per_node 8 train.py", {}, 4,
     Want(Kind.BLOCKER, ("torchrun at <--launch-cmd>:1 starts 8 processes per node but 4 "
                         "GPU(s) are visible",),
          ("--nproc_per_node 4 (NPROC_PER_NODE=4)", "CUDA_VISIBLE_DEVICES=0,1,2,3"))),
    ("a GPU the node lacks", "torchrun --nproc_per_node 2 train.py",
     {"CUDA_VISIBLE_DEVICES": "0,5"}, 4,
     Want(Kind.BLOCKER, ("CUDA_VISIBLE_DEVICES=0,5 names GPU 5 but the node has 4",))),
    ("CUDA stops at an invalid entry", "torchrun --nproc_per_node 2 train.py",
     {"CUDA_VISIBLE_DEVICES": "0,-1,2"}, 4,
     Want(Kind.BLOCKER, ("starts 2 processes per node but 1 GPU(s) are visible",))),
    ("empty CUDA_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES= torchrun --nproc_per_node 2 x.py",
     {}, 4, Want(Kind.BLOCKER, ("torchrun at <--launch-cmd>:1 starts 2 processes per node but "
                                "the job sees no GPU (CUDA_VISIBLE_DEVICES='' hides every GPU)",),
                 ("CUDA_VISIBLE_DEVICES=0,1",))),
    ("quoted empty CUDA_VISIBLE_DEVICES", "torchrun --nproc_per_node 2 train.py",
     {"CUDA_VISIBLE_DEVICES": '""'}, 4,
     Want(Kind.BLOCKER, ("but the job sees no GPU (CUDA_VISIBLE_DEVICES='\"\"' hides",))),
    ("nproc not known", 'torchrun --nproc_per_node "$(cat n)" train.py', {}, 4,
     Want(Kind.UNKNOWN, ("cannot count: torchrun at <--launch-cmd>:1: nproc",))),
    ("no GPU to count", "torchrun --nproc_per_node 2 train.py", {}, 0,
     Want(skip="no GPU to count")),
    ("after an eval", 'eval "$(cat env.txt)"; torchrun train.py', {}, 4,
     Want(Kind.UNKNOWN, ("cannot count: torchrun at <--launch-cmd>:1: nproc "
                         "⟨$PET_NPROC_PER_NODE⟩",))),
    ("swift may relaunch after export $(...)",
     'export $(cat .env | xargs); swift rlhf --rlhf_type grpo', {}, 4,
     Want(Kind.UNKNOWN, ("nproc ⟨$NPROC_PER_NODE: may be set there: export $(cat .env",))),
    ("one per GPU", "torchrun --nproc_per_node gpu train.py", {}, 0,
     Want(ok="torchrun: gpu process(es), ? GPU(s) visible")),
]


@pytest.mark.parametrize("cmd, env, gpus, want", [c[1:] for c in GPUS],
                         ids=[c[0] for c in GPUS])
def test_launch_gpus(cmd, env, gpus, want):
    check(judge.launch_gpus(judge.GpusFacts(spec_of(cmd, env), gpus, None)), want)


LMF4 = "NPROC_PER_NODE=4 llamafactory-cli train x.yaml"
GATED_GPUS = [
    ("one GPU: no relaunch, NPROC_PER_NODE unused", LMF4, {}, 1, None,
     Want(ok="torchrun (relaunched by llamafactory-cli train): not started: 1 GPU on the "
             "node")),
    ("two GPUs: 4 processes on 2", LMF4, {}, 2, None,
     Want(Kind.BLOCKER, ("starts 4 processes per node but 2 GPU(s) are visible",))),
    ("eight GPUs", LMF4, {}, 8, None,
     Want(ok="torchrun (relaunched by llamafactory-cli train): 4 process(es), 8 GPU(s)")),
    ("one of the node's GPUs visible: decided in the launch", LMF4,
     {"CUDA_VISIBLE_DEVICES": "0"}, 2, None, Want(skip="no distributed launcher")),
    ("count not read", LMF4, {}, 0, "NVML unavailable: NVML Shared Library Not Found",
     Want(skip="no GPU to count")),
    ("two visible in the launch: decided there, whatever NVML says", LMF4,
     {"CUDA_VISIBLE_DEVICES": "0,1"}, 0, "NVML unavailable: NVML Shared Library Not Found",
     Want(Kind.BLOCKER, ("starts 4 processes per node but 2 GPU(s) are visible",))),
]


@pytest.mark.parametrize("cmd, env, gpus, error, want", [c[1:] for c in GATED_GPUS],
                         ids=[c[0] for c in GATED_GPUS])
def test_launch_gpus_behind_a_relaunch_the_gpu_count_decides(cmd, env, gpus, error, want):
    check(judge.launch_gpus(judge.GpusFacts(spec_of(cmd, env), gpus, error)), want)


def test_launch_gpus_unknown_behind_a_relaunch_that_may_not_start():
    """The judge's contract for a layer that may not start (built by hand: the launch
    reading gives such a layer no known nproc today): too many processes for the GPUs
    the layer sees is UNKNOWN, naming why it may not start, never a NO-GO."""
    spec = spec_of(LMF4)
    job = spec.jobs[0]
    inner = job.layers[1]
    env = {**inner.env, "CUDA_VISIBLE_DEVICES": replace(inner.env["PATH"], value="0,1")}
    spec = replace(spec, jobs=(replace(job, layers=(job.layers[0], replace(inner, env=env),
                                                    *job.layers[2:])),))
    check(judge.launch_gpus(judge.GpusFacts(spec, 0, "NVML unavailable: NVML Shared Library "
                                                     "Not Found")),
          Want(Kind.UNKNOWN, ("starts 4 processes per node but 2 GPU(s) are visible, if it "
                              "starts at all", "could not be read (NVML unavailable")))


def test_processes_per_node_behind_a_relaunch_the_gpu_count_decides():
    """gpu-inventory and host-limits count the ranks from the launch: llamafactory-cli's
    NPROC_PER_NODE=4 is used only when it relaunches (more than one GPU)."""
    spec = spec_of(LMF4)
    assert spec.gated and spec.processes_per_node == 4
    assert (spec.processes_on(1), spec.processes_on(2), spec.processes_on(None)) == \
        (None, 4, None)
    nested = spec_of(LMF_NESTED)
    assert (nested.processes_on(1), nested.processes_on(2)) == (2, 2)
    plain = spec_of(TORCHRUN)
    assert not plain.gated and plain.processes_on(None) == 2


def test_every_launch_judge_skips_without_a_script():
    for v in (judge.empty_variable(None), judge.grpo_batch_divisible(None),
              judge.launch_inputs(judge.InputsFacts(None)),
              judge.launch_ports(judge.PortsFacts(None, {}, {}, "")),
              judge.launch_gpus(judge.GpusFacts(None, 0, None))):
        assert v.skip.startswith("no launch script"), v


@pytest.mark.parametrize("binds, want", [
    ({29501: TAKEN}, Want(Kind.UNKNOWN, ("port 29501 is taken here (EADDRINUSE Address "
                                         "already in use) and its master address ⟨",))),
    ({}, Want(ok="ports free: 29501")),
], ids=["taken", "free"])
def test_a_master_address_not_known_is_not_another_node(binds, want):
    spec = spec_of("torchrun --nnodes 2 --nproc_per_node 2 --master_addr 10.0.0.1 "
                   "--master_port 29501 train.py")
    job = spec.jobs[0]
    layer = replace(job.layers[0], master_addr="⟨$(hostname -I)⟩")
    spec = replace(spec, jobs=(replace(job, layers=(layer, *job.layers[1:])),))
    check(judge.launch_ports(judge.PortsFacts(spec, {}, binds, "40000")), want)


# -- launcher-args ---------------------------------------------------------------------

ARGS = [
    ("accepted", "torchrun --nnodes=1:2 --nproc-per-node=2 train.py", {},
     Want(ok="every launcher accepts its command line (torchrun)")),
    ("nnodes MIN:MAX reversed: the corrected line", "torchrun --nnodes=2:1 train.py --lr 1",
     {}, Want(Kind.BLOCKER, ("torchrun at <--launch-cmd>:1 stops at once: min_nodes must be "
                             "> 0 and <= max_nodes, got min_nodes=2, max_nodes=1",),
              ("torchrun --nnodes=1:2 train.py --lr 1",))),
    ("nnodes as two words", "python -m torch.distributed.run --nnodes 4:2 -m pkg.train", {},
     Want(Kind.BLOCKER, ("python -m torch.distributed.run at",),
          ("python -m torch.distributed.run --nnodes 2:4 -m pkg.train",))),
    ("nproc not a number", "torchrun --nproc-per-node=abc train.py", {},
     Want(Kind.BLOCKER, ("Unsupported nproc_per_node value: abc",),
          ("torchrun --help  # fix --nproc-per-node: an integer, or auto",))),
    ("rdzv-conf key without a value", "torchrun --rdzv-conf=timeout= train.py", {},
     Want(Kind.BLOCKER, ("The rendezvous configuration option 'timeout' must have a value",),
          ("fix --rdzv-conf",))),
    ("PET_ twin read the same way", "torchrun train.py", {"PET_NNODES": "3:1"},
     Want(Kind.BLOCKER, ("got min_nodes=3, max_nodes=1",))),
    ("swift train: no such method", "swift train --model m", {},
     Want(Kind.BLOCKER, ("swift train at <--launch-cmd>:1 stops at once: swift: no method "
                         "'train'",), ("swift sft --model m",))),
    ("swift grpo is rlhf", "NPROC_PER_NODE=2 swift grpo --model m", {},
     Want(Kind.BLOCKER, ("no method 'grpo'",), ("swift sft --help  # in <--launch-cmd>:1 "
                                                "write rlhf --rlhf_type grpo for grpo",))),
    ("swift grpo is rlhf, the line alone", "swift grpo --model m", {},
     Want(Kind.BLOCKER, ("no method 'grpo'",), ("swift rlhf --rlhf_type grpo --model m",))),
    ("swift's relaunch with a bad NPROC_PER_NODE", "NPROC_PER_NODE=abc swift sft --model m",
     {}, Want(Kind.BLOCKER, ("torchrun (relaunched by swift sft) at <--launch-cmd>:1 stops "
                             "at once: Unsupported nproc_per_node value: abc",),
              ("torchrun --help  # set NPROC_PER_NODE (passed on as --nproc-per-node)",))),
    ("deepspeed --no_ssh without --node_rank", "deepspeed --no_ssh --num_nodes 1 train.py", {},
     Want(Kind.BLOCKER, ("Launching training without ssh, but --node_rank is not set",),
          ('deepspeed --node_rank="${NODE_RANK:?the index of this node in the hostfile, '
           'from 0}" --no_ssh --num_nodes 1 train.py',))),
    ("deepspeed --include with --exclude",
     "deepspeed --include localhost:0 --exclude localhost:1 train.py", {},
     Want(Kind.BLOCKER, ("mutually exclusive",), ("deepspeed --help  # fix --include",))),
    ("accelerate option error", "accelerate launch --num_processes x train.py", {},
     Want(Kind.BLOCKER, ("--num_processes 'x' is not an integer",),
          ("accelerate launch --help  # fix --num_processes",))),
    ("accelerate two modes", "accelerate launch --cpu --multi_gpu train.py", {},
     Want(Kind.BLOCKER, ("only one of",))),
    ("in a branch that may not run",
     'if [ "$(hostname)" = n0 ]; then torchrun --nnodes=2:1 train.py; fi', {},
     Want(Kind.UNKNOWN, ("got min_nodes=2, max_nodes=1, if it starts at all: the line is in "
                         "a branch that may not run",), ("torchrun --nnodes=1:2 train.py",))),
    ("options not readable", 'torchrun $(cat args) train.py', {},
     Want(Kind.UNKNOWN, ("may hold torchrun options",))),
    ("an option value not known", 'torchrun --nnodes="$(cat n)" train.py', {},
     Want(Kind.UNKNOWN, ("torchrun at <--launch-cmd>:1: --nnodes=\"$(cat n)\"",))),
    ("an eval before: NPROC_PER_NODE is set, the relaunch is sure",
     'eval "$(cat env)"; NPROC_PER_NODE=abc swift sft --model m', {},
     Want(Kind.BLOCKER, ("Unsupported nproc_per_node value: abc",))),
    ("a relaunch that may not start", 'NPROC_PER_NODE=abc swift "$(cat method)" --model m', {},
     Want(Kind.UNKNOWN, ("Unsupported nproc_per_node value: abc, if it starts at all: swift "
                         "⟨$(cat method)⟩ may stop on the method",))),
    ("the swift method not known", 'swift "$(cat method)" --model m', {},
     Want(Kind.UNKNOWN, ("the method ⟨$(cat method)⟩",))),
    ("a script argument not known is not an option", 'torchrun train.py --lr "$(cat lr)"', {},
     Want(ok="every launcher accepts")),
    # the corrected line would carry '***' for the secret (a literal *** when pasted):
    # the change is named instead
    ("a masked secret is never pasted: the change named",
     "torchrun --nnodes=2:1 train.py --hf_token hf_abcdefghijklmnop", {},
     Want(Kind.BLOCKER, fix=("torchrun --help  # in <--launch-cmd>:1 write --nnodes=1:2 for "
                             "--nnodes=2:1",))),
    ("an env prefix is never dropped: the change named",
     "NCCL_DEBUG=INFO torchrun --nnodes=2:1 train.py", {},
     Want(Kind.BLOCKER, fix=("torchrun --help  # in <--launch-cmd>:1 write --nnodes=1:2 for "
                             "--nnodes=2:1",))),
    ("a pipe is never dropped: the change named",
     "torchrun --nnodes=2:1 train.py | tee run.log", {},
     Want(Kind.BLOCKER, fix=("torchrun --help  # in <--launch-cmd>:1 write --nnodes=1:2 for "
                             "--nnodes=2:1",))),
    ("a redirect is never dropped: the change named",
     "torchrun --nnodes=2:1 train.py > run.log 2>&1", {},
     Want(Kind.BLOCKER, fix=("torchrun --help  # in <--launch-cmd>:1 write --nnodes=1:2 for "
                             "--nnodes=2:1",))),
    ("variables pasted as written", 'T=hf_abcdefghijklmnop; torchrun --nnodes=2:1 train.py '
                                    '--hf_token "$T"', {},
     Want(Kind.BLOCKER, fix=('torchrun --nnodes=1:2 train.py --hf_token "$T"',))),
    ("no launcher", "python train.py", {}, Want(skip="no distributed launcher")),
    ("exits before it launches", '[ -n "${D:-}" ] || exit 1; torchrun --nnodes=2:1 t.py', {},
     Want(skip="the script exits at line 1 before it launches anything")),
]


@pytest.mark.parametrize("cmd, env, want", [c[1:] for c in ARGS], ids=[c[0] for c in ARGS])
def test_launcher_args(cmd, env, want):
    check(judge.launcher_args(judge.ArgsFacts(spec_of(cmd, env))), want)


def test_launcher_args_fixes_are_commands():
    """Every fix of the table is copy-paste shell: commands bash parses, no placeholder."""
    for _, cmd, env, want in ARGS:
        if want.kind is None:
            continue
        for p in judge.launcher_args(judge.ArgsFacts(spec_of(cmd, env))).problems:
            if not p.fix:  # an option not known: nothing to change yet
                assert p.kind is Kind.UNKNOWN and "does not tell" in p.text, p
                continue
            commands, _ = split(p.fix)
            assert commands, (cmd, p.fix)
            assert MASK not in p.fix, (cmd, p.fix)  # pasted, '***' would be the value
            for line in commands.splitlines():
                assert is_command(line) and not PLACEHOLDER.search(line), (cmd, line)
            bash = subprocess.run(["bash", "-n"], input=commands + "\n", text=True,
                                  capture_output=True, timeout=10)
            assert bash.returncode == 0, (cmd, commands, bash.stderr)


@pytest.mark.parametrize("cmd", [
    "torchrun --nnodes=2:1 train.py --hf_token hf_abcdefghijklmnop",
    "torchrun --nnodes=2:1 --api-key=hf_abcdefghijklmnop train.py",  # torchrun rejects it
    "T=hf_abcdefghijklmnop; swift train --hub_token $T --model m",
])
def test_launcher_args_never_leaks_a_secret(cmd):
    v = judge.launcher_args(judge.ArgsFacts(spec_of(cmd)))
    assert v.problems and "abcdefghijklmnop" not in repr(v), v


LMF_BAD = "NPROC_PER_NODE=abc llamafactory-cli train x.yaml"


@pytest.mark.parametrize("gpus, error, want", [
    (1, "", Want(ok="every launcher accepts its command line (llamafactory-cli train, "
                    "torchrun (relaunched by llamafactory-cli train))")),
    (4, "", Want(Kind.BLOCKER, ("Unsupported nproc_per_node value: abc",),
                 ("torchrun --help  # set NPROC_PER_NODE",))),
    (None, "NVML unavailable", Want(Kind.UNKNOWN, ("if it starts at all", "NVML "
                                                   "unavailable"))),
], ids=["one GPU: no relaunch", "four GPUs: it relaunches", "count not read"])
def test_launcher_args_behind_a_relaunch_the_gpu_count_decides(gpus, error, want):
    facts = judge.ArgsFacts(spec_of(LMF_BAD), judge.GpuCount(gpus, error))
    check(judge.launcher_args(facts), want)


def test_launcher_args_skips_without_a_script():
    assert judge.launcher_args(judge.ArgsFacts(None)).skip.startswith("no launch script")


def test_the_launchers_read_what_the_script_writes_through_one_seam(tmp_path):
    """deepspeed's hostfile and swift's --config file are read as the job sees them, as
    accelerate's config is (launchers.job_file): the script's here-document, expanded."""
    spec = script_of(tmp_path, "cat > hostfile <<EOF\nlocalhost slots=${G:-4}\nEOF\n"
                               "deepspeed --hostfile hostfile t.py\n")
    layer = spec.jobs[-1].distributed[0]
    assert (layer.nproc, layer.nproc_source) == (4, f"hostfile {tmp_path}/hostfile")
    spec = script_of(tmp_path, "cat > hostfile <<EOF\nlocalhost slots=$(nvidia-smi -L | wc -l)"
                               "\nEOF\ndeepspeed --hostfile hostfile t.py\n")
    layer = spec.jobs[-1].distributed[0]
    assert layer.nproc is None and "is written by the script at run.sh:1" in layer.unread
    # swift: the config's ENV sets NPROC_PER_NODE: swift relaunches under torchrun
    spec = script_of(tmp_path, "N=2\ncat > sft.yaml <<EOF\nENV:\n  NPROC_PER_NODE: $N\n"
                               "model: Qwen/Qwen2.5-7B\nEOF\nswift sft sft.yaml\n")
    assert [x.nproc for x in spec.jobs[-1].distributed] == [2]
    # written by the script with content not known: its ENV may set anything
    spec = script_of(tmp_path, "cat > sft.yaml <<EOF\nENV:\n  NPROC_PER_NODE: $(nproc)\n"
                               "EOF\nswift sft sft.yaml\n")
    assert spec.jobs[-1].distributed[0].maybe


def test_a_write_that_may_not_run_leaves_the_file_on_disk_unknown(tmp_path):
    """An older config on disk, rewritten in a branch that may not run: neither the old
    nor the new content is what accelerate surely reads."""
    (tmp_path / "acc.yaml").write_text("distributed_type: MULTI_GPU\nnum_processes: 2\n")
    spec = script_of(tmp_path, "if [ -n \"$(cat /nonexistent)\" ]; then\n"
                               "  cat > acc.yaml <<EOF\ndistributed_type: MULTI_GPU\n"
                               "num_processes: 8\nEOF\nfi\n"
                               "accelerate launch --config_file acc.yaml t.py\n")
    layer = spec.jobs[-1].distributed[0]
    assert layer.nproc is None and "only if that branch runs" in layer.nproc_text
    # the same write surely run: its content, never the disk's
    spec = script_of(tmp_path, "cat > acc.yaml <<EOF\ndistributed_type: MULTI_GPU\n"
                               "num_processes: 8\nEOF\n"
                               "accelerate launch --config_file acc.yaml t.py\n")
    assert spec.jobs[-1].distributed[0].nproc == 8
    # a config that stops accelerate names the script line that writes it
    spec = script_of(tmp_path, "cat > acc.yaml <<'EOF'\n- a list\nEOF\n"
                               "accelerate launch --config_file acc.yaml t.py\n")
    assert spec.jobs[-1].distributed[0].error == \
        f"{tmp_path}/acc.yaml (written by the script at run.sh:1) is not a mapping"


# (the script, the environment, what its fix must say): the fix edits the wrong token in
# place where it is written, so the rest of the line (secrets, redirects, variables)
# stays as it was; a token not written there exactly once gets the change named.
SECRET = "hf_abcdefghijklmnop"
SCRIPT_FIXES = [
    ("nnodes reversed", "torchrun --nnodes=2:1 train.py --lr 1\n", {},
     "sed -i 2s/--nnodes=2:1/--nnodes=1:2/ "),
    ("nnodes as two words", "python -m torch.distributed.run --nnodes 4:2 -m pkg.train\n", {},
     "sed -i 2s/4:2/2:4/ "),
    ("swift train", "swift train --model m\n", {}, "sed -i 2s/train/sft/ "),
    ("swift grpo", "NPROC_PER_NODE=2 swift grpo --model m\n", {},
     "sed -i '2s/grpo/rlhf --rlhf_type grpo/' "),
    ("deepspeed --no_ssh without --node_rank", "deepspeed --no_ssh --num_nodes 1 train.py\n",
     {}, "sed -i '2s/deepspeed/deepspeed --node_rank=\"${NODE_RANK:?the index of this node "
         "in the hostfile, from 0}\"/' "),
    ("in a branch", 'if [ "$(hostname)" = n0 ]; then\n  torchrun --nnodes=2:1 train.py\nfi\n',
     {}, "sed -i 3s/--nnodes=2:1/--nnodes=1:2/ "),
    ("a secret, a redirect, a continued line",
     f"export HF_TOKEN={SECRET}\nmkdir -p logs\nWANDB_API_KEY={SECRET} torchrun \\\n"
     f"  --nnodes=2:1 --nproc-per-node=1 train.py --wandb-key {SECRET} \\\n"
     '  --hf_token "$HF_TOKEN" > logs/run.log 2>&1\n', {},
     "sed -i 5s/--nnodes=2:1/--nnodes=1:2/ "),
    ("from a variable", "NN=2:1\ntorchrun --nnodes=$NN train.py\n", {},
     "sed -i 2s/NN=2:1/NN=1:2/ "),
    ("from a quoted variable", 'export NN="2:1"\ntorchrun --nnodes "$NN" train.py\n', {},
     "sed -i '2s/NN=\"2:1\"/NN=1:2/' "),
    ("written twice: the change named", "torchrun --nnodes=2:1 t.py --x=--nnodes=2:1\n", {},
     "torchrun --help  # in run.sh:2 write --nnodes=1:2 for --nnodes=2:1"),
    ("from the environment: the change named", "torchrun --nnodes=$NN train.py\n",
     {"NN": "2:1"}, "torchrun --help  # in run.sh:2 write --nnodes=1:2 for --nnodes=$NN"),
]


@pytest.mark.parametrize("text, env, fix", [c[1:] for c in SCRIPT_FIXES],
                         ids=[c[0] for c in SCRIPT_FIXES])
def test_launcher_args_fix_edits_the_script(tmp_path, text, env, fix):
    """The fix, run with bash on the script, leaves a script bash parses, that the
    launcher accepts, with every other byte as it was (secrets and redirects kept); the
    fix itself holds no secret and no mask."""
    path = tmp_path / "run.sh"
    before = "#!/bin/bash\n" + text
    path.write_text(before)
    spec = load(str(path), None, {**ENV, **env}, cwd=str(tmp_path))
    v = judge.launcher_args(judge.ArgsFacts(spec, texts={str(path): before}))
    assert v.problems and v.problems[0].kind in (Kind.BLOCKER, Kind.UNKNOWN), v.problems
    got = v.problems[0].fix
    assert got.startswith(fix), (got, fix)
    assert SECRET not in repr(v) and MASK not in got, got
    commands, _ = split(got)
    assert commands and all(is_command(c) for c in commands.splitlines()), got
    if not got.startswith("sed "):
        return
    assert got.endswith(f" {path}")
    ran = subprocess.run(["bash", "-c", got], cwd=tmp_path, capture_output=True, text=True,
                         timeout=10)
    assert ran.returncode == 0, ran.stderr
    after = path.read_text()
    assert after != before
    assert subprocess.run(["bash", "-n", str(path)], timeout=10).returncode == 0, after
    edited = [(a, b) for a, b in zip(before.splitlines(), after.splitlines(), strict=True)
              if a != b]
    assert len(edited) == 1, edited  # one line changed, the rest byte for byte
    for kept in (SECRET, "> logs/run.log 2>&1", '"$HF_TOKEN"', "\\"):
        assert before.count(kept) == after.count(kept), kept
    again = judge.launcher_args(judge.ArgsFacts(load(str(path), None, {**ENV, **env},
                                                     cwd=str(tmp_path))))
    assert not [p for p in again.problems if "stops at once" in p.text], again.problems
