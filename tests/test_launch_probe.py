"""The launch-script probe on its own: what bash would see, the launch layers it finds,
and that nothing it is given can crash it or make it guess."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from preflight.launch import spec as launch
from preflight.launch.spec import LaunchError

ENV = {"PATH": "/usr/bin:/bin", "HOME": "/root"}


def _load(tmp_path: Path, text: str, **env) -> launch.LaunchSpec:
    script = tmp_path / "run.sh"
    script.write_text(text)
    return launch.load(str(script), None, {**ENV, **env}, cwd=str(tmp_path))


def _argv(spec, index: int = -1) -> list[str]:
    return [w.text for w in spec.commands[index].argv]


# -- evaluation ------------------------------------------------------------------------


def test_defaults_assignments_exports_and_prefixes(tmp_path):
    spec = _load(tmp_path, """
A=${A:-one}
: ${B:=two}
export C="$A-$B"
D=4 python train.py --a "$A" --b $B --c ${C} \\
    --d "${D:-none}" 2>&1 | tee "$A.log"
""")
    py = next(c for c in spec.commands if c.program == "python")
    assert [w.text for w in py.argv] == ["python", "train.py", "--a", "one", "--b", "two",
                                         "--c", "one-two", "--d", "none"]
    assert py.line == 5 and py.env["D"].value == "4" and py.env["C"].value == "one-two"
    assert "A" not in py.env  # assigned, never exported
    tee = next(c for c in spec.commands if c.program == "tee")
    assert _argv(spec)[-1] == "one.log" and "D" not in tee.env


def test_environment_wins_over_defaults(tmp_path):
    spec = _load(tmp_path, 'N=${PRL_N:-4}\ntorchrun --nproc_per_node "$N" x.py\n', PRL_N="2")
    assert spec.processes_per_node == 2


def test_quoting_and_field_splitting(tmp_path):
    spec = _load(tmp_path, """X="a b"
python t.py '$X' "$X" $X "q\\"x" a\\ b $'t\\tc'
""")
    assert _argv(spec) == ["python", "t.py", "$X", "a b", "a", "b", 'q"x', "a b", "t\tc"]


def test_source_set_a_and_cd(tmp_path):
    (tmp_path / "env.sh").write_text("SECRET_TOKEN=abcd1234\nDATA=/data\n")
    (tmp_path / "sub").mkdir()
    spec = _load(tmp_path, "set -a\nsource ./env.sh\nset +a\ncd sub\npython t.py $DATA\n")
    py = spec.commands[-1]
    assert py.env["DATA"].value == "/data" and py.cwd == str(tmp_path / "sub")
    assert "abcd1234" in spec.secrets and spec.variable("SECRET_TOKEN") == "***"


def test_missing_source_is_unknown_not_fatal(tmp_path):
    spec = _load(tmp_path, "source /nonexistent/conda.sh\npython t.py\n")
    assert any("no such file" in u.reason for u in spec.unknowns)
    assert spec.programs == frozenset({"python"})


def test_if_decided_by_the_environment(tmp_path):
    text = ('if [ -z "$PORT" ]; then\n  PORT=29500\nfi\n'
            'torchrun --master_port $PORT --nnodes 2 t.py\n')
    assert _load(tmp_path, text).jobs[0].layers[0].port == 29500
    assert _load(tmp_path, text, PORT="29511").jobs[0].layers[0].port == 29511


def test_undecided_if_considers_both_branches(tmp_path):
    spec = _load(tmp_path, """if ip link show eth0 >/dev/null; then
  IF=eth0
else
  IF=^lo
fi
python t.py --if "$IF"
""")
    word = spec.commands[-1].argv[-1]
    assert not word.known and "'eth0'" in word.reason and "'^lo'" in word.reason


def test_unknowns_are_shown_never_guessed(tmp_path):
    spec = _load(tmp_path, "RUN=out/run-$(date +%s)\nN=$(nproc)\n"
                           "torchrun --nproc_per_node $N t.py --output_dir $RUN\n")
    layer = spec.jobs[0].layers[0]
    assert layer.nproc is None and layer.nproc_text == "⟨$(nproc)⟩"
    assert spec.output_dirs == (str(tmp_path / "out"),)  # the known part of out/run-⟨...⟩
    assert spec.outputs[0].path == "out/run-⟨$(date +%s)⟩"


def test_pure_substitutions(tmp_path):
    spec = _load(tmp_path, 'HERE=$(dirname $0)\npython "$HERE/t.py" $(basename /a/b.sh .sh) '
                           '"$(pwd)" "$(command -v sh)"\n')
    assert _argv(spec) == ["python", f"{tmp_path}/t.py", "b", str(tmp_path), "/usr/bin/sh"]


def test_what_bashlex_cannot_parse_is_unknown(tmp_path):
    # the script-directory idiom: bashlex 0.18 rejects && inside $( ... ); it is regrouped
    spec = _load(tmp_path, 'HERE=$(cd "$(dirname "$0")" && pwd)\npython "$HERE/t.py"\n')
    assert _argv(spec) == ["python", f"{tmp_path}/t.py"]
    # what bashlex still cannot parse (&& in $(...) inside ${...}) is unknown; the rest is read
    spec = _load(tmp_path, 'N=1\nN=${A:-$(a && b)}\npython t.py $N\n')
    word = spec.commands[-1].argv[2]
    assert not word.known and "not evaluated" in word.reason
    assert any(u.line == 2 and "cannot parse" in u.reason for u in spec.unknowns)


def test_functions_heredocs_and_arrays(tmp_path):
    spec = _load(tmp_path, """launch() {
  torchrun --nproc_per_node "$1" --master_port 0 t.py
}
cat > cfg.yaml <<EOF
x: $UNSET_IN_HEREDOC
EOF
ARGS=(--a 1)
launch 2
python t.py "${ARGS[@]}"
""")
    assert spec.processes_per_node == 2
    assert _argv(spec) == ["python", "t.py", "--a", "1"]  # arrays are evaluated
    assert not any(u.variable == "UNSET_IN_HEREDOC" for u in spec.empties)


def test_guard_exit_stops_the_script(tmp_path):
    spec = _load(tmp_path, '[ -n "$DATASET" ] || { echo usage; exit 1; }\ntorchrun t.py\n')
    assert spec.exit.line == 1 and spec.exit.empty == ("DATASET",) and not spec.jobs
    spec = _load(tmp_path, '[ -n "$DATASET" ] || { echo usage; exit 1; }\ntorchrun t.py\n',
                 DATASET="sim")
    assert spec.exit is None and spec.jobs


def test_crlf_and_non_utf8_are_noted(tmp_path):
    script = tmp_path / "run.sh"
    script.write_bytes(b"A=1\r\n# \xff\r\ntorchrun --master_port 0 t.py\r\n")
    spec = launch.load(str(script), None, ENV, cwd=str(tmp_path))
    reasons = " ".join(u.reason for u in spec.unknowns)
    assert "CRLF" in reasons and "not UTF-8" in reasons and spec.jobs


# -- launch layers ---------------------------------------------------------------------


def _layers(cmd: str, **env):
    spec = launch.load(None, cmd, {**ENV, **env}, cwd="/")
    return [(x.launcher, x.kind, x.port, x.port_text, x.nproc) for x in spec.jobs[0].layers]


@pytest.mark.parametrize("cmd, env, relaunched", [
    ("swift sft --model m", {"NPROC_PER_NODE": "2"}, True),
    ("swift rlhf --model m", {"NNODES": "2"}, True),
    ("swift infer --model m", {"NPROC_PER_NODE": "2"}, True),
    ("swift export --model m", {"NPROC_PER_NODE": "2"}, False),
    ("swift sft --model m", {}, False),
    ("megatron export --load m", {"NPROC_PER_NODE": "2"}, True),
    ("python -m swift.cli.rlhf --model m", {"NPROC_PER_NODE": "2"}, False),
])
def test_swift_relaunch_rule(cmd, env, relaunched):
    kinds = [kind for _, kind, *_ in _layers(cmd, **env)]
    assert ("distributed" in kinds) == relaunched


def test_swift_passes_master_port_on():
    layers = _layers("swift sft", NPROC_PER_NODE="4", MASTER_PORT="29511")
    assert layers[1][1:] == ("distributed", 29511, "29511", 4)


# What tests/test_swift_relaunch_oracle.py found against ms-swift 4.6's own cli_main.


@pytest.mark.parametrize("cmd", ["swift train --model m", "swift SFT --model m",
                                 "megatron infer --load m", "megatron merge_lora --load m"])
def test_swift_method_it_does_not_have_stops_it(cmd):
    """swift/cli/main.py:91 looks the method up in ROUTE_MAPPING (megatron's has only pt,
    sft, rlhf, export): any other is a KeyError before anything runs, never a relaunch."""
    layers = launch.load(None, cmd, {**ENV, "NPROC_PER_NODE": "2"}, cwd="/").jobs[0].layers
    assert len(layers) == 1 and "no method" in layers[0].error
    assert layers[0].describe()["error"] == layers[0].error


def test_megatron_worker_is_its_own_module():
    layers = launch.load(None, "megatron rlhf --rlhf_type grpo", {**ENV, "NNODES": "1"},
                         cwd="/").jobs[0].layers
    assert layers[-1].program == "swift.cli._megatron.rlhf"  # not swift rlhf's trainer
    assert not list(launch.grpo_runs(launch.load(
        None, "NNODES=1 megatron rlhf --rlhf_type grpo", ENV, cwd="/")))


def test_swift_config_env_reaches_torchrun_and_the_worker(tmp_path):
    """main.py:57 exports ENV into swift's own os.environ, which torchrun and the worker
    inherit (main.py:100); swift itself was started without it."""
    (tmp_path / "c.yaml").write_text("ENV:\n  NPROC_PER_NODE: 2\n  CUDA_VISIBLE_DEVICES: 0,1\n"
                                     "dataset: [{name: x}, b]\nkw: {a: 1}\n")
    spec = launch.load(None, "CUDA_VISIBLE_DEVICES=3 swift sft c.yaml", ENV, str(tmp_path))
    wrapper, inner, worker = spec.jobs[0].layers
    assert "NPROC_PER_NODE" not in wrapper.env and inner.nproc == 2
    for layer in (inner, worker):
        assert layer.env["NPROC_PER_NODE"].value == "2"
        assert layer.env["CUDA_VISIBLE_DEVICES"].value == "3"  # already set: it wins
    # main.py:63-70: list items by str() (a dict there is Python's repr), a dict as JSON
    assert [w.text for w in worker.args] == ["--dataset", "{'name': 'x'}", "b",
                                             "--kw", '{"a": 1}']
    spec = launch.load(None, "swift export c.yaml", ENV, str(tmp_path))
    assert spec.jobs[0].layers[0].env["CUDA_VISIBLE_DEVICES"].value == "0,1"


@pytest.mark.parametrize("text", ["- a\n- b\n", "ENV: [NPROC_PER_NODE]\n", "just text\n"])
def test_swift_config_that_is_not_a_mapping_stops_swift(tmp_path, text):
    (tmp_path / "c.yaml").write_text(text)
    layers = launch.load(None, "swift sft c.yaml", {**ENV, "NPROC_PER_NODE": "2"},
                         str(tmp_path)).jobs[0].layers
    assert len(layers) == 1 and "mapping" in layers[0].error


@pytest.mark.parametrize("cmd, env", [
    ('swift "$(pick-method)" --model m', {"NPROC_PER_NODE": "2"}),  # sft relaunches
    ('megatron "$(pick-method)" --model m', {"NPROC_PER_NODE": "2"}),
    ('swift sft "$(pick-config)"', {}),  # a config file's ENV may set NPROC_PER_NODE
])
def test_swift_relaunch_not_known_when_its_words_are_not(cmd, env):
    layers = launch.load(None, cmd, {**ENV, **env}, cwd="/").jobs[0].layers
    dist = [x for x in layers if x.kind == "distributed"]
    assert len(dist) == 1 and dist[0].maybe and dist[0].nproc is None


@pytest.mark.parametrize("cmd, env, port, text", [
    ("torchrun --master-port 29600 --nnodes 2 t.py", {}, 29600, "29600"),
    ("torchrun --master_port=29601 t.py", {}, 29601, "29601"),
    ("torchrun --nnodes 2 t.py", {"PET_MASTER_PORT": "29602"}, 29602, "29602"),
    ("torchrun --nnodes 2 t.py", {"MASTER_PORT": "29603"}, 29500, "29500"),
    ("torchrun t.py", {"MASTER_PORT": "29603"}, None, "free"),
    ("torchrun --standalone --master_port 29604 t.py", {}, None, "free"),
    ("python -m torch.distributed.launch --nnodes 2 t.py", {}, 29500, "29500"),
    ("deepspeed --num_gpus 2 t.py", {}, 29500, "29500"),
    ("accelerate launch --main_process_port 29605 --num_processes 2 t.py", {}, 29605, "29605"),
])
def test_torchrun_port_rules(cmd, env, port, text):
    _, kind, got, got_text, _ = _layers(cmd, **env)[0]
    assert kind == "distributed" and (got, got_text) == (port, text)


def test_programs_include_ray_and_children():
    spec = launch.load(None, "ray job submit --address http://127.0.0.1:8265 -- python3 t.py",
                       ENV, cwd="/")
    assert {"ray", "python3"} <= spec.programs
    assert [x.launcher for x in spec.jobs[0].layers] == ["ray job submit", "python3 t.py"]


# LLaMA-Factory launcher.py:56-134: `llamafactory-cli train` (alias `lmf`) relaunches itself
# under torchrun when FORCE_TORCHRUN (or USE_MCA) is on, or when more than one device is
# visible and USE_RAY / USE_KT are off; `export` and the rest never relaunch.
LMF = "examples/train_lora/llama3_lora_sft.yaml"


@pytest.mark.parametrize("cmd, env, relaunched", [
    (f"llamafactory-cli train {LMF}", {"FORCE_TORCHRUN": "1"}, True),
    (f"lmf train {LMF}", {"FORCE_TORCHRUN": "true"}, True),
    (f"llamafactory-cli train {LMF}", {"USE_MCA": "1"}, True),
    (f"llamafactory-cli train {LMF}", {"CUDA_VISIBLE_DEVICES": "0,1"}, True),
    (f"llamafactory-cli train {LMF}", {"CUDA_VISIBLE_DEVICES": "0"}, False),
    (f"llamafactory-cli train {LMF}", {"CUDA_VISIBLE_DEVICES": "0,1", "USE_RAY": "1"}, False),
    (f"llamafactory-cli train {LMF}", {"FORCE_TORCHRUN": "1", "USE_RAY": "1"}, True),
    (f"llamafactory-cli export {LMF}", {"FORCE_TORCHRUN": "1"}, False),
    (f"llamafactory-cli sft {LMF}", {"FORCE_TORCHRUN": "1"}, False),
    (f"llamafactory-cli sft {LMF}", {"FORCE_TORCHRUN": "1", "USE_V1": "1"}, True),
    (f"python -m llamafactory.cli train {LMF}", {"FORCE_TORCHRUN": "1"}, True),
    (f"python -m llamafactory.launcher {LMF}", {"FORCE_TORCHRUN": "1"}, False),
])
def test_llamafactory_relaunch_rule(cmd, env, relaunched):
    layers = launch.load(None, cmd, {**ENV, **env}, cwd="/").jobs[0].layers
    assert any(x.kind == "distributed" for x in layers) == relaunched
    assert not any(x.maybe for x in layers)


@pytest.mark.parametrize("env, nproc, port, port_text", [
    ({"FORCE_TORCHRUN": "1", "NPROC_PER_NODE": "4", "MASTER_PORT": "29511"}, 4, 29511,
     "29511"),
    # MASTER_PORT unset: a port it binds free at launch (extras/misc.py:347), never "taken"
    ({"CUDA_VISIBLE_DEVICES": "0,1,2"}, 3, None, "free"),
    # RDZV_ID: an elastic c10d rendezvous at MASTER_ADDR:MASTER_PORT (launcher.py:85-112)
    ({"FORCE_TORCHRUN": "1", "NPROC_PER_NODE": "2", "RDZV_ID": "job1",
      "MASTER_PORT": "29512"}, 2, 29512, "29512"),
])
def test_llamafactory_relaunch_values(env, nproc, port, port_text):
    inner = launch.load(None, f"llamafactory-cli train {LMF}", {**ENV, **env},
                        cwd="/").jobs[0].layers[1]
    assert inner.implicit and (inner.nproc, inner.port, inner.port_text) == (
        nproc, port, port_text)


@pytest.mark.parametrize("env", [{}, {"RDZV_ID": "job1"}])
def test_llamafactory_master_addr(env):
    """MASTER_ADDR (default 127.0.0.1) is the rendezvous host, also for the elastic
    c10d endpoint RDZV_ID selects: what master-addr and launch-ports read."""
    base = {**ENV, **env, "FORCE_TORCHRUN": "1", "NNODES": "2"}
    spec = launch.load(None, f"lmf train {LMF}", base, cwd="/")
    assert spec.jobs[0].layers[1].master_addr == "127.0.0.1"
    spec = launch.load(None, f"lmf train {LMF}", {**base, "MASTER_ADDR": "10.0.0.5"}, cwd="/")
    inner = spec.jobs[0].layers[1]
    assert (inner.master_addr, inner.nnodes) == ("10.0.0.5", 2)


def test_llamafactory_device_count_is_one_per_gpu_and_maybe():
    """With the device count deciding and no CUDA_VISIBLE_DEVICES in the launch, the nproc
    is "one per visible GPU" (no number), and the relaunch itself is not certain."""
    layers = launch.load(None, f"llamafactory-cli train {LMF}", ENV, cwd="/").jobs[0].layers
    assert [x.launcher for x in layers] == [
        "llamafactory-cli train", "torchrun (relaunched by llamafactory-cli train)",
        "llamafactory/launcher.py"]
    inner = layers[1]
    assert inner.nproc is None and inner.nproc_text == launch.LMF_PER_GPU
    assert "more than one GPU" in inner.maybe
    forced = launch.load(None, f"FORCE_TORCHRUN=1 llamafactory-cli train {LMF}", ENV,
                         cwd="/").jobs[0].layers[1]
    assert forced.nproc_text == launch.LMF_PER_GPU and not forced.maybe


def test_llamafactory_under_a_hidden_environment_is_unknown(tmp_path):
    spec = _load(tmp_path, f"export $(cat .env | xargs)\nllamafactory-cli train {LMF}\n")
    inner = spec.jobs[0].layers[1]
    assert "FORCE_TORCHRUN" in inner.maybe and inner.nproc is None

# -- bad input, robustness, speed ------------------------------------------------------


def test_bad_inputs_raise_one_line(tmp_path):
    with pytest.raises(LaunchError, match="does not exist"):
        launch.load(str(tmp_path / "nope.sh"), None, ENV)
    with pytest.raises(LaunchError, match="is a directory"):
        launch.load(str(tmp_path), None, ENV)
    with pytest.raises(LaunchError, match="empty command"):
        launch.load(None, "  ", ENV)


SHELL_BITS = st.sampled_from([
    "torchrun", "swift", "rlhf", "--nproc_per_node", "4", "$X", "${X:-1}", "${X:=2}",
    '"', "'", "$(", ")", "`", "|", "&&", "||", ";", "\n", "\\\n", "if", "then", "fi",
    "[[", "]]", "$((", "))", "(", "{", "}", "<<EOF", "EOF", "=", "A=", "export", "source",
    ".", "case", "esac", "for", "do", "done", "#", " ", "\t", "\r\n", "é", "${X[@]}",
    "exit", "cd", "/tmp", "python", "-m", "swift.cli.sft",
])


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(SHELL_BITS, max_size=40).map(" ".join))
def test_any_text_is_analysed_without_crashing(tmp_path, text):
    spec = _load(tmp_path, text)
    assert isinstance(spec.programs, frozenset)


def _script_of(lines: int) -> str:
    block = [
        "export PRL_N${i}=${PRL_N:-4}",
        'if [ -z "$DATASET" ]; then echo "usage $0"; fi',
        'RUN_DIR=output/run-$(date +%s)',
        'MODEL=${MODEL:-/models/qwen}',
        "torchrun --nproc_per_node ${PRL_N:-4} --master_port ${P:-29500} train.py \\",
        '    --model "$MODEL" --dataset "datasets/${DATASET}/_train.jsonl" \\',
        '    --output_dir "$RUN_DIR" 2>&1 | tee "$RUN_DIR/log"',
        "f() { local a=$1; echo \"$a\"; }",
        "f x",
        "# a comment",
    ]
    return "\n".join((block * (lines // len(block) + 1))[:lines]) + "\n"


def test_500_line_script_is_analysed_well_under_a_second(tmp_path):
    text = _script_of(500)
    assert text.count("\n") == 500
    start = time.process_time()  # CPU time: a loaded box's waits are not the reader's cost
    spec = _load(tmp_path, text)
    elapsed = time.process_time() - start
    assert len(spec.jobs) == 50
    assert elapsed < 1.0, f"500 lines took {elapsed:.3f}s"


# -- what bash hides: opaque environments and command substitutions (real bash oracle) --

RECORD = """#!/bin/sh
{ printf '%s\\0' CALL "${0##*/}" "$#"; printf '%s\\0' "$@"; env -0; printf 'END\\0'; } \
>> "$LAUNCH_LOG"
"""


def _bash_calls(tmp_path: Path, text: str, files: dict[str, str]) -> list[tuple]:
    """Run the script under real bash with recording `torchrun` / `swift` first on PATH:
    (program, argv, environment) of every launcher bash started."""
    shims = tmp_path / "shims"
    shims.mkdir()
    for name in ("torchrun", "swift"):
        (shims / name).write_text(RECORD)
        (shims / name).chmod(0o755)
    for rel, body in files.items():
        (tmp_path / rel).write_text(body)
    (tmp_path / "run.sh").write_text(text)
    log = tmp_path / "calls.log"
    import subprocess

    subprocess.run(["bash", "run.sh"], cwd=tmp_path, timeout=20, check=False,
                   env={"PATH": f"{shims}:/usr/bin:/bin", "HOME": str(tmp_path),
                        "LAUNCH_LOG": str(log)},
                   stdin=subprocess.DEVNULL, capture_output=True)
    parts = log.read_bytes().decode().split("\0") if log.exists() else []
    calls, i = [], 0
    while i < len(parts) and parts[i] == "CALL":
        program, argc = parts[i + 1], int(parts[i + 2])
        argv = parts[i + 3:i + 3 + argc]
        i += 3 + argc
        env = {}
        while parts[i] != "END":
            key, _, value = parts[i].partition("=")
            env[key] = value
            i += 1
        calls.append((program, argv, env))
        i += 1
    return calls


def _torch_nproc(program: str, argv: list[str], env: dict[str, str]) -> str:
    """nproc as the launcher reads it: torchrun's flag, else PET_NPROC_PER_NODE, else 1;
    swift's NPROC_PER_NODE (swift/cli/main.py), else one process."""
    if program == "swift":
        return env.get("NPROC_PER_NODE", "1")
    for k, a in enumerate(argv):
        if a in ("--nproc_per_node", "--nproc-per-node"):
            return argv[k + 1]
    return env.get("PET_NPROC_PER_NODE", "1")


OPAQUE = [
    ("eval", 'eval "$(cat env.txt)"\ntorchrun train.py\n',
     {"env.txt": "export PET_NPROC_PER_NODE=4"}, "eval"),
    ("export $(...)", 'export $(grep -v "^#" .env | xargs)\ntorchrun train.py\n',
     {".env": "# nodes\nPET_NPROC_PER_NODE=4\n"}, "export"),
    ("source of a path not known", 'source "$(cat which.txt)"\ntorchrun train.py\n',
     {"which.txt": "cfg.sh", "cfg.sh": "export PET_NPROC_PER_NODE=4\n"}, "source"),
    ("read into a name not known", 'read -r "$(cat name.txt)" < n.txt\nexport NPROC_PER_NODE\n'
     "swift rlhf --rlhf_type grpo\n",
     {"name.txt": "NPROC_PER_NODE", "n.txt": "4\n"}, "read"),
    ("eval, then swift", 'eval "$(cat env.txt)"\nswift rlhf --rlhf_type grpo\n',
     {"env.txt": "export NPROC_PER_NODE=4"}, "eval"),
    ("read, then export", "read -r PET_NPROC_PER_NODE < n.txt\nexport PET_NPROC_PER_NODE\n"
     "torchrun train.py\n", {"n.txt": "4\n"}, "read"),
    ("printf -v, then export", 'printf -v NPROC_PER_NODE %s "$(cat n.txt)"\n'
     "export NPROC_PER_NODE\nswift sft --model m\n", {"n.txt": "4"}, "printf"),
]


@pytest.mark.parametrize("text, files, why", [c[1:] for c in OPAQUE],
                         ids=[c[0] for c in OPAQUE])
def test_what_bash_may_set_unseen_is_unknown_never_a_default(tmp_path, text, files, why):
    calls = _bash_calls(tmp_path, text, files)
    assert calls, "the oracle ran no launcher"
    program, argv, env = calls[-1]
    assert _torch_nproc(program, argv, env) == "4"  # what bash really launched
    spec = launch.load(str(tmp_path / "run.sh"), None, {"PATH": "/usr/bin:/bin"},
                       cwd=str(tmp_path))
    layers = [x for job in spec.jobs for x in job.distributed]
    # never the default (torchrun's 1, or swift not relaunching): unknown, naming why
    assert layers and all(x.nproc is None for x in layers), layers
    shown = " ".join(x.nproc_text + x.maybe for x in layers)
    assert "NPROC_PER_NODE" in shown and (why in shown or "PET_" in shown), shown


def test_without_the_opaque_line_the_default_is_stated(tmp_path):
    calls = _bash_calls(tmp_path, "torchrun train.py\n", {})
    assert _torch_nproc(*calls[-1]) == "1"
    spec = launch.load(str(tmp_path / "run.sh"), None, {"PATH": "/usr/bin:/bin"},
                       cwd=str(tmp_path))
    assert spec.jobs[0].distributed[0].nproc == 1


SUBSTITUTED = [
    ("$(...)", 'OUT=$(torchrun --nproc_per_node 2 --master_port 29501 train.py)\n',
     "torchrun", 2, 29501),
    ("backticks", 'echo "`torchrun --nproc_per_node 3 --master_port 29502 t.py`"\n',
     "torchrun", 3, 29502),
    ("a variable of the shell", 'N=2\nR=$(NPROC_PER_NODE=$N swift rlhf --rlhf_type grpo)\n',
     "swift", 2, None),
]


@pytest.mark.parametrize("text, program, nproc, port", [c[1:] for c in SUBSTITUTED],
                         ids=[c[0] for c in SUBSTITUTED])
def test_launchers_inside_command_substitutions_are_layers(tmp_path, text, program, nproc,
                                                            port):
    calls = _bash_calls(tmp_path, text, {})
    assert [c[0] for c in calls] == [program]  # bash does run it
    assert _torch_nproc(*calls[0]) == str(nproc)
    spec = launch.load(str(tmp_path / "run.sh"), None, {"PATH": "/usr/bin:/bin"},
                       cwd=str(tmp_path))
    layer = next(x for job in spec.jobs for x in job.distributed)
    assert (layer.nproc, layer.line) == (nproc, text.count("\n"))
    if port is not None:
        assert layer.port == port


@pytest.mark.parametrize(("line", "host"), [
    # c10d meets at the endpoint's host; --master_addr's default (127.0.0.1) is not used
    ("torchrun --nnodes 2 --rdzv-backend c10d --rdzv-endpoint 10.0.0.5:29400 t.py", "10.0.0.5"),
    ("torchrun --nnodes 2 --rdzv_backend=c10d --rdzv_endpoint=[fd00::5]:29400 t.py", "fd00::5"),
    ("torchrun --nnodes 2 --master_addr 10.0.0.7 --master_port 6000 t.py", "10.0.0.7"),
    ("torchrun --nnodes 2 t.py", "127.0.0.1"),  # static, nothing given: torch's default
])
def test_rendezvous_host_of_a_multi_node_torchrun(tmp_path, line, host):
    spec = launch.load(None, line, {"PATH": "/usr/bin:/bin"}, cwd=str(tmp_path))
    (layer,) = [x for job in spec.jobs for x in job.distributed]
    assert layer.master_addr == host


def test_torchrun_without_no_python_runs_a_bare_swift_as_a_file(tmp_path):
    # torchrun runs `python -u swift rlhf ...` (torch/distributed/run.py: the training script
    # goes to sys.executable unless --no-python); python opens ./swift, it does not search
    # PATH: swift never starts, so there is no relaunch to report, and the missing script is
    # what launch-inputs names. With the entry script's path it is swift (and relaunches).
    bare = launch.load(None, "NPROC_PER_NODE=2 torchrun --nproc-per-node 2 swift rlhf",
                       {"PATH": "/usr/bin:/bin"}, cwd=str(tmp_path))
    layers = bare.jobs[0].layers
    assert [layer.kind for layer in layers] == ["distributed", "program"], layers
    assert layers[-1].program == "swift" and "relaunched" not in layers[-1].launcher
    assert any(p.path == str(tmp_path / "swift") for p in bare.inputs), bare.inputs
    pathed = launch.load(None, "NPROC_PER_NODE=2 torchrun --nproc-per-node 2 /opt/env/bin/swift "
                         "rlhf", {"PATH": "/usr/bin:/bin"}, cwd=str(tmp_path))
    assert any("relaunched by swift rlhf" in layer.launcher for layer in pathed.jobs[0].layers)
