"""Shared test fixtures: small models that run in milliseconds on a CPU."""

import hashlib

import pytest
import torch

from mygpt.config import GPTConfig
from mygpt.data import REGISTRY, DataFile


@pytest.fixture
def tiny_cfg() -> GPTConfig:
    return GPTConfig(vocab_size=97, context_length=32, n_embd=32, n_layer=2, n_head=4)


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
        monkeypatch.setitem(REGISTRY, name, DataFile(name, f"http://invalid.example/{name}.txt",
                                                     digest, f"{name}.txt"))
    return register
