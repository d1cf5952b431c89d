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
import math
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .checkpoint import directory_kind, load_model, write_directory, write_json, write_model_files
from .config import GPTConfig
from .corpus import source_files, source_split
from .data import create_dataloader
from .device import dtype_named, get_device
from .errors import CheckpointError, ConfigError
from .files import REGISTRY, sha256_of
from .model import GPT
from .paths import cache_dir
from .pretrained import load_pretrained, save_pretrained
from .training import History, TrainConfig, evaluate, latest_checkpoint, train, unigram_loss

#: Bump when the training procedure changes in a way the recipe does not capture (e.g. how the
#: data are split), so that every cached model is retrained.
PROCEDURE_VERSION = 1

HISTORY_NAME = "history.json"
RECIPE_NAME = "recipe.json"
HELD_OUT_NAME = "held_out.json"  # the final loss on each source's whole held-out part
BUILD_NAME = "build.json"  # where and how fast it was trained, one entry per session

#: SHA-256 of each shipped ``model.safetensors`` that is checked on load (a damaged or
#: hand-edited copy is refused). ``python -m mygpt zoo ship NAME`` prints the line to put here.
SHIPPED_SHA256: dict[str, str] = {
    "book": "d4226780ee1b5190ee2e6d46381b32d830d9098fda6ae87470d8fca0f165c983",
}


@dataclass(frozen=True)
class Recipe:
    """Everything that determines one small pretrained model.

    Attributes:
        model: the architecture.
        train: optimizer, schedule and length of training (``max_steps``).
        data: a text source of :data:`mygpt.corpus.SOURCES` to train on, or a tuple of several
            (their training parts are joined, and so are their held-out parts).
        train_frac: the first ``train_frac`` of each source (by characters) is training data,
            the rest held out for validation (see :func:`mygpt.corpus.source_split`).
        batch_size: windows per training batch; each window is ``model.context_length`` tokens.
        stride: tokens between the starts of consecutive training windows (``None``: the
            context length, no overlap). A smaller stride gives more distinct windows per pass,
            which matters when training runs over the text many times.
        seed: seeds the weight initialisation and dropout (``train.seed`` seeds the data order).
        threads: CPU threads to train with. PyTorch splits sums (matrix products, softmax) among
            its threads, so the last bits of the results depend on their number; fixing it makes
            the weights the same on a 2-core laptop and a 64-core server (measured here: 1 and 2
            threads end 0.015 apart in validation loss).
        description: one line for humans; not part of the cache key.
        shipped_layout: how :func:`ship` writes the model into the package: ``"mygpt"``
            (:func:`mygpt.save_model`) or ``"hub"`` (GPT-2's Hugging Face layout,
            :func:`mygpt.pretrained.save_pretrained`). Not part of the cache key.
    """

    model: GPTConfig
    train: TrainConfig
    data: str | tuple[str, ...] = "tinyshakespeare"
    train_frac: float = 0.9
    batch_size: int = 8
    seed: int = 123
    threads: int = 2
    dtype: str = "float64"
    stride: int | None = None
    description: str = field(default="", compare=False)
    shipped_layout: str = field(default="mygpt", compare=False)

    @property
    def sources(self) -> tuple[str, ...]:
        return (self.data,) if isinstance(self.data, str) else tuple(self.data)

    def spec(self) -> dict:
        """The recipe as plain JSON-able data: what the cache key hashes and ``recipe.json`` holds.

        Fields added after the first models were shipped (several sources, ``stride``) enter
        only when set, so the keys of the recipes that do not use them stay what they were.
        """
        for source in self.sources:
            source_files(source)  # a ConfigError for an unknown source
        dtype_named(self.dtype)  # a ConfigError for an unknown type
        if isinstance(self.data, str):  # one source of one file: its hash, as first written
            (sha,) = source_files(self.data).values()
            data = {"data": self.data, "data_sha256": sha}
        else:  # another text means another model
            files = {f: h for source in self.sources for f, h in source_files(source).items()}
            data = {"data": list(self.sources), "data_sha256": files}
        spec = {
            "procedure": PROCEDURE_VERSION,
            "model": self.model.to_dict(),
            "train": dataclasses.asdict(self.train),
            **data,
            "train_frac": self.train_frac,
            "batch_size": self.batch_size,
            "seed": self.seed,
            "threads": self.threads,
            "dtype": self.dtype,
        }
        if self.stride is not None:
            spec["stride"] = self.stride
        return spec

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
    "book": Recipe(
        # Shape chosen by bench/book_model_sweep.py (lowest held-out loss at fixed compute).
        model=GPTConfig(
            vocab_size=50257, context_length=256, n_embd=256, n_layer=4, n_head=4, dropout=0.1
        ),
        # Several passes over the text (about 0.8M training tokens): dropout, and windows that
        # start every 128 tokens so that each pass cuts the text differently.
        # 1,700 steps of 8 x 256 tokens: 3.5M tokens, about 5 passes over the training text.
        # Every evaluation reads all of the held-out text of both sources (80k tokens).
        train=TrainConfig(
            max_steps=1700,
            lr=2e-3,
            min_lr=1e-4,
            warmup_steps=100,
            weight_decay=0.1,
            grad_clip=1.0,
            eval_every=200,
            eval_batches=None,
            checkpoint_every=100,
            seed=123,
            log=True,
        ),
        data=("tinyshakespeare", "wikitext2"),
        train_frac=0.9,
        batch_size=8,
        seed=123,
        threads=2,
        dtype="float32",
        stride=128,
        description="4 blocks x 256 wide, GPT-2 vocabulary, Shakespeare + WikiText-2",
        shipped_layout="hub",
    ),
}


def _recipe(name: str) -> Recipe:
    if name not in ZOO:
        raise ConfigError(f"Unknown small model {name!r}. Known names: {', '.join(sorted(ZOO))}.")
    return ZOO[name]


def model_dir(name: str = "shakespeare-small") -> Path:
    """Where the model ``name`` is (or will be) cached: ``<cache>/models/<name>-<key>``."""
    return cache_dir() / "models" / f"{name}-{_recipe(name).key()}"


def recipe_loaders(recipe: Recipe):
    """``(train_loader, val_loader)`` of ``recipe``: shuffled training windows (seeded by
    ``recipe.train.seed``), and the held-out windows of every source in a fixed order, so that
    "the first ``eval_batches`` batches" is always the same text."""
    splits = [source_split(source, recipe.train_frac) for source in recipe.sources]
    train_text = "\n\n".join(train for train, _ in splits)
    val_text = "\n\n".join(val for _, val in splits)
    T, B = recipe.model.context_length, recipe.batch_size
    train_loader = create_dataloader(train_text, B, T, stride=recipe.stride, seed=recipe.train.seed)
    val_loader = create_dataloader(val_text, B, T, shuffle=False, drop_last=False)
    return train_loader, val_loader


def train_recipe(
    recipe: Recipe, device=None, checkpoint_dir: Path | None = None
) -> tuple[GPT, History]:
    """Train ``recipe`` from scratch and return the model (eval mode) and its history.

    On the CPU (the default) deterministic: the same recipe gives bit-identical weights on every
    run (on CPUs with the same instruction set). With ``checkpoint_dir``, a checkpoint is saved
    every ``recipe.train.checkpoint_every`` steps and an interrupted run continues from the last
    one. The caller's global random state and thread count are restored afterwards, so calling
    this does not change what later code draws or how it runs.
    """
    train_loader, val_loader = recipe_loaders(recipe)
    device = torch.device(device or "cpu")
    threads = torch.get_num_threads()
    torch.set_num_threads(recipe.threads)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(recipe.seed)
            model = GPT(recipe.model).to(device, dtype_named(recipe.dtype))
            history = train(
                model,
                train_loader,
                val_loader,
                cfg=recipe.train,
                device=device,
                checkpoint_dir=checkpoint_dir,
                resume=checkpoint_dir is not None,
            )
    finally:
        torch.set_num_threads(threads)
    return model.eval(), history


def _save(
    directory: Path,
    model: GPT,
    history: History,
    recipe: Recipe,
    extra: dict[str, dict] | None = None,
    layout: str = "mygpt",
) -> None:
    """Write the model, its history and recipe (and ``extra`` JSON files, by name) as
    ``directory``, whole (see :func:`mygpt.checkpoint.write_directory`): a crash never leaves a
    half-written model. ``layout="hub"`` writes GPT-2's Hub layout in float16."""

    def fill(tmp: Path) -> None:
        if layout == "hub":
            hub = save_pretrained(model, tmp / "hub", dtype=torch.float16)
            for f in hub.iterdir():
                f.rename(tmp / f.name)
            hub.rmdir()
        else:
            write_model_files(model, tmp)
        write_json(dataclasses.asdict(history), tmp / HISTORY_NAME)
        write_json(dict(recipe.spec(), description=recipe.description), tmp / RECIPE_NAME)
        for file_name, data in (extra or {}).items():
            write_json(data, tmp / file_name)

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
    if spec != expected:
        return None
    if (
        name in SHIPPED_SHA256
        and sha256_of(directory / "model.safetensors") != SHIPPED_SHA256[name]
    ):
        raise CheckpointError(
            f"The shipped model {directory / 'model.safetensors'} does not have the SHA-256 the "
            f"package expects (damaged or edited copy); reinstall mygpt, or rebuild it with "
            f"python -m mygpt zoo build {name}."
        )
    return directory


def _ensure(name: str) -> Path:
    """The directory of ``name``: the shipped copy, else the cache (training it if missing)."""
    shipped = shipped_dir(name)
    if shipped is not None:
        return shipped
    directory = model_dir(name)
    if not (directory / HISTORY_NAME).is_file():
        if _recipe(name).train.checkpoint_every:  # hours of training: only when asked for
            raise CheckpointError(
                f"The model {name!r} is neither shipped for its current recipe nor built; "
                f"build it with: python -m mygpt zoo build {name}"
            )
        model, history = train_recipe(_recipe(name))
        _save(directory, model, history, _recipe(name))
    return directory


def held_out_losses(model: GPT, recipe: Recipe) -> dict[str, dict]:
    """The model's mean next-token loss (nats/token) on the whole held-out part of each source,
    beside two baselines that ignore context: the unigram loss (token frequencies of the training
    text) and a uniform guess over the vocabulary."""
    model_loss, unigram = {}, {}
    train_ids = recipe_loaders(recipe)[0].dataset.ids  # every source's training part
    for source in recipe.sources:
        _, val_loader = recipe_loaders(dataclasses.replace(recipe, data=(source,)))
        model_loss[source] = evaluate(model, val_loader)
        unigram[source] = unigram_loss(train_ids, val_loader.dataset.ids, recipe.model.vocab_size)
    return {
        "model": model_loss,
        "unigram": unigram,
        "uniform": math.log(recipe.model.vocab_size),
    }


def build(name: str, device=None) -> Path:
    """Train the model ``name`` by its recipe into the cache, resuming an interrupted build.

    For the long recipes (the book's model: about two hours on two CPU cores): a checkpoint
    every ``train.checkpoint_every`` steps in ``<cache>/models/<name>-<key>.run/``, so stopping
    (Ctrl-C) and running the same command again continues exactly where it stopped. ``device``:
    default the best available (:func:`mygpt.get_device`; on CUDA with bfloat16 autocast).
    At the end the whole held-out part of each source is evaluated, and the model is saved with
    its history, held-out losses and a log of the sessions that trained it (device, time,
    tokens/s). Returns the model's directory.
    """
    recipe, directory = _recipe(name), model_dir(name)
    if (directory / HISTORY_NAME).is_file():
        return directory
    run_dir = directory.parent / f"{directory.name}.run"
    device = torch.device(device) if device is not None else get_device()
    sessions_file = run_dir / BUILD_NAME
    sessions = json.loads(sessions_file.read_text()) if sessions_file.is_file() else []
    last = latest_checkpoint(run_dir) if run_dir.is_dir() else None
    start_step = int(last.name.split("-")[1]) if last is not None else 0
    print(f"building {name} ({recipe.description}) on {device}: {run_dir}", flush=True)
    t0 = time.perf_counter()
    model, history = train_recipe(recipe, device=device, checkpoint_dir=run_dir)
    seconds = time.perf_counter() - t0
    sessions.append({
        "device": str(device),
        "machine": torch.cuda.get_device_name(device) if device.type == "cuda"
        else platform.processor() or platform.machine(),
        "threads": recipe.threads if device.type == "cpu" else None,
        "torch": torch.__version__,
        "steps": [start_step, history.step[-1]],
        "seconds": round(seconds, 1),
        "tokens_per_s": round(
            (history.step[-1] - start_step) * recipe.batch_size * recipe.model.context_length
            / seconds, 1
        ),
    })  # fmt: skip
    write_json({"sessions": sessions}, sessions_file)
    print("evaluating the held-out text of each source...", flush=True)
    model = model.to("cpu", torch.float32)
    held_out = held_out_losses(model, recipe)
    print(
        "held-out loss (nats/token): "
        + ", ".join(f"{k} {v:.3f}" for k, v in held_out["model"].items())
        + " (unigram: "
        + ", ".join(f"{k} {v:.3f}" for k, v in held_out["unigram"].items())
        + ")"
    )
    _save(directory, model, history, recipe,
          {HELD_OUT_NAME: held_out, BUILD_NAME: {"sessions": sessions}})  # fmt: skip
    return directory


def ship(name: str = "shakespeare-small") -> Path:
    """Write the model ``name`` (from the cache, trained first if missing) into the package,
    in float16: ``mygpt/models/<name>/``, in the recipe's ``shipped_layout``. Run by hand
    (``python -m mygpt zoo ship NAME``) after a recipe changes; the result is committed with
    the package, and the printed SHA-256 goes into :data:`SHIPPED_SHA256`."""
    recipe, directory = _recipe(name), model_dir(name)
    if not (directory / HISTORY_NAME).is_file():
        directory = build(name) if recipe.train.checkpoint_every else _ensure(name)
    model = _load_dir(directory).half()
    extra = {
        f: json.loads((directory / f).read_text())
        for f in (HELD_OUT_NAME, BUILD_NAME)
        if (directory / f).is_file()
    }
    if HELD_OUT_NAME in extra:  # measured again on the float16 numbers that are shipped
        with torch.random.fork_rng(devices=[]):
            extra[HELD_OUT_NAME] = held_out_losses(_load_dir(directory).half().float(), recipe)
    target = SHIPPED_DIR / name
    _save(target, model, _read_history(directory), recipe, extra, layout=recipe.shipped_layout)
    if HELD_OUT_NAME in extra and BUILD_NAME in extra:  # a built model: write its model card
        (target / "README.md").write_text(model_card(name, target), encoding="utf-8")
    print(f'SHIPPED_SHA256["{name}"] = "{sha256_of(target / "model.safetensors")}"')
    return target


def model_card(name: str, directory: Path) -> str:
    """The model card (``README.md``) of the model ``name`` saved in ``directory``: what it is,
    its data and licences, how it was trained and how long, its held-out losses beside the
    baselines, the file's SHA-256, and how to rebuild it. Every number comes from the files."""
    recipe = _recipe(name)
    config = json.loads((directory / "config.json").read_text())
    history = _read_history(directory)
    held = json.loads((directory / HELD_OUT_NAME).read_text())
    sessions = json.loads((directory / BUILD_NAME).read_text())["sessions"]
    hours = sum(s["seconds"] for s in sessions) / 3600
    m, t = recipe.model, recipe.train
    params = m.num_parameters()
    data_rows = []
    for source in recipe.sources:
        files = ", ".join(
            f"{REGISTRY[f].description} (sha256 `{REGISTRY[f].sha256[:12]}…`)"
            for f in source_files(source)
        )
        data_rows.append(f"- **{source}**: {files}")
    loss_rows = "\n".join(
        f"| {source} | {held['model'][source]:.3f} | {math.exp(held['model'][source]):,.0f} | "
        f"{held['unigram'][source]:.3f} | {held['uniform']:.3f} |"
        for source in recipe.sources
    )
    where = "; ".join(
        f"{s['device']} ({s['machine']}, torch {s['torch']}): steps {s['steps'][0]}–"
        f"{s['steps'][1]} in {s['seconds'] / 60:.0f} min, {s['tokens_per_s']:,.0f} tokens/s"
        for s in sessions
    )
    sha = sha256_of(directory / "model.safetensors")
    return f"""# {name}: {recipe.description} (model card)

The book's own pretrained model: GPT-2's architecture and tokenizer, small enough to train on a
laptop CPU in a couple of hours, trained by the package's own recipe
(`mygpt.zoo.ZOO["{name}"]`, also in `recipe.json`) and shipped with it, so that every chapter
after pretraining starts from a model that has learned some English. Load it with
`mygpt.book_model()`, or as any GPT-2 checkpoint: `mygpt.load_pretrained(path)` or
`transformers.GPT2LMHeadModel.from_pretrained(path)`.

| | |
|---|---|
| Architecture | GPT-2 (pre-LayerNorm blocks, tanh GELU, learned positions, tied embeddings): {m.n_layer} blocks, {m.n_embd} wide, {m.n_head} heads, context {m.context_length}; GPT-2's BPE tokenizer and {m.vocab_size:,}-token vocabulary; {params / 1e6:.1f}M parameters ({m.vocab_size * m.n_embd / 1e6:.1f}M of them the token embeddings) |
| Training | {t.max_steps:,} steps of {recipe.batch_size} windows of {m.context_length} tokens (windows start every {recipe.stride or m.context_length} tokens): {history.tokens[-1]:,} tokens; AdamW, lr {t.lr:g} warmed up over {t.warmup_steps} steps then cosine to {t.lr / 10 if t.min_lr is None else t.min_lr:g}, weight decay {t.weight_decay}, clipping at {t.grad_clip}, dropout {m.dropout}; seed {recipe.seed}, {recipe.dtype} |
| Compute | {hours:.1f} hours: {where} |
| Stored as | GPT-2's Hugging Face layout: `config.json`, `model.safetensors` in {config["torch_dtype"]}; `history.json` (the losses during training), `held_out.json`, `build.json` |
| File sha256 | `{sha}` (`model.safetensors`; `mygpt.zoo.SHIPPED_SHA256` checks it on load) |

## Data

Each source is split on its own: the first {recipe.train_frac:.0%} of its text (by characters) for
training, the rest held out.

{chr(10).join(data_rows)}

WikiText-2 is stored word-tokenized; `mygpt.formats.wikitext_to_plain` turns it back into plain
text, and removes `<unk>`, the placeholder for rare words (its docstring says why). Tiny
Shakespeare is public domain; WikiText-2 is Wikipedia text under CC BY-SA 3.0, so these weights,
derived from it, are shared under the same licence.

## Held-out loss (nats per token)

| text | this model | perplexity | unigram baseline | uniform guess |
|---|---|---|---|---|
{loss_rows}

The unigram baseline predicts every token by its frequency in the training text, ignoring the
context; a uniform guess is ln {m.vocab_size:,}. Everything below the unigram column is what the
model learned from context.

## Rebuild

`python -m mygpt zoo build {name}` trains the recipe into the cache (checkpoints every
{t.checkpoint_every} steps; run it again to resume after an interruption; a GPU is used when
present), then `python -m mygpt zoo ship {name}` writes this directory and prints the SHA-256 for
`mygpt.zoo.SHIPPED_SHA256`. Training this long is chaotic: on another processor the same recipe
lands within a few hundredths of the losses above, not on the same weights. The shipped weights
are the artifact the book's outputs depend on.

## Limits

A teaching model of {params / 1e6:.0f}M parameters trained on about two million words: it writes
text with the look of its two sources (dialogue in verse, encyclopaedic prose with dates and
numbers) but knows few facts and loses the thread within a sentence or two. It never saw
`<|endoftext|>`, so it does not stop by itself.
"""


def _load_dir(directory: Path, device=None) -> GPT:
    """A model directory of either layout: ours (:func:`mygpt.save_model`) or GPT-2's Hub one."""
    if directory_kind(directory) == "hub":
        return load_pretrained(directory, device=device)
    return load_model(directory, device=device)


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
            model = _load_dir(directory, device=device)
        except CheckpointError as e:
            raise CheckpointError(f"{e} Delete {directory} to train the model again.") from e
    if verbose:
        history = _read_history(directory)
        print(
            f"{name}: {model.num_parameters() / 1e6:.1f}M parameters, trained on "
            f"{history.tokens[-1]:,} tokens of {' + '.join(_recipe(name).sources)}, "
            f"validation loss {history.val_loss[-1]:.3f}"
        )
    return model.eval()


def pretrained_history(name: str = "shakespeare-small") -> History:
    """The losses recorded while ``name`` was trained (training it first if it is not cached)."""
    return _read_history(_ensure(name))


def pretrained_recipe(name: str = "shakespeare-small") -> Recipe:
    """The :class:`Recipe` of the small model ``name``."""
    return _recipe(name)


def book_model(device=None, verbose: bool = True) -> GPT:
    """The book's own pretrained model (:data:`ZOO` ``"book"``): GPT-2's architecture and
    tokenizer, 4 blocks x 256 wide, trained for hours on Shakespeare and WikiText-2 and shipped
    with the package in GPT-2's Hub layout (``mygpt/models/book/``, SHA-256 checked)."""
    return small_pretrained("book", device=device, verbose=verbose)


#: What :func:`fine_tuning_base` prints, by the reason for its choice.
_BASE_NOTES = {
    "gpt2": "On this {device} device this chapter starts from GPT-2 124M.",
    "cpu": (
        "On a CPU this chapter starts from the book's model: fine-tuning GPT-2 124M takes "
        "over ten times as long there (on a GPU it starts from GPT-2)."
    ),
    "no weights": "GPT-2's weights cannot be loaded here, so this chapter starts from the "
    "book's model.",
}


def fine_tuning_base(device=None, verbose: bool = True) -> tuple[GPT, str]:
    """The model a fine-tuning chapter starts from, and its name: ``"GPT-2 124M"`` or
    ``"book's model"``.

    GPT-2 124M when an accelerator (CUDA or MPS) is present and its weights can be loaded; the
    book's model otherwise. On a CPU the book's model is chosen even when GPT-2 could be
    downloaded: a training step of GPT-2 124M costs over ten times as much there as one of the
    book's model (``bench/book.py`` measures it), and a chapter takes hundreds to thousands. So
    a reader without a GPU gets the page as it is published, with or without network access.
    With ``verbose``, one line says which model was chosen and why.
    """
    device = get_device(device)
    gpt2, reason = None, "cpu"
    if device.type != "cpu":
        try:
            gpt2, reason = load_pretrained("gpt2", device=device), "gpt2"
        except CheckpointError:
            reason = "no weights"
    if verbose:
        print(_BASE_NOTES[reason].format(device=device.type))
    if gpt2 is not None:
        return gpt2, "GPT-2 124M"
    return book_model(device=device, verbose=verbose), "book's model"
