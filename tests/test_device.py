"""Device choice: a GPU when there is one (Colab's GPU runtime), else Apple's MPS, else the CPU;
``MYGPT_DEVICE`` overrides it, so a GPU machine can reproduce the book's CPU outputs."""

from __future__ import annotations

import pytest
import torch

import mygpt
from mygpt.device import get_device


@pytest.fixture
def no_override(monkeypatch):
    monkeypatch.delenv("MYGPT_DEVICE", raising=False)


def _mps(monkeypatch, available: bool) -> None:
    if getattr(torch.backends, "mps", None) is not None:
        monkeypatch.setattr(torch.backends.mps, "is_available", lambda: available)


def test_a_gpu_is_chosen_when_present(monkeypatch, no_override):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert get_device() == torch.device("cuda")
    assert mygpt.setup_notebook(seed=1) == torch.device("cuda")  # what every chapter calls


def test_mps_then_cpu_without_cuda(monkeypatch, no_override):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    _mps(monkeypatch, True)
    if getattr(torch.backends, "mps", None) is not None:
        assert get_device() == torch.device("mps")
    _mps(monkeypatch, False)
    assert get_device() == torch.device("cpu")


def test_the_variable_and_the_argument_override_the_choice(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("MYGPT_DEVICE", "cpu")
    assert mygpt.setup_notebook() == torch.device("cpu")
    assert get_device("meta") == torch.device("meta")  # an explicit choice wins over both
