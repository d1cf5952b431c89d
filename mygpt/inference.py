"""Fast generation: weights prepared once for decoding (prepacked fp32, bfloat16, int8).

Generating one token multiplies one vector per sequence by every weight matrix of the model.
At batch 1 that speed is set by how fast the weights stream from memory, not by arithmetic:
GPT-2 124M reads about 0.5 GB of fp32 weights per token. :func:`optimize_for_inference` returns
a copy of a model prepared for that job, in one of three weight formats:

* ``"fp32"``: the same numbers, with each linear layer's weight reordered once into the blocked
  layout that the CPU's matrix library (oneDNN) computes from, instead of at every call. That
  matters for small batches of rows (batch 8 decoding), where re-packing the weights costs as
  much as multiplying by them. Results equal ``nn.Linear``'s up to rounding. Optionally the
  output layer becomes an :class:`ExactMaxLinear`: int8 reads, the fp32 layer's largest logit.
* ``"bf16"``: everything in bfloat16: half the bytes per weight (and, on CPUs with AMX or
  AVX-512 BF16 units, faster arithmetic); about 3 significant digits.
* ``"int8"``: weight-only int8: each linear layer's weight matrix as int8 with one scale per
  output row (``w ~ scale * q``, ``q`` in ``[-127, 127]``), a quarter of the bytes; activations
  stay floating point (bfloat16 inside the int8 matrix product). Embeddings and LayerNorms keep
  their weights.

``bench/`` measures what each buys and costs (speed, perplexity, KL divergence from fp32), and
the book's performance appendix shows the results. The prepared copy is for inference only.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from .errors import ConfigError
from .model import GPT

WEIGHT_FORMATS = ("fp32", "bf16", "int8")


def _onednn_ok(device: torch.device, dtype: torch.dtype) -> bool:
    """Whether oneDNN's prepacked linear layer is available for ``dtype`` weights on ``device``."""
    if device.type != "cpu" or not torch.backends.mkldnn.is_available():
        return False
    if dtype == torch.bfloat16 and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return False
    return hasattr(torch.ops.mkldnn, "_reorder_linear_weight") and hasattr(
        torch.ops.mkldnn, "_linear_pointwise"
    )


class PackedLinear(nn.Module):
    """``nn.Linear`` for CPU inference with its weight also reordered once into oneDNN's layout.

    The packed copy is used for inputs of several rows (batched decoding, prompts). A single fp32
    row (decoding at batch 1) goes to the plain weight instead: the matrix library's
    matrix-vector routine does not pack and was faster there. So the layer holds its weight twice.
    The packed weight is an opaque oneDNN tensor: the module cannot be copied, saved, moved to
    another device or trained; build it (with :func:`optimize_for_inference`) where it will run.
    """

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight = linear.weight  # shared, not copied (e.g. with a tied token embedding)
        self.bias = linear.bias
        self.packed = torch.ops.mkldnn._reorder_linear_weight(linear.weight.detach())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.float32 and x.numel() == self.in_features:
            return F.linear(x, self.weight, self.bias)
        return torch.ops.mkldnn._linear_pointwise(x, self.packed, self.bias, "none", [], "")

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, weight=oneDNN-packed"


class Int8Linear(nn.Module):
    """``nn.Linear`` for inference with an int8 weight and one scale per output feature.

    ``forward`` uses PyTorch's weight-only int8 kernel (``torch._weight_int8pack_mm``, which reads
    the int8 weight directly, with bfloat16 activations) where it runs, and otherwise multiplies
    by the dequantised weight (the same result, without the speed).
    """

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        w = linear.weight.detach().float()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        # Symmetric per-row scale: the row's largest |w| maps to 127, so no weight is clipped.
        scale = w.abs().amax(dim=1).clamp(min=1e-12) / 127
        self.register_buffer(
            "weight_int8", torch.round(w / scale[:, None]).clamp(-127, 127).to(torch.int8)
        )
        self.register_buffer("scale", scale)
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().clone())

    def dequantized_weight(self) -> torch.Tensor:
        """The fp32 weight this layer stands for: ``scale[:, None] * weight_int8``."""
        return self.weight_int8.float() * self.scale[:, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x2 = x.reshape(-1, self.in_features)
        if _int8_kernel_works(x.device):
            y = torch._weight_int8pack_mm(
                x2.to(torch.bfloat16), self.weight_int8, self.scale.to(torch.bfloat16)
            ).to(x.dtype)
        else:
            y = F.linear(x2, self.dequantized_weight().to(x.dtype))
        if self.bias is not None:
            y = y + self.bias.to(y.dtype)
        return y.view(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, weight=int8"


class ExactMaxLinear(nn.Module):
    """An output layer that reads int8 weights yet gives exactly the fp32 layer's largest logit.

    Greedy decoding only needs the position of the largest logit, and most of the 50,257 logits
    are far from it. So: estimate every logit with the int8 weights (a quarter of the bytes),
    bound each estimate's error, and recompute in fp32 only the *candidates*, the logits whose
    estimate plus its bound reaches the largest estimate minus its bound. Every other logit is
    provably below the best candidate, so the argmax, and with it greedy decoding, is the fp32
    layer's (up to the order of floating-point additions, like any two matrix kernels). The
    returned logits are exact for the candidates and the int8 estimates elsewhere.

    Error bound of an estimate (row ``i``, input ``x``): the weights are off by at most
    ``scale_i / 2`` each, the bfloat16 input by ``2^-9 |x_j|`` each (times ``|q| <= 127``), and the
    bfloat16 output by ``2^-9`` of its size; in all at most
    ``scale_i * ||x||_1 * (1/2 + 127 / 2^9) + |estimate_i| / 2^8``, doubled for safety.
    """

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.approx = Int8Linear(linear)
        self.weight = linear.weight  # fp32, shared (e.g. with a tied embedding): read row by row
        self.bias = linear.bias
        self.in_features, self.out_features = linear.in_features, linear.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x2 = x.reshape(-1, self.in_features)
        est = self.approx(x2).float()
        before_bias = est if self.bias is None else est - self.bias.float()
        bound = 2 * (
            self.approx.scale[None, :] * x2.abs().sum(-1, keepdim=True).float() * (0.5 + 127 / 2**9)
            + before_bias.abs() / 2**8
        )
        threshold = (est - bound).amax(dim=-1, keepdim=True)
        rows, cols = torch.nonzero(est + bound >= threshold, as_tuple=True)
        exact = (self.weight[cols].float() * x2[rows].float()).sum(-1)
        if self.bias is not None:
            exact = exact + self.bias[cols].float()
        est[rows, cols] = exact
        return est.to(x.dtype).view(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8 estimate + fp32 candidates"


_INT8_KERNEL_WORKS: dict[str, bool] = {}


def _int8_kernel_works(device: torch.device) -> bool:
    """Whether ``torch._weight_int8pack_mm`` runs on this device type (tried once, on a tiny case)."""
    if device.type not in _INT8_KERNEL_WORKS:
        try:
            x = torch.ones(1, 64, dtype=torch.bfloat16, device=device)
            w = torch.ones(8, 64, dtype=torch.int8, device=device)
            s = torch.ones(8, dtype=torch.bfloat16, device=device)
            _INT8_KERNEL_WORKS[device.type] = bool((torch._weight_int8pack_mm(x, w, s) == 64).all())
        except (AttributeError, RuntimeError, NotImplementedError):
            _INT8_KERNEL_WORKS[device.type] = False
    return _INT8_KERNEL_WORKS[device.type]


@torch.no_grad()
def optimize_for_inference(model: GPT, weights: str = "fp32", exact_max_head: bool = False) -> GPT:
    """A copy of ``model`` prepared for fast generation, in eval mode; ``model`` is unchanged.

    Args:
        model: the model to copy.
        weights: ``"fp32"`` (same numbers; on the CPU, weights prepacked for oneDNN),
            ``"bf16"`` (everything in bfloat16, prepacked on the CPU) or ``"int8"`` (weight-only
            int8 linear layers). See the module's docstring for what each costs.
        exact_max_head: with ``"fp32"``, make the output layer an :class:`ExactMaxLinear`: it
            reads int8 weights but keeps the fp32 layer's largest logit, so greedy decoding gives
            the same tokens while reading about 3/4 fewer bytes for the output layer (other
            logits become int8 estimates: use it for greedy decoding).

    The copy is for inference only (``generate``, ``evaluate``); it cannot be trained or saved.
    On a GPU, ``"fp32"`` changes nothing and ``"bf16"`` is ``model.to(torch.bfloat16)``.
    """
    if weights not in WEIGHT_FORMATS:
        raise ConfigError(f"weights must be one of {WEIGHT_FORMATS}, got {weights!r}.")
    if exact_max_head and weights != "fp32":
        raise ConfigError(
            f"exact_max_head=True needs weights='fp32' (got {weights!r}): its point is "
            "the fp32 model's exact argmax."
        )
    model = copy.deepcopy(model).eval()
    if exact_max_head:
        model.lm_head = ExactMaxLinear(model.lm_head)
    if weights == "bf16":
        model = model.to(torch.bfloat16)
    device, dtype = model.tok_emb.weight.device, model.tok_emb.weight.dtype
    if weights == "int8":
        make = Int8Linear
    elif _onednn_ok(device, dtype):
        make = PackedLinear
    else:
        return model
    linears = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    for name, linear in linears:
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, child, make(linear))
    # A tied output layer now has its own (packed or int8) copy; the embedding keeps the original.
    return model


def weight_bytes_per_token(model: nn.Module) -> int:
    """Bytes of weights one decoding step must read (at any batch size: each weight is read once
    per step): every linear layer's weight and bias in its stored format (a tied output layer's
    full matrix included), the LayerNorms, and one row each of the token and position
    embeddings. The key/value cache, which grows with the sequence, is not included."""
    total, counted = 0, set()

    def add(tensor: torch.Tensor | None, numel: int) -> None:
        nonlocal total
        if tensor is not None and id(tensor) not in counted:
            counted.add(id(tensor))
            total += numel * tensor.element_size()

    for module in model.modules():
        if isinstance(module, ExactMaxLinear):  # reads its int8 copy, then a few fp32 rows
            add(module.bias, 0 if module.bias is None else module.bias.numel())
            continue
        if not isinstance(module, nn.Embedding):
            for t in [*module.parameters(recurse=False), *module.buffers(recurse=False)]:
                add(t, t.numel())
    for module in model.modules():
        if isinstance(module, nn.Embedding):  # a lookup reads one row (unless tied: counted above)
            add(module.weight, module.weight.size(1))
    return total
