"""Tests of mygpt.checkpoint (and the classifier's save/load, which shares its helpers).

Saving replaces a model directory whole, files get ordinary permissions, every saved weights file
carries a SHA-256 of its tensors that loading checks, and a damaged config.json is a
CheckpointError naming the file. SIGKILL during save_model: tests/test_crash_safety.py.
"""

from __future__ import annotations

import json
import os
import stat
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch.utils.data import DataLoader, TensorDataset

from mygpt.checkpoint import CONFIG_NAME, WEIGHTS_NAME, load_model, model_state, save_model
from mygpt.config import GPTConfig
from mygpt.errors import CheckpointError
from mygpt.finetune import GPTClassifier, load_classifier, save_classifier
from mygpt.model import GPT
from mygpt.training import TrainConfig, train


def _same_weights(a: GPT, b: GPT) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _siblings(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.parent.iterdir())


# --- saving over an existing model (finding 1) --------------------------------------------------


def test_save_model_over_an_existing_model_replaces_it_whole(tiny_cfg, tmp_path):
    old, new = GPT(tiny_cfg), GPT(tiny_cfg.replace(n_layer=3, tie_weights=False))
    path = tmp_path / "m"
    save_model(old, path)
    (path / "notes.txt").write_text("a file of the old model's directory")
    save_model(new, path)
    assert sorted(p.name for p in path.iterdir()) == [CONFIG_NAME, WEIGHTS_NAME]  # the new one only
    assert _siblings(path) == ["m"]  # no temporary or set-aside directory left behind
    assert _same_weights(load_model(path), new)


def test_save_model_clears_leftovers_of_an_interrupted_save(tiny_cfg, tmp_path):
    """A kill between 'rename the old model aside' and 'rename the new one in' leaves no model
    under the real name: loading reads the set-aside (complete) old one, and the next save
    puts things right."""
    old, new = GPT(tiny_cfg), GPT(tiny_cfg.replace(n_layer=3))
    path = save_model(old, tmp_path / "m")
    path.rename(tmp_path / ".m.old-0000dead")  # as the kill left it
    save_model(new, tmp_path / ".m.new-0000dead")  # the complete new directory, never renamed in
    assert _same_weights(load_model(path), old)
    save_model(new, path)
    assert _siblings(path) == ["m"]
    assert _same_weights(load_model(path), new)


# --- permissions (finding 9) --------------------------------------------------------------------


@pytest.fixture
def umask_022():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def _modes(root: Path) -> dict[str, int]:
    paths = [root, *root.rglob("*")]
    return {str(p.relative_to(root.parent)): stat.S_IMODE(p.stat().st_mode) for p in paths}


def test_saved_files_get_ordinary_permissions(tiny_cfg, tmp_path, umask_022):
    save_model(GPT(tiny_cfg), tmp_path / "m")
    save_classifier(GPTClassifier(GPT(tiny_cfg)), tmp_path / "clf")
    tc = TrainConfig(max_steps=1, checkpoint_every=1, log=False)
    train(GPT(tiny_cfg), _loader(tiny_cfg), cfg=tc, checkpoint_dir=tmp_path / "run")
    modes = {**_modes(tmp_path / "m"), **_modes(tmp_path / "clf"), **_modes(tmp_path / "run")}
    assert len(modes) == 3 + 3 + 6  # run: run/, latest, step-0000001/ and its three files
    for name, mode in modes.items():
        assert mode == (0o755 if (tmp_path / name).is_dir() else 0o644), (name, oct(mode))


def _loader(cfg: GPTConfig) -> DataLoader:
    data = torch.randint(0, cfg.vocab_size, (8, 9), generator=torch.Generator().manual_seed(0))
    return DataLoader(
        TensorDataset(data[:, :-1], data[:, 1:]),
        batch_size=4,
        shuffle=True,
        generator=torch.Generator(),
    )


# --- content hash (finding 2) -------------------------------------------------------------------


def _tensor_offset(weights: Path, name: str) -> tuple[int, int]:
    """Where tensor ``name``'s bytes lie in a safetensors file: (start, end) in the file."""
    data = weights.read_bytes()
    header_len = struct.unpack("<Q", data[:8])[0]
    start, end = json.loads(data[8 : 8 + header_len])[name]["data_offsets"]
    return 8 + header_len + start, 8 + header_len + end


def _poison(weights: Path, name: str = "tok_emb.weight") -> None:
    """Overwrite the first four values of tensor ``name`` with float32 NaN, in place."""
    start, _ = _tensor_offset(weights, name)
    data = bytearray(weights.read_bytes())
    data[start : start + 16] = struct.pack("<4f", *[float("nan")] * 4)
    weights.write_bytes(bytes(data))


def test_corrupted_weights_are_refused_naming_the_file(tiny_cfg, tmp_path):
    path = save_model(GPT(tiny_cfg), tmp_path / "m")
    _poison(path / WEIGHTS_NAME)
    with pytest.raises(CheckpointError, match=rf"{path / WEIGHTS_NAME}.*SHA-256"):
        load_model(path)


def test_corrupted_classifier_weights_are_refused(tiny_cfg, tmp_path):
    path = save_classifier(GPTClassifier(GPT(tiny_cfg)), tmp_path / "clf")
    _poison(path / WEIGHTS_NAME, "gpt.tok_emb.weight")
    with pytest.raises(CheckpointError, match="SHA-256"):
        load_classifier(path)


def test_corrupted_training_checkpoint_weights_are_refused(tiny_cfg, tmp_path):
    tc = TrainConfig(max_steps=1, checkpoint_every=1, log=False)
    train(GPT(tiny_cfg), _loader(tiny_cfg), cfg=tc, checkpoint_dir=tmp_path)
    _poison(tmp_path / "step-0000001" / WEIGHTS_NAME)
    with pytest.raises(CheckpointError, match="SHA-256"):
        train(
            GPT(tiny_cfg),
            _loader(tiny_cfg),
            cfg=TrainConfig(max_steps=2, log=False),
            checkpoint_dir=tmp_path,
            resume=True,
        )


def test_model_saved_without_a_hash_still_loads(tiny_cfg, tmp_path):
    """Models written before the hash existed (plain save_file + config.json) load as before."""
    model = GPT(tiny_cfg)
    path = tmp_path / "m"
    path.mkdir()
    save_file(model_state(model), str(path / WEIGHTS_NAME))
    (path / CONFIG_NAME).write_text(json.dumps(tiny_cfg.to_dict()))
    assert _same_weights(load_model(path), model)


# --- damaged config.json (findings 5 and 7) -------------------------------------------------------


@pytest.mark.parametrize(
    "content, words",
    [
        (b'{"n_layer": 2,', "is not valid JSON"),
        (b'{"n_layer": "\xff\xfe"}', "is not valid JSON"),  # not UTF-8
        (b"[1, 2]", "must be a JSON object"),
        (b'{"n_layer": 2, "heads": 4}', "Unknown GPTConfig field"),
    ],
)
def test_damaged_config_json_is_a_checkpoint_error(tiny_cfg, tmp_path, content, words):
    path = save_model(GPT(tiny_cfg), tmp_path / "m")
    (path / CONFIG_NAME).write_bytes(content)
    with pytest.raises(CheckpointError, match=words) as info:
        load_model(path)
    assert str(path / CONFIG_NAME) in str(info.value)


@pytest.mark.parametrize(
    "change", [{"tie_weights": "no"}, {"bias": "false"}, {"ln_eps": "1e-5"}, {"dropout": None}]
)
def test_config_json_with_a_wrong_type_is_refused(tiny_cfg, tmp_path, change):
    path = save_model(GPT(tiny_cfg), tmp_path / "m")
    (path / CONFIG_NAME).write_text(json.dumps({**tiny_cfg.to_dict(), **change}))
    field = next(iter(change))
    with pytest.raises(CheckpointError, match=rf"{CONFIG_NAME}.*GPTConfig\.{field}"):
        load_model(path)


def test_classifier_config_without_a_key_names_it(tiny_cfg, tmp_path):
    path = save_classifier(GPTClassifier(GPT(tiny_cfg)), tmp_path / "clf")
    config = json.loads((path / CONFIG_NAME).read_text())
    del config["pooling"]
    (path / CONFIG_NAME).write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"config.json has no 'pooling'"):
        load_classifier(path)


@pytest.mark.parametrize(
    "content",
    [
        b"\xff\xfe{",
        b'{"format": "mygpt-classifier", "gpt": 3, "labels": ["a", "b"], "pooling": "last", "max_length": 4}',
        b'{"format": "mygpt-classifier", "gpt": {}, "labels": 3, "pooling": "last", "max_length": 4}',
    ],
)
def test_damaged_classifier_config_is_a_checkpoint_error(tiny_cfg, tmp_path, content):
    path = save_classifier(GPTClassifier(GPT(tiny_cfg)), tmp_path / "clf")
    (path / CONFIG_NAME).write_bytes(content)
    with pytest.raises(CheckpointError, match=str(path / CONFIG_NAME)):
        load_classifier(path)


# --- load_model's mode (finding 8) --------------------------------------------------------------


def test_load_model_returns_eval_mode_like_load_pretrained(tiny_cfg, tmp_path):
    path = save_model(GPT(tiny_cfg.replace(dropout=0.1)).train(), tmp_path / "m")
    model = load_model(path)
    assert not model.training and not any(m.training for m in model.modules())


def test_a_saved_directory_says_what_kind_it_is(tmp_path, tiny_cfg) -> None:
    """Loaders and the CLI read the kind from the directory's own marker, never by guessing."""
    import json

    from transformers import GPT2Config, GPT2LMHeadModel

    import mygpt
    from mygpt.checkpoint import directory_kind

    model = mygpt.GPT(tiny_cfg)
    mygpt.save_model(model, tmp_path / "lm")
    assert json.loads((tmp_path / "lm" / "config.json").read_text())["format"] == "mygpt-gpt"
    clf = mygpt.GPTClassifier(mygpt.GPT(tiny_cfg), ["ham", "spam"], "last", 16)
    mygpt.save_classifier(clf, tmp_path / "clf")
    GPT2LMHeadModel(
        GPT2Config(n_layer=1, n_embd=16, n_head=2, n_positions=32, vocab_size=97)
    ).save_pretrained(tmp_path / "hub")
    (tmp_path / "empty").mkdir()
    kinds = {name: directory_kind(tmp_path / name) for name in ("lm", "clf", "hub", "empty")}
    assert kinds == {"lm": "model", "clf": "classifier", "hub": "hub", "empty": None}
    with pytest.raises(CheckpointError, match="load_classifier"):
        mygpt.load_model(tmp_path / "clf")


def test_a_model_saved_before_the_format_marker_still_loads(tmp_path, tiny_cfg) -> None:
    import json

    import mygpt
    from mygpt.checkpoint import directory_kind

    mygpt.save_model(mygpt.GPT(tiny_cfg), tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    del config["format"]
    (tmp_path / "config.json").write_text(json.dumps(config))
    assert directory_kind(tmp_path) == "model"
    assert mygpt.load_model(tmp_path).config == tiny_cfg
