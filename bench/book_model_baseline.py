"""What the book model's long run buys: the same model trained briefly at a constant rate.

The book's model (``mygpt.zoo.ZOO["book"]``) trains for over an hour with warmup, a cosine
schedule and windows that overlap. This baseline keeps its architecture, data, batch and dropout
and changes the rest to the simplest choice: a constant learning rate of 1e-3 from the first
step, no overlap between windows, and 300 steps (614,400 tokens, about 12 minutes on two CPU
cores). Its held-out losses, measured as the shipped ``held_out.json`` measures them, show how
much of the shipped model's loss is due to the recipe and the longer run.
Results: ``results/book_model_baseline.json``.

Usage: python bench/book_model_baseline.py
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from book_model_sweep import save_run, train_and_measure

from mygpt.zoo import ZOO, Recipe

RESULTS = Path(__file__).parent / "results" / "book_model_baseline.json"
STEPS = 300
LR = 1e-3


def baseline_recipe() -> Recipe:
    """The book's recipe with a constant rate, no window overlap and :data:`STEPS` steps."""
    base = ZOO["book"]
    train = dataclasses.replace(
        base.train,
        max_steps=STEPS,
        lr=LR,
        min_lr=LR,  # the cosine from LR to LR: constant
        warmup_steps=0,
        eval_every=STEPS // 3,
        checkpoint_every=None,
    )
    return dataclasses.replace(base, train=train, stride=None)


def main() -> None:
    recipe = baseline_recipe()
    print(
        f"training the book model's architecture for {STEPS} steps at a constant lr {LR:g} "
        f"({STEPS * recipe.batch_size * recipe.model.context_length:,} tokens)...",
        flush=True,
    )
    run = train_and_measure("constant lr, 300 steps", recipe)
    print(f"trained in {run['seconds'] / 60:.1f} min")
    save_run(RESULTS, run, recipe.threads)


if __name__ == "__main__":
    main()
