import dataclasses
import io
import math
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import mygpt as mygpt_package
from mygpt.checkpoint import load_model, save_model
from mygpt.errors import CheckpointError, ConfigError, TrainingError
from mygpt.model import GPT
from mygpt.training import (
    TrainConfig,
    batch_loss,
    configure_optimizer,
    evaluate,
    latest_checkpoint,
    lr_at,
    next_token_loss,
    train,
)


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
    y[0, :7] = -100  # a masked prompt
    y[1, 9:] = -100  # padding
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
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [
        "config.json",
        "model.safetensors",
    ]


def test_checkpoint_that_does_not_fit_names_tensors(tiny_cfg, tmp_path):
    save_model(GPT(tiny_cfg.replace(n_layer=3)), tmp_path / "m")
    (tmp_path / "m" / "config.json").write_text(
        (tmp_path / "m" / "config.json").read_text().replace('"n_layer": 3', '"n_layer": 2')
    )
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
    torch.manual_seed(
        999
    )  # a different init and RNG state: everything must come from the checkpoint
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


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (
            dict(grad_clip=-1),
            "TrainConfig.grad_clip must be None (no clipping) or a positive number",
        ),
        (
            dict(grad_clip=0),
            "TrainConfig.grad_clip must be None (no clipping) or a positive number",
        ),
        (dict(grad_clip=float("inf")), "TrainConfig.grad_clip"),
        (dict(grad_clip="1.0"), "TrainConfig.grad_clip"),
        (dict(lr=-1e-3), "TrainConfig.lr must be positive"),
        (dict(lr=float("nan")), "TrainConfig.lr must be positive"),
        (dict(lr="3e-4"), "TrainConfig.lr must be positive"),
        (dict(min_lr=-1e-5), "TrainConfig.min_lr must be None or a number >= 0"),
        (dict(warmup_steps=-1), "TrainConfig.warmup_steps must be an integer >= 0"),
        (dict(warmup_steps=2.5), "TrainConfig.warmup_steps must be an integer >= 0"),
        (dict(weight_decay=float("nan")), "TrainConfig.weight_decay must be >= 0"),
        (dict(betas=(0.9, 1.5)), "TrainConfig.betas must be two numbers in [0, 1)"),
        (dict(betas=0.9), "TrainConfig.betas must be two numbers in [0, 1)"),
        (dict(epochs=1.5), "TrainConfig.epochs must be >= 1"),
        (dict(eval_every="10"), "TrainConfig.eval_every must be >= 1"),
        (dict(max_steps=True), "TrainConfig.max_steps must be >= 1 or None"),
        (dict(eval_batches=0), "TrainConfig.eval_batches must be >= 1 or None"),
        (dict(checkpoint_every=-5), "TrainConfig.checkpoint_every must be >= 1 or None"),
        (dict(keep_last=0), "TrainConfig.keep_last must be >= 1"),
        (dict(seed="123"), "TrainConfig.seed must be an integer"),
        (dict(log="no"), "TrainConfig.log must be True or False"),
        (dict(amp="no"), "TrainConfig.amp must be True or False"),
    ],
)
def test_train_config_fields_are_validated(kwargs, words):
    with pytest.raises(ConfigError) as e:
        TrainConfig(**kwargs)
    assert words in str(e.value)


def test_train_config_accepts_its_documented_values():
    TrainConfig(
        grad_clip=None,
        min_lr=0.0,
        warmup_steps=0,
        weight_decay=0,
        eval_batches=None,
        checkpoint_every=None,
        betas=[0.9, 0.999],
        max_steps=None,
        lr=1,
    )


def test_fresh_run_into_a_directory_of_an_earlier_run_is_refused(tiny_cfg, tmp_path):
    """Without the refusal the new run's step-0000001 was pruned (the earlier run's higher steps
    were 'the last keep_last'), leaving `latest` naming a deleted directory."""
    tr, va = loaders(tiny_cfg.vocab_size, n=16)
    train(
        GPT(tiny_cfg),
        tr,
        va,
        TrainConfig(max_steps=4, checkpoint_every=2, keep_last=2, log=False),
        checkpoint_dir=tmp_path,
    )
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(
        CheckpointError,
        match=r"holds checkpoints of an earlier run \(step-0000002, "
        r"step-0000004, latest\).*resume=True.*empty directory",
    ):
        train(
            GPT(tiny_cfg),
            tr,
            va,
            TrainConfig(max_steps=1, checkpoint_every=1, log=False),
            checkpoint_dir=tmp_path,
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing touched
    train(
        GPT(tiny_cfg),
        tr,
        va,
        TrainConfig(max_steps=1, checkpoint_every=1, log=False),
        checkpoint_dir=tmp_path / "fresh",
    )  # an empty (or new) directory is fine


def test_resuming_from_an_earlier_checkpoint_keeps_the_new_ones(tiny_cfg, tmp_path):
    """The load error's own advice: write an earlier step into `latest` and resume. The later
    checkpoints of the abandoned run must not crowd out (prune) the resumed run's new ones."""
    tr, va = loaders(tiny_cfg.vocab_size, n=16)
    tc = TrainConfig(max_steps=8, checkpoint_every=2, keep_last=3, log=False)
    train(GPT(tiny_cfg), tr, va, tc, checkpoint_dir=tmp_path)  # keeps steps 4, 6 and 8
    (tmp_path / "latest").write_text("step-0000006")
    train(
        GPT(tiny_cfg),
        tr,
        va,
        dataclasses.replace(tc, max_steps=7, checkpoint_every=1, keep_last=1),
        checkpoint_dir=tmp_path,
        resume=True,
    )
    assert latest_checkpoint(tmp_path).name == "step-0000007"  # it was pruned, as older than 8
    assert not (tmp_path / "step-0000004").exists()  # older than the resumed run's last one


@pytest.mark.parametrize("pointer", ["../outside/step-0000002", "/etc", "..", "step-1/../step-2"])
def test_latest_pointing_outside_the_directory_is_refused(tiny_cfg, tmp_path, pointer):
    tr, va = loaders(tiny_cfg.vocab_size, n=16)
    tc = TrainConfig(max_steps=2, checkpoint_every=2, log=False)
    train(GPT(tiny_cfg), tr, va, tc, checkpoint_dir=tmp_path / "outside")  # a valid checkpoint
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "latest").write_text(pointer)
    with pytest.raises(CheckpointError, match="is not the name of a step-NNNNNNN directory"):
        latest_checkpoint(tmp_path / "ckpt")


def _corrupt_states() -> dict[str, bytes]:
    """Damaged train_state.pt contents that torch.load may or may not notice by itself."""
    states = {}
    for name, obj in [
        ("a list", [1, 2]),
        ("a dict without the optimizer", {"step": 2}),
        ("a bad history", None),
    ]:
        buffer = io.BytesIO()
        torch.save(obj, buffer)
        states[name] = buffer.getvalue()
    return states


@pytest.mark.parametrize(
    "damage",
    [
        "a list",
        "a dict without the optimizer",
        "a bad history",
        "bytes flipped",
        "not UTF-8 in a string",
    ],
)
def test_corrupt_training_state_is_a_checkpoint_error(tiny_cfg, tmp_path, damage):
    tr, va = loaders(tiny_cfg.vocab_size, n=16)
    train(
        GPT(tiny_cfg),
        tr,
        va,
        TrainConfig(max_steps=2, checkpoint_every=2, log=False),
        checkpoint_dir=tmp_path,
    )
    path = tmp_path / "step-0000002" / "train_state.pt"
    state = torch.load(path, weights_only=True)
    if damage in ("a list", "a dict without the optimizer"):
        path.write_bytes(_corrupt_states()[damage])
    elif damage == "a bad history":
        torch.save(dict(state, history={"no such field": 1}), path)
    elif damage == "bytes flipped":  # the pickled key 'step' becomes something else
        path.write_bytes(
            path.read_bytes().replace(b"X\x04\x00\x00\x00step", b"X\x04\x00\x00\x00stoq")
        )
    else:
        data = path.read_bytes()
        i = data.index(b"run_sum")
        path.write_bytes(data[:i] + b"\xef\xbf" + data[i + 2 :])
    with pytest.raises(CheckpointError, match="train_state.pt"):
        train(
            GPT(tiny_cfg),
            tr,
            va,
            TrainConfig(max_steps=4, log=False),
            checkpoint_dir=tmp_path,
            resume=True,
        )


class _Boom(Exception):
    pass


def _failing_loader(batches):
    yield from batches[:1]
    raise _Boom


@pytest.mark.parametrize("was_training", [True, False])
def test_evaluate_restores_the_mode_even_when_the_loader_fails(tiny_cfg, was_training):
    model = GPT(tiny_cfg).train(was_training)
    _, va = loaders(tiny_cfg.vocab_size)
    with pytest.raises(_Boom):
        evaluate(model, _failing_loader(list(va)))
    assert model.training == was_training


@pytest.mark.parametrize("was_training", [True, False])
def test_classifier_evaluation_restores_the_mode_even_when_the_loader_fails(was_training):
    from mygpt.config import GPTConfig
    from mygpt.finetune import GPTClassifier, evaluate_classifier, predict

    model = GPTClassifier(
        GPT(GPTConfig(vocab_size=97, context_length=8, n_embd=16, n_layer=1, n_head=2))
    )
    batch = (torch.zeros(2, 4, dtype=torch.long), torch.tensor([4, 2]), torch.tensor([0, 1]))
    for fn in (predict, evaluate_classifier):
        model.train(was_training)
        with pytest.raises(_Boom):
            fn(model, _failing_loader([batch]))
        assert model.training == was_training, fn.__name__


def test_train_takes_a_custom_loss_and_evaluation(tiny_cfg):
    """loss_fn gets (model, batch) with the batch on the device; evaluate_fn gives val_loss."""
    torch.manual_seed(0)
    model = GPT(tiny_cfg)
    tr, va = loaders(tiny_cfg.vocab_size)
    seen = []

    def loss_fn(model, batch):
        x, y = batch
        seen.append(x.shape)
        return 0.5 * batch_loss(model, x, y)

    def evaluate_fn(model, loader, device, max_batches):
        return 42.0

    cfg = TrainConfig(max_steps=4, eval_every=2, log=False)
    history = train(model, tr, va, cfg, loss_fn=loss_fn, evaluate_fn=evaluate_fn)
    assert seen == [(8, 16)] * 4 and history.val_loss == [42.0, 42.0]
    torch.manual_seed(0)
    plain = train(GPT(tiny_cfg), tr, va, cfg)  # the same steps with the default loss
    assert history.train_loss != plain.train_loss
    assert all(h < p for h, p in zip(history.train_loss, plain.train_loss))


PACKAGE_DIR = str(Path(mygpt_package.__file__).resolve().parent)


def test_train_does_not_sync_with_the_device_at_every_step(tiny_cfg, monkeypatch):
    """Reading a tensor's value (.item, .tolist, bool, float) waits for the device: train() does
    it at evaluations and checkpoints only, not once per step."""
    tr, _ = loaders(tiny_cfg.vocab_size)
    counts = {}
    for name in ("item", "tolist", "__bool__", "__float__"):
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, _name=name, **kwargs):
            caller = sys._getframe(1).f_code.co_filename
            if caller.startswith(PACKAGE_DIR):  # mygpt's own reads, not the DataLoader's
                counts[_name] = counts.get(_name, 0) + 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)

    def loss_fn(model, batch):  # batch_loss reads y to skip masked targets, on the CPU only
        x, y = batch
        return next_token_loss(model(x), y)

    def syncs(steps):
        counts.clear()
        torch.manual_seed(0)
        cfg = TrainConfig(max_steps=steps, eval_every=steps, log=False)
        with torch.random.fork_rng():
            train(GPT(tiny_cfg), tr, None, cfg, loss_fn=loss_fn)
        return sum(counts.values())

    assert syncs(3) == syncs(20) <= 2  # one read of the pending losses (+ the NaN flag)


def test_nan_with_another_optimizer_stops_before_the_update(tiny_cfg):
    """An optimizer that cannot skip a step on the device is checked before each update."""
    model = GPT(tiny_cfg)
    tr, va = loaders(tiny_cfg.vocab_size)
    with torch.no_grad():
        model.ln_f.weight.fill_(float("nan"))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    with pytest.raises(TrainingError, match="Loss became nan at step 0"):
        train(model, tr, va, TrainConfig(log=False), optimizer=optimizer)
    for k, v in model.state_dict().items():
        assert torch.equal(v.nan_to_num(), before[k].nan_to_num()), k


def test_a_nan_after_good_steps_leaves_the_optimizer_usable(tiny_cfg):
    """The fused AdamW skips bad steps on the device; train() removes that switch afterwards."""
    model = GPT(tiny_cfg)
    tr, va = loaders(tiny_cfg.vocab_size)
    optimizer = configure_optimizer(model, 1e-3)
    cfg = TrainConfig(max_steps=6, eval_every=6, log=False)
    train(model, tr, va, dataclasses.replace(cfg, max_steps=2, eval_every=2), optimizer=optimizer)
    with torch.no_grad():
        model.ln_f.weight[0] = float("nan")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(TrainingError, match="Loss became nan at step 0"):
        train(model, tr, va, cfg, optimizer=optimizer)
    for k, v in model.state_dict().items():  # five more bad steps: none was applied
        assert torch.equal(v.nan_to_num(), before[k].nan_to_num()), k
    assert not hasattr(optimizer, "found_inf")


def test_training_data_outside_the_vocabulary_is_a_data_error(tiny_cfg) -> None:
    """Without the loader's up-front check, the model itself names the bad id (no IndexError)."""
    import mygpt

    model = mygpt.GPT(tiny_cfg)
    x = torch.randint(0, tiny_cfg.vocab_size, (2, 8))
    x[1, 3] = tiny_cfg.vocab_size + 5
    batches = [(x, x.clone())]
    with pytest.raises(mygpt.DataError, match=f"Token id {tiny_cfg.vocab_size + 5} is outside"):
        mygpt.train(model, batches, cfg=mygpt.TrainConfig(max_steps=1, log=False))
