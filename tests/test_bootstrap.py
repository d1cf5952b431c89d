"""The chapters' first code cell makes a bare environment work (what Colab gives a reader).

Every chapter starts with the same bootstrap cell: when `mygpt` is not importable it runs
`pip install $MYGPT_INSTALL` (default: the repository on GitHub), then `mygpt.setup_notebook()`.
This test reproduces a bare Colab as closely as a machine without network can:

1. a fresh virtual environment in which `mygpt` is *not* importable, but which sees this
   environment's third-party packages (torch, tiktoken, Jupyter...) through a path file, the way
   Colab has them preinstalled. The editable install of `mygpt` is deliberately not carried over
   (a plain path entry does not run the `.pth` hooks of the directory it names);
2. a copy of the package's sources (pyproject.toml, README.md, mygpt/) in a temporary
   directory, and `MYGPT_INSTALL` pointing at it instead of the repository URL; pip runs offline
   (`PIP_NO_INDEX`) and without build isolation, so it uses the setuptools already present;
3. a whole chapter executed by nbclient in a kernel of that environment, from a directory where
   no `mygpt/` lies: it must run without an error, and `mygpt` must then come from the fresh
   environment's own site-packages, installed by the bootstrap cell.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import venv
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
BOOK = ROOT / "book"
# The quickest chapter to run in full.
CHAPTER = BOOK / "02-attention.ipynb"


def _run(python: Path, code: str, cwd: Path, env: dict[str, str], timeout: int = 300) -> str:
    result = subprocess.run(
        [str(python), "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, (
        f"{code[:200]}...\nstdout:\n{result.stdout[-4000:]}\nstderr:\n{result.stderr[-4000:]}"
    )
    return result.stdout


def test_bootstrap_cell_installs_mygpt_in_a_bare_environment(tmp_path: Path) -> None:
    chapter = CHAPTER
    nb = nbformat.read(chapter, as_version=4)
    first = next(c.source for c in nb.cells if c.cell_type == "code" and c.source.strip())
    assert "MYGPT_INSTALL" in first and "setup_notebook(" in first, (
        f"{chapter.name}: the first code cell is not the bootstrap (it must honour MYGPT_INSTALL)"
    )

    # 1. A fresh environment that sees this one's packages but not mygpt.
    env_dir = tmp_path / "bare-venv"
    venv.EnvBuilder(with_pip=False, symlinks=os.name != "nt").create(env_dir)
    python = env_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    bare_purelib = Path(
        _run(
            python,
            "import sysconfig; print(sysconfig.get_path('purelib'))",
            tmp_path,
            dict(os.environ),
        ).strip()
    )
    ours = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    (bare_purelib / "host-packages.pth").write_text("\n".join(sorted(ours)) + "\n")

    env = {
        k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"}
    }
    workdir = tmp_path / "colab"  # the kernel's working directory: no mygpt/ here
    workdir.mkdir()
    probe = "import importlib.util, sys; print(importlib.util.find_spec('mygpt'))"
    assert _run(python, probe, workdir, env).strip() == "None", (
        "mygpt is importable before the bootstrap ran"
    )
    _run(python, "import torch, tiktoken, ipykernel, nbclient, pip, setuptools", workdir, env)

    # 2. The package's sources, where MYGPT_INSTALL points (the repository URL on Colab).
    source = tmp_path / "mygpt-source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(ROOT / "mygpt", source / "mygpt", ignore=shutil.ignore_patterns("__pycache__"))
    env.update(
        MYGPT_INSTALL=str(source),
        PIP_NO_INDEX="1",
        PIP_NO_BUILD_ISOLATION="0",
        PIP_DISABLE_PIP_VERSION_CHECK="1",
    )

    # 3. The whole chapter, in a kernel of the bare environment, plus one cell saying where
    # mygpt came from.
    run_nb = nbformat.read(chapter, as_version=4)
    run_nb.cells.append(
        nbformat.v4.new_code_cell("import mygpt; print('MYGPT_FROM', mygpt.__file__)")
    )
    nb_path = workdir / chapter.name
    nbformat.write(run_nb, nb_path)
    runner = textwrap.dedent(f"""
        import json, nbformat
        from nbclient import NotebookClient
        nb = nbformat.read({str(nb_path)!r}, as_version=4)
        NotebookClient(nb, kernel_name="python3", timeout=600,
                       resources={{"metadata": {{"path": {str(workdir)!r}}}}}).execute()
        out = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
        print(json.dumps([o.get("text", "") for o in out if o.get("output_type") == "stream"]))
    """)
    streams = json.loads(_run(python, runner, workdir, env, timeout=900).strip().splitlines()[-1])
    origin = [
        line for text in streams for line in text.splitlines() if line.startswith("MYGPT_FROM ")
    ]
    assert origin, "the chapter ran but the final cell printed nothing"
    installed_at = Path(origin[-1].split(" ", 1)[1]).resolve()
    assert installed_at.is_relative_to(env_dir.resolve()), (
        f"mygpt was imported from {installed_at}, not from the bare environment {env_dir}: "
        "the bootstrap cell did not install it"
    )


def test_bootstrap_cell_installs_nothing_where_mygpt_is_importable(tmp_path: Path) -> None:
    """Locally and in CI the cell must not touch the environment: with mygpt importable, pip
    never runs (MYGPT_INSTALL points at a path that does not exist, so any install would fail)."""
    chapter = CHAPTER
    nb = nbformat.read(chapter, as_version=4)
    first = next(c.source for c in nb.cells if c.cell_type == "code" and c.source.strip())
    env = dict(os.environ, MYGPT_INSTALL=str(tmp_path / "no-such-package"), PIP_NO_INDEX="1")
    code = first + "\nprint('DEVICE', device)\n"
    out = _run(Path(sys.executable), code, ROOT, env)
    assert "DEVICE " in out, f"the bootstrap cell did not reach setup_notebook():\n{out}"
