"""The small-model zoo: train once, cache under a key that hashes the recipe, load identically.

Every test registers a TINY recipe (one block, 16 wide, a few steps on a short text written
here), so the real training path runs in well under a second.
"""

import dataclasses

import pytest
import torch

import mygpt  # imported first: the tokenizer module reads MYGPT_DATA_DIR once, at import
from mygpt import zoo
from mygpt.checkpoint import model_state
from mygpt.config import GPTConfig
from mygpt.errors import CheckpointError, ConfigError
from mygpt.training import TrainConfig

TOY_TEXT = "".join(
    f"Line {i}: the {w} sat on the mat, and the {w} said {i * 7 % 13} words.\n"
    for i, w in enumerate(["cat", "dog", "bird", "fox", "owl", "hen"] * 8)
)


def tiny_recipe(**train_changes) -> zoo.Recipe:
    return zoo.Recipe(
        model=GPTConfig(
            vocab_size=50257, context_length=16, n_embd=16, n_layer=1, n_head=2, dropout=0.1
        ),  # dropout on: its masks must be seeded too
        train=TrainConfig(
            **dict(
                dict(max_steps=4, lr=1e-3, warmup_steps=1, eval_every=2, eval_batches=1, log=False),
                **train_changes,
            )
        ),
        data="zoo-toy",
        batch_size=2,
        description="a test model",
    )


@pytest.fixture
def tiny_zoo(private_data, monkeypatch):
    """A private cache, the toy text registered as a data file, and 'tiny' in the zoo.

    Returns a list that records every recipe actually trained (the real training still runs).
    """
    private_data("zoo-toy", TOY_TEXT)
    monkeypatch.setitem(zoo.ZOO, "tiny", tiny_recipe())
    trained = []
    real_train_recipe = zoo.train_recipe

    def recording_train_recipe(recipe, **kwargs):
        trained.append(recipe)
        return real_train_recipe(recipe, **kwargs)

    monkeypatch.setattr(zoo, "train_recipe", recording_train_recipe)
    return trained


def weights(model) -> dict[str, torch.Tensor]:
    return model_state(model)


def assert_same_weights(a, b) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


def test_first_call_trains_and_caches_then_second_loads(tiny_zoo, tmp_path):
    first = mygpt.small_pretrained("tiny", verbose=False)
    assert len(tiny_zoo) == 1
    directory = zoo.model_dir("tiny")
    assert directory.parent == tmp_path / "cache" / "models"
    assert directory.name == f"tiny-{zoo.ZOO['tiny'].key()}"
    names = {p.name for p in directory.iterdir()}
    assert names == {"model.safetensors", "config.json", "history.json", "recipe.json"}
    assert not [p for p in directory.parent.iterdir() if p.name.startswith(".")]  # no temp left

    second = mygpt.small_pretrained("tiny", verbose=False)
    assert len(tiny_zoo) == 1  # loaded, not trained again
    assert_same_weights(first, second)
    assert not first.training and not second.training
    assert second.config == zoo.ZOO["tiny"].model


def test_printed_line_is_the_same_when_trained_and_when_loaded(tiny_zoo, capsys):
    mygpt.small_pretrained("tiny")
    trained_out = capsys.readouterr()
    mygpt.small_pretrained("tiny")
    loaded_out = capsys.readouterr()
    assert len(tiny_zoo) == 1
    assert trained_out == loaded_out
    assert trained_out.out.startswith("tiny: ") and trained_out.out.count("\n") == 1
    assert trained_out.err == ""


def test_changed_recipe_gets_a_new_key_and_is_trained(tiny_zoo, monkeypatch):
    mygpt.small_pretrained("tiny", verbose=False)
    old_dir = zoo.model_dir("tiny")

    # The description is for humans only: same key, nothing retrained.
    monkeypatch.setitem(
        zoo.ZOO, "tiny", dataclasses.replace(zoo.ZOO["tiny"], description="renamed")
    )
    assert zoo.model_dir("tiny") == old_dir

    monkeypatch.setitem(zoo.ZOO, "tiny", tiny_recipe(lr=2e-3))
    new_dir = zoo.model_dir("tiny")
    assert new_dir != old_dir and new_dir.parent == old_dir.parent
    changed = mygpt.small_pretrained("tiny", verbose=False)
    assert len(tiny_zoo) == 2 and new_dir.is_dir() and old_dir.is_dir()
    assert changed.config == tiny_recipe().model


@pytest.mark.parametrize(
    "change",
    [
        dict(train=TrainConfig(max_steps=5, log=False)),
        dict(model=GPTConfig(vocab_size=50257, context_length=16, n_embd=16, n_layer=2, n_head=2)),
        dict(seed=124),
        dict(batch_size=3),
        dict(train_frac=0.8),
        dict(data="the-verdict"),
        dict(threads=1),
    ],
)
def test_every_part_of_the_recipe_is_in_the_key(tiny_zoo, change):
    base = tiny_recipe()
    assert dataclasses.replace(base, **change).key() != base.key()


def test_two_fresh_trainings_give_identical_weights_and_history(tiny_zoo):
    model_a, history_a = zoo.train_recipe(zoo.ZOO["tiny"])
    model_b, history_b = zoo.train_recipe(zoo.ZOO["tiny"])
    assert_same_weights(model_a, model_b)
    assert history_a == history_b
    assert history_a.step == [2, 4]


def test_neither_path_changes_the_callers_random_state_or_threads(tiny_zoo, monkeypatch):
    monkeypatch.setitem(zoo.ZOO, "tiny", dataclasses.replace(zoo.ZOO["tiny"], threads=1))
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(3)  # differs from the recipe's 1
        for _ in range(2):  # first trains, second loads
            before = torch.get_rng_state()
            mygpt.small_pretrained("tiny", verbose=False)
            assert torch.equal(torch.get_rng_state(), before)
            assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(threads)
    assert len(tiny_zoo) == 1


def test_history_is_the_training_record(tiny_zoo):
    history = zoo.pretrained_history("tiny")
    assert len(tiny_zoo) == 1
    assert history.step == [2, 4]
    assert history.tokens == [2 * 2 * 16, 4 * 2 * 16]  # steps x batch x context
    assert all(v == v for v in history.val_loss)  # a validation loss was measured (not NaN)
    mygpt.small_pretrained("tiny", verbose=False)
    assert len(tiny_zoo) == 1  # the history call already trained and cached it


def test_model_goes_to_the_requested_device(tiny_zoo):
    model = mygpt.small_pretrained("tiny", device="cpu", verbose=False)
    assert next(model.parameters()).device == torch.device("cpu")


def test_unknown_name_lists_the_known_ones(tiny_zoo):
    with pytest.raises(ConfigError, match="shakespeare-small"):
        mygpt.small_pretrained("no-such-model")


def test_damaged_cache_says_how_to_recover(tiny_zoo):
    mygpt.small_pretrained("tiny", verbose=False)
    directory = zoo.model_dir("tiny")
    (directory / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="Delete .* to train the model again"):
        mygpt.small_pretrained("tiny", verbose=False)


def test_the_book_model_is_shipped_and_loads_without_training(tmp_path, monkeypatch) -> None:
    """The chapters start from the shipped weights: the same numbers on every machine."""
    import mygpt
    from mygpt import zoo

    shipped = zoo.shipped_dir("shakespeare-small")
    assert shipped is not None, "mygpt/models/shakespeare-small is missing or not of this recipe"
    monkeypatch.setenv("MYGPT_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(
        zoo, "train_recipe", lambda recipe: pytest.fail("trained instead of loading")
    )
    model = mygpt.small_pretrained(verbose=False)
    assert not any(tmp_path.iterdir())  # nothing trained or cached
    assert model.num_parameters() == zoo.pretrained_recipe().model.num_parameters()
    assert zoo.pretrained_history().val_loss[-1] < 6.1


def test_a_changed_recipe_does_not_use_the_shipped_weights(monkeypatch) -> None:
    import dataclasses

    from mygpt import zoo

    changed = dataclasses.replace(zoo.ZOO["shakespeare-small"], seed=7)
    monkeypatch.setitem(zoo.ZOO, "shakespeare-small", changed)
    assert zoo.shipped_dir("shakespeare-small") is None
