"""Fine-tuning a GPT for classification: data preparation, the classifier, training, saving.

The recipe (chapter 8): take a pretrained :class:`~mygpt.model.GPT`, put a small output layer
with one output per class on its final hidden states (:meth:`~mygpt.model.GPT.hidden`) in place
of the vocabulary-sized one, read the output at one position of each message (the last real
token, or the mean over all real tokens), and train with cross-entropy through
:func:`mygpt.training.train`, usually only the last block, the final LayerNorm and the new head.

Messages are right-padded with ``<|endoftext|>`` (50256). Attention is causal, so a real token
never sees the padding after it: the output at the last real token is the same with or without
padding, and no attention mask is needed.
"""

from __future__ import annotations

import dataclasses
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from .attention import padding_mask
from .checkpoint import (
    CLASSIFIER_FORMAT,
    CONFIG_NAME,
    WEIGHTS_NAME,
    config_from_dict,
    read_json,
    read_weights,
    write_directory,
    write_json,
    write_weights,
)
from .config import GPTConfig
from .data import seeded_loader, split_fractions
from .errors import CheckpointError, ConfigError, DataError, PromptError
from .model import GPT
from .tokenizer import EOT_ID, encode_ordinary
from .training import History, TrainConfig, train

POOLINGS = ("last", "mean")
FORMAT = CLASSIFIER_FORMAT


# --------------------------------------------------------------------------------------------
# Data: balance, split, dataset, loader
# --------------------------------------------------------------------------------------------


def balance_classes(rows: Sequence[tuple[str, str]], seed: int = 123) -> list[tuple[str, str]]:
    """Undersample every label to the size of the rarest one; ``rows`` are ``(label, text)``.

    The kept rows of each label are a seeded random sample; the result is grouped by label in
    sorted label order (shuffle it when splitting).
    """
    by_label: dict[str, list[tuple[str, str]]] = {}
    for row in rows:
        by_label.setdefault(row[0], []).append(row)
    if len(by_label) < 2:
        raise DataError(f"Need at least two labels to balance, got {sorted(by_label)}.")
    n = min(len(v) for v in by_label.values())
    rng = random.Random(seed)
    return [row for label in sorted(by_label) for row in rng.sample(by_label[label], n)]


def split_rows(
    rows: Sequence, fractions: Sequence[float] = (0.7, 0.1, 0.2), seed: int = 123
) -> tuple[list, ...]:
    """Shuffle ``rows`` with ``seed`` and cut them into parts of the given fractions (summing to 1).

    The last part takes whatever rounding leaves, so every row lands in exactly one part
    (:func:`mygpt.data.split_fractions`; the parts are lists).
    """
    return split_fractions(list(rows), fractions, seed)


class ClassificationDataset(Dataset):
    """Texts and their class indices, encoded once and truncated to ``max_length`` tokens.

    Items are ``(ids, label)`` with ``ids`` a 1-D tensor of 1 to ``max_length`` tokens; the
    collate function :func:`pad_batch` pads a batch to its longest message.
    """

    def __init__(self, texts: Sequence[str], labels: Sequence[int], max_length: int) -> None:
        if len(texts) != len(labels):
            raise DataError(
                f"{len(texts)} texts but {len(labels)} labels: give one label per text."
            )
        if max_length < 1:
            raise ConfigError(f"max_length must be at least 1, got {max_length}.")
        self.max_length = max_length
        self.ids = [torch.tensor(_encode_message(t, i)[:max_length]) for i, t in enumerate(texts)]
        self.labels = torch.tensor(list(labels), dtype=torch.long)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.ids[index], self.labels[index]


def _encode_message(text: str, index: int) -> list[int]:
    ids = encode_ordinary(text)  # user text: "<|endoftext|>" in a message is just characters
    if not ids:
        raise PromptError(f"Message {index} is empty: a classifier needs at least one token.")
    return ids


def pad_batch(
    batch: Sequence[tuple[torch.Tensor, torch.Tensor]], pad_id: int = EOT_ID
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-pad a list of ``(ids, label)`` to ``(ids [B, T], lengths [B], labels [B])``."""
    lengths = torch.tensor([len(ids) for ids, _ in batch])
    x = torch.full((len(batch), int(lengths.max())), pad_id, dtype=torch.long)
    for i, (ids, _) in enumerate(batch):
        x[i, : len(ids)] = ids
    return x, lengths, torch.stack([label for _, label in batch])


def classification_loader(
    dataset: ClassificationDataset,
    batch_size: int = 8,
    shuffle: bool = False,
    seed: int = 123,
    drop_last: bool = False,
) -> DataLoader:
    """A loader of padded batches; shuffled with its own seeded generator when ``shuffle``."""
    return seeded_loader(
        dataset,
        batch_size,
        shuffle=shuffle,
        seed=seed if shuffle else None,
        drop_last=drop_last,
        collate_fn=pad_batch,
    )


# --------------------------------------------------------------------------------------------
# The classifier
# --------------------------------------------------------------------------------------------


def pool(outputs: torch.Tensor, lengths: torch.Tensor, pooling: str = "last") -> torch.Tensor:
    """Reduce per-position outputs ``[B, T, C]`` of right-padded sequences to ``[B, C]``.

    ``"last"``: the output at each sequence's last real token (the only position that has seen
    the whole message). ``"mean"``: the mean over the real tokens.
    """
    if pooling == "last":
        return outputs[torch.arange(outputs.shape[0], device=outputs.device), lengths - 1]
    if pooling == "mean":
        keep = padding_mask(lengths, outputs.shape[1])
        return (outputs * keep[..., None]).sum(1) / lengths[:, None].to(outputs.dtype)
    raise ConfigError(f"Unknown pooling {pooling!r}; use one of {POOLINGS}.")


class GPTClassifier(nn.Module):
    """A GPT with a ``len(labels)``-way ``head`` on its final hidden states instead of its
    language-model output layer (which it leaves as it is, unused).

    ``forward(ids, lengths)`` gives class logits ``[B, n_labels]``, pooled as ``pooling`` says;
    :meth:`per_position` gives them at every position. ``max_length`` is where :func:`classify`
    truncates messages (default: the context length). The GPT is shared, not copied: training
    the classifier changes its weights (as :func:`set_trainable` chooses).
    """

    def __init__(
        self,
        gpt: GPT,
        labels: Sequence[str] = ("ham", "spam"),
        pooling: str = "last",
        max_length: int | None = None,
    ) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ConfigError(f"Unknown pooling {pooling!r}; use one of {POOLINGS}.")
        if len(labels) < 2 or len(set(labels)) != len(labels):
            raise ConfigError(
                f"A classifier needs two or more distinct labels, got {list(labels)}."
            )
        max_length = max_length or gpt.config.context_length
        if not 1 <= max_length <= gpt.config.context_length:
            raise ConfigError(
                f"max_length {max_length} must be between 1 and the model's context "
                f"({gpt.config.context_length})."
            )
        self.labels = list(labels)
        self.pooling = pooling
        self.max_length = max_length
        self.gpt = gpt
        # Small and fresh; the GPT's own lm_head (tied to its token embedding) stays untouched.
        self.head = nn.Linear(gpt.config.n_embd, len(labels))

    @property
    def config(self) -> GPTConfig:
        """The underlying GPT's configuration."""
        return self.gpt.config

    def per_position(self, ids: torch.Tensor) -> torch.Tensor:
        """Class logits at every position, ``[B, T, n_labels]``: the head on ``gpt.hidden(ids)``."""
        return self.head(self.gpt.hidden(ids))

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Class logits ``[B, n_labels]`` for right-padded ``ids`` ``[B, T]`` of ``lengths`` tokens."""
        if lengths is None:
            lengths = torch.full((ids.shape[0],), ids.shape[1], device=ids.device)
        return pool(self.per_position(ids), lengths.to(ids.device), self.pooling)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        # Classifiers saved before the head moved out of the GPT hold it as gpt.lm_head.
        if f"{prefix}head.weight" not in state_dict:
            for name in ("weight", "bias"):
                if f"{prefix}gpt.lm_head.{name}" in state_dict:
                    state_dict[f"{prefix}head.{name}"] = state_dict.pop(
                        f"{prefix}gpt.lm_head.{name}"
                    )
        # save_classifier leaves out a tied lm_head: it is the token embedding.
        tied = self.gpt.lm_head.weight is self.gpt.tok_emb.weight
        if tied and f"{prefix}gpt.lm_head.weight" not in state_dict:
            if f"{prefix}gpt.tok_emb.weight" in state_dict:
                state_dict[f"{prefix}gpt.lm_head.weight"] = state_dict[
                    f"{prefix}gpt.tok_emb.weight"
                ]
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def set_trainable(model: GPTClassifier, part: str = "last") -> int:
    """Choose what fine-tuning updates; returns the number of trainable parameters.

    ``"last"``: the last transformer block, the final LayerNorm and the head (the rest frozen).
    ``"head"``: the head only. ``"all"``: everything (but the GPT's unused language-model head).
    """
    gpt = model.gpt
    head = model.head
    parts = {"head": [head], "last": [gpt.blocks[-1], gpt.ln_f, head], "all": [gpt, head]}
    if part not in parts:
        raise ConfigError(f"Unknown trainable part {part!r}; use one of {sorted(parts)}.")
    gpt.requires_grad_(False)
    for module in parts[part]:
        module.requires_grad_(True)
    if gpt.lm_head.weight is not gpt.tok_emb.weight:  # untied: a matrix the classifier never uses
        gpt.lm_head.requires_grad_(False)
    return sum(
        p.numel() for p in {id(p): p for p in model.parameters() if p.requires_grad}.values()
    )


# --------------------------------------------------------------------------------------------
# Training and evaluation
# --------------------------------------------------------------------------------------------


@dataclass
class ClassifierHistory:
    """What :func:`train_classifier` measured: per step (train loss) and per epoch.

    ``train`` is the :class:`~mygpt.training.History` of the underlying :func:`~mygpt.training.train`
    (step, tokens, learning rate at each epoch's end).
    """

    step_loss: list[float] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    train: History = field(default_factory=History)


def classification_loss(model: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """Mean cross-entropy of a batch ``(ids, lengths, labels)`` (:func:`pad_batch`'s form): the
    ``loss_fn`` :func:`train_classifier` gives :func:`mygpt.training.train`."""
    x, lengths, y = batch
    return F.cross_entropy(model(x, lengths), y)


@torch.no_grad()
def predict(model: GPTClassifier, loader, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Predicted and true class indices over ``loader``, in eval mode."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    preds, targets = [], []
    try:
        for x, lengths, y in loader:
            preds.append(model(x.to(device), lengths.to(device)).argmax(-1).cpu())
            targets.append(y)
    finally:  # an error mid-loop must not leave a training model in eval mode
        model.train(was_training)
    if not preds:
        raise DataError("The loader yielded no batch: is the dataset empty?")
    return torch.cat(preds), torch.cat(targets)


@torch.no_grad()
def evaluate_classifier(model: GPTClassifier, loader, device=None) -> tuple[float, float]:
    """Mean cross-entropy loss (per message) and accuracy over ``loader``, in eval mode."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    losses, correct, n = [], [], 0
    try:
        for x, lengths, y in loader:  # summed on the device, read once at the end
            logits = model(x.to(device), lengths.to(device))
            y = y.to(device)
            losses.append(F.cross_entropy(logits, y, reduction="sum"))
            correct.append((logits.argmax(-1) == y).sum())
            n += len(y)
    finally:  # an error mid-loop must not leave a training model in eval mode
        model.train(was_training)
    if n == 0:
        raise DataError("The loader yielded no batch: is the dataset empty?")
    loss = 0.0
    for value in torch.stack(losses).tolist():  # added up in order, in float64
        loss += value
    return loss / n, int(torch.stack(correct).sum()) / n


def confusion_matrix(preds: torch.Tensor, targets: torch.Tensor, n_classes: int) -> torch.Tensor:
    """``[n_classes, n_classes]`` counts: row = true class, column = predicted class."""
    return torch.bincount(targets * n_classes + preds, minlength=n_classes**2).view(
        n_classes, n_classes
    )


def train_classifier(
    model: GPTClassifier,
    train_loader,
    val_loader=None,
    epochs: int = 3,
    lr: float = 5e-5,
    weight_decay: float = 0.1,
    device=None,
    log: bool = True,
    cfg: TrainConfig | None = None,
) -> ClassifierHistory:
    """Fine-tune ``model`` with cross-entropy on its pooled logits; returns the history.

    A thin wrapper over :func:`mygpt.training.train` (so: AdamW, gradient clipping, the
    learning-rate schedule, the NaN guard) with :func:`classification_loss` as the loss and
    loss + accuracy as the evaluation. Without ``cfg`` the learning rate stays at ``lr`` (no
    warmup, no decay) and gradients are clipped to norm 1. ``cfg`` chooses other settings (e.g.
    ``TrainConfig(warmup_steps=10)`` for warmup + cosine decay to ``min_lr``); its ``epochs``,
    ``lr``, ``weight_decay`` and ``log`` are replaced by the arguments, ``eval_every`` by one
    epoch. Only parameters with ``requires_grad`` are updated (see :func:`set_trainable`). After
    each epoch, loss and accuracy are measured on the whole training and validation sets (eval
    mode) and, with ``log``, printed on one deterministic line.
    """
    steps_per_epoch = len(train_loader)
    cfg = dataclasses.replace(
        cfg or TrainConfig(min_lr=lr),
        epochs=epochs,
        max_steps=None,
        lr=lr,
        weight_decay=weight_decay,
        eval_every=max(1, steps_per_epoch),
        log=False,  # the per-epoch line below says more (accuracy)
    )
    history = ClassifierHistory()
    step_losses: list[torch.Tensor] = []

    def loss_fn(model: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        loss = classification_loss(model, batch)
        step_losses.append(loss.detach())  # read at the end: no sync per step
        return loss

    def evaluate_fn(model, loader, device, max_batches) -> float:
        val_loss, val_acc = evaluate_classifier(model, loader, device)
        history.val_loss.append(val_loss)
        history.val_acc.append(val_acc)
        return val_loss

    def on_eval(step: int, _: History) -> None:
        train_loss, train_acc = evaluate_classifier(model, train_loader, device)
        history.train_loss.append(train_loss)
        history.train_acc.append(train_acc)
        line = f"epoch {step // steps_per_epoch}: train loss {train_loss:.3f}, acc {train_acc:.4f}"
        if val_loader is not None:
            line += f" | val loss {history.val_loss[-1]:.3f}, acc {history.val_acc[-1]:.4f}"
        if log:
            print(line)

    history.train = train(
        model,
        train_loader,
        val_loader,
        cfg,
        device=device,
        on_eval=on_eval,
        loss_fn=loss_fn,
        evaluate_fn=evaluate_fn,
    )
    history.step_loss = torch.stack(step_losses).tolist()
    model.eval()
    return history


@torch.no_grad()
def classify(model: GPTClassifier, messages: Sequence[str], batch_size: int = 32) -> list[str]:
    """Label each message with ``model`` (truncated to its ``max_length`` tokens).

    Raises :class:`PromptError` for an empty list or an empty message.
    """
    if isinstance(messages, str):
        raise PromptError("classify() takes a list of messages, not one string: use [message].")
    if len(messages) == 0:
        raise PromptError("No messages to classify: pass a non-empty list of strings.")
    dataset = ClassificationDataset(messages, [0] * len(messages), model.max_length)
    preds, _ = predict(model, classification_loader(dataset, batch_size=batch_size))
    return [model.labels[i] for i in preds.tolist()]


# --------------------------------------------------------------------------------------------
# Saving and loading
# --------------------------------------------------------------------------------------------


def save_classifier(model: GPTClassifier, directory: str | os.PathLike) -> Path:
    """Save weights (``model.safetensors``) and config with labels (``config.json``) as
    ``directory``, replacing any earlier contents as a whole (see
    :func:`mygpt.checkpoint.write_directory`)."""
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    if model.gpt.lm_head.weight is model.gpt.tok_emb.weight:
        del state["gpt.lm_head.weight"]  # tied: the token embedding, stored once
    config = {
        "format": FORMAT,
        "gpt": model.config.to_dict(),
        "labels": model.labels,
        "pooling": model.pooling,
        "max_length": model.max_length,
    }

    def fill(tmp: Path) -> None:
        write_weights(state, tmp / WEIGHTS_NAME)
        write_json(config, tmp / CONFIG_NAME)

    return write_directory(directory, fill)


def load_classifier(path: str | os.PathLike, device=None) -> GPTClassifier:
    """Load a classifier saved by :func:`save_classifier` (in eval mode)."""
    directory = Path(path)
    config_path = directory / CONFIG_NAME
    config = read_json(
        config_path,
        f"No {CONFIG_NAME} in {directory}: is it a classifier saved by mygpt.save_classifier?",
    )
    if config.get("format") != FORMAT:
        raise CheckpointError(
            f"{directory} holds no classifier (config.json has no "
            f"'format': '{FORMAT}'); a language model loads with mygpt.load_model."
        )
    missing = [key for key in ("gpt", "labels", "pooling", "max_length") if key not in config]
    if missing:
        raise CheckpointError(
            f"{config_path} has no {', '.join(map(repr, missing))}: it is damaged, "
            f"or was not written by mygpt.save_classifier."
        )
    gpt_config = config_from_dict(config["gpt"], config_path)
    try:
        with torch.random.fork_rng(devices=[]):  # the fresh weights are overwritten; keep RNG as is
            model = GPTClassifier(
                GPT(gpt_config), config["labels"], config["pooling"], config["max_length"]
            )
    except (ConfigError, TypeError) as e:
        raise CheckpointError(f"{config_path} does not describe a valid classifier: {e}") from e
    state = read_weights(directory / WEIGHTS_NAME)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise CheckpointError(f"{directory / WEIGHTS_NAME} does not fit its config: {e}") from e
    return (model.to(device) if device is not None else model).eval()
