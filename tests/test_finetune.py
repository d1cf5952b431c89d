"""Tests of mygpt.finetune: data preparation, pooling, training, classify, save/load, CLI."""

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch

from mygpt import __main__ as cli
from mygpt.config import GPTConfig
from mygpt.errors import CheckpointError, ConfigError, DataError, PromptError
from mygpt.finetune import (
    ClassificationDataset,
    GPTClassifier,
    balance_classes,
    classification_loader,
    classify,
    confusion_matrix,
    evaluate_classifier,
    load_classifier,
    pad_batch,
    pool,
    predict,
    save_classifier,
    set_trainable,
    split_rows,
    train_classifier,
)
from mygpt.model import GPT
from mygpt.tokenizer import EOT_ID, encode_ordinary

CFG = GPTConfig(vocab_size=50257, context_length=32, n_embd=16, n_layer=2, n_head=2)

# A toy task a tiny model learns in a few steps: the word "prize" marks spam.
HAM = [
    "see you at noon",
    "call me later",
    "dinner is ready",
    "ok thanks",
    "on my way home",
    "meeting moved to three",
    "love you",
    "where are you",
]
SPAM = [
    "win a prize now",
    "prize prize claim",
    "you won a prize",
    "free prize today",
    "claim your prize",
    "prize waiting text now",
    "urgent prize",
    "cash prize call",
]


def tiny_classifier(pooling="last") -> GPTClassifier:
    return GPTClassifier(GPT(CFG), ("ham", "spam"), pooling=pooling, max_length=16)


def toy_loader(shuffle=False):
    ds = ClassificationDataset(HAM + SPAM, [0] * len(HAM) + [1] * len(SPAM), max_length=16)
    return classification_loader(ds, batch_size=4, shuffle=shuffle, seed=1)


def test_balance_classes_undersamples_to_rarest_label():
    rows = [("ham", f"h{i}") for i in range(10)] + [("spam", f"s{i}") for i in range(3)]
    out = balance_classes(rows, seed=5)
    assert Counter(label for label, _ in out) == {"ham": 3, "spam": 3}
    assert set(out) <= set(rows)
    assert out == balance_classes(rows, seed=5) and out != balance_classes(rows, seed=6)
    with pytest.raises(DataError):
        balance_classes([("ham", "a")])


def test_split_rows_partitions_with_fixed_seed():
    rows = list(range(101))
    train, val, test = split_rows(rows, (0.7, 0.1, 0.2), seed=3)
    assert (len(train), len(val)) == (70, 10) and len(test) == 21
    assert sorted(train + val + test) == rows
    assert split_rows(rows, seed=3) == (train, val, test)
    with pytest.raises(DataError):
        split_rows(rows, (0.5, 0.4))


def test_dataset_truncates_and_pad_batch_right_pads():
    ds = ClassificationDataset(
        ["hello there, how are you today my friend", "hi"], [1, 0], max_length=5
    )
    assert (
        len(ds[0][0]) == 5
        and ds[0][0].tolist() == encode_ordinary("hello there, how are you today my friend")[:5]
    )
    x, lengths, y = pad_batch([ds[0], ds[1]])
    assert x.shape == (2, 5) and lengths.tolist() == [5, 1] and y.tolist() == [1, 0]
    assert x[1, 1:].tolist() == [EOT_ID] * 4
    with pytest.raises(PromptError):
        ClassificationDataset([""], [0], max_length=5)
    with pytest.raises(DataError):
        ClassificationDataset(["a", "b"], [0], max_length=5)


def test_pool_last_and_mean_ignore_padding():
    out = torch.arange(2 * 4 * 3, dtype=torch.float).view(2, 4, 3)
    lengths = torch.tensor([2, 4])
    torch.testing.assert_close(pool(out, lengths, "last"), torch.stack([out[0, 1], out[1, 3]]))
    torch.testing.assert_close(
        pool(out, lengths, "mean"), torch.stack([out[0, :2].mean(0), out[1].mean(0)])
    )
    with pytest.raises(ConfigError):
        pool(out, lengths, "max")


@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_padding_does_not_change_logits(pooling):
    model = tiny_classifier(pooling).eval()
    ids = torch.tensor([encode_ordinary("you won a prize")])
    n = ids.shape[1]
    padded = torch.cat([ids, torch.full((1, 5), EOT_ID)], dim=1)
    torch.testing.assert_close(model(ids), model(padded, torch.tensor([n])))


def test_set_trainable_parts():
    model = tiny_classifier()
    n_last = set_trainable(model, "last")
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(
        n.startswith(("gpt.blocks.1.", "gpt.ln_f.", "head.")) for n in trainable
    )
    assert "head.weight" in trainable and "gpt.ln_f.weight" in trainable
    assert set_trainable(model, "head") == 16 * 2 + 2 < n_last
    assert set_trainable(model, "all") == sum(p.numel() for p in model.parameters())
    with pytest.raises(ConfigError):
        set_trainable(model, "middle")


def test_training_learns_toy_task_and_only_updates_trainable_parts(capsys):
    model = tiny_classifier()
    set_trainable(model, "last")
    frozen = model.gpt.blocks[0].mlp.fc.weight.clone()
    loss0, _ = evaluate_classifier(model, toy_loader())
    history = train_classifier(model, toy_loader(shuffle=True), toy_loader(), epochs=8, lr=1e-2)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 8 and lines[0].startswith("epoch 1: train loss ")
    assert len(history.step_loss) == 8 * 4 and len(history.val_acc) == 8
    assert history.train_loss[-1] < loss0 and history.train_acc[-1] == 1.0
    assert torch.equal(model.gpt.blocks[0].mlp.fc.weight, frozen)
    preds, targets = predict(model, toy_loader())
    cm = confusion_matrix(preds, targets, 2)
    assert cm.sum() == 16 and cm.trace() == (preds == targets).sum()
    assert classify(model, ["free prize claim now", "see you at dinner"]) == ["spam", "ham"]


def test_confusion_matrix_rows_are_true_labels():
    cm = confusion_matrix(torch.tensor([0, 1, 1, 1]), torch.tensor([0, 0, 1, 1]), 2)
    assert cm.tolist() == [[1, 1], [0, 2]]


def test_classify_rejects_empty_input():
    model = tiny_classifier()
    with pytest.raises(PromptError, match="No messages"):
        classify(model, [])
    with pytest.raises(PromptError, match="not one string"):
        classify(model, "hello")
    with pytest.raises(PromptError, match="empty"):
        classify(model, ["ok", ""])


def test_classifier_rejects_bad_settings():
    with pytest.raises(ConfigError):
        GPTClassifier(GPT(CFG), ("ham",))
    with pytest.raises(ConfigError):
        GPTClassifier(GPT(CFG), pooling="max")
    with pytest.raises(ConfigError):
        GPTClassifier(GPT(CFG), max_length=CFG.context_length + 1)


def test_save_load_roundtrip(tmp_path):
    model = tiny_classifier("mean").eval()
    save_classifier(model, tmp_path / "clf")
    assert sorted(p.name for p in (tmp_path / "clf").iterdir()) == [
        "config.json",
        "model.safetensors",
    ]
    config = json.loads((tmp_path / "clf" / "config.json").read_text())
    assert config["labels"] == ["ham", "spam"] and config["pooling"] == "mean"
    loaded = load_classifier(tmp_path / "clf")
    assert not loaded.training and loaded.labels == ["ham", "spam"] and loaded.max_length == 16
    for (n1, p1), (n2, p2) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert n1 == n2 and torch.equal(p1, p2)
    ids = torch.tensor([encode_ordinary("claim your prize")])
    torch.testing.assert_close(model(ids), loaded(ids))


def test_load_classifier_errors(tmp_path):
    with pytest.raises(CheckpointError, match="No config.json"):
        load_classifier(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"n_layer": 2}))
    with pytest.raises(CheckpointError, match="holds no classifier"):
        load_classifier(tmp_path)
    save_classifier(tiny_classifier(), tmp_path / "clf")
    (tmp_path / "clf" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError):
        load_classifier(tmp_path / "clf")


def test_cli_classify_end_to_end(tmp_path, capsys):
    model = tiny_classifier()
    set_trainable(model, "last")
    train_classifier(model, toy_loader(shuffle=True), epochs=8, lr=1e-2, log=False)
    save_classifier(model, tmp_path / "clf")
    expected = classify(model, ["you won a prize", "call me later"])
    assert (
        cli.main(
            [
                "classify",
                "--model",
                str(tmp_path / "clf"),
                "--device",
                "cpu",
                "you won a prize",
                "call me later",
            ]
        )
        == 0
    )
    assert capsys.readouterr().out.splitlines() == [
        f"{expected[0]}\tyou won a prize",
        f"{expected[1]}\tcall me later",
    ]
    # And as a real process, reading messages from stdin; a missing model is a clean error.
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "mygpt",
            "classify",
            "--model",
            str(tmp_path / "clf"),
            "--device",
            "cpu",
        ],
        input="you won a prize\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == [f"{expected[0]}\tyou won a prize"]
    bad = subprocess.run(
        [sys.executable, "-m", "mygpt", "classify", "--model", str(tmp_path / "nope"), "hi"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert bad.returncode == 2 and "No config.json" in bad.stderr


def test_classifier_leaves_the_given_gpt_untouched():
    gpt = GPT(CFG)
    head = gpt.lm_head
    model = GPTClassifier(gpt, ("ham", "spam"))
    assert gpt.lm_head is head and gpt.lm_head.weight is gpt.tok_emb.weight
    assert gpt.lm_head.out_features == CFG.vocab_size and model.gpt is gpt
    ids = torch.tensor([encode_ordinary("you won a prize")])
    with torch.no_grad():
        per_position = model.per_position(ids)
        assert per_position.shape == (1, ids.shape[1], 2)
        assert torch.equal(per_position, model.head(gpt.hidden(ids)))
        assert torch.equal(model(ids), per_position[:, -1])
        assert gpt(ids).shape == (1, ids.shape[1], CFG.vocab_size)  # still a language model


def test_classifier_saved_in_the_old_format_still_loads(tmp_path):
    """Before GPT.hidden, the head replaced gpt.lm_head: files hold gpt.lm_head.{weight,bias}."""
    from safetensors.torch import load_file, save_file

    model = tiny_classifier().eval()
    save_classifier(model, tmp_path / "clf")
    file = tmp_path / "clf" / "model.safetensors"
    state = load_file(file)
    assert "gpt.lm_head.weight" not in state  # tied to the token embedding: stored once
    state["gpt.lm_head.weight"] = state.pop("head.weight")
    state["gpt.lm_head.bias"] = state.pop("head.bias")
    save_file(state, file)
    loaded = load_classifier(tmp_path / "clf")
    ids = torch.tensor([encode_ordinary("claim your prize")])
    torch.testing.assert_close(model(ids), loaded(ids))
    assert loaded.gpt.lm_head.weight is loaded.gpt.tok_emb.weight


def test_train_classifier_goes_through_train(monkeypatch):
    """Gradient clipping (the loop of mygpt.train) applies at every step."""
    calls = []
    original = torch.nn.utils.clip_grad_norm_

    def clip(params, max_norm, *args, **kwargs):
        calls.append(max_norm)
        return original(params, max_norm, *args, **kwargs)

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", clip)
    model = tiny_classifier()
    set_trainable(model, "last")
    history = train_classifier(model, toy_loader(shuffle=True), epochs=2, lr=1e-3, log=False)
    assert calls == [1.0] * 8 and len(history.step_loss) == 8
    assert history.train.step == [4, 8] and history.val_acc == []


def test_train_classifier_stops_on_a_nan_loss():
    from mygpt.errors import TrainingError

    model = tiny_classifier()
    set_trainable(model, "last")
    with torch.no_grad():
        model.head.weight[0, 0] = float("nan")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(TrainingError, match="Loss became nan at step 0"):
        train_classifier(model, toy_loader(shuffle=True), toy_loader(), epochs=2, log=False)
    for k, v in model.state_dict().items():
        assert torch.equal(v.nan_to_num(), before[k].nan_to_num()), k
