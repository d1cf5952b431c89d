"""The book's small pretrained model: one call returns it from a cache, or trains it when missing.

Chapters open one at a time (on Colab, in a fresh runtime), yet several of them need a model that
has already learned some language. :func:`small_pretrained` gives every chapter the same one:

1. Each model is a *recipe* in :data:`ZOO`: architecture (``GPTConfig``), training settings
   (``TrainConfig``), data and seed, frozen in a :class:`Recipe`.
2. The cache key is a hash of the whole recipe (plus the data file's SHA-256), so changing any
   part of it trains a new model instead of silently reusing a stale one.
3. When ``$MYGPT_CACHE_DIR/models/<name>-<key>/`` (default ``~/.cache/mygpt``) exists, the model
   is loaded from it. Otherwise it is trained on the CPU with fixed seeds, which makes the weights
   the same on every machine (the book's stored outputs depend on that), and saved: into a
   temporary directory first, renamed into place when complete, so an interrupted training never
   leaves a half-written model under the real name.

Beside the weights (``model.safetensors``, ``config.json``) the directory holds ``recipe.json``
(what was trained) and ``history.json`` (the losses measured during training, see
:func:`pretrained_history`). Neither call changes the caller's random number generators, and the
one line printed with ``verbose=True`` is the same whether the model was trained or loaded.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .checkpoint import load_model, write_directory, write_json, write_model_files
from .config import GPTConfig
from .data import create_dataloader, train_val_split
from .device import dtype_named
from .errors import CheckpointError, ConfigError
from .files import REGISTRY, read_text
from .model import GPT
from .paths import cache_dir
from .training import History, TrainConfig, train

#: Bump when the training procedure changes in a way the recipe does not capture (e.g. how the
#: data are split), so that every cached model is retrained.
PROCEDURE_VERSION = 1

HISTORY_NAME = "history.json"
RECIPE_NAME = "recipe.json"


@dataclass(frozen=True)
class Recipe:
    """Everything that determines one small pretrained model.

    Attributes:
        model: the architecture.
        train: optimizer, schedule and length of training (``max_steps``).
        data: a :data:`mygpt.files.REGISTRY` text file to train on.
        train_frac: the first ``train_frac`` of the text (by characters) is training data, the rest
            validation data (see :func:`mygpt.train_val_split`).
        batch_size: windows per training batch; each window is ``model.context_length`` tokens.
        seed: seeds the weight initialisation and dropout (``train.seed`` seeds the data order).
        threads: CPU threads to train with. PyTorch splits sums (matrix products, softmax) among
            its threads, so the last bits of the results depend on their number; fixing it makes
            the weights the same on a 2-core laptop and a 64-core server (measured here: 1 and 2
            threads end 0.015 apart in validation loss).
        description: one line for humans; not part of the cache key.
    """

    model: GPTConfig
    train: TrainConfig
    data: str = "tinyshakespeare"
    train_frac: float = 0.9
    batch_size: int = 8
    seed: int = 123
    threads: int = 2
    dtype: str = "float64"
    description: str = field(default="", compare=False)

    def spec(self) -> dict:
        """The recipe as plain JSON-able data: what the cache key hashes and ``recipe.json`` holds."""
        if self.data not in REGISTRY:
            raise ConfigError(
                f"Recipe data {self.data!r} is not a registered data file; "
                f"known: {', '.join(sorted(REGISTRY))}."
            )
        dtype_named(self.dtype)  # a ConfigError for an unknown type
        return {
            "procedure": PROCEDURE_VERSION,
            "model": self.model.to_dict(),
            "train": dataclasses.asdict(self.train),
            "data": self.data,
            "data_sha256": REGISTRY[self.data].sha256,  # another text means another model
            "train_frac": self.train_frac,
            "batch_size": self.batch_size,
            "seed": self.seed,
            "threads": self.threads,
            "dtype": self.dtype,
        }

    def key(self) -> str:
        """A short hash of :meth:`spec`: equal recipes share a key, any change gives a new one."""
        text = json.dumps(self.spec(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:12]


#: The book's small models, by name. ``shakespeare-small`` is the one the chapters use: four
#: blocks, 128 wide, GPT-2's tokenizer and vocabulary, trained in float64 for about three
#: minutes on two CPU cores (most of the compute goes to the 50,257-way output layer, which is
#: why it is narrow). Its size is set by chapter 4's time budget, not by quality: 720 steps
#: instead of 288 lower the validation loss from 6.0 to 5.7 (measured in float32).
ZOO: dict[str, Recipe] = {
    "shakespeare-small": Recipe(
        model=GPTConfig(
            vocab_size=50257, context_length=256, n_embd=128, n_layer=4, n_head=4, dropout=0.0
        ),
        # One window per step: this early in training, many small steps learn more per token than
        # fewer large ones (measured at lr 1e-2 after 102,400 tokens: validation loss 6.20 with
        # one window per step, 6.31 with two). 288 steps: 73,728 tokens, about 830 tokens/s.
        train=TrainConfig(
            max_steps=288,
            lr=5e-3,
            min_lr=5e-4,
            warmup_steps=10,
            weight_decay=0.1,
            grad_clip=1.0,
            eval_every=72,
            eval_batches=16,
            seed=123,
            log=False,
        ),
        data="tinyshakespeare",
        train_frac=0.9,
        batch_size=1,
        seed=123,
        description="4 blocks x 128 wide, GPT-2 vocabulary, trained on Tiny Shakespeare",
    ),
}


def _recipe(name: str) -> Recipe:
    if name not in ZOO:
        raise ConfigError(f"Unknown small model {name!r}. Known names: {', '.join(sorted(ZOO))}.")
    return ZOO[name]


def model_dir(name: str = "shakespeare-small") -> Path:
    """Where the model ``name`` is (or will be) cached: ``<cache>/models/<name>-<key>``."""
    return cache_dir() / "models" / f"{name}-{_recipe(name).key()}"


def train_recipe(recipe: Recipe) -> tuple[GPT, History]:
    """Train ``recipe`` from scratch on the CPU and return the model (eval mode) and its history.

    Deterministic: the same recipe gives bit-identical weights on every run (on CPUs with the same
    instruction set). The caller's global random state and thread count are restored afterwards,
    so calling this does not change what later code draws or how it runs.
    """
    text = read_text(recipe.data)
    train_text, val_text = train_val_split(text, recipe.train_frac)
    T = recipe.model.context_length
    train_loader = create_dataloader(train_text, recipe.batch_size, T, seed=recipe.train.seed)
    # Validation in a fixed order, so "the first eval_batches batches" is always the same text.
    val_loader = create_dataloader(val_text, recipe.batch_size, T, shuffle=False, drop_last=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(recipe.threads)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(recipe.seed)
            model = GPT(recipe.model).to(dtype_named(recipe.dtype))
            history = train(
                model, train_loader, val_loader, cfg=recipe.train, device=torch.device("cpu")
            )
    finally:
        torch.set_num_threads(threads)
    return model.eval(), history


def _save(directory: Path, model: GPT, history: History, recipe: Recipe) -> None:
    """Write the model, its history and recipe as ``directory``, whole (see
    :func:`mygpt.checkpoint.write_directory`): a crash never leaves a half-written model."""

    def fill(tmp: Path) -> None:
        write_model_files(model, tmp)
        write_json(dataclasses.asdict(history), tmp / HISTORY_NAME)
        write_json(dict(recipe.spec(), description=recipe.description), tmp / RECIPE_NAME)

    write_directory(directory, fill)


#: Where the package ships the weights its recipes produced (``mygpt/models/<name>/``).
SHIPPED_DIR = Path(__file__).resolve().parent / "models"


def shipped_dir(name: str) -> Path | None:
    """The shipped copy of ``name``, or ``None`` when there is none for its current recipe.

    A long training run is chaotic: rounding differences between processors (AVX-512 or AVX2,
    thread counts) grow step by step until two machines end with different weights, even in
    float64. So the package ships the weights its recipe produced once, stored in float16, and
    every machine loads those same numbers. A shipped copy counts only while its ``recipe.json``
    matches the recipe (same key); a changed recipe trains anew.
    """
    directory = SHIPPED_DIR / name
    try:
        spec = json.loads((directory / RECIPE_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    spec.pop("description", None)
    expected = json.loads(json.dumps(_recipe(name).spec()))  # as JSON holds it (tuples: lists)
    return directory if spec == expected else None


def _ensure(name: str) -> Path:
    """The directory of ``name``: the shipped copy, else the cache (training it if missing)."""
    shipped = shipped_dir(name)
    if shipped is not None:
        return shipped
    directory = model_dir(name)
    if not (directory / HISTORY_NAME).is_file():
        model, history = train_recipe(_recipe(name))
        _save(directory, model, history, _recipe(name))
    return directory


def ship(name: str = "shakespeare-small") -> Path:
    """Write the model ``name`` (from the cache, trained first if missing) into the package,
    in float16: ``mygpt/models/<name>/``. Run by hand (``python -m mygpt.zoo ship NAME``) after
    a recipe changes; the result is committed with the package."""
    directory = model_dir(name)
    if not (directory / HISTORY_NAME).is_file():
        directory = _ensure(name)
    model = load_model(directory).half()
    _save(SHIPPED_DIR / name, model, _read_history(directory), _recipe(name))
    return SHIPPED_DIR / name


def _read_history(directory: Path) -> History:
    try:
        return History(**json.loads((directory / HISTORY_NAME).read_text()))
    except (OSError, json.JSONDecodeError, TypeError) as e:
        raise CheckpointError(
            f"{directory / HISTORY_NAME} is unreadable ({e}); delete {directory} "
            f"to train the model again."
        ) from e


def small_pretrained(name: str = "shakespeare-small", device=None, verbose: bool = True) -> GPT:
    """The book's small pretrained model ``name`` (see :data:`ZOO`), in eval mode.

    Loaded from the cache when it is there; otherwise trained first (on the CPU, deterministically:
    about three minutes for ``shakespeare-small``, with a progress bar unless ``TQDM_DISABLE=1``)
    and cached. Either way the result is the same weights, and with ``verbose`` the same one line
    is printed. ``device``: where the returned model lives (default: CPU). The caller's random
    number generators are left as they were.
    """
    directory = _ensure(name)
    with torch.random.fork_rng(devices=[]):  # building a GPT draws its (discarded) initial weights
        try:
            model = load_model(directory, device=device)
        except CheckpointError as e:
            raise CheckpointError(f"{e} Delete {directory} to train the model again.") from e
    if verbose:
        history = _read_history(directory)
        print(
            f"{name}: {model.num_parameters() / 1e6:.1f}M parameters, trained on "
            f"{history.tokens[-1]:,} tokens of {_recipe(name).data}, "
            f"validation loss {history.val_loss[-1]:.3f}"
        )
    return model.eval()


def pretrained_history(name: str = "shakespeare-small") -> History:
    """The losses recorded while ``name`` was trained (training it first if it is not cached)."""
    return _read_history(_ensure(name))


def pretrained_recipe(name: str = "shakespeare-small") -> Recipe:
    """The :class:`Recipe` of the small model ``name``."""
    return _recipe(name)


if __name__ == "__main__":  # python -m mygpt.zoo ship [NAME]
    import sys

    if len(sys.argv) < 2 or sys.argv[1] != "ship":
        sys.exit("usage: python -m mygpt.zoo ship [NAME]   (NAME: " + ", ".join(ZOO) + ")")
    print(ship(*sys.argv[2:3]))
