"""What fewer bytes per weight cost: bfloat16 and int8 weight-only against fp32.

Measured on a model that has learned something, the book's small pretrained model
(``mygpt.zoo.small_pretrained``: 4 blocks, 128 wide, GPT-2's vocabulary, trained on Tiny
Shakespeare; trained on first use, about a minute, then cached), over a fixed text: the last 10%
of Tiny Shakespeare, which it did not train on. Reported per weight format: perplexity, the mean
KL divergence of its next-token distribution from fp32's (in nats per token), and how often its
most likely next token is fp32's. The same divergence is measured for GPT-2 124M with random
weights, whose near-uniform predictions make perplexity meaningless but still show how far the
logits move.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

import mygpt
from mygpt.data import train_val_split
from mygpt.files import read_text
from mygpt.inference import WEIGHT_FORMATS, optimize_for_inference
from mygpt.tokenizer import encode_ordinary


def windows(n: int, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` consecutive ``(x, y)`` windows of ``length`` tokens from the held-out Shakespeare text."""
    _, val_text = train_val_split(read_text("tinyshakespeare"), 0.9)
    ids = torch.tensor(encode_ordinary(val_text)[: n * length + 1])
    if ids.numel() < n * length + 1:
        raise ValueError(
            f"the held-out text has only {ids.numel()} tokens, fewer than {n} windows of {length}"
        )
    return ids[:-1].view(n, length), ids[1:].view(n, length)


@torch.inference_mode()
def compare(model: mygpt.GPT, x: torch.Tensor, y: torch.Tensor) -> list[dict]:
    """Perplexity, KL divergence from fp32 and top-1 agreement of each weight format."""
    ref = model.eval()(x).float()
    ref_logp = F.log_softmax(ref, dim=-1)
    rows = []
    for weights in WEIGHT_FORMATS:
        logits = ref if weights == "fp32" else optimize_for_inference(model, weights)(x).float()
        logp = F.log_softmax(logits, dim=-1)
        loss = F.cross_entropy(logits.flatten(0, 1), y.flatten()).item()
        kl = (ref_logp.exp() * (ref_logp - logp)).sum(-1).mean().item()
        rows.append(
            {
                "weights": weights,
                "loss": loss,
                "perplexity": math.exp(loss),
                "kl_from_fp32": kl,
                "top1_agreement": (logits.argmax(-1) == ref.argmax(-1)).float().mean().item(),
            }
        )
    return rows


def run(quick: bool = False, log=print) -> dict:
    """The quality measurement; returns a JSON-able dict."""
    n, length = (2, 256) if quick else (8, 256)
    x, y = windows(n, length)
    result = {
        "text": "Tiny Shakespeare, last 10% (held out)",
        "windows": n,
        "window_tokens": length,
    }
    try:
        from mygpt.zoo import small_pretrained
    except ImportError:
        small_pretrained = None
    if small_pretrained is not None:
        log("  the book's small pretrained model")
        small = small_pretrained(verbose=False)
        result["small_model"] = {"config": small.config.to_dict(), "rows": compare(small, x, y)}
    log("  GPT-2 124M, random weights")
    torch.manual_seed(0)
    big = mygpt.GPT(mygpt.GPTConfig.from_name("gpt2"))
    result["random_124m"] = {"rows": compare(big, x[:1], y[:1])}
    return result
