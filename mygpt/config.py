"""Model configuration: one dataclass that travels through the whole package.

``GPTConfig`` holds every architectural choice of a GPT-2 style model. It validates itself on
creation, so a bad configuration fails at once with a message that names the field, instead of
deep inside a matrix multiplication.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from .errors import ConfigError

ATTENTION_IMPLS = ("fused", "explicit")

#: The largest model a GPTConfig may describe: 10^12 parameters (4 TB in float32), far beyond what
#: this package trains, yet loose enough for counting the parameters of big models (on ``meta``).
MAX_PARAMETERS = 10**12


def _is_number(value) -> bool:
    """An int or float, but not a bool (``True`` is an int to Python)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True)
class GPTConfig:
    """Architecture of a GPT-2 style model.

    Attributes:
        vocab_size: number of token ids (GPT-2's BPE has 50,257).
        context_length: longest sequence the model accepts (GPT-2: 1,024 positions).
        n_embd: width of the residual stream (embedding size).
        n_layer: number of transformer blocks.
        n_head: attention heads per block; must divide ``n_embd``.
        dropout: dropout probability used on embeddings, attention weights and residual branches.
        bias: whether linear layers and LayerNorms have biases (GPT-2: yes).
        tie_weights: share the token embedding matrix with the output layer (GPT-2: yes).
        attn_impl: ``"fused"`` (PyTorch's ``scaled_dot_product_attention``) or ``"explicit"``
            (the step-by-step version the book teaches); they compute the same thing.
        ln_eps: LayerNorm epsilon (GPT-2: 1e-5).
    """

    vocab_size: int = 50257
    context_length: int = 1024
    n_embd: int = 768
    n_layer: int = 12
    n_head: int = 12
    dropout: float = 0.0
    bias: bool = True
    tie_weights: bool = True
    attn_impl: str = "fused"
    ln_eps: float = 1e-5

    def __post_init__(self) -> None:
        for name in ("vocab_size", "context_length", "n_embd", "n_layer", "n_head"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"GPTConfig.{name} must be a positive integer, got {value!r}.")
        if self.n_embd % self.n_head != 0:
            raise ConfigError(
                f"GPTConfig.n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head}): "
                f"each head gets n_embd // n_head dimensions. Try n_head in "
                f"{[h for h in range(1, min(self.n_embd, 64) + 1) if self.n_embd % h == 0]}."
            )
        if not _is_number(self.dropout) or not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"GPTConfig.dropout must be in [0, 1), got {self.dropout!r}.")
        for name in ("bias", "tie_weights"):  # a string such as "no" or "False" would mean yes
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(
                    f"GPTConfig.{name} must be True or False, got {getattr(self, name)!r}."
                )
        if self.attn_impl not in ATTENTION_IMPLS:
            raise ConfigError(
                f"GPTConfig.attn_impl must be one of {ATTENTION_IMPLS}, got {self.attn_impl!r}."
            )
        if not _is_number(self.ln_eps) or not 0 < self.ln_eps < math.inf:
            raise ConfigError(
                f"GPTConfig.ln_eps must be a finite positive number, got {self.ln_eps!r}."
            )
        # Arithmetic only: a typo such as context_length=10**12 fails here, not in the allocator.
        if self.num_parameters() > MAX_PARAMETERS:
            raise ConfigError(
                f"GPTConfig describes a model of {self.num_parameters():,} parameters, more than "
                f"{MAX_PARAMETERS:,} (GPT-2 XL has 1.6 billion): check context_length, n_embd, "
                f"n_layer and vocab_size."
            )

    def num_parameters(self) -> int:
        """The parameter count of ``GPT(self)``, computed without building it (a tied output
        layer counted once, as :meth:`GPT.num_parameters` does)."""
        E, b = self.n_embd, int(self.bias)
        layer_norm = E + b * E
        attention = E * 3 * E + b * 3 * E + E * E + b * E  # qkv and output projections
        feed_forward = E * 4 * E + b * 4 * E + 4 * E * E + b * E
        block = 2 * layer_norm + attention + feed_forward
        output = 0 if self.tie_weights else self.vocab_size * E
        return (
            (self.vocab_size + self.context_length) * E + self.n_layer * block + layer_norm + output
        )

    @property
    def head_dim(self) -> int:
        """Dimensions per attention head (``n_embd // n_head``)."""
        return self.n_embd // self.n_head

    def replace(self, **changes) -> GPTConfig:
        """Return a copy with some fields changed (validated again)."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ConfigError(f"GPTConfig has no field(s) {sorted(unknown)}.")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """The configuration as a plain dict (for checkpoints and caches)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> GPTConfig:
        """Build a configuration from :meth:`to_dict` output, rejecting unknown keys."""
        if not isinstance(d, dict):
            raise ConfigError(
                f"A GPTConfig must be built from a dict (a JSON object), got {d!r:.80}."
            )
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"Unknown GPTConfig field(s) {sorted(unknown)}.")
        return cls(**d)

    @classmethod
    def from_name(cls, name: str, **overrides) -> GPTConfig:
        """The configuration of a named GPT-2 size (see :data:`PRESETS`), with overrides."""
        key = PRESET_ALIASES.get(name, name)
        if key not in PRESETS:
            raise ConfigError(
                f"Unknown model name {name!r}. Valid names: "
                f"{sorted(PRESETS) + sorted(PRESET_ALIASES)}."
            )
        return dataclasses.replace(PRESETS[key], **overrides) if overrides else PRESETS[key]


#: The four GPT-2 sizes OpenAI released (Radford et al., 2019), by their Hub names.
PRESETS: dict[str, GPTConfig] = {
    "gpt2": GPTConfig(n_embd=768, n_layer=12, n_head=12),
    "gpt2-medium": GPTConfig(n_embd=1024, n_layer=24, n_head=16),
    "gpt2-large": GPTConfig(n_embd=1280, n_layer=36, n_head=20),
    "gpt2-xl": GPTConfig(n_embd=1600, n_layer=48, n_head=25),
}

#: Other spellings of the preset names, by parameter count.
PRESET_ALIASES: dict[str, str] = {
    "gpt2-small": "gpt2",
    "124M": "gpt2",
    "355M": "gpt2-medium",
    "774M": "gpt2-large",
    "1558M": "gpt2-xl",
}
