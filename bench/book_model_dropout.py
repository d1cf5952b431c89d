"""Is the book model held back by too little regularisation? Its recipe again, with dropout 0.2.

The shipped model fits its training text much better than held-out text (it sees each token
about five times). If that gap were overfitting that regularisation can cure, twice the dropout
should lower the held-out loss. This trains ``mygpt.zoo.ZOO["book"]`` with dropout 0.2 instead
of 0.1 and nothing else changed (the same 1,700 steps and seeds: about 80 minutes on two CPU
cores), in the directory where ``python -m mygpt zoo build book`` would put that recipe, with a
checkpoint every 100 steps: run it again to resume after an interruption. Held-out losses are
measured as the shipped ``held_out.json`` measures them.
Results: ``results/book_model_dropout.json``.

Usage: python bench/book_model_dropout.py
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from book_model_sweep import save_run, train_and_measure

from mygpt.paths import cache_dir
from mygpt.zoo import ZOO, Recipe

RESULTS = Path(__file__).parent / "results" / "book_model_dropout.json"
DROPOUT = 0.2


def dropout_recipe() -> Recipe:
    """The book's recipe with :data:`DROPOUT` instead of its own dropout."""
    base = ZOO["book"]
    return dataclasses.replace(base, model=base.model.replace(dropout=DROPOUT))


def main() -> None:
    recipe = dropout_recipe()
    run_dir = cache_dir() / "models" / f"book-{recipe.key()}.run"  # as `zoo build` names it
    print(f"training the book's recipe with dropout {DROPOUT} in {run_dir} ...", flush=True)
    run = train_and_measure(f"dropout {DROPOUT}", recipe, checkpoint_dir=run_dir)
    for timing in ("seconds", "tokens_per_s"):  # a resumed run would time only its last part
        del run[timing]
    save_run(RESULTS, run, recipe.threads)


if __name__ == "__main__":
    main()
