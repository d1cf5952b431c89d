"""Path variables are resolved once, to absolute paths, so a process in another directory sees
the same files (nbval runs every chapter with book/ as its working directory)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"


def _env(**changes: str | None) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for key, value in changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def test_relative_variables_become_absolute_for_child_processes(tmp_path: Path) -> None:
    (tmp_path / "data" / "tiktoken-cache").mkdir(parents=True)
    (tmp_path / "book").mkdir()
    # Set relative to tmp_path (like the README's `../shared/data` relative to the clone);
    # a child started in tmp_path/book must still find tmp_path/data.
    code = (
        "import os, subprocess, sys, mygpt.paths\n"
        'child = \'import os; print(os.environ["MYGPT_DATA_DIR"]); '
        'print(os.environ["TIKTOKEN_CACHE_DIR"]); print(os.environ["MYGPT_CACHE_DIR"])\'\n'
        "subprocess.run([sys.executable, '-c', child], cwd='book', check=True)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=_env(MYGPT_DATA_DIR="data", MYGPT_CACHE_DIR="./cache", TIKTOKEN_CACHE_DIR=None),
        check=True,
    )
    assert out.stdout.splitlines() == [
        str(tmp_path / "data"),
        str(tmp_path / "data" / "tiktoken-cache"),
        str(tmp_path / "cache"),
    ]


@pytest.mark.skipif(
    not (SHARED / "tiktoken-cache").is_dir(), reason="needs ../shared/data beside the clone"
)
def test_readme_offline_block_works_from_the_book_directory() -> None:
    """The README's offline block as written (relative to the clone), then what nbval does: the
    pytest process at the root imports mygpt.paths (conftest.py), a kernel starts in book/."""
    env = _env(
        MYGPT_DATA_DIR="../shared/data",
        TIKTOKEN_CACHE_DIR="../shared/data/tiktoken-cache",
        HF_HUB_OFFLINE="1",
    )
    kernel = (
        "import mygpt; print(mygpt.encode('Hello')); print(len(mygpt.read_text('the-verdict')) > 0)"
    )
    parent = (
        "import subprocess, sys, mygpt.paths\n"
        f"subprocess.run([sys.executable, '-c', {kernel!r}], cwd='book', check=True)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", parent],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.splitlines() == ["[15496]", "True"]
