import pytest

from mygpt.config import PRESETS, GPTConfig
from mygpt.errors import ConfigError, MyGPTError


@pytest.mark.parametrize("kwargs, words", [
    (dict(n_embd=100, n_head=3), "divisible by n_head"),
    (dict(n_layer=0), "n_layer must be a positive integer"),
    (dict(n_head=-1), "n_head must be a positive integer"),
    (dict(dropout=-0.1), "dropout must be in [0, 1)"),
    (dict(dropout=1.0), "dropout must be in [0, 1)"),
    (dict(vocab_size=2.5), "vocab_size must be a positive integer"),
    (dict(attn_impl="flash"), "attn_impl must be one of"),
])
def test_invalid_configs_name_the_field(kwargs, words):
    with pytest.raises(ConfigError) as e:
        GPTConfig(**kwargs)
    assert words in str(e.value)
    assert isinstance(e.value, (MyGPTError, ValueError))


def test_presets_match_gpt2_sizes():
    sizes = {name: (c.n_layer, c.n_embd, c.n_head) for name, c in PRESETS.items()}
    assert sizes == {"gpt2": (12, 768, 12), "gpt2-medium": (24, 1024, 16),
                     "gpt2-large": (36, 1280, 20), "gpt2-xl": (48, 1600, 25)}


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
