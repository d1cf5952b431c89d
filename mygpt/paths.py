"""Where the package's files live, as named by environment variables.

Three variables point at directories:

- ``MYGPT_DATA_DIR``: local copies of the book's public files (offline use);
- ``MYGPT_CACHE_DIR``: downloads and trained models (default ``~/.cache/mygpt``);
- ``TIKTOKEN_CACHE_DIR``: tiktoken's own cache of GPT-2's BPE files. When it is unset and
  ``$MYGPT_DATA_DIR/tiktoken-cache`` exists, it is pointed there, so that ``MYGPT_DATA_DIR``
  alone is enough to work offline.

A relative value such as ``../shared/data`` means "relative to where I set it", but a process
that starts in another directory reads it relative to its own: Jupyter runs each chapter with
``book/`` as its working directory. So :func:`resolve_environment`, run once when ``mygpt`` is
imported, rewrites the three variables as absolute paths in ``os.environ``; every process started
afterwards (a notebook kernel, a subprocess) inherits the absolute form.
"""

from __future__ import annotations

import os
from pathlib import Path

PATH_VARIABLES = ("MYGPT_DATA_DIR", "MYGPT_CACHE_DIR", "TIKTOKEN_CACHE_DIR")


def resolve_environment() -> None:
    """Make the path variables absolute (against the current directory), once, in ``os.environ``."""
    for name in PATH_VARIABLES:
        value = os.environ.get(name, "")
        if value:
            os.environ[name] = os.path.abspath(os.path.expanduser(value))
    data = os.environ.get("MYGPT_DATA_DIR", "")
    if data and not os.environ.get("TIKTOKEN_CACHE_DIR"):
        cache = Path(data) / "tiktoken-cache"
        if cache.is_dir():
            os.environ["TIKTOKEN_CACHE_DIR"] = str(cache)


def data_dir() -> Path | None:
    """The directory of offline copies named by ``MYGPT_DATA_DIR``, or ``None`` if unset."""
    value = os.environ.get("MYGPT_DATA_DIR", "")
    return Path(os.path.abspath(os.path.expanduser(value))) if value else None


def cache_dir() -> Path:
    """The package's cache root: ``MYGPT_CACHE_DIR`` or ``~/.cache/mygpt``.

    Downloads of public files go to its ``data/`` subfolder, trained models to ``models/``.
    """
    value = os.environ.get("MYGPT_CACHE_DIR", "")
    return (
        Path(os.path.abspath(os.path.expanduser(value)))
        if value
        else Path.home() / ".cache" / "mygpt"
    )


resolve_environment()
