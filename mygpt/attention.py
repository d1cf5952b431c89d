"""Causal multi-head self-attention, the heart of the transformer (Vaswani et al., 2017).

Two implementations of the same computation live here: :func:`attention_explicit`, written out
step by step as the book teaches it, and :func:`attention_fused`, PyTorch's
``scaled_dot_product_attention`` (a fused kernel, FlashAttention on suitable GPUs). The tests and
chapter 2 check that they agree. :class:`KVCache` keeps the keys and values of past positions so
that generation computes each position once.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import GPTConfig


def causal_mask(n_query: int, n_key: int, device=None) -> torch.Tensor:
    """Boolean ``[n_query, n_key]`` mask, True where a query may attend to a key.

    Queries are the last ``n_query`` of ``n_key`` positions (earlier ones are cached), so query
    ``i`` sits at absolute position ``n_key - n_query + i`` and sees keys up to that position.
    """
    offset = n_key - n_query
    q_pos = torch.arange(n_query, device=device)[:, None] + offset
    k_pos = torch.arange(n_key, device=device)[None, :]
    return k_pos <= q_pos


def padding_mask(lengths: torch.Tensor, width: int, left: bool = False) -> torch.Tensor:
    """Boolean ``[B, width]``, True at the real tokens of sequences of ``lengths`` tokens padded
    to ``width``: at the start of each row (right padding) or, with ``left``, at its end."""
    pos = torch.arange(width, device=lengths.device)[None, :]
    lengths = lengths[:, None]
    return pos >= width - lengths if left else pos < lengths


def attention_mask_for(
    n_query: int, n_key: int, padding: torch.Tensor | None = None, device=None
) -> torch.Tensor | None:
    """The mask the model's attention layers get: boolean ``[B or 1, 1, n_query, n_key]``, or
    ``None`` when plain causal attention suffices (attention then takes its causal fast path).

    It is :func:`causal_mask`, and with ``padding`` (``[B, n_key]``, 1 for real tokens and 0 for
    padding, over cached and new positions) also hides the padding keys. A padding query may
    then see no key at all; it is let see itself so that softmax stays finite (its output is
    never used).
    """
    if padding is None:
        if n_query == n_key or n_query == 1:
            return None  # attention uses its causal fast path / attends to everything cached
        return causal_mask(n_query, n_key, device)[None, None]
    offset = n_key - n_query  # query i sits at position offset + i
    own = (
        torch.arange(n_key, device=device)[None, :]
        == torch.arange(n_query, device=device)[:, None] + offset
    )
    mask = (causal_mask(n_query, n_key, device)[None] & padding.bool()[:, None, :]) | own[None]
    return mask[:, None]


def attention_explicit(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    return_weights: bool = False,
):
    """Scaled dot-product attention, written out: ``softmax(q k^T / sqrt(d_k) + mask) v``.

    Args:
        q: queries ``[..., T_q, d_k]``; k: keys ``[..., T_k, d_k]``; v: values ``[..., T_k, d_v]``.
        mask: boolean, broadcastable to ``[..., T_q, T_k]``, True = may attend. ``None`` = all.
        dropout_p: dropout on the attention weights (only pass > 0 while training).
        return_weights: also return the attention weights ``[..., T_q, T_k]``.
    """
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    if mask is not None:
        # -inf before the softmax gives masked keys exactly zero weight and keeps rows summing to 1.
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    if dropout_p > 0:
        weights = F.dropout(weights, p=dropout_p)
    out = weights @ v
    return (out, weights) if return_weights else out


def attention_fused(q, k, v, mask=None, dropout_p: float = 0.0, is_causal: bool = False):
    """The same computation through PyTorch's fused ``scaled_dot_product_attention``."""
    return F.scaled_dot_product_attention(
        q, k, v, attn_mask=mask, dropout_p=dropout_p, is_causal=is_causal
    )


class KVCache:
    """Pre-allocated keys and values of every layer, filled as generation proceeds.

    Allocating once (``[n_layer, B, n_head, max_len, head_dim]``) avoids re-allocating and
    copying the growing cache at every new token. The buffers start uninitialised
    (``torch.empty``): only the filled positions are ever read, and zeroing memory that is
    overwritten anyway costs time (and, for a full context at batch 8, 600 MB of writes).
    """

    def __init__(
        self,
        cfg: GPTConfig,
        batch_size: int,
        max_len: int | None = None,
        device=None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.max_len = max_len or cfg.context_length
        shape = (cfg.n_layer, batch_size, cfg.n_head, self.max_len, cfg.head_dim)
        self.k = torch.empty(shape, device=device, dtype=dtype)
        self.v = torch.empty(shape, device=device, dtype=dtype)
        self.pos = 0  # positions filled so far (same for every layer)

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor):
        """Store the new keys/values of ``layer`` and return all keys/values so far."""
        end = self.pos + k.size(2)
        if end > self.max_len:
            raise ValueError(f"KVCache is full: {end} positions needed, {self.max_len} allocated.")
        self.k[layer, :, :, self.pos : end] = k
        self.v[layer, :, :, self.pos : end] = v
        return self.k[layer, :, :, :end], self.v[layer, :, :, :end]

    def advance(self, n: int) -> None:
        """Mark ``n`` more positions as filled (called once per forward pass, after all layers)."""
        self.pos += n


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention with one fused query/key/value projection (as GPT-2).

    ``qkv`` projects the input to queries, keys and values for all heads at once; the heads are
    split out by reshaping, attend in parallel, and ``proj`` mixes their concatenated outputs.
    """

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.n_head = cfg.n_head
        self.impl = cfg.attn_impl
        self.qkv = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=cfg.bias)
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.dropout = cfg.dropout
        self.resid_dropout = nn.Dropout(cfg.dropout)

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None = None,
        kv_cache: KVCache | None = None,
        layer: int = 0,
    ) -> torch.Tensor:
        """Attend over ``x`` ``[B, T, C]``.

        ``mask`` (boolean, broadcastable to ``[B, n_head, T, T_k]``) is built once by the model;
        ``None`` means plain causal attention over ``x`` alone.
        """
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        # [B, T, C] -> [B, n_head, T, head_dim]: each head attends independently.
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        if kv_cache is not None:
            k, v = kv_cache.update(layer, k, v)
        is_causal = mask is None and k.size(2) == T and T > 1
        p = self.dropout if self.training else 0.0
        if self.impl == "fused":
            y = attention_fused(q, k, v, mask=mask, dropout_p=p, is_causal=is_causal)
        else:
            if is_causal:
                mask = causal_mask(T, T, device=x.device)
            y = attention_explicit(q, k, v, mask=mask, dropout_p=p)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # concatenate the heads
        return self.resid_dropout(self.proj(y))
