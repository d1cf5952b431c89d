"""Training speed: one optimizer step of GPT-2 124M on the CPU, mygpt vs transformers.

Both models hold the same weights and take the same batch; each step is forward, the same
next-token loss, backward, gradient clipping and the same AdamW (``mygpt.train``'s
``configure_optimizer``: fused, decay on matrices only), exactly what ``mygpt.train`` does per step.
Square fp32 matrix products run in the same interleaved rounds, so each round's model FLOP/s can
be divided by that round's matmul FLOP/s: the fraction of the machine's measured peak that
training achieves (its model FLOPs utilisation), robust to the machine's load.

Also measured, for the report: the optimizer alone (fused vs PyTorch's default ``foreach``
AdamW), mygpt under CPU bfloat16 autocast (not what the book's chapters use), and, with
``compile=True``, mygpt under ``torch.compile`` (its compilation, tens of seconds, is not timed).
"""

from __future__ import annotations

import contextlib

import torch
from common import interleaved, median, paired_ratio
from decode import hf_twin
from torch import nn

import mygpt
from mygpt.training import configure_optimizer, next_token_loss


def model_flops_per_token(cfg: mygpt.GPTConfig, n_params_matmul: int, seq_len: int) -> float:
    """Training FLOPs per token: ``6 N`` for the weights' matrix products (forward 2, backward 4)
    plus ``12 * n_layer * T * n_embd`` for attention's scores and weighted sums (the PaLM paper's
    count, Chowdhery et al. 2022, appendix B; causal masking not subtracted)."""
    return 6 * n_params_matmul + 12 * cfg.n_layer * seq_len * cfg.n_embd


def make_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, logits_of, autocast=None):
    """One training step as ``mygpt.train`` takes it; returns a function that runs it."""
    optimizer = configure_optimizer(model, lr=1e-4)
    ctx = autocast or contextlib.nullcontext

    def step() -> float:
        with ctx():
            loss = next_token_loss(logits_of(model, x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        return loss.item()

    return step


def bench_optimizer(model: nn.Module, repeats: int) -> dict:
    """AdamW's step alone on the model's gradients: fused kernel vs the default (``foreach``)."""
    for p in model.parameters():
        p.grad = torch.randn_like(p) * 1e-3
    groups = [
        {"params": [p for p in model.parameters() if p.dim() >= 2], "weight_decay": 0.1},
        {"params": [p for p in model.parameters() if p.dim() < 2], "weight_decay": 0.0},
    ]
    fused = torch.optim.AdamW(groups, lr=1e-6, fused=True)
    foreach = torch.optim.AdamW(groups, lr=1e-6, foreach=True)
    times = interleaved({"fused": fused.step, "foreach": foreach.step}, repeats)
    model.zero_grad(set_to_none=True)
    return {
        "seconds": {k: median(v) for k, v in times.items()},
        "speedup_of_fused": paired_ratio(times["foreach"], times["fused"]),
    }


def bench_book_model(repeats: int, steps_per_call: int = 4) -> dict:
    """The training step of the book's own model as its recipe takes it (mygpt/zoo.py: 4 blocks
    of 256, GPT-2's vocabulary, batch 8 x 256, dropout, float32), timed in turns with square
    fp32 matmuls: its tokens/s and its model FLOP/s as a fraction of the measured matmul peak.
    Most of its FLOPs are in the 50,257-way output layer."""
    recipe = mygpt.zoo.pretrained_recipe("book")
    cfg, batch, seq_len = recipe.model, recipe.batch_size, recipe.model.context_length
    torch.manual_seed(0)
    model = mygpt.GPT(cfg).train()
    g = torch.Generator().manual_seed(0)
    data = torch.randint(0, cfg.vocab_size, (batch, seq_len + 1), generator=g)
    step = make_step(model, data[:, :-1], data[:, 1:], lambda m, x: m(x))
    n, k = 2048, 4
    a, b = torch.randn(n, n), torch.randn(n, n)
    times = interleaved(
        {
            "step": lambda: [step() for _ in range(steps_per_call)],
            "matmul": lambda: [a @ b for _ in range(k)],
        },
        repeats,
    )
    n_matmul = model.num_parameters(exclude_embeddings=True) + cfg.vocab_size * cfg.n_embd
    flops_step = model_flops_per_token(cfg, n_matmul, seq_len) * batch * seq_len
    achieved = [steps_per_call * flops_step / t for t in times["step"]]
    peaks = [k * 2 * n**3 / t for t in times["matmul"]]
    seconds = median(times["step"]) / steps_per_call
    return {
        "model": recipe.description,
        "batch": batch,
        "seq_len": seq_len,
        "seconds_per_step": seconds,
        "tokens_per_s": batch * seq_len / seconds,
        "model_flops_per_step": flops_step,
        "model_flops_per_s": median(achieved),
        "fp32_matmul_flops_per_s": median(peaks),
        "fraction_of_fp32_matmul_peak": median(f / p for f, p in zip(achieved, peaks)),
        "output_layer_share_of_flops": 6
        * cfg.vocab_size
        * cfg.n_embd
        * batch
        * seq_len
        / flops_step,
    }


def run(quick: bool = False, log=print, compile: bool = False) -> dict:
    """The whole training benchmark; returns a JSON-able dict."""
    batch, seq_len = (2, 128) if quick else (4, 256)
    repeats = 2 if quick else 3
    torch.manual_seed(0)
    cfg = mygpt.GPTConfig.from_name("gpt2")
    ours = mygpt.GPT(cfg)
    theirs = hf_twin(ours).train()
    copies = {}
    # bf16 autocast is only worth timing where the CPU has bf16 arithmetic (AVX-512 BF16, AMX);
    # elsewhere PyTorch emulates it and one step takes minutes (seen on an AVX2-only EPYC).
    bf16 = torch.backends.cpu.get_cpu_capability() not in ("DEFAULT", "AVX2", "NO AVX")
    for name in ("bf16", "compiled")[: 1 + compile] if bf16 else (("compiled",) if compile else ()):
        copies[name] = mygpt.GPT(cfg)
        copies[name].load_state_dict(ours.state_dict())
        copies[name].train()
    ours.train()
    g = torch.Generator().manual_seed(0)
    data = torch.randint(0, cfg.vocab_size, (batch, seq_len + 1), generator=g)
    x, y = data[:, :-1], data[:, 1:]

    steps = {
        "mygpt": make_step(ours, x, y, lambda m, x: m(x)),
        "transformers": make_step(theirs, x, y, lambda m, x: m(input_ids=x).logits),
    }
    if bf16:
        steps["mygpt bf16 autocast"] = make_step(
            copies["bf16"],
            x,
            y,
            lambda m, x: m(x),
            autocast=lambda: torch.autocast("cpu", dtype=torch.bfloat16),
        )
    if compile:
        steps["mygpt compiled"] = make_step(
            torch.compile(copies["compiled"]), x, y, lambda m, x: m(x)
        )
    log(
        "  first step of each (same weights, same batch: the losses must agree)"
        + ("; compiling takes a while" if compile else "")
    )
    first_loss = {name: step() for name, step in steps.items()}

    n = 2048
    a, b = torch.randn(n, n), torch.randn(n, n)
    k = 8  # matmuls per timed call, so that one call lasts a good fraction of a second
    steps["matmul"] = lambda: [a @ b for _ in range(k)]
    log(f"  batch {batch} x {seq_len} tokens: {repeats} interleaved rounds")
    times = interleaved(steps, repeats, warmup=0)

    n_matmul = (
        ours.num_parameters(exclude_embeddings=True) + cfg.vocab_size * cfg.n_embd
    )  # + output layer
    flops_step = model_flops_per_token(cfg, n_matmul, seq_len) * batch * seq_len
    matmul_flops = [k * 2 * n**3 / t for t in times["matmul"]]
    rows = []
    for name in [s for s in steps if s != "matmul"]:
        achieved = [flops_step / t for t in times[name]]
        rows.append(
            {
                "variant": name,
                "seconds_per_step": median(times[name]),
                "seconds": times[name],
                "tokens_per_s": batch * seq_len / median(times[name]),
                "speedup_vs_transformers": paired_ratio(times["transformers"], times[name]),
                "model_flops_per_s": median(achieved),
                "fraction_of_fp32_matmul_peak": median(
                    f / p for f, p in zip(achieved, matmul_flops)
                ),
                "first_loss": first_loss[name],
            }
        )
    log("  optimizer alone: fused vs foreach AdamW")
    optimizer = bench_optimizer(ours, repeats + 2)
    log("  the book's own model, as its recipe trains it")
    book_model = bench_book_model(repeats + 2)
    return {
        "model": "gpt2 (124M), random weights",
        "batch": batch,
        "seq_len": seq_len,
        "repeats": repeats,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "model_flops_per_step": flops_step,
        "params_in_matmuls": n_matmul,
        "fp32_matmul_flops_per_s": median(matmul_flops),
        "matmul_n": n,
        "rows": rows,
        "optimizer": optimizer,
        "book_model": book_model,
    }
