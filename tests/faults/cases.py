"""The hostile inputs and injected faults, as data: (name, kind, build, expectation)."""

from __future__ import annotations

import json
import os
import resource
import signal
import socket
import subprocess
import sys
from pathlib import Path

from harness import Case, Setup

STATIC = ["-m", "static"]


def _env_file(name: str, content: bytes, expect: str) -> Case:
    def build(work: Path, canary: str) -> Setup:
        path = work / "job.env"
        path.write_bytes(content.replace(b"CANARY", canary.encode()))
        return Setup(args=[*STATIC, "--env-file", str(path)])

    return Case(f"env-{name}", "bad-input", build, expect)


def _profile(name: str, toml: str | bytes) -> Case:
    def build(work: Path, canary: str) -> Setup:
        (work / "profiles").mkdir()
        data = toml.encode() if isinstance(toml, str) else toml
        (work / "profiles" / "site.toml").write_bytes(data)
        return Setup(args=[*STATIC, "--profile-dir", str(work / "profiles")])

    return Case(f"profile-{name}", "bad-input", build, "usage")


def _args(name: str, args: list[str], expect: str, env: dict | None = None) -> Case:
    return Case(name, "bad-input",
                lambda work, canary: Setup(args=[*STATIC, *args], env=dict(env or {})), expect)


def _garbage_env(name: str, key: str, value: str) -> Case:
    return Case(f"garbage-{name}", "bad-input",
                lambda work, canary: Setup(args=STATIC, env={key: value}), "verdict")


def _report_dir_is_a_file(work: Path, canary: str) -> Setup:
    (work / "occupied").write_text("")
    return Setup(args=STATIC, report_dir=work / "occupied" / "report")


def _report_dir_full(work: Path, canary: str) -> Setup:
    def small_files() -> None:
        # A full disk, as a file-size limit: writes past 1 KiB fail with EFBIG.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1024, 1024))

    return Setup(args=STATIC, preexec=small_files, junit=False)


def _nvml_replay(name: str, text: str) -> Case:
    def build(work: Path, canary: str) -> Setup:
        (work / "snap.json").write_text(text)
        return Setup(args=[*STATIC, "--nvml-replay", str(work / "snap.json")])

    return Case(f"nvml-replay-{name}", "bad-input", build, "usage")


BAD_INPUTS = [
    _env_file("unterminated-quote", b'HF_TOKEN="CANARY\nB=2\n', "usage"),
    _env_file("nul-byte", b"HF_TOKEN=CANARY\0\n", "usage"),
    _env_file("not-utf8", b"HF_TOKEN=\xff\xfeCANARY\n", "usage"),
    _env_file("1mb-value", b"BIG=" + b"x" * 2**20 + b"CANARY\n", "verdict"),
    _env_file("duplicate-keys", b"HF_TOKEN=CANARY\nHF_TOKEN=CANARY-2\n", "verdict"),
    _env_file("export-prefix", b"export HF_TOKEN=CANARY\nexport WANDB_MODE=offline\n",
              "verdict"),
    _env_file("bom", b"\xef\xbb\xbfHF_TOKEN=CANARY\n", "verdict"),
    _env_file("crlf", b"HF_TOKEN=CANARY\r\nWANDB_MODE=offline\r\n", "verdict"),
    _env_file("interpolation", b"A=${HF_TOKEN}/x\nB='$HF_TOKEN'\n", "verdict"),
    _env_file("only-comments", b"# HF_TOKEN=CANARY\n\n   \n", "verdict"),
    _args("env-file-missing", ["--env-file", "/nonexistent-preflight-dir/.env"], "usage"),
    _args("env-file-is-a-directory", ["--env-file", "/tmp"], "usage"),
    _profile("syntax-error", "[gpu\ncount = 4\n"),
    _profile("unknown-key", "[gpu]\ncuont = 4\n"),
    _profile("wrong-type", '[gpu]\ncount = "four"\n'),
    _profile("bad-severity", '[severity]\nport-free = "fatal"\n'),
    _profile("extends-cycle-self", 'extends = "site"\n'),
    _profile("not-utf8", b'description = "\xff\xfe"\n'),
    _args("profile-unknown-name", ["--profile", "a900"], "usage"),
    # (a path no one creates: /nonexistent is the home of `nobody` and may exist)
    _args("profile-dir-missing", ["--profile-dir", "/nonexistent-preflight-dir"], "usage"),
    _args("check-unknown-id", ["--check", "no-such-check"], "usage"),
    Case("report-dir-is-under-a-file", "bad-input", _report_dir_is_a_file, "usage"),
    Case("report-dir-full", "bad-input", _report_dir_full, "usage"),
    _nvml_replay("not-json", "{not json"),
    _nvml_replay("wrong-shape", json.dumps({"gpus": "none"})),
    _garbage_env("master-port", "MASTER_PORT", "abc"),
    _garbage_env("master-port-huge", "MASTER_PORT", "99999999999999999999"),
    _garbage_env("master-addr", "MASTER_ADDR", "::::"),
    _garbage_env("cuda-visible-devices", "CUDA_VISIBLE_DEVICES", ",,"),
    _garbage_env("nccl-ifname-caret", "NCCL_SOCKET_IFNAME", "^"),
    _garbage_env("nccl-ifname-equals", "NCCL_SOCKET_IFNAME", "=,,^"),
    _garbage_env("hf-endpoint", "HF_ENDPOINT", "http://[::1"),
    _garbage_env("hf-endpoint-userinfo", "HF_ENDPOINT", "http://u:CANARY@[::1"),
    _garbage_env("cuda-home", "CUDA_HOME", "/nonexistent/\u2603"),
    _garbage_env("path-empty", "PATH", ""),
    _garbage_env("conda-prefix", "CONDA_PREFIX", "relative/../../x"),
]


def _launch(name: str, make, expect: str) -> Case:
    def build(work: Path, canary: str) -> Setup:
        path = work / "run.sh"
        make(path, canary)
        return Setup(args=[*STATIC, "--launch-script", str(path)])

    return Case(f"launch-{name}", "bad-input", build, expect)


UNUSUAL_SCRIPT = r"""#!/usr/bin/env bash
set -euo pipefail
export HF_TOKEN=CANARY
ARGS=(--nproc_per_node 2 --master_port "${MASTER_PORT:-29500}")
cat <<'END' > /tmp/never-written
$(rm -rf /) ${NOT_EXPANDED}
END
run() { local x="$1"; shift; torchrun "${ARGS[@]}" "$@"; }
if [[ -n "${DATASET:-}" && $(( 4 % 2 )) -eq 0 ]]; then echo "$(date +%s)"; fi
case "$MODE" in a|b) X='single $quote' ;; *) X="double \"$Y\"" ;; esac
run train.py --data "datasets/${DATASET}/_train.jsonl" 2>&1 | tee "${LOG_FILE:-/dev/null}"
"""


def _write(data: bytes):
    def make(path: Path, canary: str) -> None:
        path.write_bytes(data.replace(b"CANARY", canary.encode()))

    return make


def _fifo(path: Path, canary: str) -> None:
    os.mkfifo(path)  # reading it would block forever


def _directory(path: Path, canary: str) -> None:
    path.mkdir()


BAD_INPUTS += [
    _launch("missing", lambda path, canary: None, "usage"),
    _launch("directory", _directory, "usage"),
    _launch("fifo", _fifo, "usage"),
    _launch("binary", _write(b"\x7fELF\x02\x01\x01\0\0\0CANARY" * 50), "usage"),
    _launch("huge", _write(b"echo CANARY\n" * 400_000), "usage"),
    _launch("empty", _write(b""), "verdict"),
    _launch("crlf", _write(b"export HF_TOKEN=CANARY\r\ntorchrun --nproc_per_node 2 x.py\r\n"),
            "verdict"),
    _launch("not-utf8", _write(b"echo \xff\xfe CANARY\ntorchrun x.py\n"), "verdict"),
    _launch("unusual-bash", _write(UNUSUAL_SCRIPT.encode()), "verdict"),
    _launch("unparseable", _write(b"if then fi (( ]] {{ `\n" * 20), "verdict"),
    _args("launch-cmd-empty", ["--launch-cmd", "   "], "usage"),
]


# -- faults ---------------------------------------------------------------------------

FAKE_PYNVML = '''
class NVMLError(Exception):
    pass

def nvmlInit():
    pass

def nvmlShutdown():
    pass

def __getattr__(name):
    def call(*args, **kwargs):
        raise NVMLError(f"injected fault in {name}")
    return call
'''


def _nvml_raises(profile: str):
    def build(work: Path, canary: str) -> Setup:
        (work / "fakenvml").mkdir()
        (work / "fakenvml" / "pynvml.py").write_text(FAKE_PYNVML)
        # one -m: a second one replaces the first (`-m static -m cpu` ran the workloads too)
        return Setup(args=["-m", f"static and {profile}"],
                     env={"PYTHONPATH": str(work / "fakenvml")})

    return build


def _vanishing_processes(work: Path, canary: str) -> Setup:
    # Short-lived processes named like Ray workers appear and vanish during the scan.
    churn = subprocess.Popen(
        ["bash", "-c", "while :; do (exec -a default_worker.py sleep 0.02); done"],
        start_new_session=True)

    def stop() -> None:
        churn.kill()
        churn.wait()

    return Setup(args=[*STATIC, "--check", "leftover-processes"], cleanup=stop)


def _sigint_mid_run(work: Path, canary: str) -> Setup:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts, never answers: the hf-endpoint check waits its timeout
    (work / "profiles").mkdir()
    (work / "profiles" / "lagging.toml").write_text(
        'extends = "cpu"\n[env]\nhf_mirror = true\nhf_timeout_s = 30.0\n')
    return Setup(
        args=["--profile-dir", str(work / "profiles"), "--profile", "lagging"],
        env={"HF_ENDPOINT": f"http://127.0.0.1:{silent.getsockname()[1]}"},
        interrupt_after_s=4.0, cleanup=silent.close)


FAULTS = [
    Case("nvml-raises-on-every-call-cpu", "fault", _nvml_raises("cpu"), "verdict"),
    Case("nvml-raises-on-every-call-a800", "fault", _nvml_raises("a800"), "no-go"),
    Case("process-vanishes-while-inspected", "fault", _vanishing_processes, "verdict"),
    Case("sigint-mid-run", "fault", _sigint_mid_run, "interrupted", bound_s=20),
]



# -- workload faults: a rank that hangs, dies, or fails; the suite interrupted mid-workload --


def _workload(knobs: dict[str, str], timeout_s: float = 10.0, interrupt_after_s=None,
              sig: int = signal.SIGINT, group: bool = True):
    def build(work: Path, canary: str) -> Setup:
        (work / "profiles").mkdir()
        (work / "profiles" / "quick.toml").write_text(
            f'extends = "cpu"\n[workload]\ntimeout_s = {timeout_s}\nmax_size_bytes = 65536\n')
        return Setup(args=["--profile-dir", str(work / "profiles"), "--profile", "quick",
                           "--check", "nccl-allreduce"],
                     env=dict(knobs), interrupt_after_s=interrupt_after_s,
                     interrupt_signal=sig, interrupt_group=group)

    return build


def _port_taken_after_static(work: Path, canary: str) -> Setup:
    # MASTER_PORT is free while port-free runs, then a thief takes it before the workload:
    # the workload binds its own port (one node), so the verdict must not depend on it.
    thief = subprocess.Popen(
        [sys.executable, "-c",
         "import socket, time, sys\n"
         "time.sleep(1.0)\n"
         "s = socket.socket(); s.bind(('0.0.0.0', int(sys.argv[1]))); s.listen(8)\n"
         "time.sleep(120)\n", "29591"], start_new_session=True)

    def stop() -> None:
        thief.kill()
        thief.wait()

    build = _workload({"MASTER_PORT": "29591"}, timeout_s=30.0)
    setup = build(work, canary)
    setup.args = [a for a in setup.args if a not in ("--check", "nccl-allreduce")]
    setup.args += ["--check", "port-free", "--check", "nccl-allreduce"]
    setup.cleanup = stop
    return setup


FAULTS += [
    Case("workload-rank-hangs", "fault", _workload({"PREFLIGHT_TEST_HANG_RANK": "1"}), "no-go",
         bound_s=40),
    Case("workload-rank-sigkilled", "fault", _workload({"PREFLIGHT_TEST_KILL_RANK": "1"}),
         "no-go", bound_s=40),
    Case("workload-rank-exits-nonzero", "fault", _workload({"PREFLIGHT_TEST_EXIT_RANK": "0"}),
         "no-go", bound_s=40),
    Case("sigint-mid-workload", "fault",
         _workload({"PREFLIGHT_TEST_HANG_RANK": "1"}, timeout_s=30.0, interrupt_after_s=6.0),
         "interrupted", bound_s=30),
    Case("sigterm-to-preflight-mid-workload", "fault",
         _workload({"PREFLIGHT_TEST_HANG_RANK": "1"}, timeout_s=30.0, interrupt_after_s=6.0,
                   sig=signal.SIGTERM, group=False), "interrupted", bound_s=30),
    Case("sigterm-to-group-mid-workload", "fault",
         _workload({"PREFLIGHT_TEST_HANG_RANK": "0"}, timeout_s=30.0, interrupt_after_s=6.0,
                   sig=signal.SIGTERM), "interrupted", bound_s=30),
    Case("sighup-mid-workload", "fault",
         _workload({"PREFLIGHT_TEST_HANG_RANK": "1"}, timeout_s=30.0, interrupt_after_s=6.0,
                   sig=signal.SIGHUP), "interrupted", bound_s=30),
    Case("port-taken-between-check-and-workload", "fault", _port_taken_after_static, "verdict",
         bound_s=60),
]
from cases_hostile import BAD_INPUTS as HOSTILE_INPUTS  # noqa: E402
from cases_hostile import FAULTS as HOSTILE_FAULTS  # noqa: E402

BAD_INPUTS += HOSTILE_INPUTS
FAULTS += HOSTILE_FAULTS
CASES = BAD_INPUTS + FAULTS
