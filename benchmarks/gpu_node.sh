#!/usr/bin/env bash
# One prepared run on a real GPU node: install preflight from this checkout, record the
# node, run every GPU path once, and collect it all in one folder. Bounded (each step has
# its own timeout; the whole run stays under 8 minutes) and never touches the network.
#
#   benchmarks/gpu_node.sh --fetch-wheels   # on a machine WITH PyPI: fill ./wheels/
#   benchmarks/gpu_node.sh                  # on the GPU node (OUT=dir to choose the folder)
#   benchmarks/gpu_node.sh --dry            # on a CPU box (CI): the same steps, replayed GPUs
#
# Output ($OUT, default ./gpu-node-out): snapshot.json (`preflight info --json`),
# <model>x<N>-recorded.json, e.g. h200x1-recorded.json (the snapshot with serials and host names replaced, fit to commit
# as fixtures/nvml/), static/ workloads/ cuda-stack/ (reports and logs), nvidia-smi-q.txt,
# timings.tsv (step, seconds, exit code), env.txt (versions), summary.txt.
# Exit: 0 when every step ran (a NO-GO verdict is a result, not a failure of the run),
# 1 when a step crashed or timed out, 4 on bad usage.
set -uo pipefail

HERE="$(cd "$(dirname "$0")/.." && pwd)"
MODE=gpu
case "${1:-}" in
  --dry) MODE=dry ;;
  --fetch-wheels) MODE=fetch ;;
  "") ;;
  *) echo "ERROR: usage: $0 [--dry | --fetch-wheels]" >&2; exit 4 ;;
esac
PY="${PYTHON:-python3}"
WHEELS="${WHEELS:-$HERE/wheels}"
# What the GPU node's python lacks (the issue lists it): the dependencies of pyproject.toml
# a torch node does not bring (pyahocorasick and pyyaml came after this list was written:
# without their wheels `pip install --no-index` stops) and hatchling, the build backend.
WHEEL_REQS=(python-dotenv bashlex pyahocorasick pyyaml pytest-timeout "hatchling>=1.18")

if [ "$MODE" = fetch ]; then
  mkdir -p "$WHEELS"
  "$PY" -m pip download -q --only-binary=:all: --dest "$WHEELS" "${WHEEL_REQS[@]}" || exit 1
  ls "$WHEELS"
  exit 0
fi

OUT="${OUT:-$PWD/gpu-node-out}"
mkdir -p "$OUT" || { echo "ERROR: cannot create $OUT" >&2; exit 4; }
OUT="$(cd "$OUT" && pwd)"
TIMINGS="$OUT/timings.tsv"
printf 'step\tseconds\texit\n' > "$TIMINGS"
FAILED=()
START=$SECONDS

# step NAME TIMEOUT_S OK_CODES CMD...: run bounded, log to $OUT/NAME.log, time it.
# OK_CODES: the exit codes that mean "the step ran" (0 GO and 1 NO-GO for preflight).
step() {
  local name=$1 limit=$2 ok=$3; shift 3
  local t0 rc
  t0=$EPOCHREALTIME
  timeout --kill-after=10 "$limit" "$@" > "$OUT/$name.log" 2>&1
  rc=$?
  awk -v n="$name" -v a="$t0" -v b="$EPOCHREALTIME" -v rc="$rc" \
    'BEGIN { printf "%s\t%.2f\t%s\n", n, b - a, rc }' >> "$TIMINGS"
  case " $ok " in
    *" $rc "*) echo "ok    $name (exit $rc)" ;;
    *) echo "FAIL  $name (exit $rc, see $OUT/$name.log)"; FAILED+=("$name") ;;
  esac
  return 0
}

# 1. preflight into a venv that still sees the node's torch, pytest, psutil, nvidia-ml-py.
VENV="$OUT/venv"
VPY="$VENV/bin/python"
PIP=("$VPY" -m pip)
if ! "$PY" -m venv --system-site-packages "$VENV" > /dev/null 2>&1; then
  # Debian's python3 without python3-venv has no ensurepip: a bare venv, the outer pip.
  rm -rf "$VENV"
  "$PY" -m venv --without-pip --system-site-packages "$VENV" \
    || { echo "ERROR: $PY -m venv failed" >&2; exit 1; }
  PIP=("$PY" -m pip --python "$VPY")
fi
# When $PY is itself a venv (CI), --system-site-packages means its base interpreter's:
# point the new venv at the outer venv's packages too (torch, pytest, psutil there).
"$VPY" - "$("$PY" -c 'import site, sys; print(":".join(site.getsitepackages())
            if sys.prefix != sys.base_prefix else "")')" <<'PYEOF'
import site, sys
from pathlib import Path
outer = [p for p in sys.argv[1].split(":") if p]
if outer:
    Path(site.getsitepackages()[0], "outer-venv.pth").write_text("\n".join(outer) + "\n")
PYEOF
if [ -d "$WHEELS" ] && ls "$WHEELS"/*.whl > /dev/null 2>&1; then
  step install 180 0 "${PIP[@]}" install -q --no-index --find-links "$WHEELS" "$HERE"
elif [ "$MODE" = dry ]; then
  step install 300 0 "${PIP[@]}" install -q "$HERE"  # CI has PyPI; the GPU node has not
else
  echo "ERROR: no wheels in $WHEELS (run '$0 --fetch-wheels' where PyPI is reachable)" >&2
  exit 4
fi
if [ ${#FAILED[@]} -gt 0 ]; then
  tail -5 "$OUT/install.log"; exit 1
fi
PREFLIGHT=("$VPY" -m preflight)

{
  echo "mode: $MODE"
  "$VPY" -c 'import sys; print("python", sys.version.split()[0])'
  "${PIP[@]}" list 2>/dev/null | grep -iE '^(torch|pytest|psutil|nvidia-ml-py|preflight|python-dotenv|bashlex) '
  command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
} > "$OUT/env.txt" 2>&1

# 2. The node as NVML reads it (dry: the 8x H200 fixture replayed through the same code).
REPLAY=()
if [ "$MODE" = dry ]; then
  REPLAY=(--nvml-replay "$HERE/fixtures/nvml/h200x8-healthy.json")
fi
step snapshot 60 0 "${PREFLIGHT[@]}" info --json "${REPLAY[@]}"
cp "$OUT/snapshot.log" "$OUT/snapshot.json"
# A copy fit for fixtures/nvml/: no host section, no serials, no hostnames.
"$VPY" - "$OUT/snapshot.json" "$OUT" <<'PYEOF' || FAILED+=(sanitize)
import json, re, sys
data = json.load(open(sys.argv[1]))
gpus = data.get("gpus", [])
model = re.sub(r"[^a-z0-9]+", "", gpus[0]["name"].lower().replace("nvidia", "")) if gpus \
    else "none"
target = f"{sys.argv[2]}/{model}x{len(gpus)}-recorded.json"  # e.g. h200x1-recorded.json
data.pop("host", None)
data["source"] = "nvml"
for i, gpu in enumerate(data.get("gpus", [])):
    gpu["uuid"] = f"GPU-00000000-0000-4000-8000-{i:012d}"
json.dump(data, open(target, "w"), indent=2)
print(f"{len(gpus)} GPU(s): {[g['name'] for g in gpus]} -> {target}")
PYEOF

# 3. The profile: the detected one, or (e.g. one H200 alone) a short site profile that
# extends the built-in for the GPUs really there.
SITE="$OUT/site"
mkdir -p "$SITE"
PROFILE=$("$VPY" - "$OUT/snapshot.json" "$SITE" "$HERE/benchmarks/site/h200x1.toml" <<'PYEOF'
import json, sys
from pathlib import Path
from preflight.matching import gpu_match
from preflight.profiles import load_profiles
gpus = json.load(open(sys.argv[1])).get("gpus", [])
profiles = load_profiles([])
fits = [p for p in profiles.values() if p.is_gpu and gpu_match(p, [g["name"] for g in gpus]).ok
        and p.gpu.count == len(gpus)]
if fits:
    print(max(fits, key=lambda p: len(p.gpu.model)).name)
elif gpus and "H200" in gpus[0]["name"]:
    text = Path(sys.argv[3]).read_text().replace("count = 1", f"count = {len(gpus)}")
    if len(gpus) > 1:  # several H200s: keep NVLink; busbw floor only for 8 on NVSwitch
        text = text.replace("nvlink = false", "nvlink = true").replace(
            "nvlink_links = 0", "nvlink_links = 18")
    name = f"h200x{len(gpus)}"
    (Path(sys.argv[2]) / f"{name}.toml").write_text(text)
    print(name)
else:
    print("cpu")
PYEOF
)
echo "profile: ${PROFILE:-?}" | tee -a "$OUT/env.txt"
[ -n "$PROFILE" ] || { FAILED+=(profile); PROFILE=cpu; }
PROF=(--profile-dir "$SITE" --profile "$PROFILE")

# 4. The static stage with that profile, twice: the first run may fill the torch
# arch-list cache (one child), the second is the steady state the issue times.
for run in static static-again; do
  step "$run" 90 "0 1" "${PREFLIGHT[@]}" -q -m static "${PROF[@]}" "${REPLAY[@]}" \
    --report-dir "$OUT/$run"
done

# 5. cuda-stack against this python's own torch (dry: the replayed H200s against the
# box's CPU torch, a NO-GO the check must give).
step cuda-stack 90 "0 1" "${PREFLIGHT[@]}" -q "${PROF[@]}" "${REPLAY[@]}" \
  --check cuda-stack --report-dir "$OUT/cuda-stack"

# 6. The workloads on the real devices: NCCL all-reduce over every GPU, train-10-steps
# with its checkpoint and resume, the libuv store (dry: the cpu profile, gloo).
WPROF=("${PROF[@]}")
[ "$MODE" = dry ] && WPROF=(--profile cpu)
step workloads 240 "0 1" "${PREFLIGHT[@]}" -q -m "workload and not stack" "${WPROF[@]}" \
  --report-dir "$OUT/workloads"

# 7. nvidia-smi's own view, to compare with the snapshot.
if command -v nvidia-smi > /dev/null; then
  step nvidia-smi 60 0 nvidia-smi -q
  mv "$OUT/nvidia-smi.log" "$OUT/nvidia-smi-q.txt"
else
  echo "nvidia-smi not found" > "$OUT/nvidia-smi-q.txt"
  [ "$MODE" = gpu ] && FAILED+=(nvidia-smi)
fi

# 8. One summary: verdicts and the figures the issue asks for.
"$VPY" - "$OUT" <<'PYEOF' > "$OUT/summary.txt" 2>&1 || FAILED+=(summary)
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
for part in ("static", "static-again", "cuda-stack", "workloads"):
    path = out / part / "preflight-report.json"
    if not path.exists():
        print(f"{part}: no report"); continue
    rep = json.loads(path.read_text())
    print(f"{part}: {rep['verdict']} profile={rep['profile']} {rep['duration_s']}s "
          f"{rep['counts']}")
    for c in rep["checks"]:
        if c["severity"] in ("blocker", "unknown", "warning"):
            print(f"  {c['severity']:8} {c['id']}: {c['summary'][:160]}")
        ev = c.get("evidence") or {}
        if c["id"] == "nccl-allreduce" and "peak_busbw_gbps" in ev:
            print(f"  nccl-allreduce: peak busbw {ev['peak_busbw_gbps']} GB/s at "
                  f"{ev.get('peak_at')} ({ev.get('backend')}, {ev.get('world_size')} ranks)")
        if c["id"] == "train-10-steps" and "step_time_s" in ev:
            print(f"  train-10-steps: step {ev['step_time_s']} s, {ev.get('tokens_per_s')} "
                  f"tok/s, peak memory {ev.get('peak_memory')}")
        if c["id"] == "cuda-stack" and ev:
            print(f"  cuda-stack: torch {ev.get('torch')} cuda {ev.get('torch_cuda')} "
                  f"arch {ev.get('arch_list')} driver {ev.get('driver_cuda')}")
PYEOF
cat "$OUT/summary.txt"

TOTAL=$((SECONDS - START))
printf 'total\t%s\t-\n' "$TOTAL" >> "$TIMINGS"
column -t "$TIMINGS" 2>/dev/null || cat "$TIMINGS"
rm -rf "$VENV"  # rebuilt in seconds; keeps $OUT small enough to carry back
if [ ${#FAILED[@]} -gt 0 ]; then
  echo "gpu_node.sh: steps that did not run to a verdict: ${FAILED[*]}"
  exit 1
fi
echo "gpu_node.sh: all steps ran in ${TOTAL}s; results in $OUT"
