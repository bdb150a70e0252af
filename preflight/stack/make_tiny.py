"""Build a tiny, random Qwen2 chat model, its tokenizer and a jsonl dataset, offline.

A standalone script: preflight runs it with the Python of the user's training env
(the one `swift` runs under), so it imports only what that env has (torch,
transformers, tokenizers) and nothing of preflight.

    python make_tiny.py OUT_DIR [--layers 2] [--hidden 64] [--rows 64]

writes OUT_DIR/model (config, weights, tokenizer with a ChatML template) and
OUT_DIR/train.jsonl, then prints one JSON line describing them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

# The special tokens and the chat template of Qwen2's tokenizer_config.json (ChatML),
# trimmed to plain text turns: swift's `qwen` template renders the same markers.
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
QUESTIONS = [
    ("What is 2 + 3?", "2 + 3 = 5."),
    ("Name a primary colour.", "Red is a primary colour."),
    ("Say hello.", "Hello!"),
    ("How many GPUs does a node have?", "This one has none; it trains on the CPU."),
    ("Which port does torchrun use?", "MASTER_PORT, 29500 unless told otherwise."),
    ("Is the smoke test green?", "Yes: ten steps and a checkpoint."),
    ("What does NCCL do?", "It moves tensors between GPUs."),
    ("Spell preflight.", "p-r-e-f-l-i-g-h-t"),
]


def rows(count: int) -> list[dict[str, Any]]:
    return [
        {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}
        for q, a in (QUESTIONS[i % len(QUESTIONS)] for i in range(count))
    ]


# This file runs under the stack's own Python (the env `swift` runs in, which has
# transformers and tokenizers); preflight's own environment need not have them, so mypy
# may not find them: the imports are typed Any there.
def build_tokenizer(corpus: list[str], vocab_size: int) -> Any:
    from tokenizers import (  # type: ignore[import-not-found,unused-ignore]
        Tokenizer,
        decoders,
        models,
        pre_tokenizers,
        trainers,
    )
    from transformers import (  # type: ignore[import-not-found,unused-ignore]
        PreTrainedTokenizerFast,
    )

    # Byte-level BPE like Qwen2's: every byte is in the alphabet, so nothing is <unk>.
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>"],
        chat_template=CHATML,
        model_max_length=512,
    )


def build_model(tokenizer: Any, layers: int, hidden: int) -> Any:
    import torch
    from transformers import (  # type: ignore[import-not-found,unused-ignore]
        GenerationConfig,
        Qwen2Config,
        Qwen2ForCausalLM,
    )

    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tokenizer.pad_token_id,
        torch_dtype="float32",
    )
    model = Qwen2ForCausalLM(config)
    model.generation_config = GenerationConfig(
        eos_token_id=config.eos_token_id, pad_token_id=config.pad_token_id, max_new_tokens=16)
    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--rows", type=int, default=64)
    parser.add_argument("--vocab", type=int, default=512)
    args = parser.parse_args(argv)

    data = rows(args.rows)
    corpus = [m["content"] for r in data for m in r["messages"]] + ["user", "assistant", "system"]
    tokenizer = build_tokenizer(corpus, args.vocab)
    model = build_model(tokenizer, args.layers, args.hidden)
    model_dir = args.out / "model"
    model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    dataset = args.out / "train.jsonl"
    dataset.write_text("".join(json.dumps(r) + "\n" for r in data), encoding="utf-8")
    print(json.dumps({
        "model": str(model_dir), "dataset": str(dataset), "layers": args.layers,
        "hidden": args.hidden, "vocab": len(tokenizer), "rows": len(data),
        "parameters": sum(p.numel() for p in model.parameters()),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
