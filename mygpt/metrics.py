"""Measuring generated text: diversity, repetition, likelihood under the model, length to stop.

Chapter 6 compares sampling settings by numbers instead of by hand-picked examples. Each
function here takes token ids (lists of ints, or a ``[B, T]`` tensor from :func:`mygpt.generate`),
so the measures work for any tokenizer:

* :func:`distinct_n` -- the share of n-grams across a set of samples that are different
  (Li et al., 2016): low when samples repeat themselves or each other.
* :func:`repetition_rate` -- the share of a sample's n-grams that already occurred earlier in the
  same sample: high in the loops greedy decoding falls into.
* :func:`token_log_probs` / :func:`mean_log_likelihood` -- how likely the model itself finds the
  generated tokens (at temperature 1, unfiltered): high for safe, predictable text.
* :func:`cut_at_stop` -- each sample's new tokens up to and including the stop token, and whether
  it stopped.
* :func:`sample_metrics` -- all of the above for one batch of samples, as a dict.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .device import at_least_float32
from .errors import SamplingError
from .model import GPT


def _rows(samples: Sequence[Sequence[int]] | torch.Tensor) -> list[list[int]]:
    """Samples as a list of lists of ints (a ``[B, T]`` tensor is split into its rows)."""
    if isinstance(samples, torch.Tensor):
        if samples.dim() != 2:
            raise SamplingError(
                f"Expected samples as a [B, T] tensor, got shape {tuple(samples.shape)}."
            )
        return samples.tolist()
    return [list(s) for s in samples]


def _check_n(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise SamplingError(f"n (the n-gram length) must be an integer >= 1, got {n!r}.")


def ngrams(ids: Sequence[int], n: int) -> list[tuple[int, ...]]:
    """The ``len(ids) - n + 1`` overlapping n-grams of ``ids`` (none if it is shorter than ``n``)."""
    _check_n(n)
    ids = list(ids)
    return [tuple(ids[i : i + n]) for i in range(len(ids) - n + 1)]


def distinct_n(samples: Sequence[Sequence[int]] | torch.Tensor, n: int) -> float:
    """Distinct-n of a set of samples: different n-grams / all n-grams, pooled over the samples.

    1.0 means no n-gram occurs twice anywhere in the set; a set of identical samples (as greedy
    decoding gives for one prompt) scores at most ``1 / len(samples)``. Returns ``nan`` when no
    sample has ``n`` tokens.
    """
    grams = [g for s in _rows(samples) for g in ngrams(s, n)]
    return len(set(grams)) / len(grams) if grams else float("nan")


def repetition_rate(ids: Sequence[int], n: int = 3) -> float:
    """Share of the n-grams of one sample that already occurred earlier in the same sample.

    0.0 for text that never repeats an n-gram; close to 1.0 for a loop. ``nan`` when the sample
    has fewer than ``n`` tokens.
    """
    grams = ngrams(ids, n)
    if not grams:
        return float("nan")
    seen: set[tuple[int, ...]] = set()
    repeats = 0
    for g in grams:
        repeats += g in seen
        seen.add(g)
    return repeats / len(grams)


def cut_at_stop(
    new_tokens: Sequence[Sequence[int]] | torch.Tensor, eos_id: int | None
) -> tuple[list[list[int]], list[bool]]:
    """Each sample's tokens up to and including its first ``eos_id``, and whether it had one.

    :func:`mygpt.generate` pads a finished row with the stop token; this drops that padding.
    With ``eos_id=None`` nothing is cut and no sample counts as stopped.
    """
    cut, stopped = [], []
    for row in _rows(new_tokens):
        if eos_id is not None and eos_id in row:
            cut.append(row[: row.index(eos_id) + 1])
            stopped.append(True)
        else:
            cut.append(row)
            stopped.append(False)
    return cut, stopped


@torch.inference_mode()
def token_log_probs(model: GPT, idx: torch.Tensor, start: int) -> torch.Tensor:
    """Log-probability the model gives each token ``idx[:, start:]`` after the tokens before it.

    One forward pass over ``idx`` (``[B, T]``, no padding, ``1 <= start < T <= context``);
    returns ``[B, T - start]``, computed at temperature 1 with no filter, i.e. under the model's
    own distribution, whatever settings produced the tokens.
    """
    if idx.dim() != 2 or not 1 <= start < idx.size(1):
        raise SamplingError(
            f"Need a [B, T] tensor and 1 <= start < T; got shape "
            f"{tuple(idx.shape)} and start={start}."
        )
    logits = at_least_float32(model(idx.to(model.tok_emb.weight.device))[:, start - 1 : -1, :])
    logp = torch.log_softmax(logits, dim=-1)
    return logp.gather(-1, idx[:, start:, None].to(logp.device)).squeeze(-1).cpu()


def mean_log_likelihood(
    model: GPT, idx: torch.Tensor, start: int, lengths: Sequence[int] | None = None
) -> list[float]:
    """Mean log-probability per generated token of each row of ``idx`` (tokens from ``start``).

    ``lengths``: how many generated tokens of each row count (e.g. up to the stop token, from
    :func:`cut_at_stop`); default all of them. Higher (closer to 0) means more predictable text.
    """
    logp = token_log_probs(model, idx, start)
    if lengths is None:
        lengths = [logp.size(1)] * logp.size(0)
    if len(lengths) != logp.size(0) or any(not 1 <= n <= logp.size(1) for n in lengths):
        raise SamplingError(
            f"lengths must give 1..{logp.size(1)} tokens for each of the "
            f"{logp.size(0)} rows, got {list(lengths)!r}."
        )
    return [logp[row, :n].mean().item() for row, n in enumerate(lengths)]


def sample_metrics(
    model: GPT, out: torch.Tensor, prompt_len: int, eos_id: int | None = None, rep_n: int = 3
) -> dict[str, float]:
    """Every measure of this module for one batch from :func:`mygpt.generate`.

    ``out`` is ``[B, prompt_len + new]`` (all prompts of length ``prompt_len``). Samples are cut
    at the stop token first. Returns ``distinct_1``, ``distinct_2`` (pooled over the batch),
    ``repetition`` (mean :func:`repetition_rate` with ``rep_n``), ``log_likelihood`` (mean over
    samples of :func:`mean_log_likelihood`), ``stopped`` (fraction that emitted ``eos_id``) and
    ``length`` (mean number of new tokens, the stop token included).
    """
    cut, stopped = cut_at_stop(out[:, prompt_len:], eos_id)
    lengths = [len(c) for c in cut]
    reps = [
        r for r in (repetition_rate(c, rep_n) for c in cut) if not math.isnan(r)
    ]  # nan: too short
    ll = mean_log_likelihood(model, out, prompt_len, lengths)
    return {
        "distinct_1": distinct_n(cut, 1),
        "distinct_2": distinct_n(cut, 2),
        "repetition": sum(reps) / len(reps) if reps else float("nan"),
        "log_likelihood": sum(ll) / len(ll),
        "stopped": sum(stopped) / len(stopped),
        "length": sum(lengths) / len(lengths),
    }
