"""Run the benchmarks, save their results as JSON and plots, print the tables.

    python bench/run.py                 # decode, quality, train, tokenizer: about 10 minutes
    python bench/run.py --quick         # shorter runs of the same (results in bench/results/quick/)
    python bench/run.py --only decode   # some sections only (decode quality train tokenizer book)
    python bench/run.py --book          # also time every page, offline and online (~30 min)
    python bench/run.py --only book_online  # the chapters' GPT-2 branches, on random GPT-2s
    python bench/run.py --only book_gpu     # chapters 8-9's GPU branch (random GPT-2; hours on a CPU)
    python bench/run.py --only book_gpu_smoke  # the same branch on a 2-layer GPT-2 (minutes; CI)
    python bench/run.py --compile       # also time a torch.compile'd training step

Set the environment as CI does (``MYGPT_DATA_DIR``, ``TIKTOKEN_CACHE_DIR``, ``HF_HUB_OFFLINE=1``)
to run offline. Every comparison runs its variants interleaved, several rounds, and reports
medians and median paired ratios: on a shared machine a slow moment then slows every variant
alike. Each JSON file records where and when it was measured.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # the sibling modules
sys.path.insert(0, str(HERE.parent))  # mygpt, when it is not installed

import report  # noqa: E402
import torch  # noqa: E402
from common import machine_info  # noqa: E402

SECTIONS = (
    "decode",
    "quality",
    "train",
    "tokenizer",
    "book",
    "book_online",
    "book_gpu",
    "book_gpu_smoke",
)


def run_section(name: str, args) -> dict:
    """Import and run one section's benchmark."""
    log = lambda msg: print(msg, flush=True)  # noqa: E731
    if name == "decode":
        import decode

        return decode.run(args.quick, log)
    if name == "quality":
        import quality

        return quality.run(args.quick, log)
    if name == "train":
        import train_step

        return train_step.run(args.quick, log, compile=args.compile)
    if name == "tokenizer":
        import tokenizer

        return tokenizer.run(args.quick, log)
    if name == "book":
        import book

        return book.run(args.chapters, log)
    if name == "book_online":
        import book

        return book.run_online(args.chapters, log)
    if name == "book_gpu":
        import book

        return book.run_gpu_branch(args.chapters, log)
    if name == "book_gpu_smoke":
        import book

        return book.run_gpu_branch(args.chapters, log, shape=book.SMOKE_SHAPE)
    raise ValueError(name)


def save_plot(name: str, result: dict, out: Path) -> None:
    """Draw the section's figure into ``out/<name>.png`` (sections without a figure: nothing)."""
    if name not in report.PLOTS:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ax = report.PLOTS[name](result)
    ax.figure.tight_layout()
    ax.figure.savefig(out / f"{name}.png", dpi=110)
    plt.close(ax.figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="fewer tokens and rounds (about 4 minutes)"
    )
    parser.add_argument("--only", nargs="+", choices=SECTIONS, help="run only these sections")
    parser.add_argument("--book", action="store_true", help="also time the book's chapters")
    parser.add_argument(
        "--chapters", nargs="+", help="with --book: only these chapters (e.g. 01-tokenization)"
    )
    parser.add_argument(
        "--compile", action="store_true", help="also time a torch.compile'd training step"
    )
    parser.add_argument(
        "--threads", type=int, help="torch threads (default: PyTorch's choice, one per core)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="results directory (default bench/results, or bench/results/quick with --quick)",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    # the GPU branch only when named: without a GPU it takes hours (or checks code only)
    sections = args.only or [
        s for s in SECTIONS if not s.startswith("book") or (args.book and "gpu" not in s)
    ]
    out = args.out or (HERE / "results" / "quick" if args.quick else HERE / "results")
    out.mkdir(parents=True, exist_ok=True)

    meta = machine_info()
    meta.update(quick=args.quick, command="python bench/run.py " + " ".join(sys.argv[1:]))
    start, failed = time.perf_counter(), []
    for name in sections:
        print(f"\n== {name} ==", flush=True)
        t0 = time.perf_counter()
        result = run_section(name, args)
        meta_now = dict(
            meta,
            seconds=round(time.perf_counter() - t0, 1),
            load_average_1min_after=machine_info().get("load_average_1min"),
        )
        (out / f"{name}.json").write_text(
            json.dumps({"meta": meta_now, "result": result}, indent=1) + "\n"
        )
        save_plot(name, result, out)
        if name in report.TABLES:
            print(report.TABLES[name](result), flush=True)
        failed += [r["chapter"] for r in result.get("rows", []) if r.get("error")]
    print(f"\nresults in {out} ({time.perf_counter() - start:.0f} s)")
    if failed:  # a chapter that failed fails the command (CI runs the GPT-2 branches this way)
        sys.exit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
