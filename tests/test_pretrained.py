"""Loading GPT-2 weights: our model must compute exactly what transformers' GPT-2 computes.

Small random ``transformers.GPT2LMHeadModel`` instances stand in for OpenAI's weights: they are
saved in the real file formats (``save_pretrained``; the Hub cache's own layout), loaded through
``load_pretrained`` and compared logit by logit and token by token with transformers.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from hub_snapshot import prime_hub_cache  # tests/hub_snapshot.py
from huggingface_hub import scan_cache_dir
from safetensors.torch import load_file, save_file

from mygpt.errors import CheckpointError, ConfigError
from mygpt.generation import generate
from mygpt.pretrained import CONV1D_WEIGHTS, HUB_REPOS, NAME_MAP, hub_to_ours, load_pretrained

transformers = pytest.importorskip("transformers")

ROOT = Path(__file__).resolve().parents[1]


def tiny_hf(seed: int = 0, **overrides) -> transformers.GPT2LMHeadModel:
    """A small random GPT-2 in transformers (GPT-2's defaults: gelu_new, eps 1e-5, tied)."""
    torch.manual_seed(seed)
    kw = dict(n_layer=2, n_head=4, n_embd=64, n_positions=64, vocab_size=50257)
    cfg = transformers.GPT2Config(**{**kw, **overrides})
    model = transformers.GPT2LMHeadModel(cfg).eval()
    # Random init gives LayerNorms weight 1 / bias 0 and zero linear biases; randomise them all
    # so that a swapped or untransposed tensor cannot go unnoticed.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "ln_" in name or name.endswith(".bias"):
                p.add_(0.1 * torch.randn_like(p))
    return model


def hf_logits(model, idx: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(idx).logits


def our_logits(model, idx: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(idx)


def token_batches(vocab: int) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return [torch.randint(0, vocab, shape, generator=gen) for shape in [(1, 1), (1, 17), (3, 64)]]


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> tuple[transformers.GPT2LMHeadModel, Path]:
    """The tiny model with GPT-2's vocabulary, written by ``save_pretrained``."""
    model = tiny_hf()
    path = tmp_path_factory.mktemp("gpt2-tiny")
    model.save_pretrained(path)
    return model, path


def rewrite(src: Path, dst: Path, change) -> Path:
    """Copy a saved checkpoint directory, passing its tensors through ``change(dict)``."""
    dst.mkdir(exist_ok=True)
    (dst / "config.json").write_text((src / "config.json").read_text())
    tensors = load_file(src / "model.safetensors")
    change(tensors)
    save_file(tensors, dst / "model.safetensors", metadata={"format": "pt"})
    return dst


# --- the name map -------------------------------------------------------------------------


def test_name_map_translates_every_hub_name_and_transposes_only_conv1d():
    assert hub_to_ours("transformer.wte.weight") == ("tok_emb.weight", False)
    assert hub_to_ours("wpe.weight") == ("pos_emb.weight", False)
    assert hub_to_ours("h.11.attn.c_attn.weight") == ("blocks.11.attn.qkv.weight", True)
    # "c_attn.bias" ends in "attn.bias" like the skipped mask buffer; it must not be skipped.
    assert hub_to_ours("transformer.h.3.attn.c_attn.bias") == ("blocks.3.attn.qkv.bias", False)
    assert hub_to_ours("h.0.mlp.c_proj.weight") == ("blocks.0.mlp.proj.weight", True)
    assert hub_to_ours("h.0.attn.bias") is None
    assert hub_to_ours("transformer.h.2.attn.masked_bias") is None
    with pytest.raises(KeyError):
        hub_to_ours("h.0.attn.q_proj.weight")
    assert len(CONV1D_WEIGHTS) == 4 and CONV1D_WEIGHTS <= set(NAME_MAP)
    assert set(HUB_REPOS) == {"gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl"}


def test_name_map_covers_exactly_our_parameters(saved):
    model = load_pretrained(saved[1])
    ours = {f.format(i=0) for f in NAME_MAP.values()} | {f.format(i=1) for f in NAME_MAP.values()}
    assert set(model.state_dict()) == ours


# --- equality with transformers ------------------------------------------------------------


def test_logits_equal_transformers_after_save_pretrained(saved):
    hf, path = saved
    model = load_pretrained(path)
    cfg = model.config
    assert (cfg.vocab_size, cfg.context_length, cfg.n_embd, cfg.n_layer, cfg.n_head) == (
        50257, 64, 64, 2, 4,
    )  # fmt: skip
    assert model.lm_head.weight is model.tok_emb.weight  # tied, one Parameter
    assert not model.training
    assert all(p.device.type == "cpu" and p.dtype == torch.float32 for p in model.parameters())
    for idx in token_batches(cfg.vocab_size):
        diff = (our_logits(model, idx) - hf_logits(hf, idx)).abs().max().item()
        assert diff <= 1e-4, (idx.shape, diff)


def test_greedy_tokens_equal_transformers_generate(saved):
    hf, path = saved
    model = load_pretrained(path)
    prompt = torch.tensor([[464, 3290, 318, 257, 1332]])  # some GPT-2 token ids
    n_new = 30
    with torch.no_grad():
        expected = hf.generate(
            prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=n_new,
            min_new_tokens=n_new, do_sample=False, pad_token_id=0,
        )  # fmt: skip
    assert expected.shape[1] == prompt.shape[1] + n_new
    ours = generate(model, prompt, n_new, temperature=0.0)
    assert ours.tolist() == expected.tolist()


def test_untied_output_layer_is_loaded_on_its_own(tmp_path):
    hf = tiny_hf(seed=2, vocab_size=300, tie_word_embeddings=False)
    hf.save_pretrained(tmp_path)
    assert "lm_head.weight" in load_file(tmp_path / "model.safetensors")
    model = load_pretrained(tmp_path)
    assert not model.config.tie_weights
    assert model.lm_head.weight is not model.tok_emb.weight
    idx = token_batches(300)[2]
    assert (our_logits(model, idx) - hf_logits(hf, idx)).abs().max() <= 1e-4


def test_single_safetensors_file_in_openai_layout_infers_the_config(tmp_path):
    """The Hub's converted OpenAI files: no "transformer." prefix, mask buffers, no lm_head."""
    hf = tiny_hf(seed=3, n_embd=768, n_head=12, n_layer=2, vocab_size=500, n_positions=32)
    tensors = {k.removeprefix("transformer."): v.contiguous() for k, v in hf.state_dict().items()}
    del tensors["lm_head.weight"]  # tied
    for i in range(2):
        tensors[f"h.{i}.attn.bias"] = torch.tril(torch.ones(32, 32)).view(1, 1, 32, 32)
        tensors[f"h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    path = tmp_path / "gpt2-like.safetensors"
    save_file(tensors, path)
    model = load_pretrained(path)
    cfg = model.config
    assert (cfg.vocab_size, cfg.context_length, cfg.n_embd, cfg.n_layer, cfg.n_head) == (
        500, 32, 768, 2, 12,
    )  # fmt: skip
    assert model.lm_head.weight is model.tok_emb.weight
    idx = torch.randint(0, 500, (2, 32), generator=torch.Generator().manual_seed(4))
    assert (our_logits(model, idx) - hf_logits(hf, idx)).abs().max() <= 1e-4

    # An untied lm_head in a file without config.json: the different matrix unties the model.
    tensors["lm_head.weight"] = torch.randn(500, 768)
    save_file(tensors, path)
    assert not load_pretrained(path).config.tie_weights


def test_single_file_of_unknown_width_asks_for_config_json(saved, tmp_path):
    path = tmp_path / "w64.safetensors"
    save_file(load_file(saved[1] / "model.safetensors"), path)
    with pytest.raises(CheckpointError, match="width 64.*config.json"):
        load_pretrained(path)


def test_dtype_and_device_arguments(saved):
    hf, path = saved
    model = load_pretrained(path, device="cpu", dtype=torch.bfloat16)
    assert all(p.dtype == torch.bfloat16 for p in model.parameters())
    assert model.lm_head.weight is model.tok_emb.weight
    idx = token_batches(50257)[1]
    ours, ref = our_logits(model, idx).float(), hf_logits(hf, idx)
    assert (ours - ref).abs().max() < 0.05  # bfloat16 keeps ~3 significant digits
    assert (ours.argmax(-1) == ref.argmax(-1)).float().mean() > 0.9


# --- strict checks -------------------------------------------------------------------------


def test_missing_tensor_is_named(saved, tmp_path):
    path = rewrite(saved[1], tmp_path, lambda t: t.pop("transformer.h.1.ln_2.bias"))
    with pytest.raises(CheckpointError, match=r"missing tensors: \['h\.1\.ln_2\.bias'\]"):
        load_pretrained(path)


def test_unexpected_tensor_is_named(saved, tmp_path):
    extra = {"transformer.h.0.attn.rotary": torch.zeros(3)}
    path = rewrite(saved[1], tmp_path, lambda t: t.update(extra))
    with pytest.raises(CheckpointError, match=r"unexpected tensors: \[.transformer\.h\.0\.attn"):
        load_pretrained(path)


def test_block_beyond_config_is_unexpected(saved, tmp_path):
    def add_block(t):
        t["transformer.h.2.ln_1.weight"] = t["transformer.h.1.ln_1.weight"].clone()

    with pytest.raises(CheckpointError, match=r"unexpected tensors: \['transformer\.h\.2\.ln_1\."):
        load_pretrained(rewrite(saved[1], tmp_path, add_block))


def test_wrong_shape_is_named_with_expected_and_found(saved, tmp_path):
    def untransposed(t):  # a Conv1D weight stored like nn.Linear: the transpose makes it wrong
        key = "transformer.h.0.mlp.c_fc.weight"
        t[key] = t[key].t().contiguous()

    with pytest.raises(CheckpointError) as err:
        load_pretrained(rewrite(saved[1], tmp_path, untransposed))
    assert "transformer.h.0.mlp.c_fc.weight" in str(err.value)
    assert "expected (256, 64), found (64, 256)" in str(err.value)


def test_tied_config_with_different_lm_head_is_refused(saved, tmp_path):
    head = {"lm_head.weight": torch.zeros(50257, 64)}
    path = rewrite(saved[1], tmp_path, lambda t: t.update(head))
    with pytest.raises(CheckpointError, match="lm_head.weight differs from wte.weight"):
        load_pretrained(path)


@pytest.mark.parametrize("keep", [0.5, 0.999, 8 / 1e9])  # data, header, length prefix cut off
def test_truncated_file_names_the_file(saved, tmp_path, keep):
    data = (saved[1] / "model.safetensors").read_bytes()
    path = tmp_path / "model.safetensors"
    path.write_bytes(data[: max(4, int(len(data) * keep))])
    with pytest.raises(CheckpointError, match=rf"{path}.*(truncated|corrupt)"):
        load_pretrained(tmp_path)


def test_directory_without_safetensors_says_what_to_do(tmp_path):
    (tmp_path / "pytorch_model.bin").write_bytes(b"not read")
    with pytest.raises(CheckpointError, match="no model.safetensors"):
        load_pretrained(tmp_path)


def test_unsupported_variant_in_config_json_is_refused(saved, tmp_path):
    path = rewrite(saved[1], tmp_path, lambda t: None)
    cfg = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**cfg, "activation_function": "relu"}))
    with pytest.raises(CheckpointError, match="activation_function"):
        load_pretrained(path)


def test_unknown_name_lists_valid_names():
    with pytest.raises(ConfigError) as err:
        load_pretrained("gpt3-turbo")
    for name in ("gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl", "124M"):
        assert repr(name) in str(err.value)


# --- the Hub code path, offline, through huggingface_hub's real cache -------------------------


HUB_SCRIPT = textwrap.dedent(
    """
    import json, sys, torch
    from mygpt.errors import CheckpointError
    from mygpt.pretrained import load_pretrained
    commit, local = sys.argv[1], sys.argv[2]
    out = {}
    reference = load_pretrained(local)
    idx = torch.randint(0, 50257, (2, 16), generator=torch.Generator().manual_seed(0))
    for name, revision in [("gpt2", None), ("124M", None), ("openai-community/gpt2", commit)]:
        model = load_pretrained(name, revision=revision)
        with torch.no_grad():
            out[name] = (model(idx) - reference(idx)).abs().max().item()
    for name, revision in [("gpt2-medium", None), ("gpt2", "v9-no-such-branch")]:
        try:
            load_pretrained(name, revision=revision)
            out[f"{name}@{revision}"] = "loaded"
        except CheckpointError as e:
            out[f"{name}@{revision}"] = str(e)
    print(json.dumps(out))
    """
)


@pytest.fixture(scope="module")
def hub_run(saved, tmp_path_factory) -> tuple[dict, Path]:
    """Run the Hub path in a fresh Python with ``HF_HUB_OFFLINE=1`` and a primed ``HF_HUB_CACHE``
    (huggingface_hub reads both when it is imported, so they must be set before that)."""
    cache = tmp_path_factory.mktemp("hf-cache")
    commit = hashlib.sha1(b"mygpt test commit").hexdigest()
    files = {name: saved[1] / name for name in ("config.json", "model.safetensors")}
    prime_hub_cache(cache, "openai-community/gpt2", files, commit)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache), "PYTHONPATH": str(ROOT)}
    run = subprocess.run(
        [sys.executable, "-c", HUB_SCRIPT, commit, str(saved[1])],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout.strip().splitlines()[-1]), cache


def test_primed_cache_has_huggingface_hubs_own_layout(hub_run):
    info = scan_cache_dir(hub_run[1])
    assert not info.warnings
    (repo,) = info.repos
    assert repo.repo_id == "openai-community/gpt2" and set(repo.refs) == {"main"}
    (revision,) = repo.revisions
    assert {f.file_name for f in revision.files} == {"config.json", "model.safetensors"}


def test_hub_name_loads_offline_from_the_cache(hub_run):
    out = hub_run[0]
    for name in ("gpt2", "124M", "openai-community/gpt2"):  # name, alias, repository at a commit
        assert out[name] == 0.0


def test_hub_offline_without_cached_files_raises_clear_error(hub_run):
    for key in ("gpt2-medium@None", "gpt2@v9-no-such-branch"):
        message = hub_run[0][key]
        assert "HF_HUB_OFFLINE" in message, message
        assert "local directory" in message
    assert "openai-community/gpt2-medium" in hub_run[0]["gpt2-medium@None"]


# --- which model the fine-tuning chapters start from ------------------------------------------

BASE_SCRIPT = textwrap.dedent(
    """
    import json
    from mygpt.zoo import fine_tuning_base
    out = {}
    for device in ("cpu", "meta"):  # meta: a device that is not the CPU, as a GPU is
        gpt, name = fine_tuning_base(device)
        out[device] = [name, gpt.config.n_layer, gpt.tok_emb.weight.device.type]
    print(json.dumps(out))
    """
)


def _starting_models(hub_cache: Path) -> tuple[dict, str]:
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_CACHE": str(hub_cache),
        "PYTHONPATH": str(ROOT),
    }
    run = subprocess.run(
        [sys.executable, "-c", BASE_SCRIPT], env=env, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    lines = run.stdout.strip().splitlines()
    return json.loads(lines[-1]), "\n".join(lines[:-1])


def test_fine_tuning_starts_from_gpt2_only_off_the_cpu(hub_run):
    # GPT-2 loads from the cache, yet on the CPU the book's model is chosen, and said why.
    out, printed = _starting_models(hub_run[1])
    assert out["cpu"] == ["book's model", 4, "cpu"]
    assert out["meta"][0] == "GPT-2 124M" and out["meta"][2] == "meta"
    assert out["meta"][1] == tiny_hf().config.n_layer  # the cached checkpoint, not the book's
    assert "On a CPU this chapter starts from the book's model" in printed
    assert "On this meta device this chapter starts from GPT-2 124M." in printed


def test_fine_tuning_without_gpt2_weights_starts_from_the_book_model(tmp_path):
    out, printed = _starting_models(tmp_path)  # an empty Hub cache
    assert out["cpu"][0] == out["meta"][0] == "book's model"
    assert out["meta"][2] == "meta"
    assert "GPT-2's weights cannot be loaded here" in printed
