"""Saving and loading models and training state, atomically and without pickle.

A model is a directory with ``model.safetensors`` (weights) and ``config.json`` (its
:class:`GPTConfig`). A directory is written whole: built under a temporary name beside the real
one, flushed to disk, then swapped into place, so a reader (or a crash) finds the old complete
directory or the new complete one, never one's weights beside the other's config. Single files
(``latest``) are written to a temporary name and renamed. Every weights file the package writes
holds the SHA-256 of its tensors in its metadata, and loading checks it, so bytes damaged on disk
or in a copy are an error instead of a silently different model.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import secrets
import shutil
import stat
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .config import GPTConfig
from .errors import CheckpointError, ConfigError
from .model import GPT

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
#: The ``"format"`` of a directory's ``config.json``: what kind of thing the package saved there.
#: A Hugging Face (GPT-2 Hub layout) config has none; it says ``n_positions`` instead.
MODEL_FORMAT = "mygpt-gpt"
CLASSIFIER_FORMAT = "mygpt-classifier"
#: Key of the tensors' SHA-256 in a safetensors file's metadata (see :func:`tensors_sha256`).
HASH_KEY = "mygpt.sha256"


# --- writing files and directories whole -------------------------------------------------------


def _fsync(path: Path) -> None:
    """Flush a file's data, or a directory's entries, to disk."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        if path.is_dir():
            return  # Windows cannot open a directory; its renames are durable without it
        raise
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sibling(path: Path, tag: str) -> Path:
    """A fresh hidden name beside ``path``: ``.NAME.TAG-XXXXXXXX`` (8 random hex digits)."""
    return path.with_name(f".{path.name}.{tag}-{secrets.token_hex(4)}")


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then rename it over ``path``.

    ``os.replace`` is atomic on one file system: readers see the old file or the new one, never
    a mix. The data are flushed to disk before the rename so a power cut cannot reorder them.
    The file gets the usual permissions (0o666 minus the umask), not mkstemp's private 0o600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _sibling(path, "tmp")
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # 0o666 minus the umask
    try:
        write(str(tmp))
        _fsync(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _leftovers(directory: Path, tag: str) -> list[Path]:
    """The hidden ``.NAME.TAG-XXXXXXXX`` siblings of ``directory`` (see :func:`write_directory`)."""
    pattern = f".{glob.escape(directory.name)}.{tag}-" + "[0-9a-f]" * 8  # exactly _sibling's names
    return sorted(directory.parent.glob(pattern))


def _clear_leftovers(directory: Path) -> None:
    """Undo what a crash in :func:`write_directory` left: put a set-aside old directory back if
    the crash came between the two renames, and delete unfinished or set-aside copies."""
    olds = _leftovers(directory, "old")
    if olds and not directory.exists():
        olds.pop(0).rename(directory)
    for leftover in olds + _leftovers(directory, "new"):
        shutil.rmtree(leftover, ignore_errors=True)


def write_directory(directory: str | os.PathLike, fill: Callable[[Path], None]) -> Path:
    """Replace ``directory`` as a whole by what ``fill(tmp_dir)`` writes into an empty directory.

    ``tmp_dir`` is a hidden sibling (``.NAME.new-*``); when ``fill`` returns, its files are
    flushed to disk, the old ``directory`` (if any) is renamed aside (``.NAME.old-*``), the new
    one renamed in, and the old one deleted. A crash leaves the old or the new directory under
    the real name, except between the two renames, when :func:`load_model` reads the set-aside
    old one; the next write of ``directory`` clears every leftover.
    """
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    _clear_leftovers(directory)
    new, old = _sibling(directory, "new"), None
    new.mkdir(0o777)  # minus the umask, like any directory
    try:
        fill(new)
        for path in new.iterdir():
            _fsync(path)
        _fsync(new)
        if directory.exists():
            old = _sibling(directory, "old")
            directory.rename(old)
        new.rename(directory)
    except BaseException:
        if old is not None and not directory.exists():
            old.rename(directory)  # the new one could not be renamed in: keep the old one
        shutil.rmtree(new, ignore_errors=True)
        raise
    _fsync(directory.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return directory


def _readable(directory: Path) -> Path:
    """``directory``, or its set-aside old copy when a save was killed between its two renames."""
    olds = [] if directory.exists() else _leftovers(directory, "old")
    return olds[0] if olds else directory


# --- weights -----------------------------------------------------------------------------------


def tensors_sha256(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 over the tensors in name order: each one's name, dtype, shape and raw bytes.

    It covers what a model is made of, independent of how a file lays the tensors out.
    """
    digest = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}\n".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def write_weights(
    state: dict[str, torch.Tensor], path: str | os.PathLike, metadata: dict[str, str] | None = None
) -> None:
    """Write ``state`` as a safetensors file with ``metadata`` (default: its
    :func:`tensors_sha256`, which :func:`read_weights` checks)."""
    state = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    path = Path(path)
    path.touch()  # a file created here gets the usual mode (0o666 minus the umask), or keeps its own
    mode = stat.S_IMODE(path.stat().st_mode)
    if metadata is None:
        metadata = {HASH_KEY: tensors_sha256(state)}
    save_file(state, str(path), metadata=metadata)
    os.chmod(path, mode)  # safetensors writes through a private (0o600) temporary file


def read_weights(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a safetensors file, turning a missing, truncated or corrupt file into CheckpointError.

    Files written by :func:`write_weights` must match the SHA-256 stored in them; files without
    one (saved by earlier versions, or downloaded) are read as they are.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"No weights file at {path}.")
    try:
        with safe_open(str(path), framework="pt") as f:
            expected = (f.metadata() or {}).get(HASH_KEY)
            state = {name: f.get_tensor(name) for name in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(
            f"{path} is not a readable safetensors file (truncated or corrupt?): {e}"
        ) from e
    if expected is not None and tensors_sha256(state) != expected:
        raise CheckpointError(
            f"{path} is corrupt: its tensors do not match the SHA-256 stored in it when it was "
            f"saved (bytes changed on disk or in a copy). Use another copy, or an earlier "
            f"checkpoint."
        )
    return state


def model_state(model: GPT) -> dict[str, torch.Tensor]:
    """The model's weights for saving: a tied output layer is stored once (as the embedding)."""
    state = model.state_dict()
    if model.config.tie_weights:
        state.pop("lm_head.weight", None)
    return {k: v.detach().contiguous() for k, v in state.items()}


def load_model_state(
    model: GPT, state: dict[str, torch.Tensor], source: str = "checkpoint"
) -> None:
    """Copy ``state`` into ``model``, naming any missing, unexpected or mis-shaped tensor."""
    expected = model_state(model)
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    misshaped = [
        f"{k}: checkpoint {tuple(state[k].shape)}, model {tuple(expected[k].shape)}"
        for k in sorted(set(state) & set(expected))
        if state[k].shape != expected[k].shape
    ]
    if missing or unexpected or misshaped:
        parts = [
            f"missing tensors {missing}" if missing else "",
            f"unexpected tensors {unexpected}" if unexpected else "",
            f"mis-shaped tensors {misshaped}" if misshaped else "",
        ]
        raise CheckpointError(
            f"{source} does not fit the model ({model.config}): "
            + "; ".join(p for p in parts if p)
            + "."
        )
    model.load_state_dict(state, strict=False)  # lm_head is tied (absent) or present and checked


# --- configs -----------------------------------------------------------------------------------


def write_json(data: dict, path: str | os.PathLike) -> None:
    """Write ``data`` as indented JSON (UTF-8)."""
    Path(path).write_text(json.dumps(data, indent=2), encoding="utf-8")


def read_json(path: str | os.PathLike, missing: str) -> dict:
    """A JSON object from ``path``; a missing, non-UTF-8, invalid or non-object file is a
    CheckpointError naming it (``missing``: what to say when the file does not exist)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(missing) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path} is not valid JSON (UTF-8): {e}") from e
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} must be a JSON object ({{...}}), got {type(data).__name__}.")
    return data


def config_from_dict(d: dict, source: str | os.PathLike) -> GPTConfig:
    """:meth:`GPTConfig.from_dict`, with an invalid configuration reported as a bad ``source`` file."""
    try:
        return GPTConfig.from_dict(d)
    except ConfigError as e:
        raise CheckpointError(f"{source} does not describe a valid model: {e}") from e


# --- models ------------------------------------------------------------------------------------


def write_model_files(model: GPT, directory: Path) -> None:
    """Write ``model.safetensors`` and ``config.json`` into an existing ``directory``."""
    write_weights(model_state(model), directory / WEIGHTS_NAME)
    write_json({"format": MODEL_FORMAT, **model.config.to_dict()}, directory / CONFIG_NAME)


def save_model(model: GPT, directory: str | os.PathLike) -> Path:
    """Save weights (safetensors) and config (JSON) as ``directory``, replacing any earlier
    contents as a whole (see :func:`write_directory`); returns the directory."""
    return write_directory(directory, lambda tmp: write_model_files(model, tmp))


def load_model(directory: str | os.PathLike, device=None) -> GPT:
    """Load a model saved by :func:`save_model`, in eval mode (as :func:`mygpt.load_pretrained`);
    call ``.train()`` on it to train it further."""
    directory = _readable(Path(directory))
    d = read_json(
        directory / CONFIG_NAME, f"No {CONFIG_NAME} in {directory}: is it a mygpt model directory?"
    )
    kind = d.pop("format", MODEL_FORMAT)  # models saved before the marker have none
    if kind != MODEL_FORMAT:
        raise CheckpointError(
            f"{directory} holds a {kind!r}, not a mygpt language model"
            + (": load it with mygpt.load_classifier." if kind == CLASSIFIER_FORMAT else ".")
        )
    model = GPT(config_from_dict(d, directory / CONFIG_NAME))
    load_model_state(model, read_weights(directory / WEIGHTS_NAME), source=str(directory))
    return (model.to(device) if device is not None else model).eval()


def directory_kind(directory: str | os.PathLike) -> str | None:
    """What a directory holds, from its own markers, so that no loader has to guess.

    ``"training-run"`` (a ``latest`` pointer and ``step-*`` checkpoints), ``"model"``
    (:func:`save_model`), ``"classifier"`` (:func:`mygpt.save_classifier`), ``"hub"`` (a GPT-2
    config in the Hugging Face layout), or ``None`` when it is none of these. Directories saved
    before the ``format`` marker existed are recognised by their config keys.
    """
    directory = _readable(Path(directory))
    if (directory / "latest").is_file():
        return "training-run"
    if not (directory / CONFIG_NAME).is_file():
        return None
    config = read_json(directory / CONFIG_NAME, f"No {CONFIG_NAME} in {directory}.")
    kind = config.get("format")
    if kind == MODEL_FORMAT or (kind is None and "context_length" in config):
        return "model"
    if kind == CLASSIFIER_FORMAT:
        return "classifier"
    if kind is None and ("n_positions" in config or "n_ctx" in config):  # n_ctx: older configs
        return "hub"
    return None
