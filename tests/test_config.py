import pytest
import torch

import mygpt.model as model_module
from mygpt.config import PRESETS, GPTConfig
from mygpt.errors import ConfigError, MyGPTError
from mygpt.model import GPT


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(n_embd=100, n_head=3), "divisible by n_head"),
        (dict(n_layer=0), "n_layer must be a positive integer"),
        (dict(n_head=-1), "n_head must be a positive integer"),
        (dict(dropout=-0.1), "dropout must be in [0, 1)"),
        (dict(dropout=1.0), "dropout must be in [0, 1)"),
        (dict(vocab_size=2.5), "vocab_size must be a positive integer"),
        (dict(attn_impl="flash"), "attn_impl must be one of"),
    ],
)
def test_invalid_configs_name_the_field(kwargs, words):
    with pytest.raises(ConfigError) as e:
        GPTConfig(**kwargs)
    assert words in str(e.value)
    assert isinstance(e.value, (MyGPTError, ValueError))


def test_presets_match_gpt2_sizes():
    sizes = {name: (c.n_layer, c.n_embd, c.n_head) for name, c in PRESETS.items()}
    assert sizes == {
        "gpt2": (12, 768, 12),
        "gpt2-medium": (24, 1024, 16),
        "gpt2-large": (36, 1280, 20),
        "gpt2-xl": (48, 1600, 25),
    }


def test_from_name_aliases_and_unknown_name_lists_valid_ones():
    assert GPTConfig.from_name("124M") == PRESETS["gpt2"]
    assert GPTConfig.from_name("gpt2", dropout=0.1).dropout == 0.1
    with pytest.raises(ConfigError, match="gpt2-medium"):
        GPTConfig.from_name("gpt3")


def test_round_trip_and_replace_validate():
    cfg = GPTConfig(n_layer=2)
    assert GPTConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError):
        cfg.replace(n_head=5)
    with pytest.raises(ConfigError, match="no field"):
        cfg.replace(heads=4)
    with pytest.raises(ConfigError, match="Unknown GPTConfig field"):
        GPTConfig.from_dict({"n_layers": 3})


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(bias="no"), "GPTConfig.bias must be True or False, got 'no'"),
        (dict(tie_weights="False"), "GPTConfig.tie_weights must be True or False, got 'False'"),
        (dict(tie_weights=0), "GPTConfig.tie_weights must be True or False"),
        (dict(ln_eps="1e-5"), "GPTConfig.ln_eps must be a finite positive number, got '1e-5'"),
        (dict(ln_eps=float("inf")), "GPTConfig.ln_eps must be a finite positive number, got inf"),
        (dict(ln_eps=float("nan")), "GPTConfig.ln_eps must be a finite positive number"),
        (dict(ln_eps=True), "GPTConfig.ln_eps must be a finite positive number"),
        (dict(ln_eps=0.0), "GPTConfig.ln_eps must be a finite positive number"),
        (dict(dropout="0.1"), "GPTConfig.dropout must be in [0, 1)"),
        (dict(dropout=True), "GPTConfig.dropout must be in [0, 1)"),
        (dict(dropout=float("nan")), "GPTConfig.dropout must be in [0, 1)"),
        (dict(attn_impl=["fused"]), "GPTConfig.attn_impl must be one of"),
    ],
)
def test_fields_must_have_their_types(kwargs, words):
    """A string is not a bool ("no" is truthy: it would have meant yes), nor a number."""
    with pytest.raises(ConfigError) as e:
        GPTConfig(**kwargs)
    assert words in str(e.value)


def test_ints_and_floats_from_json_are_accepted():
    cfg = GPTConfig(dropout=0, ln_eps=1, bias=False, tie_weights=False)
    assert (cfg.dropout, cfg.ln_eps, cfg.bias, cfg.tie_weights) == (0, 1, False, False)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(vocab_size=97, context_length=32, n_embd=32, n_layer=2, n_head=4),
        dict(vocab_size=97, context_length=32, n_embd=32, n_layer=2, n_head=4, bias=False),
        dict(vocab_size=97, context_length=32, n_embd=32, n_layer=3, n_head=4, tie_weights=False),
        dict(
            vocab_size=50,
            context_length=7,
            n_embd=12,
            n_layer=1,
            n_head=3,
            bias=False,
            tie_weights=False,
        ),
    ],
)
def test_num_parameters_is_computed_from_the_config_alone(kwargs):
    cfg = GPTConfig(**kwargs)
    assert cfg.num_parameters() == GPT(cfg).num_parameters()


def test_gpt2_sizes_are_counted_without_building_them():
    counts = {name: round(c.num_parameters() / 1e6) for name, c in PRESETS.items()}
    assert counts == {"gpt2": 124, "gpt2-medium": 355, "gpt2-large": 774, "gpt2-xl": 1558}


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(context_length=10**12),
        dict(n_embd=10**7, n_head=1),
        dict(vocab_size=10**13),
        dict(n_layer=10**9),
    ],
)
def test_absurd_sizes_are_refused_before_anything_is_allocated(kwargs):
    with pytest.raises(ConfigError, match="parameters"):
        GPTConfig(**kwargs)


def test_a_model_larger_than_memory_is_refused_before_allocating(monkeypatch):
    """Within the fixed ceiling, but larger than this machine's memory: a ConfigError naming
    the size, not an allocator error (or the out-of-memory killer) half-way through."""
    monkeypatch.setattr(
        model_module, "_memory_bytes", lambda device: 2 * 1024**3
    )  # a 2 GiB machine
    with pytest.raises(
        ConfigError, match=r"1,557,611,200 parameters \(5\.8 GiB in float32\).*2\.0 GiB"
    ):
        GPT(PRESETS["gpt2-xl"])


def test_huge_models_can_still_be_built_on_the_meta_device():
    with torch.device("meta"):
        model = GPT(PRESETS["gpt2-xl"].replace(context_length=2**20))
    assert model.num_parameters() == model.config.num_parameters()
