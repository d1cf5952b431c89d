"""Training a GPT: the loss, evaluation, the optimizer, the schedule, the loop, checkpoints.

The loop is deliberately plain (nanoGPT-style) so the book can show it whole. Two properties
it guarantees: checkpoints are written atomically (a crash leaves the last good one), and a run
resumed from a checkpoint produces exactly the losses of an uninterrupted run on the CPU.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .checkpoint import (
    atomic_write,
    load_model_state,
    read_weights,
    write_directory,
    write_model_files,
)
from .device import at_least_float32, progress
from .distributed import barrier, get_world_size, is_main_process, mean_across_ranks
from .errors import CheckpointError, ConfigError, TrainingError
from .model import GPT


def next_token_loss(
    logits: torch.Tensor, targets: torch.Tensor, ignore_index: int = -100
) -> torch.Tensor:
    """Mean cross-entropy of predicting ``targets`` ``[B, T]`` from ``logits`` ``[B, T, vocab]``.

    Target positions equal to ``ignore_index`` (e.g. padding) do not count.
    """
    return F.cross_entropy(
        at_least_float32(logits.flatten(0, 1)), targets.flatten(), ignore_index=ignore_index
    )


def batch_loss(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, ignore_index: int = -100
) -> torch.Tensor:
    """``next_token_loss(model(x), y)``, with the output layer computed only where ``y`` has a target.

    Fine-tuning batches mask most positions (padding, and prompts with ``mask_prompt``); for a
    :class:`~mygpt.model.GPT` those positions then skip the 50,257-way output layer, its largest
    cost. Same value as the plain form (tested); batches without a masked target take the plain one.
    That choice reads ``y``'s values, which costs nothing on the CPU but would make the host wait
    for an accelerator at every training step: there, the plain form is always taken.
    """
    if y.device.type != "cpu" or not isinstance(_unwrap(model), GPT):
        return next_token_loss(model(x), y, ignore_index)
    keep = y != ignore_index
    if keep.all():
        return next_token_loss(model(x), y, ignore_index)
    return F.cross_entropy(at_least_float32(model(x, logits_at=keep)), y[keep])


def lm_loss(model: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """The language-model loss of a batch ``(x, y)``: :func:`batch_loss` in :func:`train`'s form.

    :func:`train` takes any ``loss_fn(model, batch) -> scalar tensor``, ``batch`` being what the
    loader yields, moved to the device; this is its default.
    """
    x, y = batch
    return batch_loss(model, x, y)


def perplexity(loss: float) -> float:
    """``exp(loss)``: the number of equally likely tokens the model is, on average, choosing among."""
    return math.exp(loss)


def unigram_loss(train_ids: torch.Tensor, eval_ids: torch.Tensor, vocab_size: int) -> float:
    """The loss (nats/token) of the best guess that ignores context: every token's frequency
    in ``train_ids`` (add-one smoothed, so unseen tokens are not impossible), scored on
    ``eval_ids``. A language model has learned something from context only below this."""
    counts = torch.bincount(train_ids.flatten(), minlength=vocab_size).double() + 1.0
    log_p = counts.log() - counts.sum().log()
    return float(-log_p[eval_ids.flatten()].mean())


def _unwrap(model: nn.Module) -> nn.Module:
    return getattr(model, "module", model)  # DistributedDataParallel keeps the model in .module


@torch.no_grad()
def evaluate(model: nn.Module, loader, device=None, max_batches: int | None = None) -> float:
    """Mean next-token loss over (the first ``max_batches`` batches of) ``loader``, in eval mode.

    The mean of the batches' losses, each the mean over its own targets (as the training loop
    reports them): a last, shorter batch weighs as much as a full one, so on a loader whose
    batches differ in size this can differ a little from the mean over every token.
    """
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    total, n = 0.0, 0
    try:
        for i, (x, y) in enumerate(loader):
            if max_batches is not None and i >= max_batches:
                break
            total += batch_loss(model, x.to(device), y.to(device)).item()
            n += 1
    finally:  # an error (or Ctrl-C) mid-evaluation must not leave a training model in eval mode
        model.train(was_training)
    if n == 0:
        raise TrainingError(
            "The evaluation loader yielded no batch: is the validation text "
            "shorter than one context window?"
        )
    return total / n


def configure_optimizer(
    model: nn.Module, lr: float, weight_decay: float = 0.1, betas: tuple[float, float] = (0.9, 0.95)
) -> torch.optim.AdamW:
    """AdamW (Loshchilov & Hutter, 2019) with weight decay on matrices only.

    Biases and LayerNorm gains are left undecayed: shrinking them toward zero does not regularise
    the model, it only fights the normalisation.
    """
    params = {id(p): (n, p) for n, p in model.named_parameters() if p.requires_grad}.values()
    groups = [
        {"params": [p for _, p in params if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for _, p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    device_type = next(model.parameters()).device.type
    fused = device_type in ("cuda", "cpu")  # measured ~20% faster on CPU too
    return torch.optim.AdamW(groups, lr=lr, betas=betas, fused=fused)


def lr_at(
    step: int, max_lr: float, total_steps: int, warmup_steps: int = 0, min_lr: float | None = None
) -> float:
    """Linear warmup to ``max_lr`` over ``warmup_steps``, then cosine decay to ``min_lr``."""
    min_lr = max_lr / 10 if min_lr is None else min_lr
    if step < warmup_steps:
        return max_lr * (step + 1) / warmup_steps
    if total_steps <= warmup_steps:
        return max_lr
    progress_frac = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_lr + 0.5 * (max_lr - min_lr) * (1 + math.cos(math.pi * progress_frac))


@dataclass
class TrainConfig:
    """Settings of :func:`train` (the model's own settings live in ``GPTConfig``).

    Attributes:
        epochs: passes over the training loader (ignored when ``max_steps`` is set).
        max_steps: optimizer steps in total (``None``: ``epochs * len(train_loader)``).
        lr, min_lr, warmup_steps: peak learning rate, final one (default ``lr / 10``), warmup.
        weight_decay, betas: AdamW settings. grad_clip: max gradient norm (``None``: off).
        eval_every: evaluate (and log a line) every this many steps, and at the end.
        eval_batches: validation batches per evaluation (``None``: all).
        checkpoint_every: save a checkpoint every this many steps (needs a checkpoint directory).
        keep_last: how many checkpoints to keep. seed: seeds the data order of each epoch.
        log: print one line per evaluation. amp: bfloat16 autocast on CUDA (ignored elsewhere).
    """

    epochs: int = 1
    max_steps: int | None = None
    lr: float = 4e-4
    min_lr: float | None = None
    warmup_steps: int = 0
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float | None = 1.0
    eval_every: int = 50
    eval_batches: int | None = None
    checkpoint_every: int | None = None
    keep_last: int = 2
    seed: int = 123
    log: bool = True
    amp: bool = True

    def __post_init__(self) -> None:
        def bad(name: str, rule: str) -> ConfigError:
            return ConfigError(f"TrainConfig.{name} must be {rule}, got {getattr(self, name)!r}.")

        for name in ("epochs", "eval_every", "keep_last"):
            if not _is_int(getattr(self, name), 1):
                raise bad(name, ">= 1")
        for name in ("max_steps", "eval_batches", "checkpoint_every"):
            if getattr(self, name) is not None and not _is_int(getattr(self, name), 1):
                raise bad(name, ">= 1 or None")
        if not _is_int(self.warmup_steps, 0):
            raise bad("warmup_steps", "an integer >= 0")
        if not _is_int(self.seed):
            raise bad("seed", "an integer")
        if not (_is_finite(self.lr) and self.lr > 0):
            raise bad("lr", "positive" if _is_finite(self.lr) else "positive and finite")
        if self.min_lr is not None and not (_is_finite(self.min_lr) and self.min_lr >= 0):
            raise bad("min_lr", "None or a number >= 0")
        if not (_is_finite(self.weight_decay) and self.weight_decay >= 0):
            raise bad("weight_decay", ">= 0")
        if not (
            isinstance(self.betas, (tuple, list))
            and len(self.betas) == 2
            and all(_is_finite(b) and 0 <= b < 1 for b in self.betas)
        ):
            raise bad("betas", "two numbers in [0, 1)")
        # 0 would zero every gradient (clip to norm 0), a negative norm reverses them and makes
        # training climb the loss; None is the way to switch clipping off.
        if self.grad_clip is not None and not (_is_finite(self.grad_clip) and self.grad_clip > 0):
            raise bad("grad_clip", "None (no clipping) or a positive number")
        for name in ("log", "amp"):
            if not isinstance(getattr(self, name), bool):
                raise bad(name, "True or False")


def _is_int(value, minimum: int | None = None) -> bool:
    """An int (not a bool) of at least ``minimum``."""
    return (
        isinstance(value, int)
        and not isinstance(value, bool)
        and (minimum is None or value >= minimum)
    )


def _is_finite(value) -> bool:
    """A finite int or float (not a bool, not a string)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass
class History:
    """What :func:`train` measured, one entry per evaluation."""

    step: list[int] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)  # mean over the steps since the last eval
    val_loss: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)


# --- checkpoints -------------------------------------------------------------------------------

STATE_NAME = "train_state.pt"
STEP_DIR = re.compile(r"step-(\d+)")  # the name of a checkpoint directory
STATE_KEYS = ("step", "tokens", "run_sum", "run_n", "history", "optimizer", "rng")


def _step_dirs(directory: Path) -> list[tuple[int, Path]]:
    """The ``step-N`` directories in ``directory`` as ``(N, path)``, by step."""
    found = [
        (int(m.group(1)), p)
        for p in directory.glob("step-*")
        if (m := STEP_DIR.fullmatch(p.name)) and p.is_dir()
    ]
    return sorted(found)


def save_training_checkpoint(
    directory: str | Path, model: nn.Module, optimizer, state: dict, keep_last: int = 2
) -> Path:
    """Write ``directory/step-NNNNNNN/`` (weights, config, training state), then point
    ``directory/latest`` at it. The step directory is built under a temporary name and swapped
    in whole, and ``latest`` is replaced atomically, so a crash at any moment leaves the last
    good one. Of the checkpoints up to this step, the newest ``keep_last`` are kept."""
    directory = Path(directory)
    name = f"step-{state['step']:07d}"

    def fill(tmp: Path) -> None:
        write_model_files(_unwrap(model), tmp)
        full = dict(state, optimizer=optimizer.state_dict(), rng=torch.get_rng_state())
        torch.save(full, tmp / STATE_NAME)

    final = write_directory(directory / name, fill)
    atomic_write(directory / "latest", lambda t: Path(t).write_text(name))
    # Later steps than this one are left by a run resumed from an earlier checkpoint: they must
    # not count among the newest, or pruning would delete the checkpoint just written.
    earlier = [p for step, p in _step_dirs(directory) if step <= state["step"]]
    for p in earlier[:-keep_last]:
        shutil.rmtree(p, ignore_errors=True)
    return final


def _check_no_earlier_run(directory: str | Path) -> None:
    """Refuse to start a new run (no resume) in a directory holding another run's checkpoints.

    Its ``latest`` and step numbers would mix with the new run's, and pruning would keep the
    old run's higher steps and delete the new checkpoints.
    """
    directory = Path(directory)
    found = [p.name for _, p in _step_dirs(directory)] + (
        ["latest"] if (directory / "latest").exists() else []
    )
    if found:
        raise CheckpointError(
            f"{directory} holds checkpoints of an earlier run ({', '.join(found)}): pass "
            f"resume=True to continue that run, or choose an empty directory for a new one."
        )


def latest_checkpoint(directory: str | Path) -> Path | None:
    """The directory ``latest`` points at, or ``None`` when there is no checkpoint yet."""
    pointer = Path(directory) / "latest"
    if not pointer.exists():
        return None
    try:
        name = pointer.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as e:
        raise CheckpointError(
            f"{pointer} is unreadable ({e}). Write the name of an existing step-* "
            f"directory into it, or delete it to start afresh."
        ) from e
    if not STEP_DIR.fullmatch(name):  # never follow it anywhere else ("../..", an absolute path)
        raise CheckpointError(
            f"{pointer} holds {name[:80]!r}, which is not the name of a step-NNNNNNN directory "
            f"in {directory}. Write the name of an existing step-* directory into it, or delete "
            f"it to start afresh."
        )
    path = Path(directory) / name
    if not path.is_dir():
        raise CheckpointError(
            f"{pointer} names {path.name}, which does not exist. Write the name of "
            f"an existing step-* directory into it, or delete it to start afresh."
        )
    return path


def _unreadable_state(file: Path, why: str = "") -> CheckpointError:
    return CheckpointError(
        f"{file} is not a readable training state (truncated, corrupt, or holding objects other "
        f"than tensors and plain data, which are refused because loading them could run code)"
        f"{': ' + why if why else ''}. Resume from an earlier checkpoint by writing its name "
        f"(e.g. step-0000100) into {file.parent.parent / 'latest'}."
    )


def load_training_checkpoint(path: str | Path, model: nn.Module, optimizer=None) -> dict:
    """Load weights (and optimizer state, if given) from a step directory; return the state dict."""
    path = Path(path)
    load_model_state(_unwrap(model), read_weights(path / "model.safetensors"), source=str(path))
    file = path / STATE_NAME
    try:
        # weights_only: never unpickle arbitrary objects. map_location: rank 0 saved its GPU's
        # tensors; every rank loads them on the CPU, and the optimizer moves them to its device.
        state = torch.load(file, weights_only=True, map_location="cpu")
    except FileNotFoundError:
        raise CheckpointError(f"No {STATE_NAME} in {path}: not a training checkpoint.") from None
    except (
        Exception
    ) as e:  # damaged bytes raise anything from UnpicklingError to UnicodeDecodeError;
        # torch's own advice (load with weights_only=False) would run whatever code the file holds.
        raise _unreadable_state(file) from e
    if not isinstance(state, dict) or (missing := [k for k in STATE_KEYS if k not in state]):
        raise _unreadable_state(
            file,
            f"it lacks {missing}"
            if isinstance(state, dict)
            else f"it holds a {type(state).__name__}, not a dict",
        )
    try:
        History(**state["history"])
        if not (isinstance(state["rng"], torch.Tensor) and state["rng"].dtype == torch.uint8):
            raise TypeError("the random state is not a byte tensor")
        if optimizer is not None:
            optimizer.load_state_dict(state["optimizer"])
    except (TypeError, ValueError, KeyError, RuntimeError) as e:
        raise _unreadable_state(file, f"{type(e).__name__}: {e}") from e
    return state


# --- the loop ----------------------------------------------------------------------------------


def _seed_epoch(loader, seed: int) -> None:
    """Make an epoch's data order a function of (seed, epoch) alone, so resuming can replay it."""
    sampler = getattr(loader, "sampler", None)
    if hasattr(sampler, "set_epoch"):  # DistributedSampler
        sampler.set_epoch(seed)
    elif getattr(loader, "generator", None) is not None:
        loader.generator.manual_seed(seed)


def train(
    model: nn.Module,
    train_loader,
    val_loader=None,
    cfg: TrainConfig | None = None,
    device=None,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    on_eval: Callable[[int, History], None] | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    loss_fn: Callable[[nn.Module, tuple], torch.Tensor] = lm_loss,
    evaluate_fn: Callable[..., float] = evaluate,
) -> History:
    """Train ``model`` on ``train_loader`` with AdamW, warmup + cosine schedule and clipping.

    ``loss_fn(model, batch)`` gives the scalar loss of one batch (a tuple as the loader yields
    it, moved to the device; its first tensor counts as the batch's tokens); the default is the
    language-model loss :func:`lm_loss`. ``evaluate_fn(model, val_loader, device, max_batches)``
    gives the validation loss (default :func:`evaluate`); a task with more metrics (e.g.
    accuracy, see :func:`mygpt.finetune.train_classifier`) records them itself and returns the loss.

    Every ``cfg.eval_every`` steps: evaluate on ``val_loader``, record :class:`History`, print a
    line, and call ``on_eval(step, history)`` (e.g. to sample text). With ``checkpoint_dir``,
    save every ``cfg.checkpoint_every`` steps and at the end; with ``resume=True``, continue
    from the latest checkpoint there, exactly where it stopped (same data order, same dropout
    masks). Shuffled loaders must carry a ``generator`` (``create_dataloader`` makes one) for
    the data order to be replayable. Raises :class:`TrainingError` if the loss becomes NaN or
    infinite; the model then keeps the weights of the last good step.

    The loop never waits for the device at a step: losses and the NaN/inf check stay on the
    device and are read at each evaluation and checkpoint (one synchronisation each), before
    anything is recorded or written. Until then a non-finite step is not applied: the fused
    AdamW of :func:`configure_optimizer` skips its update on the device (``found_inf``), and
    every later one too. Another optimizer is checked before each update (one sync a step).

    Under torchrun (see :mod:`mygpt.distributed`) every rank calls ``train`` with its DDP-wrapped
    model and its share of the data; only rank 0 prints, shows the bar and writes checkpoints,
    logged losses and token counts are over all ranks, and ``on_eval`` runs on every rank.
    """
    cfg = cfg or TrainConfig()
    device = device or next(model.parameters()).device
    steps_per_epoch = len(train_loader)
    if steps_per_epoch == 0:
        raise TrainingError(
            "The training loader yields no batch: the text is shorter than one "
            "batch of windows; lower batch_size or context_length."
        )
    total_steps = cfg.max_steps or cfg.epochs * steps_per_epoch
    optimizer = optimizer or configure_optimizer(model, cfg.lr, cfg.weight_decay, cfg.betas)
    history, step, tokens, run_sum, run_n = History(), 0, 0, 0.0, 0
    main = is_main_process()  # True in a single process; rank 0 of a distributed run
    log = cfg.log and main

    if checkpoint_dir is not None and not resume:
        _check_no_earlier_run(checkpoint_dir)
    if resume and checkpoint_dir is not None and (last := latest_checkpoint(checkpoint_dir)):
        state = load_training_checkpoint(last, model, optimizer)
        step, tokens, run_sum, run_n = (
            state["step"],
            state["tokens"],
            state["run_sum"],
            state["run_n"],
        )
        history = History(**state["history"])
        torch.set_rng_state(state["rng"])
        if log:
            print(f"resumed from {last.name} (step {step})")

    # Per-step values stay on the device until the next sync point (evaluation, checkpoint):
    # the loss of each step, its gradient norm, and whether any step so far was not finite.
    pending_loss: list[torch.Tensor] = []
    pending_norm: list[torch.Tensor] = []
    first_pending = step  # the step of pending_loss[0]
    # 1.0 once a loss or gradient norm was not finite (float32: what fused AdamW's found_inf takes)
    bad = torch.zeros((), device=device, dtype=torch.float32)
    skip_on_device = _can_skip_on_device(optimizer)

    def sync() -> None:
        """Read the pending steps: raise on the first non-finite one, else add up their losses."""
        nonlocal run_sum, run_n, first_pending
        if not pending_loss:
            return
        losses = torch.stack(pending_loss).tolist()
        if bad.item():
            norms = torch.stack(pending_norm).tolist()
            for i, (loss_i, norm_i) in enumerate(zip(losses, norms)):
                if not (math.isfinite(loss_i) and math.isfinite(norm_i)):
                    _raise_not_finite(
                        first_pending + i, loss_i, norm_i, cfg, total_steps, checkpoint_dir
                    )
        for loss_i in losses:  # in order, in float64: the same sums as adding up .item()s
            run_sum += loss_i
        run_n += len(losses)
        first_pending = step
        pending_loss.clear()
        pending_norm.clear()

    def checkpoint() -> None:
        sync()  # a non-finite step raises here: its weights are never saved
        if main:  # one writer; the other ranks hold identical weights and wait at the barrier
            save_training_checkpoint(
                checkpoint_dir,
                model,
                optimizer,
                dict(
                    step=step,
                    tokens=tokens,
                    run_sum=run_sum,
                    run_n=run_n,
                    history=dataclasses.asdict(history),
                    train_config=dataclasses.asdict(cfg),
                ),
                cfg.keep_last,
            )
        barrier()  # no rank runs ahead (or exits) before the checkpoint is complete

    use_amp = cfg.amp and torch.device(device).type == "cuda"
    autocast = (
        (lambda: torch.autocast("cuda", dtype=torch.bfloat16))
        if use_amp
        else contextlib.nullcontext
    )
    model.train()
    bar = progress(
        total=total_steps,
        initial=step,
        desc="train",
        unit="step",
        **({} if main else {"disable": True}),
    )  # one bar, rank 0's
    try:
        while step < total_steps:
            epoch, offset = divmod(step, steps_per_epoch)
            _seed_epoch(train_loader, cfg.seed + epoch)
            for b, batch in enumerate(train_loader):
                if b < offset:
                    continue  # already trained on before the checkpoint we resumed from
                if step >= total_steps:
                    break
                lr = lr_at(step, cfg.lr, total_steps, cfg.warmup_steps, cfg.min_lr)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                batch = tuple(t.to(device) for t in batch)
                with autocast():
                    loss = loss_fn(model, batch)
                # Distributed: the mean over ranks, so that all log it and all stop together.
                mean_loss = mean_across_ranks(loss.detach())
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip is not None:
                    norm = nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                else:
                    norm = nn.utils.get_total_norm(
                        [p.grad for p in model.parameters() if p.grad is not None]
                    )
                # A finite loss can still have inf/NaN gradients (an overflow in the backward
                # pass); one update with either makes the weights NaN. Sticky: once a step is
                # bad, no later update is applied either, and the next sync() raises.
                bad = torch.maximum(
                    bad, (~(torch.isfinite(mean_loss) & torch.isfinite(norm))).to(bad.dtype)
                )
                pending_loss.append(mean_loss)
                pending_norm.append(norm.detach())
                if skip_on_device:
                    optimizer.found_inf = bad
                elif bad.item():
                    sync()  # raises for this step, before the update
                optimizer.step()
                step += 1
                tokens += batch[0].numel() * get_world_size()  # every rank trained on such a batch
                bar.update(1)
                if step % cfg.eval_every == 0 or step == total_steps:
                    sync()
                    val = (
                        mean_across_ranks(evaluate_fn(model, val_loader, device, cfg.eval_batches))
                        if val_loader is not None
                        else float("nan")
                    )
                    history.step.append(step)
                    history.tokens.append(tokens)
                    history.train_loss.append(run_sum / run_n)
                    history.val_loss.append(val)
                    history.lr.append(lr)
                    run_sum, run_n = 0.0, 0
                    bar.set_postfix(train=f"{history.train_loss[-1]:.3f}", val=f"{val:.3f}")
                    if log:
                        print(
                            f"step {step:5d} | tokens {tokens:9,d} | train loss "
                            f"{history.train_loss[-1]:.3f} | val loss {val:.3f} | lr {lr:.2e}",
                            flush=True,
                        )
                    if on_eval is not None:
                        on_eval(step, history)
                        model.train()
                if (
                    checkpoint_dir is not None
                    and cfg.checkpoint_every
                    and (step % cfg.checkpoint_every == 0 or step == total_steps)
                ):
                    checkpoint()
            offset = 0
        sync()
    finally:
        if skip_on_device and hasattr(optimizer, "found_inf"):  # absent if step 1 failed early
            del optimizer.found_inf  # the caller's optimizer steps normally afterwards
        bar.close()
    return history


def _can_skip_on_device(optimizer: torch.optim.Optimizer) -> bool:
    """Whether ``optimizer.step()`` skips its update when ``optimizer.found_inf`` is 1, on the
    device (the fused Adam/AdamW kernels, as ``torch.amp.GradScaler`` uses them)."""
    return (
        isinstance(optimizer, torch.optim.Adam | torch.optim.AdamW)
        and getattr(optimizer, "_step_supports_amp_scaling", False)
        and all(group.get("fused") for group in optimizer.param_groups)
    )


def _raise_not_finite(
    step: int, loss: float, norm: float, cfg: TrainConfig, total_steps: int, checkpoint_dir
) -> None:
    """The :class:`TrainingError` of a step whose loss or gradient norm was not finite."""
    lr = lr_at(step, cfg.lr, total_steps, cfg.warmup_steps, cfg.min_lr)
    where = f" (last checkpoint in {checkpoint_dir})" if checkpoint_dir else ""
    if not math.isfinite(loss):
        raise TrainingError(
            f"Loss became {loss} at step {step}; stopped before updating the weights, which "
            f"keep their last good values{where}. Lower the learning rate (now {lr:.2e}) or "
            f"enable grad_clip."
        )
    raise TrainingError(
        f"Gradient norm became {norm} at step {step} (the loss, {loss:.4f}, was finite); "
        f"stopped before updating the weights, which keep their last good values{where}. "
        f"Lower the learning rate (now {lr:.2e}), or turn amp off if it is on."
    )
