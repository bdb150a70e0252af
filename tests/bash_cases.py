# ruff: noqa: E501  (scripts as data: a line of bash stays one line here)
"""The scripts the bash oracle runs: construct templates x launchers x environments,
and whole scripts in the styles of the projects preflight users launch (slime,
Megatron-LM, ms-swift, verl, OpenRLHF, torchtitan, accelerate, Slurm wrappers)."""

from __future__ import annotations

from bash_oracle import Case

LAUNCHERS = {
    "torchrun": "torchrun --nproc_per_node ${NP:-2} --master_port ${PORT:-29500} train.py "
                "--lr 1e-4",
    "torch-run-module": "python -m torch.distributed.run --nproc_per_node=${NP:-2} train.py",
    "deepspeed": "deepspeed --num_gpus ${NP:-2} --master_port ${PORT:-29500} train.py "
                 "--deepspeed ds.json",
    "accelerate": "accelerate launch --num_processes ${NP:-2} --main_process_port "
                  "${PORT:-29500} train.py",
    "swift": "NPROC_PER_NODE=${NP:-2} MASTER_PORT=${PORT:-29500} swift rlhf --rlhf_type grpo "
             "--model Qwen/Qwen2.5-7B",
    "megatron": "NPROC_PER_NODE=${NP:-2} megatron sft --model m --load ckpt",
    "ray": "ray job submit --address=http://127.0.0.1:8265 -- python3 train.py "
           "--actor-num-gpus-per-node ${NP:-2}",
    "python": "CUDA_VISIBLE_DEVICES=0,1 python train.py --port ${PORT:-29500}",
}

ENVS = {
    "bare": {},
    "set": {"NP": "4", "PORT": "29555", "MODE": "sft", "CUDA_VISIBLE_DEVICES": "0,1,2,3",
            "OUT": "outdir"},
    "grpo": {"MODE": "grpo", "DEBUG": "1", "NNODES": "1", "MASTER_ADDR": "127.0.0.1"},
}

FILES = {
    "data/a.jsonl": "{}\n",
    "data/b.jsonl": "{}\n",
    "configs/ds.json": "{}\n",
    "env.sh": "export MASTER_ADDR=10.0.0.1\nexport NP=${NP:-8}\nHIDDEN=4096\n",
    "exit_env.sh": "[ -n \"$STOP\" ] && exit 3\nexport SOURCED=1\n",
    "return_env.sh": "export A1=1\nreturn 0\nexport A2=2\n",
    ".env": "MASTER_PORT=1234\nWANDB_MODE=offline\n",
    "inner.sh": "#!/bin/bash\ntorchrun --nproc_per_node \"${1:-1}\" --master_port 0 inner.py \"$@\"\n",
    "scripts/models/qwen2.5-7B.sh": "MODEL_ARGS=(\n   --num-layers 28\n   --hidden-size 3584\n"
                                    "   --ffn-hidden-size 18944\n)\n",
    "lines.txt": "alpha\nbeta\n",
}

# Each template holds @L@ where a launcher line goes.
TEMPLATES = {
    "plain": "@L@\n",
    "set-e": "set -euo pipefail\n@L@\n",
    "exports": "export MASTER_PORT=${PORT:-29511}\nexport OMP_NUM_THREADS=4\n@L@\n",
    "prefix-only": "MASTER_ADDR=localhost @L@\necho done\n",
    "allexport": "set -a\nWANDB_MODE=offline\nset +a\nLOCAL=1\n@L@\n",
    "function": "launch() {\n  @L@ \"$@\"\n}\nlaunch\nlaunch --extra \"two words\"\n",
    "main-args": "main() {\n  @L@ \"$@\"\n}\nmain \"$@\"\n",
    "local": "f() {\n  local NP=3\n  @L@\n}\nNP=5\nf\n@L@\n",
    "background": "set -e\nexport NP=7 &\nPORT=29444 &\ncd data &\nf() { export INF=1; }\nf &\nfalse &\n(exit 3) &\nwait\n@L@ ${INF:-none}\n@L@ & wait\n",
    "local-leak": "g() {\n  local X=in\n  Y=out\n}\ng\nexport X=${X:-none} Y\n@L@\n",
    "array": "EXTRA=(--max_steps 10 \"--name\" 'a b')\nEXTRA+=(--seed 1)\n@L@ \"${EXTRA[@]}\" "
             "${#EXTRA[@]} ${EXTRA[1]} \"${EXTRA[*]}\"\n",
    "array-unquoted": "A=(\"x y\" z)\n@L@ ${A[@]} ${A[*]} ${A[-1]}\n",
    "array-empty": "E=()\n@L@ \"${E[@]}\" ${#E[@]}\n",
    "array-multiline": "ARGS=(\n  --a 1   # first\n  --b \"$HOME/x\"\n)\n@L@ \"${ARGS[@]}\"\n",
    "array-element": "A=(one two)\nA[1]=TWO\nA[2]=three\n@L@ \"${A[@]}\" $A\n",
    "declare-array": "declare -a D=(d1 d2)\nlocal_fn() { local -a L=(l1); echo \"${L[@]}\"; }\n"
                     "local_fn\n@L@ \"${D[@]}\"\n",
    "case-known": "case \"${MODE:-sft}\" in\n  sft) STEPS=10 ;;\n  grpo|dpo)\n    STEPS=20\n"
                  "    ;;\n  *) STEPS=0 ;;\nesac\nexport STEPS\n@L@ --steps $STEPS\n",
    "case-launch": "case \"$MODE\" in\n  sft) @L@ --sft ;;\n  grpo) @L@ --grpo ;;\nesac\n",
    "case-unknown": "case \"$(hostname)\" in\n  node1) X=a ;;\n  *) X=b ;;\nesac\n@L@ --x $X\n",
    "case-oneline": "case $MODE in sft) A=1;; *) A=2;; esac; @L@ $A\n",
    "case-glob": "case \"$CUDA_VISIBLE_DEVICES\" in\n  *,*) MULTI=yes ;;\n  '') MULTI=none ;;\n"
                 "  *) MULTI=no ;;\nesac\n@L@ --multi $MULTI\n",
    "arith": "N=$(( ${NP:-2} * 2 ))\n(( M = N + 1 ))\nlet K=M*2 J=K/3\ndeclare -i I=3+4\n"
             "@L@ $N $M $K $J $I $(( (N + 1) % 3 )) $((1 << 4))\n",
    "arith-cond": "if (( ${NP:-2} > 2 )); then BIG=1; else BIG=0; fi\n@L@ --big $BIG\n",
    "params": "V=/models/Qwen2.5-7B.tar.gz\n@L@ ${V%.gz} ${V%%.*} ${V#*/} ${V##*/} ${V/Qwen/Q} "
              "${V//e/E} ${V:8:4} ${V: -2} ${#V} ${V^^} ${V,,}\n",
    "params-default": "@L@ ${UNSET:-dflt} ${UNSET-d2} \"${EMPTY:+alt}\" ${HOME:+home} "
                      "${NEW:=assigned} $NEW\n",
    "bash-c": "bash -c \"@L@\"\n",
    "sh-c-args": "sh -c 'echo \"$0\" \"$1\"; @L@ \"$@\"' prog first second\n",
    "srun-bash-c": "srun --ntasks=1 --nodes=1 bash -c \"@L@\"\n",
    "command-v": "if command -v torchrun >/dev/null 2>&1; then HAVE=yes; else HAVE=no; fi\n"
                 "command -v nothere-xyz >/dev/null || MISSING=1\n@L@ --have $HAVE ${MISSING:-0}\n",
    "glob": "@L@ --data data/*.jsonl --none nomatch/*.x --q 'data/*.jsonl'\n",
    "brace": "@L@ --files {a,b}.txt --seq t{1..3} --pad {08..10} --literal '{x,y}'\n",
    "mkdir-test": "OUT=${OUT:-out/run1}\nmkdir -p \"$OUT\"\n[ -d \"$OUT\" ] && @L@ --out $OUT\n"
                  "[ -d never-made ] && @L@ --never\n",
    "file-test": "if [ -f data/a.jsonl ]; then D=data/a.jsonl; else D=missing; fi\n"
                 "[ -e nope.txt ] || @L@ --data $D\n",
    "touch-test": "touch made.flag\nif [ -f made.flag ]; then @L@ --flag; fi\n",
    "set-e-stop": "set -e\nfalse\n@L@\n",
    "set-e-guarded": "set -e\nfalse || true\nif false; then :; fi\n! false\n@L@\n",
    "set-e-and": "set -e\n[ -f nope ] && echo never\n@L@\n",
    "set-u-stop": "set -u\necho \"$UNSET_VAR\"\n@L@\n",
    "set-u-default": "set -u\necho \"${UNSET_VAR:-}\"\n@L@\n",
    "colon-q": ": \"${REQUIRED:?set REQUIRED}\"\n@L@\n",
    "source": "source ./env.sh\n. env.sh\n@L@ --hidden $HIDDEN\n",
    "source-exit": "export STOP=${MODE:-}\nsource ./exit_env.sh\n@L@\n",
    "source-return": "source ./return_env.sh\n@L@\n",
    "source-missing": "source ./not-there.sh\n@L@ --x ${FROM_MISSING:-d}\n",
    "dotenv-export": "export $(grep -v '^#' .env | xargs)\n@L@\n",
    "while-read-export": "while read -r line; do export \"$line\"; done < .env\n@L@\n",
    "read": "read -r FIRST < lines.txt\n@L@ --first \"$FIRST\"\n",
    "printf-v": "printf -v PADDED '%05d' 42\n@L@ --p \"$PADDED\"\n",
    "eval-known": "eval \"EV=evaluated\"\neval export EV2=two\n@L@ --ev $EV\n",
    "eval-unknown": "CMD=\"$(echo EVX=1)\"\neval \"$CMD\"\n@L@ --evx ${EVX:-0}\n",
    "unparsable": "X=$(echo a && echo b)\nif [[ \"$X\" =~ ^a ]]; then Y=1; fi\n@L@ --y ${Y:-0}\n",
    "dbl-bracket": "if [[ -n \"${DEBUG:-}\" && \"${MODE:-}\" == g* ]]; then LV=debug; else LV=info; fi\n"
                   "@L@ --log $LV\n",
    "ifs": "OLD=$IFS\nIFS=,\nLIST=\"a,b,c\"\nset -- $LIST\nIFS=$OLD\n@L@ \"$@\" $#\n",
    "positional": "set -- --alpha 1 \"two words\"\nshift\n@L@ \"$@\" $# \"$*\"\n",
    "for-loop": "for n in 1 2; do\n  @L@ --n $n\ndone\n",
    "cd": "mkdir -p sub\ncd sub\n@L@ --where $(pwd)\ncd ..\n",
    "subshell": "( export SUB=1; @L@ )\nexport AFTER=${SUB:-none}\n@L@\n",
    "pipeline-tee": "mkdir -p logs\n@L@ 2>&1 | tee logs/run.log\n",
    "exec": "exec @L@\necho never\n",
    "wrappers": "nohup @L@ > /dev/null 2>&1\ntimeout 100 @L@\nenv A=1 B=2 @L@\n",
    "heredoc-read": "read -r -d '' CMD <<EOF || true\n--lr 1e-5 --bs 4\nEOF\n@L@ $CMD\n",
    "time-keyword": "time @L@\ntime -p @L@ --again\n",
    "arith-for": "N=1\nfor ((i = 0; i < 2; i++)); do N=$i; @L@ --i $i; done\n@L@ --n $N\n",
    "while-counter": "N=0\nwhile [ $N -lt 2 ]; do\n  N=$((N + 1))\n  @L@ --n $N\ndone\n@L@ --after $N\n",
    "loop-function": "bump() { K=$((K + 1)); }\nK=0\nfor f in data/*.jsonl; do bump; @L@ --k $K; done\n",
    "loop-break": "for n in 1 2 3; do\n  [ $n = 2 ] && break\n  @L@ --n $n\ndone\n",
    "shift-past": "set -- one\nshift 2 || echo none\n@L@ \"$@\"\n",
    "local-top": "local X=1 2>/dev/null\n@L@ ${X:-unset}\n",
    "tilde": "@L@ ~/data ~root/x --t=~/y\n",
    "arith-for-set-e": "set -e\nfor ((k=0; k<2; k++)); do :; done\n@L@ --k $k\n",
    "ifs-join": "set -- a b c\nIFS=:\nJ=\"$*\"\nunset IFS\n@L@ --j $J\n",
    "mapfile-t": "mapfile -t LINES < lines.txt\n@L@ \"${LINES[@]}\"\n",
    "func-case-oneline": "f() { case \"${MODE:-x}\" in sft) K=1 ;; *) K=2 ;; esac; }\nf\n"
                         "function h { case $K in 1) J=a ;; *) J=b ;; esac; }\nh\n@L@ --k $K --j $J\n",
    "arith-bad-value": "set -e\nBAD=\"4 4\"\nN=$((BAD+1))\necho $((BAD*2)); X=never\n@L@ --n ${N:-none} ${X:-kept}\n",
    "arith-bad-chars": "F=x.tar.gz\nN=$((F+1))\nB=x{1,2}\necho $((B)); M=never\n@L@ --n ${N:-none} ${M:-kept}\n",
    "assign-array-join": "A=(--a \"b c\")\nV=\"${A[@]}\"\nset -- p q\nW=\"$@\"\n@L@ --v \"$V\" --w \"$W\"\n",
    "export-array-join": "A=(--x \"y z\")\nexport JOINED=\"${A[@]}\"\nset -- p q\ncase \"$@\" in \"p q\") W=one ;; *) W=many ;; esac\n@L@ --w $W\n",
    "export-brace": "export BR=x{1,2}\n@L@ --br $BR\n",
    "dirname": "ROOT=$(dirname \"$(readlink -f \"$0\")\")\nHERE=$(cd \"$(dirname \"$0\")\" && pwd)\n"
               "@L@ --root $ROOT --here $HERE\n",
}

# A few constructs with their own launch lines (no template).
EXTRA = {
    "megatron-array": "DISTRIBUTED_ARGS=(\n    --nproc_per_node 8\n    --nnodes 1\n"
                      "    --master_addr localhost\n    --master_port 6000\n)\n"
                      "torchrun ${DISTRIBUTED_ARGS[@]} pretrain_gpt.py --num-layers 24\n",
    "exit-in-function": "die() { echo \"$1\"; exit 1; }\n[ -z \"$DATA\" ] && die 'no data'\n"
                        "torchrun t.py\n",
    "return-status": "check() { return 1; }\nif check; then torchrun a.py; else torchrun b.py; fi\n",
    "nested-case": "case ${MODE:-x} in\n  sft)\n    case ${NP:-1} in\n      4) torchrun four.py ;;\n"
                   "      *) torchrun other.py ;;\n    esac ;;\n  *) python fallback.py ;;\nesac\n",
    # a launcher kept in a string and run unquoted behind a wrapper, one value unknown:
    # the words before the unknown part are split as bash splits them
    "string-cmd-unknown-part": "HOSTIP=$(hostname -i)\nLAUNCH=\"accelerate launch --num_processes "
                               "${NP:-2} --main_process_ip $HOSTIP --main_process_port 29511 \"\n"
                               "CMD=\"$LAUNCH t.py --lr 1\"\nsrun $CMD\nsrun --nodes=1 torchrun "
                               "--nnodes 1 $CMD\n",
    # a function defined only on one side of && / ||: where the definition is not
    # reached, the call is `command not found` and set -e ends the script there
    "func-not-reached": "set -e\n[ -n \"${MODE:-}\" ] && setup_env() { export X=1; }\n"
                        "setup_env\ntorchrun --nproc_per_node 2 t.py\n",
    "fallthrough": "case a in\n  a) X=1 ;&\n  b) Y=2 ;;\nesac\ntorchrun $X $Y\n",
    # a quoted here-document delimiter: the body is data, not commands (bashlex 0.18
    # wants `'EOF'` on the closing line and read the rest of the script as the body)
    "quoted-heredoc": "cat > ds.json <<'JSON'\n{\"zero\": 2}\ntorchrun --not-run x.py\nJSON\n"
                      "read -r -d '' CMD <<\"EOF\" || true\n--lr $LR\nEOF\n"
                      "deepspeed --num_gpus ${NP:-2} t.py --deepspeed ds.json $CMD\n",
    # a pure substitution inside a default (bashlex keeps ${...} whole)
    "default-substitution": "D=${DATA_DIR:-$(pwd)/data}\nO=\"${OUT:-$(dirname \"$D\")/out}\"\n"
                            "torchrun --nproc_per_node 2 t.py --data $D --out $O\n",
    "elif-chain": "if [ \"${MODE:-}\" = a ]; then M=1\nelif [ \"${MODE:-}\" = b ]; then M=2\n"
                  "elif [ \"${MODE:-}\" = sft ]; then M=3\nelif [ -n \"${MODE:-}\" ]; then M=4\n"
                  "else M=5\nfi\ntorchrun --m $M t.py\n",
}

WHOLE = {
    "slime": """#!/bin/bash
# slime style: model args from a sourced file, arrays, ray job submit
set -ex
export PYTHONBUFFERED=16
SCRIPT_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" &>/dev/null && pwd)"
source "${SCRIPT_DIR}/scripts/models/qwen2.5-7B.sh"
CKPT_ARGS=(
   --hf-checkpoint /root/Qwen2.5-7B
   --ref-load /root/Qwen2.5-7B_torch_dist
   --save /root/out
   --save-interval 20
)
ROLLOUT_ARGS=(
   --prompt-data data/a.jsonl
   --input-key prompt
   --rollout-batch-size 32
   --n-samples-per-prompt 8
)
SGLANG_ARGS=(
   --rollout-num-gpus-per-engine 2
   --sglang-mem-fraction-static 0.7
)
NUM_GPUS=${NUM_GPUS:-8}
RUNTIME_ENV_JSON="{\\"env_vars\\": {\\"PYTHONPATH\\": \\"/root/Megatron-LM/\\", \\"CUDA_DEVICE_MAX_CONNECTIONS\\": \\"1\\"}}"
ray job submit --address="http://127.0.0.1:8265" \\
   --runtime-env-json="${RUNTIME_ENV_JSON}" \\
   -- python3 train.py \\
   --actor-num-nodes 1 \\
   --actor-num-gpus-per-node ${NUM_GPUS} \\
   --colocate \\
   ${MODEL_ARGS[@]} \\
   "${CKPT_ARGS[@]}" \\
   ${ROLLOUT_ARGS[@]} \\
   "${SGLANG_ARGS[@]}"
""",
    "megatron": """#!/bin/bash
# Megatron-LM examples/gpt3/train_gpt3_175b_distributed.sh style
export CUDA_DEVICE_MAX_CONNECTIONS=1
GPUS_PER_NODE=8
MASTER_ADDR=localhost
MASTER_PORT=6000
NUM_NODES=1
NODE_RANK=0
WORLD_SIZE=$(($GPUS_PER_NODE*$NUM_NODES))
CHECKPOINT_PATH=$1
TENSORBOARD_LOGS_PATH=$2
DISTRIBUTED_ARGS=(
    --nproc_per_node $GPUS_PER_NODE
    --nnodes $NUM_NODES
    --master_addr $MASTER_ADDR
    --master_port $MASTER_PORT
)
GPT_MODEL_ARGS=(
    --num-layers 96
    --hidden-size 12288
)
TRAINING_ARGS=(
    --micro-batch-size 1
    --global-batch-size $(( WORLD_SIZE * 2 ))
)
torchrun ${DISTRIBUTED_ARGS[@]} pretrain_gpt.py \\
    ${GPT_MODEL_ARGS[@]} \\
    ${TRAINING_ARGS[@]} \\
    --save $CHECKPOINT_PATH \\
    --tensorboard-dir $TENSORBOARD_LOGS_PATH
""",
    "swift-grpo": """#!/bin/bash
# ms-swift examples/train/grpo style
CUDA_VISIBLE_DEVICES=0,1,2,3 \\
NPROC_PER_NODE=4 \\
swift rlhf \\
    --rlhf_type grpo \\
    --model Qwen/Qwen2.5-7B-Instruct \\
    --reward_funcs accuracy format \\
    --use_vllm true \\
    --vllm_mode colocate \\
    --vllm_gpu_memory_utilization 0.5 \\
    --dataset 'AI-MO/NuminaMath-TIR#5000' \\
    --per_device_train_batch_size 4 \\
    --num_generations 8 \\
    --output_dir output/grpo
""",
    "swift-megatron": """#!/bin/bash
# ms-swift megatron examples style
PYTORCH_CUDA_ALLOC_CONF='expandable_segments:True' \\
NPROC_PER_NODE=2 \\
CUDA_VISIBLE_DEVICES=0,1 \\
megatron rlhf \\
    --rlhf_type dpo \\
    --load Qwen3-8B-mcore \\
    --dataset data/a.jsonl \\
    --tensor_model_parallel_size 2 \\
    --save megatron_output/Qwen3-8B
""",
    "verl": """#!/bin/bash
# verl examples style: hydra key=value overrides
set -x
gsm8k_train_path=$HOME/data/gsm8k/train.parquet
train_files="['$gsm8k_train_path']"
python3 -m verl.trainer.main_ppo \\
    algorithm.adv_estimator=grpo \\
    data.train_files="$train_files" \\
    data.train_batch_size=1024 \\
    actor_rollout_ref.model.path=Qwen/Qwen2.5-3B-Instruct \\
    actor_rollout_ref.rollout.gpu_memory_utilization=0.6 \\
    trainer.n_gpus_per_node=${N_GPUS:-8} \\
    trainer.nnodes=1 $@
""",
    "openrlhf": """#!/bin/bash
# OpenRLHF examples style: the command in a heredoc, deepspeed --module
set -x
read -r -d '' training_commands <<EOF
openrlhf.cli.train_sft \\
   --max_len 2048 \\
   --dataset Open-Orca/OpenOrca \\
   --train_batch_size 256 \\
   --pretrain meta-llama/Meta-Llama-3-8B \\
   --save_path ./checkpoint/llama3-8b-sft
EOF
if [[ ${1} != "slurm" ]]; then
    deepspeed --module $training_commands
fi
""",
    "torchtitan": """#!/usr/bin/bash
# torchtitan run_train.sh style
set -ex
NGPU=${NGPU:-"8"}
export LOG_RANK=${LOG_RANK:-0}
CONFIG_FILE=${CONFIG_FILE:-"./torchtitan/models/llama3/train_configs/debug_model.toml"}
TRAIN_FILE=${TRAIN_FILE:-"torchtitan.train"}
overrides=""
if [ $# -ne 0 ]; then
    overrides="$*"
fi
PYTORCH_CUDA_ALLOC_CONF="expandable_segments:True" \\
torchrun --nproc_per_node=${NGPU} --rdzv_backend c10d --rdzv_endpoint="localhost:0" \\
--local-ranks-filter ${LOG_RANK} --role rank --tee 3 \\
-m ${TRAIN_FILE} --job.config_file ${CONFIG_FILE} $overrides
""",
    "accelerate": """#!/bin/bash
# accelerate examples style: a config file and its overrides
ACCELERATE_CONFIG=${ACCELERATE_CONFIG:-configs/ds.json}
accelerate launch --config_file $ACCELERATE_CONFIG \\
    --num_processes ${NUM_PROCESSES:-2} \\
    --main_process_port ${PORT:-29501} \\
    examples/nlp_example.py --mixed_precision bf16
""",
    "slurm": """#!/bin/bash
#SBATCH --job-name=train
#SBATCH --nodes=1
#SBATCH --gpus-per-node=8
export MASTER_ADDR=${MASTER_ADDR:-$(hostname)}
export MASTER_PORT=${MASTER_PORT:-29500}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
srun --ntasks-per-node=1 bash -c "torchrun \\
    --nnodes \\$SLURM_NNODES --nproc_per_node $GPUS_PER_NODE \\
    --rdzv_endpoint $MASTER_ADDR:$MASTER_PORT --rdzv_backend c10d \\
    train.py --config configs/ds.json"
""",
    "llamafactory": """#!/bin/bash
# LLaMA-Factory style: FORCE_TORCHRUN through the environment
set -e
export FORCE_TORCHRUN=1
export NNODES=1
export NPROC_PER_NODE=${NPROC_PER_NODE:-4}
python -m llamafactory.cli train examples/train_lora/llama3_lora_sft.yaml
""",
    "llamafactory-cli": """#!/bin/bash
# LLaMA-Factory examples/train_lora style: options on the command line, `set -x`

set -x

MODEL_PATH=${MODEL_PATH:-Qwen/Qwen3-4B-Instruct-2507}

llamafactory-cli train \\
    --model_name_or_path ${MODEL_PATH} \\
    --stage sft \\
    --do_train \\
    --dataset identity,alpaca_en_demo \\
    --output_dir saves/qwen3-4b/lora/sft \\
    --per_device_train_batch_size 1 \\
    --bf16
""",
    "lmf-multinode": """#!/bin/bash
# LLaMA-Factory README style: the relaunch through the environment, `lmf` for short
if [ "${MODE:-sft}" = sft ]; then
    FORCE_TORCHRUN=1 NNODES=2 NODE_RANK=${NODE_RANK:-0} MASTER_ADDR=10.0.0.1 \\
        MASTER_PORT=${PORT:-29500} llamafactory-cli train examples/train_lora/llama3_lora_sft.yaml
else
    CUDA_VISIBLE_DEVICES=0,1 lmf train examples/train_lora/llama3_lora_dpo.yaml \\
        learning_rate=1e-5 logging_steps=1
fi
USE_RAY=1 llamafactory-cli train examples/train_lora/llama3_lora_sft_ray.yaml
llamafactory-cli export examples/merge_lora/llama3_lora_sft.yaml
""",
}


def cases() -> list[Case]:
    out: list[Case] = []
    names = list(LAUNCHERS)
    for t, (tname, template) in enumerate(TEMPLATES.items()):
        # every template with five launchers (rotating, so each launcher meets most
        # templates) in one environment, and with torchrun in the others: the spread,
        # not the full product, keeps the run inside a minute on two cores
        chosen = {names[(t + k) % len(names)] for k in range(5)}
        for lname, launcher in LAUNCHERS.items():
            for ename, env in ENVS.items():
                if not (ename == "set" and lname in chosen or lname == "torchrun"):
                    continue
                out.append(Case(f"{tname}/{lname}/{ename}", template.replace("@L@", launcher),
                                env, files=FILES))
    for name, script in EXTRA.items():
        for ename, env in ENVS.items():
            out.append(Case(f"{name}/{ename}", script, env, files=FILES))
    for name, script in WHOLE.items():
        for ename, env in ENVS.items():
            out.append(Case(f"{name}/{ename}", script, env, files=FILES))
            out.append(Case(f"{name}/{ename}/args", script, env, ("ckpt", "logs/tb"),
                            files=FILES))
    # positional arguments: `bash run.sh 8 /out` (what --launch-cmd passes)
    for ename, env in ENVS.items():
        for args in ((), ("8", "/out"), ("two words", "")):
            out.append(Case(f"positional/{ename}/{len(args)}",
                            "NP=${1:-2}\nOUT=${2:-default}\ntorchrun --nproc_per_node $NP "
                            "t.py --out \"$OUT\" \"$@\" $# \"$*\"\nmain() { python t.py \"$@\"; }\n"
                            "main \"$@\"\nbash inner.sh \"$@\"\n", env, args, files=FILES))
    return out


# -- random compositions: statements drawn from a small grammar, seeded -------------------

_VALUES = ["1", "4", "a b", "x.tar.gz", "", "data/*.jsonl", "--flag=v", "'q u'", "0,1"]


def _value(rng, depth: int = 0) -> str:
    v = f"V{rng.randrange(4)}"
    lit = rng.choice(_VALUES)
    forms = [
        f'"{lit}"', f"${{{v}:-{rng.choice(['d', '4', 'x.tar.gz', '0,1'])}}}", f'"${v}-x"',
        f'"${{{v}%.*}}"', f"${{#{v}}}", f'"${{{v}:-$(( 2 * 3 ))}}"', f'"${{{v}/a/b}}"',
        f'"${{{v}^^}}"', f"$(( ${{#{v}}} + 1 ))", f'"${{A[{rng.randrange(3)}]}}"',
        '"${#A[@]}"', lit if " " not in lit and "'" not in lit else f'"{lit}"',
    ]
    return rng.choice(forms)


def _statement(rng, depth: int) -> str:
    v = f"V{rng.randrange(4)}"
    launch = rng.choice([
        f'torchrun --nproc_per_node {_value(rng)} "${{A[@]}}" ${v} t.py',
        f"{v}={_value(rng)} swift sft --x {_value(rng)}",
        f'python train.py "$@" ${{A[*]}} {_value(rng)}',
        f"deepspeed --num_gpus {_value(rng)} t.py ${{A[@]}}",
    ])
    kinds = ["assign", "assign", "export", "array", "append", "launch", "launch"]
    if depth < 2:
        kinds += ["if", "case", "func", "and", "for"]
    kind = rng.choice(kinds)
    if kind == "assign":
        return f"{v}={_value(rng)}"
    if kind == "export":
        return f"export {v}" if rng.random() < 0.5 else f"export {v}={_value(rng)}"
    if kind == "array":
        return f"A=({_value(rng)} {_value(rng)} lit)"
    if kind == "append":
        return f"A+=({_value(rng)})"
    if kind == "launch":
        return launch
    inner = _statement(rng, depth + 1)
    other = _statement(rng, depth + 1)
    if kind == "if":
        test = rng.choice([f'[ "${v}" = 4 ]', f'[ -n "${v}" ]', f"[ -z ${{{v}:-}} ]",
                           f"(( ${{#{v}}} > 1 ))", "[ -f data/a.jsonl ]",
                           f'[[ "${v}" == a* ]]'])
        return f"if {test}; then\n  {inner}\nelse\n  {other}\nfi"
    if kind == "case":
        return f'case "${v}" in\n  1|4) {inner} ;;\n  a*) {other} ;;\n  *) : ;;\nesac'
    if kind == "func":
        return f"f() {{\n  local {v}={_value(rng)}\n  {inner}\n}}\nf a 'b c'"
    if kind == "and":
        return f'[ -n "${v}" ] && {inner}'
    return f"for x in 1 2; do\n  {inner}\ndone"


def random_cases(count: int, seed: int = 20261130) -> list[Case]:
    import random

    rng = random.Random(seed)
    out = []
    for i in range(count):
        lines = [_statement(rng, 0) for _ in range(rng.randrange(3, 9))]
        if rng.random() < 0.2:
            lines.insert(0, "set -u")
        env = {f"V{k}": rng.choice(["1", "4", "a b", "abc", ""])
               for k in range(4) if rng.random() < 0.4}
        args = tuple(rng.choice([(), ("one",), ("8", "two words")]))
        out.append(Case(f"random/{i}", "\n".join(lines) + "\n", env, args, FILES))
    return out
