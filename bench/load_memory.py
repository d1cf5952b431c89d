"""Peak memory of ``mygpt.load_pretrained`` compared with the size of the weights.

Writes a checkpoint with random weights in the Hub's layout for a GPT-2 size (``Conv1D``
weights stored ``[in, out]``, no ``transformer.`` prefix, the ``attn.bias`` mask buffers and no
``lm_head.weight``, like OpenAI's converted files), then loads it in a fresh Python process and
reports that process's peak resident memory (``VmHWM``) minus its resident memory before loading
(after importing torch and mygpt and a first use of the meta device), divided by the bytes of the
loaded weights. A loader that holds two copies of the weights at once scores about 2;
``load_pretrained`` aims at about 1.

    python bench/load_memory.py                      # gpt2 and gpt2-medium
    python bench/load_memory.py --model gpt2-xl      # 6.2 GB of fp32 weights, ~13 GB to write
    python bench/load_memory.py --dtype bfloat16     # cast while loading
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

from mygpt.config import PRESETS

# Runs in the fresh process: measure, load, measure again, report as one JSON line.
CHILD = """
import json, sys, time, torch
import mygpt.pretrained as pretrained
from mygpt.config import GPTConfig
from mygpt.model import GPT
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
# The first use of the meta device imports torch's meta kernels (about 70 MB, whatever the model
# size): done here so that it counts in "before", not against the weights.
with torch.device("meta"):
    GPT(GPTConfig(vocab_size=8, context_length=8, n_embd=8, n_layer=1, n_head=1))
before = status("VmRSS")
start = time.perf_counter()
model = pretrained.load_pretrained(sys.argv[1], dtype=getattr(torch, sys.argv[2]))
seconds = time.perf_counter() - start
weights = sum(p.numel() * p.element_size() for p in model.parameters())  # tied matrix once
print(json.dumps({"before": before, "peak": status("VmHWM"), "after": status("VmRSS"),
                  "weights": weights, "seconds": seconds}))
"""


def write_checkpoint(name: str, directory: Path) -> Path:
    """A random-weight ``model.safetensors`` + ``config.json`` for preset ``name``, Hub layout."""
    cfg = PRESETS[name]
    C, ctx = cfg.n_embd, cfg.context_length
    gen = torch.Generator().manual_seed(0)

    def randn(*shape):
        return torch.randn(*shape, generator=gen) * 0.02

    tensors = {"wte.weight": randn(cfg.vocab_size, C), "wpe.weight": randn(ctx, C)}
    for i in range(cfg.n_layer):
        tensors.update({
            f"h.{i}.ln_1.weight": torch.ones(C), f"h.{i}.ln_1.bias": torch.zeros(C),
            f"h.{i}.attn.bias": torch.tril(torch.ones(ctx, ctx)).view(1, 1, ctx, ctx),
            f"h.{i}.attn.c_attn.weight": randn(C, 3 * C), f"h.{i}.attn.c_attn.bias": randn(3 * C),
            f"h.{i}.attn.c_proj.weight": randn(C, C), f"h.{i}.attn.c_proj.bias": randn(C),
            f"h.{i}.ln_2.weight": torch.ones(C), f"h.{i}.ln_2.bias": torch.zeros(C),
            f"h.{i}.mlp.c_fc.weight": randn(C, 4 * C), f"h.{i}.mlp.c_fc.bias": randn(4 * C),
            f"h.{i}.mlp.c_proj.weight": randn(4 * C, C), f"h.{i}.mlp.c_proj.bias": randn(C),
        })  # fmt: skip
    tensors.update({"ln_f.weight": torch.ones(C), "ln_f.bias": torch.zeros(C)})
    path = directory / "model.safetensors"
    save_file(tensors, str(path), metadata={"format": "pt"})
    config = {
        "model_type": "gpt2", "vocab_size": cfg.vocab_size, "n_positions": ctx, "n_embd": C,
        "n_layer": cfg.n_layer, "n_head": cfg.n_head, "layer_norm_epsilon": cfg.ln_eps,
        "activation_function": "gelu_new",
    }  # fmt: skip
    (directory / "config.json").write_text(json.dumps(config, indent=2))
    return path


def measure(name: str, dtype: str) -> dict:
    """Write the checkpoint, load it in a fresh process, return that process's measurements."""
    with tempfile.TemporaryDirectory(prefix="mygpt-load-memory-") as tmp:
        path = write_checkpoint(name, Path(tmp))
        file_bytes = path.stat().st_size
        out = subprocess.run(
            [sys.executable, "-c", CHILD, tmp, dtype], capture_output=True, text=True, check=True
        )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result.update(model=name, dtype=dtype, file=file_bytes)
    result["ratio"] = (result["peak"] - result["before"]) / result["weights"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", nargs="+", default=["gpt2", "gpt2-medium"], choices=PRESETS)
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    args = parser.parse_args()
    mb = 1e6
    print(f"{'model':<12} {'dtype':<9} {'file MB':>8} {'weights MB':>10} {'RSS before':>10} "
          f"{'peak':>8} {'after':>8} {'(peak-before)/weights':>22} {'load s':>7}")  # fmt: skip
    for name in args.model:
        r = measure(name, args.dtype)
        print(f"{name:<12} {args.dtype:<9} {r['file'] / mb:8.0f} {r['weights'] / mb:10.0f} "
              f"{r['before'] / mb:10.0f} {r['peak'] / mb:8.0f} {r['after'] / mb:8.0f} "
              f"{r['ratio']:22.2f} {r['seconds']:7.1f}")  # fmt: skip


if __name__ == "__main__":
    t0 = time.perf_counter()
    main()
    print(f"total {time.perf_counter() - t0:.0f} s")
