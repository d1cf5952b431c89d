"""Bad inputs and what the user sees: the rows of the book's "When things go wrong" page.

The page (book/appendix-errors.ipynb) runs every bad input live and shows the exception type and
message, and names, for each row, the test that pins it down. Most rows are tested where their
module is (tests/test_config.py, test_generate.py, ...); the rows no other file tests are here,
one parametrised case each, asserting the exception type and the words a user needs. The last
test checks that every test the page names exists, so the page cannot point at nothing.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from mygpt.checkpoint import load_model, save_model
from mygpt.config import GPTConfig
from mygpt.errors import CheckpointError, ConfigError, MyGPTError, PromptError, TrainingError
from mygpt.generation import generate_text
from mygpt.model import GPT
from mygpt.training import STATE_NAME, TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "book" / "appendix-errors.ipynb"
ROWS: list = []


def row(error: type[MyGPTError], *words: str, known_bug: str | None = None):
    """Register a bad input (a function of tmp_path and tiny_cfg that must raise ``error``).

    ``known_bug``: the package does not give the clear error yet (strict xfail: the test fails
    as soon as it is fixed, so the mark and the page's note get removed then).
    """

    def register(fn):
        marks = (
            [pytest.mark.xfail(raises=Exception, strict=True, reason=known_bug)]
            if known_bug
            else []
        )
        ROWS.append(pytest.param(fn, error, words, id=fn.__name__, marks=marks))
        return fn

    return register


def _loader(cfg: GPTConfig, n: int = 16) -> DataLoader:
    data = torch.randint(0, cfg.vocab_size, (n, 9), generator=torch.Generator().manual_seed(0))
    return DataLoader(
        TensorDataset(data[:, :-1], data[:, 1:]),
        batch_size=4,
        shuffle=True,
        generator=torch.Generator(),
    )


def _saved_model(tmp_path: Path, cfg: GPTConfig, **config_changes) -> Path:
    """A model saved by save_model, then its config.json edited to describe another model."""
    path = save_model(GPT(cfg), tmp_path / "model")
    if config_changes:
        (path / "config.json").write_text(json.dumps({**cfg.to_dict(), **config_changes}))
    return path


# --- configuration ---------------------------------------------------------------------------


@row(ConfigError, "TrainConfig.eval_every must be >= 1", "0")
def train_config_eval_every_zero(tmp_path, cfg):
    TrainConfig(eval_every=0)


# --- prompts ---------------------------------------------------------------------------------


@row(PromptError, "empty prompt", "'<|endoftext|>'")
def generate_text_empty_prompt(tmp_path, cfg):
    generate_text(GPT(cfg.replace(vocab_size=50257)).eval(), "", max_new_tokens=3)


@row(PromptError, "prompt must be a string or a non-empty list of strings", "42")
def generate_text_not_a_string(tmp_path, cfg):
    generate_text(GPT(cfg.replace(vocab_size=50257)).eval(), 42, max_new_tokens=3)


# --- checkpoints -----------------------------------------------------------------------------


@row(CheckpointError, "does not fit the model", "missing tensors ['blocks.2.attn.proj.bias'")
def checkpoint_missing_tensors(tmp_path, cfg):
    load_model(_saved_model(tmp_path, cfg, n_layer=3))


@row(CheckpointError, "mis-shaped tensors", "tok_emb.weight: checkpoint (97, 32), model (101, 32)")
def checkpoint_misshaped_tensor(tmp_path, cfg):
    load_model(_saved_model(tmp_path, cfg, vocab_size=101))


@row(
    CheckpointError, "model.safetensors is not a readable safetensors file", "truncated or corrupt"
)
def checkpoint_truncated_safetensors(tmp_path, cfg):
    weights = _saved_model(tmp_path, cfg) / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    load_model(weights.parent)


@row(
    CheckpointError, "model.safetensors is not a readable safetensors file", "truncated or corrupt"
)
def checkpoint_corrupt_safetensors_header(tmp_path, cfg):
    weights = _saved_model(tmp_path, cfg) / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(b"\xff" * 8 + data[8:])  # the header length is now absurd
    load_model(weights.parent)


@row(CheckpointError, "No config.json in", "is it a mygpt model directory?")
def model_directory_without_config(tmp_path, cfg):
    path = _saved_model(tmp_path, cfg)
    (path / "config.json").unlink()
    load_model(path)


@row(
    CheckpointError,
    f"{STATE_NAME} is not a readable training state",
    "truncated, corrupt",
    "could run code",
    "latest",
)
def resume_from_corrupt_training_state(tmp_path, cfg):
    tc = TrainConfig(max_steps=2, checkpoint_every=2, log=False)
    train(GPT(cfg), _loader(cfg), cfg=tc, checkpoint_dir=tmp_path)
    state = tmp_path / "step-0000002" / STATE_NAME
    state.write_bytes(state.read_bytes()[:100])
    train(
        GPT(cfg),
        _loader(cfg),
        cfg=tc.__class__(max_steps=4, log=False),
        checkpoint_dir=tmp_path,
        resume=True,
    )


@row(
    CheckpointError,
    "latest names step-0000009, which does not exist",
    "Write the name of an existing step-* directory into it",
)
def resume_when_latest_points_nowhere(tmp_path, cfg):
    (tmp_path / "latest").write_text("step-0000009")
    train(
        GPT(cfg),
        _loader(cfg),
        cfg=TrainConfig(max_steps=1, log=False),
        checkpoint_dir=tmp_path,
        resume=True,
    )


# --- training --------------------------------------------------------------------------------


@row(TrainingError, "The training loader yields no batch", "lower batch_size or context_length")
def train_on_an_empty_loader(tmp_path, cfg):
    empty = TensorDataset(torch.zeros(0, 8, dtype=torch.long), torch.zeros(0, 8, dtype=torch.long))
    train(GPT(cfg), DataLoader(empty, batch_size=4), cfg=TrainConfig(log=False))


@pytest.mark.parametrize("make, error, words", ROWS)
def test_bad_input_gets_a_clear_error(make, error, words, tmp_path, tiny_cfg):
    with pytest.raises(error) as info:
        make(tmp_path, tiny_cfg)
    assert isinstance(info.value, MyGPTError)
    for word in words:
        assert word in str(info.value), (word, str(info.value))


# --- the page names only tests that exist ----------------------------------------------------

TEST_REF = re.compile(r"`(test_\w+\.py)::(test_\w+)(?:\[([\w.-]+)\])?`")


def test_every_test_the_error_page_names_exists():
    """Every ``file::test`` in the page's stored tables exists, and so does every row here."""
    nb = nbformat.read(str(PAGE), as_version=4)
    shown = "\n".join(
        out.get("data", {}).get("text/markdown", "")
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.outputs
    )
    refs = TEST_REF.findall(shown)
    assert len(refs) >= 20, f"the page names only {len(refs)} tests"
    ids = {p.id for p in ROWS}
    for file, name, param in refs:
        source = (ROOT / "tests" / file).read_text()
        assert re.search(rf"^def {name}\(", source, re.M), f"tests/{file}::{name} does not exist"
        if file == Path(__file__).name and param:
            assert param in ids, f"no row {param!r} in {file}"
    named_here = {param for file, _, param in refs if file == Path(__file__).name}
    working = {p.id for p in ROWS if not p.marks}  # a known bug cannot be shown on the page yet
    assert working <= named_here, (
        f"rows tested here but missing from the page: {working - named_here}"
    )
