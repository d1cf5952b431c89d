"""Train a small GPT on a text file with several processes (DistributedDataParallel).

One process (plain Python, no torchrun):

    python examples/train_ddp.py --text input.txt --out runs/ckpt --batch-size 16

N processes on one machine, one per GPU (NCCL) or sharing the CPU cores (gloo):

    torchrun --standalone --nproc_per_node=N examples/train_ddp.py --text input.txt \\
        --out runs/ckpt --batch-size 16

``--batch-size`` is per process, so the global batch is ``N * batch-size`` windows: 2 processes
with ``--batch-size 4`` take the same optimizer steps (up to rounding) as 1 process with 8.
Rank 0 prints the log lines and writes the checkpoints to ``--out`` (``step-NNNNNNN/``, with
``latest`` pointing at the newest) and, at the end, ``history.json``; ``--resume`` continues from
``latest``. With several machines, ``--out`` must be on a file system they all see.
``--text`` is a path, or the name of one of the book's public files (e.g. ``the-verdict``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import mygpt
from mygpt.distributed import cleanup, distributed_dataloader, init_distributed, wrap_model


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--text", required=True, help="UTF-8 text file, or a registry name")
    p.add_argument("--out", required=True, type=Path, help="checkpoint directory")
    p.add_argument("--resume", action="store_true", help="continue from <out>/latest")
    p.add_argument("--context-length", type=int, default=128)
    p.add_argument("--n-layer", type=int, default=4)
    p.add_argument("--n-embd", type=int, default=256)
    p.add_argument("--n-head", type=int, default=4)
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--batch-size", type=int, default=8, help="windows per process and step")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--lr", type=float, default=4e-4)
    p.add_argument("--warmup-steps", type=int, default=0)
    p.add_argument("--eval-every", type=int, default=50)
    p.add_argument("--eval-batches", type=int, default=None)
    p.add_argument("--checkpoint-every", type=int, default=100)
    p.add_argument("--val-frac", type=float, default=0.1, help="0 for no validation")
    p.add_argument("--seed", type=int, default=123)
    p.add_argument("--device", default=None, help="'cpu' to stay on the CPU on a GPU machine")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> mygpt.History:
    """Train as the command line says; returns the history (the same on every rank)."""
    args = parse_args(argv)
    ctx = init_distributed(device=args.device)
    try:
        # The same seed on every rank: DDP copies rank 0's weights anyway, and equal random
        # streams make dropout resumable from rank 0's saved generator state.
        mygpt.seed_everything(args.seed)
        path = Path(args.text)
        text = path.read_text(encoding="utf-8") if path.is_file() else mygpt.read_text(args.text)
        train_text, val_text = (
            mygpt.train_val_split(text, 1 - args.val_frac) if args.val_frac > 0 else (text, None)
        )
        cfg = mygpt.GPTConfig(
            context_length=args.context_length,
            n_layer=args.n_layer,
            n_embd=args.n_embd,
            n_head=args.n_head,
            dropout=args.dropout,
        )
        model = wrap_model(mygpt.GPT(cfg), ctx)
        train_loader = distributed_dataloader(
            train_text, args.batch_size, args.context_length, seed=args.seed
        )
        # Validation is sharded too (in order, whole batches only): each rank evaluates its share
        # and train() averages over ranks, the same windows and weights as one process would use.
        val_loader = (
            distributed_dataloader(val_text, args.batch_size, args.context_length, shuffle=False)
            if val_text is not None
            else None
        )
        if ctx.is_main:
            print(
                f"{ctx.world_size} process(es), backend {ctx.backend or 'none'}, "
                f"{ctx.device.type}; global batch {args.batch_size * ctx.world_size} x "
                f"{args.context_length} tokens; {len(train_loader)} steps per epoch",
                flush=True,
            )
        tc = mygpt.TrainConfig(
            epochs=args.epochs,
            max_steps=args.max_steps,
            lr=args.lr,
            warmup_steps=args.warmup_steps,
            eval_every=args.eval_every,
            eval_batches=args.eval_batches,
            seed=args.seed,
            checkpoint_every=args.checkpoint_every,
        )
        history = mygpt.train(
            model,
            train_loader,
            val_loader,
            tc,
            device=ctx.device,
            checkpoint_dir=args.out,
            resume=args.resume,
        )
        if ctx.is_main:
            (args.out / "history.json").write_text(json.dumps(dataclasses.asdict(history)))
        return history
    finally:
        cleanup()


if __name__ == "__main__":
    main()
