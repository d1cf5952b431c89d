"""Checks on the chapter notebooks as stored in git (no execution: nbval does that).

nbval can only compare what was stored, so a chapter committed half-run, with an error, or with
output that changes every run (a memory address, a progress bar's rate) either slips through or
fails CI for a reason unrelated to the change. These tests name the notebook and the cell.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

BOOK = Path(__file__).resolve().parent.parent / "book"

# Every notebook is a chapter or an appendix, and each starts with the bootstrap cell.
NOTEBOOKS = sorted(
    p
    for p in BOOK.rglob("*.ipynb")
    if not any(part.startswith((".", "_")) for part in p.relative_to(BOOK).parts)
)

# tqdm's bar: "42%|████      | 5/12 [00:01<00:02, 3.10it/s]"
PROGRESS_BAR = re.compile(r"\d+%\|.*\||\d(it/s|s/it)\]")


def _read(path: Path) -> nbformat.NotebookNode:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    return nb


def _code_cells(nb: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    """Code cells with something in them (Jupyter does not execute empty cells)."""
    return [c for c in nb.cells if c.cell_type == "code" and c.source.strip()]


def _output_text(output: nbformat.NotebookNode) -> str:
    """All text of one output: a stream's text, every text-like representation, a traceback."""
    parts = [output.get("text", "")]
    for mime, value in output.get("data", {}).items():
        if mime.startswith("text/") or mime.endswith("/plain"):  # e.g. glue's .../text/plain
            parts.append(value)
    parts.extend(output.get("traceback", []))
    return "".join(parts)


def _ids(paths: list[Path]) -> list[str]:
    return [p.relative_to(BOOK).as_posix() for p in paths]


def test_the_book_has_notebooks() -> None:
    assert NOTEBOOKS, f"no notebooks under {BOOK}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_fully_executed_in_order(path: Path) -> None:
    """Every code cell ran, once, top to bottom, in one kernel: counts are exactly 1, 2, 3, ..."""
    counts = [c.execution_count for c in _code_cells(_read(path))]
    assert counts, f"{path.name} has no code cells"
    expected = list(range(1, len(counts) + 1))
    assert counts == expected, (
        f"{path.name}: execution counts {counts}, expected {expected}. Re-run the whole notebook "
        f"from a fresh kernel: TQDM_DISABLE=1 jupyter execute --inplace book/{path.name}"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_outputs_are_stable(path: Path) -> None:
    """No stored errors, memory addresses or progress bars: nbval would trip on each of them."""
    problems = []
    for index, cell in enumerate(_code_cells(_read(path))):
        for output in cell.outputs:
            text = _output_text(output)
            if output.output_type == "error":
                problems.append(f"code cell {index}: error output {output.ename}: {output.evalue}")
            if " at 0x" in text:
                problems.append(
                    f"code cell {index}: a memory address (' at 0x...'); end the line with ';'"
                )
            if PROGRESS_BAR.search(text):
                problems.append(
                    f"code cell {index}: a progress bar; store outputs with TQDM_DISABLE=1"
                )
    assert not problems, f"{path.name}:\n" + "\n".join(problems)


def test_chapters_start_with_the_shared_bootstrap() -> None:
    """Every chapter's first code cell is the same bootstrap, which calls mygpt.setup_notebook()."""
    assert NOTEBOOKS, f"no notebooks under {BOOK}"
    first_cells = {}
    for path in NOTEBOOKS:
        cells = _code_cells(_read(path))
        assert cells, f"{path.name} has no code cells"
        first_cells[path.name] = cells[0].source
    reference_name, reference = next(iter(first_cells.items()))
    assert "setup_notebook(" in reference, (
        f"{reference_name}: first code cell does not call setup_notebook()"
    )
    different = [name for name, source in first_cells.items() if source != reference]
    assert not different, (
        f"first code cell differs from {reference_name}'s bootstrap in: {different}"
    )


# A chapter that trains must do it in float64 on the CPU (DEVELOPING.md): float32 training
# amplifies the last-bit differences between processors into different printed losses.
TRAINS = re.compile(r"mygpt\.train\(|train_classifier\(|\btrain_agent\(|\bfine_tune\(")
FLOAT64 = 'torch.set_default_dtype(torch.float64 if device.type == "cpu" else torch.float32)'


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_chapters_that_train_compute_in_float64_before_training(path: Path) -> None:
    if path.name == "appendix-errors.ipynb":
        return  # its training calls are made to fail; they print error messages, not numbers
    cells = [c.source for c in _code_cells(_read(path))]
    first_training = next((i for i, s in enumerate(cells) if TRAINS.search(s)), None)
    if first_training is None:
        return  # nothing trained on this page (the experiments set their dtype in the spec)
    setting = next((i for i, s in enumerate(cells) if FLOAT64 in s), None)
    assert setting is not None and setting < first_training, (
        f"{path.name}: code cell {first_training} trains, but no earlier cell sets float64 "
        f"({FLOAT64})"
    )
