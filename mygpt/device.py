"""Where tensors live and how runs are made repeatable.

Picks CUDA, then Apple's MPS, then the CPU; seeds every random generator the book uses; and
offers the one-call setup that every chapter's first cell makes.
"""

from __future__ import annotations

import inspect
import os
import platform
import random
from pathlib import Path

import torch

from .errors import ConfigError


def get_device(prefer: str | None = None) -> torch.device:
    """Return the best available device: ``prefer`` if given, else CUDA, MPS, then CPU.

    ``MYGPT_DEVICE`` in the environment overrides the automatic choice (e.g. ``cpu`` to make a
    GPU machine reproduce the book's stored CPU outputs).
    """
    choice = prefer or os.environ.get("MYGPT_DEVICE")
    if choice:
        return torch.device(choice)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def processor_name() -> str:
    """The CPU's model name where the OS says it (Linux's ``/proc/cpuinfo``), else what
    ``platform`` knows (often only the architecture). Recorded beside measured results."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's (if installed) and PyTorch's generators (CPU and CUDA)."""
    random.seed(seed)
    torch.manual_seed(seed)  # also seeds CUDA and MPS
    try:
        import numpy as np

        np.random.seed(seed % 2**32)
    except ImportError:  # NumPy is optional for the package
        pass


#: The floating-point types a recipe or experiment may name, by their names in JSON.
DTYPES = {"float32": torch.float32, "float64": torch.float64}


def dtype_named(name: str) -> torch.dtype:
    """``"float32"`` or ``"float64"`` as a ``torch.dtype``; :class:`ConfigError` for anything else."""
    if name not in DTYPES:
        raise ConfigError(f"Unknown dtype {name!r}: use one of {', '.join(DTYPES)}.")
    return DTYPES[name]


def at_least_float32(x: torch.Tensor) -> torch.Tensor:
    """``x`` in float32 when it is in a 16-bit type, else unchanged (float64 stays float64).

    Losses and sampling probabilities are computed in at least float32; a float64 model (the
    book's reproducible training) keeps its precision instead of being rounded down.
    """
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def setup_notebook(seed: int = 123) -> torch.device:
    """The common setup of every chapter: seeds, plot style, quiet progress bars; returns the device.

    Chapters are checked against stored outputs, so everything random is seeded here, and
    matplotlib (when installed) gets a consistent, readable style.
    """
    seed_everything(seed)
    try:
        import matplotlib

        matplotlib.rcParams.update(
            {"figure.figsize": (7, 3.5), "figure.dpi": 100, "axes.grid": True, "grid.alpha": 0.3}
        )
    except ImportError:
        pass
    return get_device()


def show_source(obj) -> object:
    """Display the source of a ``mygpt`` function or class as a highlighted code block.

    The book uses this to show the package's own implementation after building a piece step by
    step, so the code a reader sees is the code that runs.
    """
    from IPython.display import Markdown

    return Markdown("```python\n" + inspect.getsource(obj) + "```")


def progress(iterable=None, **kwargs):
    """A tqdm progress bar (disabled when ``TQDM_DISABLE=1``, as in CI and stored chapters)."""
    # The plain text bar: tqdm.auto would pick the notebook widget, which needs ipywidgets and
    # writes widget outputs into the chapters' stored results.
    from tqdm import tqdm

    kwargs.setdefault("disable", os.environ.get("TQDM_DISABLE", "") not in ("", "0"))
    kwargs.setdefault("dynamic_ncols", True)
    return tqdm(iterable, **kwargs)
