"""The GPT-2 model: embeddings, a stack of transformer blocks, and an output layer.

Follows GPT-2 (Radford et al., 2019): pre-LayerNorm blocks, GELU (tanh approximation) in a 4x
wide feed-forward network, learned positional embeddings, and an output layer that shares its
weights with the token embedding.
"""

from __future__ import annotations

import math
import os

import torch
import torch.nn.functional as F
from torch import nn

from .attention import CausalSelfAttention, KVCache, attention_mask_for
from .config import GPTConfig
from .errors import ConfigError, DataError, PromptError


class LayerNorm(nn.Module):
    """Layer normalisation (Ba et al., 2016): ``(x - mean) / sqrt(var + eps) * weight + bias``.

    Mean and (biased) variance are taken over the last dimension of each token's vector, so every
    token is normalised on its own. Computed with PyTorch's fused ``layer_norm`` kernel.
    """

    def __init__(self, n_embd: int, eps: float = 1e-5, bias: bool = True) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(n_embd))
        self.bias = nn.Parameter(torch.zeros(n_embd)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, self.eps)


class GELU(nn.Module):
    """GELU with GPT-2's tanh approximation (Hendrycks & Gimpel, 2016):

    ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(x, approximate="tanh")


class FeedForward(nn.Module):
    """Position-wise feed-forward network: expand to 4x the width, GELU, project back."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd, bias=cfg.bias)
        self.act = GELU()
        self.proj = nn.Linear(4 * cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.proj(self.act(self.fc(x))))


class Block(nn.Module):
    """A transformer block, pre-LayerNorm as in GPT-2: ``x + attn(ln1(x))``, then ``x + mlp(ln2(x))``.

    The shortcut (residual) connections give gradients a direct path through deep stacks.
    """

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.ln1 = LayerNorm(cfg.n_embd, cfg.ln_eps, cfg.bias)
        self.attn = CausalSelfAttention(cfg)
        self.ln2 = LayerNorm(cfg.n_embd, cfg.ln_eps, cfg.bias)
        self.mlp = FeedForward(cfg)

    def forward(self, x, mask=None, kv_cache: KVCache | None = None, layer: int = 0):
        x = x + self.attn(self.ln1(x), mask=mask, kv_cache=kv_cache, layer=layer)
        return x + self.mlp(self.ln2(x))


def _out_of_vocabulary(idx: torch.Tensor, vocab_size: int) -> str:
    """The message for token ids outside ``[0, vocab_size)``, naming the first bad one."""
    bad = idx[(idx < 0) | (idx >= vocab_size)]
    first = int(bad[0]) if bad.numel() else "?"
    return (
        f"Token id {first} is outside the model's vocabulary of {vocab_size} ids "
        f"(0..{vocab_size - 1}); {bad.numel()} id(s) in this batch are. Encode the text with "
        f"the model's tokenizer, or build the model with a larger vocab_size."
    )


class GPT(nn.Module):
    """A GPT-2 style language model: token ids ``[B, T]`` in, next-token logits ``[B, T, vocab]`` out."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        _check_fits_in_memory(cfg)
        self.config = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.pos_emb = nn.Embedding(cfg.context_length, cfg.n_embd)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = LayerNorm(cfg.n_embd, cfg.ln_eps, cfg.bias)
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        if cfg.tie_weights:
            self.lm_head.weight = self.tok_emb.weight
        self.apply(self._init_weights)
        # GPT-2 scales the init of layers that write into the residual stream by 1/sqrt(2 * n_layer),
        # so the stream's variance does not grow with depth.
        for name, p in self.named_parameters():
            if name.endswith("attn.proj.weight") or name.endswith("mlp.proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def hidden(
        self,
        idx: torch.Tensor,
        kv_cache: KVCache | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        last_only: bool = False,
        at: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The final hidden states ``[B, T, n_embd]`` (after the final LayerNorm): what a head reads.

        :meth:`forward` puts the language-model head on them; a classifier puts its own
        (:class:`mygpt.finetune.GPTClassifier`). Arguments as in :meth:`forward`; ``last_only``
        and ``at`` (``forward``'s ``logits_at``) select positions before the final LayerNorm.
        """
        B, T = idx.shape
        past = kv_cache.pos if kv_cache is not None else 0
        if past + T > self.config.context_length:
            raise PromptError(
                f"Sequence of {past + T} tokens is longer than the model's context of "
                f"{self.config.context_length}; shorten it (generation crops to the last "
                f"{self.config.context_length} tokens)."
            )
        if position_ids is None:
            position_ids = torch.arange(past, past + T, device=idx.device).unsqueeze(0)
        try:
            tokens = self.tok_emb(idx)
        except IndexError:  # checked only on failure, so the usual path pays nothing
            raise DataError(_out_of_vocabulary(idx, self.config.vocab_size)) from None
        x = self.drop(tokens + self.pos_emb(position_ids))
        mask = attention_mask_for(T, past + T, attention_mask, idx.device)
        for i, block in enumerate(self.blocks):
            x = block(x, mask=mask, kv_cache=kv_cache, layer=i)
        if kv_cache is not None:
            kv_cache.advance(T)
        if last_only:
            x = x[:, -1:, :]
        elif at is not None:
            if at.shape != (B, T) or at.dtype != torch.bool:
                raise ValueError(
                    f"logits_at must be a boolean tensor of shape {(B, T)}, got "
                    f"{at.dtype} {tuple(at.shape)}."
                )
            x = x[at]
        return self.ln_f(x)

    def forward(
        self,
        idx: torch.Tensor,
        kv_cache: KVCache | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        last_only: bool = False,
        logits_at: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Compute next-token logits: the language-model head on :meth:`hidden`.

        Args:
            idx: token ids ``[B, T]``.
            kv_cache: keys/values of earlier positions; ``idx`` continues after them.
            attention_mask: ``[B, T_total]`` with 1 for real tokens and 0 for (left) padding, over
                the cached and new positions together. ``None``: no padding.
            position_ids: ``[B, T]`` positions of ``idx``; default: counted after the cache.
            last_only: return logits for the last position only (``[B, 1, vocab]``), which is
                all generation needs and skips most of the costly output layer.
            logits_at: boolean ``[B, T]``: return logits only at the ``True`` positions, as
                ``[N, vocab]`` in row-major order (``N`` = number of ``True``). Fine-tuning uses it
                to skip the output layer at positions without a training target.
        """
        return self.lm_head(
            self.hidden(idx, kv_cache, attention_mask, position_ids, last_only, at=logits_at)
        )

    def new_kv_cache(self, batch_size: int, max_len: int | None = None) -> KVCache:
        """An empty :class:`KVCache` matching this model's layers, device and dtype."""
        p = self.tok_emb.weight
        return KVCache(self.config, batch_size, max_len, device=p.device, dtype=p.dtype)

    def num_parameters(self, exclude_embeddings: bool = False) -> int:
        """Number of parameters, counting a tied (shared) matrix once.

        ``exclude_embeddings`` leaves out the token and position embeddings (the usual measure
        of model size for scaling laws); a tied output layer is left out with them.
        """
        params = {id(p): p for p in self.parameters()}
        if exclude_embeddings:
            params.pop(id(self.tok_emb.weight), None)
            params.pop(id(self.pos_emb.weight), None)
        return sum(p.numel() for p in params.values())


def _memory_bytes(device: torch.device) -> int | None:
    """Total memory of ``device`` (the machine's RAM for the CPU), or ``None`` when unknown."""
    if device.type == "cpu" and hasattr(os, "sysconf"):
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    return None  # meta (no memory at all), MPS, ...


def _check_fits_in_memory(cfg: GPTConfig) -> None:
    """Refuse a model whose parameters alone exceed the memory of the device it is built on.

    Without this, a typo such as ``n_embd=10**6`` fails deep in the allocator, or the operating
    system's out-of-memory killer ends the process half-way through initialising the weights.
    """
    device, dtype = torch.get_default_device(), torch.get_default_dtype()
    memory = _memory_bytes(device)
    size = cfg.num_parameters() * dtype.itemsize
    if memory is not None and size > memory:
        raise ConfigError(
            f"A GPT with this configuration has {cfg.num_parameters():,} parameters "
            f"({size / 2**30:.1f} GiB in {str(dtype).removeprefix('torch.')}), more than the "
            f"{memory / 2**30:.1f} GiB of memory of the device it is built on ({device}). Choose "
            f"a smaller context_length, n_embd, n_layer or vocab_size, or build it on the meta "
            f"device (with torch.device('meta'): ...) to inspect its shapes."
        )
