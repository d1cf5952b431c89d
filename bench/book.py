"""The book's execution time: each chapter run top to bottom in a fresh kernel, as CI runs it.

Chapters are the notebooks listed in ``_toc.yml`` (or given by name). Each one runs in memory
with ``nbclient`` (nothing is written back), from the ``book/`` directory, in this process's
environment: set ``MYGPT_DATA_DIR``, ``TIKTOKEN_CACHE_DIR`` and ``HF_HUB_OFFLINE`` as ``.ci/run``
does. The time includes the kernel's start and stop; the slowest cells are named too.

:func:`run_online` runs the chapters' GPT-2 branches instead, the ones a reader with network
access takes: GPT-2's Hub repositories with random weights (``tests/hub_snapshot.py``) stand in
for OpenAI's, so the outputs mean nothing; what counts is that every cell runs, and how long.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
import tempfile
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


#: The chapters that load GPT-2 when its weights can be loaded, on a CPU as well, and the sizes
#: each loads. Chapters 8 and 9 fine-tune GPT-2 only on a GPU (``mygpt.fine_tuning_base``): on
#: a CPU they take the same path with or without GPT-2, which the offline run already checks.
ONLINE_CHAPTERS = {
    "05-gpt2-weights": ("gpt2", "gpt2-medium", "gpt2-large"),
    "06-sampling": ("gpt2",),
}

#: The limits of the online runs: a cell may take at most this long when the book executes
#: its notebooks (``_config.yml``, ``execute: timeout``) ...
ONLINE_CELL_LIMIT_S = 600
#: ... and the GPT-2 branches together at most this long.
ONLINE_TOTAL_BUDGET_S = 45 * 60

#: Text that each chapter prints only when GPT-2 was loaded: proof that the branch ran.
ONLINE_MARKERS = {
    "05-gpt2-weights": "model: OpenAI's GPT-2 124M weights",
    "06-sampling": "share of samples that stopped, per temperature",
}


def _seconds(a: str, b: str) -> float:
    parse = lambda s: dt.datetime.fromisoformat(s.replace("Z", "+00:00"))  # noqa: E731
    return (parse(b) - parse(a)).total_seconds()


def _printed(nb) -> str:
    """Everything the executed notebook's cells printed or displayed as text."""
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            parts.append(out.get("text", ""))
            parts.append(out.get("data", {}).get("text/plain", ""))
    return "\n".join(p if isinstance(p, str) else "".join(p) for p in parts)


def time_notebook(path: Path, timeout: int = 1800, marker: str | None = None) -> dict:
    """Execute one notebook in a fresh kernel; its wall time and its three slowest cells.

    With ``marker``, a run whose outputs do not contain it counts as failed."""
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
    if error is None and marker is not None and marker not in _printed(nb):
        error = f"the outputs lack {marker!r}: the branch it marks did not run"
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


def run(chapters: list[str] | None = None, log=print, markers: dict | None = None) -> dict:
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
        rows.append(time_notebook(path, marker=(markers or {}).get(path.stem)))
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


def run_online(chapters: list[str] | None = None, log=print) -> dict:
    """Time the GPT-2 branches: :data:`ONLINE_CHAPTERS` (or the named ones) with GPT-2's Hub
    repositories, random weights, in a Hugging Face cache and ``HF_HUB_OFFLINE=1``.

    The cache is built in a temporary directory (about 4.7 GB with the three sizes of chapter 5)
    and removed afterwards; ``MYGPT_HUB_SNAPSHOT`` names a directory to build it in and keep, or
    to reuse. Each chapter must print its :data:`ONLINE_MARKERS` text.
    """
    from huggingface_hub.file_download import repo_folder_name

    sys.path.insert(0, str(ROOT / "tests"))
    from hub_snapshot import SIZES, build_gpt2_snapshot

    names = [Path(c).stem for c in chapters] if chapters else list(ONLINE_CHAPTERS)
    sizes = sorted(
        {s for n in names for s in ONLINE_CHAPTERS.get(n, ("gpt2",))}, key=list(SIZES).index
    )
    keep = os.environ.get("MYGPT_HUB_SNAPSHOT")
    tmp = None if keep else tempfile.TemporaryDirectory(prefix="mygpt-hub-")
    home = Path(keep or tmp.name)
    saved = {k: os.environ.get(k) for k in ("HF_HOME", "HF_HUB_CACHE", "HF_HUB_OFFLINE")}
    try:
        for size in sizes:
            repo = home / "hub" / repo_folder_name(repo_id=SIZES[size][0], repo_type="model")
            if not repo.exists():  # written by an earlier run with MYGPT_HUB_SNAPSHOT
                log(f"  writing {size} with random weights into the Hub cache {home} ...")
                build_gpt2_snapshot(home, size)
        os.environ.update(HF_HOME=str(home), HF_HUB_OFFLINE="1")
        os.environ.pop("HF_HUB_CACHE", None)
        result = run(names, log, markers=ONLINE_MARKERS)
        for row in result["rows"]:  # the offline budgets do not apply; the cell limit does
            row["budget_seconds"] = None
            if row["slowest_cells"] and row["slowest_cells"][0]["seconds"] > ONLINE_CELL_LIMIT_S:
                row["error"] = row["error"] or f"a cell took over {ONLINE_CELL_LIMIT_S} s"
        result.update(
            total_budget_seconds=ONLINE_TOTAL_BUDGET_S,
            cell_limit_seconds=ONLINE_CELL_LIMIT_S,
            sizes=sizes,
        )
        log("  chapter 8's fine-tuning step with GPT-2 124M on this CPU ...")
        # In a fresh Python: huggingface_hub reads HF_HOME when it is first imported.
        code = "import book, json; print(json.dumps(book.gpt2_fine_tuning_step()))"
        measured = subprocess.run(
            [sys.executable, "-c", code], cwd=Path(__file__).parent, env=os.environ,
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        result["gpt2_fine_tuning"] = json.loads(measured.stdout.strip().splitlines()[-1])
        log(f"  {result['gpt2_fine_tuning']}")
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if tmp is not None:
            tmp.cleanup()
    return result


def gpt2_fine_tuning_step(repeats: int = 3) -> dict:
    """Seconds per training step of chapter 8's main run on this machine's CPU: batches of 8
    messages of 64 tokens, the last block and the head trained; GPT-2 124M (from the Hub cache)
    in float64 (the chapters' dtype on a CPU) and float32, the book's model in float64; and the
    main run's number of steps."""
    import statistics

    import torch
    from common import time_call

    import mygpt
    from mygpt import finetune as ft
    from mygpt.training import configure_optimizer

    rows = ft.balance_classes(mygpt.data.load_sms_spam(), seed=123)
    train_rows = ft.split_rows(rows, (0.7, 0.1, 0.2), seed=123)[0]
    batch, length, epochs = 8, 64, 3  # chapter 8's settings
    out = {"batch": batch, "tokens": length, "steps": epochs * -(-len(train_rows) // batch)}
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 50257, (batch, length), generator=gen)
    lengths, y = torch.full((batch,), length), torch.randint(0, 2, (batch,), generator=gen)
    runs = {
        "gpt2_float64": lambda: mygpt.load_pretrained("gpt2", dtype=torch.float64),
        "gpt2_float32": lambda: mygpt.load_pretrained("gpt2"),
        "book_float64": lambda: mygpt.book_model(verbose=False).double(),
    }
    for name, load in runs.items():
        gpt = load()
        clf = ft.GPTClassifier(gpt, ["ham", "spam"], "mean", length).to(gpt.lm_head.weight.dtype)
        ft.set_trainable(clf, "last")
        optimizer = configure_optimizer(clf, 1e-3, weight_decay=0.1)

        def step(clf=clf, optimizer=optimizer):
            loss = ft.classification_loss(clf, (x, lengths, y))  # train_classifier's loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

        step()  # the first step allocates the optimizer's state
        out[f"seconds_per_step_{name}"] = statistics.median(time_call(step) for _ in range(repeats))
    return out
