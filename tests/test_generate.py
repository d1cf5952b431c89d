import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mygpt.errors import PromptError, SamplingError
from mygpt.generation import (
    generate,
    next_token_probs,
    sample_next_token,
    top_k_filter,
    top_p_filter,
)
from mygpt.model import GPT


@pytest.fixture
def model(tiny_cfg):
    return GPT(tiny_cfg).eval()


@pytest.mark.parametrize("impl", ["fused", "explicit"])
def test_kv_cache_generation_equals_recompute(tiny_cfg, impl):
    model = GPT(tiny_cfg.replace(attn_impl=impl)).eval()
    idx = torch.randint(0, tiny_cfg.vocab_size, (3, 5))
    # 40 new tokens run past the 32-token context, exercising the sliding window too.
    assert torch.equal(
        generate(model, idx, 40, use_cache=True), generate(model, idx, 40, use_cache=False)
    )
    sampled = [
        generate(model, idx, 20, temperature=0.9, top_k=10, top_p=0.9, seed=7, use_cache=c)
        for c in (True, False)
    ]
    assert torch.equal(*sampled)


def test_batched_prompts_of_different_lengths_match_one_by_one(model):
    prompts = [[1, 2, 3], [4, 5, 6, 7, 8, 9], [10]]
    batch = generate(model, prompts, 8)
    for row, p in enumerate(prompts):
        assert batch[row, -8:].tolist() == generate(model, [p], 8)[0, -8:].tolist()
    assert torch.equal(batch, generate(model, prompts, 8, use_cache=False))


def test_seeded_sampling_repeats_and_differs_across_seeds(model):
    idx = torch.zeros(1, 1, dtype=torch.long)
    a = generate(model, idx, 30, temperature=1.5, seed=1)
    assert torch.equal(a, generate(model, idx, 30, temperature=1.5, seed=1))
    assert not torch.equal(a, generate(model, idx, 30, temperature=1.5, seed=2))


def test_stop_token_ends_rows_and_pads_them(counting_model):
    idx = torch.tensor([[0], [5]])
    free = generate(counting_model, idx, 6)
    assert free.tolist() == [[0, 1, 2, 3, 4, 5, 6], [5, 6, 7, 8, 9, 10, 11]]  # it counts
    eos = 1  # row 0 emits it first; row 1 never does
    out = generate(counting_model, idx, 6, eos_id=eos)
    assert out[0].tolist() == [0, 1, 1, 1, 1, 1, 1]  # finished at once, padded with the stop token
    assert torch.equal(out[1], free[1])  # the other row runs on, unchanged
    both = generate(counting_model, torch.tensor([[0], [0]]), 6, eos_id=eos)
    assert both.tolist() == [[0, 1], [0, 1]]  # every row finished: generation stops early


def test_temperature_to_zero_equals_greedy(model):
    logits = torch.randn(4, 97) * 3
    greedy = sample_next_token(logits, temperature=0.0)
    cold = sample_next_token(logits, temperature=1e-4, generator=torch.Generator().manual_seed(0))
    assert torch.equal(greedy, cold)


@settings(max_examples=60, deadline=None)
@given(
    k=st.integers(1, 97), p=st.floats(0.01, 1.0), t=st.floats(0.05, 3.0), seed=st.integers(0, 2**31)
)
def test_sampler_never_emits_a_filtered_token(k, p, t, seed):
    logits = torch.randn(3, 97, generator=torch.Generator().manual_seed(seed)) * 4
    kept = torch.isfinite(top_p_filter(top_k_filter(logits / t, k), p))
    assert kept.any(dim=-1).all()  # the most likely token always survives
    assert (kept.sum(dim=-1) <= k).all()
    probs = next_token_probs(logits, t, k, p)
    assert torch.all(probs[~kept] == 0)
    g = torch.Generator().manual_seed(seed)
    for _ in range(5):
        tok = sample_next_token(logits, t, k, p, generator=g)
        assert kept.gather(1, tok).all()


def test_top_p_keeps_smallest_set_reaching_p():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    assert torch.isfinite(top_p_filter(logits, 0.5)).tolist() == [[True, False, False, False]]
    assert torch.isfinite(top_p_filter(logits, 0.79)).tolist() == [[True, True, False, False]]
    assert torch.isfinite(top_p_filter(logits, 0.81)).tolist() == [[True, True, True, False]]


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(temperature=-0.5), "temperature must be a finite number >= 0"),
        (dict(temperature=1.0, top_k=0), "top_k must be an integer in [1, 97]"),
        (dict(temperature=1.0, top_k=98), "top_k must be an integer in [1, 97]"),
        (dict(temperature=1.0, top_p=0.0), "top_p must be in (0, 1]"),
        (dict(temperature=1.0, top_p=1.5), "top_p must be in (0, 1]"),
        (dict(max_new_tokens=-1), "max_new_tokens must be an integer >= 0"),
    ],
)
def test_bad_sampling_parameters_are_named(model, kwargs, words):
    kwargs = {"max_new_tokens": 3, **kwargs}
    with pytest.raises(SamplingError) as e:
        generate(model, torch.zeros(1, 1, dtype=torch.long), **kwargs)
    assert words in str(e.value)


def test_prompt_errors_and_truncation(model):
    with pytest.raises(PromptError, match="empty"):
        generate(model, [[]], 3)
    too_long = torch.zeros(1, 40, dtype=torch.long)
    with pytest.raises(PromptError, match="does not fit the model's context of 32"):
        generate(model, too_long, 3)
    with pytest.warns(UserWarning, match="truncated"):
        out = generate(model, too_long, 3, truncate=True)
    assert out.shape == (1, 31 + 3)


@pytest.mark.parametrize(
    "prompt, words",
    [
        (torch.tensor([[1, 2, 97]]), ["token id 97", "vocabulary of 97"]),  # one past the last id
        (torch.tensor([[5, -1]]), ["token id -1", "vocabulary of 97"]),
        ([[1, 2], [3, 1000]], ["Prompt 1 holds token id 1000", "vocabulary of 97"]),
        (torch.tensor([[1.0, 2.0]]), ["integer token ids", "torch.float32"]),
        ([[1.5, 2]], ["integer token ids", "float"]),
        (torch.tensor([[True, False]]), ["integer token ids", "torch.bool"]),
        (torch.zeros(2, 3, 4, dtype=torch.long), ["[B, T]", "(2, 3, 4)"]),
        (torch.tensor(5), ["[B, T]", "()"]),
        ([[[1, 2]]], ["Prompt 0", "1-D", "(1, 2)"]),
        ([1, 2, 3], ["Prompt 0", "1-D", "[[id, id, ...]]"]),  # a flat list is not a batch
        (["hello"], ["Prompt 0", "token ids", "mygpt.encode"]),
        ([None], ["Prompt 0", "token ids"]),
        (5, ["[B, T] tensor", "int"]),
        ("hello", ["[B, T] tensor", "mygpt.encode"]),
    ],
)
def test_bad_prompt_ids_raise_prompt_error(model, prompt, words):
    with pytest.raises(PromptError) as e:
        generate(model, prompt, 2)
    for word in words:
        assert word in str(e.value), (word, str(e.value))


def test_prompt_ids_at_the_vocabulary_edges_are_fine(model, tiny_cfg):
    last = tiny_cfg.vocab_size - 1
    assert generate(model, torch.tensor([[0, last]]), 1).shape == (1, 3)
    assert generate(model, [[0], [last, 0]], 1).shape == (2, 3)
    assert generate(model, torch.tensor([1, 2], dtype=torch.int32), 1).shape == (1, 3)
    assert generate(model, [torch.tensor([1, 2]), (3,)], 1).shape == (2, 3)


def test_top_p_far_below_float32_range_keeps_the_most_likely_token():
    # Found by tests/test_fuzz.py: p = 2.9e-246 became 0.0 in float32 and dropped every token.
    logits = torch.tensor([[0.23, 0.08, -0.07, 0.05]])
    filtered = top_p_filter(logits, 2.886448588532823e-246)
    assert torch.isfinite(filtered).sum() == 1 and torch.isfinite(filtered[0, 0])
    assert (
        sample_next_token(
            logits, 1.0, None, 2.886448588532823e-246, torch.Generator().manual_seed(0)
        ).item()
        == 0
    )
