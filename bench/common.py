"""Shared helpers of the benchmarks: side-by-side timing, machine facts, measured peaks.

These machines are shared and noisy, so every comparison here is *interleaved*: the variants
run in turns (A, B, C, then B, C, A, ...), each repeated, and the result is the median of each
variant's times and the median of the per-round ratios. A slow moment then hurts every variant
alike instead of one.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import statistics
import time
from collections.abc import Callable

import torch

from mygpt.device import processor_name


def now() -> float:
    """A monotonic clock in seconds (``time.perf_counter``)."""
    return time.perf_counter()


def time_call(fn: Callable[[], object]) -> float:
    """Seconds one call of ``fn`` takes."""
    start = now()
    fn()
    return now() - start


def interleaved(
    fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 1
) -> dict[str, list[float]]:
    """Time every function ``repeats`` times, taking turns, the starting one rotating each round.

    ``warmup`` untimed rounds go first (first calls pay for allocation and kernel choice).
    Returns each name's list of seconds, in round order, so that round ``i`` of two variants
    ran next to each other and their ratio is a fair paired comparison.
    """
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            times[name].append(time_call(fns[name]))
    return times


def median(xs: list[float]) -> float:
    """The median of ``xs``."""
    return statistics.median(xs)


def paired_ratio(slow: list[float], fast: list[float]) -> float:
    """Median over rounds of ``slow[i] / fast[i]``: how many times faster ``fast`` is."""
    return statistics.median(s / f for s, f in zip(slow, fast))


def machine_info() -> dict:
    """Where and when a measurement ran: CPU, cores, threads, library versions, date."""
    cpu = processor_name()
    info = {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": "cpu",
    }
    try:
        info["load_average_1min"] = round(os.getloadavg()[0], 2)
    except OSError:
        pass
    try:
        import transformers

        info["transformers"] = transformers.__version__
    except ImportError:
        pass
    try:
        import tiktoken

        info["tiktoken"] = tiktoken.__version__
    except ImportError:
        pass
    return info


def measure_bandwidth(nbytes: int = 2**28, repeats: int = 7) -> dict:
    """Memory read bandwidth in bytes/s over an fp32 buffer of about ``nbytes``, measured two ways.

    ``gemv``: a matrix-vector product, the operation that decoding at batch 1 is made of (each
    weight read once, two flops per weight). ``sum``: a plain reduction. The better of the two
    medians is taken as the usable bandwidth. Pass the size of the weights a decoding step reads,
    so that caches help (or fail to help) the measurement as much as they help decoding.
    """
    n_cols = 4096
    n_rows = max(1, nbytes // (4 * n_cols))
    w = torch.randn(n_rows, n_cols)
    x = torch.randn(n_cols)
    size = w.numel() * w.element_size()
    times = interleaved({"gemv": lambda: torch.mv(w, x), "sum": lambda: w.sum()}, repeats)
    result = {name: size / median(t) for name, t in times.items()}
    result["best"] = max(result.values())
    result["buffer_bytes"] = size
    return result


def measure_matmul_peak(
    n: int = 2048, repeats: int = 7, dtype: torch.dtype = torch.float32
) -> dict:
    """Achieved FLOP/s of square ``n x n`` matrix products (``2 n^3`` flops each): the peak that
    training's large matrix products can hope for on this machine."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    times = interleaved({"mm": lambda: a @ b}, repeats)["mm"]
    flops = 2 * n**3
    return {
        "flops_per_s": flops / median(times),
        "best_flops_per_s": flops / min(times),
        "n": n,
        "dtype": str(dtype).removeprefix("torch."),
    }
