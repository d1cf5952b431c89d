"""Nothing is lost when training dies: kill -9 and resume, and non-finite losses or gradients.

The kill tests run ``tests/_crash_worker.py`` in real subprocesses and end them with SIGKILL
(no Python cleanup, no ``finally``, as a power cut or the out-of-memory killer would), once at
a random moment after a checkpoint exists and once deterministically half-way through writing a
checkpoint. A fresh process then resumes from ``latest``; its per-step losses and final weights
must equal an uninterrupted run's exactly, and no directory named like a checkpoint
(``step-NNNNNNN``) may be incomplete.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch.utils.data import DataLoader, TensorDataset

from mygpt.checkpoint import load_model, save_model
from mygpt.errors import TrainingError
from mygpt.model import GPT
from mygpt.training import (
    STATE_NAME,
    TrainConfig,
    latest_checkpoint,
    load_training_checkpoint,
    train,
)

WORKER = Path(__file__).with_name("_crash_worker.py")
ROOT = WORKER.parents[1]
sys.path.insert(0, str(WORKER.parent))
import _crash_worker as worker  # noqa: E402  (its constants: steps, checkpoint interval, model)

TIMEOUT = 120  # seconds for any one subprocess (each takes a few on 2 busy cores)


def _start(mode: str, checkpoint_dir: Path, history: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", TQDM_DISABLE="1")
    return subprocess.Popen(
        [sys.executable, str(WORKER), mode, str(checkpoint_dir), str(history)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc: subprocess.Popen) -> None:
    out, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, f"worker failed:\n{out}\n{err}"


def _wait_for(condition, proc: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(
                f"worker ended (rc {proc.returncode}) before {what}: {proc.stderr.read()}"
            )
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def _kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == -signal.SIGKILL


def _latest_step(directory: Path) -> int:
    try:
        return int((directory / "latest").read_text().removeprefix("step-"))
    except (FileNotFoundError, ValueError):
        return 0


def _assert_every_named_checkpoint_is_complete(directory: Path) -> list[str]:
    names = sorted(p.name for p in directory.glob("step-*"))
    for name in names:
        files = sorted(p.name for p in (directory / name).iterdir())
        assert files == ["config.json", "model.safetensors", STATE_NAME], (name, files)
        state = load_training_checkpoint(directory / name, GPT(worker.CFG))  # loads cleanly
        assert name == f"step-{state['step']:07d}"
    return names


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[dict, dict]:
    """History and final weights of an uninterrupted run."""
    tmp = tmp_path_factory.mktemp("reference")
    proc = _start("run", tmp / "ckpt", tmp / "history.json")
    _finish(proc)
    final = tmp / "ckpt" / f"step-{worker.STEPS:07d}" / "model.safetensors"
    return json.loads((tmp / "history.json").read_text()), load_file(final)


def _resume_and_compare(tmp: Path, reference) -> None:
    proc = _start("resume", tmp / "ckpt", tmp / "history.json")
    _finish(proc)
    history, weights = reference
    resumed = json.loads((tmp / "history.json").read_text())
    assert resumed["step"] == list(range(1, worker.STEPS + 1))
    assert resumed["train_loss"] == history["train_loss"]  # exactly, step by step
    assert resumed["val_loss"] == history["val_loss"]
    final = load_file(tmp / "ckpt" / f"step-{worker.STEPS:07d}" / "model.safetensors")
    assert final.keys() == weights.keys()
    assert all(torch.equal(final[k], weights[k]) for k in weights)


def test_sigkill_at_a_random_moment_then_resume_equals_uninterrupted(tmp_path, reference):
    ckpt = tmp_path / "ckpt"
    proc = _start("run", ckpt, tmp_path / "unused.json")
    _wait_for(lambda: _latest_step(ckpt) >= 2 * worker.CHECKPOINT_EVERY, proc, "a checkpoint")
    _kill(proc)
    at_kill = _latest_step(ckpt)
    assert at_kill < worker.STEPS, "the run ended before the kill: nothing was tested"
    names = _assert_every_named_checkpoint_is_complete(ckpt)
    assert f"step-{at_kill:07d}" in names
    _resume_and_compare(tmp_path, reference)


def test_sigkill_half_way_through_a_checkpoint_write_then_resume(tmp_path, reference):
    ckpt = tmp_path / "ckpt"
    proc = _start("hang-in-write", ckpt, tmp_path / "unused.json")
    _wait_for((tmp_path / "writing").exists, proc, "the half-written checkpoint")
    _kill(proc)
    previous = worker.HANG_AT - worker.CHECKPOINT_EVERY
    assert latest_checkpoint(ckpt).name == f"step-{previous:07d}"  # still the last good one
    names = _assert_every_named_checkpoint_is_complete(ckpt)
    assert f"step-{worker.HANG_AT:07d}" not in names
    # The half-written state is there, under a temporary name that no reader takes for a checkpoint.
    partial = [p for p in ckpt.glob(f".step-{worker.HANG_AT:07d}.*") if (p / STATE_NAME).exists()]
    assert len(partial) == 1
    _resume_and_compare(tmp_path, reference)


def test_sigkill_during_save_model_over_a_model_leaves_one_whole_model(tmp_path):
    """save_model replacing a model, killed at random moments: the directory then loads as
    exactly the old model or exactly the new one (never one's weights with the other's
    config.json), and the next save_model leaves no temporary file or directory behind."""
    rng = random.Random(0)
    for trial in range(4):
        root = tmp_path / f"trial-{trial}"
        root.mkdir()
        target = root / "model"
        proc = _start("save-loop", target, root / "unused.json")
        _wait_for((root / "saving").exists, proc, "the save loop")
        time.sleep(rng.uniform(0.0, 0.3))
        _kill(proc)
        references = [load_model(root / f"reference-{i}") for i in range(2)]
        loaded = load_model(target)  # one whole model: a mix would not load (shapes differ)
        assert any(_same_weights(loaded, ref) for ref in references), trial
        save_model(references[0], target)
        assert sorted(p.name for p in root.iterdir()) == [
            "model",
            "reference-0",
            "reference-1",
            "saving",
        ], trial
        assert sorted(p.name for p in target.iterdir()) == ["config.json", "model.safetensors"]


def _same_weights(a: GPT, b: GPT) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# --- non-finite numbers ----------------------------------------------------------------------


def _loaders(vocab: int):
    data = torch.randint(0, vocab, (64, 17), generator=torch.Generator().manual_seed(0))
    ds = TensorDataset(data[:, :-1], data[:, 1:])
    return (
        DataLoader(ds, batch_size=8, shuffle=True, generator=torch.Generator()),
        DataLoader(ds, batch_size=16),
    )


@pytest.mark.parametrize("grad_clip", [1.0, None])
def test_inf_gradient_stops_before_the_update_and_keeps_the_last_good_state(
    tiny_cfg, tmp_path, grad_clip
):
    """A finite loss whose backward pass overflows (here: a gradient hook multiplying by inf,
    as a float overflow would) must not reach the weights, nor any checkpoint."""
    model = GPT(tiny_cfg)
    backward_passes = 0

    def overflow_from_the_fourth_step(grad: torch.Tensor) -> torch.Tensor:
        nonlocal backward_passes
        backward_passes += 1
        return grad * float("inf") if backward_passes > 3 else grad

    model.blocks[0].mlp.fc.weight.register_hook(overflow_from_the_fourth_step)
    cfg = TrainConfig(
        max_steps=10, eval_every=1, checkpoint_every=1, grad_clip=grad_clip, log=False
    )
    with pytest.raises(
        TrainingError,
        match=r"Gradient norm became (inf|nan) at step 3 .*"
        r"the loss, [0-9.]+, was finite",
    ):
        train(model, *_loaders(tiny_cfg.vocab_size), cfg, checkpoint_dir=tmp_path)
    state = {k: v for k, v in model.state_dict().items() if k != "lm_head.weight"}
    assert all(torch.isfinite(v).all() for v in state.values())
    last = latest_checkpoint(tmp_path)
    assert last.name == "step-0000003"  # steps 0, 1, 2 were good and saved
    saved = load_file(last / "model.safetensors")
    assert all(torch.equal(saved[k], state[k]) for k in saved)  # the model is that state


def test_nan_loss_after_good_steps_names_the_last_checkpoint(tiny_cfg, tmp_path):
    """Extends tests/test_train.py's NaN test: the loss turns NaN mid-run (an input of inf
    embeddings), training stops at once, and the last checkpoint holds the last good weights."""
    model = GPT(tiny_cfg)
    tr, va = _loaders(tiny_cfg.vocab_size)
    poisoned = []

    def poison_after_step_5(step, history):
        if step == 5:
            with torch.no_grad():
                model.tok_emb.weight[:, 0] = float("inf")  # the forward pass now yields NaN
            poisoned.append({k: v.clone() for k, v in model.state_dict().items()})

    cfg = TrainConfig(max_steps=10, eval_every=1, checkpoint_every=2, log=False)
    with pytest.raises(TrainingError, match=rf"Loss became nan at step 5; .*{tmp_path}"):
        train(model, tr, va, cfg, checkpoint_dir=tmp_path, on_eval=poison_after_step_5)
    assert latest_checkpoint(tmp_path).name == "step-0000004"  # step 5 was never saved
    saved = load_file(latest_checkpoint(tmp_path) / "model.safetensors")
    assert torch.isfinite(saved["tok_emb.weight"]).all()  # saved before the damage
    for k, v in model.state_dict().items():  # no update happened after the damage
        assert torch.equal(v.nan_to_num(), poisoned[0][k].nan_to_num()), k
