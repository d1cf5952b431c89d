"""Turning next-token logits into text: greedy decoding and sampling.

The sampling filters are separate functions so the book can plot what each does to a
distribution: :func:`apply_temperature`, :func:`top_k_filter`, :func:`top_p_filter`.
:func:`generate` runs the loop, with a KV cache by default (each position is computed once)
or by recomputing the whole sequence at every step; both give the same tokens.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence

import torch

from .attention import padding_mask
from .device import at_least_float32
from .errors import PromptError, SamplingError
from .model import GPT

#: Below this temperature sampling is greedy: dividing logits by ~1e-45 would overflow to inf,
#: and long before that the distribution is one-hot to float precision anyway.
GREEDY_BELOW = 1e-6

_UNCHECKED = object()


def check_sampling_args(
    temperature: float,
    top_k: int | None,
    top_p: float | None,
    vocab_size: int,
    max_new_tokens=_UNCHECKED,
) -> None:
    """Raise :class:`SamplingError` naming the first parameter that is out of range."""
    if (
        isinstance(temperature, bool)
        or not isinstance(temperature, (int, float))
        or not math.isfinite(temperature)
        or temperature < 0
    ):
        raise SamplingError(
            f"temperature must be a finite number >= 0 (0 = greedy), got {temperature!r}."
        )
    if top_k is not None and (
        isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= vocab_size
    ):
        raise SamplingError(
            f"top_k must be an integer in [1, {vocab_size}] (the vocabulary size) or None, got {top_k!r}."
        )
    if top_p is not None and (not isinstance(top_p, (int, float)) or not 0 < top_p <= 1):
        raise SamplingError(f"top_p must be in (0, 1] or None, got {top_p!r}.")
    if max_new_tokens is not _UNCHECKED and (
        isinstance(max_new_tokens, bool)
        or not isinstance(max_new_tokens, int)
        or max_new_tokens < 0
    ):
        raise SamplingError(f"max_new_tokens must be an integer >= 0, got {max_new_tokens!r}.")


def apply_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Divide logits by the temperature: below 1 sharpens the distribution, above 1 flattens it."""
    return logits / temperature


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the ``k`` largest logits of each row; set the rest to ``-inf`` (probability 0)."""
    kth_largest = torch.topk(logits, k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth_largest, float("-inf"))


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus filter (Holtzman et al., 2020): keep the smallest set of most likely tokens whose
    probabilities add up to at least ``p``; set the rest to ``-inf``."""
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    cumulative = torch.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
    # Drop a token if the tokens before it already reach p; the most likely token always stays.
    drop_sorted = (cumulative - torch.softmax(sorted_logits, dim=-1)) >= p
    # Explicitly, not by the comparison: a p below float32's range rounds to 0, and 0 >= 0.
    drop_sorted[..., 0] = False
    drop = drop_sorted.scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def next_token_probs(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
) -> torch.Tensor:
    """The distribution sampling draws from: temperature, then top-k, then top-p, then softmax."""
    logits = apply_temperature(at_least_float32(logits), temperature)
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    return torch.softmax(logits, dim=-1)


def sample_next_token(
    logits: torch.Tensor,
    temperature: float = 0.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Pick the next token of each row of ``logits`` ``[B, vocab]``; returns ``[B, 1]``.

    ``temperature == 0`` (or below :data:`GREEDY_BELOW`) is greedy decoding (the most likely token).
    """
    if temperature < GREEDY_BELOW:
        return logits.argmax(dim=-1, keepdim=True)
    probs = next_token_probs(logits, temperature, top_k, top_p)
    return torch.multinomial(probs, num_samples=1, generator=generator)


def _left_pad(
    prompts: Sequence[Sequence[int] | torch.Tensor], pad_id: int, device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-pad prompts of different lengths so that every row ends at its last real token."""
    width = max(len(p) for p in prompts)
    idx = torch.full((len(prompts), width), pad_id, dtype=torch.long, device=device)
    for row, p in enumerate(prompts):
        if len(p):
            idx[row, width - len(p) :] = torch.as_tensor(p, dtype=torch.long, device=device)
    lengths = torch.tensor([len(p) for p in prompts], device=device)
    return idx, padding_mask(lengths, width, left=True).long()


def _as_prompt_tensors(prompts) -> list[torch.Tensor]:
    """Each prompt of a list as a 1-D tensor, or :class:`PromptError` naming the one that is not."""
    if isinstance(prompts, (str, bytes)) or not isinstance(prompts, Iterable):
        raise PromptError(
            f"Prompts must be a [B, T] tensor or a list of token-id lists, got "
            f"{type(prompts).__name__}; encode text with mygpt.encode first."
        )
    tensors = []
    for k, p in enumerate(prompts):
        try:
            t = torch.as_tensor(p)
        except (TypeError, ValueError, RuntimeError) as e:  # strings, ragged lists, None ...
            raise PromptError(
                f"Prompt {k} is not a list of token ids ({e}); encode text with mygpt.encode first."
            ) from None
        if t.dim() != 1:
            raise PromptError(
                f"Prompt {k} must be a 1-D list of token ids, got shape {tuple(t.shape)}"
                " (for one prompt, pass [[id, id, ...]] or a 1-D tensor)."
            )
        tensors.append(t)
    return tensors


def _check_ids(ids: torch.Tensor, vocab_size: int, name: str) -> None:
    """:class:`PromptError` unless ``ids`` are integers in ``[0, vocab_size)``.

    Checked up front: out of range, the embedding would fail with a bare ``IndexError`` (or, on
    a GPU, a device-side assert), and float ids would be silently truncated to other tokens.
    """
    if ids.dtype == torch.bool or ids.is_floating_point() or ids.is_complex():
        raise PromptError(
            f"{name} must be integer token ids, got dtype {ids.dtype}; encode text "
            "with mygpt.encode (or pass a tensor of dtype torch.long)."
        )
    bad = ids[(ids < 0) | (ids >= vocab_size)]
    if bad.numel():
        raise PromptError(
            f"{name} holds token id {int(bad[0])}, outside the model's vocabulary of "
            f"{vocab_size} ids (0..{vocab_size - 1}): encode it with the tokenizer the "
            "model was trained with."
        )


@torch.inference_mode()
def generate(
    model: GPT,
    idx: torch.Tensor | Sequence[Sequence[int]],
    max_new_tokens: int,
    temperature: float = 0.0,
    top_k: int | None = None,
    top_p: float | None = None,
    eos_id: int | None = None,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    use_cache: bool = True,
    truncate: bool = False,
) -> torch.Tensor:
    """Extend each prompt by up to ``max_new_tokens`` tokens.

    Args:
        model: the language model (put in eval mode by the caller, or dropout stays on).
        idx: prompts as a ``[B, T]`` tensor, or a list of token-id lists of different lengths
            (left-padded internally; the padding is masked out of attention).
        temperature: 0 for greedy decoding, else the sampling temperature.
        top_k, top_p: optional top-k / nucleus filters (applied after the temperature).
        eos_id: stop token: a row that emits it is finished and padded with it from then on;
            generation stops early once every row is finished.
        seed / generator: make sampling repeatable (a seed builds a fresh generator).
        use_cache: KV cache (fast); ``False`` recomputes the whole sequence each step.
        truncate: if a prompt is longer than the context: ``False`` raises :class:`PromptError`,
            ``True`` keeps its last ``context_length - 1`` tokens with a warning.

    Returns:
        ``[B, T + n]`` token ids (prompt, left-padded if needed, then the new tokens), ``n <= max_new_tokens``.
    """
    cfg = model.config
    check_sampling_args(temperature, top_k, top_p, cfg.vocab_size, max_new_tokens)
    device = model.tok_emb.weight.device
    if isinstance(idx, torch.Tensor):
        if idx.dim() == 1:
            idx = idx.unsqueeze(0)
        if idx.dim() != 2:
            raise PromptError(
                f"A prompt tensor must hold token ids as [T] or [B, T], got shape "
                f"{tuple(idx.shape)}."
            )
        prompts = None
    else:
        prompts = _as_prompt_tensors(idx)
        if not prompts:
            raise PromptError("No prompts given: pass at least one list of token ids.")
    lengths = [idx.size(1)] * idx.size(0) if prompts is None else [len(p) for p in prompts]
    if min(lengths) == 0:
        raise PromptError(
            "A prompt is empty: give at least one token (e.g. <|endoftext|>, id 50256)."
        )
    for k, ids in enumerate([idx] if prompts is None else prompts):
        _check_ids(ids, cfg.vocab_size, "The prompt" if prompts is None else f"Prompt {k}")
    if max(lengths) > cfg.context_length - 1:
        if not truncate:
            raise PromptError(
                f"Prompt of {max(lengths)} tokens does not fit the model's context of "
                f"{cfg.context_length} tokens (one position is needed for the next token). "
                f"Shorten it, or pass truncate=True to keep its last {cfg.context_length - 1} tokens."
            )
        warnings.warn(
            f"Prompt of {max(lengths)} tokens truncated to its last {cfg.context_length - 1}.",
            stacklevel=2,
        )
        keep = cfg.context_length - 1
        if prompts is None:
            idx = idx[:, -keep:]
        else:
            prompts = [p[-keep:] for p in prompts]
    if generator is None and seed is not None:
        generator = torch.Generator(device=device).manual_seed(seed)

    pad_id = eos_id if eos_id is not None else 0
    if prompts is None:
        idx, attn = idx.to(device), None
    else:
        idx, attn = _left_pad(prompts, pad_id, device)
        if bool(attn.all()):
            attn = None  # equal lengths: no padding to mask
    B = idx.size(0)
    finished = torch.zeros(B, dtype=torch.bool, device=device)
    # A cache just long enough for this call (not the whole context): less memory to allocate,
    # and each layer's keys lie closer together.
    cache = (
        model.new_kv_cache(B, min(cfg.context_length, idx.size(1) + max_new_tokens))
        if use_cache
        else None
    )
    fed = 0  # how many positions of idx the cache already holds

    for _ in range(max_new_tokens):
        if cache is not None and idx.size(1) > cfg.context_length:
            cache = None  # past the context: from here on, recompute over a sliding window
        if cache is None:
            window = idx[:, -cfg.context_length :]
            mask = attn[:, -cfg.context_length :] if attn is not None else None
            logits = model(
                window, attention_mask=mask, position_ids=_positions(mask, window), last_only=True
            )
        else:
            new = idx[:, fed:]
            mask = attn if attn is not None else None
            logits = model(
                new,
                kv_cache=cache,
                attention_mask=mask,
                position_ids=_positions(mask, idx)[:, fed:] if mask is not None else None,
                last_only=True,
            )
            fed = idx.size(1)
        next_id = sample_next_token(logits[:, -1, :], temperature, top_k, top_p, generator)
        if eos_id is not None:
            next_id = next_id.masked_fill(finished[:, None], eos_id)
            finished |= next_id.squeeze(1) == eos_id
        idx = torch.cat([idx, next_id], dim=1)
        if attn is not None:
            attn = torch.cat([attn, torch.ones_like(next_id)], dim=1)
        if eos_id is not None and bool(finished.all()):
            break
    return idx


def _positions(mask: torch.Tensor | None, idx: torch.Tensor) -> torch.Tensor | None:
    """Position ids that start at 0 on each row's first real (non-padding) token."""
    if mask is None:
        return None
    return (mask.cumsum(dim=1) - 1).clamp(min=0)


def generate_text(
    model: GPT,
    prompt: str | list[str],
    max_new_tokens: int = 50,
    temperature: float = 0.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int | None = None,
    stop_at_eos: bool = True,
    use_cache: bool = True,
    truncate: bool = False,
) -> str | list[str]:
    """Generate a continuation of ``prompt`` (a string, or a list of strings as one batch).

    Returns the prompt followed by the generated text, cut at ``<|endoftext|>`` when
    ``stop_at_eos``. Uses GPT-2's tokenizer.
    """
    from .tokenizer import EOT_ID, decode, encode

    if isinstance(prompt, str):
        prompts = [prompt]
    elif isinstance(prompt, (list, tuple)):
        prompts = list(prompt)
    else:
        prompts = None
    if not prompts or any(not isinstance(p, str) for p in prompts):
        raise PromptError(
            f"prompt must be a string or a non-empty list of strings, got {prompt!r}."
        )
    ids = [encode(p) for p in prompts]
    if any(len(i) == 0 for i in ids):
        raise PromptError(
            "An empty prompt has no token to continue from; write at least one "
            "word (or '<|endoftext|>' to start from nothing)."
        )
    out = generate(
        model,
        ids,
        max_new_tokens,
        temperature,
        top_k,
        top_p,
        eos_id=EOT_ID if stop_at_eos else None,
        seed=seed,
        use_cache=use_cache,
        truncate=truncate,
    )
    width = max(len(i) for i in ids)
    texts = []
    for row, prompt_ids in enumerate(ids):
        new = out[row, width:].tolist()
        if stop_at_eos and EOT_ID in new:
            new = new[: new.index(EOT_ID)]
        texts.append(
            decode(prompt_ids[-(model.config.context_length - 1) :] if truncate else prompt_ids)
            + decode(new)
        )
    return texts[0] if isinstance(prompt, str) else texts
