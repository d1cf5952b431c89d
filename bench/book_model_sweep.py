"""Choosing the book model's shape: a short sweep of width, depth and context at fixed compute.

Every candidate trains on the book model's data (Tiny Shakespeare + WikiText-2, its recipe's
split) for the same number of training FLOPs (``6 N + 12 L T d`` per token, as in
``train_step.py``), so a bigger model sees fewer tokens. The one with the lowest held-out loss
for the budget wins. Runs go two at a time, one thread each (both cores busy, no contention for
the threads of one run). Results: ``results/book_model_sweep.json``.

Usage: python bench/book_model_sweep.py [--flops 1.6e13] [--only NAME]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

import mygpt
from mygpt.zoo import ZOO, Recipe, held_out_losses, train_recipe

RESULTS = Path(__file__).parent / "results" / "book_model_sweep.json"
TOKENS_PER_STEP = 2048  # batch x context: every candidate takes the same tokens per step

#: name -> (n_layer, n_embd, n_head, context_length)
CANDIDATES = {
    "4x256, T=256": (4, 256, 4, 256),
    "6x256, T=256": (6, 256, 4, 256),
    "4x384, T=256": (4, 384, 6, 256),
    "4x256, T=512": (4, 256, 4, 512),
}


def flops_per_token(cfg: mygpt.GPTConfig) -> float:
    """Training FLOPs per token: 6 per weight of every matrix product (the output layer
    included, the embedding lookups not) plus attention's scores and weighted sums."""
    d, L, T = cfg.n_embd, cfg.n_layer, cfg.context_length
    matmul_params = 12 * L * d * d + cfg.vocab_size * d
    return 6 * matmul_params + 12 * L * T * d


def candidate_recipe(name: str, flops: float) -> Recipe:
    n_layer, n_embd, n_head, T = CANDIDATES[name]
    base = ZOO["book"]
    model = base.model.replace(
        n_layer=n_layer, n_embd=n_embd, n_head=n_head, context_length=T, dropout=0.0
    )  # well under one pass over the text: no dropout
    steps = int(flops / flops_per_token(model) / TOKENS_PER_STEP)
    train = dataclasses.replace(
        base.train,
        max_steps=steps,
        warmup_steps=min(30, steps // 10),
        eval_every=max(1, steps // 8),
        eval_batches=8,
        checkpoint_every=None,
        log=False,
    )
    return dataclasses.replace(
        base, model=model, train=train, batch_size=TOKENS_PER_STEP // T, stride=None, threads=1
    )


def run_one(name: str, flops: float) -> dict:
    return train_and_measure(name, candidate_recipe(name, flops))


def train_and_measure(name: str, recipe: Recipe, checkpoint_dir: Path | None = None) -> dict:
    """Train ``recipe`` from scratch (with ``checkpoint_dir``: resuming from its last
    checkpoint), then measure its loss on each source's whole held-out part (as the shipped
    model's ``held_out.json`` does)."""
    t0 = time.perf_counter()
    model, history = train_recipe(recipe, checkpoint_dir=checkpoint_dir)
    seconds = time.perf_counter() - t0
    torch.set_num_threads(recipe.threads)
    held_out = held_out_losses(model, recipe)["model"]
    return {
        "name": name,
        "model": recipe.model.to_dict(),
        "parameters": model.num_parameters(),
        "flops_per_token": flops_per_token(recipe.model),
        "steps": recipe.train.max_steps,
        "tokens": history.tokens[-1],
        "seconds": seconds,
        "tokens_per_s": history.tokens[-1] / seconds,
        "held_out": held_out,
        "history": dataclasses.asdict(history),
        "train": dataclasses.asdict(recipe.train),
    }


def save_run(path: Path, run: dict, threads: int) -> None:
    """Write one run's result (as :func:`train_and_measure` returns it) with where it ran, and
    print its held-out losses."""
    meta = {"machine": platform.processor() or platform.machine(), "torch": torch.__version__}
    path.write_text(json.dumps({**meta, "threads": threads, "run": run}, indent=1) + "\n")
    print(
        f"{run['tokens']:,} tokens; held-out "
        + ", ".join(f"{k} {v:.3f}" for k, v in run["held_out"].items())
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--flops", type=float, default=1.6e13)
    parser.add_argument("--only")
    args = parser.parse_args()
    if args.only:  # a worker: one candidate, result as JSON on stdout
        print(json.dumps(run_one(args.only, args.flops)))
        return
    runs, names = [], list(CANDIDATES)
    for i in range(0, len(names), 2):  # two at a time, one thread each
        procs = [
            subprocess.Popen(
                [sys.executable, __file__, "--only", n, "--flops", str(args.flops)],
                stdout=subprocess.PIPE,
                text=True,
            )
            for n in names[i : i + 2]
        ]
        for p in procs:
            out, _ = p.communicate()
            if p.returncode:
                sys.exit(f"a sweep run failed (exit {p.returncode})")
            runs.append(json.loads(out.strip().splitlines()[-1]))
            r = runs[-1]
            print(
                f"{r['name']:14s} {r['tokens']:8,d} tokens {r['seconds']:6.0f} s  held-out "
                + "  ".join(f"{k} {v:.3f}" for k, v in r["held_out"].items()),
                flush=True,
            )
    RESULTS.write_text(
        json.dumps(
            {
                "flops": args.flops,
                "machine": platform.processor() or platform.machine(),
                "torch": torch.__version__,
                "mean_held_out": {r["name"]: sum(r["held_out"].values()) / 2 for r in runs},
                "runs": runs,
            },
            indent=1,
        )
        + "\n"
    )
    best = min(runs, key=lambda r: sum(r["held_out"].values()))
    print("lowest held-out loss:", best["name"], f"(compute {args.flops:.2g} FLOPs each)")


if __name__ == "__main__":
    main()
