"""From data to batches: the sliding-window dataset, the seeded loader, and the splits.

- **Next-token pairs.** :class:`TokenWindowDataset` slides a window of ``context_length`` tokens
  over a sequence of token ids; each window ``x`` comes with its target ``y``, the same window
  shifted one token to the right. :func:`create_dataloader` wraps it in a seeded ``DataLoader``.
- **Loaders.** :func:`seeded_loader` is how every loader of the package is built (this module's,
  :mod:`mygpt.distributed`'s, :mod:`mygpt.finetune`'s, :mod:`mygpt.instruct`'s and
  :mod:`mygpt.agent`'s): one place decides how shuffling is seeded.
- **Splits.** :func:`split_fractions` cuts a sequence into parts of given fractions, optionally
  after a seeded shuffle; :func:`train_val_split`, :func:`mygpt.finetune.split_rows` and
  :func:`mygpt.instruct.split_records` are views of it.

The files themselves (registry, download, verification) are :mod:`mygpt.files`'s job, their
formats :mod:`mygpt.formats`'s. The chapters read five of those names from here, so they are
re-exported: ``read_text``, ``load_sms_spam`` and ``load_instruction_data`` (chapters 8 and 9
call ``mygpt.data.<name>``), ``REGISTRY`` and ``DataFile`` (the errors appendix imports them
``from mygpt.data``).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from .errors import DataError

# Re-exported because the chapters use them as mygpt.data.<name> (their home is mygpt.files).
from .files import REGISTRY as REGISTRY
from .files import DataFile as DataFile
from .files import load_instruction_data as load_instruction_data
from .files import load_sms_spam as load_sms_spam
from .files import read_text as read_text

# --------------------------------------------------------------------------------------------
# Next-token dataset
# --------------------------------------------------------------------------------------------

TokenIds = Sequence[int] | torch.Tensor


def _as_ids(ids: TokenIds) -> torch.Tensor:
    """Token ids as a 1-D int64 tensor, with a clear error for anything else."""
    try:
        tensor = torch.as_tensor(ids)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise DataError(f"Token ids must be a 1-D sequence of integers ({exc}).") from exc
    if tensor.dim() != 1:
        raise DataError(f"Token ids must be 1-D, got shape {tuple(tensor.shape)}.")
    # An empty list becomes a float tensor: let it through to the "too few tokens" message.
    bad_dtype = tensor.is_floating_point() or tensor.is_complex() or tensor.dtype == torch.bool
    if tensor.numel() and bad_dtype:
        raise DataError(f"Token ids must be integers, got dtype {tensor.dtype}.")
    tensor = tensor.to(torch.long)
    if tensor.numel() and int(tensor.min()) < 0:
        raise DataError("Token ids must be non-negative.")
    return tensor


def encode_if_text(ids_or_text: str | TokenIds) -> TokenIds:
    """Token ids for ``ids_or_text``: a ``str`` is encoded with GPT-2's tokenizer, ids pass as is.

    The loaders (:func:`create_dataloader`, :func:`mygpt.distributed.distributed_dataloader`)
    accept either; the ids are checked later, by :class:`TokenWindowDataset`.
    """
    if isinstance(ids_or_text, str):
        from .tokenizer import encode  # lazy: only text inputs need the tokenizer

        return encode(ids_or_text)
    return ids_or_text


def positive_int(name: str, value: object) -> int:
    """Return ``value`` if it is an ``int`` above 0 (not a ``bool``).

    Raises:
        DataError: it is not; the message names the parameter ``name``.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise DataError(f"{name} must be a positive integer, got {value!r}.")
    return value


def _check_vocab(ids: torch.Tensor, vocab_size: int) -> None:
    """:class:`DataError` naming the first id that is not below ``vocab_size``."""
    if ids.numel() and int(ids.max()) >= vocab_size:  # one pass; locate the id only when bad
        position = int((ids >= vocab_size).nonzero()[0, 0])
        raise DataError(
            f"Token id {int(ids[position])} at position {position} is outside the vocabulary of "
            f"{vocab_size} ids (0..{vocab_size - 1}). Encode the text with the model's tokenizer, "
            f"or give the model a larger vocab_size."
        )


class TokenWindowDataset(Dataset):
    """Sliding windows over token ids: item ``i`` is ``(x, y)`` for next-token prediction.

    With ``s = i * stride`` and ``T = context_length``: ``x = ids[s : s+T]`` and
    ``y = ids[s+1 : s+T+1]`` (the same window shifted by one, so ``y[t]`` is the token that
    follows ``x[t]``). Only full windows count, so there are ``(len(ids) - T - 1) // stride + 1``
    items. ``stride = T`` gives non-overlapping windows; a smaller stride overlaps them.
    Items are views into one int64 tensor (no copy per window).

    ``vocab_size`` (the model's, optional): every id must be below it. Checked here, once, so
    that a bad id is a :class:`DataError` naming it, not an ``IndexError`` from the embedding
    somewhere in training (or a device-side assert on a GPU).
    """

    def __init__(
        self,
        ids: TokenIds,
        context_length: int,
        stride: int | None = None,
        vocab_size: int | None = None,
    ) -> None:
        self.context_length = positive_int("context_length", context_length)
        self.stride = positive_int("stride", context_length if stride is None else stride)
        self.ids = _as_ids(ids)
        if vocab_size is not None:
            _check_vocab(self.ids, positive_int("vocab_size", vocab_size))
        needed = self.context_length + 1  # T inputs plus the one extra target token
        if self.ids.numel() < needed:
            raise DataError(
                f"{self.ids.numel()} tokens are too few for one window: context_length="
                f"{self.context_length} needs at least {needed} tokens (inputs plus one shifted "
                f"target). Use a longer text or a smaller context_length."
            )

    def __len__(self) -> int:
        return (self.ids.numel() - self.context_length - 1) // self.stride + 1

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"window {index} out of range for {len(self)} windows")
        start = (index % len(self)) * self.stride
        end = start + self.context_length
        return self.ids[start:end], self.ids[start + 1 : end + 1]


# --------------------------------------------------------------------------------------------
# Loaders
# --------------------------------------------------------------------------------------------


def seeded_loader(
    dataset: Dataset | Sequence,
    batch_size: int,
    *,
    shuffle: bool = False,
    seed: int | None = None,
    drop_last: bool = False,
    collate_fn: Callable | None = None,
    sampler: Sampler | None = None,
    num_workers: int = 0,
) -> DataLoader:
    """A ``DataLoader`` over ``dataset``: the one way the package's loader factories build one.

    ``seed`` (an int) gives the loader its own ``torch.Generator``, seeded with it, as
    ``loader.generator``. It draws the shuffle order, so two loaders with the same seed yield the
    same batches, successive epochs of one loader differ, and :func:`mygpt.training.train` can replay
    an epoch by re-seeding ``loader.generator``; and it draws the base seed that each pass over the
    loader takes, so iterating the loader leaves torch's global RNG alone. ``seed=None``: no
    generator, and each pass draws that base seed from the global RNG; allowed only when the
    loader does not shuffle by itself (in order, or ordered by a seeded ``sampler`` such as
    ``DistributedSampler``). ``collate_fn`` (default: torch's) turns a list of items into a batch.

    Raises:
        DataError: ``shuffle`` without a ``seed`` (the order could not be replayed), or
            ``shuffle`` together with a ``sampler``.
    """
    if shuffle and seed is None:
        raise DataError("A shuffled loader needs a seed, so that its order can be replayed.")
    if shuffle and sampler is not None:
        raise DataError("Pass shuffle=True or a sampler, not both: the sampler sets the order.")
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        sampler=sampler,
        drop_last=drop_last,
        num_workers=num_workers,
        collate_fn=collate_fn,
        generator=None if seed is None else torch.Generator().manual_seed(seed),
    )


def create_dataloader(
    ids_or_text: str | TokenIds,
    batch_size: int,
    context_length: int,
    stride: int | None = None,
    shuffle: bool = True,
    drop_last: bool = True,
    seed: int = 0,
    num_workers: int = 0,
    vocab_size: int | None = None,
) -> DataLoader:
    """A ``DataLoader`` of ``(x, y)`` batches, each of shape ``[batch_size, context_length]``.

    Text is encoded with the GPT-2 tokenizer first. ``stride`` defaults to ``context_length``.
    Shuffling draws from a ``torch.Generator`` seeded with ``seed``: two loaders made with the
    same arguments yield the same batches, and successive epochs of one loader differ.
    Pass the model's ``vocab_size`` to have every id checked against it up front.
    Raises :class:`DataError` if ``drop_last`` would leave no batch at all, or an id is not
    below ``vocab_size``.
    """
    positive_int("batch_size", batch_size)
    dataset = TokenWindowDataset(encode_if_text(ids_or_text), context_length, stride, vocab_size)
    if drop_last and len(dataset) < batch_size:
        raise DataError(
            f"Only {len(dataset)} windows for batch_size={batch_size} with drop_last=True: the "
            f"loader would yield no batch. Lower batch_size, context_length or stride, or pass "
            f"drop_last=False."
        )
    # Seeded even when not shuffled: iterating it then leaves torch's global RNG alone.
    return seeded_loader(
        dataset,
        batch_size,
        shuffle=shuffle,
        seed=seed,
        drop_last=drop_last,
        num_workers=num_workers,
    )


# --------------------------------------------------------------------------------------------
# Splits
# --------------------------------------------------------------------------------------------


def split_fractions(
    items: Sequence, fractions: Sequence[float], seed: int | None = None
) -> tuple[Sequence, ...]:
    """Cut ``items`` into consecutive parts of the given ``fractions`` (non-negative, summing to 1).

    Part ``k`` has ``int(fractions[k] * len(items))`` items, except the last, which takes whatever
    rounding leaves, so every item lands in exactly one part. ``seed``: shuffle a copy with
    ``random.Random(seed)`` first (the parts are then lists); ``None`` keeps the order, and the
    parts are slices of ``items``, of its own type (strings for a string, tensors for a tensor).
    """
    if not fractions or any(f < 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-9:
        raise DataError(
            f"Split fractions must be non-negative and sum to 1, got {list(fractions)}."
        )
    if seed is not None:
        items = list(items)
        random.Random(seed).shuffle(items)
    parts, start = [], 0
    for f in fractions[:-1]:
        end = start + int(f * len(items))
        parts.append(items[start:end])
        start = end
    parts.append(items[start:])
    return tuple(parts)


def train_val_split(ids_or_text: str | TokenIds, train_frac: float = 0.9) -> tuple:
    """Split by position: the first ``train_frac`` is training data, the rest validation.

    Returns two pieces of the input's own type (two strings for text, split by characters as in
    the book; two slices for ids). Not random, so the validation text is unseen continuous prose.
    """
    if (
        isinstance(train_frac, bool)
        or not isinstance(train_frac, (int, float))
        or not 0.0 < train_frac < 1.0
    ):
        raise DataError(f"train_frac must be between 0 and 1 (exclusive), got {train_frac!r}.")
    train, val = split_fractions(ids_or_text, (train_frac, 1.0 - train_frac))
    if len(train) == 0 or len(val) == 0:
        raise DataError(
            f"train_frac={train_frac} of {len(ids_or_text)} items leaves one part empty; "
            f"use more data or a train_frac nearer 0.5."
        )
    return train, val
