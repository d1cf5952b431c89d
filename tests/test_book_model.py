"""The book's own model: its corpus (WikiText-2 made plain text again), the resumable build
command, and shipping in GPT-2's Hub layout with a checked SHA-256.

The build and ship tests run the real code paths on a TINY recipe (one block, 16 wide, a few
steps on a toy text written here), so they take seconds.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import math
import os
import subprocess
import sys

import pytest
import torch

import mygpt  # first: the tokenizer reads MYGPT_DATA_DIR once, at import
from mygpt import corpus, zoo
from mygpt.checkpoint import model_state
from mygpt.config import GPTConfig
from mygpt.errors import CheckpointError, ConfigError
from mygpt.formats import wikitext_to_plain
from mygpt.pretrained import load_pretrained, save_pretrained
from mygpt.training import TrainConfig, lr_at

transformers = pytest.importorskip("transformers")


# --- WikiText -> plain text -------------------------------------------------------------------


def test_wikitext_tokens_are_joined_back_into_plain_text():
    raw = (
        " = Valkyria Chronicles III = \n \n"
        " The game 's 1 @,@ 000 @-@ page guide ( released in 2011 ) costs $ 3 @.@ 5 . \n"
        ' He said " it is <unk> " , and left ; then : war ! \n'
        " \n = = Plot <unk> = = \n"
    )
    assert wikitext_to_plain(raw) == (
        "= Valkyria Chronicles III =\n\n"
        "The game's 1,000-page guide (released in 2011) costs $3.5.\n\n"
        'He said "it is", and left; then: war!\n\n'
        "== Plot ==\n"
    )


def test_removed_unk_leaves_no_empty_brackets_or_quotes():
    assert wikitext_to_plain(' A process called <unk> ( <unk> ) is " <unk> " here . \n') == (
        "A process called is here.\n"
    )


def test_real_wikitext_has_no_tokenizer_marks_left():
    text = corpus.source_text("wikitext2")
    assert "<unk>" not in text and " @" not in text
    assert text.count(" ,") < 10 and text.count(" .") < 10  # a handful of odd lines, not the form
    assert "\n== " in text  # headings kept, one level per "="
    assert 2_000_000 < len(text) < 2_375_210  # shorter than the tokenized form, nothing lost


def test_each_source_is_split_on_its_own():
    train, held_out = corpus.source_split("tinyshakespeare", 0.9)
    assert train + held_out == corpus.source_text("tinyshakespeare")
    assert len(train) == int(0.9 * len(train + held_out))
    with pytest.raises(ConfigError, match="Unknown text source 'nope'"):
        corpus.source_split("nope")


def test_recipe_key_depends_on_every_file_of_its_sources():
    book = zoo.ZOO["book"]
    spec = book.spec()
    assert spec["data"] == ["tinyshakespeare", "wikitext2"]
    assert set(spec["data_sha256"]) == {"tinyshakespeare", "wikitext2-valid", "wikitext2-test"}
    assert dataclasses.replace(book, stride=64).key() != book.key()


# --- GPT-2's Hub layout, written --------------------------------------------------------------


def test_unigram_loss_is_the_entropy_of_the_token_frequencies():
    from mygpt.training import unigram_loss

    train = torch.tensor([0, 0, 0, 1])  # add-one: counts 4, 2, 1 over a vocabulary of 3
    assert unigram_loss(train, torch.tensor([0, 1]), 3) == pytest.approx(
        -(math.log(4 / 7) + math.log(2 / 7)) / 2
    )


def test_save_pretrained_is_read_by_us_and_by_transformers_alike(tmp_path):
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=50257, context_length=32, n_embd=32, n_layer=2, n_head=4)
    model = mygpt.GPT(cfg).eval()
    save_pretrained(model, tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [
        "config.json",
        "model.safetensors",
    ]
    ours = load_pretrained(tmp_path / "m")
    theirs = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "m").eval()
    x = torch.randint(0, cfg.vocab_size, (2, 20))
    with torch.no_grad():
        assert torch.equal(ours(x), model(x))
        torch.testing.assert_close(theirs(x).logits, model(x), atol=1e-5, rtol=1e-5)


def test_save_pretrained_in_float16_and_refuses_a_model_without_biases(tmp_path):
    cfg = GPTConfig(vocab_size=100, context_length=8, n_embd=16, n_layer=1, n_head=2)
    save_pretrained(mygpt.GPT(cfg), tmp_path / "h", dtype=torch.float16)
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "h" / "model.safetensors").stat().st_mode & 0o777 == 0o666 & ~umask
    config = json.loads((tmp_path / "h" / "config.json").read_text())
    assert config["model_type"] == "gpt2" and config["torch_dtype"] == "float16"
    assert load_pretrained(tmp_path / "h").config == cfg
    with pytest.raises(CheckpointError, match="biases"):
        save_pretrained(mygpt.GPT(cfg.replace(bias=False)), tmp_path / "b")


# --- build, resume, ship ----------------------------------------------------------------------

TOY_A = "".join(f"Line {i}: the cat sat on the mat and said {i % 7} words.\n" for i in range(60))
TOY_B = "".join(f" = Part {i} = \n \n The dog 's {i} @,@ 000 bones . \n" for i in range(60))


@pytest.fixture
def long_recipe(private_data, monkeypatch, tmp_path):
    """'tinylong' in the zoo: two toy sources (one in WikiText's form), checkpointed like the
    book's recipe, shipped in the Hub layout into a private package directory."""
    private_data("toy-a", TOY_A)
    private_data("toy-b", TOY_B)
    monkeypatch.setitem(corpus.SOURCES, "toy-wiki", corpus.Source(("toy-b",), wikitext_to_plain))
    recipe = zoo.Recipe(
        model=GPTConfig(
            vocab_size=50257, context_length=16, n_embd=16, n_layer=1, n_head=2, dropout=0.1
        ),
        train=TrainConfig(
            max_steps=6,
            lr=1e-3,
            warmup_steps=1,
            eval_every=2,
            eval_batches=1,
            checkpoint_every=2,
            log=False,
        ),  # fmt: skip
        data=("toy-a", "toy-wiki"),
        batch_size=2,
        stride=8,
        dtype="float32",
        description="a test model",
        shipped_layout="hub",
    )
    monkeypatch.setitem(zoo.ZOO, "tinylong", recipe)
    monkeypatch.setattr(zoo, "SHIPPED_DIR", tmp_path / "package-models")
    return recipe


def test_a_long_recipe_is_never_trained_behind_the_readers_back(long_recipe):
    with pytest.raises(CheckpointError, match="python -m mygpt zoo build tinylong"):
        zoo.small_pretrained("tinylong")


def test_an_interrupted_build_resumes_to_the_same_weights(long_recipe, monkeypatch):
    directory = zoo.build("tinylong", device="cpu")
    reference = {k: v.clone() for k, v in model_state(zoo._load_dir(directory)).items()}
    held_out = json.loads((directory / zoo.HELD_OUT_NAME).read_text())
    assert set(held_out["model"]) == set(held_out["unigram"]) == {"toy-a", "toy-wiki"}
    assert held_out["uniform"] == pytest.approx(10.825, abs=1e-3)  # ln 50,257
    build_log = json.loads((directory / zoo.BUILD_NAME).read_text())["sessions"]
    assert build_log[0]["steps"] == [0, 6] and build_log[0]["tokens_per_s"] > 0

    # Again from nothing, but stopped (as by Ctrl-C) at the evaluation of step 4, after the
    # checkpoint of step 2 was written; then the same command again.
    import shutil

    shutil.rmtree(directory)
    shutil.rmtree(directory.parent / f"{directory.name}.run")
    real_train = zoo.train

    def stop_at_step_4(step, history):
        if step == 4:
            raise KeyboardInterrupt

    monkeypatch.setattr(zoo, "train", lambda *a, **kw: real_train(*a, on_eval=stop_at_step_4, **kw))
    with pytest.raises(KeyboardInterrupt):
        zoo.build("tinylong", device="cpu")
    monkeypatch.setattr(zoo, "train", real_train)
    assert not directory.exists()
    zoo.build("tinylong", device="cpu")
    resumed = model_state(zoo._load_dir(directory))
    for name, value in reference.items():
        assert torch.equal(resumed[name], value), name
    assert json.loads((directory / zoo.BUILD_NAME).read_text())["sessions"][0]["steps"] == [2, 6]


def test_shipping_writes_the_hub_layout_and_its_sha256_is_checked(long_recipe, monkeypatch, capsys):
    shipped = zoo.ship("tinylong")
    names = {p.name for p in shipped.iterdir()}
    assert names == {
        "config.json", "model.safetensors", "recipe.json", "history.json",
        zoo.HELD_OUT_NAME, zoo.BUILD_NAME, "README.md",
    }  # fmt: skip
    card = (shipped / "README.md").read_text()
    held_out = json.loads((shipped / zoo.HELD_OUT_NAME).read_text())
    for source, loss in held_out["model"].items():  # the card's numbers are the files' numbers
        assert f"| {source} | {loss:.3f} |" in card
    assert zoo.sha256_of(shipped / "model.safetensors") in card
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith('SHIPPED_SHA256["tinylong"] = "')
    sha = line.split('"')[3]

    # Loaded from the package, through the Hub-layout loader, by us and by transformers.
    monkeypatch.setitem(zoo.SHIPPED_SHA256, "tinylong", sha)
    model = zoo.small_pretrained("tinylong", verbose=False)
    theirs = transformers.GPT2LMHeadModel.from_pretrained(shipped, dtype=torch.float32).eval()
    x = torch.randint(0, 50257, (1, 12))
    with torch.no_grad():
        torch.testing.assert_close(theirs(x).logits, model(x), atol=1e-4, rtol=1e-4)

    # A damaged copy is refused, naming the fix.
    monkeypatch.setitem(zoo.SHIPPED_SHA256, "tinylong", "0" * 64)
    with pytest.raises(CheckpointError, match="reinstall mygpt"):
        zoo.small_pretrained("tinylong", verbose=False)


def test_the_command_line_builds_and_ships_by_name():
    from mygpt.__main__ import build_parser

    args = build_parser().parse_args(["zoo", "build"])
    assert (args.action, args.name) == ("build", "book")
    run = subprocess.run(
        [sys.executable, "-m", "mygpt", "zoo", "build", "nope"], capture_output=True, text=True
    )
    assert run.returncode == 2
    assert run.stderr == (
        "mygpt zoo: error: Unknown small model 'nope'. Known names: book, shakespeare-small.\n"
    )


# --- the shipped book model ---------------------------------------------------------------------


def test_the_shipped_book_model_is_what_the_package_promises(monkeypatch, tmp_path):
    """Shipped for the current recipe, SHA-256 registered, loaded without training, read alike by
    us and by transformers, and its model card states the numbers of its files."""
    shipped = zoo.shipped_dir("book")
    assert shipped is not None, "mygpt/models/book is missing or was built by another recipe"
    assert "book" in zoo.SHIPPED_SHA256
    monkeypatch.setenv("MYGPT_CACHE_DIR", str(tmp_path))
    model = mygpt.book_model(verbose=False)
    assert not any(tmp_path.iterdir())  # nothing trained or cached
    assert model.config == zoo.ZOO["book"].model.replace(dropout=0.0)
    assert (shipped / "model.safetensors").stat().st_size <= 40 * 2**20
    theirs = transformers.GPT2LMHeadModel.from_pretrained(shipped, dtype=torch.float32).eval()
    x = mygpt.text_to_ids("KING HENRY:\nThe city of London is")
    with torch.no_grad():
        torch.testing.assert_close(theirs(x).logits, model(x), atol=1e-4, rtol=1e-4)
    card = (shipped / "README.md").read_text()
    held_out = json.loads((shipped / zoo.HELD_OUT_NAME).read_text())
    for source, loss in held_out["model"].items():
        assert f"| {source} | {loss:.3f} |" in card
    assert zoo.SHIPPED_SHA256["book"] in card


@pytest.mark.xfail(
    strict=True,
    reason="the shipped 1.3-hour run reaches 4.985 and 6.113 (twice its dropout: 5.016 and "
    "6.138; tokens its training text never contains add 0.23 and 0.42, at least 0.14 and 0.27 "
    "for any model of this text: bench/book_model_unseen.py); more text or a longer recipe must "
    "still bring both under the targets (strict: this starts failing once they are met)",
)
def test_the_book_model_meets_its_targets():
    """Held-out loss: Shakespeare <= 4.8 nats/token and WikiText <= 5.5, both far below the
    unigram baseline."""
    held_out = json.loads((zoo.shipped_dir("book") / zoo.HELD_OUT_NAME).read_text())
    assert held_out["model"]["tinyshakespeare"] <= 4.8
    assert held_out["model"]["wikitext2"] <= 5.5
    for source, loss in held_out["model"].items():
        assert loss < held_out["unigram"][source] - 1.0


def _bench_module(name: str):
    """Import ``bench/<name>.py`` (bench/ is not a package)."""
    bench = os.path.join(os.path.dirname(__file__), os.pardir, "bench")
    sys.path.insert(0, bench)
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(bench)


def test_the_long_run_beats_the_short_constant_rate_baseline():
    """bench/book_model_baseline.py trains the book's recipe with only the schedule, overlap and
    length changed; its committed result comes from that recipe, and the shipped model is well
    below it on both texts (the performance appendix compares the two)."""
    baseline = _bench_module("book_model_baseline")
    book, short = zoo.ZOO["book"], baseline.baseline_recipe()
    assert dataclasses.replace(short, train=book.train, stride=book.stride) == book
    schedule = {
        lr_at(s, short.train.lr, short.train.max_steps, 0, short.train.min_lr)
        for s in range(short.train.max_steps)
    }
    assert schedule == {short.train.lr}
    result = json.loads(baseline.RESULTS.read_text())["run"]
    assert result["train"] == json.loads(json.dumps(dataclasses.asdict(short.train)))
    assert result["tokens"] == short.train.max_steps * short.batch_size * short.model.context_length
    held_out = json.loads((zoo.shipped_dir("book") / zoo.HELD_OUT_NAME).read_text())
    for source, loss in held_out["model"].items():
        assert loss < result["held_out"][source] - 0.3


def test_twice_the_dropout_is_the_book_recipe_with_only_its_dropout_changed():
    """bench/book_model_dropout.py asks whether stronger regularisation would lower the shipped
    model's held-out loss; its committed result must come from the book's recipe with nothing but
    the dropout changed, trained for as many tokens."""
    variant = _bench_module("book_model_dropout")
    book, doubled = zoo.ZOO["book"], variant.dropout_recipe()
    assert doubled.model.dropout == variant.DROPOUT == 2 * book.model.dropout
    assert dataclasses.replace(doubled, model=book.model) == book
    result = json.loads(variant.RESULTS.read_text())["run"]
    assert result["model"] == json.loads(json.dumps(doubled.model.to_dict()))
    assert result["train"] == json.loads(json.dumps(dataclasses.asdict(book.train)))
    assert result["tokens"] == book.train.max_steps * book.batch_size * book.model.context_length
    assert set(result["held_out"]) == set(book.sources)


def _held_out_targets(recipe: zoo.Recipe, source: str) -> list[int]:
    """Every target token of ``source``'s held-out loader, in order."""
    val_loader = zoo.recipe_loaders(dataclasses.replace(recipe, data=(source,)))[1]
    return torch.cat([y.flatten() for _, y in val_loader]).tolist()


def test_the_unseen_token_split_adds_up_and_counts_every_held_out_token(long_recipe):
    """bench/book_model_unseen.py splits a model's held-out loss between tokens its training text
    never contains and the rest. On a tiny recipe (one window per batch, so the package's
    evaluate() averages tokens too): the split's mean is the package's held-out loss, and its
    parts add up to it."""
    unseen = _bench_module("book_model_unseen")
    tiny = dataclasses.replace(long_recipe, batch_size=1)
    torch.manual_seed(0)
    model = mygpt.GPT(tiny.model).eval()
    result = unseen.breakdown(model, tiny)
    train_ids = set(zoo.recipe_loaders(tiny)[0].dataset.ids.tolist())
    assert result["never_seen_types"] == tiny.model.vocab_size - len(train_ids)
    for source, r in result["sources"].items():
        val_loader = zoo.recipe_loaders(dataclasses.replace(tiny, data=(source,)))[1]
        targets = _held_out_targets(tiny, source)
        assert r["tokens"] == len(targets)
        assert r["unseen_tokens"] == sum(t not in train_ids for t in targets) > 0
        assert r["mean"] == pytest.approx(mygpt.training.evaluate(model, val_loader), abs=1e-5)
        q = r["unseen_share"]
        assert q * r["unseen_mean"] + (1 - q) * r["seen_mean"] == pytest.approx(r["mean"])
        assert r["unseen_added"] == pytest.approx(q * r["unseen_mean"])
        assert r["unseen_floor_each"] == pytest.approx(math.log(result["never_seen_types"]))


def test_the_committed_unseen_token_split_is_the_shipped_models():
    """Its committed result counts the book recipe's own held-out tokens, and its means agree with
    the shipped held-out losses (which average batches, so not to the last digit)."""
    unseen = _bench_module("book_model_unseen")
    result = json.loads(unseen.RESULTS.read_text())
    recipe = zoo.pretrained_recipe("book")
    train_ids = set(zoo.recipe_loaders(recipe)[0].dataset.ids.tolist())
    assert result["never_seen_types"] == recipe.model.vocab_size - len(train_ids)
    held_out = json.loads((zoo.shipped_dir("book") / zoo.HELD_OUT_NAME).read_text())["model"]
    assert set(result["sources"]) == set(held_out)
    for source, r in result["sources"].items():
        targets = _held_out_targets(recipe, source)
        assert (r["tokens"], r["unseen_tokens"]) == (
            len(targets),
            sum(t not in train_ids for t in targets),
        )
        assert r["mean"] == pytest.approx(held_out[source], abs=0.03)
