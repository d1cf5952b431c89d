"""The chapter runner of ``bench/book.py``: what ``python bench/run.py --only book_gpu`` relies on
to run the fine-tuning pages' GPU branch (a setup cell after the page's dtype cell, every cell
run, the cells that raised listed under the page's own numbering)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nbformat

BENCH = Path(__file__).resolve().parent.parent / "bench"


def _book():
    sys.path.insert(0, str(BENCH))
    try:
        import book
    finally:
        sys.path.remove(str(BENCH))
    return book


def _page(path: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# A page"),
        nbformat.v4.new_code_cell("import torch\n\ntorch.set_default_dtype(torch.float64)"),
        nbformat.v4.new_code_cell("assert torch.get_default_dtype() == torch.float64, 'dtype'"),
        nbformat.v4.new_code_cell("# a comment first\n" + "\n" * 9 + "raise ValueError('boom')"),
        nbformat.v4.new_code_cell("print('the end')"),
    ]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    nbformat.write(nb, path)
    return path


def test_a_setup_cell_runs_after_the_dtype_and_errors_are_listed_by_page_cell(tmp_path):
    book = _book()
    os.environ.setdefault("PYTHONHASHSEED", "0")
    page = _page(tmp_path / "page.ipynb")
    setup = "torch.set_default_dtype(torch.float32)\nprint('forced')"
    row = book.time_notebook(page, timeout=120, marker="forced", setup=setup, allow_errors=True)
    assert row["error"] is None  # every cell ran, and the setup cell printed its marker
    dtype_line = "assert torch.get_default_dtype() == torch.float64, 'dtype'"
    boom = "raise ValueError('boom')"
    assert row["cell_errors"] == [
        {
            "cell": 2,
            "first_line": dtype_line,
            "error": "AssertionError: dtype",
            "raised_at": dtype_line,
        },
        {"cell": 3, "first_line": boom, "error": "ValueError: boom", "raised_at": boom},
    ]
    plain = book.time_notebook(page, timeout=120, marker="forced")
    assert "ValueError" in plain["error"]  # without allow_errors the first error stops the page
    assert "cell_errors" not in plain
