"""Chapter 7's experiments: the plan, and the command that runs it and ships the results.

Every run is an :class:`mygpt.ExperimentSpec`: a byte-level GPT trained on Tiny Shakespeare for
a fixed token budget from :data:`BASE`, with one setting changed, for each of :data:`SEEDS`.
The runs take hours in all, too long for a page, so they are *shipped*: each finished run is
written to ``mygpt/results/runs/<key>.json`` (:func:`mygpt.experiments.ship_experiment`), and
the chapter's ``run_experiment`` calls read them there instead of training. The chapter re-runs
one cheap run live and checks that it lands on the stored value.

From the repository root:

    python mygpt/results/ch7_sweeps.py             # run every missing run, two at a time
    python mygpt/results/ch7_sweeps.py --list      # the plan: which runs are shipped
    python mygpt/results/ch7_sweeps.py --jobs 1    # one at a time (one core)

Each run uses one thread, so two side by side use both cores of a laptop. Interrupt it at any
time: finished runs are on disk, and the next call runs only what is missing.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time

from mygpt.config import GPTConfig
from mygpt.experiments import ExperimentSpec, is_shipped, ship_experiment

#: The base run: 4 blocks, 128 wide, 4 heads, 128 bytes of context, 16 windows per step.
BASE = ExperimentSpec(
    model=GPTConfig(
        vocab_size=256, context_length=128, n_embd=128, n_layer=4, n_head=4, dropout=0.0
    ),
    lr=3e-3,
    min_lr_frac=0.1,
    warmup_steps=50,
    weight_decay=0.1,
    token_budget=1_048_576,
    tokens_per_step=2048,
    eval_points=16,
    eval_tokens=16_384,
    dtype="float32",
)

SEEDS = (0, 1, 2)

#: Each sweep: a name, and the changes to BASE that make its settings (one dict per setting).
SWEEPS: dict[str, list[dict]] = {
    "heads": [dict(n_head=h) for h in (1, 2, 4, 8)],
    "lr": [dict(lr=lr) for lr in (3e-4, 1e-3, 3e-3, 1e-2, 3e-2)],
    "lr-no-warmup": [dict(lr=lr, warmup_steps=0) for lr in (3e-4, 1e-3, 3e-3, 1e-2, 3e-2)],
    # Several passes over a short piece of the text, where there is something to overfit.
    "weight-decay": [dict(train_frac=0.02, weight_decay=wd) for wd in (0.0, 0.1, 0.3, 1.0)],
    "context": [dict(context_length=t) for t in (16, 32, 64, 128, 256)],
    # About the same parameters in the blocks (12 L d^2 = 786,432), shaped differently.
    "depth-width": [
        dict(n_layer=1, n_embd=256, n_head=8),
        dict(n_layer=4, n_embd=128, n_head=4),
        dict(n_layer=16, n_embd=64, n_head=2),
    ],
    "norm": [dict(norm="pre"), dict(norm="post")],
    # Post-LN again at a third of the rate: is it the block, or the block at this rate?
    "norm-lr-1e-3": [dict(norm="pre", lr=1e-3), dict(norm="post", lr=1e-3)],
    "tied": [dict(tie_weights=True), dict(tie_weights=False)],
    "activation": [dict(activation="gelu"), dict(activation="relu")],
    "positions": [dict(positions="learned"), dict(positions="none")],
    # The smallest model of "size" at the rates around its best (its 3e-3 run is in "size").
    "lr-small": [dict(n_layer=2, n_embd=64, n_head=2, lr=lr) for lr in (1e-3, 1e-2, 3e-2)],
    "size": [
        dict(n_layer=2, n_embd=64, n_head=2),
        dict(n_layer=4, n_embd=128, n_head=4),
        dict(n_layer=6, n_embd=192, n_head=6),
    ],
}


def spec(changes: dict, seed: int) -> ExperimentSpec:
    """The run of one setting and seed."""
    return BASE.replace(**changes, seed=seed)


def plan() -> list[ExperimentSpec]:
    """Every distinct run of every sweep (a setting shared by two sweeps is run once)."""
    runs = {}
    for settings in SWEEPS.values():
        for changes in settings:
            for seed in SEEDS:
                s = spec(changes, seed)
                runs.setdefault(s.key(), s)
    return list(runs.values())


def _ship(s: ExperimentSpec) -> float:
    t0 = time.perf_counter()
    ship_experiment(s)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", action="store_true", help="show the plan and stop")
    parser.add_argument("--jobs", type=int, default=2, help="runs side by side (default 2)")
    args = parser.parse_args(argv)
    runs = plan()
    missing = [s for s in runs if not is_shipped(s)]
    print(f"{len(runs)} runs in the plan, {len(runs) - len(missing)} shipped, "
          f"{len(missing)} to run", flush=True)  # fmt: skip
    if args.list:
        for name, settings in SWEEPS.items():
            done = sum(is_shipped(spec(c, seed)) for c in settings for seed in SEEDS)
            print(f"  {name:>13}: {len(settings)} settings x {len(SEEDS)} seeds, {done} shipped")
        return 0
    started = time.perf_counter()
    # spawn: a fresh interpreter per worker, so no thread pool or RNG state is inherited.
    with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
        for done, seconds in enumerate(pool.imap_unordered(_ship, missing), 1):
            elapsed = time.perf_counter() - started
            eta = elapsed / done * (len(missing) - done)
            print(f"[{done}/{len(missing)}] run took {seconds:.0f} s; "
                  f"{elapsed / 60:.0f} min so far, about {eta / 60:.0f} min to go", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
