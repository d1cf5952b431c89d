"""Small, cached training experiments: change one setting, train, compare validation curves.

A run is described by an :class:`ExperimentSpec` (a frozen dataclass: the architecture, the
optimizer settings, the data, a fixed *token budget* and a seed). :func:`run_experiment` trains
it and returns a :class:`Result` (the validation curve as a :class:`~mygpt.training.History`, and a
summary: final and best validation loss, whether the run diverged). :func:`sweep` does that for
several values of one setting.

Results are cached as ``$MYGPT_CACHE_DIR/experiments/<key>.json`` (default ``~/.cache/mygpt``),
where the key hashes the whole spec plus the data file's SHA-256 and :data:`PROCEDURE_VERSION`.
So a notebook re-renders without re-training when nothing changed, any change to a spec trains
anew, and the same spec used by two sweeps (a shared baseline) is trained once. Floats survive
the JSON round trip exactly, so a cached result is identical to a fresh one.

Runs too long for a chapter's page are *shipped*: :func:`ship_experiment` writes the result,
with where and how long it ran (:attr:`Result.provenance`), to :data:`SHIPPED_RUNS_DIR` inside
the package, and :func:`run_experiment` reads a shipped result before its cache. A script beside
the shipped files (``mygpt/results/ch7_sweeps.py``) runs a chapter's whole plan, resumably.

The runs are meant to be tiny (seconds on a CPU), so they see text as **bytes**: the vocabulary is
the 256 byte values instead of GPT-2's 50,257 BPE tokens. With a 64-wide model the 50,257-way
output layer would cost most of the compute; with 256 outputs the blocks do. Every run trains on
the CPU with fixed seeds, so results are the same on every machine.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import platform
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .checkpoint import atomic_write
from .config import GPTConfig
from .data import create_dataloader, train_val_split
from .device import dtype_named, processor_name
from .errors import ConfigError, TrainingError
from .files import REGISTRY, read_text
from .model import GPT, Block
from .paths import cache_dir
from .training import History, TrainConfig, train

#: Bump when the training procedure changes in a way the spec does not capture, so that every
#: cached result is recomputed.
PROCEDURE_VERSION = 1

#: Byte-level vocabulary: every UTF-8 byte value is a token.
BYTE_VOCAB = 256

#: How many runs actually trained in this process (cache hits do not count). Tests and readers
#: can look at it to see whether a result came from the cache.
TRAIN_CALLS = 0


def byte_ids(text: str) -> torch.Tensor:
    """``text`` as a 1-D tensor of its UTF-8 bytes (token ids 0..255)."""
    return torch.frombuffer(bytearray(text.encode("utf-8")), dtype=torch.uint8).long()


@dataclass(frozen=True)
class ExperimentSpec:
    """Everything that determines one experiment (and so its cache key).

    Attributes:
        model: the architecture; ``vocab_size`` must be :data:`BYTE_VOCAB` (the runs see bytes).
        lr, min_lr_frac, warmup_steps, weight_decay, grad_clip: AdamW and its schedule
            (linear warmup, cosine decay to ``lr * min_lr_frac``).
        token_budget: training tokens in total; ``token_budget // tokens_per_step`` steps.
        tokens_per_step: tokens per optimizer step; the batch holds
            ``tokens_per_step // context_length`` windows, so changing the context length changes
            neither the number of steps nor the tokens seen.
        eval_points: how many times the validation loss is measured (evenly spaced, last at the end).
        eval_tokens: validation tokens per measurement (the first ones of the validation text).
        data: a :data:`mygpt.files.REGISTRY` text. train_frac: the split (by characters).
        seed: seeds the initial weights, dropout and the data order.
        dtype: ``"float64"`` (default) or ``"float32"``: float64 makes a run's numbers the same
            on every CPU (see :class:`mygpt.zoo.Recipe`); for models this small it costs little.
        norm, activation, positions: design choices that GPT-2 fixed, to measure what they buy
            (see :func:`build_model`): ``norm`` ``"pre"`` (GPT-2) or ``"post"`` (the original
            transformer), ``activation`` ``"gelu"`` or ``"relu"``, ``positions`` ``"learned"``
            or ``"none"``. Part of the key only when they differ from GPT-2's.
    """

    model: GPTConfig = GPTConfig(
        vocab_size=BYTE_VOCAB, context_length=64, n_embd=64, n_layer=2, n_head=4, dropout=0.0
    )
    lr: float = 1e-3
    min_lr_frac: float = 0.1
    warmup_steps: int = 10
    weight_decay: float = 0.1
    grad_clip: float | None = 1.0
    token_budget: int = 131_072
    tokens_per_step: int = 1024
    eval_points: int = 8
    eval_tokens: int = 4096
    data: str = "tinyshakespeare"
    train_frac: float = 0.9
    seed: int = 0
    dtype: str = "float64"
    norm: str = "pre"
    activation: str = "gelu"
    positions: str = "learned"

    def __post_init__(self) -> None:
        dtype_named(self.dtype)  # a ConfigError for an unknown type
        for name, allowed in VARIANTS.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(
                    f"ExperimentSpec.{name} must be one of {allowed}, got {getattr(self, name)!r}."
                )
        if self.model.vocab_size != BYTE_VOCAB:
            raise ConfigError(
                f"ExperimentSpec runs see bytes: model.vocab_size must be {BYTE_VOCAB}, "
                f"got {self.model.vocab_size}."
            )
        T = self.model.context_length
        if self.tokens_per_step % T:
            raise ConfigError(
                f"tokens_per_step ({self.tokens_per_step}) must be a multiple of the "
                f"context length ({T}) so that a batch holds whole windows."
            )
        if self.eval_tokens % T:
            raise ConfigError(
                f"eval_tokens ({self.eval_tokens}) must be a multiple of the context length ({T})."
            )
        if self.steps < self.eval_points or self.eval_points < 1:
            raise ConfigError(
                f"token_budget {self.token_budget} gives {self.steps} steps, fewer than "
                f"eval_points={self.eval_points}; raise the budget or lower eval_points."
            )
        if self.data not in REGISTRY:
            raise ConfigError(
                f"ExperimentSpec.data {self.data!r} is not a registered data file; "
                f"known: {', '.join(sorted(REGISTRY))}."
            )

    @property
    def batch_size(self) -> int:
        """Windows per step: ``tokens_per_step // context_length``."""
        return self.tokens_per_step // self.model.context_length

    @property
    def steps(self) -> int:
        """Optimizer steps: ``token_budget // tokens_per_step``."""
        return self.token_budget // self.tokens_per_step

    def replace(self, **changes) -> ExperimentSpec:
        """A copy with some settings changed; ``GPTConfig`` field names change the model.

        ``spec.replace(n_head=8, lr=1e-2)`` sets ``model.n_head`` and ``lr``.
        """
        model_fields = {f.name for f in dataclasses.fields(GPTConfig)}
        own = {f.name for f in dataclasses.fields(self)} - {"model"}
        unknown = set(changes) - model_fields - own
        if unknown:
            raise ConfigError(
                f"No setting(s) {sorted(unknown)} in an ExperimentSpec or its GPTConfig; "
                f"known: {sorted(own | model_fields)}."
            )
        model = self.model.replace(**{k: v for k, v in changes.items() if k in model_fields})
        return dataclasses.replace(
            self, model=model, **{k: v for k, v in changes.items() if k in own}
        )

    def train_config(self) -> TrainConfig:
        """The :class:`~mygpt.training.TrainConfig` that :func:`run_experiment` trains with."""
        return TrainConfig(
            max_steps=self.steps,
            lr=self.lr,
            min_lr=self.lr * self.min_lr_frac,
            warmup_steps=self.warmup_steps,
            weight_decay=self.weight_decay,
            grad_clip=self.grad_clip,
            eval_every=max(1, self.steps // self.eval_points),
            seed=self.seed,
            log=False,
            amp=False,
        )

    def to_dict(self) -> dict:
        """The spec as plain JSON-able data: what the key hashes and the cache file records.

        The design-choice fields enter only when they differ from GPT-2's, so the keys of the
        specs written before they existed stay what they were."""
        d = dataclasses.asdict(self)
        d["model"] = self.model.to_dict()
        for name, allowed in VARIANTS.items():
            if d[name] == allowed[0]:
                del d[name]
        return d

    def key(self) -> str:
        """A short hash of the spec, the data's SHA-256 and :data:`PROCEDURE_VERSION`."""
        payload = dict(
            self.to_dict(), procedure=PROCEDURE_VERSION, data_sha256=REGISTRY[self.data].sha256
        )
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


#: The design choices an :class:`ExperimentSpec` can change, GPT-2's first.
VARIANTS = {
    "norm": ("pre", "post"),
    "activation": ("gelu", "relu"),
    "positions": ("learned", "none"),
}


class PostLNBlock(Block):
    """The original transformer's block (Vaswani et al., 2017): a LayerNorm *after* each
    residual sum, ``ln1(x + attn(x))`` then ``ln2(x + mlp(x))``, instead of GPT-2's
    ``x + attn(ln1(x))``. Same weights, same count; only where the normalisation sits."""

    def forward(self, x, mask=None, kv_cache=None, layer: int = 0):
        x = self.ln1(x + self.attn(x, mask=mask, kv_cache=kv_cache, layer=layer))
        return self.ln2(x + self.mlp(x))


def build_model(spec: ExperimentSpec) -> GPT:
    """``GPT(spec.model)`` with the spec's design choices applied to the same initial weights,
    so that a comparison changes one thing only:

    - ``norm="post"``: every block computes as :class:`PostLNBlock`;
    - ``activation="relu"``: ReLU instead of GELU in every feed-forward network;
    - ``positions="none"``: the position table is zero and frozen; the causal mask is then the
      only source of order (Haviv et al., 2022, show that language models learn positions
      from it).
    """
    model = GPT(spec.model)
    for block in model.blocks:
        if spec.norm == "post":
            block.__class__ = PostLNBlock  # same modules and weights, the other forward
        if spec.activation == "relu":
            block.mlp.act = nn.ReLU()
    if spec.positions == "none":
        nn.init.zeros_(model.pos_emb.weight)
        model.pos_emb.weight.requires_grad_(False)  # the optimizer skips frozen weights
    return model


#: The :class:`~mygpt.training.History` fields with the type of their entries (checked on reading).
_HISTORY_TYPES = {"step": int, "tokens": int, "train_loss": float, "val_loss": float, "lr": float}


@dataclass
class Result:
    """One finished (or diverged) experiment.

    Attributes:
        spec: what was run (as :meth:`ExperimentSpec.to_dict`).
        history: the validation (and training) loss at each measurement, up to where it stopped.
        diverged: the loss became NaN/infinite (training raised :class:`TrainingError`), or the
            final validation loss is worse than guessing uniformly among the 256 bytes.
        error: the training error's message when training stopped early, else ``""``.
        provenance: where and how the run was trained (``seconds``, ``threads``, ``torch``,
            ``python``, ``machine``, ``processor``); informative only, so not compared.
    """

    spec: dict
    history: History
    diverged: bool
    error: str = ""
    key: str = field(default="", compare=False)
    provenance: dict = field(default_factory=dict, compare=False)

    @property
    def final_val_loss(self) -> float:
        """The last measured validation loss (``nan`` if none was measured)."""
        return self.history.val_loss[-1] if self.history.val_loss else math.nan

    @property
    def min_val_loss(self) -> float:
        """The lowest measured validation loss (``nan`` if none was measured)."""
        return min(self.history.val_loss) if self.history.val_loss else math.nan

    def to_json(self) -> str:
        """The result as JSON (the cache file's content)."""
        d = dict(
            spec=self.spec,
            history=dataclasses.asdict(self.history),
            diverged=self.diverged,
            error=self.error,
        )
        if self.provenance:
            d["provenance"] = self.provenance
        return json.dumps(d, indent=1)

    @classmethod
    def from_json(cls, text: str, key: str = "") -> Result:
        """Read a result written by :meth:`to_json`.

        Raises ``ValueError`` (``json.JSONDecodeError`` is one) when ``text`` is not JSON or not
        of that shape: a field missing or extra, of the wrong type, or history lists of unequal
        lengths. A cache file is data from disk, so every field is checked before it is trusted.
        """
        d = json.loads(text)
        fields = {"spec", "history", "diverged", "error"}
        if not isinstance(d, dict) or not fields <= set(d) <= fields | {"provenance"}:
            raise ValueError(
                "a result is an object with exactly spec, history, diverged and error "
                "(and optionally provenance)"
            )
        if not isinstance(d.get("provenance", {}), dict):
            raise ValueError("a result's provenance must be an object")
        if (
            not isinstance(d["spec"], dict)
            or type(d["diverged"]) is not bool
            or type(d["error"]) is not str
        ):
            raise ValueError(
                "a result's spec must be an object, diverged a bool and error a string"
            )
        history = d["history"]
        if not isinstance(history, dict) or set(history) != set(_HISTORY_TYPES):
            raise ValueError(
                f"a result's history must have exactly the lists {sorted(_HISTORY_TYPES)}"
            )
        for name, kind in _HISTORY_TYPES.items():
            values = history[name]
            # type(), not isinstance(): True is an int, and JSON floats always load as float.
            if not isinstance(values, list) or any(type(v) is not kind for v in values):
                raise ValueError(f"a result's history.{name} must be a list of {kind.__name__}s")
        if len({len(values) for values in history.values()}) > 1:
            raise ValueError(
                "a result's history lists must have one length (one entry per evaluation)"
            )
        return cls(
            spec=d["spec"],
            history=History(**history),
            diverged=d["diverged"],
            error=d["error"],
            key=key,
            provenance=d.get("provenance", {}),
        )


#: Results of runs too long for a chapter's page, shipped with the package (``mygpt/results/``);
#: each file names the script that wrote it.
SHIPPED_RESULTS_DIR = Path(__file__).resolve().parent / "results"


def shipped_result(name: str) -> dict:
    """The shipped result ``mygpt/results/<name>.json``, as a dict."""
    path = SHIPPED_RESULTS_DIR / f"{name}.json"
    if not path.is_file():
        known = sorted(p.stem for p in SHIPPED_RESULTS_DIR.glob("*.json"))
        raise FileNotFoundError(f"No shipped result named {name!r} in {SHIPPED_RESULTS_DIR}; "
                                f"there are: {', '.join(known) or 'none'}.")  # fmt: skip
    return json.loads(path.read_text(encoding="utf-8"))


#: Single runs shipped with the package, one ``<key>.json`` each (see :func:`ship_experiment`).
SHIPPED_RUNS_DIR = SHIPPED_RESULTS_DIR / "runs"


def experiments_dir() -> Path:
    """Where results are cached: ``<cache>/experiments``."""
    return cache_dir() / "experiments"


def _train(spec: ExperimentSpec) -> Result:
    """Train ``spec`` from scratch on the CPU; a NaN/inf loss is recorded, not raised."""
    global TRAIN_CALLS
    TRAIN_CALLS += 1
    train_text, val_text = train_val_split(read_text(spec.data), spec.train_frac)
    T, B = spec.model.context_length, spec.batch_size
    train_loader = create_dataloader(byte_ids(train_text), B, T, seed=spec.seed)
    # Validation: the same first eval_tokens of the held-out text at every measurement.
    val_ids = byte_ids(val_text)[: spec.eval_tokens + 1]
    val_loader = create_dataloader(val_ids, B, T, shuffle=False, drop_last=False)
    seen: list[History] = []  # train() builds its History inside; keep a handle to it
    error = ""
    threads = torch.get_num_threads()
    # One thread: for a model this small, more threads mostly add overhead, and a fixed thread
    # count keeps floating-point sums in the same order on every machine (same numbers anywhere).
    torch.set_num_threads(1)
    started = time.perf_counter()
    try:
        with torch.random.fork_rng(devices=[]):  # leave the caller's random state alone
            torch.manual_seed(spec.seed)
            model = build_model(spec).to(dtype_named(spec.dtype))
            try:
                history = train(
                    model,
                    train_loader,
                    val_loader,
                    cfg=spec.train_config(),
                    device=torch.device("cpu"),
                    on_eval=lambda step, h: seen.append(h) if not seen else None,
                )
            except TrainingError as e:
                history = seen[0] if seen else History()
                error = str(e)
    finally:
        torch.set_num_threads(threads)
    provenance = {
        "seconds": round(time.perf_counter() - started, 1),
        "threads": 1,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": processor_name(),
    }
    return Result(
        spec=spec.to_dict(),
        history=history,
        diverged=_diverged(history, error, spec),
        error=error,
        provenance=provenance,
    )


def _diverged(history: History, error: str, spec: ExperimentSpec) -> bool:
    """A training error, a non-finite final loss, or one worse than guessing uniformly."""
    final = history.val_loss[-1] if history.val_loss else math.nan
    return bool(error) or not math.isfinite(final) or final > math.log(spec.model.vocab_size)


def _read_cached(path: Path, spec: ExperimentSpec, key: str) -> Result | None:
    """The result of ``spec`` cached at ``path``, or ``None`` (a miss) when there is none usable.

    Unusable: missing or unreadable, not UTF-8, not JSON, not a result's shape, a result of
    another spec, or a summary that contradicts its own curve. The caller then trains again and
    overwrites the file, so a damaged cache heals itself instead of failing every later call.
    """
    try:
        result = Result.from_json(path.read_text(encoding="utf-8"), key=key)
    except (OSError, ValueError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return None
    h = result.history
    finished = bool(result.error) or (bool(h.step) and h.step[-1] == spec.steps)
    if (
        result.spec != spec.to_dict()
        or not finished
        or result.diverged != _diverged(h, result.error, spec)
    ):
        return None
    return result


def run_experiment(spec: ExperimentSpec, use_cache: bool = True) -> Result:
    """The result of ``spec``: from the cache when it is there, else trained (and cached).

    Training is deterministic, so both give the same numbers. ``use_cache=False`` trains
    regardless (and overwrites the cached result).
    """
    if use_cache and (shipped := _shipped(spec)):
        return shipped
    key = spec.key()
    path = experiments_dir() / f"{key}.json"
    cached = _read_cached(path, spec, key) if use_cache else None
    if cached is not None:
        return cached
    result = _train(spec)
    result.key = key
    text = result.to_json()
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    return result


def _shipped(spec: ExperimentSpec) -> Result | None:
    """The result of ``spec`` shipped with the package, or ``None``."""
    return _read_cached(SHIPPED_RUNS_DIR / f"{spec.key()}.json", spec, spec.key())


def ship_experiment(spec: ExperimentSpec) -> Path:
    """Run ``spec`` (or take it from the cache) and write it to :data:`SHIPPED_RUNS_DIR`, where
    :func:`run_experiment` finds it on any machine; returns the file. Already shipped: nothing to
    do. Writes atomically, so an interrupted plan resumes with the runs it had finished."""
    path = SHIPPED_RUNS_DIR / f"{spec.key()}.json"
    if _shipped(spec) is None:
        text = run_experiment(spec).to_json()
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    return path


def is_shipped(spec: ExperimentSpec) -> bool:
    """Whether a usable result of ``spec`` is shipped with the package."""
    return _shipped(spec) is not None


def sweep(base: ExperimentSpec, param: str, values, use_cache: bool = True) -> list[Result]:
    """``run_experiment(base.replace(**{param: v}))`` for each ``v`` in ``values``, in order."""
    return [run_experiment(base.replace(**{param: v}), use_cache=use_cache) for v in values]


def summary_table(param: str, values, results: list[Result]) -> str:
    """A plain-text table: each value of ``param`` with its final and best validation loss."""
    lines = [f"{param:>14} | final val | best val | diverged"]
    for v, r in zip(values, results):
        lines.append(
            f"{v!s:>14} | {r.final_val_loss:9.3f} | {r.min_val_loss:8.3f} | "
            f"{'yes' if r.diverged else 'no'}"
        )
    return "\n".join(lines)


def plot_sweep(param: str, values, results: list[Result], log_x: bool = False, title: str = ""):
    """Two panels: validation loss against tokens for each value, and the final loss per value.

    Diverged runs are drawn dashed and marked with an ``x``. Returns the matplotlib figure.
    """
    import matplotlib.pyplot as plt  # lazy: only plotting needs matplotlib

    fig, (curves, finals) = plt.subplots(1, 2, figsize=(10, 3.6))
    for v, r in zip(values, results):
        h = r.history
        curves.plot(
            h.tokens, h.val_loss, "--" if r.diverged else "-", marker=".", label=f"{param}={v}"
        )
    curves.set(
        xlabel="training tokens",
        ylabel="validation loss (nats per byte)",
        title=title or f"validation loss, by {param}",
    )
    curves.legend(fontsize=8)
    xs = list(range(len(values))) if not log_x else list(values)
    # A diverged run's huge losses would flatten everything else: cap the y axis a little above
    # the uniform guess (ln 256) and mark what lies beyond it with an x on the top edge.
    losses = [v for r in results for v in r.history.val_loss if math.isfinite(v)]
    top = min(max(losses, default=1.0), math.log(BYTE_VOCAB) + 0.5)
    bottom = min(losses, default=0.0) - 0.05
    finals.plot(xs, [min(r.final_val_loss, top) for r in results], "o-")
    for x, r in zip(xs, results):
        if r.diverged:
            finals.plot([x], [min(r.final_val_loss, top)], "rx", markersize=10, clip_on=False)
    if log_x:
        finals.set_xscale("log")
    else:
        finals.set_xticks(xs, [str(v) for v in values])
    finals.set(xlabel=param, ylabel="final validation loss", title="at the end of the budget")
    for ax in (curves, finals):
        ax.set_ylim(bottom, top + 0.05)
    fig.tight_layout()
    return fig


# --- several seeds per setting: means, spreads, effects in units of the seed noise ------------


@dataclass(frozen=True)
class SeedSummary:
    """The final validation losses of one setting trained with several seeds.

    ``mean`` and ``std`` (the sample standard deviation, ``ddof=1``) cover the runs that did not
    diverge; ``diverged`` counts the others.
    """

    finals: tuple[float, ...]
    diverged: int = 0

    @property
    def mean(self) -> float:
        return statistics.mean(self.finals) if self.finals else math.nan

    @property
    def std(self) -> float:
        return statistics.stdev(self.finals) if len(self.finals) >= 2 else math.nan


def summarize(results: list[Result]) -> SeedSummary:
    """The :class:`SeedSummary` of one setting's runs (one :class:`Result` per seed)."""
    ok = [r for r in results if not r.diverged]
    return SeedSummary(tuple(r.final_val_loss for r in ok), len(results) - len(ok))


def pooled_std(summaries: list[SeedSummary]) -> float:
    """The seed noise of a sweep: the root of the mean within-setting variance, over the settings
    with at least two finished runs (each setting's own spread says little with three seeds)."""
    variances = [s.std**2 for s in summaries if len(s.finals) >= 2]
    return math.sqrt(sum(variances) / len(variances)) if variances else math.nan


def sweep_seeds(base: ExperimentSpec, settings: list[dict], seeds) -> list[list[Result]]:
    """For each setting (a dict of changes to ``base``), its runs with every seed in ``seeds``."""
    return [[run_experiment(base.replace(**c, seed=s)) for s in seeds] for c in settings]


def seed_table(labels: list[str], summaries: list[SeedSummary]) -> str:
    """One line per setting: mean ± standard deviation of the final loss, and its distance from
    the best setting in units of the sweep's seed noise (:func:`pooled_std`)."""
    noise = pooled_std(summaries)
    best = min((s.mean for s in summaries if s.finals), default=math.nan)
    width = max(len("setting"), *(len(label) for label in labels))
    lines = [f"{'setting':>{width}} | final val (mean ± sd) | above the best, in seed sds"]
    for label, s in zip(labels, summaries):
        if not s.finals:
            lines.append(f"{label:>{width}} | diverged ({s.diverged} of {s.diverged})")
            continue
        note = f" ({s.diverged} diverged)" if s.diverged else ""
        lines.append(
            f"{label:>{width}} | {s.mean:8.3f} ± {s.std:.3f}{'':>6} | "
            f"{(s.mean - best) / noise:6.1f}{note}"
        )
    return "\n".join(lines)


def plot_seed_sweep(
    labels: list[str], runs: list[list[Result]], title: str = "", xlabel: str = "setting"
):
    """Two panels: each setting's validation curve (mean over seeds, with the band from the
    lowest to the highest seed), and its final loss (mean, with error bars of one standard
    deviation). Returns the matplotlib figure."""
    import matplotlib.pyplot as plt  # lazy: only plotting needs matplotlib

    fig, (curves, finals) = plt.subplots(1, 2, figsize=(10, 3.6))
    summaries = []
    for label, results in zip(labels, runs):
        ok = [r for r in results if not r.diverged]
        summaries.append(summarize(results))
        if not ok:
            continue
        tokens = ok[0].history.tokens
        stacked = [r.history.val_loss for r in ok]
        mean = [sum(v) / len(v) for v in zip(*stacked)]
        (line,) = curves.plot(tokens, mean, label=label)
        curves.fill_between(tokens, [min(v) for v in zip(*stacked)],
                            [max(v) for v in zip(*stacked)], color=line.get_color(), alpha=0.2)  # fmt: skip
    curves.set(xlabel="training tokens", ylabel="validation loss (nats per byte)",
               title=title or "validation loss, mean of the seeds")  # fmt: skip
    curves.legend(fontsize=8)
    xs = range(len(labels))
    finals.errorbar(xs, [s.mean for s in summaries], yerr=[s.std for s in summaries],
                    fmt="o", capsize=4)  # fmt: skip
    finals.set_xticks(list(xs), labels)
    finals.set(xlabel=xlabel, ylabel="final validation loss", title="mean ± one seed sd")
    fig.tight_layout()
    return fig
