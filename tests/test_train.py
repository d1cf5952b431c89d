import math
import subprocess
import sys
import textwrap

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from mygpt.checkpoint import load_model, save_model
from mygpt.errors import CheckpointError, ConfigError, TrainingError
from mygpt.model import GPT
from mygpt.train import (TrainConfig, batch_loss, configure_optimizer, evaluate, latest_checkpoint,
                         lr_at, next_token_loss, train)


def loaders(vocab, n=64, T=16, seed=0):
    data = torch.randint(0, vocab, (n, T + 1), generator=torch.Generator().manual_seed(seed))
    ds = TensorDataset(data[:, :-1], data[:, 1:])
    train_dl = DataLoader(ds, batch_size=8, shuffle=True, generator=torch.Generator())
    val_dl = DataLoader(ds, batch_size=16, shuffle=False)
    return train_dl, val_dl


def test_untrained_loss_is_about_log_vocab(tiny_cfg):
    model = GPT(tiny_cfg)
    _, val = loaders(tiny_cfg.vocab_size)
    assert abs(evaluate(model, val) - math.log(tiny_cfg.vocab_size)) < 0.1


def test_loss_ignores_padding_targets():
    logits = torch.randn(1, 3, 5)
    targets = torch.tensor([[1, -100, 2]])
    expected = torch.nn.functional.cross_entropy(logits[0, [0, 2]], torch.tensor([1, 2]))
    torch.testing.assert_close(next_token_loss(logits, targets), expected)


def test_batch_loss_skipping_masked_positions_equals_the_plain_loss(tiny_cfg):
    """The fast path (output layer only where a target is) gives the plain loss and gradients."""
    torch.manual_seed(0)
    model = GPT(tiny_cfg)
    x = torch.randint(0, tiny_cfg.vocab_size, (3, 12))
    y = torch.randint(0, tiny_cfg.vocab_size, (3, 12))
    y[0, :7] = -100   # a masked prompt
    y[1, 9:] = -100   # padding
    plain = next_token_loss(model(x), y)
    plain.backward()
    plain_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    fast = batch_loss(model, x, y)
    fast.backward()
    torch.testing.assert_close(fast, plain)
    for g, p in zip(plain_grads, model.parameters()):
        torch.testing.assert_close(p.grad, g)
    logits = model(x, logits_at=y != -100)
    assert logits.shape == ((y != -100).sum().item(), tiny_cfg.vocab_size)
    torch.testing.assert_close(logits, model(x)[y != -100])


def test_logits_at_must_be_a_boolean_mask_of_the_input_shape(tiny_cfg):
    model = GPT(tiny_cfg)
    x = torch.zeros(2, 5, dtype=torch.long)
    with pytest.raises(ValueError, match="logits_at must be a boolean tensor of shape"):
        model(x, logits_at=torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="boolean"):
        model(x, logits_at=torch.ones(2, 5, dtype=torch.long))


def test_weight_decay_only_on_matrices(tiny_cfg):
    opt = configure_optimizer(GPT(tiny_cfg), lr=1e-3, weight_decay=0.1)
    decayed, plain = opt.param_groups
    assert all(p.dim() == 2 for p in decayed["params"]) and decayed["weight_decay"] == 0.1
    assert all(p.dim() == 1 for p in plain["params"]) and plain["weight_decay"] == 0.0


def test_schedule_warms_up_then_decays_to_min():
    lrs = [lr_at(s, 1.0, 100, warmup_steps=10, min_lr=0.1) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    assert lr_at(100, 1.0, 100, 10, 0.1) == pytest.approx(0.1)


def test_training_reduces_loss(tiny_cfg):
    model = GPT(tiny_cfg)
    tr, va = loaders(tiny_cfg.vocab_size, n=8)
    before = evaluate(model, va)
    hist = train(model, tr, va, TrainConfig(epochs=60, eval_every=20, lr=3e-3, log=False))
    assert hist.val_loss[-1] < before - 1.5  # it memorises the 8 sequences


def test_model_checkpoint_round_trip(tiny_cfg, tmp_path):
    model = GPT(tiny_cfg.replace(tie_weights=False)).eval()
    save_model(model, tmp_path / "m")
    loaded = load_model(tmp_path / "m").eval()
    idx = torch.randint(0, tiny_cfg.vocab_size, (2, 10))
    assert torch.equal(model(idx), loaded(idx))
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["config.json", "model.safetensors"]


def test_checkpoint_that_does_not_fit_names_tensors(tiny_cfg, tmp_path):
    save_model(GPT(tiny_cfg.replace(n_layer=3)), tmp_path / "m")
    (tmp_path / "m" / "config.json").write_text((tmp_path / "m" / "config.json").read_text()
                                                .replace('"n_layer": 3', '"n_layer": 2'))
    with pytest.raises(CheckpointError, match=r"unexpected tensors \['blocks.2.attn.proj.bias'"):
        load_model(tmp_path / "m")


def test_resume_continues_exactly(tiny_cfg, tmp_path):
    cfg = tiny_cfg.replace(dropout=0.1)  # dropout masks must be replayed too
    tc = TrainConfig(epochs=3, eval_every=4, lr=1e-3, warmup_steps=2, checkpoint_every=5, log=False)
    torch.manual_seed(1)
    reference = train(GPT(cfg), *loaders(cfg.vocab_size), tc)

    class Interrupt(Exception):
        pass

    def stop_at_12(step, history):
        if step == 12:
            raise Interrupt

    torch.manual_seed(1)
    with pytest.raises(Interrupt):
        train(GPT(cfg), *loaders(cfg.vocab_size), tc, checkpoint_dir=tmp_path, on_eval=stop_at_12)
    assert latest_checkpoint(tmp_path).name == "step-0000010"
    torch.manual_seed(999)  # a different init and RNG state: everything must come from the checkpoint
    resumed = train(GPT(cfg), *loaders(cfg.vocab_size), tc, checkpoint_dir=tmp_path, resume=True)
    assert resumed.train_loss == reference.train_loss
    assert resumed.val_loss == reference.val_loss


def test_nan_loss_stops_with_clear_error_and_keeps_weights(tiny_cfg):
    model = GPT(tiny_cfg)
    tr, va = loaders(tiny_cfg.vocab_size)
    with torch.no_grad():
        model.ln_f.weight.fill_(float("nan"))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(TrainingError, match="Loss became nan at step 0"):
        train(model, tr, va, TrainConfig(log=False))
    for k, v in model.state_dict().items():
        assert torch.equal(v.nan_to_num(), before[k].nan_to_num()), k


def test_bad_train_config():
    with pytest.raises(ConfigError, match="lr must be positive"):
        TrainConfig(lr=0)
    with pytest.raises(ConfigError, match="max_steps"):
        TrainConfig(max_steps=0)
