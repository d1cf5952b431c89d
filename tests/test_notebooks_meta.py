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


# Chapters whose stored samples come from a pretrained model (chapter 4 on).
SAMPLE_CHAPTERS = [p for p in NOTEBOOKS if re.match(r"0[4-9]-", p.name)]
GENERATES = re.compile(r"generate_text\(|\bgenerate\(|generate_responses\(|\.respond\(|\.answer\(")


def degenerate(text: str) -> str | None:
    """Why the printed samples ``text`` look broken, or None: empty, mostly newlines, or one
    word repeated (the signs of a model that has not learned the language)."""
    if "''" in text or '""' in text:
        return "an empty sample"
    if text.count("\n") > 0.3 * max(len(text), 1):
        return "mostly newlines"
    # Words without punctuation or case: "The ' the 'The" is one word three times.
    words = [w for w in (re.sub(r"\W", "", w).lower() for w in text.split()) if w]
    if len(words) >= 10:
        top = max(set(words), key=words.count)
        if words.count(top) > 0.5 * len(words):
            return f"{top!r} is {words.count(top)} of {len(words)} words"
    return None


@pytest.mark.parametrize("path", SAMPLE_CHAPTERS, ids=_ids(SAMPLE_CHAPTERS))
def test_stored_samples_are_not_degenerate(path: Path) -> None:
    """The text the models write, as the page shows it, is text: no empty answers, no pages of
    newlines, no word over and over."""
    problems = []
    for index, cell in enumerate(_code_cells(_read(path))):
        if not GENERATES.search(cell.source):
            continue
        text = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
        if text and (why := degenerate(text)):
            problems.append(f"code cell {index}: {why}")
    assert not problems, f"{path.name}: " + "; ".join(problems)


def test_the_degeneracy_check_catches_what_it_should() -> None:
    assert degenerate("greedy: 'First Citizen:\nWe,\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n'") is not None
    assert degenerate("The ' the 'The ' 'The ' the ' 'The ' the ' 'The ' the 'The") is not None
    assert degenerate("answer: ''") is not None
    assert degenerate("KING HENRY:\nWhat, shall we go to the field, my lord?\n") is None
    # a loop of a phrase is greedy decoding's known failure (chapter 6), not a broken model
    assert degenerate("First Citizen:\nI'll be so,\nI'll not,\nI'll be so,\nI'll not,") is None


def test_the_repository_address_is_one_and_the_same_everywhere() -> None:
    """The bootstrap installs from the repository that _config.yml links (the site's buttons,
    Colab) and pyproject.toml names: a fork changes _config.yml and this test says what else."""
    import tomllib
    import yaml

    root = BOOK.parent
    url = yaml.safe_load((root / "_config.yml").read_text())["repository"]["url"].rstrip("/")
    homepage = tomllib.loads((root / "pyproject.toml").read_text())["project"]["urls"]
    assert homepage["Homepage"].rstrip("/") == url
    first = _code_cells(_read(NOTEBOOKS[0]))[0].source
    assert f'"git+{url}"' in first, f"the bootstrap does not install from git+{url}"


# {glue:text}`key:.3f`, {glue:md}`key`, {glue}`key`, {glue:figure}... (not other documents' path::key)
GLUE_REFERENCE = re.compile(r"\{glue(?::\w+)?\}`((?:[^`:]+::)?[^`:]+)(?::[^`]*)?`")


def _glued_names(nb: nbformat.NotebookNode) -> set[str]:
    """The names that the stored outputs glue (myst-nb keeps them in each output's metadata)."""
    return {
        output.metadata["scrapbook"]["name"]
        for cell in _code_cells(nb)
        for output in cell.get("outputs", [])
        if "scrapbook" in output.get("metadata", {})
    }


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_every_glued_reference_has_a_stored_value(path: Path) -> None:
    """A {glue} role whose name no stored output glues renders as a build warning (and an empty
    gap on the page): typically a key renamed or dropped in code but still used in the text."""
    nb = _read(path)
    glued = _glued_names(nb)
    missing = sorted(
        {
            name
            for cell in nb.cells
            if cell.cell_type == "markdown"
            for name in GLUE_REFERENCE.findall(cell.source)
            if "::" not in name
        }
        - glued
    )
    assert not missing, f"{path.name}: the text uses glue keys that no stored output has: {missing}"


def test_the_glue_check_reads_references_as_myst_nb_does() -> None:
    text = "{glue:text}`a:.3f` and {glue}`b` and {glue:md}`c` and {glue:text}`other.ipynb::d`"
    assert GLUE_REFERENCE.findall(text) == ["a", "b", "c", "other.ipynb::d"]


# The site shows code cells in a column about 88 characters wide; longer lines are cut off.
PAGE_WIDTH = 88


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_code_lines_fit_the_page(path: Path) -> None:
    too_long = [
        f"code cell {index}: {len(line)} characters: {line.strip()[:40]}..."
        for index, cell in enumerate(_code_cells(_read(path)))
        for line in cell.source.splitlines()
        if len(line) > PAGE_WIDTH
    ]
    assert not too_long, f"{path.name}: lines wider than {PAGE_WIDTH}: " + "; ".join(too_long)


# Words about how the book is produced and checked, which mean nothing to a reader of the
# chapter's subject. (The appendices may describe the package's tests; chapters do not.)
PROCESS_WORDS = re.compile(
    r"\bnbval\b|\bCI\b|\bpytest\b|\btests?/test_\w+|`test_\w+`|stored outputs?|"
    r"\bthis page is checked\b|\bthe machines? that checks?\b",
    re.IGNORECASE,
)
CHAPTERS = [p for p in NOTEBOOKS if re.match(r"\d\d-", p.name)]


def process_words(text: str) -> list[str]:
    return [m.group(0) for m in PROCESS_WORDS.finditer(text)]


@pytest.mark.parametrize("path", CHAPTERS, ids=_ids(CHAPTERS))
def test_chapter_text_speaks_of_the_subject_not_of_how_the_book_is_checked(path: Path) -> None:
    found = [
        f"markdown cell {index}: {words}"
        for index, cell in enumerate(_read(path).cells)
        if cell.cell_type == "markdown" and (words := process_words(cell.source))
    ]
    assert not found, f"{path.name}: " + "; ".join(found)


def test_the_process_words_check_catches_what_it_should() -> None:
    assert process_words("the test `test_sampler_never_emits` in tests/test_generate.py")
    assert process_words("CI runs nbval against the stored outputs")
    assert process_words("The machines that check this book have no network")
    assert not process_words("Checked against the package's own implementation.")
    assert not process_words("A Colab session times out; the CIA; a specific case")
