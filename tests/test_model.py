import pytest
import torch

from mygpt.attention import attention_explicit, attention_fused, causal_mask
from mygpt.config import GPTConfig
from mygpt.errors import PromptError
from mygpt.model import GPT


def test_gpt2_124m_parameter_counts():
    with torch.device("meta"):  # counts need shapes only, not 500 MB of memory
        tied = GPT(GPTConfig.from_name("gpt2"))
        untied = GPT(GPTConfig.from_name("gpt2", tie_weights=False))
    assert tied.num_parameters() == 124_439_808
    assert untied.num_parameters() == 124_439_808 + 50257 * 768
    assert tied.lm_head.weight is tied.tok_emb.weight
    assert untied.lm_head.weight is not untied.tok_emb.weight


def test_explicit_and_fused_attention_functions_agree():
    q, k, v = torch.randn(3, 2, 4, 7, 16).unbind(0)
    mask = causal_mask(7, 7)
    torch.testing.assert_close(
        attention_explicit(q, k, v, mask), attention_fused(q, k, v, is_causal=True)
    )
    torch.testing.assert_close(
        attention_explicit(q, k, v, mask), attention_fused(q, k, v, mask=mask)
    )


def test_explicit_and_fused_models_agree(tiny_cfg):
    fused = GPT(tiny_cfg).eval()
    explicit = GPT(tiny_cfg.replace(attn_impl="explicit")).eval()
    explicit.load_state_dict(fused.state_dict())
    idx = torch.randint(0, tiny_cfg.vocab_size, (2, 20))
    torch.testing.assert_close(fused(idx), explicit(idx), atol=1e-5, rtol=1e-5)


def test_causality_future_tokens_do_not_change_past_logits(tiny_cfg):
    model = GPT(tiny_cfg).eval()
    idx = torch.randint(0, tiny_cfg.vocab_size, (1, 12))
    changed = idx.clone()
    changed[0, 8:] = (changed[0, 8:] + 1) % tiny_cfg.vocab_size
    torch.testing.assert_close(model(idx)[:, :8], model(changed)[:, :8])
    assert not torch.allclose(model(idx)[:, 8:], model(changed)[:, 8:])


def test_kv_cache_forward_matches_full_forward(tiny_cfg):
    for impl in ("fused", "explicit"):
        model = GPT(tiny_cfg.replace(attn_impl=impl)).eval()
        idx = torch.randint(0, tiny_cfg.vocab_size, (2, 15))
        full = model(idx)
        cache = model.new_kv_cache(2)
        parts = [model(idx[:, :6], kv_cache=cache), model(idx[:, 6:11], kv_cache=cache)]
        parts += [model(idx[:, t : t + 1], kv_cache=cache) for t in range(11, 15)]
        torch.testing.assert_close(torch.cat(parts, dim=1), full, atol=1e-5, rtol=1e-5)


def test_last_only_returns_last_position(tiny_cfg):
    model = GPT(tiny_cfg).eval()
    idx = torch.randint(0, tiny_cfg.vocab_size, (2, 9))
    torch.testing.assert_close(model(idx, last_only=True), model(idx)[:, -1:])


def test_too_long_input_is_a_clear_error(tiny_cfg):
    model = GPT(tiny_cfg)
    with pytest.raises(PromptError, match="longer than the model's context of 32"):
        model(torch.zeros(1, 33, dtype=torch.long))


def test_forward_is_the_lm_head_on_hidden(tiny_cfg):
    torch.manual_seed(0)
    model = GPT(tiny_cfg).eval()
    idx = torch.randint(0, tiny_cfg.vocab_size, (2, 9))
    hidden = model.hidden(idx)
    assert hidden.shape == (2, 9, tiny_cfg.n_embd)
    assert torch.equal(model.lm_head(hidden), model(idx))
    assert torch.equal(model.lm_head(model.hidden(idx, last_only=True)), model(idx, last_only=True))
    at = torch.rand(2, 9, generator=torch.Generator().manual_seed(1)) < 0.5
    assert torch.equal(model.lm_head(model.hidden(idx, at=at)), model(idx, logits_at=at))
    torch.testing.assert_close(model.hidden(idx, at=at), hidden[at])


def test_padding_mask_and_attention_mask():
    from mygpt.attention import attention_mask_for, padding_mask

    lengths = torch.tensor([2, 4, 0])
    assert padding_mask(lengths, 4).int().tolist() == [[1, 1, 0, 0], [1, 1, 1, 1], [0, 0, 0, 0]]
    left = padding_mask(lengths, 4, left=True).int().tolist()
    assert left == [[0, 0, 1, 1], [1, 1, 1, 1], [0, 0, 0, 0]]
    assert attention_mask_for(5, 5) is None and attention_mask_for(1, 5) is None
    assert torch.equal(attention_mask_for(2, 5), causal_mask(2, 5)[None, None])
    mask = attention_mask_for(3, 3, padding_mask(torch.tensor([2]), 3, left=True))
    # the padding query (position 0) sees only itself; the real ones skip the padding key
    assert mask.int().tolist() == [[[[1, 0, 0], [0, 1, 0], [0, 1, 1]]]]
