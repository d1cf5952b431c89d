"""Tables and plots of the benchmark results (the dicts that ``bench/run.py`` saves as JSON).

Used by ``bench/run.py`` (printed tables, PNG files) and by the book's performance appendix,
which draws its figures from the committed JSON with these same functions.
"""

from __future__ import annotations

GB = 1e9


def _fmt_row(cells, widths) -> str:
    return "  ".join(
        str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(cells, widths))
    )


def table(header: list[str], rows: list[list]) -> str:
    """A plain-text table, first column left-aligned, the others right-aligned."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = [_fmt_row(header, widths), _fmt_row(["-" * w for w in widths], widths)]
    return "\n".join(lines + [_fmt_row(r, widths) for r in rows])


def decode_table(res: dict) -> str:
    """Decoding: tokens/s, speed-up over transformers, same tokens?, share of the bandwidth limit."""
    rows = [
        [
            f"batch {r['batch']}: {r['variant']}",
            f"{r['tokens_per_s']:.1f}",
            f"{r['speedup_vs_transformers']:.2f}x",
            "yes" if r["identical_to_fp32"] else f"{r['token_agreement_vs_fp32']:.0%}",
            f"{r['weight_bytes_per_step'] / 1e6:.0f}",
            f"{r['bandwidth_limit_tokens_per_s']:.1f}",
            f"{r['fraction_of_bandwidth_limit']:.0%}",
        ]
        for r in res["rows"]
    ]
    nc = res["no_cache"]
    bw = res["bandwidth_bytes_per_s"]["best"]
    return (
        table(
            [
                "decoding, greedy",
                "tokens/s",
                "vs transformers",
                "same tokens as fp32",
                "weight MB/step",
                "bandwidth limit",
                "of limit",
            ],
            rows,
        )
        + f"\nmeasured bandwidth (GEMV over {res['bandwidth_bytes_per_s']['buffer_bytes'] / 1e6:.0f} MB): "
        f"{bw / GB:.1f} GB/s"
        + f"\nKV cache vs recomputing, batch 1, {nc['new_tokens']} tokens: {nc['speedup_of_cache']:.2f}x faster "
        f"({nc['tokens_per_s']['cache']:.1f} vs {nc['tokens_per_s']['no cache']:.1f} tokens/s), "
        f"same tokens: {'yes' if nc['identical'] else 'NO'}"
        + "\nwork per token, tiny 12-layer model: "
        + ", ".join(f"{k} {v:.2f} ms" for k, v in res["overhead"]["ms_per_token"].items())
    )


def train_table(res: dict) -> str:
    """Training: seconds per optimizer step, speed-up, model FLOP/s and share of the matmul peak."""
    rows = [
        [
            r["variant"],
            f"{r['seconds_per_step']:.2f}",
            f"{r['tokens_per_s']:.0f}",
            f"{r['speedup_vs_transformers']:.2f}x",
            f"{r['model_flops_per_s'] / 1e9:.0f}",
            f"{r['fraction_of_fp32_matmul_peak']:.0%}",
            f"{r['first_loss']:.4f}",
        ]
        for r in res["rows"]
    ]
    opt = res["optimizer"]
    return (
        table(
            [
                f"training step, batch {res['batch']} x {res['seq_len']}",
                "s/step",
                "tokens/s",
                "vs transformers",
                "model GFLOP/s",
                "of fp32 matmul peak",
                "first loss",
            ],
            rows,
        )
        + f"\nfp32 matmul peak ({res['matmul_n']}^3): {res['fp32_matmul_flops_per_s'] / 1e9:.0f} GFLOP/s"
        + f"\nAdamW step alone: fused {opt['seconds']['fused'] * 1e3:.0f} ms, foreach "
        f"{opt['seconds']['foreach'] * 1e3:.0f} ms ({opt['speedup_of_fused']:.2f}x)"
        + book_model_line(res)
    )


def book_model_line(res: dict) -> str:
    """The book model's training step (bench/train_step.py), when the results have it."""
    b = res.get("book_model")
    if b is None:
        return ""
    return (
        f"\nthe book's model ({b['model']}), batch {b['batch']} x {b['seq_len']}: "
        f"{b['seconds_per_step']:.2f} s/step, {b['tokens_per_s']:.0f} tokens/s, "
        f"{b['model_flops_per_s'] / 1e9:.0f} model GFLOP/s = "
        f"{b['fraction_of_fp32_matmul_peak']:.0%} of the fp32 matmul peak "
        f"({b['output_layer_share_of_flops']:.0%} of its FLOPs in the output layer)"
    )


def tokenizer_table(res: dict) -> str:
    """Tokenizer: tokens/s of each variant per text, and how many times slower than tiktoken."""
    rows = [
        [
            f"{r['text']}: {r['variant']}",
            f"{r['tokens_per_s'] / 1e3:.0f}",
            f"{r['times_slower_than_tiktoken']:.1f}x",
            "yes" if r["identical_ids"] else "NO",
        ]
        for r in res["rows"]
    ]
    return table(["tokenizer", "k tokens/s", "slower than tiktoken", "same ids"], rows)


def quality_table(res: dict) -> str:
    """Quality: perplexity, KL divergence from fp32 and top-1 agreement per weight format."""
    out = []
    for key, title in (
        ("small_model", "book's small model"),
        ("random_124m", "124M, random weights"),
    ):
        if key in res:
            rows = [
                [
                    r["weights"],
                    f"{r['perplexity']:.3f}",
                    f"{r['kl_from_fp32']:.2e}",
                    f"{r['top1_agreement']:.1%}",
                ]
                for r in res[key]["rows"]
            ]
            out.append(
                table(
                    [f"{title}: weights", "perplexity", "KL from fp32 (nats)", "same top-1"], rows
                )
            )
    return f"{res['text']}, {res['windows']} x {res['window_tokens']} tokens\n" + "\n".join(out)


def within_budget(row: dict) -> bool | None:
    """Whether a chapter ran without error within its budget; ``None`` if it has no budget."""
    if row.get("budget_seconds") is None:
        return None
    return not row["error"] and row["seconds"] <= row["budget_seconds"]


def book_summary(res: dict) -> dict:
    """How many chapters with a budget kept it, out of how many, and whether the whole book did."""
    verdicts = [v for v in map(within_budget, res["rows"]) if v is not None]
    within = sum(verdicts)
    return {
        "within": within,
        "budgeted": len(verdicts),
        "ok": within == len(verdicts) and res["total_seconds"] <= res["total_budget_seconds"],
    }


def _chapter_table(res: dict, headers: list[str], row, total: list[str]) -> str:
    """A table of chapter timings: ``row(r)`` for each chapter, then ``["total", seconds,
    *total]``."""
    rows = [row(r) for r in res["rows"]]
    rows.append(["total", f"{res['total_seconds']:.0f}", *total])
    return table(headers, rows)


def book_table(res: dict) -> str:
    """The book: seconds per chapter and in total, against each budget and the total one."""

    def status(r: dict) -> str:
        verdict = within_budget(r)
        if r["error"]:
            return r["error"]
        return "ok (no budget)" if verdict is None else "ok" if verdict else "OVER BUDGET"

    def row(r: dict) -> list[str]:
        budget = "" if r.get("budget_seconds") is None else f"{r['budget_seconds']}"
        return [r["chapter"], f"{r['seconds']:.0f}", budget, status(r)]

    total_ok = res["total_seconds"] <= res["total_budget_seconds"]
    total = [f"{res['total_budget_seconds']:.0f}", "ok" if total_ok else "OVER BUDGET"]
    return _chapter_table(res, ["chapter", "seconds", "budget", "status"], row, total)


def book_online_table(res: dict) -> str:
    """The GPT-2 branches: seconds per chapter and its slowest cell, against the cell limit."""

    def row(r: dict) -> list[str]:
        slowest = f"{r['slowest_cells'][0]['seconds']:.0f}" if r["slowest_cells"] else ""
        return [r["chapter"], f"{r['seconds']:.0f}", slowest, r["error"] or "ok"]

    total_ok = res["total_seconds"] <= res["total_budget_seconds"]
    total = [
        f"limit {res['cell_limit_seconds']}",
        f"{'ok' if total_ok else 'OVER BUDGET'} (budget {res['total_budget_seconds']:.0f})",
    ]
    headers = ["chapter (GPT-2 branch)", "seconds", "slowest cell", "status"]
    return _chapter_table(res, headers, row, total)


def book_gpu_table(res: dict) -> str:
    """The fine-tuning pages' GPU branch: seconds per page and its slowest cell, then every cell
    that raised (``bench/book.py``'s ``RESULT_CLAIMS``, claims about results that random weights
    may miss; any other error fails its page)."""

    def row(r: dict) -> list[str]:
        slowest = f"{r['slowest_cells'][0]['seconds']:.0f}" if r["slowest_cells"] else ""
        return [r["chapter"], f"{r['seconds']:.0f}", slowest, r["error"] or "ok"]

    headers = ["page (GPU branch)", "seconds", "slowest cell", "status"]
    shape = res.get("shape", "GPT-2 124M's own")  # results written before shapes were recorded
    lines = [
        f"{res['device']}; network: {shape}",
        _chapter_table(res, headers, row, ["", ""]),
        "cells that raised:",
    ]
    for r in res["rows"]:
        for e in r["cell_errors"]:
            verdict = {True: " (a result claim)", False: " (not a result claim)"}.get(
                e.get("result_claim"), ""
            )
            lines.append(f"  {r['chapter']}, cell {e['cell']}: {e['error']}{verdict}")
            if e.get("raised_at"):  # found in the traceback
                lines.append(f"      at `{e['raised_at']}`")
    return "\n".join(lines if len(lines) > 3 else [*lines, "  none"])


def plot_decode(res: dict, ax=None):
    """Bar chart of tokens/s per variant at batch 1 and 8, with each variant's bandwidth limit."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(8, 3.8))
    variants = list(dict.fromkeys(r["variant"] for r in res["rows"]))
    batches = sorted({r["batch"] for r in res["rows"]})
    width = 0.8 / len(variants)
    for j, variant in enumerate(variants):
        rows = [
            next(r for r in res["rows"] if r["batch"] == b and r["variant"] == variant)
            for b in batches
        ]
        xs = [i + (j - (len(variants) - 1) / 2) * width for i in range(len(batches))]
        bars = ax.bar(xs, [r["tokens_per_s"] for r in rows], width, label=variant)
        ax.scatter(
            xs,
            [r["bandwidth_limit_tokens_per_s"] for r in rows],
            marker="_",
            s=300,
            color=bars.patches[0].get_facecolor(),
            zorder=3,
        )
    ax.set_xticks(range(len(batches)), [f"batch {b}" for b in batches])
    ax.set_yscale("log")
    ax.set_ylabel("tokens / s (log scale)")
    ax.set_title("Greedy decoding, GPT-2 124M on the CPU (dashes: memory-bandwidth limit)")
    ax.legend(fontsize=8, ncol=2)
    return ax


def plot_train(res: dict, ax=None):
    """Bar chart of achieved model FLOP/s per training variant against the measured fp32 matmul peak."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.2))
    names = [r["variant"] for r in res["rows"]]
    values = [r["model_flops_per_s"] / 1e9 for r in res["rows"]]
    ax.barh(names, values, color=[f"C{i}" for i in range(len(names))])
    peak = res["fp32_matmul_flops_per_s"] / 1e9
    ax.axvline(peak, color="k", ls="--", lw=1)
    ax.text(peak, len(names) - 0.5, " fp32 matmul peak", va="center", fontsize=8)
    for i, r in enumerate(res["rows"]):
        ax.text(values[i], i, f" {r['fraction_of_fp32_matmul_peak']:.0%}", va="center", fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("model GFLOP/s")
    ax.set_title(f"One training step of GPT-2 124M, batch {res['batch']} x {res['seq_len']} tokens")
    return ax


def plot_tokenizer(res: dict, ax=None):
    """Bar chart of tokens/s per tokenizer variant and text (log scale)."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.2))
    labels = [f"{r['text']}\n{r['variant']}" for r in res["rows"]]
    ax.barh(
        range(len(labels)),
        [r["tokens_per_s"] for r in res["rows"]],
        color=["C1" if r["variant"] == "tiktoken" else "C0" for r in res["rows"]],
    )
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set_xscale("log")
    ax.invert_yaxis()
    ax.set_xlabel("tokens / s (log scale)")
    ax.set_title("Encoding speed: from-scratch BPE vs tiktoken")
    return ax


def plot_book(res: dict, ax=None):
    """Horizontal bars: execution seconds per chapter."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.2))
    names = [r["chapter"] for r in res["rows"]]
    ax.barh(names, [r["seconds"] for r in res["rows"]], label="measured")
    budgets = [
        (i, r["budget_seconds"]) for i, r in enumerate(res["rows"]) if r.get("budget_seconds")
    ]
    ax.scatter(
        [b for _, b in budgets],
        [i for i, _ in budgets],
        marker="|",
        s=200,
        color="black",
        zorder=3,
        label="budget",
    )
    ax.invert_yaxis()
    ax.legend(fontsize=8, loc="lower right")
    ax.set_xlabel("seconds")
    ax.set_title(
        f"Execution time per chapter (total {res['total_seconds'] / 60:.1f} of "
        f"{res['total_budget_seconds'] / 60:.0f} min budget)"
    )
    return ax


TABLES = {
    "decode": decode_table,
    "quality": quality_table,
    "train": train_table,
    "tokenizer": tokenizer_table,
    "book": book_table,
    "book_online": book_online_table,
    "book_gpu": book_gpu_table,
    "book_gpu_smoke": book_gpu_table,
}
PLOTS = {"decode": plot_decode, "train": plot_train, "tokenizer": plot_tokenizer, "book": plot_book}
