"""The sweep harness: cached by spec, re-run on change, divergence recorded, deterministic.

Every test runs a TINY spec (one block, 16 wide, a handful of steps on a short text registered
here) through the real training path, with a private cache directory.
"""

import math

import pytest
import torch

import mygpt  # noqa: F401  (imported first, like the other tests: reads the environment once)
from mygpt import experiments as ex
from mygpt.config import GPTConfig
from mygpt.errors import ConfigError

TOY_TEXT = "".join(
    f"Line {i}: the {w} sat on the mat, and the {w} said {i * 7 % 13} words.\n"
    for i, w in enumerate(["cat", "dog", "bird", "fox", "owl", "hen"] * 8)
)


@pytest.fixture
def toy(private_data) -> ex.ExperimentSpec:
    """A private cache, the toy text as a registered data file, and a tiny spec on it."""
    private_data("exp-toy", TOY_TEXT)
    return ex.ExperimentSpec(
        model=GPTConfig(vocab_size=256, context_length=16, n_embd=16, n_layer=1, n_head=2),
        lr=1e-2,
        warmup_steps=1,
        token_budget=6 * 64,
        tokens_per_step=64,
        eval_points=3,
        eval_tokens=64,
        data="exp-toy",
        seed=0,
    )


def test_cache_hit_returns_identical_result_without_training(toy):
    before = ex.TRAIN_CALLS
    first = ex.run_experiment(toy)
    assert ex.TRAIN_CALLS == before + 1
    path = ex.experiments_dir() / f"{toy.key()}.json"
    assert path.is_file()
    mtime = path.stat().st_mtime_ns
    again = ex.run_experiment(toy)
    assert ex.TRAIN_CALLS == before + 1  # nothing trained
    assert path.stat().st_mtime_ns == mtime  # nothing rewritten
    assert again == first  # the whole curve, exactly (floats survive the JSON round trip)
    assert len(first.history.val_loss) == 3 and first.history.step[-1] == toy.steps
    assert not first.diverged and first.final_val_loss < math.log(256)


def test_changed_spec_trains_again(toy):
    ex.run_experiment(toy)
    before = ex.TRAIN_CALLS
    other = toy.replace(lr=3e-3)
    assert other.key() != toy.key()
    result = ex.run_experiment(other)
    assert ex.TRAIN_CALLS == before + 1
    assert result.spec["lr"] == 3e-3
    assert result.history.val_loss != ex.run_experiment(toy).history.val_loss
    assert ex.TRAIN_CALLS == before + 1  # the first spec still came from the cache


def test_sweep_shares_runs_with_equal_specs(toy):
    before = ex.TRAIN_CALLS
    results = ex.sweep(toy, "n_head", [1, 2, 4])
    assert [r.spec["model"]["n_head"] for r in results] == [1, 2, 4]
    assert ex.TRAIN_CALLS == before + 3
    again = ex.sweep(toy, "weight_decay", [toy.weight_decay])  # the same spec as n_head=2
    assert ex.TRAIN_CALLS == before + 3
    assert again[0] == results[1]
    table = ex.summary_table("n_head", [1, 2, 4], results)
    assert len(table.splitlines()) == 4 and f"{results[2].final_val_loss:9.3f}" in table


def test_deterministic_when_trained_twice(toy):
    a = ex.run_experiment(toy, use_cache=False)
    b = ex.run_experiment(toy, use_cache=False)
    assert a.history == b.history
    other_seed = ex.run_experiment(toy.replace(seed=1), use_cache=False)
    assert other_seed.history.val_loss != a.history.val_loss


def test_nan_loss_is_recorded_as_diverged_not_raised(toy):
    spec = toy.replace(lr=1e30, grad_clip=None, warmup_steps=0)
    result = ex.run_experiment(spec)
    assert result.diverged
    assert "Lower the learning rate" in result.error  # train() stopped with a TrainingError
    cached = ex.run_experiment(spec)
    assert cached == result and cached.diverged


def test_loss_worse_than_uniform_counts_as_diverged(toy):
    # A large learning rate that keeps the loss finite but ends worse than guessing among 256.
    # (Far larger, e.g. 30, and the gradient norm overflows on some CPUs: that is the NaN path.)
    result = ex.run_experiment(toy.replace(lr=3.0, warmup_steps=0))
    assert result.error == ""  # training ran to the end ...
    assert result.final_val_loss > math.log(256)  # ... but ended worse than uniform guessing
    assert result.diverged


def test_corrupt_cache_file_is_retrained(toy):
    first = ex.run_experiment(toy)
    path = ex.experiments_dir() / f"{toy.key()}.json"
    path.write_text("{ truncated")
    before = ex.TRAIN_CALLS
    assert ex.run_experiment(toy) == first
    assert ex.TRAIN_CALLS == before + 1


def test_callers_random_state_is_untouched(toy):
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    ex.run_experiment(toy, use_cache=False)
    assert torch.equal(torch.rand(3), expected)


def test_replace_routes_fields_and_validates(toy):
    s = toy.replace(n_head=4, lr=5e-3, context_length=32)
    assert (s.model.n_head, s.lr, s.model.context_length, s.batch_size) == (4, 5e-3, 32, 2)
    assert s.steps == toy.steps  # a fixed token budget: same steps, same tokens
    with pytest.raises(ConfigError, match="no_such"):
        toy.replace(no_such=1)
    with pytest.raises(ConfigError, match="vocab_size"):
        toy.replace(vocab_size=50257)
    with pytest.raises(ConfigError, match="multiple"):
        toy.replace(context_length=48)  # 64 tokens per step is not whole 48-token windows
    with pytest.raises(ConfigError, match="divisible"):
        toy.replace(n_head=3)


def test_byte_ids_are_utf8_bytes():
    assert ex.byte_ids("Aé").tolist() == [65, 0xC3, 0xA9]


def test_plot_sweep_caps_the_y_axis_for_diverged_runs(toy):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values = [1e-2, 30.0]
    results = ex.sweep(toy.replace(warmup_steps=0), "lr", values)
    assert [r.diverged for r in results] == [False, True]
    fig = ex.plot_sweep("lr", values, results, log_x=True)
    curves, finals = fig.axes
    assert len(curves.lines) == 2 and curves.lines[1].get_linestyle() == "--"
    assert curves.get_ylim()[1] <= math.log(256) + 0.55 < results[1].final_val_loss
    plt.close(fig)


def _valid_cache(toy) -> tuple:
    """A cached result of ``toy`` (trained once) and its file's path and parsed content."""
    import json

    first = ex.run_experiment(toy)
    path = ex.experiments_dir() / f"{toy.key()}.json"
    return first, path, json.loads(path.read_text())


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: {**d, "history": {}},  # valid JSON, empty curve: final loss would be nan
        lambda d: {
            **d,
            "history": {**d["history"], "val_loss": ["x"] * len(d["history"]["val_loss"])},
        },
        lambda d: {**d, "history": {**d["history"], "val_loss": d["history"]["val_loss"][:-1]}},
        lambda d: {**d, "history": {**d["history"], "step": [True] * len(d["history"]["step"])}},
        lambda d: {**d, "history": {**d["history"], "extra": []}},
        lambda d: {**d, "history": {k: v[:-1] for k, v in d["history"].items()}},  # not finished
        lambda d: {**d, "diverged": "no"},
        lambda d: {**d, "diverged": True},  # contradicts the curve
        lambda d: {**d, "error": 3},
        lambda d: {**d, "spec": {**d["spec"], "lr": 123.0}},  # a result of another spec
        lambda d: [d],
        lambda d: "a string",
        lambda d: None,
        lambda d: {k: v for k, v in d.items() if k != "spec"},
    ],
    ids=[
        "empty-history",
        "string-losses",
        "ragged-history",
        "bool-steps",
        "extra-field",
        "unfinished",
        "diverged-string",
        "diverged-contradicts",
        "error-int",
        "other-spec",
        "list",
        "string",
        "null",
        "no-spec",
    ],
)
def test_cache_file_of_the_wrong_shape_is_retrained(toy, damage):
    import json

    first, path, data = _valid_cache(toy)
    path.write_text(json.dumps(damage(data)))
    before = ex.TRAIN_CALLS
    again = ex.run_experiment(toy)
    assert ex.TRAIN_CALLS == before + 1  # a miss: trained again ...
    assert again == first and math.isfinite(again.final_val_loss)
    assert ex.Result.from_json(path.read_text()) == first  # ... and the file overwritten
    assert not list(path.parent.glob(".*"))  # no temporary file left behind


@pytest.mark.parametrize("content", [b"\xff\xfe{not utf-8", b"", b"\x00" * 10])
def test_unreadable_cache_bytes_are_a_miss_not_a_crash(toy, content):
    first, path, _ = _valid_cache(toy)
    path.write_bytes(content)
    before = ex.TRAIN_CALLS
    assert ex.run_experiment(toy) == first
    assert ex.TRAIN_CALLS == before + 1
    assert ex.run_experiment(toy) == first  # the file was rewritten: later calls hit the cache
    assert ex.TRAIN_CALLS == before + 1


def test_from_json_rejects_a_wrong_shape():
    with pytest.raises(ValueError, match="history"):
        ex.Result.from_json(
            '{"spec": {}, "history": {"val_loss": ["x"]}, "diverged": false, "error": ""}'
        )


# --- shipped runs: a result written into the package is read before the cache ----------------


@pytest.fixture
def shipped_dir(tmp_path, monkeypatch):
    directory = tmp_path / "shipped-runs"
    monkeypatch.setattr(ex, "SHIPPED_RUNS_DIR", directory)
    return directory


def test_a_shipped_run_is_used_on_a_machine_that_never_trained_it(toy, shipped_dir):
    before = ex.TRAIN_CALLS
    path = ex.ship_experiment(toy)
    assert ex.TRAIN_CALLS == before + 1 and path == shipped_dir / f"{toy.key()}.json"
    assert ex.is_shipped(toy)
    shipped = ex.Result.from_json(path.read_text(encoding="utf-8"))
    assert shipped.provenance["threads"] == 1 and shipped.provenance["torch"] == torch.__version__
    assert shipped.provenance["seconds"] >= 0 and shipped.provenance["processor"]
    for cached in ex.experiments_dir().glob("*.json"):  # another machine: an empty cache
        cached.unlink()
    again = ex.run_experiment(toy)
    assert ex.TRAIN_CALLS == before + 1  # read from the package, not trained
    assert again == shipped and again.provenance == shipped.provenance
    assert not list(ex.experiments_dir().glob("*.json"))  # and not copied into the cache
    mtime = path.stat().st_mtime_ns
    ex.ship_experiment(toy)  # already shipped: nothing to do
    assert ex.TRAIN_CALLS == before + 1 and path.stat().st_mtime_ns == mtime


def test_a_shipped_file_that_does_not_match_its_spec_is_not_used(toy, shipped_dir):
    other = toy.replace(lr=3e-3)
    shipped_dir.mkdir()
    # other's result filed under toy's key: a stale or misnamed file
    (shipped_dir / f"{toy.key()}.json").write_text(ex.run_experiment(other).to_json())
    assert not ex.is_shipped(toy)
    before = ex.TRAIN_CALLS
    result = ex.run_experiment(toy)
    assert ex.TRAIN_CALLS == before + 1 and result.spec == toy.to_dict()


def test_provenance_is_optional_and_checked():
    plain = '{"spec": {}, "history": %s, "diverged": false, "error": ""%s}'
    history = '{"step": [], "tokens": [], "train_loss": [], "val_loss": [], "lr": []}'
    assert ex.Result.from_json(plain % (history, "")).provenance == {}
    with_it = ex.Result.from_json(plain % (history, ', "provenance": {"seconds": 1.5}'))
    assert with_it.provenance == {"seconds": 1.5}
    with pytest.raises(ValueError, match="provenance"):
        ex.Result.from_json(plain % (history, ', "provenance": 3'))
    with pytest.raises(ValueError, match="exactly"):
        ex.Result.from_json(plain % (history, ', "extra": 1'))


# --- design-choice variants: one change each, from the same initial weights -----------------


def test_variants_change_one_thing_from_the_same_initial_weights(toy):
    torch.manual_seed(0)
    base = ex.build_model(toy)
    x = torch.randint(0, 256, (2, 16))
    for changes in [dict(norm="post"), dict(activation="relu"), dict(positions="none")]:
        torch.manual_seed(0)
        variant = ex.build_model(toy.replace(**changes))
        same = [n for n, p in variant.state_dict().items() if torch.equal(p, base.state_dict()[n])]
        if "positions" in changes:  # only the position table differs: zero, and frozen
            assert set(base.state_dict()) - set(same) == {"pos_emb.weight"}
            assert not variant.pos_emb.weight.any() and not variant.pos_emb.weight.requires_grad
        else:
            assert same == list(base.state_dict())
        assert not torch.allclose(variant(x), base(x))  # and it computes something else


def test_post_ln_block_normalises_after_each_sum(toy):
    torch.manual_seed(0)
    model = ex.build_model(toy.replace(norm="post"))
    block = model.blocks[0]
    assert isinstance(block, ex.PostLNBlock)
    x = torch.randn(2, 16, 16)
    h = block.ln1(x + block.attn(x))
    torch.testing.assert_close(block(x), block.ln2(h + block.mlp(h)))


def test_relu_and_no_positions_do_what_they_say(toy):
    model = ex.build_model(toy.replace(activation="relu"))
    assert all(isinstance(b.mlp.act, torch.nn.ReLU) for b in model.blocks)
    # Without positions, a token's first-layer input is the same wherever it stands.
    model = ex.build_model(toy.replace(positions="none"))
    ids = torch.tensor([[5, 7, 5, 7]])
    x = model.tok_emb(ids) + model.pos_emb(torch.arange(4))
    assert torch.equal(x[0, 0], x[0, 2])


def test_variant_fields_are_validated_and_keyed_only_when_changed(toy):
    assert "norm" not in toy.to_dict() and "positions" not in toy.to_dict()
    post = toy.replace(norm="post")
    assert post.to_dict()["norm"] == "post" and post.key() != toy.key()
    for field, bad in [("norm", "middle"), ("activation", "swish"), ("positions", "rotary")]:
        with pytest.raises(ConfigError, match=field):
            toy.replace(**{field: bad})


def test_a_variant_trains_through_the_harness(toy):
    result = ex.run_experiment(toy.replace(norm="post", activation="relu", positions="none"))
    assert not result.diverged and result.spec["positions"] == "none"


# --- chapter 7's plan (mygpt/results/ch7_sweeps.py) -----------------------------------------


def _ch7_plan():
    import mygpt.results.ch7_sweeps  # importable, so the chapter reads the plan, not a copy

    return mygpt.results.ch7_sweeps


def test_chapter_7_plan_covers_the_knobs_with_three_seeds_each():
    plan = _ch7_plan()
    assert len(plan.SEEDS) >= 3
    changed = {k for settings in plan.SWEEPS.values() for c in settings for k in c}
    for knob in ["n_head", "lr", "warmup_steps", "weight_decay", "context_length", "n_layer",
                 "norm", "tie_weights", "activation", "positions"]:  # fmt: skip
        assert knob in changed, knob
    runs = plan.plan()  # every spec valid (ExperimentSpec checks itself), keys distinct
    assert len({s.key() for s in runs}) == len(runs)
    base_keys = {plan.spec({}, seed).key() for seed in plan.SEEDS}
    assert base_keys <= {s.key() for s in runs}  # the base run is in the plan, once per seed


def test_every_run_of_the_plan_is_shipped():
    # The chapter reads these instead of training; a plan changed without re-running
    # `python mygpt/results/ch7_sweeps.py` fails here first.
    missing = [s for s in _ch7_plan().plan() if not ex.is_shipped(s)]
    assert not missing, f"{len(missing)} runs not shipped, e.g. {missing[0]}"


def test_shipped_runs_say_where_they_ran():
    for spec in _ch7_plan().plan()[:5]:
        result = ex.run_experiment(spec)
        assert {"seconds", "processor", "torch"} <= result.provenance.keys()
        assert result.history.step[-1] == spec.steps


def test_depth_width_settings_have_equal_block_parameters():
    plan = _ch7_plan()
    counts = {
        12 * s["n_layer"] * s["n_embd"] ** 2 for s in plan.SWEEPS["depth-width"]
    }  # weights of attention and feed-forward, biases aside
    assert len(counts) == 1


# --- several seeds per setting ----------------------------------------------------------------


def test_seed_summary_is_the_mean_and_sample_sd_of_the_finished_runs():
    s = ex.SeedSummary((2.0, 2.2, 2.4))
    assert s.mean == pytest.approx(2.2) and s.std == pytest.approx(0.2)  # ddof=1
    assert math.isnan(ex.SeedSummary((2.0,)).std) and math.isnan(ex.SeedSummary(()).mean)
    # pooled over settings: the root of the mean variance
    pooled = ex.pooled_std([s, ex.SeedSummary((1.0, 1.4)), ex.SeedSummary((3.0,))])
    assert pooled == pytest.approx(math.sqrt((0.04 + 0.08) / 2))


def test_sweep_seeds_summaries_table_and_plot(toy):
    settings = [dict(lr=1e-2), dict(lr=1e-3)]
    runs = ex.sweep_seeds(toy, settings, seeds=[0, 1])
    assert [[r.spec["seed"] for r in rs] for rs in runs] == [[0, 1], [0, 1]]
    assert runs[0][0] == ex.run_experiment(toy.replace(lr=1e-2, seed=0))  # the same runs
    summaries = [ex.summarize(rs) for rs in runs]
    assert summaries[0].finals == tuple(r.final_val_loss for r in runs[0])
    table = ex.seed_table(["1e-2", "1e-3"], summaries)
    best = min(range(2), key=lambda i: summaries[i].mean)
    assert table.splitlines()[1 + best].rstrip().endswith("0.0")  # the best is 0 sds above
    fig = ex.plot_seed_sweep(["1e-2", "1e-3"], runs, xlabel="lr")
    assert len(fig.axes) == 2


def test_a_diverged_seed_is_counted_not_averaged(toy):
    good = ex.run_experiment(toy)
    bad = ex.Result(spec={}, history=good.history, diverged=True, error="nan")
    s = ex.summarize([good, bad])
    assert s.finals == (good.final_val_loss,) and s.diverged == 1
    assert "diverged (1 of 1)" in ex.seed_table(["x"], [ex.summarize([bad])])
