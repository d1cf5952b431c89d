"""Training a GPT: the loss, evaluation, the optimizer, the schedule, the loop, checkpoints.

The loop is deliberately plain (nanoGPT-style) so the book can show it whole. Two properties
it guarantees: checkpoints are written atomically (a crash leaves the last good one), and a run
resumed from a checkpoint produces exactly the losses of an uninterrupted run on the CPU.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import pickle
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .checkpoint import atomic_write, load_model_state, read_weights, save_model
from .errors import CheckpointError, ConfigError, TrainingError
from .device import progress
from .distributed import barrier, get_world_size, is_main_process, mean_across_ranks
from .model import GPT


def next_token_loss(logits: torch.Tensor, targets: torch.Tensor, ignore_index: int = -100) -> torch.Tensor:
    """Mean cross-entropy of predicting ``targets`` ``[B, T]`` from ``logits`` ``[B, T, vocab]``.

    Target positions equal to ``ignore_index`` (e.g. padding) do not count.
    """
    return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=ignore_index)


def batch_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, ignore_index: int = -100) -> torch.Tensor:
    """``next_token_loss(model(x), y)``, with the output layer computed only where ``y`` has a target.

    Fine-tuning batches mask most positions (padding, and prompts with ``mask_prompt``); for a
    :class:`~mygpt.model.GPT` those positions then skip the 50,257-way output layer, its largest
    cost. Same value as the plain form (tested); batches without a masked target take the plain one.
    """
    keep = y != ignore_index
    if keep.all() or not isinstance(_unwrap(model), GPT):
        return next_token_loss(model(x), y, ignore_index)
    return F.cross_entropy(model(x, logits_at=keep).float(), y[keep])


def perplexity(loss: float) -> float:
    """``exp(loss)``: the number of equally likely tokens the model is, on average, choosing among."""
    return math.exp(loss)


def _unwrap(model: nn.Module) -> nn.Module:
    return getattr(model, "module", model)  # DistributedDataParallel keeps the model in .module


@torch.no_grad()
def evaluate(model: nn.Module, loader, device=None, max_batches: int | None = None) -> float:
    """Mean next-token loss over (the first ``max_batches`` batches of) ``loader``, in eval mode."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    total, n = 0.0, 0
    for i, (x, y) in enumerate(loader):
        if max_batches is not None and i >= max_batches:
            break
        total += batch_loss(model, x.to(device), y.to(device)).item()
        n += 1
    model.train(was_training)
    if n == 0:
        raise TrainingError("The evaluation loader yielded no batch: is the validation text "
                            "shorter than one context window?")
    return total / n


def configure_optimizer(model: nn.Module, lr: float, weight_decay: float = 0.1,
                        betas: tuple[float, float] = (0.9, 0.95)) -> torch.optim.AdamW:
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


def lr_at(step: int, max_lr: float, total_steps: int, warmup_steps: int = 0,
          min_lr: float | None = None) -> float:
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
        for name in ("epochs", "eval_every", "keep_last"):
            if getattr(self, name) < 1:
                raise ConfigError(f"TrainConfig.{name} must be >= 1, got {getattr(self, name)!r}.")
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError(f"TrainConfig.max_steps must be >= 1 or None, got {self.max_steps!r}.")
        if not self.lr > 0:
            raise ConfigError(f"TrainConfig.lr must be positive, got {self.lr!r}.")
        if self.weight_decay < 0:
            raise ConfigError(f"TrainConfig.weight_decay must be >= 0, got {self.weight_decay!r}.")


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


def save_training_checkpoint(directory: str | Path, model: nn.Module, optimizer, state: dict,
                             keep_last: int = 2) -> Path:
    """Write ``directory/step-NNNNNNN/`` (weights, config, training state), then point
    ``directory/latest`` at it. The step directory is built under a temporary name and renamed,
    and ``latest`` is replaced atomically, so a crash at any moment leaves the last good one."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    name = f"step-{state['step']:07d}"
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=directory))
    try:
        save_model(_unwrap(model), tmp)
        full = dict(state, optimizer=optimizer.state_dict(), rng=torch.get_rng_state())
        torch.save(full, tmp / STATE_NAME)
        final = directory / name
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    atomic_write(directory / "latest", lambda t: Path(t).write_text(name))
    old = sorted(p for p in directory.glob("step-*") if p.is_dir())[:-keep_last]
    for p in old:
        shutil.rmtree(p, ignore_errors=True)
    return final


def latest_checkpoint(directory: str | Path) -> Path | None:
    """The directory ``latest`` points at, or ``None`` when there is no checkpoint yet."""
    pointer = Path(directory) / "latest"
    if not pointer.exists():
        return None
    path = Path(directory) / pointer.read_text().strip()
    if not path.is_dir():
        raise CheckpointError(f"{pointer} names {path.name}, which does not exist. Write the name of "
                              f"an existing step-* directory into it, or delete it to start afresh.")
    return path


def load_training_checkpoint(path: str | Path, model: nn.Module, optimizer=None) -> dict:
    """Load weights (and optimizer state, if given) from a step directory; return the state dict."""
    path = Path(path)
    load_model_state(_unwrap(model), read_weights(path / "model.safetensors"), source=str(path))
    try:
        # weights_only: never unpickle arbitrary objects. map_location: rank 0 saved its GPU's
        # tensors; every rank loads them on the CPU, and the optimizer moves them to its device.
        state = torch.load(path / STATE_NAME, weights_only=True, map_location="cpu")
    except FileNotFoundError:
        raise CheckpointError(f"No {STATE_NAME} in {path}: not a training checkpoint.") from None
    except (RuntimeError, pickle.UnpicklingError, EOFError) as e:  # torch's own advice (load
        # with weights_only=False) would run whatever code the file holds: not an option here.
        raise CheckpointError(
            f"{path / STATE_NAME} is not a readable training state (truncated, corrupt, or holding "
            f"objects other than tensors and plain data, which are refused because loading them "
            f"could run code). Resume from an earlier checkpoint by writing its name (e.g. "
            f"step-0000100) into {path.parent / 'latest'}.") from e
    if optimizer is not None:
        optimizer.load_state_dict(state["optimizer"])
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
) -> History:
    """Train ``model`` on ``train_loader`` with AdamW, warmup + cosine schedule and clipping.

    Every ``cfg.eval_every`` steps: evaluate on ``val_loader``, record :class:`History`, print a
    line, and call ``on_eval(step, history)`` (e.g. to sample text). With ``checkpoint_dir``,
    save every ``cfg.checkpoint_every`` steps and at the end; with ``resume=True``, continue
    from the latest checkpoint there, exactly where it stopped (same data order, same dropout
    masks). Shuffled loaders must carry a ``generator`` (``create_dataloader`` makes one) for
    the data order to be replayable. Raises :class:`TrainingError` if the loss becomes NaN or
    infinite; the model then keeps the weights of the last good step.

    Under torchrun (see :mod:`mygpt.distributed`) every rank calls ``train`` with its DDP-wrapped
    model and its share of the data; only rank 0 prints, shows the bar and writes checkpoints,
    logged losses and token counts are over all ranks, and ``on_eval`` runs on every rank.
    """
    cfg = cfg or TrainConfig()
    device = device or next(model.parameters()).device
    steps_per_epoch = len(train_loader)
    if steps_per_epoch == 0:
        raise TrainingError("The training loader yields no batch: the text is shorter than one "
                            "batch of windows; lower batch_size or context_length.")
    total_steps = cfg.max_steps or cfg.epochs * steps_per_epoch
    optimizer = optimizer or configure_optimizer(model, cfg.lr, cfg.weight_decay, cfg.betas)
    history, step, tokens, run_sum, run_n = History(), 0, 0, 0.0, 0
    main = is_main_process()  # True in a single process; rank 0 of a distributed run
    log = cfg.log and main

    if resume and checkpoint_dir is not None and (last := latest_checkpoint(checkpoint_dir)):
        state = load_training_checkpoint(last, model, optimizer)
        step, tokens, run_sum, run_n = state["step"], state["tokens"], state["run_sum"], state["run_n"]
        history = History(**state["history"])
        torch.set_rng_state(state["rng"])
        if log:
            print(f"resumed from {last.name} (step {step})")

    def checkpoint() -> None:
        if main:  # one writer; the other ranks hold identical weights and wait at the barrier
            save_training_checkpoint(checkpoint_dir, model, optimizer, dict(
                step=step, tokens=tokens, run_sum=run_sum, run_n=run_n,
                history=dataclasses.asdict(history), train_config=dataclasses.asdict(cfg)), cfg.keep_last)
        barrier()  # no rank runs ahead (or exits) before the checkpoint is complete

    use_amp = cfg.amp and torch.device(device).type == "cuda"
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if use_amp else contextlib.nullcontext
    model.train()
    bar = progress(total=total_steps, initial=step, desc="train", unit="step",
                   **({} if main else {"disable": True}))  # one bar, rank 0's
    while step < total_steps:
        epoch, offset = divmod(step, steps_per_epoch)
        _seed_epoch(train_loader, cfg.seed + epoch)
        for b, (x, y) in enumerate(train_loader):
            if b < offset:
                continue  # already trained on before the checkpoint we resumed from
            if step >= total_steps:
                break
            lr = lr_at(step, cfg.lr, total_steps, cfg.warmup_steps, cfg.min_lr)
            for group in optimizer.param_groups:
                group["lr"] = lr
            x, y = x.to(device), y.to(device)
            with autocast():
                loss = batch_loss(model, x, y)
            # Distributed: the mean over ranks, so that all log it and all stop together on NaN.
            mean_loss = mean_across_ranks(loss.detach())
            if not torch.isfinite(mean_loss):
                raise TrainingError(
                    f"Loss became {mean_loss.item()} at step {step}; stopped before updating the weights, "
                    f"which keep their last good values"
                    + (f" (last checkpoint in {checkpoint_dir})" if checkpoint_dir else "")
                    + ". Lower the learning rate (now {lr:.2e}) or enable grad_clip.".format(lr=lr))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip is not None:
                norm = nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            else:
                norm = nn.utils.get_total_norm([p.grad for p in model.parameters() if p.grad is not None])
            # A finite loss can still have inf/NaN gradients (an overflow in the backward pass).
            # One update with them makes weights NaN, and the next checkpoint would save them.
            if not torch.isfinite(norm):
                raise TrainingError(
                    f"Gradient norm became {norm.item()} at step {step} (the loss, "
                    f"{mean_loss.item():.4f}, was finite); stopped before updating the weights, which "
                    f"keep their last good values"
                    + (f" (last checkpoint in {checkpoint_dir})" if checkpoint_dir else "")
                    + f". Lower the learning rate (now {lr:.2e}), or turn amp off if it is on.")
            optimizer.step()
            step += 1
            tokens += x.numel() * get_world_size()  # every rank trained on a batch like x
            run_sum += mean_loss.item()
            run_n += 1
            bar.update(1)
            if step % cfg.eval_every == 0 or step == total_steps:
                val = (mean_across_ranks(evaluate(model, val_loader, device, cfg.eval_batches))
                       if val_loader is not None else float("nan"))
                history.step.append(step)
                history.tokens.append(tokens)
                history.train_loss.append(run_sum / run_n)
                history.val_loss.append(val)
                history.lr.append(lr)
                run_sum, run_n = 0.0, 0
                if log:
                    print(f"step {step:5d} | tokens {tokens:9,d} | train loss {history.train_loss[-1]:.3f}"
                          f" | val loss {val:.3f} | lr {lr:.2e}", flush=True)
                if on_eval is not None:
                    on_eval(step, history)
                    model.train()
            if checkpoint_dir is not None and cfg.checkpoint_every and (
                    step % cfg.checkpoint_every == 0 or step == total_steps):
                checkpoint()
        offset = 0
    bar.close()
    return history
