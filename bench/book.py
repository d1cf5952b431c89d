"""The book's execution time: each chapter run top to bottom in a fresh kernel, as CI runs it.

Chapters are the notebooks listed in ``_toc.yml`` (or given by name). Each one runs in memory
with ``nbclient`` (nothing is written back), from the ``book/`` directory, in this process's
environment: set ``MYGPT_DATA_DIR``, ``TIKTOKEN_CACHE_DIR`` and ``HF_HUB_OFFLINE`` as ``.ci/run``
does. The time includes the kernel's start and stop; the slowest cells are named too.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path

from common import now

ROOT = Path(__file__).resolve().parent.parent

#: The whole book's execution budget on the 2-core CI machine, in seconds.
TOTAL_BUDGET_S = 22 * 60

#: Each chapter's budget in seconds, as its issue set it (the appendices have none).
CHAPTER_BUDGET_S = {
    "01-tokenization": 90,
    "02-attention": 90,
    "03-gpt-model": 90,
    "04-pretraining": 180,
    "05-gpt2-weights": 90,
    "06-sampling": 120,
    "07-architecture-experiments": 240,
    "08-classification": 180,
    "09-instructions-agent": 240,
}

#: What CI sets so that the stored outputs and a fresh run agree (set here if missing).
QUIET_ENV = {"TQDM_DISABLE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1", "PYTHONHASHSEED": "0"}


def chapters_in_toc(toc: Path = ROOT / "_toc.yml") -> list[Path]:
    """The notebooks that ``_toc.yml`` lists (not commented out), in its order."""
    paths = []
    for line in toc.read_text().splitlines():
        m = re.match(r"\s*-\s*file:\s*(\S+)", line)
        if m and (ROOT / f"{m.group(1)}.ipynb").exists():
            paths.append(ROOT / f"{m.group(1)}.ipynb")
    return paths


def _seconds(a: str, b: str) -> float:
    parse = lambda s: dt.datetime.fromisoformat(s.replace("Z", "+00:00"))  # noqa: E731
    return (parse(b) - parse(a)).total_seconds()


def time_notebook(path: Path, timeout: int = 1800) -> dict:
    """Execute one notebook in a fresh kernel; its wall time and its three slowest cells."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    start = now()
    error = None
    try:
        client.execute()
    except Exception as exc:  # a failing chapter is reported, not fatal to the benchmark
        error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1][:200] if str(exc).strip() else ''}"
    seconds = now() - start
    cells = []
    for i, cell in enumerate(nb.cells):
        timing = cell.get("metadata", {}).get("execution", {})
        if (
            cell.cell_type == "code"
            and "iopub.execute_input" in timing
            and "shell.execute_reply" in timing
        ):
            code_lines = [
                line
                for line in cell.source.splitlines()
                if line.strip() and not line.lstrip().startswith("#")
            ]
            first_line = (
                code_lines[0][:70] if code_lines else ""
            )  # the first line that is not a comment
            cells.append(
                {
                    "cell": i,
                    "seconds": _seconds(
                        timing["iopub.execute_input"], timing["shell.execute_reply"]
                    ),
                    "first_line": first_line,
                }
            )
    cells.sort(key=lambda c: -c["seconds"])
    return {
        "chapter": path.stem,
        "seconds": seconds,
        "budget_seconds": CHAPTER_BUDGET_S.get(path.stem),
        "error": error,
        "slowest_cells": cells[:3],
    }


def run(chapters: list[str] | None = None, log=print) -> dict:
    """Time every chapter (or the named ones); returns a JSON-able dict."""
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    if not os.environ.get("MYGPT_DATA_DIR"):
        log("  note: MYGPT_DATA_DIR is not set; chapters will download their data")
    paths = (
        chapters_in_toc()
        if not chapters
        else [ROOT / "book" / f"{Path(c).stem}.ipynb" for c in chapters]
    )
    rows = []
    for path in paths:
        log(f"  {path.stem} ...")
        rows.append(time_notebook(path))
        log(
            f"  {path.stem}: {rows[-1]['seconds']:.0f} s"
            + (f" (FAILED: {rows[-1]['error']})" if rows[-1]["error"] else "")
        )
    total = sum(r["seconds"] for r in rows)
    return {
        "rows": rows,
        "total_seconds": total,
        "total_budget_seconds": TOTAL_BUDGET_S,
        "env": {
            k: os.environ.get(k)
            for k in (
                "MYGPT_DATA_DIR",
                "TIKTOKEN_CACHE_DIR",
                "HF_HUB_OFFLINE",
                "MYGPT_CACHE_DIR",
                *QUIET_ENV,
            )
        },
    }
