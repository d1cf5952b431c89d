"""Saving and loading models and training state, atomically and without pickle.

A model is a directory with ``model.safetensors`` (weights) and ``config.json`` (its
:class:`GPTConfig`). Every file is written to a temporary name and renamed into place, so a
crash mid-write never leaves a half-written file under the real name.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .config import GPTConfig
from .errors import CheckpointError
from .model import GPT

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"


def atomic_write(path: str | os.PathLike, write) -> None:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then rename it over ``path``.

    ``os.replace`` is atomic on one file system: readers see the old file or the new one, never
    a mix. The data are flushed to disk before the rename so a power cut cannot reorder them.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def model_state(model: GPT) -> dict[str, torch.Tensor]:
    """The model's weights for saving: a tied output layer is stored once (as the embedding)."""
    state = model.state_dict()
    if model.config.tie_weights:
        state.pop("lm_head.weight", None)
    return {k: v.detach().contiguous() for k, v in state.items()}


def load_model_state(model: GPT, state: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Copy ``state`` into ``model``, naming any missing, unexpected or mis-shaped tensor."""
    expected = model_state(model)
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    misshaped = [f"{k}: checkpoint {tuple(state[k].shape)}, model {tuple(expected[k].shape)}"
                 for k in sorted(set(state) & set(expected)) if state[k].shape != expected[k].shape]
    if missing or unexpected or misshaped:
        parts = [f"missing tensors {missing}" if missing else "",
                 f"unexpected tensors {unexpected}" if unexpected else "",
                 f"mis-shaped tensors {misshaped}" if misshaped else ""]
        raise CheckpointError(f"{source} does not fit the model ({model.config}): "
                              + "; ".join(p for p in parts if p) + ".")
    model.load_state_dict(state, strict=False)  # lm_head is tied (absent) or present and checked


def save_model(model: GPT, directory: str | os.PathLike) -> Path:
    """Save weights (safetensors) and config (JSON) into ``directory``; returns the directory."""
    directory = Path(directory)
    atomic_write(directory / WEIGHTS_NAME, lambda tmp: save_file(model_state(model), tmp))
    atomic_write(directory / CONFIG_NAME,
                 lambda tmp: Path(tmp).write_text(json.dumps(model.config.to_dict(), indent=2)))
    return directory


def read_weights(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a safetensors file, turning a missing, truncated or corrupt file into CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"No weights file at {path}.")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path} is not a readable safetensors file (truncated or corrupt?): {e}") from e


def load_model(directory: str | os.PathLike, device=None) -> GPT:
    """Load a model saved by :func:`save_model`."""
    directory = Path(directory)
    try:
        cfg = GPTConfig.from_dict(json.loads((directory / CONFIG_NAME).read_text()))
    except FileNotFoundError:
        raise CheckpointError(f"No {CONFIG_NAME} in {directory}: is it a mygpt model directory?") from None
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{directory / CONFIG_NAME} is not valid JSON: {e}") from e
    model = GPT(cfg)
    load_model_state(model, read_weights(directory / WEIGHTS_NAME), source=str(directory))
    return model.to(device) if device is not None else model
