"""Instruction fine-tuning: the Alpaca prompt format, batching with masks, responses, scores.

A record is a dict with ``instruction``, ``input`` (may be empty) and ``output`` (see
:func:`mygpt.files.load_instruction_data`). Training pairs are ``(prompt, response)`` strings;
:class:`PromptResponseDataset` tokenizes them and :func:`collate` pads a batch into ``(x, y)``
tensors for :func:`mygpt.train`, with ``-100`` on every target position that should not count
(padding, and optionally the prompt). The scores (:func:`token_f1`, :func:`rouge_l`,
:func:`exact_match`) need no other model.
"""

from __future__ import annotations

import json
import string
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from .data import seeded_loader, split_fractions
from .errors import DataError
from .generation import generate
from .model import GPT
from .tokenizer import EOT_ID, decode, encode

#: The preamble of the Alpaca format (Taori et al., 2023).
ALPACA_PREAMBLE = (
    "Below is an instruction that describes a task. "
    "Write a response that appropriately completes the request."
)
RESPONSE_HEADER = "\n\n### Response:\n"
IGNORE_INDEX = -100


def format_prompt(entry: dict) -> str:
    """The Alpaca prompt of ``entry``: preamble, ``### Instruction:``, optional ``### Input:``,
    and the ``### Response:`` header the model continues from."""
    try:
        text = f"{ALPACA_PREAMBLE}\n\n### Instruction:\n{entry['instruction']}"
    except (KeyError, TypeError):
        raise DataError(
            f"An instruction record must be a dict with an 'instruction' key, got {entry!r}."
        ) from None
    if entry.get("input"):
        text += f"\n\n### Input:\n{entry['input']}"
    return text + RESPONSE_HEADER


def split_records(
    records: Sequence, train_frac: float = 0.85, test_frac: float = 0.1, seed: int | None = None
) -> tuple[list, list, list]:
    """Split ``records`` into (train, validation, test) lists: the first ``train_frac``, the next
    ``test_frac`` as test, the rest validation. ``seed`` shuffles a copy first (``None``: keep order)."""
    if not (0 < train_frac < 1 and 0 < test_frac < 1 and train_frac + test_frac < 1):
        raise DataError(
            f"train_frac and test_frac must be in (0, 1) and sum to less than 1, got "
            f"{train_frac} and {test_frac}."
        )
    # Cut in the order train, test, validation (:func:`mygpt.data.split_fractions`).
    train, test, val = split_fractions(
        list(records), (train_frac, test_frac, 1.0 - train_frac - test_frac), seed
    )
    return train, val, test


class PromptResponseDataset(Dataset):
    """``(prompt, response)`` string pairs as ``(token ids, prompt length)`` items.

    Each item's ids are ``encode(prompt + response)``; the prompt length says how many leading
    tokens belong to the prompt (for masking it out of the loss).
    """

    def __init__(self, pairs: Sequence[tuple[str, str]]) -> None:
        self.items: list[tuple[list[int], int]] = []
        for pair in pairs:
            if not (
                isinstance(pair, (tuple, list))
                and len(pair) == 2
                and all(isinstance(s, str) for s in pair)
            ):
                raise DataError(f"Each pair must be (prompt, response) strings, got {pair!r}.")
            prompt, response = pair
            self.items.append((encode(prompt + response), len(encode(prompt))))
        if not self.items:
            raise DataError("No (prompt, response) pairs given.")

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[list[int], int]:
        return self.items[index]


def instruction_pairs(records: Sequence[dict]) -> list[tuple[str, str]]:
    """``(format_prompt(r), r['output'])`` for each record."""
    return [(format_prompt(r), r["output"]) for r in records]


def collate(
    batch: Sequence[tuple[list[int], int | Sequence[bool]]],
    pad_id: int = EOT_ID,
    ignore_index: int = IGNORE_INDEX,
    max_length: int | None = None,
    mask_prompt: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad a batch of ``(ids, prompt_len)`` items into inputs ``x`` and targets ``y``, ``[B, T]``.

    Each sequence gets one ``<|endoftext|>`` appended (so the model learns to stop), then is padded
    with ``pad_id`` to the longest one. ``y`` is ``x`` shifted left by one; target positions that
    are padding become ``ignore_index`` (the first end-of-text stays a real target), and with
    ``mask_prompt`` so do the targets inside the prompt. ``max_length`` truncates inputs to that
    many tokens (keeping the start).

    An item may give, instead of a prompt length, one flag per token of ``ids``: only tokens
    flagged ``True`` (and the appended end-of-text) are targets, whatever ``mask_prompt`` says.
    The agent's transcripts use it to leave out the lines a tool writes (:mod:`mygpt.agent`).
    """
    if not batch:
        raise DataError("collate got an empty batch.")
    seqs = [list(ids) + [EOT_ID] for ids, _ in batch]
    width = max(len(s) for s in seqs)
    xs, ys = [], []
    for (ids, given), seq in zip(batch, seqs):
        real = len(seq)  # tokens that are not padding (including the one end-of-text)
        seq = seq + [pad_id] * (width - real)
        x = torch.tensor(seq[:-1])
        y = torch.tensor(seq[1:])
        # y[i] is token i+1: real targets are y[:real-1]; the rest is padding.
        y[real - 1 :] = ignore_index
        if isinstance(given, int):
            if mask_prompt:
                # Targets y[0 .. prompt_len-2] are prompt tokens 1 .. prompt_len-1.
                y[: max(given - 1, 0)] = ignore_index
        else:
            if len(given) != len(ids):
                raise DataError(f"An item has {len(ids)} tokens but {len(given)} target flags.")
            # y[i] is token i+1, so it counts if token i+1 is flagged; the end-of-text always counts.
            counts = torch.tensor([bool(f) for f in given[1:]] + [True])
            y[: real - 1][~counts] = ignore_index
        xs.append(x)
        ys.append(y)
    x, y = torch.stack(xs), torch.stack(ys)
    if max_length is not None:
        x, y = x[:, :max_length], y[:, :max_length]
    return x, y


def item_loader(
    items: Sequence,
    batch_size: int = 8,
    shuffle: bool = True,
    seed: int = 123,
    drop_last: bool = False,
    **collate_options,
) -> DataLoader:
    """A :class:`~torch.utils.data.DataLoader` of :func:`collate`-d batches of ready ``items``.

    Shuffled loaders carry a seeded generator, as :func:`mygpt.train` needs for replayable order.
    ``collate_options`` (``max_length``, ``mask_prompt``) go to :func:`collate`.
    """
    return seeded_loader(
        items,
        batch_size,
        shuffle=shuffle,
        seed=seed if shuffle else None,
        drop_last=drop_last,
        collate_fn=lambda b: collate(b, **collate_options),
    )


def create_loader(
    pairs: Sequence[tuple[str, str]],
    batch_size: int = 8,
    shuffle: bool = True,
    max_length: int | None = None,
    mask_prompt: bool = False,
    seed: int = 123,
    drop_last: bool = False,
) -> DataLoader:
    """:func:`item_loader` over the ``(prompt, response)`` ``pairs``, tokenized."""
    return item_loader(
        PromptResponseDataset(pairs),
        batch_size,
        shuffle,
        seed,
        drop_last,
        max_length=max_length,
        mask_prompt=mask_prompt,
    )


def generate_responses(
    model: GPT, prompts: Sequence[str], max_new_tokens: int = 48, batch_size: int = 16
) -> list[str]:
    """Greedy responses to ``prompts`` (strings), cut at ``<|endoftext|>`` and stripped.

    Prompts are batched (left-padded by :func:`mygpt.generate`); a prompt longer than the context
    leaves keeps its last tokens, so that ``max_new_tokens`` always fit.
    """
    keep = model.config.context_length - max_new_tokens
    out: list[str] = []
    for start in range(0, len(prompts), batch_size):
        ids = [encode(p)[-keep:] for p in prompts[start : start + batch_size]]
        width = max(len(i) for i in ids)
        rows = generate(model, ids, max_new_tokens, eos_id=EOT_ID)
        for row in rows[:, width:].tolist():
            if EOT_ID in row:
                row = row[: row.index(EOT_ID)]
            out.append(decode(row).strip())
    return out


def save_responses(
    records: Sequence[dict], responses: Sequence[str], path: str | Path, key: str = "model_response"
) -> Path:
    """Write ``records`` with ``responses`` added under ``key`` as a JSON list; returns the path."""
    if len(records) != len(responses):
        raise DataError(f"{len(records)} records but {len(responses)} responses.")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps([{**r, key: s} for r, s in zip(records, responses)], indent=1), encoding="utf-8"
    )
    return path


# --- scores that need no other model ------------------------------------------------------------


def normalize(text: str) -> list[str]:
    """Lower-case words with punctuation and the articles a/an/the removed (SQuAD's normalisation)."""
    text = text.lower().translate(str.maketrans("", "", string.punctuation))
    return [w for w in text.split() if w not in {"a", "an", "the"}]


def exact_match(prediction: str, reference: str) -> float:
    """1.0 if the normalised texts are equal, else 0.0."""
    return float(normalize(prediction) == normalize(reference))


def token_f1(prediction: str, reference: str) -> float:
    """Harmonic mean of precision and recall of the normalised words (a bag, counts clipped)."""
    p, r = normalize(prediction), normalize(reference)
    if not p or not r:
        return float(p == r)
    common = sum((Counter(p) & Counter(r)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(p), common / len(r)
    return 2 * precision * recall / (precision + recall)


def _lcs(a: list[str], b: list[str]) -> int:
    """Length of the longest common subsequence (dynamic programming, one row at a time)."""
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F1 (Lin, 2004): the longest common word subsequence, as precision/recall F1."""
    p, r = normalize(prediction), normalize(reference)
    if not p or not r:
        return float(p == r)
    lcs = _lcs(p, r)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(p), lcs / len(r)
    return 2 * precision * recall / (precision + recall)


def score_responses(responses: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Mean exact match, token F1 and ROUGE-L of ``responses`` against ``references``."""
    if len(responses) != len(references) or not responses:
        raise DataError(
            f"Need equally many responses and references (at least one), got "
            f"{len(responses)} and {len(references)}."
        )
    n = len(responses)
    return {
        name: sum(f(a, b) for a, b in zip(responses, references)) / n
        for name, f in (("exact_match", exact_match), ("token_f1", token_f1), ("rouge_l", rouge_l))
    }
