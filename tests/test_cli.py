"""Tests of the command line (``python -m mygpt`` / ``mygpt``): every subcommand, on both model
formats it takes (a mygpt directory and a Hugging Face Hub-layout one), and its user errors: each
exits non-zero with ONE line on stderr (the package's message), never a traceback.

Models are tiny (two blocks, 32 wide) and generate a few tokens, so each call takes well under a
second in-process; two tests run a real ``python -m mygpt`` process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mygpt import __main__ as cli
from mygpt.checkpoint import load_model, save_model
from mygpt.config import GPTConfig
from mygpt.finetune import GPTClassifier, classify, save_classifier
from mygpt.generation import generate_text
from mygpt.model import GPT
from mygpt.pretrained import load_pretrained

ROOT = Path(__file__).resolve().parents[1]
TINY = GPTConfig(vocab_size=50257, context_length=64, n_embd=32, n_layer=2, n_head=2)
TEXT = "The quick brown fox jumps over the lazy dog. " * 30  # ~300 GPT-2 tokens


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """A tiny model in each format the CLI takes, and a tiny classifier."""
    transformers = pytest.importorskip("transformers")
    root = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    own = save_model(GPT(TINY), root / "own")
    hub = root / "hub"
    transformers.GPT2LMHeadModel(
        transformers.GPT2Config(n_layer=2, n_embd=32, n_head=2, n_positions=64, vocab_size=50257)
    ).save_pretrained(hub)
    clf = save_classifier(GPTClassifier(GPT(TINY), ("ham", "spam"), max_length=16), root / "clf")
    return {"own": own, "hub": hub, "clf": clf}


def run(capsys, *args: str) -> tuple[int, str, str]:
    """``mygpt ARGS`` in this process: (exit status, stdout, stderr)."""
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, *words: str) -> None:
    """A failed command: non-zero status, one line on stderr naming the problem, no traceback."""
    assert code != 0
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    for word in words:
        assert word in err, (word, err)


# --- generate ----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["own", "hub"])
def test_generate_with_each_model_format(capsys, models, fmt):
    code, out, err = run(
        capsys,
        "generate",
        "--model",
        models[fmt],
        "--prompt",
        "Hello there",
        "--max-new-tokens",
        "5",
        "--temperature",
        "0",
        "--device",
        "cpu",
    )
    assert code == 0, err
    model = load_model(models[fmt]) if fmt == "own" else load_pretrained(models[fmt])
    assert out == generate_text(model.eval(), "Hello there", max_new_tokens=5, temperature=0) + "\n"


def test_the_two_formats_differ_in_their_config_keys(models):
    # What the CLI tells them apart by; both have n_layer, so that key alone says nothing.
    own = json.loads((models["own"] / "config.json").read_text())
    hub = json.loads((models["hub"] / "config.json").read_text())
    assert "context_length" in own and "n_positions" not in own and "n_layer" in own
    assert "n_positions" in hub and "context_length" not in hub and "n_layer" in hub


def test_generate_a_batch_of_prompts_with_sampling(capsys, models):
    code, out, err = run(
        capsys,
        "generate",
        "--model",
        models["own"],
        "--prompt",
        "One",
        "--prompt",
        "Two",
        "--max-new-tokens",
        "3",
        "--seed",
        "1",
        "--top-k",
        "5",
        "--device",
        "cpu",
    )
    assert code == 0, err
    assert out.count("-" * 40) == 2 and out.startswith("One")


def test_generate_multi_line_package_error_is_one_line(capsys, models, tmp_path):
    # The Hub loader's "does not fit" error has a line per kind of problem: the CLI joins them.
    bad = tmp_path / "hub3"
    bad.mkdir()
    (bad / "model.safetensors").write_bytes((models["hub"] / "model.safetensors").read_bytes())
    config = json.loads((models["hub"] / "config.json").read_text())
    (bad / "config.json").write_text(json.dumps({**config, "n_layer": 3}))
    code, _, err = run(capsys, "generate", "--model", bad, "--prompt", "Hi", "--device", "cpu")
    assert_one_line_error(code, err, "does not fit", "missing tensors")


@pytest.mark.parametrize(
    "config, words",
    [
        ({"n_layer": 2, "hidden": 3}, ["neither", "context_length", "n_positions"]),
        ([1, 2], ["JSON object"]),
        ({"format": "mygpt-classifier"}, ["classifier", "mygpt classify"]),
    ],
)
def test_generate_refuses_a_config_of_neither_format(capsys, tmp_path, config, words):
    (tmp_path / "config.json").write_text(json.dumps(config))
    code, _, err = run(capsys, "generate", "--model", tmp_path, "--prompt", "Hi", "--device", "cpu")
    assert_one_line_error(code, err, *words)


def test_generate_config_json_not_utf8(capsys, tmp_path):
    (tmp_path / "config.json").write_bytes(b'{"n_layer": "\xff"}')
    code, _, err = run(capsys, "generate", "--model", tmp_path, "--prompt", "Hi", "--device", "cpu")
    assert_one_line_error(code, err, "config.json", "UTF-8")


def test_generate_missing_model_directory(capsys, tmp_path):
    code, _, err = run(capsys, "generate", "--model", tmp_path / "nope", "--prompt", "Hi")
    assert_one_line_error(code, err, str(tmp_path / "nope"))


def test_generate_prompt_outside_a_small_vocabulary(capsys, tmp_path):
    small = save_model(GPT(TINY.replace(vocab_size=97)), tmp_path / "small")
    code, _, err = run(capsys, "generate", "--model", small, "--prompt", "Hello", "--device", "cpu")
    assert_one_line_error(code, err, "outside the model's vocabulary of 97")


@pytest.mark.parametrize(
    "device, words",
    [
        ("banana", ["--device 'banana'", "cpu"]),
        ("cuda", ["--device 'cuda'", "CUDA"]),
        ("cuda:7", ["--device 'cuda:7'", "CUDA"]),
        ("mps", ["--device 'mps'", "MPS"]),
        ("meta", ["--device 'meta'", "cpu"]),
    ],
)
def test_generate_unusable_device(capsys, models, device, words):
    if device.startswith("cuda") and torch.cuda.device_count() > 7:
        pytest.skip("this machine has that CUDA device")
    if device == "mps" and torch.backends.mps.is_available():
        pytest.skip("this machine has MPS")
    code, _, err = run(
        capsys, "generate", "--model", models["own"], "--prompt", "Hi", "--device", device
    )
    if device == "cuda" and torch.cuda.is_available():
        assert code == 0, err
        return
    assert_one_line_error(code, err, *words)


def test_device_from_the_environment_is_checked_too(capsys, models, monkeypatch):
    monkeypatch.setenv("MYGPT_DEVICE", "banana")
    code, _, err = run(capsys, "generate", "--model", models["own"], "--prompt", "Hi")
    assert_one_line_error(code, err, "MYGPT_DEVICE='banana'")


# --- train -------------------------------------------------------------------------------------

TRAIN_ARGS = [
    "--config",
    "tiny",
    "--context-length",
    "16",
    "--steps",
    "2",
    "--batch-size",
    "2",
    "--eval-every",
    "1",
    "--eval-batches",
    "1",
    "--device",
    "cpu",
]


def test_train_then_generate_and_classify_from_the_checkpoint(capsys, tmp_path):
    text = tmp_path / "input.txt"
    text.write_text(TEXT, encoding="utf-8")
    code, out, err = run(capsys, "train", "--text", text, "--out", tmp_path / "ckpt", *TRAIN_ARGS)
    assert code == 0, err
    assert "step     2" in out and (tmp_path / "ckpt" / "latest").is_file()
    # The checkpoint directory is a model for generate (mygpt's own format) ...
    code, out, err = run(
        capsys,
        "generate",
        "--model",
        tmp_path / "ckpt",
        "--prompt",
        "The quick",
        "--max-new-tokens",
        "3",
        "--device",
        "cpu",
    )
    assert code == 0 and out.startswith("The quick"), err
    # ... but not a classifier.
    code, _, err = run(capsys, "classify", "--model", tmp_path / "ckpt", "hi", "--device", "cpu")
    assert_one_line_error(code, err, "classifier")


def test_train_text_not_utf8(capsys, tmp_path):
    text = tmp_path / "latin1.txt"
    text.write_bytes("café, naïve, déjà vu\n".encode("latin-1") * 20)
    code, out, err = run(capsys, "train", "--text", text, "--out", tmp_path / "ckpt", *TRAIN_ARGS)
    assert_one_line_error(code, err, str(text), "UTF-8", "byte 3")
    assert out == "" and not (tmp_path / "ckpt").exists()


def test_train_missing_text(capsys, tmp_path):
    code, _, err = run(
        capsys, "train", "--text", tmp_path / "nope.txt", "--out", tmp_path / "ckpt", *TRAIN_ARGS
    )
    assert_one_line_error(code, err, "No text file", "nope.txt")


@pytest.mark.parametrize("where", ["file", "inside-file"])
def test_train_out_is_a_file_fails_before_training(capsys, tmp_path, where):
    text = tmp_path / "input.txt"
    text.write_text(TEXT, encoding="utf-8")
    blocker = tmp_path / "taken"
    blocker.write_text("keep me")
    out_dir = blocker if where == "file" else blocker / "ckpt"
    code, out, err = run(capsys, "train", "--text", text, "--out", out_dir, *TRAIN_ARGS)
    assert_one_line_error(code, err, str(blocker), "--out")
    assert "model:" not in out and "step" not in out  # nothing was built or trained
    assert blocker.read_text() == "keep me"


def test_train_too_little_text(capsys, tmp_path):
    text = tmp_path / "short.txt"
    text.write_text("Just a few words.", encoding="utf-8")
    code, _, err = run(capsys, "train", "--text", text, "--out", tmp_path / "ckpt", *TRAIN_ARGS)
    assert_one_line_error(code, err, "too short", "--batch-size 2", "--context-length")
    assert "drop_last" not in err  # an argument of the API, not of the command line


def test_train_unusable_device(capsys, tmp_path):
    text = tmp_path / "input.txt"
    text.write_text(TEXT, encoding="utf-8")
    code, _, err = run(
        capsys,
        "train",
        "--text",
        text,
        "--out",
        tmp_path / "ckpt",
        *TRAIN_ARGS[:-2],
        "--device",
        "banana",
    )
    assert_one_line_error(code, err, "banana")


# --- classify ----------------------------------------------------------------------------------


def test_classify_with_a_classifier(capsys, models):
    from mygpt.finetune import load_classifier

    code, out, err = run(
        capsys, "classify", "--model", models["clf"], "--device", "cpu", "you won", "hi"
    )
    assert code == 0, err
    labels = classify(load_classifier(models["clf"]), ["you won", "hi"])
    assert out.splitlines() == [f"{labels[0]}\tyou won", f"{labels[1]}\thi"]


@pytest.mark.parametrize("fmt", ["own", "hub"])
def test_classify_with_a_language_model_is_a_clear_error(capsys, models, fmt):
    code, _, err = run(capsys, "classify", "--model", models[fmt], "--device", "cpu", "hi")
    assert_one_line_error(code, err, "language model, not a classifier", "mygpt generate")


def test_classify_missing_model_and_bad_device(capsys, models, tmp_path):
    code, _, err = run(capsys, "classify", "--model", tmp_path / "nope", "hi")
    assert_one_line_error(code, err, "nope")
    code, _, err = run(capsys, "classify", "--model", models["clf"], "--device", "banana", "hi")
    assert_one_line_error(code, err, "banana")


# --- as a real process ---------------------------------------------------------------------------


def test_real_process_errors_are_one_line(models, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for args, word in [
        (
            ["generate", "--model", str(models["own"]), "--prompt", "Hi", "--device", "banana"],
            "banana",
        ),
        (["generate", "--model", str(tmp_path / "nope"), "--prompt", "Hi"], "nope"),
    ]:
        run = subprocess.run(
            [sys.executable, "-m", "mygpt", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        assert run.returncode == 2, run.stderr
        assert_one_line_error(run.returncode, run.stderr, word)


def test_real_process_generates_from_a_hub_directory(models):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "mygpt",
            "generate",
            "--model",
            str(models["hub"]),
            "--prompt",
            "Hello",
            "--max-new-tokens",
            "2",
            "--device",
            "cpu",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("Hello")
