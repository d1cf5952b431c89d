"""Shared test fixtures: small models that run in milliseconds on a CPU."""

import hashlib

import pytest
import torch

from mygpt.config import GPTConfig
from mygpt.files import REGISTRY, DataFile
from mygpt.model import GPT


@pytest.fixture
def tiny_cfg() -> GPTConfig:
    return GPTConfig(vocab_size=97, context_length=32, n_embd=32, n_layer=2, n_head=4)


@pytest.fixture
def counting_model(tiny_cfg) -> GPT:
    """``tiny_cfg``'s GPT, rigged to count: for a last token ``t < n_embd`` its greedy next token
    is ``(t + 1) % n_embd``, whatever the random weights, so tests can say which token comes when.

    Token ``t``'s embedding is ``100 * e_t`` (a unit vector); the blocks are pre-LayerNorm, so
    they add only a small, bounded update to it, and the final LayerNorm still peaks at
    coordinate ``t``. The (untied) output layer maps coordinate ``t`` to token ``t + 1`` with
    weight 10 and everything else to 0, so ``t + 1`` wins by a logit margin of about 50.
    """
    model = GPT(tiny_cfg.replace(tie_weights=False)).eval()
    width = tiny_cfg.n_embd
    with torch.no_grad():
        model.tok_emb.weight[:width] = 100 * torch.eye(width)
        model.lm_head.weight.zero_()
        model.lm_head.weight[:width] = 10 * torch.eye(width).roll(1, dims=0)  # row t+1 reads t
    return model


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def private_data(tmp_path, monkeypatch):
    """A private data directory and cache; returns ``register(name, text)``, which stores ``text``
    there as the registered data file ``name`` (checked by its SHA-256 like the real files)."""
    data = tmp_path / "data"
    data.mkdir()
    monkeypatch.setenv("MYGPT_DATA_DIR", str(data))
    monkeypatch.setenv("MYGPT_CACHE_DIR", str(tmp_path / "cache"))

    def register(name: str, text: str) -> None:
        (data / f"{name}.txt").write_text(text, encoding="utf-8")
        digest = hashlib.sha256(text.encode()).hexdigest()
        monkeypatch.setitem(
            REGISTRY,
            name,
            DataFile(name, f"http://invalid.example/{name}.txt", digest, f"{name}.txt"),
        )

    return register
