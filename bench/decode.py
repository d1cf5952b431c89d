"""Decoding speed: GPT-2 124M (random weights), greedy, fp32 CPU, batch 1 and 8.

Side by side in one interleaved run, per batch size: mygpt with its KV cache, ``transformers``'
``generate()`` on the same weights, and mygpt's copies from ``optimize_for_inference``: fp32
with prepacked weights (same tokens), the same with an int8 output layer that keeps the exact
largest logit (same greedy tokens), and fewer bytes per weight (bfloat16, int8 weight-only). Separately: mygpt without the cache (fewer tokens: it is slow), and the framework's
own work per token, measured on a model so small that the arithmetic costs almost nothing.

Tokens/s are compared with the memory-bandwidth limit: at batch 1 each new token reads every
weight once, so ``measured bandwidth / weight bytes per token`` tokens/s is the most any
implementation can reach at that precision.
"""

from __future__ import annotations

import torch
from common import interleaved, measure_bandwidth, median, paired_ratio

import mygpt
from mygpt.inference import optimize_for_inference, weight_bytes_per_token


def hf_twin(model: mygpt.GPT):
    """A ``transformers`` ``GPT2LMHeadModel`` holding exactly ``model``'s weights (eval mode)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from mygpt.pretrained import hub_to_ours

    cfg = model.config
    hf_cfg = GPT2Config(
        vocab_size=cfg.vocab_size,
        n_positions=cfg.context_length,
        n_embd=cfg.n_embd,
        n_layer=cfg.n_layer,
        n_head=cfg.n_head,
        layer_norm_epsilon=cfg.ln_eps,
        activation_function="gelu_new",
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        tie_word_embeddings=cfg.tie_weights,
        bos_token_id=None,
        eos_token_id=None,
    )
    hf = GPT2LMHeadModel(hf_cfg)
    ours = model.state_dict()
    state = {}
    for name in hf.state_dict():
        mapped = hub_to_ours(name)
        if mapped is not None:
            our_name, transpose = mapped
            state[name] = ours[our_name].t() if transpose else ours[our_name]
    missing, unexpected = hf.load_state_dict(state, strict=False)
    leftover = [n for n in missing if not n.endswith((".attn.bias", ".attn.masked_bias"))]
    if leftover or unexpected:
        raise RuntimeError(f"weights did not map onto transformers' GPT-2: {leftover} {unexpected}")
    return hf.eval()


def hf_generate(hf, idx: torch.Tensor, new_tokens: int) -> torch.Tensor:
    """Greedy decoding with ``transformers``: exactly ``new_tokens`` tokens (no stop token)."""
    with torch.inference_mode():
        return hf.generate(
            idx,
            attention_mask=torch.ones_like(idx),
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            do_sample=False,
            pad_token_id=0,
            eos_token_id=None,
        )


def prompts(batch: int, length: int = 8, vocab: int = 50257, seed: int = 1) -> torch.Tensor:
    """``[batch, length]`` fixed random prompt ids (equal lengths: no padding on either side)."""
    return torch.randint(0, vocab, (batch, length), generator=torch.Generator().manual_seed(seed))


def bench_batch(models: dict, hf, batch: int, new_tokens: int, repeats: int) -> list[dict]:
    """Interleaved decoding of ``new_tokens`` tokens at ``batch`` for every variant; one row each."""
    idx = prompts(batch)
    outputs: dict[str, torch.Tensor] = {}

    def variant(name: str, fn):
        def call(n: int = new_tokens):
            outputs[name] = fn(n)  # the last timed call's tokens are the ones compared

        return call

    fns = {
        name: variant(name, lambda n, m=m: mygpt.generate(m, idx, n)) for name, m in models.items()
    }
    fns["transformers"] = variant("transformers", lambda n: hf_generate(hf, idx, n))
    for fn in fns.values():
        fn(8)  # warm-up: first calls pay for memory allocation and kernel choice
    times = interleaved(fns, repeats, warmup=0)
    reference = outputs["mygpt fp32"]
    rows = []
    for name in fns:
        out = outputs[name]
        new = out[:, idx.size(1) :]
        rows.append(
            {
                "batch": batch,
                "variant": name,
                "new_tokens": new_tokens,
                "tokens_per_s": batch * new_tokens / median(times[name]),
                "speedup_vs_transformers": paired_ratio(times["transformers"], times[name]),
                "token_agreement_vs_fp32": float(
                    (new == reference[:, idx.size(1) :]).float().mean()
                ),
                "identical_to_fp32": bool(torch.equal(out, reference)),
                "seconds": times[name],
            }
        )
    return rows


def bench_no_cache(model: mygpt.GPT, new_tokens: int, repeats: int) -> dict:
    """KV cache vs recomputing the whole sequence at every step, batch 1."""
    idx = prompts(1)
    fns = {
        "cache": lambda: mygpt.generate(model, idx, new_tokens),
        "no cache": lambda: mygpt.generate(model, idx, new_tokens, use_cache=False),
    }
    same = torch.equal(fns["cache"](), fns["no cache"]())
    times = interleaved(fns, repeats, warmup=0)
    return {
        "batch": 1,
        "new_tokens": new_tokens,
        "identical": same,
        "tokens_per_s": {k: new_tokens / median(v) for k, v in times.items()},
        "speedup_of_cache": paired_ratio(times["no cache"], times["cache"]),
        "seconds": times,
    }


def bench_overhead(new_tokens: int, repeats: int) -> dict:
    """Milliseconds per token of a 12-layer model only 64 wide with a 512-token vocabulary: the
    arithmetic is negligible, so what remains is each framework's own work per token."""
    cfg = mygpt.GPTConfig(vocab_size=512, context_length=1024, n_embd=64, n_layer=12, n_head=4)
    torch.manual_seed(0)
    model = mygpt.GPT(cfg).eval()
    hf = hf_twin(model)
    idx = prompts(1, vocab=cfg.vocab_size)
    fns = {
        "mygpt": lambda: mygpt.generate(model, idx, new_tokens),
        "transformers": lambda: hf_generate(hf, idx, new_tokens),
    }
    same = torch.equal(fns["mygpt"](), fns["transformers"]())
    times = interleaved(fns, repeats, warmup=1)
    return {
        "config": cfg.to_dict(),
        "new_tokens": new_tokens,
        "identical": same,
        "ms_per_token": {k: 1e3 * median(v) / new_tokens for k, v in times.items()},
    }


def run(quick: bool = False, log=print) -> dict:
    """The whole decoding benchmark; returns a JSON-able dict."""
    new_tokens = 50 if quick else 200
    repeats = 2 if quick else 3
    torch.manual_seed(0)
    fp32 = mygpt.GPT(mygpt.GPTConfig.from_name("gpt2")).eval()
    hf = hf_twin(fp32)
    models = {
        "mygpt fp32": fp32,
        "mygpt fp32 packed": optimize_for_inference(fp32, "fp32"),
        "mygpt fp32 exact-max head": optimize_for_inference(fp32, "fp32", exact_max_head=True),
        "mygpt bf16": optimize_for_inference(fp32, "bf16"),
        "mygpt int8": optimize_for_inference(fp32, "int8"),
    }
    weight_bytes = {name: weight_bytes_per_token(m) for name, m in models.items()}
    weight_bytes["transformers"] = weight_bytes["mygpt fp32"]

    log("  bandwidth: GEMV over a matrix the size of the fp32 weights")
    bandwidth = measure_bandwidth(nbytes=weight_bytes["mygpt fp32"])
    rows = []
    for batch in (1, 8):
        log(f"  batch {batch}: {new_tokens} new tokens x {repeats} interleaved rounds")
        rows += bench_batch(models, hf, batch, new_tokens, repeats)
    for row in rows:
        row["weight_bytes_per_step"] = weight_bytes[row["variant"]]
        # At the measured bandwidth, one step (one token per row) cannot take less than this.
        row["bandwidth_limit_tokens_per_s"] = (
            row["batch"] * bandwidth["best"] / row["weight_bytes_per_step"]
        )
        row["fraction_of_bandwidth_limit"] = (
            row["tokens_per_s"] / row["bandwidth_limit_tokens_per_s"]
        )
    log("  KV cache vs recomputation, batch 1")
    no_cache = bench_no_cache(fp32, 20 if quick else 50, repeats)
    log("  work per token on a tiny 12-layer model")
    overhead = bench_overhead(50 if quick else 200, repeats + 2)
    return {
        "model": "gpt2 (124M), random weights",
        "prompt_tokens": 8,
        "new_tokens": new_tokens,
        "repeats": repeats,
        "bandwidth_bytes_per_s": bandwidth,
        "rows": rows,
        "no_cache": no_cache,
        "overhead": overhead,
    }
