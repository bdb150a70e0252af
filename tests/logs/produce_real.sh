#!/usr/bin/env bash
# Reproduces the real failures under tests/logs/real/ (run once by hand, as root on a Linux
# box with torch 2.13 CPU, cc, bash; the outputs are committed). Usage:
#   bash tests/logs/produce_real.sh PYTHON OUTDIR
# Each log gets a two-line header saying how it was made; the rest is the program's output.
set -u
PY=${1:?python with torch}; OUT=${2:?out dir}
W=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$W"' EXIT
cd "$W"
# torchrun's agent leaves a torchelastic_* tree in $TMPDIR per launch (never removed): here,
# removed with $W, not in the machine's /tmp
export TMPDIR="$W/tmp"; mkdir -p "$TMPDIR"
cat > train.py <<'PYEOF'
import os, torch, torch.distributed as dist
dist.init_process_group("gloo")
r = dist.get_rank()
t = torch.ones(4) * r
dist.all_reduce(t)
print(f"rank {r}: all_reduce ok {t.tolist()}", flush=True)
dist.destroy_process_group()
PYEOF
header() { printf '# fixture %s (real run, tests/logs/produce_real.sh)\n# made by: %s\n' "$1" "$2"; }
hold_port() {  # a process that listens on a free port; prints it
  "$PY" -c "
import socket,time
s=socket.socket(); s.bind(('0.0.0.0',0)); s.listen(); print(s.getsockname()[1],flush=True); time.sleep(600)" > port.txt &
  for _ in $(seq 50); do [ -s port.txt ] && break; sleep 0.1; done; cat port.txt; }

# port-free: the static rendezvous port is held by another process
P=$(hold_port)
{ header port-free-static "torchrun --nproc_per_node 2 --master_port <held port> train.py (gloo)"
  timeout 120 "$PY" -m torch.distributed.run --nproc_per_node 2 --nnodes 1 --master_addr 127.0.0.1 \
    --master_port "$P" train.py 2>&1; } > "$OUT/port-free-static.log"
# port-free: a server (http.server, as SGLang/uvicorn bind theirs) on the held port
{ header port-free-server "python -m http.server <held port>"
  timeout 60 "$PY" -m http.server "$P" --bind 0.0.0.0 2>&1; } > "$OUT/port-free-server.log"

# nested-launcher: torchrun around a script that runs torchrun on the inherited MASTER_PORT
cat > inner.sh <<'SHEOF'
exec "$PY" -m torch.distributed.run --nproc_per_node 2 --master_addr 127.0.0.1 --master_port "$MASTER_PORT" train.py
SHEOF
P2=$("$PY" -c "import socket;s=socket.socket();s.bind(('',0));print(s.getsockname()[1])")
{ header nested-torchrun "torchrun --nproc_per_node 2 --master_port P --no-python bash inner.sh (inner: torchrun on \$MASTER_PORT)"
  PY="$PY" timeout 90 "$PY" -m torch.distributed.run --nproc_per_node 2 --master_addr 127.0.0.1 \
    --master_port "$P2" --no-python bash inner.sh 2>&1; echo "[exit status $?]"; } > "$OUT/nested-torchrun.log"

# ray-path: the launch script calls ray with a PATH that has no ray
cat > run-qwen3-8B-finetuned.sh <<'SHEOF'
set -x
echo "starting ray head"
ray start --head --node-ip-address 127.0.0.1 --num-gpus 4 --disable-usage-stats
ray job submit --address="http://127.0.0.1:8265" -- python3 train.py --actor-num-gpus-per-node 4
SHEOF
{ header ray-path "PATH=/usr/bin:/bin bash run-qwen3-8B-finetuned.sh"
  env -i PATH=/usr/bin:/bin HOME="$HOME" bash run-qwen3-8B-finetuned.sh 2>&1; } > "$OUT/ray-path.log"
{ header ray-path-abs "bash $W/slime/run.sh with ray absent (absolute script path)"
  mkdir -p slime; cp run-qwen3-8B-finetuned.sh slime/run.sh
  env -i PATH=/usr/bin:/bin HOME="$HOME" bash "$PWD/slime/run.sh" 2>&1; } > "$OUT/ray-path-abs.log"

# cudart-link: flashinfer's link line against a conda prefix without lib64/
mkdir -p env/lib; printf 'int main(void){return 0;}\n' > k.c
{ header cudart-link "cc k.c -L env/lib64 -L env/lib64/stubs -lcudart -lcuda (env has lib/, no lib64/)"
  cc k.c -o k.so -shared -fPIC -L"$W/env/lib64" -L"$W/env/lib64/stubs" -lcudart -lcuda 2>&1; } > "$OUT/cudart-link.log"

# empty-variable: DATASET unset, the path keeps a hole
mkdir -p datasets/original; echo '{}' > datasets/original/sim_train.jsonl
cat > smoke.sh <<'SHEOF'
echo "dataset: datasets/original/${DATASET}_train.jsonl"
"$PY" -c 'import sys; open(sys.argv[1]).read()' "datasets/original/${DATASET}_train.jsonl"
SHEOF
{ header empty-variable-open "bash smoke.sh with DATASET unset (python opens datasets/original/\${DATASET}_train.jsonl)"
  env -u DATASET PY="$PY" bash smoke.sh 2>&1; } > "$OUT/empty-variable-open.log"
printf 'DATASET=${DATASET:?set DATASET, e.g. DATASET=sim}\necho never\n' > guard.sh
{ header empty-variable-guard "bash guard.sh with DATASET empty (guard \${DATASET:?...})"
  DATASET= bash guard.sh 2>&1; } > "$OUT/empty-variable-guard.log"

# host-limits: ulimit -n 64 and a DataLoader whose workers pass tensors as file descriptors
cat > loader_fd.py <<'PYEOF'
import torch, torch.multiprocessing as mp
from torch.utils.data import DataLoader, Dataset
mp.set_sharing_strategy("file_descriptor")
class D(Dataset):
    def __len__(self): return 4096
    def __getitem__(self, i): return [torch.zeros(8) for _ in range(16)]
for step, batch in enumerate(DataLoader(D(), batch_size=4, num_workers=4, prefetch_factor=8)):
    if step % 100 == 0: print(f"step {step}", flush=True)
PYEOF
cat > loader.py <<'PYEOF'
import torch
from torch.utils.data import DataLoader, Dataset
class D(Dataset):
    def __len__(self): return 4096
    def __getitem__(self, i): return torch.zeros(64, 64)
for step, batch in enumerate(DataLoader(D(), batch_size=4, num_workers=8)):
    if step % 100 == 0: print(f"step {step}", flush=True)
PYEOF
{ header host-limits-nofile "ulimit -n 64; python loader_fd.py (DataLoader, 4 workers, file_descriptor sharing)"
  bash -c 'ulimit -n 64; exec "$0" loader_fd.py' "$PY" 2>&1 | head -120; } > "$OUT/host-limits-nofile.log"
# host-limits: /dev/shm of 1 MB in a private mount namespace, DataLoader workers
{ header host-limits-shm "unshare -m: mount -t tmpfs -o size=1m tmpfs /dev/shm; python loader.py"
  unshare -m bash -c 'mount -t tmpfs -o size=1m tmpfs /dev/shm && exec "$0" loader.py' "$PY" 2>&1 | tail -40; } > "$OUT/host-limits-shm.log"

# disk-space: a 4 MB tmpfs as the output dir at checkpoint time
cat > ckpt.py <<'PYEOF'
import sys, torch
model = torch.nn.Linear(1024, 1024)
opt = torch.optim.AdamW(model.parameters())
model(torch.randn(2, 1024)).sum().backward(); opt.step()
print("step 10: saving checkpoint to", sys.argv[1], flush=True)
torch.save({"model": model.state_dict(), "optimizer": opt.state_dict()}, sys.argv[1] + "/checkpoint-10.pt")
PYEOF
{ header disk-space-torch-save "unshare -m: mount -t tmpfs -o size=4m tmpfs OUT; python ckpt.py OUT (torch.save)"
  mkdir -p out; unshare -m bash -c 'mount -t tmpfs -o size=4m tmpfs out && exec "$0" ckpt.py out' "$PY" 2>&1; } > "$OUT/disk-space-torch-save.log"
{ header disk-space-shutil "unshare -m: 2 MB tmpfs; python copies the tokenizer into the output dir"
  unshare -m bash -c 'mount -t tmpfs -o size=2m tmpfs out && head -c 3000000 /dev/urandom > big.bin && exec "$0" -c "import shutil; print(\"saving tokenizer\", flush=True); shutil.copy(\"big.bin\", \"out/tokenizer.json\")"' "$PY" 2>&1; } > "$OUT/disk-space-shutil.log"
echo done

# --- second batch: per-rank log directories and successful runs ---------------------------
cat > ranks.py <<'PYEOF'
import os, sys, time, torch, torch.distributed as dist
dist.init_process_group("gloo")
r = dist.get_rank()
print(f"rank {r}: step 0 loss 2.31", flush=True)
if r == int(os.environ["FAIL_RANK"]):
    if os.environ["FAIL"] == "dataset":
        open(f"datasets/original/{os.environ.get('DATASET', '')}_train.jsonl").read()
    else:
        m = torch.nn.Linear(1024, 1024); print("saving checkpoint-10", flush=True)
        torch.save({"model": m.state_dict()}, "out/checkpoint-10.pt")
t = torch.ones(4)
dist.all_reduce(t)
PYEOF
mkdir -p datasets/original out
# ranks-dataset: rank 1 opens a path with a hole (DATASET unset); rank 0 dies in all_reduce
{ FAIL=dataset FAIL_RANK=1 timeout 120 "$PY" -m torch.distributed.run --nproc_per_node 2 \
    --log-dir "$OUT/ranks-dataset" --redirects 3 ranks.py; } > /dev/null 2>&1
# ranks-disk: rank 0 saves into a full 1 MB tmpfs, rank 1 waits in all_reduce
unshare -m bash -c 'mount -t tmpfs -o size=1m tmpfs out && FAIL=disk FAIL_RANK=0 timeout 120 "$0" -m torch.distributed.run --nproc_per_node 2 --log-dir "$1" --redirects 3 ranks.py' \
    "$PY" "$OUT/ranks-disk" > /dev/null 2>&1

# ok-torchrun: a successful gloo run that never calls destroy_process_group (torch warns)
sed '/destroy_process_group/d' train.py > train_nodestroy.py
{ header ok-torchrun "torchrun --nproc_per_node 2 train_nodestroy.py (gloo; success)"
  timeout 120 "$PY" -m torch.distributed.run --nproc_per_node 2 --tee 3 train_nodestroy.py 2>&1; } > "$OUT/ok-torchrun.log"
# ok-dataloader: a successful DataLoader run with more workers than cores (UserWarning)
{ header ok-dataloader "python loader.py (8 workers on a 2-core box; success)"
  "$PY" loader.py 2>&1; } > "$OUT/ok-dataloader.log"

# --- third batch: more shapes of the same failures ---------------------------------------
{ header ray-path-dash "sh -c 'ray stop --force' (dash, no ray on PATH)"
  env -i PATH=/usr/bin:/bin sh -c 'ray stop --force' 2>&1; } > "$OUT/ray-path-dash.log"
{ header ray-path-subprocess "python: subprocess.run(['ray', 'start', '--head']) without ray on PATH"
  env -i PATH=/usr/bin:/bin "$PY" -c "import subprocess; subprocess.run(['ray', 'start', '--head'])" 2>&1; } > "$OUT/ray-path-subprocess.log"
{ header cuda-stack-cpu-torch "python -c 'torch.zeros(1).cuda()' with the CPU wheel"
  "$PY" -c "import torch; torch.zeros(1).cuda()" 2>&1; } > "$OUT/cuda-stack-cpu-torch.log"
{ header empty-variable-slash "DATASET unset: python opens datasets/\${DATASET}/train.jsonl"
  env -u DATASET bash -c '"$0" -c "import sys; open(sys.argv[1])" "datasets/${DATASET}/train.jsonl"' "$PY" 2>&1; } > "$OUT/empty-variable-slash.log"

# rank-sigkill: a rank killed by SIGKILL (what the kernel's OOM killer sends), nothing printed
cat > kill9.py <<'PYEOF'
import os, signal, time
import torch.distributed as dist
dist.init_process_group("gloo")
if dist.get_rank() == 1:
    os.kill(os.getpid(), signal.SIGKILL)
time.sleep(5)
PYEOF
{ header rank-sigkill "torchrun --standalone --nproc_per_node 2 kill9.py (rank 1 sends itself SIGKILL, as the kernel OOM killer does)"
  timeout 120 "$PY" -m torch.distributed.run --standalone --nproc_per_node 2 kill9.py 2>&1; } > "$OUT/rank-sigkill.log"

# --- fourth batch: multi-node launches seen from one node ----------------------------------
free_port() { "$PY" -c "import socket;s=socket.socket();s.bind(('',0));print(s.getsockname()[1])"; }
# master-addr: a worker node launched with the single-node MASTER_ADDR=127.0.0.1; no store there
P3=$(free_port)
{ header master-addr-store-loopback "torchrun --nnodes 2 --node_rank 1 --master_addr 127.0.0.1 --master_port <closed> --rdzv_conf timeout=5 train.py"
  timeout 120 "$PY" -m torch.distributed.run --nnodes 2 --node_rank 1 --nproc_per_node 1 --master_addr 127.0.0.1 \
    --master_port "$P3" --rdzv_conf timeout=5 train.py 2>&1; } > "$OUT/master-addr-store-loopback.log"
# master-addr: gloo's full mesh toward a loopback peer address where nothing listens (rank 1
# publishes its address over lo, as a node whose hostname resolves to 127.0.x.1 does, then is
# gone when rank 0 connects)
cat > mesh.py <<'PYEOF'
import os, sys, threading, time
from datetime import timedelta
import torch.distributed as dist
port, rank = int(sys.argv[1]), int(sys.argv[2])
store = dist.TCPStore("127.0.0.1", port, 2, False, timeout=timedelta(seconds=20))
if rank == 1:
    threading.Timer(2.0, lambda: os._exit(0)).start()
else:
    time.sleep(4)
dist.init_process_group("gloo", store=store, rank=rank, world_size=2, timeout=timedelta(seconds=5))
PYEOF
cat > meshrun.py <<'PYEOF'
import subprocess, sys
from datetime import timedelta
import torch.distributed as dist
store = dist.TCPStore("127.0.0.1", 0, 2, True, timeout=timedelta(seconds=20), wait_for_workers=False)
procs = [subprocess.Popen([sys.executable, "mesh.py", str(store.port), str(r)]) for r in (0, 1)]
for p in procs:
    p.wait(timeout=60)
PYEOF
{ header master-addr-gloo-mesh "GLOO_SOCKET_IFNAME=lo python meshrun.py (2 gloo ranks; rank 1 gone before rank 0 connects)"
  GLOO_SOCKET_IFNAME=lo timeout 90 "$PY" meshrun.py 2>&1; } > "$OUT/master-addr-gloo-mesh.log"
# cluster-reach: a worker node whose MASTER_ADDR has no route (an unanswered address on its
# subnet: ARP fails, EHOSTUNREACH) and one whose MASTER_ADDR drops SYNs (timeout). Both run
# in two network namespaces of this machine joined by a veth pair, with nft dropping port
# 29500 in the second: no packet leaves the machine.
reach_netns() {
  ip netns add pfr-a && ip netns add pfr-b || return 1
  ip link add pfr-va type veth peer name pfr-vb
  ip link set pfr-va netns pfr-a; ip link set pfr-vb netns pfr-b
  ip -n pfr-a addr add 10.213.9.1/24 dev pfr-va; ip -n pfr-b addr add 10.213.9.2/24 dev pfr-vb
  for ns in pfr-a pfr-b; do ip -n $ns link set lo up; done
  ip -n pfr-a link set pfr-va up; ip -n pfr-b link set pfr-vb up
  ip netns exec pfr-b nft -f - <<'NFT'
table inet pfr {
  chain in {
    type filter hook input priority 0;
    tcp dport 29500 drop
  }
}
NFT
}
if reach_netns; then
  { header cluster-reach-no-route "torchrun --nnodes 2 --node_rank 1 --master_addr <unanswered 10.213.9.77 in a test netns> --master_port 29500 --rdzv_conf timeout=5 train.py"
    ip netns exec pfr-a timeout 120 "$PY" -m torch.distributed.run --nnodes 2 --node_rank 1 --nproc_per_node 1 \
      --master_addr 10.213.9.77 --master_port 29500 --rdzv_conf timeout=5 train.py 2>&1; } > "$OUT/cluster-reach-no-route.log"
  { header cluster-reach-timeout "torchrun --nnodes 2 --node_rank 1 --master_addr <test netns peer 10.213.9.2 that drops port 29500> --master_port 29500 --rdzv_conf timeout=5 train.py"
    ip netns exec pfr-a timeout 120 "$PY" -m torch.distributed.run --nnodes 2 --node_rank 1 --nproc_per_node 1 \
      --master_addr 10.213.9.2 --master_port 29500 --rdzv_conf timeout=5 train.py 2>&1; } > "$OUT/cluster-reach-timeout.log"
fi
ip netns del pfr-a 2>/dev/null; ip netns del pfr-b 2>/dev/null  # end of the cluster-reach runs
# cluster-nodes: the master node waits for a node that never comes (NNODES=2, one node
# launched) and for a third one when NNODES=3 but two nodes run
P4=$(free_port)
{ header cluster-nodes-missing "torchrun --nnodes 2 --node_rank 0 --master_addr 127.0.0.1 --rdzv_conf timeout=5 train.py (no node 1)"
  timeout 120 "$PY" -m torch.distributed.run --nnodes 2 --node_rank 0 --nproc_per_node 1 --master_addr 127.0.0.1 \
    --master_port "$P4" --rdzv_conf timeout=5 train.py 2>&1; } > "$OUT/cluster-nodes-missing.log"
P5=$(free_port)
timeout 120 "$PY" -m torch.distributed.run --nnodes 3 --node_rank 1 --nproc_per_node 1 --master_addr 127.0.0.1 \
  --master_port "$P5" --rdzv_conf timeout=8 train.py > /dev/null 2>&1 &
{ header cluster-nodes-nnodes "torchrun --nnodes 3 --node_rank 0 --rdzv_conf timeout=8 train.py while only node 1 also runs"
  timeout 120 "$PY" -m torch.distributed.run --nnodes 3 --node_rank 0 --nproc_per_node 1 --master_addr 127.0.0.1 \
    --master_port "$P5" --rdzv_conf timeout=8 train.py 2>&1; } > "$OUT/cluster-nodes-nnodes.log"
wait

# --- launch-syntax: the launch script itself does not parse; bash stops at the error -------
# (bash exits 2 at a syntax error; nothing after it, the launcher included, runs)
syntax_log() {  # NAME SCRIPT-TEXT
  printf '%s\n' "$2" > "$1.sh"
  { header "$1" "bash $1.sh (a launch script with a syntax error)"
    bash "$1.sh" 2>&1; echo "exit status $?"; } > "$OUT/$1.log"
}
syntax_log launch-syntax-placeholder "$(printf 'echo "preparing data"\nMODEL=<PATH_OF_MODEL>\ntorchrun --nproc_per_node 2 train.py --model "$MODEL"')"
syntax_log launch-syntax-quote "$(printf 'echo "preparing data"\ntorchrun --nproc_per_node 2 train.py --run_name "sft-1\necho done')"
syntax_log launch-syntax-if "$(printf 'echo "preparing data"\nif [ -n "$NODE_RANK" ]; then\n  echo "node $NODE_RANK"\ntorchrun --nproc_per_node 2 train.py')"
