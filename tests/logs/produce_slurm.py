"""Reproduces the Slurm job-stopped logs under tests/logs/real/ with a real Slurm (slurm-wlm
22.05.8 from Debian 12, one node: this box) running real torchrun (torch 2.13 CPU, gloo):

    python tests/logs/produce_slurm.py OUTDIR [NAME...]     # default: every shape

Each shape is one `sbatch` job whose output file is the log: slurmstepd writes its
`*** JOB N ON host CANCELLED AT ... ***` and `Detected N oom-kill event(s)` lines into it
(src/slurmd/slurmstepd/req.c:723 and src/plugins/task/cgroup/task_cgroup_memory.c:349 at
slurm-22-05-8-1). Each job is bounded (its own --time, and scancel after JOB_WAIT_S).

It needs a running slurmctld and slurmd that this user may submit to, with the node named
as this host, a partition `debug` (PriorityTier=1, default) and `urgent` (PriorityTier=2)
for preemption, and task/cgroup constraining memory. What made the committed logs (root,
`munged` as user munge, then `slurmctld; slurmd`; both stopped afterwards):

    # /etc/slurm/slurm.conf
    ClusterName=pf
    SlurmctldHost=vm
    AuthType=auth/munge
    CredType=cred/munge
    ProctrackType=proctrack/cgroup
    TaskPlugin=task/cgroup
    SchedulerType=sched/builtin
    SelectType=select/cons_tres
    SelectTypeParameters=CR_Core_Memory
    SlurmUser=root
    ReturnToService=2
    KillWait=5
    MpiDefault=none
    JobAcctGatherType=jobacct_gather/none
    AccountingStorageType=accounting_storage/none
    NodeName=vm CPUs=2 RealMemory=20000 State=UNKNOWN
    PartitionName=debug Nodes=vm Default=YES MaxTime=INFINITE State=UP PriorityTier=1
    PartitionName=urgent Nodes=vm MaxTime=INFINITE State=UP PriorityTier=2
    PreemptType=preempt/partition_prio
    PreemptMode=CANCEL
    # /etc/slurm/cgroup.conf
    CgroupPlugin=cgroup/v1
    CgroupAutomount=no
    ConstrainRAMSpace=yes
    ConstrainSwapSpace=yes
    AllowedSwapSpace=0

(plus the pid, spool and log file settings). Under this proctrack/cgroup the batch step's
processes all get SIGTERM at once and the torchrun started directly by the batch script left
no lines after slurmstepd's (the time-limit and scancel logs); with the first configuration
tried here (ProctrackType=proctrack/linuxproc, TaskPlugin=task/none) its agent's `Received
15 death signal` and SignalException followed, as they do under srun (the step log). Paths
and the host name are replaced by neutral ones (produce_nested.redact; the node `vm`
becomes `node-a`).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from produce_nested import PY, TMP_NAME, TORCHRUN, cli, free_port, redact  # noqa: E402
from produce_stopped import TRAIN  # noqa: E402

JOB_WAIT_S = 180.0
# Rank 1 takes 64 MiB a step until the job's memory cgroup (--mem) is full.
OOM = """\
import time, torch, torch.distributed as dist
dist.init_process_group("gloo")
r = dist.get_rank()
print(f"rank {r}: step 0 loss 2.31", flush=True)
if r == 1:
    held = []
    for i in range(40):
        held.append(torch.ones(64 << 20, dtype=torch.uint8))
        time.sleep(0.05)
time.sleep(600)
"""
JOB_SH = """\
#!/bin/bash
echo "SLURM_JOB_ID=$SLURM_JOB_ID"
export GLOO_SOCKET_IFNAME=lo
export TMPDIR="$PWD/{tmp}"   # torchrun's torchelastic_* dirs: removed with the work dir
mkdir -p "$TMPDIR"
{srun}{torchrun} --nproc-per-node 2 --master-addr 127.0.0.1 --master-port {port} {script}
"""


@dataclass
class Shape:
    made_by: str
    sbatch: list[str]
    script: str = "train.py"
    srun: bool = False
    action: str = ""     # "scancel" | "preempt": done once both ranks printed their step


SHAPES: dict[str, Shape] = {
    "job-stopped-slurm-time-limit": Shape(
        "sbatch --time=1 job.sh (job.sh runs torchrun --nproc-per-node 2 train.py; the "
        "ranks train on past the 1-minute limit)", ["--time=1"]),
    "job-stopped-slurm-step": Shape(
        "sbatch --time=1 job.sh (job.sh runs srun torchrun --nproc-per-node 2 train.py; "
        "the step is past the 1-minute limit)", ["--time=1"], srun=True),
    "job-stopped-slurm-scancel": Shape(
        "sbatch job.sh, then scancel JOBID once both ranks trained a step",
        [], action="scancel"),
    "job-stopped-slurm-preemption": Shape(
        "sbatch -p debug -c 2 job.sh, then a job of the higher-tier partition "
        "(sbatch -p urgent -c 2) preempts it (PreemptMode=CANCEL)",
        ["-p", "debug", "-c", "2"], action="preempt"),
    "job-stopped-slurm-oom": Shape(
        "sbatch --mem=1200M job.sh (torchrun --nproc-per-node 2 oom.py: rank 1 takes "
        "64 MiB a step until the job's memory cgroup is full)", ["--mem=1200M", "--time=3"],
        script="oom.py"),
    "job-stopped-slurm-after-error": Shape(
        "sbatch --time=1 job.sh (torchrun --nproc-per-node 2 train.py error: rank 1 fails "
        "with a KeyError, a non-daemon thread keeps it alive, the job hangs until its limit)",
        ["--time=1"], script="train.py error"),
}


def _sbatch(args: list[str], work: Path) -> str:
    done = subprocess.run(["sbatch", "--parsable", *args], cwd=work, capture_output=True,
                          text=True, timeout=30, check=True)
    return done.stdout.strip().split(";")[0]


def _running(job: str) -> bool:
    done = subprocess.run(["squeue", "-h", "-j", job, "-o", "%T"], capture_output=True,
                          text=True, timeout=30, check=False)
    return done.stdout.strip() in ("PENDING", "CONFIGURING", "RUNNING", "COMPLETING")


def run_job(shape: Shape, work: Path) -> str:
    srun = "srun --ntasks=1 " if shape.srun else ""
    (work / "job.sh").write_text(JOB_SH.format(
        srun=srun, torchrun=" ".join(TORCHRUN), port=free_port(), script=shape.script,
        tmp=TMP_NAME))
    job = _sbatch([*shape.sbatch, "-o", "job.log", "job.sh"], work)
    other = None
    try:
        deadline = time.monotonic() + JOB_WAIT_S
        acted = not shape.action
        while time.monotonic() < deadline and _running(job):
            path = work / "job.log"
            log = path.read_text(errors="replace") if path.exists() else ""
            if not acted and "rank 0: step 0" in log and "rank 1: step 0" in log:
                time.sleep(1.0)
                if shape.action == "scancel":
                    subprocess.run(["scancel", job], timeout=30, check=True)
                else:
                    other = _sbatch(["-p", "urgent", "-c", "2", "-o", "/dev/null", "--wrap",
                                     "sleep 2"], work)
                acted = True
            time.sleep(1.0)
        time.sleep(2.0)  # slurmstepd's last lines (the oom-kill count) after the step ends
    finally:
        for j in (job, other):
            if j is not None:
                subprocess.run(["scancel", j], timeout=30, check=False)
    return (work / "job.log").read_text(errors="replace")


def produce(name: str, out_dir: Path) -> Path:
    if shutil.which("sbatch") is None:
        raise SystemExit("produce_slurm: no sbatch here (see the docstring for the Slurm)")
    shape = SHAPES[name]
    with tempfile.TemporaryDirectory(prefix="preflight-slurm-") as tmp:
        work = Path(tmp)
        (work / "train.py").write_text(TRAIN)
        (work / "oom.py").write_text(OOM)
        text = run_job(shape, work)
        # slurmstepd names itself after the node ("slurmstepd-vm:"), which redact's
        # whole-word host replacement does not reach after the dash.
        host = subprocess.run(["hostname", "-s"], capture_output=True, text=True,
                              timeout=10, check=False).stdout.strip()
        if host:
            text = re.sub(rf"slurmstepd-{re.escape(host)}\b", "slurmstepd-node-a", text)
        header = (f"# fixture {name} (real run, tests/logs/produce_slurm.py)\n"
                  f"# made by: {shape.made_by}\n")
        out = out_dir / f"{name}.log"
        out.write_text(header + redact(text.replace(PY, "/opt/venv/bin/python"), work),
                       encoding="utf-8")
    return out


def main(argv: list[str]) -> int:
    return cli(argv, SHAPES, produce)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
