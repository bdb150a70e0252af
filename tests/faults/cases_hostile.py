"""Round two of hostile input and faults: secrets in every shape, numbers that are not,
readers that would block or fill memory, profiles named like markers, misbehaving HTTP
servers, undecodable bytes, signals, and a shared node with other people's programs."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import psutil
from harness import REPO, Case, Setup

STATIC = ["-m", "static"]
PY = sys.executable
REPLAY = REPO / "fixtures" / "nvml"


def _secret() -> str:
    return f"shp{uuid.uuid4().hex[:20]}"


# -- a process of our own that lives for the case ----------------------------------------------


def _spawn(argv: list[str], **kwargs) -> subprocess.Popen:
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True, **kwargs)


def _spawn_orphan(argv: list[str]) -> psutil.Process:
    """`argv` reparented, as an earlier run leaves it (or `nohup ... &`): its launcher (a
    bash) exits at once, so it is reparented to init (or a subreaper) -- a live child of the
    harness would be another job of the user."""
    launcher = subprocess.Popen(["bash", "-c", '"$@" >/dev/null 2>&1 & echo $!', "_", *argv],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True,
                                start_new_session=True)
    proc = psutil.Process(int(launcher.stdout.readline()))
    launcher.wait()
    launcher.stdout.close()
    deadline = time.monotonic() + 10
    while proc.cmdline()[:1] == ["bash"] and time.monotonic() < deadline:  # until exec'd
        time.sleep(0.02)
    return proc


def _orphan_stopper(*procs: psutil.Process):
    def stop() -> None:
        for proc in procs:
            try:
                proc.kill()  # psutil: only if it is still the process started
            except psutil.NoSuchProcess:
                pass

    return stop


def _stopper(*procs: subprocess.Popen):
    def stop() -> None:
        for proc in procs:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            proc.wait()

    return stop


def _sleeper_script(work: Path, name: str) -> Path:
    script = work / name
    script.write_text("import time\ntime.sleep(120)\n")
    return script


def _evidence(report: dict, check: str) -> dict:
    for entry in report.get("checks", []):
        if entry["id"] == check:
            return entry.get("evidence") or {}
    return {}


def _check(report: dict, check: str) -> dict:
    for entry in report.get("checks", []):
        if entry["id"] == check:
            return entry
    return {}


# -- 1. secrets in every shape: values no scrubber knows, masked by shape ---------------------


def _leftover_cmdline(name: str, make_args) -> Case:
    """Our own `torchrun` whose shell is gone (left over, or nohup'd: named either way)
    whose command line carries a secret in some shape."""

    def build(work: Path, canary: str) -> Setup:
        secret = _secret()
        script = _sleeper_script(work, "torchrun")
        proc = _spawn_orphan([PY, str(script), *make_args(secret)])

        def verify(report: dict, output: str) -> str:
            evidence = _evidence(report, "leftover-processes")
            pids = [p["pid"] for field in ("processes", "in_the_way", "other_jobs")
                    for p in evidence.get(field, [])]
            return "" if proc.pid in pids else "the planted torchrun was not found"

        return Setup(args=[*STATIC, "--check", "leftover-processes"],
                     cleanup=_orphan_stopper(proc), extra_canaries=[secret], verify=verify)

    return Case(f"leak-leftover-{name}", "bad-input", build, "verdict")


LEAKS = [
    _leftover_cmdline("bash-c-hf-token", lambda s: [
        "--no-python", "bash", "-c", f"python train.py --hf_token {s} --lr 1"]),
    _leftover_cmdline("json-api-key", lambda s: ["train.py", "--cfg", json.dumps({"api_key": s})]),
    _leftover_cmdline("authorization-bearer", lambda s: [
        "x.py", "--header", f"Authorization: Bearer {s}"]),
    _leftover_cmdline("postgres-url", lambda s: ["x.py", "--db", f"postgres://u:{s}@db:5432/x"]),
    _leftover_cmdline("hub-url-userinfo", lambda s: ["x.py", "--hub_url", f"https://u:{s}@hf.co/"]),
    _leftover_cmdline("env-pair", lambda s: ["x.py", f"WANDB_API_KEY={s}"]),
    _leftover_cmdline("hf-token-shape", lambda s: ["x.py", "--model", f"hf_{s}{s}"]),
    _leftover_cmdline("sk-token-shape", lambda s: ["x.py", f"sk-{s}{s}"]),
    _leftover_cmdline("password-flag-eq", lambda s: ["x.py", f"--db-password={s}"]),
]


def _hf_endpoint_userinfo(work: Path, canary: str) -> Setup:
    secret = _secret()
    return Setup(args=[*STATIC, "--check", "hf-endpoint"], extra_canaries=[secret],
                 env={"HF_ENDPOINT": f"http://mirror:{secret}@127.0.0.1:1/"})


def _hf_endpoint_bad_port_userinfo(work: Path, canary: str) -> Setup:
    secret = _secret()
    return Setup(args=[*STATIC, "--check", "hf-endpoint"], extra_canaries=[secret],
                 env={"HF_ENDPOINT": f"http://u:{secret}@127.0.0.1:99999/"})


def _launch_cmd_secret(cmd: str, name: str) -> Case:
    def build(work: Path, canary: str) -> Setup:
        secret = _secret()
        return Setup(args=[*STATIC, "--launch-cmd", cmd.replace("SECRET", secret)],
                     extra_canaries=[secret])

    return Case(f"leak-launch-cmd-{name}", "bad-input", build, "verdict")


def _script_exports_over_exported(work: Path, canary: str) -> Setup:
    secret = _secret()
    script = work / "run.sh"
    script.write_text(f'export HF_TOKEN={secret}\n'
                      'torchrun --nproc_per_node 1 train.py --data "/data/$HF_TOKEN/x.jsonl"\n')
    return Setup(args=[*STATIC, "--launch-script", str(script)], extra_canaries=[secret])


def _master_addr_userinfo(work: Path, canary: str) -> Setup:
    secret = _secret()
    return Setup(args=[*STATIC, "--check", "port-free", "-rs"], extra_canaries=[secret],
                 env={"MASTER_ADDR": f"u:{secret}@remote-host.invalid"})


def _port_holder_with_password(work: Path, canary: str) -> Setup:
    secret = _secret()
    holder = work / "torchrun"
    holder.write_text("import socket, sys, time\n"
                      "s = socket.socket(); s.bind(('0.0.0.0', 0)); s.listen(4)\n"
                      "print(s.getsockname()[1], flush=True)\ntime.sleep(120)\n")
    proc = subprocess.Popen([PY, str(holder), "--dsn", f"postgres://u:{secret}@db/x"],
                            stdout=subprocess.PIPE, text=True, start_new_session=True)
    port = proc.stdout.readline().strip()
    return Setup(args=[*STATIC, "--check", "port-free", "--check", "leftover-processes"],
                 env={"MASTER_PORT": port}, cleanup=_stopper(proc), extra_canaries=[secret])


def _common_word_env_value(work: Path, canary: str) -> Setup:
    (work / ".env").write_text(f"HF_TOKEN={canary}\nTRANSFORMERS_VERBOSITY=error\n")

    def verify(report: dict, output: str) -> str:
        link = _evidence(report, "cudart-link").get("link") or {}
        if link and "error" not in link:
            return "the evidence key `error` was renamed"
        return ""

    return Setup(args=[*STATIC], env={"TRANSFORMERS_VERBOSITY": "error"}, verify=verify)


LEAKS += [
    Case("leak-hf-endpoint-userinfo", "bad-input", _hf_endpoint_userinfo, "no-go"),
    Case("leak-hf-endpoint-userinfo-port-99999", "bad-input", _hf_endpoint_bad_port_userinfo,
         "no-go"),
    _launch_cmd_secret("swift sft --hub_url https://u:SECRET@hf.example/x --model m", "url"),
    _launch_cmd_secret("WANDB_API_KEY=SECRET torchrun --nproc_per_node 1 x.py", "env-prefix"),
    _launch_cmd_secret("""torchrun x.py --cfg '{"api_key": "SECRET"}'""", "json"),
    _launch_cmd_secret('bash -c "torchrun x.py --hf_token SECRET"', "bash-c"),
    _launch_cmd_secret("torchrun x.py --model /models/SECRET/x --api-key SECRET", "path-and-flag"),
    Case("leak-script-exports-over-exported-token", "bad-input", _script_exports_over_exported,
         "verdict"),
    Case("leak-skip-reason-master-addr-userinfo", "bad-input", _master_addr_userinfo, "verdict"),
    Case("leak-port-holder-url-password", "bad-input", _port_holder_with_password, "no-go"),
    Case("env-value-is-a-common-word", "bad-input", _common_word_env_value, "verdict"),
]


# -- 2. numbers that are not: one parser, a finding or exit 4 naming the key -------------------


def _env_case(name: str, env: dict[str, str], expect: str, args: list[str] | None = None,
              needle: str = "") -> Case:
    def build(work: Path, canary: str) -> Setup:
        def verify(report: dict, output: str) -> str:
            text = json.dumps(report) + output
            return "" if needle in text else f"{needle!r} not said"

        return Setup(args=[*STATIC, *(args or [])], env=dict(env),
                     verify=verify if needle else None)

    return Case(name, "bad-input", build, expect)


NUMBERS = [
    _env_case("master-port-superscript-two", {"MASTER_PORT": "\u00b2"}, "no-go",
              ["--check", "port-free"], "is not a port number"),
    _env_case("master-port-arabic-indic-digits", {"MASTER_PORT": "\u0662\u0669\u0665"}, "no-go",
              ["--check", "port-free"], "is not a port number"),
    _env_case("master-port-295000", {"MASTER_PORT": "295000"}, "no-go", ["--check", "port-free"],
              "is not a port number"),
    _env_case("master-port-10e400", {"MASTER_PORT": "1" + "0" * 400}, "no-go",
              ["--check", "port-free"], "is not a port number"),
    _env_case("master-port-negative", {"MASTER_PORT": "-1"}, "no-go", ["--check", "port-free"]),
    _env_case("master-port-hex", {"MASTER_PORT": "0x7530"}, "no-go", ["--check", "port-free"]),
    _env_case("master-port-inf", {"MASTER_PORT": "inf"}, "no-go", ["--check", "port-free"]),
    _env_case("nnodes-superscript", {"NNODES": "\u00b2"}, "verdict",
              ["--launch-cmd", "torchrun --nnodes $NNODES x.py"]),
    _env_case("cuda-visible-devices-superscript", {"CUDA_VISIBLE_DEVICES": "\u00b2"}, "verdict",
              ["--launch-cmd", "torchrun --nproc_per_node 2 x.py"]),
    _env_case("cuda-visible-devices-huge", {"CUDA_VISIBLE_DEVICES": "9" * 400}, "verdict",
              ["--launch-cmd", "torchrun --nproc_per_node 2 x.py"]),
    _env_case("launch-master-port-295000", {}, "verdict",
              ["--launch-cmd", "torchrun --master_port 295000 --nproc_per_node 2 x.py"]),
    _env_case("launch-master-port-superscript", {}, "verdict",
              ["--launch-cmd", "torchrun --master_port \u00b2 x.py"]),
    _env_case("launch-nproc-10e400", {}, "verdict",
              ["--launch-cmd", "torchrun --nproc_per_node " + "9" * 400 + " x.py"]),
    _env_case("launch-shift-superscript", {}, "verdict",
              ["--launch-cmd", "shift \u00b2; torchrun x.py"]),
    _env_case("launch-rdzv-endpoint-port-huge", {}, "verdict",
              ["--launch-cmd", "torchrun --rdzv_backend c10d --rdzv_endpoint h:999999 x.py"]),
]


def _replay_case(name: str, mutate, expect: str = "usage", raw: str | None = None) -> Case:
    def build(work: Path, canary: str) -> Setup:
        path = work / "snap.json"
        if raw is not None:
            path.write_text(raw)
        else:
            data = json.loads((REPLAY / "a800x4-healthy.json").read_text())
            mutate(data)
            path.write_text(json.dumps(data))

        def verify(report: dict, output: str) -> str:
            return "a raw escape sequence reached the output" if "\x1b" in output else ""

        return Setup(args=[*STATIC, "--nvml-replay", str(path)], verify=verify)

    return Case(f"nvml-replay-{name}", "bad-input", build, expect)


def _set_gpu(key: str, value):
    def mutate(data: dict) -> None:
        data["gpus"][0][key] = value

    return mutate


def _replay_with_memory(value: str) -> str:
    text = (REPLAY / "a800x4-healthy.json").read_text()
    return text.replace('"memory_total_bytes": ', f'"memory_total_bytes": {value}, "x": ', 1)


REPLAYS = [
    _replay_case("memory-1e400", lambda d: None, raw=_replay_with_memory("1e400")),
    _replay_case("memory-nan", lambda d: None, raw=_replay_with_memory("NaN")),
    _replay_case("memory-infinity", lambda d: None, raw=_replay_with_memory("Infinity")),
    _replay_case("memory-10e400-int", lambda d: None, raw=_replay_with_memory("1" + "0" * 400)),
    _replay_case("nested-deep", lambda d: None, raw="[" * 100_000 + "]" * 100_000),
    _replay_case("name-escape-sequences", _set_gpu("name", "NVIDIA A800\x1b[2J\x1b]0;pwn\x07"),
                 "verdict"),
]


# -- 3. readers that would block or fill memory ---------------------------------------------


def _special_file(flag: str, kind: str) -> Case:
    def build(work: Path, canary: str) -> Setup:
        if kind == "fifo":
            path = work / "special"
            os.mkfifo(path)
        elif kind == "dev-zero":
            path = Path("/dev/zero")
        elif kind == "dev-null":
            path = Path("/dev/null")
        elif kind == "symlink-to-dev-zero":
            path = work / "link"
            path.symlink_to("/dev/zero")
        else:
            raise ValueError(kind)
        if flag == "--profile-dir":
            (work / "profiles").mkdir()
            target = work / "profiles" / "site.toml"
            if kind == "fifo":
                os.mkfifo(target)
            else:
                target.symlink_to(path)
            return Setup(args=[*STATIC, "--profile-dir", str(work / "profiles")])
        return Setup(args=[*STATIC, flag, str(path)])

    return Case(f"{flag.lstrip('-')}-{kind}", "bad-input", build, "usage", bound_s=30)


READERS = [
    _special_file(flag, kind)
    for flag in ("--env-file", "--nvml-replay", "--profile-dir")
    for kind in ("fifo", "dev-zero", "symlink-to-dev-zero")
] + [_special_file("--env-file", "dev-null")]


def _big_env_file(work: Path, canary: str) -> Setup:
    lines = "".join(f"K{i}_TOKEN=value-{i}-{uuid.uuid4().hex[:8]}\n" for i in range(50_000))
    (work / "big.env").write_text(lines)
    return Setup(args=[*STATIC, "--env-file", str(work / "big.env")])


def _many_environment_keys(work: Path, canary: str) -> Setup:
    env = {f"K{i}_KEY": f"secret-{i:05d}" for i in range(50_000)}
    return Setup(args=STATIC, env=env)


READERS += [
    Case("env-file-50000-secret-keys", "bad-input", _big_env_file, "verdict", bound_s=90),
    Case("environment-50000-secret-keys", "bad-input", _many_environment_keys, "verdict",
         bound_s=90),
]


def _nested_config(name: str, suffix: str, launch: str) -> Case:
    """A config file the launch names, nested deeper than json / PyYAML recurse: the
    launcher would stop on it (RecursionError), and preflight said INTERNALERROR."""
    def build(work: Path, canary: str) -> Setup:
        deep = "[" * 100_000 + "]" * 100_000 if suffix == ".json" else \
            "[" * 20_000 + "]" * 20_000
        body = '{"distributed_type": "MULTI_GPU", "x": ' + deep + "}" if suffix == ".json" \
            else "x: " + deep + "\n"
        (work / f"cfg{suffix}").write_text(body)
        (work / "train.py").write_text("")
        script = work / "run.sh"
        script.write_text(launch.replace("CFG", f"cfg{suffix}") + "\n")

        def verify(report: dict, output: str) -> str:
            found = json.dumps(report.get("checks", []))
            return "" if "nested too deeply" in found or "swift " in launch else \
                "no check says the config is nested too deeply"

        return Setup(args=[*STATIC, "--launch-script", str(script)], verify=verify)

    return Case(f"launch-config-nested-deep-{name}", "bad-input", build, "verdict")


READERS += [
    _nested_config("accelerate-json", ".json", "accelerate launch --config_file CFG train.py"),
    _nested_config("accelerate-yaml", ".yaml", "accelerate launch --config_file CFG train.py"),
    _nested_config("swift-yaml", ".yaml", "NPROC_PER_NODE=2 swift sft --config CFG"),
]


def _launch_files(name: str, files: dict[str, object], launch: str, expect: str = "verdict",
                  says: str = "") -> Case:
    """A launch script naming files that are not what a launcher or conda expects: a FIFO
    (open() blocked for ever), a sparse 2 GB file (read whole: 4 GB of memory), json or
    `${...}` nested 10,000 deep. `files` maps a path under the work dir to its text, or to
    "fifo" / a size in bytes (a sparse file)."""
    def build(work: Path, canary: str) -> Setup:
        for rel, what in files.items():
            path = work / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            if what == "fifo":
                os.mkfifo(path)
            elif isinstance(what, int):
                with open(path, "wb") as fh:
                    fh.truncate(what)
            else:
                path.write_text(str(what))
        (work / "train.py").write_text("")
        script = work / "run.sh"
        script.write_text(launch.replace("WORK", str(work)) + "\n")

        def verify(report: dict, output: str) -> str:
            found = json.dumps(report.get("checks", [])) + output
            return "" if says in found else f"nothing says {says!r}"

        return Setup(args=[*STATIC, "--launch-script", str(script)],
                     verify=verify if says else None)

    return Case(f"launch-file-{name}", "bad-input", build, expect, bound_s=30)


_CONDA = {"root/conda-meta/history": "", "root/etc/profile.d/conda.sh": "# conda's hook\n",
          "root/envs/x/conda-meta/history": ""}
_ACTIVATE = "source WORK/root/etc/profile.d/conda.sh\nconda activate WORK/root/envs/x\n" \
            "torchrun --nproc_per_node=2 train.py"
_DEEP_PARAM = "${A:-" * 10_000 + "2" + "}" * 10_000

READERS += [
    _launch_files("stdin-fifo", {"answers": "fifo"}, "python train.py < answers"),
    _launch_files("accelerate-config-sparse-2g", {"cfg.yaml": 2 << 30},
                  "accelerate launch --config_file cfg.yaml train.py", says="too large"),
    _launch_files("conda-env-vars-fifo", {**_CONDA,
                  "root/envs/x/etc/conda/env_vars.d/a.json": "fifo"}, _ACTIVATE),
    _launch_files("conda-env-vars-nested-deep", {**_CONDA,
                  "root/envs/x/etc/conda/env_vars.d/a.json": "[" * 100_000 + "]" * 100_000},
                  _ACTIVATE),
    _launch_files("param-nested-10000", {}, f"X={_DEEP_PARAM}\ntorchrun train.py", "usage",
                  says="nested more than 100 levels"),
    _launch_files("heredoc-param-nested-10000", {},
                  f"cat > cfg.yaml <<EOF\nnum_processes: {_DEEP_PARAM}\nEOF\n"
                  "accelerate launch --config_file cfg.yaml train.py"),
    # 41,000 lines never run, sourced 20 times: each parse took seconds (bashlex); past
    # the 40,000-line budget the launch checks say UNKNOWN (the job is not refused)
    _launch_files("sourced-41000-lines-20-times",
                  {"big.sh": "if false; then\n" + "true\n" * 41_000 + "fi\n"},
                  "source ./big.sh\n" * 20 + "torchrun train.py",
                  says="lines of commands"),
    # bash: a syntax error at the end, nothing runs; each line was parsed 80 ways (25 s)
    # and the torchrun on the last line was found; `bash -n` names it (launch-syntax)
    _launch_files("unclosed-if-99", {}, "if true; then\n" * 99 + "torchrun train.py",
                  says="syntax error"),
]

# -- 4. profiles: names, keys, numbers, nesting, extends chains, cost ---------------------------


def _named_profile(name: str, toml: str = 'extends = "cpu"\n') -> Case:
    def build(work: Path, canary: str) -> Setup:
        (work / "profiles").mkdir()
        (work / "profiles" / f"{name}.toml").write_text(toml)
        return Setup(args=[*STATIC, "--profile-dir", str(work / "profiles")])

    return Case(f"profile-named-{name}", "bad-input", build, "usage")


def _profile_text(name: str, toml: str, expect: str = "usage", args: list[str] | None = None,
                  bound_s: float = 60.0) -> Case:
    def build(work: Path, canary: str) -> Setup:
        (work / "profiles").mkdir()
        (work / "profiles" / "site.toml").write_text(toml)
        return Setup(args=[*STATIC, "--profile-dir", str(work / "profiles"), *(args or [])])

    return Case(f"profile-{name}", "bad-input", build, expect, bound_s=bound_s)


def _extends_chain(length: int) -> Case:
    def build(work: Path, canary: str) -> Setup:
        (work / "profiles").mkdir()
        (work / "profiles" / "p0.toml").write_text('extends = "cpu"\n')
        for i in range(1, length):
            (work / "profiles" / f"p{i}.toml").write_text(f'extends = "p{i - 1}"\n')
        return Setup(args=[*STATIC, "--profile-dir", str(work / "profiles"),
                           "--check", "conda-env"])

    return Case(f"profile-extends-chain-{length}", "bad-input", build,
                "usage" if length > 32 else "verdict", bound_s=120)


PROFILES = [_named_profile(n) for n in (
    "skip", "xfail", "skipif", "static", "workload", "stack", "slow", "each", "pitfall",
    "parametrize", "usefixtures", "filterwarnings", "timeout")] + [
    _profile_text("severity-typo", 'extends = "cpu"\n[severity]\nport-fre = "warning"\n'),
    _profile_text("severity-valid-id", 'extends = "cpu"\n[severity]\nport-free = "warning"\n',
                  "verdict"),
    _profile_text("hf-timeout-inf", 'extends = "cpu"\n[env]\nhf_timeout_s = inf\n'),
    _profile_text("hf-timeout-nan", 'extends = "cpu"\n[env]\nhf_timeout_s = nan\n'),
    _profile_text("memory-1e400", 'extends = "cpu"\n[gpu]\nmemory_gb = 1e400\n'),
    _profile_text("count-10e400", 'extends = "cpu"\n[gpu]\ncount = 1' + "0" * 400 + "\n"),
    _profile_text("count-negative", 'extends = "cpu"\n[gpu]\ncount = -5\n'),
    _profile_text("probe-port-99999", 'extends = "cpu"\n[ports]\nprobe = [99999]\n'),
    _profile_text("probe-port-zero", 'extends = "cpu"\n[ports]\nprobe = [0]\n'),
    _profile_text("workload-timeout-negative", 'extends = "cpu"\n[workload]\ntimeout_s = -1.0\n'),
    _profile_text("nested-arrays", "x = " + "[" * 5000 + "]" * 5000 + "\n"),
    _profile_text("nested-tables", "x = " + "{a = " * 3000 + "1" + "}" * 3000 + "\n"),
    _profile_text("two-megabytes", "# " + "x" * (2 << 20) + "\n"),
    _profile_text("unselected-count-1000000", 'extends = "a800"\n[gpu]\ncount = 1000000\n',
                  "verdict", bound_s=40),
    _profile_text("extends-missing", 'extends = "nope"\n'),
    _extends_chain(5),
    _extends_chain(2000),
]


def _profile_file_named(name: str) -> Case:
    def build(work: Path, canary: str) -> Setup:
        (work / "profiles").mkdir()
        (work / "profiles" / name).write_text('extends = "cpu"\n')
        return Setup(args=[*STATIC, "--profile-dir", str(work / "profiles")])

    return Case(f"profile-file-{name.encode().hex()[:16]}", "bad-input", build, "usage")


PROFILES += [_profile_file_named("my-site.toml"), _profile_file_named("\u00f1and\u00fa.toml")]


# -- 5. HTTP endpoints that misbehave ---------------------------------------------------------


def _server(handler) -> tuple[int, callable]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    stop = threading.Event()

    def loop() -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except OSError:
                continue
            threading.Thread(target=_serve_one, args=(handler, conn, stop), daemon=True).start()

    threading.Thread(target=loop, daemon=True).start()
    return sock.getsockname()[1], lambda: (stop.set(), sock.close())


def _serve_one(handler, conn, stop) -> None:
    try:
        conn.settimeout(5)
        conn.recv(4096)
        handler(conn, stop)
    except OSError:
        pass
    finally:
        conn.close()


def _trickle(conn, stop) -> None:
    for ch in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 1000:
        if stop.is_set():
            return
        conn.sendall(bytes([ch]))
        time.sleep(1.0)


def _ssh_banner(conn, stop) -> None:
    conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")


def _many_headers(conn, stop) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\n" + b"X-A: b\r\n" * 500 + b"\r\n")


def _http_case(name: str, handler, kind: str = "bad-input") -> Case:
    def build(work: Path, canary: str) -> Setup:
        port, stop = _server(handler)
        (work / "profiles").mkdir()
        (work / "profiles" / "mirror.toml").write_text(
            'extends = "cpu"\n[env]\nhf_mirror = true\nhf_timeout_s = 2.0\n')
        return Setup(args=["--profile-dir", str(work / "profiles"), "--profile", "mirror",
                           "--check", "hf-endpoint"],
                     env={"HF_ENDPOINT": f"http://127.0.0.1:{port}/"}, cleanup=stop)

    return Case(f"hf-endpoint-{name}", kind, build, "no-go", bound_s=30)


HTTP = [
    _http_case("not-http-service", _ssh_banner),
    _http_case("too-many-headers", _many_headers),
    _env_case("hf-endpoint-port-99999", {"HF_ENDPOINT": "http://127.0.0.1:99999/"}, "no-go",
              ["--check", "hf-endpoint"]),
    _env_case("hf-endpoint-port-not-a-number", {"HF_ENDPOINT": "http://127.0.0.1:x/"}, "no-go",
              ["--check", "hf-endpoint"]),
    _env_case("hf-endpoint-no-host", {"HF_ENDPOINT": "http://"}, "no-go",
              ["--check", "hf-endpoint"]),
    _env_case("hf-endpoint-file-url", {"HF_ENDPOINT": "file:///etc/passwd"}, "no-go",
              ["--check", "hf-endpoint"]),
]


# -- 6. undecodable bytes and a C locale ------------------------------------------------------

C_LOCALE = {"LC_ALL": "C", "LANG": "C", "PYTHONCOERCECLOCALE": "0", "PYTHONUTF8": "0",
            "PYTHONIOENCODING": None}

ENCODING = [
    _env_case("env-value-undecodable", {"WEIRD": "\udcff\udcfe", **C_LOCALE}, "verdict"),
    _env_case("cuda-home-undecodable", {"CUDA_HOME": "/nonexistent/\udcff", **C_LOCALE},
              "verdict"),
    _env_case("path-undecodable", {"PATH": "/nonexistent/\udcff:" + os.environ["PATH"]},
              "verdict"),
    _env_case("c-locale-no-coercion", dict(C_LOCALE), "verdict"),
    _env_case("hf-endpoint-undecodable", {"HF_ENDPOINT": "http://h\udcff/", **C_LOCALE},
              "no-go", ["--check", "hf-endpoint"]),
]


def _undecodable_paths(work: Path, canary: str) -> Setup:
    name = os.fsdecode(b"e\xff.env")
    (work / name).write_text(f"HF_TOKEN={canary}\n")
    return Setup(args=[*STATIC, "--env-file", str(work / name)], env=dict(C_LOCALE),
                 report_dir=work / os.fsdecode(b"r\xfe"))


def _launch_script_undecodable_path(work: Path, canary: str) -> Setup:
    script = work / os.fsdecode(b"run\xff.sh")
    script.write_bytes(b"torchrun --nproc_per_node 1 /data/\xff/train.py --output_dir /o/\xfe\n")
    return Setup(args=[*STATIC, "--launch-script", str(script)], env=dict(C_LOCALE))


def _output_dir_not_searchable(work: Path, canary: str) -> Setup:
    locked = work / "locked"
    locked.mkdir()
    locked.chmod(0)
    return Setup(args=[*STATIC, "--launch-cmd",
                       f"torchrun x.py --output_dir {locked}/out"],
                 cleanup=lambda: locked.chmod(0o700))


ENCODING += [
    Case("paths-undecodable-c-locale", "bad-input", _undecodable_paths, "verdict"),
    Case("launch-script-undecodable-paths", "bad-input", _launch_script_undecodable_path,
         "verdict"),
    Case("output-dir-not-searchable", "bad-input", _output_dir_not_searchable, "verdict"),
]


# -- 7. assorted option misuse --------------------------------------------------------------


def _args(name: str, args: list[str], expect: str) -> Case:
    return Case(name, "bad-input", lambda work, canary: Setup(args=[*STATIC, *args]), expect)


def _profile_dir_is_a_file(work: Path, canary: str) -> Setup:
    (work / "plain").write_text("")
    return Setup(args=[*STATIC, "--profile-dir", str(work / "plain")])


MISC = [
    _args("check-id-path-traversal", ["--check", "../../etc/passwd"], "usage"),
    _args("profile-empty-name", ["--profile", "x y"], "usage"),
    _args("profile-shell-metachar", ["--profile", "a800;rm -rf /"], "usage"),
    Case("profile-dir-is-a-file", "bad-input", _profile_dir_is_a_file, "usage"),
    _args("launch-cmd-nul-like", ["--launch-cmd", "torchrun \\0 x.py"], "verdict"),
    _args("launch-cmd-unbalanced-quote", ["--launch-cmd", "torchrun 'x.py"], "verdict"),
    _args("launch-cmd-10000-args", ["--launch-cmd", "torchrun x.py " + "--a 1 " * 10_000],
          "verdict"),
]


# -- faults: signals, nohup, a shared node -------------------------------------------------


def _silent_endpoint(work: Path, sig: int, group: bool, timeout_s: float = 30.0) -> Setup:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    (work / "profiles").mkdir()
    (work / "profiles" / "lagging.toml").write_text(
        f'extends = "cpu"\n[env]\nhf_mirror = true\nhf_timeout_s = {timeout_s}\n')
    return Setup(args=["--profile-dir", str(work / "profiles"), "--profile", "lagging", *STATIC],
                 env={"HF_ENDPOINT": f"http://127.0.0.1:{silent.getsockname()[1]}"},
                 interrupt_after_s=4.0, interrupt_signal=sig, interrupt_group=group,
                 cleanup=silent.close)


def _nohup(work: Path, canary: str) -> Setup:
    setup = _silent_endpoint(work, signal.SIGHUP, True, timeout_s=6.0)
    setup.preexec = lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN)
    return setup


def _trickle_fault(work: Path, canary: str) -> Setup:
    port, stop = _server(_trickle)
    (work / "profiles").mkdir()
    (work / "profiles" / "mirror.toml").write_text(
        'extends = "cpu"\n[env]\nhf_mirror = true\nhf_timeout_s = 2.0\n')
    return Setup(args=["--profile-dir", str(work / "profiles"), "--profile", "mirror",
                       "--check", "hf-endpoint"],
                 env={"HF_ENDPOINT": f"http://127.0.0.1:{port}/"}, cleanup=stop)


def _not_leftovers(make_procs, check_pids=True):
    """Programs on the node that are NOT leftovers: leftover-processes must not list them."""

    def build(work: Path, canary: str) -> Setup:
        procs = make_procs(work)
        time.sleep(0.5)

        def verify(report: dict, output: str) -> str:
            listed = {p["pid"] for p in _evidence(report, "leftover-processes").get(
                "processes", [])}
            bad = [p.pid for p in procs if p.pid in listed]
            return f"not leftovers but listed: {bad}" if bad else ""

        return Setup(args=[*STATIC, "--check", "leftover-processes"], cleanup=_stopper(*procs),
                     verify=verify)

    return build


def _other_preflight_mentions_torchrun(work: Path) -> list[subprocess.Popen]:
    # Another preflight, idle inside its HF probe, whose --launch-cmd names torchrun and
    # sglang: it is none of those programs.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    (work / "p2").mkdir()
    (work / "p2" / "lagging.toml").write_text(
        'extends = "cpu"\n[env]\nhf_mirror = true\nhf_timeout_s = 60.0\n')
    env = {**os.environ, "HF_ENDPOINT": f"http://127.0.0.1:{silent.getsockname()[1]}"}
    other = _spawn([PY, "-m", "pytest", str(REPO / "preflight"), "-p", "no:cacheprovider", "-q",
                    "--rootdir", str(REPO), "--profile-dir", str(work / "p2"), "--profile",
                    "lagging", "--check", "hf-endpoint", f"--report-dir={work / 'r2'}",
                    "--launch-cmd", "torchrun -m sglang.launch_server ray::IDLE"], env=env)
    other._silent = silent  # type: ignore[attr-defined]  # closed with the process
    return [other]


def _imports_not_runs(work: Path) -> list[subprocess.Popen]:
    return [
        _spawn([PY, "-c", "import time; time.sleep(60)  # torch.distributed.run", "torchrun"]),
        _spawn([PY, str(_sleeper_script(work, "notes.py")), "--launcher", "torchrun",
                "sglang.launch_server", "default_worker.py"]),
        _spawn(["bash", "-c", "sleep 60; : torchrun ray::IDLE"]),
    ]


def _process_title(work: Path, canary: str) -> Setup:
    proc = _spawn_orphan(["bash", "-c", "exec -a 'ray::IDLE' sleep 60"])

    def verify(report: dict, output: str) -> str:
        hits = {p["pid"]: p["matched"] for p in _evidence(report, "leftover-processes").get(
            "processes", [])}
        return "" if hits.get(proc.pid) == "ray::" else "a Ray process title was not found"

    return Setup(args=[*STATIC, "--check", "leftover-processes"], cleanup=_stopper(proc),
                 verify=verify)


def _ray_path_contradiction(work: Path, canary: str) -> Setup:
    prefix = work / "env"
    (prefix / "bin").mkdir(parents=True)
    (work / "profiles").mkdir()
    (work / "profiles" / "rayjob.toml").write_text('extends = "cpu"\n[stack]\nray = true\n')

    def verify(report: dict, output: str) -> str:
        summary = _check(report, "ray-path").get("summary", "")
        return f"contradicts PATH[0]: {summary}" if "PATH lacks" in summary else ""

    return Setup(args=["--profile-dir", str(work / "profiles"), "--profile", "rayjob",
                       "--check", "ray-path"],
                 env={"CONDA_PREFIX": str(prefix),
                      "PATH": f"{prefix}/bin:/usr/bin:/bin"}, verify=verify)


def _disk_missing_path(work: Path, canary: str) -> Setup:
    (work / "profiles").mkdir()
    (work / "profiles" / "disky.toml").write_text(
        'extends = "cpu"\n[disk]\nmin_free_gb = 100000000.0\n'
        'paths = ["/nonexistent-preflight-dir/out"]\ndata_disk = "/nonexistent-data"\n')

    def verify(report: dict, output: str) -> str:
        entry = _check(report, "disk-space")
        if "/nonexistent-data" in entry.get("fix", ""):
            return "the fix points outputs at a data disk that does not exist"
        if "does not exist" not in entry.get("summary", ""):
            return f"a missing path reported as measured: {entry.get('summary')}"
        return ""

    return Setup(args=["--profile-dir", str(work / "profiles"), "--profile", "disky",
                       "--check", "disk-space"], verify=verify)


FAULTS = [
    Case("sigterm-mid-static", "fault",
         lambda w, c: _silent_endpoint(w, signal.SIGTERM, False), "interrupted", bound_s=20),
    Case("sighup-mid-static", "fault",
         lambda w, c: _silent_endpoint(w, signal.SIGHUP, True), "interrupted", bound_s=20),
    Case("sighup-under-nohup-is-ignored", "fault", _nohup, "no-go", bound_s=30),
    Case("hf-endpoint-trickles-one-byte-a-second", "fault", _trickle_fault, "no-go", bound_s=20),
    Case("another-preflight-names-torchrun", "fault",
         _not_leftovers(_other_preflight_mentions_torchrun), "verdict", bound_s=60),
    Case("programs-that-only-mention-torchrun", "fault", _not_leftovers(_imports_not_runs),
         "verdict"),
    Case("ray-process-title-is-a-leftover", "fault", _process_title, "no-go"),
    Case("ray-path-says-what-path-holds", "fault", _ray_path_contradiction, "no-go"),
    Case("disk-space-missing-path-and-data-disk", "fault", _disk_missing_path, "no-go"),
]

BAD_INPUTS = LEAKS + NUMBERS + REPLAYS + READERS + PROFILES + HTTP + ENCODING + MISC
CASES = BAD_INPUTS + FAULTS
