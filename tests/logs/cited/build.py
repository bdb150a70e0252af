# ruff: noqa: E501  (verbatim log lines as published)
"""Builds the cited fixture logs once (python tests/logs/cited/build.py); the outputs are
committed. Each embeds an error text published in an issue thread (URL in the header
and in tests/test_triage.py) in the noise of the stack that printed it: torchrun's
`[rankN]:` prefixes and interleaving, tqdm carriage returns, ANSI colours, ms-swift /
Megatron / SGLang / vLLM / Ray log styles."""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).parent
RED, RESET, GREEN = "\x1b[31m", "\x1b[0m", "\x1b[32m"


def tqdm(label: str, total: int, upto: int, rank: str = "") -> str:
    bars = [f"{rank}{label}: {100 * i // total:3d}%|{'█' * (10 * i // total):10s}| {i}/{total} "
            f"[00:{i:02d}<00:{total - i:02d}, 1.02it/s]" for i in range(upto + 1)]
    return "\r".join(bars) + "\n"


def swift_head(cmd: str) -> str:
    return (f"run sh: `{cmd}`\n"
            "[INFO:swift] Successfully registered `/usr/local/lib/python3.10/site-packages/swift/llm/dataset/data/dataset_info.json`.\n"
            "[INFO:swift] rank: 0, local_rank: 0, world_size: 4, local_world_size: 4\n"
            "[INFO:swift] Loading the model using model_dir: /root/models/Qwen2.5-7B-Instruct\n"
            "/usr/local/lib/python3.10/site-packages/transformers/training_args.py:1575: FutureWarning: `evaluation_strategy` is deprecated and will be removed in version 4.46 of Transformers. Use `eval_strategy` instead\n"
            "  warnings.warn(\n"
            "[INFO:swift] output_dir: /root/output/v12-20250613-101711\n")


def ranks_interleave(blocks: dict[int, list[str]]) -> str:
    out, longest = [], max(len(v) for v in blocks.values())
    for i in range(longest):
        for rank, lines in sorted(blocks.items()):
            if i < len(lines):
                out.append(f"[rank{rank}]: {lines[i]}")
    return "\n".join(out) + "\n"


def watchdog(rank: int, seq: int = 1537) -> str:
    return (f"[rank{rank}]:[E1122 10:21:47.{rank}41519 ProcessGroupNCCL.cpp:616] [Rank {rank}] Watchdog caught collective operation timeout: "
            f"WorkNCCL(SeqNum={seq}, OpType=ALLREDUCE, NumelIn=1, NumelOut=1, Timeout(ms)=600000) ran for 600051 milliseconds before timing out.\n"
            f"[rank{rank}]:[E1122 10:21:47.{rank}41720 ProcessGroupNCCL.cpp:1785] [PG ID 0 PG GUID 0(default_pg) Rank {rank}] Exception (either an error or timeout) detected by watchdog at work: {seq}, last enqueued NCCL work: {seq}, last completed NCCL work: {seq - 1}.\n"
            f"[rank{rank}]:[E1122 10:21:47.{rank}41760 ProcessGroupNCCL.cpp:630] [Rank {rank}] Some NCCL operations have failed or timed out. Due to the asynchronous nature of CUDA kernels, subsequent GPU operations might run on corrupted/incomplete data.\n"
            f"[rank{rank}]:[E1122 10:21:47.{rank}41790 ProcessGroupNCCL.cpp:636] [Rank {rank}] To avoid data inconsistency, we are taking the entire process down.\n")


def failure_table(script: str, rank: int, exitcode: int = 1) -> str:
    return ("W1122 10:21:49.112000 140 torch/distributed/elastic/multiprocessing/api.py:897] Sending process 2141 closing signal SIGTERM\n"
            "W1122 10:21:49.113000 140 torch/distributed/elastic/multiprocessing/api.py:897] Sending process 2142 closing signal SIGTERM\n"
            f"E1122 10:21:50.501000 140 torch/distributed/elastic/multiprocessing/api.py:869] failed (exitcode: {exitcode}) local_rank: {rank} (pid: 214{rank}) of binary: /usr/bin/python\n"
            "Traceback (most recent call last):\n"
            "  File \"/usr/local/bin/torchrun\", line 8, in <module>\n"
            "    sys.exit(main())\n"
            "  File \"/usr/local/lib/python3.10/site-packages/torch/distributed/run.py\", line 883, in run\n"
            "    elastic_launch(\n"
            "torch.distributed.elastic.multiprocessing.errors.ChildFailedError: \n"
            "============================================================\n"
            f"{script} FAILED\n"
            "------------------------------------------------------------\n"
            "Failures:\n"
            "  <NO_OTHER_FAILURES>\n"
            "------------------------------------------------------------\n"
            "Root Cause (first observed failure):\n"
            "[0]:\n"
            "  time      : 2025-11-22_10:21:49\n"
            "  host      : gpu-node-17\n"
            f"  rank      : {rank} (local_rank: {rank})\n"
            f"  exitcode  : {exitcode} (pid: 214{rank})\n"
            "  error_file: <N/A>\n"
            "  traceback : To enable traceback see: https://pytorch.org/docs/stable/elastic/errors.html\n"
            "============================================================\n")


def write(name: str, source: str, body: str) -> None:
    (HERE / name).write_text(f"# fixture {name} (cited: {source})\n{body}", encoding="utf-8")


OOM_SWIFT = ("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.63 GiB. GPU 7 has a total capacity of 79.11 GiB of which 2.61 GiB is free. "
             "Including non-PyTorch memory, this process has 0 bytes memory in use. Of the allocated memory 48.15 GiB is allocated by PyTorch, with 50.00 MiB "
             "allocated in private pools (e.g., CUDA Graphs), and 3.49 GiB is reserved by PyTorch but unallocated. If reserved but unallocated memory is large try "
             "setting PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True to avoid fragmentation.  See documentation for Memory Management  "
             "(https://pytorch.org/docs/stable/notes/cuda.html#environment-variables)")


def main() -> None:
    # cuda-oom, torchrun ranks: rank 3 OOMs in backward, the others time out in the watchdog
    # and torchrun prints its table (a louder consequence after the root cause).
    body = swift_head("/usr/bin/python -m torch.distributed.run --nproc_per_node 4 --master_port 29500 /usr/local/lib/python3.10/site-packages/swift/cli/sft.py --model Qwen2.5-7B-Instruct")
    body += tqdm("Train", 1000, 7, "")
    body += ranks_interleave({3: [
        "Traceback (most recent call last):",
        '  File "/usr/local/lib/python3.10/site-packages/swift/cli/sft.py", line 5, in <module>',
        "    sft_main()",
        '  File "/usr/local/lib/python3.10/site-packages/transformers/trainer.py", line 2481, in _inner_training_loop',
        "    tr_loss_step = self.training_step(model, inputs, num_items_in_batch)",
        '  File "/usr/local/lib/python3.10/site-packages/torch/autograd/graph.py", line 823, in _engine_run_backward',
        "    return Variable._execution_engine.run_backward(",
        OOM_SWIFT]})
    body += watchdog(0) + watchdog(1) + watchdog(2)
    body += failure_table("/usr/local/lib/python3.10/site-packages/swift/cli/sft.py", 3)
    body += "subprocess.CalledProcessError: Command '['/usr/bin/python', '-m', 'torch.distributed.run', '--nproc_per_node', '4']' returned non-zero exit status 1.\n"
    write("cuda-oom-swift-ranks.log", "https://github.com/modelscope/ms-swift/issues/5943", body)

    body = ("[INFO:swift] Start time of running main: 2025-10-02 14:03:11.421877\n"
            + tqdm("Train", 500, 3)
            + "[rank3]: Traceback (most recent call last):\n"
            "[rank3]:   File \"/root/ms-swift/swift/trainers/rlhf_trainer/grpo_trainer.py\", line 1208, in _compute_loss\n"
            "[rank3]:     per_token_logps = self._get_per_token_logps(model, inputs)\n"
            "[rank3]: torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 20.00 MiB. GPU 3 has a total capacity of 79.10 GiB of which 6.00 MiB is free. "
            "Process 566680 has 79.00 GiB memory in use. Of the allocated memory 77.41 GiB is allocated by PyTorch, with 184.91 MiB allocated in private pools "
            "(e.g., CUDA Graphs), and 47.15 MiB is reserved by PyTorch but unallocated. If reserved but unallocated memory is large try setting "
            "PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True to avoid fragmentation.  See documentation for Memory Management  (https://pytorch.org/docs/stable/notes/cuda.html#environment-variables)\n"
            + watchdog(0, 88) + watchdog(1, 88))
    write("cuda-oom-dora.log", "https://github.com/modelscope/ms-swift/issues/7826", body)

    # resume-memory: the OOM inside optimizer.load_state_dict (mmf) and a Megatron actor's
    # load in slime, under Ray (RayTaskError wrapper first, then the job's failure).
    body = ("2019-10-12T20:02:44 INFO: textvqa: full val:, 26001/26000, val/total_loss: 9.5553, val/logit_bce: 9.5553, val/vqa_accuracy: 0.3055\n"
            "2019-10-12T20:02:45 INFO: Restoring checkpoint\n"
            "2019-10-12T20:02:49 ERROR: CUDA out of memory. Tried to allocate 39.12 MiB (GPU 0; 10.76 GiB total capacity; 9.71 GiB already allocated; 5.56 MiB free; 10.13 MiB cached)\n"
            "Traceback (most recent call last):\n"
            '  File "tools/run.py", line 94, in <module>\n'
            "    run()\n"
            '  File "/home/B/gcy/code/pythia-master/pythia/trainers/base_trainer.py", line 272, in finalize\n'
            "    self.checkpoint.restore()\n"
            '  File "/home/B/gcy/code/pythia-master/pythia/utils/checkpoint.py", line 242, in restore\n'
            '    self.trainer.optimizer.load_state_dict(ckpt["optimizer"])\n'
            '  File "/home/gcy/anaconda3/envs/ye/lib/python3.6/site-packages/torch/optim/optimizer.py", line 103, in load_state_dict\n'
            "    state_dict = deepcopy(state_dict)\n"
            "RuntimeError: CUDA out of memory. Tried to allocate 39.12 MiB (GPU 0; 10.76 GiB total capacity; 9.71 GiB already allocated; 5.56 MiB free; 10.13 MiB cached)\n")
    write("resume-memory-mmf.log", "https://github.com/facebookresearch/mmf/issues/185", body)

    body = ("2026-02-11 09:14:02,118\tINFO cli.py:39 -- Job submission server address: http://127.0.0.1:8265\n"
            "2026-02-11 09:14:02,730\tSUCC cli.py:63 -- Job 'raysubmit_vY3hT8cQm1LZd2wE' submitted successfully\n"
            "(MegatronTrainRayActor pid=48113) [2026-02-11 09:16:40] loading checkpoint from /root/autodl-tmp/exp/holdem_full50_beijing at iteration 40\n"
            "(MegatronTrainRayActor pid=48113) Traceback (most recent call last):\n"
            "(MegatronTrainRayActor pid=48113)   File \"/root/autodl-tmp/slime/slime/backends/megatron_utils/actor.py\", line 96, in init\n"
            "(MegatronTrainRayActor pid=48113)     self.iteration = load_checkpoint(self.model, self.optimizer, self.opt_param_scheduler)\n"
            "(MegatronTrainRayActor pid=48113)   File \"/root/autodl-tmp/Megatron-LM/megatron/training/checkpointing.py\", line 1310, in load_checkpoint\n"
            "(MegatronTrainRayActor pid=48113)     optimizer.load_state_dict(state_dict['optimizer'])\n"
            "(MegatronTrainRayActor pid=48113)   File \"/root/autodl-tmp/Megatron-LM/megatron/core/optimizer/distrib_optimizer.py\", line 712, in load_state_dict\n"
            "(MegatronTrainRayActor pid=48113)     self.load_parameter_state_from_dp_zero(param_state)\n"
            "(MegatronTrainRayActor pid=48113) torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 1.95 GiB. GPU 0 has a total capacity of 79.33 GiB of which 1.12 GiB is free. "
            "Including non-PyTorch memory, this process has 78.20 GiB memory in use. Of the allocated memory 74.02 GiB is allocated by PyTorch, and 2.61 GiB is reserved by PyTorch but unallocated.\n"
            "ray.exceptions.RayTaskError(OutOfMemoryError): ray::MegatronTrainRayActor.init() (pid=48113, ip=10.0.0.17, actor_id=9c1b6e0a2f3d4e5f)\n"
            "2026-02-11 09:16:58,904\tERR cli.py:71 -- ---------------------------------------\n"
            "2026-02-11 09:16:58,904\tERR cli.py:72 -- Job 'raysubmit_vY3hT8cQm1LZd2wE' failed\n"
            "2026-02-11 09:16:58,904\tERR cli.py:73 -- ---------------------------------------\n")
    write("resume-memory-slime.log", "https://github.com/awslabs/graphstorm/issues/344 (load in optimizer state) and the slime A800 field notes' resume", body)

    # colocate-memory: vLLM engine KV cache, SGLang mem-fraction-static.
    body = ("INFO 04-30 10:20:21 [gpu_model_runner.py:1347] Model loading took 15.27 GiB and 6.432 seconds\n"
            "INFO 04-30 10:20:35 [monitor.py:33] torch.compile takes 13.93 s in total\n"
            "ERROR 04-30 10:20:36 [core.py:396] EngineCore failed to start.\n"
            "ERROR 04-30 10:20:36 [core.py:396] Traceback (most recent call last):\n"
            "ERROR 04-30 10:20:36 [core.py:396]   File \"/home/python_vllm_env_085/lib/python3.11/site-packages/vllm/v1/engine/core.py\", line 387, in run_engine_core\n"
            "ERROR 04-30 10:20:36 [core.py:396]     engine_core = EngineCoreProc(*args, **kwargs)\n"
            "ERROR 04-30 10:20:36 [core.py:396]   File \"/home/python_vllm_env_085/lib/python3.11/site-packages/vllm/v1/core/kv_cache_utils.py\", line 699, in check_enough_kv_cache_memory\n"
            "ERROR 04-30 10:20:36 [core.py:396]     raise ValueError(\"No available memory for the cache blocks. \"\n"
            "ERROR 04-30 10:20:36 [core.py:396] ValueError: No available memory for the cache blocks. Try increasing `gpu_memory_utilization` when initializing the engine.\n"
            "Process EngineCore_0:\n"
            "RuntimeError: Engine core initialization failed. See root cause above.\n")
    write("colocate-memory-vllm.log", "https://github.com/vllm-project/vllm/issues/17431", body)

    body = ("[2025-03-12 09:41:07 TP0] Load weight begin. avail mem=44.12 GB\n"
            "[2025-03-12 09:41:19 TP0] Load weight end. type=LlamaForCausalLM, dtype=torch.bfloat16, avail mem=28.85 GB, mem usage=15.27 GB.\n"
            "[2025-03-12 09:41:19 TP0] Scheduler hit an exception: Traceback (most recent call last):\n"
            "  File \"/usr/local/lib/python3.10/dist-packages/sglang/srt/managers/scheduler.py\", line 1999, in run_scheduler_process\n"
            "    scheduler = Scheduler(server_args, port_args, gpu_id, tp_rank, dp_rank)\n"
            "  File \"/usr/local/lib/python3.10/dist-packages/sglang/srt/model_executor/model_runner.py\", line 835, in init_memory_pool\n"
            "    raise RuntimeError(\n"
            "RuntimeError: Not enough memory. Please try to increase --mem-fraction-static.\n"
            "\n"
            "[2025-03-12 09:41:19] Received sigquit from a child process. It usually means the child failed.\n")
    write("colocate-memory-sglang.log", "https://github.com/sgl-project/sglang/issues/4330", body)

    body = ("(EngineCore_0 pid=1810465) ERROR 09-03 11:03:37 [core.py:712]   File \"/home/kaiwu/.conda/envs/vllm/lib/python3.12/site-packages/vllm/v1/worker/gpu_worker.py\", line 180, in init_device\n"
            "(EngineCore_0 pid=1810465) ERROR 09-03 11:03:37 [core.py:712]     raise ValueError(\n"
            "(EngineCore_0 pid=1810465) ERROR 09-03 11:03:37 [core.py:712] ValueError: Free memory on device (7.34/139.72 GiB) on startup is less than desired GPU memory utilization (0.9, 125.75 GiB). "
            "Decrease GPU memory utilization or reduce GPU memory used by other processes.\n"
            "(EngineCore_0 pid=1810465) Process EngineCore_0:\n")
    write("colocate-memory-vllm-startup.log", "https://github.com/vllm-project/vllm/issues/23192", body)

    # cuda-stack
    body = (f"{GREEN}[INFO:swift]{RESET} Loading the model using model_dir: /models/Qwen2.5-1.5B\n"
            "/usr/local/lib/python3.11/site-packages/torch/cuda/__init__.py:235: UserWarning: \n"
            "NVIDIA GeForce RTX 5090 with CUDA capability sm_120 is not compatible with the current PyTorch installation.\n"
            "The current PyTorch install supports CUDA capabilities sm_50 sm_60 sm_70 sm_75 sm_80 sm_86 sm_90.\n"
            "Traceback (most recent call last):\n"
            "  File \"/workspace/train.py\", line 41, in <module>\n"
            "    model = model.to(\"cuda\")\n"
            f"{RED}RuntimeError: CUDA error: no kernel image is available for execution on the device{RESET}\n"
            "CUDA kernel errors might be asynchronously reported at some other API call, so the stacktrace below might be incorrect.\n"
            "For debugging consider passing CUDA_LAUNCH_BLOCKING=1\n")
    write("cuda-stack-kernel-image.log", "https://github.com/Comfy-Org/ComfyUI/pull/16438 and https://github.com/AUTOMATIC1111/stable-diffusion-webui/issues/2202", body)

    body = ("Traceback (most recent call last):\n"
            "  File \"/opt/infer.py\", line 151, in main\n"
            "    torch.cuda.set_device(args.device)\n"
            "  File \"/opt/conda/lib/python3.6/site-packages/torch/cuda/__init__.py\", line 264, in set_device\n"
            "    torch._C._cuda_setDevice(device)\n"
            "RuntimeError: cuda runtime error (35) : CUDA driver version is insufficient for CUDA runtime version at /pytorch/torch/csrc/cuda/Module.cpp:34\n")
    write("cuda-stack-driver.log", "https://github.com/mlcommons/inference/issues/54", body)

    # libuv-store (Windows torch, torchrun's static rendezvous)
    body = ("W0301 11:02:44.123000 8456 torch\\distributed\\elastic\\multiprocessing\\redirects.py:29] NOTE: Redirects are currently not supported in Windows or MacOs.\n"
            "Traceback (most recent call last):\n"
            "  File \"F:\\CondaData\\envs\\llama_factory\\Scripts\\torchrun.exe\\__main__.py\", line 7, in <module>\n"
            "  File \"F:\\CondaData\\envs\\llama_factory\\lib\\site-packages\\torch\\distributed\\elastic\\rendezvous\\static_tcp_rendezvous.py\", line 67, in next_rendezvous\n"
            "    self._store = TCPStore(  # type: ignore[call-arg]\n"
            "RuntimeError: use_libuv was requested but PyTorch was build without libuv support\n")
    write("libuv-store-torchrun.log", "https://github.com/hiyouga/LlamaFactory/issues/7124", body)
    body = ("39] [INFO] rdzv_info = spec.dzv_handler.next_rendezvous()\n"
            "39] [INFO] self._store = TCPStore (# type: ignore [call-arg]\n"
            "39] [INFO] RuntimeError: use_libuv was requested but PyTorch was build without libuv support\n"
            "41] [ERROR] Command exited with code 1\n")
    write("libuv-store-fluxgym.log", "https://github.com/cocktailpeanut/fluxgym/issues/82", body)

    # grpo-batch
    body = ("INFO 02-09 22:47:27 __init__.py:190] Automatically detected platform cuda.\n"
            + ranks_interleave({1: [
                "Traceback (most recent call last):",
                '  File "/mnt/open-r1/src/open_r1/grpo.py", line 174, in main',
                "    trainer = GRPOTrainer(",
                '  File "/opt/conda/lib/python3.10/site-packages/trl/trainer/grpo_trainer.py", line 321, in __init__',
                "    raise ValueError(",
                "ValueError: The global train batch size (7 x 1) must be evenly divisible by the number of generations per prompt (8). "
                "Given the current train batch size, the valid values for the number of generations are: [7]."]})
            + failure_table("/mnt/open-r1/src/open_r1/grpo.py", 1))
    write("grpo-batch-trl.log", "https://github.com/huggingface/open-r1/issues/249", body)
    body = (swift_head("/usr/bin/python -m torch.distributed.run --nproc_per_node 4 /usr/local/lib/python3.10/site-packages/swift/cli/rlhf.py --rlhf_type grpo --num_generations 3")
            + ranks_interleave({0: ["Traceback (most recent call last):",
                                    '  File "/usr/local/lib/python3.10/site-packages/swift/llm/argument/rlhf_args.py", line 301, in _check_grpo',
                                    "ValueError: generation_batch_size (16) must be evenly divisible by num_generations (3). Valid values: [2, 4, 8, 16]."],
                                1: ["Traceback (most recent call last):",
                                    '  File "/usr/local/lib/python3.10/site-packages/swift/llm/argument/rlhf_args.py", line 301, in _check_grpo',
                                    "ValueError: generation_batch_size (16) must be evenly divisible by num_generations (3). Valid values: [2, 4, 8, 16]."]}))
    write("grpo-batch-swift.log", "https://github.com/modelscope/ms-swift/issues/3980 (ms-swift's check, text from the runbook's ms-swift source)", body)

    # nccl-ifname
    body = ("[trainer3]:twshared1016:1958:1958 [3] NCCL INFO NCCL_SOCKET_IFNAME set by environment to =enp90s0np0\n"
            "[trainer3]:twshared1016:1958:1958 [3] NCCL INFO NCCL_SOCKET_IFNAME set to =enp90s0np0\n"
            "g5305cc:1958:1958 [3] misc/socket.cc:484 NCCL WARN Bootstrap : no socket interface found\n"
            "g5305cc:1958:1958 [3] NCCL INFO init.cc:1890 -> 5 [Async thread]\n"
            "jax.errors.JaxRuntimeError: INTERNAL: external/xla/xla/service/gpu/nccl_clique.cc: NCCL operation ncclCommInitRank failed: invalid usage\n")
    write("nccl-ifname-bootstrap.log", "https://github.com/marin-community/marin/issues/6940 and https://github.com/NVIDIA/nccl/issues/1837", body)
    body = (ranks_interleave({0: ["Traceback (most recent call last):",
                                  '  File "/workspace/train.py", line 12, in <module>',
                                  '    dist.init_process_group("gloo")',
                                  "RuntimeError: [enforce fail at ../third_party/gloo/gloo/transport/tcp/device.cc:83] ifa != nullptr. Unable to find address for: eth0"]})
            + failure_table("/workspace/train.py", 0))
    write("gloo-ifname-gloo.log", "https://github.com/meta-pytorch/data/issues/1142 (interface names differ per node)", body)

    # hf-endpoint
    body = ("(APIServer pid=1) [2026-05-21 23:55:54] WARNING _http.py:320: '(MaxRetryError(\"HTTPSConnectionPool(host='huggingface.co', port=443): Max retries exceeded with url: "
            "/openai/gpt-oss-120b/resolve/main/config.json (Caused by ConnectTimeoutError(<HTTPSConnection(host='huggingface.co', port=443) at 0xf0ff49d14050>, "
            "'Connection to huggingface.co timed out. (connect timeout=10)'))\"), '(Request ID: 092a846c-0a2a-4c7b-9fe6-cc51013bccfa)')' thrown while requesting HEAD https://huggingface.co/openai/gpt-oss-120b/resolve/main/config.json\n"
            "(APIServer pid=1) Retrying in 8s [Retry 4/5].\n"
            "(APIServer pid=1) [2026-05-21 23:56:30] ERROR api_server.py:44: OSError: We couldn't connect to 'https://huggingface.co' to load the files, and couldn't find them in the cached files.\n")
    write("hf-endpoint-vllm.log", "https://github.com/Avarok-Cybersecurity/dgx-vllm/issues/16", body)
    body = ("Traceback (most recent call last):\n"
            "  File \"/root/miniconda3/lib/python3.8/site-packages/urllib3/connection.py\", line 174, in _new_conn\n"
            "    raise ConnectTimeoutError(\n"
            "urllib3.exceptions.ConnectTimeoutError: (<urllib3.connection.HTTPSConnection object at 0x7fd5cfa11430>, 'Connection to huggingface.co timed out. (connect timeout=10)')\n"
            "\nDuring handling of the above exception, another exception occurred:\n\n"
            "requests.exceptions.ConnectTimeout: HTTPSConnectionPool(host='huggingface.co', port=443): Max retries exceeded with url: /anyisalin/big-lama/resolve/main/big-lama.safetensors "
            "(Caused by ConnectTimeoutError(<urllib3.connection.HTTPSConnection object at 0x00000222EB9A1710>, 'Connection to huggingface.co timed out. (connect timeout=None)'))\n")
    write("hf-endpoint-requests.log", "https://github.com/lewandofskee/DiAD/issues/16 and https://github.com/novitalabs/sd-webui-cleaner/issues/15", body)

    # dotenv-exported
    body = ("[INFO|trainer.py:1724] 2023-11-03 15:37:36,126 >>   Number of trainable parameters = 6,243,584,000\n"
            "[INFO|integration_utils.py:716] 2023-11-03 15:37:36,161 >> Automatic Weights & Biases logging enabled, to disable set os.environ[\"WANDB_DISABLED\"] = \"true\"\n"
            f"wandb: {RED}ERROR{RESET} api_key not configured (no-tty). call wandb.login(key=[your_api_key])\n"
            "Traceback (most recent call last):\n"
            "  File \"/mnt/LLaMA-Factory/src/train_bash.py\", line 14, in <module>\n"
            "    main()\n"
            "wandb.errors.UsageError: api_key not configured (no-tty). call wandb.login(key=[your_api_key])\n")
    write("dotenv-exported-wandb.log", "https://github.com/hiyouga/LlamaFactory/issues/1372", body)
    body = ("    raise _format(GatedRepoError, message, response) from e\n"
            "huggingface_hub.errors.GatedRepoError: 401 Client Error. (Request ID: Root=1-66f4b037-1bf3d7d219afbc904ee05694;5601d2c9-8fd8-4ed8-b38d-d8a432e1fa59)\n\n"
            "Cannot access gated repo for url https://huggingface.co/black-forest-labs/FLUX.1-dev/resolve/main/ae.safetensors.\n"
            "Access to model black-forest-labs/FLUX.1-dev is restricted. You must have access to it and be authenticated to access it. Please log in.\n")
    write("dotenv-exported-gated.log", "https://github.com/ToTheBeginning/PuLID/issues/97", body)

    # leftover-processes
    body = ("(RolloutManager pid=1191) [2026-01-05 00:27:53] http_utils.py:153 - Error: Server error '503 Service Unavailable' for url 'http://11.215.121.109:3592/generate'\n"
            "(RolloutManager pid=1191) For more information check: https://developer.mozilla.org/en-US/docs/Web/HTTP/Status/503, retrying... (attempt 51/60, url=http://11.215.121.109:3592/generate, "
            "response={\"error\":{\"type\":\"Service Unavailable\",\"code\":\"no_available_workers\",\"message\":\"No available workers (all circuits open or unhealthy)\"}})\n"
            "(RolloutManager pid=1191) [2026-01-05 00:28:41] http_utils.py:153 - Error: Server error '503 Service Unavailable' for url 'http://11.215.121.109:3592/generate'\n")
    write("leftover-processes-router.log", "https://github.com/THUDM/slime/issues/1328", body)
    body = ("+ ray start --head --node-ip-address 10.0.0.17 --num-gpus 4 --disable-usage-stats\n"
            "Usage stats collection is disabled.\n\n"
            "ConnectionError: Ray is trying to start at 10.0.0.17:6379, but is already running at 10.0.0.17:6379. "
            "Please specify a different port using the `--port` flag of `ray start` command.\n")
    write("leftover-processes-ray.log", "https://github.com/ray-project/ray/issues/10717 and https://github.com/ray-project/ray/pull/10826 (ray start refuses a second head)", body)

    # cudart-link through flashinfer's JIT under SGLang
    body = ("[2026-09-09 10:12:01 TP0] Capture cuda graph begin. This can take up to several minutes. avail mem=41.20 GB\n"
            "[2026-09-09 10:12:03 TP0] flashinfer.jit: Loading JIT ops: batch_prefill_with_kv_cache_dtype_q_bf16\n"
            "FAILED: batch_prefill/batch_prefill.so\n"
            "/usr/bin/x86_64-linux-gnu-ld.bfd: cannot find -lcudart: No such file or directory\n"
            "collect2: error: ld returned 1 exit status\n"
            "ninja: build stopped: subcommand failed.\n"
            "[2026-09-09 10:12:09 TP0] Scheduler hit an exception: Traceback (most recent call last):\n"
            "RuntimeError: Ninja build failed. Ninja output:\n")
    write("cudart-link-flashinfer.log", "https://github.com/flashinfer-ai/flashinfer/issues/5064", body)

    # nested launcher under ms-swift: both outer workers relaunch on the same port
    body = ("[default0]:run sh: `/usr/bin/python -m torch.distributed.run --nproc_per_node 2 --master_port 29501 /usr/local/lib/python3.10/site-packages/swift/cli/rlhf.py --rlhf_type grpo`\n"
            "[default1]:run sh: `/usr/bin/python -m torch.distributed.run --nproc_per_node 2 --master_port 29501 /usr/local/lib/python3.10/site-packages/swift/cli/rlhf.py --rlhf_type grpo`\n"
            "[default1]:[W1122 10:02:11.812 socket.cpp:464] [c10d] The server socket has failed to bind to [::]:29501 (errno: 98 - Address already in use).\n"
            "[default1]:[E1122 10:02:11.813 socket.cpp:794] [c10d] The server socket has failed to listen on any local network address.\n"
            "[default0]:[rank0]: torch.distributed.DistBackendError: NCCL error in: ../torch/csrc/distributed/c10d/ProcessGroupNCCL.cpp:1970, remote process exited or there was a network error, NCCL version 2.20.5\n"
            "[default0]:[rank0]: ncclRemoteError: A call failed possibly due to a network error or a remote process exiting prematurely.\n"
            "[default0]:[rank0]: socketPollConnect: connect returned Connection refused, exceeded error retry count (35)\n")
    write("nested-launcher-swift.log", "a 4-GPU GRPO smoke (torchrun around swift rlhf with NPROC_PER_NODE); texts from https://github.com/pytorch/pytorch/issues/128970 style c10d logs and the nested-launcher runbook", body)

    # master-addr / cluster-versions (the cluster branch writes their runbooks)
    body = ("(RayWorkerWrapper pid=8123, ip=10.1.3.22) INFO 08-15 02:11:40 [parallel_state.py:1102] world_size=16 rank=8 local_rank=0 distributed_init_method=tcp://10.1.3.21:43211 backend=nccl\n"
            "RuntimeError: Gloo connectFullMesh failed with [/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:152] timed out connecting: SO_ERROR: Connection refused, remote=[127.0.1.1]:51845 (rank=8, size=16, local=[127.0.1.1])\n"
            "ray.exceptions.ActorHandleNotFoundError: ActorHandle objects are not valid across Ray sessions. created in job 01000000, but the current job is 02000000\n"
            "RuntimeError: Engine core initialization failed. See root cause above.\n")
    write("master-addr-gloo-loopback.log", "https://github.com/aws-samples/aws-do-eks/pull/69 (hostname resolving to loopback; /etc/hosts 127.0.1.1 as in https://github.com/meta-pytorch/monarch/issues/4394)", body)
    body = ("./benchmark_cuda --size 2 --rank 1 --redis-host 10.251.209.33 --redis-port 6379 --prefix 0 --transport tcp --elements 100 cuda_allreduce_ring_chunked\n"
            "terminate called after throwing an instance of 'gloo::IoException'\n"
            "  what():  [/opt/gloo/gloo/transport/tcp/pair.cc:761] connect [127.0.1.1]:60817: Connection refused\n")
    write("master-addr-gloo-hostname.log", "https://github.com/pytorch/gloo/issues/223 (the hostname resolves to 127.0.1.1)", body)
    body = (ranks_interleave({0: ['  File "/data/anaconda/envs/r1/lib/python3.11/site-packages/torch/distributed/distributed_c10d.py", line 2726, in broadcast',
                                  "    work = group.broadcast([tensor], opts)",
                                  "torch.distributed.DistBackendError: NCCL error in: /pytorch/torch/csrc/distributed/c10d/ProcessGroupNCCL.cpp:2588, internal error - please report this issue to the NCCL developers, NCCL version 2.21.5",
                                  "ncclInternalError: Internal check failed.",
                                  "Last error:",
                                  "Bootstrap : no socket interface found"]})
            + failure_table("/data/open-r1-multimodal/src/open_r1/grpo.py", 0))
    write("nccl-ifname-last-error.log", "https://github.com/EvolvingLMMs-Lab/open-r1-multimodal/issues/7 and https://github.com/codefuse-ai/MFTCoder/issues/31", body)
    body = ("2025-02-12 10:01:12,018\tINFO worker.py:1636 -- Connecting to existing Ray cluster at address: 10.123.3.86:6379...\n"
            "RuntimeError: Version mismatch: The cluster was started with:\n"
            "    Ray: 2.12.0\n    Python: 3.11.11\n"
            "This process on node 10.123.3.87 was started with:\n"
            "    Ray: 2.42.0\n    Python: 3.9.21\n")
    write("cluster-versions-ray.log", "https://github.com/Unakar/Logic-RL/issues/30", body)
    body = ("+ ray start --address=10.84.24.111:6379 --num-gpus 8\n"
            "RuntimeError: Version mismatch: The cluster was started with:\n"
            "    Ray: 2.39.0\n    Python: 3.10.14\n"
            "This process on node 10.84.24.112 was started with:\n"
            "    Ray: 2.39.0\n    Python: 3.10.15\n")
    write("cluster-versions-python.log", "https://github.com/ray-project/ray/issues/50511", body)


if __name__ == "__main__":
    main()


def successes() -> None:
    """Logs of runs that worked, with only the benign noise seen at their end."""
    body = ("2026-02-10 21:40:02,114\tINFO cli.py:39 -- Job submission server address: http://127.0.0.1:8265\n"
            "2026-02-10 21:40:02,733\tSUCC cli.py:63 -- Job 'raysubmit_Q2mZk7wX1pLc9aRt' submitted successfully\n"
            "(SGLangEngine pid=40211) [2026-02-10 21:41:55] INFO:     Application startup complete.\n"
            "(SGLangEngine pid=40211) [2026-02-10 21:42:31] INFO:     127.0.0.1:52144 - \"POST /generate HTTP/1.1\" 200 OK\n"
            "(RolloutManager pid=40533) Final collected 8 samples from rollout to train\n"
            "(RolloutManager pid=40533) [holdem][rollout 0] mean_reward=0.125 n=8\n"
            "(MegatronTrainRayActor pid=40102) [2026-02-10 21:43:10] step 1 | lm loss: 1.2041 | grad norm: 3.21\n"
            "(MegatronTrainRayActor pid=40102) /usr/local/lib/python3.10/site-packages/torch/distributed/distributed_c10d.py:4631: UserWarning: No device id is provided via `init_process_group` or `barrier `. Using the current device set by the user.\n"
            "(MegatronTrainRayActor pid=40102)   warnings.warn(  # warn only once\n"
            "wandb: 🚀 View run holdem_smoke_beijing at: https://wandb.ai/poker/slime/runs/k3v9q2ab\n"
            "wandb: Find logs at: ./wandb/run-20260210_214004-k3v9q2ab/logs\n"
            "Exception in thread IntMsgThr:\n"
            "Traceback (most recent call last):\n"
            "  File \"/root/autodl-tmp/micromamba/envs/slime/lib/python3.10/site-packages/wandb/sdk/interface/interface_shared.py\", line 499, in _communicate_attach\n"
            "  File \"/root/autodl-tmp/micromamba/envs/slime/lib/python3.10/site-packages/wandb/sdk/lib/sock_client.py\", line 211, in send_record_communicate\n"
            "    self._sendall_with_error_handle(header + data)\n"
            "BrokenPipeError: [Errno 32] Broken pipe\n"
            "(MegatronTrainRayActor pid=40102) [rank0]:[W210 21:43:29.412311934 ProcessGroupNCCL.cpp:1479] Warning: WARNING: destroy_process_group() was not called before program exit, which can leak resources. "
            "For more info, please see https://pytorch.org/docs/stable/distributed.html#shutdown (function operator())\n"
            "2026-02-10 21:43:31,902\tSUCC cli.py:63 -- -----------------------------------------\n"
            "2026-02-10 21:43:31,902\tSUCC cli.py:64 -- Job 'raysubmit_Q2mZk7wX1pLc9aRt' succeeded\n"
            "2026-02-10 21:43:31,902\tSUCC cli.py:65 -- -----------------------------------------\n")
    write("ok-slime-smoke.log", "the slime A800 field notes' pit 6: wandb BrokenPipeError and destroy_process_group() at the end of a successful Ray job; "
          "wandb text from https://github.com/wandb/wandb issues, torch warning from torch/csrc/distributed/c10d/ProcessGroupNCCL.cpp", body)
    body = (swift_head("/usr/bin/python -m torch.distributed.run --nproc_per_node 2 --master_port 29511 /usr/local/lib/python3.10/site-packages/swift/cli/sft.py --max_steps 10")
            + "Some weights of Qwen2ForSequenceClassification were not initialized from the model checkpoint at /root/models/Qwen2.5-0.5B and are newly initialized: ['score.weight']\n"
            "You should probably TRAIN this model on a down-stream task to be able to use it for predictions and inference.\n"
            "/usr/local/lib/python3.10/site-packages/torch/utils/checkpoint.py:87: DeprecationWarning: torch.utils.checkpoint: the use_reentrant parameter should be passed explicitly.\n"
            + tqdm("Train", 10, 10)
            + "{'loss': 2.1043, 'grad_norm': 11.2, 'learning_rate': 1e-05, 'memory(GiB)': 3.1, 'train_speed(iter/s)': 0.41, 'epoch': 0.5, 'global_step/max_steps': '10/10'}\n"
            "[INFO:swift] Saving model checkpoint to /root/output/v3-20260210-101711/checkpoint-10\n"
            "[INFO:swift] last_model_checkpoint: /root/output/v3-20260210-101711/checkpoint-10\n"
            "[INFO:swift] best_model_checkpoint: None\n"
            "[rank0]:[W210 10:19:02.112 ProcessGroupNCCL.cpp:1479] Warning: WARNING: destroy_process_group() was not called before program exit, which can leak resources.\n")
    body = ("[W socket.cpp:401] [c10d] The server socket cannot be initialized on [::]:29511 (errno: 97 - Address family not supported by protocol).\n"
            "[W socket.cpp:558] [c10d] The client socket cannot be initialized to connect to [localhost]:29511 (errno: 97 - Address family not supported by protocol).\n"
            + body)
    write("ok-swift-sft.log", "ms-swift sft output as in https://github.com/modelscope/ms-swift/issues/4589; transformers' 'Some weights of' notice; "
          "c10d's IPv6 warnings from https://github.com/pytorch/pytorch/issues/74316 (harmless when IPv4 works)", body)


if __name__ == "__main__":
    successes()


def more() -> None:
    """The remaining published texts, one log each."""
    write("host-limits-bus-error.log", "https://github.com/msr-fiddle/pipedream/issues/28 and https://github.com/hkchengrex/STCN/issues/132",
          "Epoch 0: 6843.771 seconds\n"
          "ERROR: Unexpected bus error encountered in worker. This might be caused by insufficient shared memory (shm).\n"
          "Traceback (most recent call last):\n"
          "  File \"/opt/conda/lib/python3.6/site-packages/torch/utils/data/_utils/signal_handling.py\", line 63, in handler\n"
          "    _error_if_any_worker_fails()\n"
          "RuntimeError: DataLoader worker (pid 46794) is killed by signal: Bus error. It is possible that dataloader's workers are out of shared memory. "
          "Please try to raise your shared memory limit.\n")
    write("host-limits-nccl-shm.log", "https://github.com/pytorch/ci-infra/pull/490 and https://github.com/NVIDIA/nccl-tests/issues/166",
          "[2026-04-22 21:34:20] runner-workflow:202016:202235 [0] misc/shmutils.cc:88 NCCL WARN Error: failed to extend /dev/shm/nccl-WU88OE to 9637892 bytes, error: No space left on device (28)\n"
          "[2026-04-22 21:34:20] runner-workflow:202016:202235 [0] misc/shmutils.cc:132 NCCL WARN Error while creating shared memory segment /dev/shm/nccl-WU88OE (size 9637888), error: No space left on device (28)\n"
          "runner-workflow:202016:202235 [0] NCCL INFO transport/shm.cc:551 -> 2\n"
          "[rank0]: torch.distributed.DistBackendError: NCCL error in: /pytorch/torch/csrc/distributed/c10d/ProcessGroupNCCL.cpp:3356, unhandled system error (run with NCCL_DEBUG=INFO for details), NCCL version 2.26.2\n")
    write("cuda-stack-driver-old.log", "https://github.com/lllyasviel/Fooocus/issues/1313 and https://github.com/IEIT-Yuan/Yuan-2.0/issues/65",
          "/usr/local/lib/python3.10/dist-packages/torch/cuda/__init__.py:124: UserWarning: CUDA initialization: The NVIDIA driver on your system is too old (found version 11000). "
          "Please update your GPU driver by downloading and installing a new version from the URL: http://www.nvidia.com/Download/index.aspx Alternatively, go to: https://pytorch.org "
          "to install a PyTorch version that has been compiled with your version of the CUDA driver. (Triggered internally at /opt/pytorch/pytorch/c10/cuda/CUDAFunctions.cpp:108.)\n"
          "RuntimeError: The NVIDIA driver on your system is too old (found version 11040). Please update your GPU driver by downloading and installing a new version from the URL: "
          "http://www.nvidia.com/Download/index.aspx Alternatively, go to: https://pytorch.org to install a PyTorch version that has been compiled with your version of the CUDA driver.\n")
    write("disk-space-stream-writer.log", "https://github.com/zai-org/ChatGLM-6B/issues/1166 and https://github.com/hiyouga/LlamaFactory/issues/1223",
          "{'loss': 2.9043, 'learning_rate': 4.999641867738336e-05, 'epoch': 0.02}\n"
          + tqdm("", 1856, 10) +
          "[INFO|trainer.py:2926] 2023-10-19 09:48:54,430 >> Saving model checkpoint to pt_output/chatglm_pt_checkpoint_deepspeed/checkpoint-10\n"
          "Traceback (most recent call last):\n"
          "  File \"/home/ma-user/anaconda3/envs/myenv/lib/python3.9/site-packages/torch/serialization.py\", line 650, in _save\n"
          "    zip_file.write_record(name, storage.data_ptr(), num_bytes)\n"
          "RuntimeError: [enforce fail at inline_container.cc:445] . PytorchStreamWriter failed writing file data/176: file write failed\n")
    write("disk-space-quota.log", "https://github.com/open-mmlab/mmdetection/issues/12069",
          "12/09 06:49:23 - mmengine - INFO - Saving checkpoint at 14 epochs\n"
          "Traceback (most recent call last):\n"
          "  File \"/mnt/wzh/miniconda3/envs/openmmlab/lib/python3.8/site-packages/mmengine/hooks/checkpoint_hook.py\", line 345, in after_train_epoch\n"
          "    self._save_checkpoint(runner)\n"
          "OSError: [Errno 122] Disk quota exceeded\n")
    write("colocate-memory-vllm-kv.log", "vLLM's KV-cache check as quoted in https://github.com/vllm-project/vllm/issues/2248 threads (v1 wording) and the older max seq len wording",
          "ERROR 06-30 13:53:19 [core.py:515] ValueError: To serve at least one request with the models's max seq len (32768), (2.00 GB KV cache is needed, which is larger than the "
          "available KV cache memory (0.78 GB). Try increasing `gpu_memory_utilization` or decreasing `max_model_len` when initializing the engine.\n"
          "ValueError: The model's max seq len (32768) is larger than the maximum number of tokens that can be stored in KV cache (2032). Try increasing `gpu_memory_utilization` "
          "or decreasing `max_model_len` when initializing the engine.\n")
    write("grpo-batch-one-generation.log", "https://github.com/huggingface/trl/pull/3199 (trl/trainer/grpo_config.py)",
          "[rank0]:   File \"/usr/local/lib/python3.11/site-packages/trl/trainer/grpo_config.py\", line 620, in __post_init__\n"
          "[rank0]:     raise ValueError(\n"
          "[rank0]: ValueError: GRPO requires at least 2 generations per prompt to calculate the advantages. You provided 1, which is less than the minimum required.\n")
    write("hf-endpoint-local-entry.log", "https://github.com/huchenlei/sd-forge-ic-light/issues/1",
          "huggingface_hub.utils._errors.LocalEntryNotFoundError: An error happened while trying to locate the file on the Hub and we cannot find the requested files in the local cache. "
          "Please check your connection and try again or make sure your Internet connection is on.\n")
    write("dotenv-exported-gated-forge.log", "https://github.com/huchenlei/sd-forge-ic-light/issues/13",
          "Cannot access gated repo for url https://huggingface.co/briaai/RMBG-1.4/resolve/main/pytorch_model.bin.\n"
          "    Access to model briaai/RMBG-1.4 is restricted. You must be authenticated to access it.\n")
    write("cuda-stack-cuda-home.log", "torch/utils/cpp_extension.py _check_cuda_version, as in https://github.com/flashinfer-ai/flashinfer/issues/4410 threads (JIT extension build)",
          "Traceback (most recent call last):\n"
          "  File \"/usr/local/lib/python3.10/site-packages/torch/utils/cpp_extension.py\", line 413, in _check_cuda_version\n"
          "    raise RuntimeError(CUDA_MISMATCH_MESSAGE.format(cuda_str_version, torch.version.cuda))\n"
          "RuntimeError: \n"
          "The detected CUDA version (13.0) mismatches the version that was used to compile\n"
          "PyTorch (12.1). Please make sure to use the same CUDA versions.\n")


if __name__ == "__main__":
    more()


def unknowns() -> None:
    """Failures no runbook names: triage must say unknown, not a wrong id."""
    write("unknown-ray-host-oom.log", "https://github.com/real-stanford/flingbot/issues/11 (Ray's host-memory OOM killer, not a CUDA OOM)",
          "Traceback (most recent call last):\n"
          "  File \"run_sim.py\", line 152, in <module>\n"
          "    remaining_observations=remaining_observations)\n"
          "  File \"/home/zcs/miniconda3/envs/flingbot/lib/python3.6/site-packages/ray/_private/worker.py\", line 2523, in get\n"
          "    raise value\n"
          "ray.exceptions.OutOfMemoryError: Task was killed due to the node running low on memory.\n"
          "Memory on the node (IP: 192.168.0.107, ID: fc2befb2867ce88e73a8a45572c43a640751ae1f2b5e15bd8315f293) where the task (actor ID: f9cc340f5aef7b479d86345001000000, "
          "name=SimEnv.__init__, pid=4331, memory used=2.22GB) was running was 59.49GB / 62.58GB (0.950744), which exceeds the memory usage threshold of 0.95.\n")
    write("cuda-oom-cuda-error.log", "https://github.com/taohan10200/IIM/issues/28 and https://github.com/kijai/ComfyUI-WanVideoWrapper/issues/565",
          "  File \"/usr/local/lib/python3.10/site-packages/torch/nn/functional.py\", line 2905, in layer_norm\n"
          "    return torch.layer_norm(\n"
          "RuntimeError: CUDA error: out of memory\n"
          "CUDA kernel errors might be asynchronously reported at some other API call, so the stacktrace below might be incorrect.\n"
          "For debugging consider passing CUDA_LAUNCH_BLOCKING=1\n"
          "Compile with `TORCH_USE_CUDA_DSA` to enable device-side assertions.\n")


def shutdown_noise() -> None:
    write("ok-dataloader-shutdown.log", "the DataLoader iterator's __del__ at interpreter exit, as reported in https://github.com/pytorch/pytorch/issues/1355 threads",
          "{'loss': 1.93, 'epoch': 3.0, 'global_step/max_steps': '300/300'}\n"
          "[INFO:swift] last_model_checkpoint: /root/output/v4-20260211-101711/checkpoint-300\n"
          "Exception ignored in: <function _MultiProcessingDataLoaderIter.__del__ at 0x7f1c2b8a3e20>\n"
          "Traceback (most recent call last):\n"
          "  File \"/usr/local/lib/python3.10/site-packages/torch/utils/data/dataloader.py\", line 1479, in __del__\n"
          "    self._shutdown_workers()\n"
          "  File \"/usr/local/lib/python3.10/multiprocessing/process.py\", line 160, in is_alive\n"
          "    assert self._parent_pid == os.getpid(), 'can only test a child process'\n"
          "AssertionError: can only test a child process\n")


if __name__ == "__main__":
    unknowns()
    shutdown_noise()


def cluster() -> None:
    """Multi-node and GPU-count failures that need GPUs or a second node."""
    write("launch-gpus-set-device.log", "https://github.com/cfzd/Ultra-Fast-Lane-Detection/issues/193 (--nproc_per_node=2 on a one-GPU machine)",
          "(lane-det) firdanis@firdanis-system:~/Ultra-Fast-Lane-Detection$ python -m torch.distributed.launch --nproc_per_node=2 train.py configs/culane.py \n"
          "*****************************************\n"
          "Setting OMP_NUM_THREADS environment variable for each process to be 1 in default, to avoid your system being overloaded, please further tune the variable for optimal performance in your application as needed. \n"
          "*****************************************\n"
          "Traceback (most recent call last):\n"
          "  File \"train.py\", line 107, in <module>\n"
          "    torch.cuda.set_device(args.local_rank)\n"
          "  File \"/home/firdanis/anaconda3/envs/lane-det/lib/python3.7/site-packages/torch/cuda/__init__.py\", line 261, in set_device\n"
          "    torch._C._cuda_setDevice(device)\n"
          "RuntimeError: CUDA error: invalid device ordinal\n"
          "Killing subprocess 27636\n"
          "Killing subprocess 27637\n")
    write("launch-gpus-visible-devices.log", "https://github.com/wenwenyu/PICK-pytorch/issues/14 (CUDA_VISIBLE_DEVICES=1,2 with --nproc_per_node=4)",
          "+ CUDA_VISIBLE_DEVICES=1,2 python -m torch.distributed.launch --nnode=1 --node_rank=0 --nproc_per_node=4 --master_addr=127.0.0.1 --master_port=5555 train.py -c config.json --local_world_size 2\n"
          "RuntimeError: cuda runtime error (101) : invalid device ordinal at /pytorch/torch/csrc/cuda/Module.cpp:59\n")
    write("cluster-gpus-ray-autoscaler.log", "https://github.com/ray-project/llm-applications/issues/58",
          "Resources\n"
          "---------------------------------------------------------------\n"
          "Usage:\n"
          " 1.0/32.0 CPU\n"
          " 1.0/1.0 GPU\n"
          " 0B/10.09GiB memory\n"
          " 11.70MiB/5.05GiB object_store_memory\n"
          "\n"
          "Demands:\n"
          " {'CPU': 1.0, 'GPU': 1.0}: 1+ pending tasks/actors\n"
          "(autoscaler +2m17s) Warning: The following resource request cannot be scheduled right now: {'CPU': 1.0, 'GPU': 1.0}. This is likely due to all cluster resources being claimed by actors. Consider creating fewer actors or adding more nodes to this Ray cluster.\n"
          "(autoscaler +2m52s) Warning: The following resource request cannot be scheduled right now: {'CPU': 1.0, 'GPU': 1.0}. This is likely due to all cluster resources being claimed by actors. Consider creating fewer actors or adding more nodes to this Ray cluster.\n")
    write("cluster-gpus-ray-openrlhf.log", "https://github.com/OpenRLHF/OpenRLHF/issues/516",
          "+ ray start --head --num-cpus=4 --num-gpus=4\n"
          "+ ray job submit --address=http://127.0.0.1:8265 --runtime-env-json='{\"working_dir\": \"/OpenRLHF\"}' --no-wait -- python3 examples/train_online_dpo_ray.py --ref_num_nodes 1 --ref_num_gpus_per_node 1 --reward_num_nodes 1 --reward_num_gpus_per_node 1 --actor_num_nodes 1 --actor_num_gpus_per_node 1 --vllm_num_engines 1 --vllm_tensor_parallel_size 1\n"
          "Warning: The following resource request cannot be scheduled right now: {'GPU': 1.0, 'CPU': 1.0}. This is likely due to all cluster resources being claimed by actors. Consider creating fewer actors or adding more nodes to this Ray cluster.\n")
    write("cluster-reach-nccl-no-route.log", "https://github.com/sgl-project/sglang/issues/3820",
          "node5:240:240 [6] misc/socket.cc:533 NCCL WARN socketPollConnect: Connect to 10.0.0.4<56849> returned 113(No route to host) errno 115(Operation now in progress)\n"
          "node5:240:240 [6] NCCL INFO misc/socket.cc:570 -> 2\n"
          "node5:240:240 [6] NCCL INFO misc/socket.cc:621 -> 2\n"
          "node5:240:240 [6] NCCL INFO bootstrap.cc:285 -> 2\n"
          "node5:240:240 [6] NCCL INFO init.cc:1534 -> 2\n"
          "node5:240:240 [6] NCCL INFO init.cc:1799 -> 2\n"
          "node5:240:240 [6] NCCL INFO init.cc:1837 -> 2\n"
          "[2025-02-24 14:09:34 TP14] Scheduler hit an exception: Traceback (most recent call last):\n"
          "  File \"/sgl-workspace/sglang/python/sglang/srt/managers/scheduler.py\", line 1816, in run_scheduler_process\n"
          "    scheduler = Scheduler(server_args, port_args, gpu_id, tp_rank, dp_rank)\n")
    write("gloo-ifname-bond.log", "https://github.com/NVIDIA/Megatron-LM/issues/436 (GLOO_SOCKET_IFNAME names an interface this node lacks)",
          "Traceback (most recent call last):\n"
          "  File \"/workspace/test.py\", line 5, in <module>\n"
          "    dist.init_process_group(backend='gloo')\n"
          "  File \"/usr/local/python/lib/python3.8/site-packages/torch/distributed/distributed_c10d.py\", line 602, in init_process_group\n"
          "    default_pg = _new_process_group_helper(\n"
          "  File \"/usr/local/python/lib/python3.8/site-packages/torch/distributed/distributed_c10d.py\", line 703, in _new_process_group_helper\n"
          "    pg = ProcessGroupGloo(prefix_store, rank, world_size, timeout=timeout)\n"
          "RuntimeError: [enforce fail at /root/pytorch/third_party/gloo/gloo/transport/tcp/device.cc:83] ifa != nullptr. Unable to find address for: bond1\n")


if __name__ == "__main__":
    cluster()
