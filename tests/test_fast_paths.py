"""Every fast path computes what the plain one computes.

The plain paths are the book's: ``nn.Linear`` layers in fp32, a KV cache, explicit attention.
The fast ones are ``optimize_for_inference``'s copies (oneDNN-prepacked fp32, bfloat16, int8
weight-only) and the decoding loop's sized, uninitialised KV cache.
"""

import pytest
import torch
from torch import nn

from mygpt.errors import ConfigError
from mygpt.generation import generate
from mygpt.inference import (
    _INT8_KERNEL_WORKS,
    WEIGHT_FORMATS,
    ExactMaxLinear,
    Int8Linear,
    _int8_kernel_works,
    _onednn_ok,
    optimize_for_inference,
    weight_bytes_per_token,
)
from mygpt.model import GPT


@pytest.fixture
def model(tiny_cfg):
    return GPT(tiny_cfg).eval()


def _linear_layers(model):
    return [m for m in model.modules() if type(m) is nn.Linear]


def test_prepared_copy_leaves_the_original_untouched(model):
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for weights in WEIGHT_FORMATS:
        fast = optimize_for_inference(model, weights)
        assert not fast.training
        # int8 always replaces every linear layer; fp32 and bf16 do where oneDNN can prepack that
        # dtype on this CPU (bf16 needs AVX-512 BF16 or AMX), and otherwise keep nn.Linear.
        dtype = torch.bfloat16 if weights == "bf16" else torch.float32
        if weights == "int8" or _onednn_ok(torch.device("cpu"), dtype):
            assert not _linear_layers(fast)
        else:
            assert all(m.weight.dtype == dtype for m in _linear_layers(fast))
    assert len(_linear_layers(model)) == 4 * model.config.n_layer + 1
    assert model.lm_head.weight is model.tok_emb.weight  # still tied
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_fp32_fast_path_gives_the_same_logits_and_tokens(model, tiny_cfg):
    fast = optimize_for_inference(model, "fp32")
    idx = torch.randint(0, tiny_cfg.vocab_size, (3, 20))
    with torch.inference_mode():
        torch.testing.assert_close(fast(idx), model(idx), atol=1e-5, rtol=1e-5)
    # Prompts of different lengths (padding masks), batch 1 and 3, past the context (sliding window).
    prompts = [[1, 2, 3], [4, 5, 6, 7, 8, 9], [10]]
    assert torch.equal(generate(fast, prompts, 40), generate(model, prompts, 40))
    assert torch.equal(generate(fast, idx[:1, :5], 12), generate(model, idx[:1, :5], 12))


def test_bf16_fast_path_stays_close(model, tiny_cfg):
    fast = optimize_for_inference(model, "bf16")
    assert fast.tok_emb.weight.dtype == torch.bfloat16
    idx = torch.randint(0, tiny_cfg.vocab_size, (2, 16))
    with torch.inference_mode():
        ref, got = model(idx), fast(idx).float()
    # bfloat16 keeps 8 significant bits: errors of a few parts in a thousand of the logits' scale.
    assert (got - ref).abs().max() < 0.05 * ref.abs().max()
    out = generate(fast, idx, 5)
    assert out.shape == (2, 21) and torch.equal(out[:, :16], idx)


def test_int8_layer_quantises_each_row_to_within_half_a_step():
    torch.manual_seed(1)
    linear = nn.Linear(64, 24)
    q = Int8Linear(linear)
    assert q.weight_int8.dtype == torch.int8 and q.scale.shape == (24,)
    err = (q.dequantized_weight() - linear.weight).abs()
    assert (err <= q.scale[:, None] / 2 + 1e-7).all()
    assert (
        q.weight_int8.abs().amax(dim=1) == 127
    ).all()  # each row's largest weight uses the range


@pytest.mark.parametrize("kernel", [True, False])
def test_int8_layer_equals_linear_with_its_dequantised_weight(kernel):
    torch.manual_seed(2)
    linear = nn.Linear(64, 24)
    q = Int8Linear(linear)
    x = torch.randn(2, 5, 64)
    expected = nn.functional.linear(x, q.dequantized_weight(), linear.bias)
    if kernel and not _int8_kernel_works(x.device):
        pytest.skip("this PyTorch build has no weight-only int8 kernel for the CPU")
    saved = dict(_INT8_KERNEL_WORKS)
    try:
        if not kernel:
            _INT8_KERNEL_WORKS["cpu"] = False  # take the portable fallback path
        with torch.inference_mode():
            got = q(x)
    finally:
        _INT8_KERNEL_WORKS.clear()
        _INT8_KERNEL_WORKS.update(saved)
    assert got.shape == (2, 5, 24) and got.dtype == torch.float32
    # The kernel rounds activations to bfloat16 (8 significant bits); the fallback does not.
    tol = 2e-2 if kernel else 1e-5
    torch.testing.assert_close(got, expected, atol=tol * expected.abs().max().item(), rtol=0)


def test_int8_model_generates_from_the_same_logits_up_to_quantisation(model, tiny_cfg):
    fast = optimize_for_inference(model, "int8")
    idx = torch.randint(0, tiny_cfg.vocab_size, (2, 16))
    with torch.inference_mode():
        ref, got = model(idx), fast(idx)
    assert got.dtype == torch.float32
    assert (got - ref).abs().max() < 0.05 * ref.abs().max()
    assert torch.equal(
        generate(fast, idx, 6, use_cache=True), generate(fast, idx, 6, use_cache=False)
    )


def test_exact_max_head_keeps_the_largest_logit_and_greedy_tokens(model, tiny_cfg):
    fast = optimize_for_inference(model, "fp32", exact_max_head=True)
    head = fast.lm_head
    assert isinstance(head, ExactMaxLinear)
    torch.manual_seed(3)
    for scale in (0.1, 1.0, 30.0):
        x = torch.randn(5, tiny_cfg.n_embd) * scale
        with torch.inference_mode():
            exact = nn.functional.linear(x, model.lm_head.weight)
            est = head.approx(x).float()
            got = head(x)
        # The error bound (before its safety factor of 2) holds for every estimate ...
        bound = (
            head.approx.scale[None, :] * x.abs().sum(-1, keepdim=True) * (0.5 + 127 / 2**9)
            + est.abs() / 2**8
        )
        assert ((est - exact).abs() <= bound).all()
        # ... so the largest logit is exact and in the same place; the others are estimates.
        assert torch.equal(got.argmax(-1), exact.argmax(-1))
        torch.testing.assert_close(got.amax(-1), exact.amax(-1), atol=1e-5, rtol=1e-5)
        assert ((got - exact).abs() <= 2 * bound).all()
    prompts = [[1, 2, 3], [4, 5, 6, 7, 8, 9], [10]]
    assert torch.equal(generate(fast, prompts, 40), generate(model, prompts, 40))
    with pytest.raises(ConfigError, match="exact_max_head=True needs weights='fp32'"):
        optimize_for_inference(model, "int8", exact_max_head=True)


def test_weight_bytes_per_token_counts_what_a_decoding_step_reads(model, tiny_cfg):
    C, V, ctx = tiny_cfg.n_embd, tiny_cfg.vocab_size, tiny_cfg.context_length
    # All parameters in fp32, the tied output matrix once, the position table as one row.
    fp32 = 4 * (model.num_parameters() - ctx * C + C)
    assert weight_bytes_per_token(model) == fp32
    assert weight_bytes_per_token(optimize_for_inference(model, "fp32")) == fp32
    assert weight_bytes_per_token(optimize_for_inference(model, "bf16")) == fp32 // 2
    int8 = optimize_for_inference(model, "int8")
    linear_weights = tiny_cfg.n_layer * 12 * C * C + V * C
    expected = (
        linear_weights  # one byte each
        + 4 * sum(m.out_features for m in int8.modules() if isinstance(m, Int8Linear))  # scales
        + fp32
        - 4 * linear_weights  # everything else stays fp32
        + 4 * C
    )  # the embedding's row is now read apart from the output layer's copy
    assert weight_bytes_per_token(int8) == expected
    # The exact-max head reads its int8 copy and scales (and fp32 rows for a few candidates).
    head = optimize_for_inference(model, "fp32", exact_max_head=True)
    assert weight_bytes_per_token(head) == fp32 - 4 * V * C + V * C + 4 * V + 4 * C


def test_unknown_weight_format_is_named(model):
    with pytest.raises(ConfigError, match="weights must be one of"):
        optimize_for_inference(model, "int4")


def test_kv_cache_is_sized_to_the_call_and_still_matches_recompute(model, tiny_cfg):
    # 5 + 10 tokens fit the 32-token context: the cache holds 15 positions, not 32.
    idx = torch.randint(0, tiny_cfg.vocab_size, (2, 5))
    cache = model.new_kv_cache(2, 15)
    assert cache.k.shape[3] == 15
    assert torch.equal(generate(model, idx, 10), generate(model, idx, 10, use_cache=False))
    assert torch.equal(generate(model, idx, 0), idx)
