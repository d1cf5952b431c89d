"""A training run for tests/test_crash_safety.py, started as a separate process that gets killed.

Usage: python tests/_crash_worker.py MODE CHECKPOINT_DIR HISTORY_JSON
  MODE is one of
    run          train to the end (the uninterrupted reference, or the run the test kills at
                 a random moment once a checkpoint exists; each step then lasts >= 20 ms so the
                 kill lands mid-run even on a busy machine);
    hang-in-write  like run, but while writing the training state of step HANG_AT it writes half
                 of the file's bytes, touches CHECKPOINT_DIR/../writing and waits to be killed;
    resume       continue from CHECKPOINT_DIR/latest to the end;
    save-loop    save two different models (SAVE_MODELS) over and over into CHECKPOINT_DIR with
                 save_model, after saving each once into CHECKPOINT_DIR/../reference-N; touches
                 CHECKPOINT_DIR/../saving when the loop starts, then runs until killed.
The history (per-step losses) goes to HISTORY_JSON when the run finishes.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, TensorDataset

from mygpt.checkpoint import save_model
from mygpt.config import GPTConfig
from mygpt.model import GPT
from mygpt.training import STATE_NAME, TrainConfig, train

STEPS, CHECKPOINT_EVERY, HANG_AT = 30, 5, 15
CFG = GPTConfig(vocab_size=97, context_length=16, n_embd=32, n_layer=2, n_head=4, dropout=0.1)
# Different shapes (a mix of one's weights and the other's config cannot load) and a few MB each,
# so that writing takes long enough for a kill to land in any part of it.
SAVE_MODELS = [
    GPTConfig(vocab_size=4000, context_length=64, n_embd=128, n_layer=2, n_head=4),
    GPTConfig(
        vocab_size=4000, context_length=64, n_embd=128, n_layer=3, n_head=4, tie_weights=False
    ),
]
TRAIN = TrainConfig(
    max_steps=STEPS,
    eval_every=1,
    eval_batches=1,
    lr=1e-3,
    warmup_steps=3,
    checkpoint_every=CHECKPOINT_EVERY,
    keep_last=3,
    log=False,
)


def loaders() -> tuple[DataLoader, DataLoader]:
    """64 random sequences, 8 per batch: 8 steps per epoch, so the run spans several epochs."""
    data = torch.randint(
        0, CFG.vocab_size, (64, CFG.context_length + 1), generator=torch.Generator().manual_seed(0)
    )
    ds = TensorDataset(data[:, :-1], data[:, 1:])
    return (
        DataLoader(ds, batch_size=8, shuffle=True, generator=torch.Generator()),
        DataLoader(ds, batch_size=16, shuffle=False),
    )


def hang_in_write(signal_file: Path) -> None:
    """Make the training-state write of step HANG_AT stop half-way, as a crash would find it."""
    real_save = torch.save

    def save(obj, f, *args, **kwargs):
        if Path(f).name == STATE_NAME and obj.get("step") == HANG_AT:
            buffer = io.BytesIO()
            real_save(obj, buffer, *args, **kwargs)
            data = buffer.getvalue()
            with open(f, "wb") as out:
                out.write(data[: len(data) // 2])
                out.flush()
                os.fsync(out.fileno())
            signal_file.write_text("half of the training state is on disk")
            time.sleep(600)  # the test kills this process here
        return real_save(obj, f, *args, **kwargs)

    torch.save = save


def save_loop(directory: Path) -> None:
    """Replace the model in ``directory`` by the other one, again and again, until killed."""
    models = [GPT(cfg) for cfg in SAVE_MODELS]
    for i, model in enumerate(models):
        save_model(model, directory.parent / f"reference-{i}")
    save_model(models[0], directory)
    (directory.parent / "saving").touch()
    for i in range(1, 10**9):
        save_model(models[i % 2], directory)


def main() -> None:
    mode, checkpoint_dir, history_json = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    if mode == "save-loop":
        return save_loop(checkpoint_dir)
    torch.manual_seed(
        1 if mode != "resume" else 999
    )  # resume must take everything from the checkpoint
    on_eval = None
    if mode == "run":
        on_eval = lambda step, history: time.sleep(0.02)  # noqa: E731 (a slow step, see above)
    elif mode == "hang-in-write":
        hang_in_write(checkpoint_dir.parent / "writing")
    history = train(
        GPT(CFG),
        *loaders(),
        TRAIN,
        checkpoint_dir=checkpoint_dir,
        resume=mode == "resume",
        on_eval=on_eval,
    )
    history_json.write_text(json.dumps(dataclasses.asdict(history)))


if __name__ == "__main__":
    main()
