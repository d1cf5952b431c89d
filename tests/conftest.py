"""Shared test fixtures: small models that run in milliseconds on a CPU."""

import pytest
import torch

from mygpt.config import GPTConfig


@pytest.fixture
def tiny_cfg() -> GPTConfig:
    return GPTConfig(vocab_size=97, context_length=32, n_embd=32, n_layer=2, n_head=4)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
