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

import contextlib
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


def _raised_at(error_output) -> str:
    """The line of the cell that raised, from an error output's traceback (IPython marks it
    with an arrow that keeps the numbers aligned: ``----> 7 ...``, ``---> 12 ...``)."""
    for entry in error_output.get("traceback", []):
        for line in re.sub(r"\x1b\[[0-9;]*m", "", entry).splitlines():
            m = re.match(r"-+> *\d+ (.*)", line)
            if m:
                return m.group(1).strip()[:120]
    return ""


def time_notebook(
    path: Path,
    timeout: int = 1800,
    marker: str | None = None,
    setup: str | None = None,
    allow_errors: bool = False,
    log=None,
) -> dict:
    """Execute one notebook in a fresh kernel; its wall time and its three slowest cells.

    With ``marker``, a run whose outputs do not contain it counts as failed. ``setup`` is code
    run in a cell of its own right after the one that sets the page's dtype. With
    ``allow_errors`` every cell runs, and each one that raised is listed in ``cell_errors``.
    With ``log``, every cell that took 30 s or more is logged as it ends."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    added = None
    if setup is not None:
        added = 1 + next(i for i, c in enumerate(nb.cells) if "set_default_dtype" in c.source)
        nb.cells.insert(added, nbformat.v4.new_code_cell(setup))
    last = [now()]

    def cell_done(cell, cell_index, **_) -> None:  # nbclient's hook, after each cell
        seconds, last[0] = now() - last[0], now()
        if log is not None and seconds >= 30:
            page_index = cell_index - (added is not None and cell_index > added)
            log(f"    cell {page_index}: {seconds:.0f} s")

    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        allow_errors=allow_errors,
        on_cell_executed=cell_done,
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
    cells, cell_errors = [], []
    for i, cell in enumerate(nb.cells):
        if added is not None and i >= added:  # number the page's own cells as the page does
            if i == added:
                continue
            i -= 1
        timing = cell.get("metadata", {}).get("execution", {})
        if cell.cell_type != "code":
            continue
        code_lines = [
            line
            for line in cell.source.splitlines()
            if line.strip() and not line.lstrip().startswith("#")
        ]
        first_line = code_lines[0][:70] if code_lines else ""  # the first line not a comment
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                cell_errors.append(
                    {
                        "cell": i,
                        "first_line": first_line,
                        "error": f"{out['ename']}: {out['evalue'][:200]}",
                        "raised_at": _raised_at(out),
                    }
                )
        if "iopub.execute_input" in timing and "shell.execute_reply" in timing:
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
    row = {
        "chapter": path.stem,
        "seconds": seconds,
        "budget_seconds": CHAPTER_BUDGET_S.get(path.stem),
        "error": error,
        "slowest_cells": cells[:3],
    }
    if allow_errors:
        row["cell_errors"] = cell_errors
    return row


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


@contextlib.contextmanager
def gpt2_hub(sizes, log=print, shape: dict | None = None):
    """GPT-2's Hub repositories (the named sizes) with random weights in a Hugging Face cache,
    and ``HF_HOME`` pointing at it with ``HF_HUB_OFFLINE=1`` while the block runs; yields the
    sizes, smallest first.

    The cache is built in a temporary directory (about 4.7 GB with the three sizes of chapter 5)
    and removed afterwards; ``MYGPT_HUB_SNAPSHOT`` names a directory to build it in and keep, or
    to reuse. With ``shape`` every repository holds a network of that shape instead of its own
    (always in a temporary directory, so that it is never mistaken for the real sizes)."""
    from huggingface_hub.file_download import repo_folder_name

    sys.path.insert(0, str(ROOT / "tests"))
    from hub_snapshot import SIZES, build_gpt2_snapshot

    keep = None if shape else os.environ.get("MYGPT_HUB_SNAPSHOT")
    tmp = None if keep else tempfile.TemporaryDirectory(prefix="mygpt-hub-")
    home = Path(keep or tmp.name)
    saved = {k: os.environ.get(k) for k in ("HF_HOME", "HF_HUB_CACHE", "HF_HUB_OFFLINE")}
    sizes = sorted(sizes, key=list(SIZES).index)
    try:
        for size in sizes:
            repo = home / "hub" / repo_folder_name(repo_id=SIZES[size][0], repo_type="model")
            if not repo.exists():  # written by an earlier run with MYGPT_HUB_SNAPSHOT
                what = f"{size} ({shape})" if shape else size
                log(f"  writing {what} with random weights into the Hub cache {home} ...")
                build_gpt2_snapshot(home, size, shape=shape)
        os.environ.update(HF_HOME=str(home), HF_HUB_OFFLINE="1")
        os.environ.pop("HF_HUB_CACHE", None)
        yield sizes
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if tmp is not None:
            tmp.cleanup()


def run_online(chapters: list[str] | None = None, log=print) -> dict:
    """Time the GPT-2 branches: :data:`ONLINE_CHAPTERS` (or the named ones) with GPT-2's Hub
    repositories, random weights, in a Hugging Face cache and ``HF_HUB_OFFLINE=1``
    (:func:`gpt2_hub`). Each chapter must print its :data:`ONLINE_MARKERS` text.
    """
    names = [Path(c).stem for c in chapters] if chapters else list(ONLINE_CHAPTERS)
    sizes = {s for n in names for s in ONLINE_CHAPTERS.get(n, ("gpt2",))}
    with gpt2_hub(sizes, log) as sizes:
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
    return result


#: The pages that fine-tune GPT-2 124M where a GPU is present (``mygpt.fine_tuning_base``), and
#: what each prints only on that branch.
GPU_MARKERS = {
    "08-classification": "this chapter starts from GPT-2 124M",
    "08-classification-solutions": "GPT-2 124M: test accuracy",
    "09-instructions-agent": "this chapter starts from GPT-2 124M",
}

#: The assertions of those pages that state what the results show (what pretraining buys, which
#: setting learns faster, the times of two runs): random weights meet them only by chance, so
#: on this branch they may fail. Each is the asserted expression (its line that a traceback
#: points at). Any other assertion, such as a hand-built piece agreeing with the package's,
#: must hold with any weights.
RESULT_CLAIMS = {
    "08-classification": ("test_acc >= random_test_acc + 0.02",),
    "08-classification-solutions": (
        "best_loss_epoch < len(val_loss) and val_loss[-1] > min(",
        "h_last.val_loss[0] > history.val_loss[0]",
        "test16 < test_acc",
        "seconds_16 < seconds_main / 1.5",
        'gap["all"] < gap["last"] / 2',
        "test_head > test_head_random + 0.02",
    ),
    "09-instructions-agent": (
        "random_history.val_loss[-1] > instruct_history.val_loss[-1] + 0.5",
        'ft_scores["token_f1"] > random_scores["token_f1"]',
        'ft_scores["rouge_l"] > random_scores["rouge_l"]',
        'levels_before["success"] == 0.0',
        'levels_after["success"] >= levels_fresh["success"] + 0.2',
        "sum(results_after[i].answer == agent_test[i].answer for i in unseen)",
    ),
}


def is_result_claim(page: str, cell_error: dict) -> bool:
    """Whether a cell's error is one of :data:`RESULT_CLAIMS` failing."""
    return cell_error["error"].startswith("AssertionError") and any(
        claim in cell_error["raised_at"] for claim in RESULT_CLAIMS.get(page, ())
    )


#: Without a GPU, this runs after the page picks its dtype and makes it take its GPU branch
#: anyway: GPT-2 124M, in float32 as on a GPU.
FORCE_GPU_BRANCH = """\
torch.set_default_dtype(torch.float32)
_load_pretrained = mygpt.load_pretrained


def _gpt2_base(device=None, verbose=True):
    if verbose:  # the line fine_tuning_base prints when it picks GPT-2
        print(mygpt.zoo._BASE_NOTES["gpt2"].format(device=torch.device(device or "cpu").type))
    return _load_pretrained("gpt2", device=device), "GPT-2 124M"


mygpt.fine_tuning_base = _gpt2_base
"""


#: The network that ``--only book_gpu_smoke`` puts in GPT-2 124M's Hub repository: the pages'
#: GPU branch runs every line it runs with GPT-2, in minutes instead of over an hour on a CPU.
SMOKE_SHAPE = dict(n_embd=128, n_layer=2, n_head=4)


def run_gpu_branch(chapters: list[str] | None = None, log=print, shape: dict | None = None) -> dict:
    """Run the GPU branch of the fine-tuning pages (:data:`GPU_MARKERS`, or the named ones)
    against GPT-2 124M with random weights (:func:`gpt2_hub`): on a GPU as a reader's run takes
    it, elsewhere forced by :data:`FORCE_GPU_BRANCH`. With ``shape`` (e.g. :data:`SMOKE_SHAPE`)
    GPT-2 124M's repository holds a smaller network of GPT-2's architecture: the same code
    runs, faster, and its times say nothing about GPT-2's.

    Every cell runs, and each one that raised is listed. Those pages assert what their text
    says of the results (what pretraining buys against a random start, which pooling learns
    faster), which random weights satisfy only by chance: such a failure
    (:data:`RESULT_CLAIMS`) says nothing; any other error is a defect of the branch. A row's
    ``error`` is the first error that is not a result claim; each listed error says whether
    it is one (``result_claim``).
    """
    import torch

    names = [Path(c).stem for c in chapters] if chapters else list(GPU_MARKERS)
    on_gpu = torch.cuda.is_available() or torch.backends.mps.is_available()
    rows = []
    with gpt2_hub({"gpt2"}, log, shape=shape):
        for name in names:
            log(f"  {name} (GPU branch{'' if on_gpu else ', forced on this CPU'}) ...")
            row = time_notebook(
                ROOT / "book" / f"{name}.ipynb",
                timeout=7200,
                marker=GPU_MARKERS[name],
                setup=None if on_gpu else FORCE_GPU_BRANCH,
                allow_errors=True,
                log=log,
            )
            for e in row["cell_errors"]:
                e["result_claim"] = is_result_claim(name, e)
            others = [e for e in row["cell_errors"] if not e["result_claim"]]
            row["error"] = row["error"] or (
                f"cell {others[0]['cell']}: {others[0]['error']}" if others else None
            )
            row["budget_seconds"] = None
            rows.append(row)
            log(f"  {name}: {row['seconds']:.0f} s, cells that raised: {row['cell_errors']}")
    return {
        "rows": rows,
        "total_seconds": sum(r["seconds"] for r in rows),
        "device": "gpu" if on_gpu else "cpu (GPU branch forced, float32)",
        "shape": shape or "GPT-2 124M's own",
    }


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
