"""What the book model's held-out loss is made of: tokens its training text never contains.

A held-out token that never occurs in the training text is one the model was only ever taught
to rule out (every training step lowers its probability, since it is never the right answer).
This splits the shipped model's loss on each source's held-out part between those tokens and
the rest, and sets beside them two floors. Its never-seen tokens are indistinguishable to the
model (their embeddings only ever learned to be unlikely), so even a model that knew exactly
where a new token comes could not tell which of the ``U`` never-seen tokens it is: at least
``ln U`` nats each, ``q * ln U`` on the mean if a share ``q`` of held-out tokens is new. A model
that knows only how often a new token comes, and spreads that probability evenly, pays
``ln(U / q)`` each. For scale, it also scores as many tokens from the start of each source's
training part. Runs in about two minutes. Results: ``results/book_model_unseen.json``.

Usage: python bench/book_model_unseen.py
"""

from __future__ import annotations

import dataclasses
import json
import math
import platform
from pathlib import Path

import torch
import torch.nn.functional as F

import mygpt
from mygpt.data import create_dataloader
from mygpt.device import at_least_float32
from mygpt.zoo import pretrained_recipe, recipe_loaders

RESULTS = Path(__file__).parent / "results" / "book_model_unseen.json"


@torch.no_grad()
def token_losses(model: mygpt.GPT, loader) -> tuple[torch.Tensor, torch.Tensor]:
    """Every target of ``loader`` and the model's loss on it (nats), in the loader's order."""
    targets, losses = [], []
    for x, y in loader:
        logits = at_least_float32(model(x).flatten(0, 1))
        losses.append(F.cross_entropy(logits, y.flatten(), reduction="none"))
        targets.append(y.flatten())
    return torch.cat(targets), torch.cat(losses).double()


def breakdown(model: mygpt.GPT, recipe) -> dict:
    """Per source: the held-out loss split by whether the target occurs in the training text."""
    train_ids = recipe_loaders(recipe)[0].dataset.ids  # every source's training part
    seen = torch.zeros(recipe.model.vocab_size, dtype=torch.bool)
    seen[train_ids.flatten()] = True
    never_seen = int((~seen).sum())
    out = {"vocab_size": recipe.model.vocab_size, "never_seen_types": never_seen, "sources": {}}
    for source in recipe.sources:
        train_loader, val_loader = recipe_loaders(dataclasses.replace(recipe, data=(source,)))
        targets, losses = token_losses(model, val_loader)
        new = ~seen[targets]
        # as many tokens of text the model trained on, cut into windows the same way
        train_part = train_loader.dataset.ids[: len(targets) + 1]
        T, B = recipe.model.context_length, recipe.batch_size
        _, train_losses = token_losses(model, create_dataloader(train_part, B, T, shuffle=False))
        share = float(new.double().mean())
        out["sources"][source] = {
            "tokens": len(targets),
            "unseen_tokens": int(new.sum()),
            "unseen_share": share,
            "mean": float(losses.mean()),
            "unseen_mean": float(losses[new].mean()),
            "seen_mean": float(losses[~new].mean()),
            "unseen_added": float(losses[new].sum() / len(losses)),
            "unseen_floor_each": math.log(never_seen),
            "unseen_floor_added": share * math.log(never_seen),
            "unseen_rate_only_each": math.log(never_seen / share),
            "unseen_rate_only_added": share * math.log(never_seen / share),
            "train_part_mean": float(train_losses.mean()),
        }
    return out


def main() -> None:
    torch.set_num_threads(2)
    recipe = pretrained_recipe("book")
    result = breakdown(mygpt.book_model(), recipe)
    meta = {"machine": platform.processor() or platform.machine(), "torch": torch.__version__}
    RESULTS.write_text(json.dumps({**meta, **result}, indent=1) + "\n")
    for source, r in result["sources"].items():
        print(
            f"{source}: mean {r['mean']:.3f}; {r['unseen_share']:.1%} of tokens never seen in "
            f"training cost {r['unseen_mean']:.2f} each (floor {r['unseen_floor_each']:.2f}) and "
            f"add {r['unseen_added']:.3f}; the rest {r['seen_mean']:.3f}; "
            f"on training text {r['train_part_mean']:.3f}"
        )


if __name__ == "__main__":
    main()
