"""Redaction by shape and by value: every form a secret took in a real leak."""

from __future__ import annotations

import time

import pytest

from preflight.redact import MASK, Scrubber, redact_argv, redact_text

SECRET = "Zq9-secret-Xy7"

SHAPES = [
    f"HF_ENDPOINT=http://mirror:{SECRET}@host/",
    f"--hub_url https://u:{SECRET}@hf.example/x",
    f"postgres://u:{SECRET}@db:5432/x",
    f"git clone https://{SECRET}@github.com/o/r",
    f'bash -c "python x.py --hf_token {SECRET} --lr 1"',
    f"bash -c 'python x.py --hf-token={SECRET}'",
    f"""python x.py --cfg '{{"api_key": "{SECRET}", "lr": 1}}'""",
    f"""{{\\"api_key\\": \\"{SECRET}\\"}}""",
    f"{{'password': '{SECRET}'}}",
    f'curl -H "Authorization: Bearer {SECRET}" http://x',
    f"curl -H 'authorization: {SECRET}' http://x",
    f"Bearer {SECRET}",
    f"env WANDB_API_KEY={SECRET} python train.py",
    f"export DB_PASSWORD='{SECRET}'",
    f"--api-key={SECRET}",
    "hf_" + "a1B2c3D4e5F6g7H8i9J0kLmN",
    "sk-" + "proj-abcdefghijklmnopqrstuvwxyz012345",
    "WANDB " + "0123456789abcdef0123456789abcdef01234567",
]


@pytest.mark.parametrize("text", SHAPES)
def test_shapes_are_masked_without_knowing_the_value(text):
    out = redact_text(text)
    assert MASK in out
    assert SECRET not in out
    assert "a1B2c3D4e5F6g7H8i9J0kLmN" not in out
    assert "abcdefghijklmnopqrstuvwxyz012345" not in out
    assert "0123456789abcdef0123456789abcdef01234567" not in out


@pytest.mark.parametrize("text", [
    "--monkey banana --keyboard qwerty --lr 2 --seed 7",
    "PWD=/home/u OLDPWD=/tmp",
    "https://hf-mirror.com/models",
    "sha256 " + "ab" * 32,  # a parameter hash is not a W&B key
    "error: failed to bind 0.0.0.0:29500",
    # ms-swift's --model_author: an author is no credential; its value `swift` was masked
    # in every line ("*** rlhf", "torchrun / *** process")
    "swift sft --model_author swift --model_name swift-robot",
    "AUTHOR_EMAIL=dev@example.com authors=core",
])
def test_harmless_text_is_left_alone(text):
    assert redact_text(text) == text


def test_argv_keeps_structure():
    argv = ["bash", "-c", f"torchrun x.py --hf_token {SECRET}", "--token", SECRET, "--lr", "1"]
    out = redact_argv(argv)
    assert out[:2] == ["bash", "-c"] and out[3:] == ["--token", MASK, "--lr", "1"]
    assert SECRET not in " ".join(out)


def test_author_is_no_secret_name_authorization_still_is():
    from preflight.redact import is_secret_name

    assert not is_secret_name("--model_author") and not is_secret_name("AUTHOR_EMAIL")
    assert all(is_secret_name(n) for n in ("AUTHORIZATION", "HF_AUTH_TOKEN", "--auth",
                                           "OAUTH_SECRET"))
    assert redact_argv(["--model_author", "swift", "--hub_token", SECRET]) == [
        "--model_author", "swift", "--hub_token", MASK]


def test_values_not_keys():
    scrub = Scrubber()
    scrub.add_mapping({"TRANSFORMERS_VERBOSITY": "error", "HF_TOKEN": SECRET})
    out = scrub({"error": f"error: got {SECRET} (errors)", "errorcode": 3})
    assert out == {"error": f"{MASK}: got {MASK} (errors)", "errorcode": 3}
    assert scrub({SECRET: 1}) == {MASK: 1}  # a secret is never printed, key or not


def test_a_plain_env_word_never_renames_a_check_id_or_hides_a_launch_setting():
    # A .env with WANDB_MODE=offline and MASTER_PORT=29611 turned the console's
    # `wandb-offline` into `wandb-***` and launch-ports' "ports free: 29611" into "***".
    scrub = Scrubber()
    scrub.add_mapping({"WANDB_MODE": "offline", "MASTER_PORT": "29611", "RUN_NAME": "limits",
                       "HF_TOKEN": SECRET})
    assert scrub.text("SKIP wandb-offline and host-limits; nccl_limits") == \
        "SKIP wandb-offline and host-limits; nccl_limits"
    assert scrub.text("ports free: 29611; WANDB_MODE=offline") == \
        "ports free: 29611; WANDB_MODE=offline"
    assert scrub.text("run name: limits, key " + SECRET) == f"run name: {MASK}, key {MASK}"


def test_half_a_url_is_masked():
    # The crash message of an invalid URL showed a piece of it: the value match fails,
    # the shape still holds.
    scrub = Scrubber([f"http://mirror:{SECRET}@[::1"])
    assert SECRET not in scrub.text(f"ValueError: Invalid IPv6 URL mirror:{SECRET}@[::1")


def test_linear_in_output_with_50000_secrets():
    secrets = [f"value-{i:06d}-{i * 7919 % 100003:06d}" for i in range(50_000)]
    scrub = Scrubber(secrets)
    scrub.text("warm")  # builds the matcher once
    small = " ".join(secrets[:200]) + " plain text " * 2000
    big = small * 8
    start = time.perf_counter()
    out_small = scrub.text(small)
    t_small = time.perf_counter() - start
    start = time.perf_counter()
    out_big = scrub.text(big)
    t_big = time.perf_counter() - start
    assert "value-" not in out_small and "value-" not in out_big
    assert t_big < 8 * t_small * 3 + 0.05  # linear, with slack for a loaded box
