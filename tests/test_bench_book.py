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


def test_the_result_claims_are_assertions_of_their_pages():
    """Each claim that the GPU branch may fail on random weights is, verbatim, in an assert
    statement of its page; anything else that raises fails the branch."""
    import ast

    book = _book()
    for page, claims in book.RESULT_CLAIMS.items():
        nb = nbformat.read(BENCH.parent / "book" / f"{page}.ipynb", as_version=4)
        asserted = []
        for cell in nb.cells:
            if cell.cell_type == "code":
                lines = cell.source.splitlines()
                for node in ast.walk(ast.parse(cell.source)):
                    if isinstance(node, ast.Assert):
                        asserted.append("\n".join(lines[node.lineno - 1 : node.end_lineno]))
        for claim in claims:
            assert any(claim in a for a in asserted), f"{page}: no assert states {claim!r}"
    claim = {"error": "AssertionError: ", "raised_at": "assert test16 < test_acc  # the text"}
    assert book.is_result_claim("08-classification-solutions", claim)
    assert not book.is_result_claim("08-classification", claim)  # another page's claim
    other = {"error": "AssertionError: Tensor-likes are not close!", "raised_at": "assert_close("}
    assert not book.is_result_claim("08-classification-solutions", other)
    assert not book.is_result_claim("08-classification-solutions", {**claim, "raised_at": ""})


def test_the_gpu_table_says_which_errors_are_result_claims():
    sys.path.insert(0, str(BENCH))
    try:
        import report
    finally:
        sys.path.remove(str(BENCH))
    error = {"cell": 3, "error": "AssertionError: ", "raised_at": "assert a > b"}
    rows = [{"chapter": "p", "seconds": 1.0, "slowest_cells": [], "error": None, "cell_errors": []}]
    res = {"rows": rows, "total_seconds": 1.0, "device": "cpu"}
    rows[0]["cell_errors"] = [dict(error, result_claim=True), dict(error, result_claim=False)]
    table = report.book_gpu_table(res)
    assert "p, cell 3: AssertionError:  (a result claim)" in table
    assert "p, cell 3: AssertionError:  (not a result claim)" in table
    rows[0]["cell_errors"] = [error]  # written before the verdict was recorded: no verdict
    assert "p, cell 3: AssertionError: \n" in report.book_gpu_table(res)
