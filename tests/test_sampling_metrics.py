import math

import pytest
import torch

from mygpt.errors import SamplingError
from mygpt.generation import generate
from mygpt.metrics import (
    cut_at_stop,
    distinct_n,
    mean_log_likelihood,
    ngrams,
    repetition_rate,
    sample_metrics,
    token_log_probs,
)
from mygpt.model import GPT


@pytest.fixture
def model(tiny_cfg):
    return GPT(tiny_cfg.replace(dropout=0.0)).eval()


def test_ngrams_and_distinct_n_by_hand():
    assert ngrams([1, 2, 3], 2) == [(1, 2), (2, 3)]
    assert ngrams([1], 2) == []
    # unigrams 1,2,1,2 | 3,4 -> 4 different of 6; bigrams (1,2),(2,1),(1,2),(3,4) -> 3 of 4
    assert distinct_n([[1, 2, 1, 2], [3, 4]], 1) == pytest.approx(4 / 6)
    assert distinct_n([[1, 2, 1, 2], [3, 4]], 2) == pytest.approx(3 / 4)
    assert distinct_n(torch.tensor([[5, 6, 7], [5, 6, 7]]), 1) == pytest.approx(3 / 6)
    assert math.isnan(distinct_n([[1]], 2))


def test_repetition_rate_counts_ngrams_seen_before_in_the_same_sample():
    assert repetition_rate([1, 2, 3, 4, 5], 1) == 0.0
    assert repetition_rate([7, 7, 7, 7], 1) == pytest.approx(3 / 4)
    # trigrams (1,2,3),(2,3,1),(3,1,2),(1,2,3): the last is a repeat
    assert repetition_rate([1, 2, 3, 1, 2, 3], 3) == pytest.approx(1 / 4)
    assert math.isnan(repetition_rate([1, 2], 3))


def test_bad_n_is_a_sampling_error():
    with pytest.raises(SamplingError, match="n-gram"):
        distinct_n([[1, 2]], 0)


def test_cut_at_stop_keeps_the_stop_token_and_drops_padding():
    cut, stopped = cut_at_stop(torch.tensor([[4, 9, 9, 9], [1, 2, 3, 4]]), eos_id=9)
    assert cut == [[4, 9], [1, 2, 3, 4]]
    assert stopped == [True, False]
    assert cut_at_stop([[9, 1]], None) == ([[9, 1]], [False])


def test_token_log_probs_match_a_forward_pass_token_by_token(model):
    idx = torch.randint(0, 97, (2, 9))
    lp = token_log_probs(model, idx, start=4)
    assert lp.shape == (2, 5)
    for t in range(4, 9):
        with torch.no_grad():
            expect = torch.log_softmax(model(idx[:, :t])[:, -1], dim=-1)
        torch.testing.assert_close(lp[:, t - 4], expect.gather(1, idx[:, t : t + 1]).squeeze(1))
    assert (lp <= 0).all()


def test_mean_log_likelihood_respects_lengths(model):
    idx = torch.randint(0, 97, (2, 8))
    lp = token_log_probs(model, idx, 3)
    got = mean_log_likelihood(model, idx, 3, lengths=[2, 5])
    assert got[0] == pytest.approx(lp[0, :2].mean().item())
    assert got[1] == pytest.approx(lp[1].mean().item())
    with pytest.raises(SamplingError, match="lengths"):
        mean_log_likelihood(model, idx, 3, lengths=[0, 5])


def test_greedy_samples_are_likelier_and_less_diverse_than_hot_samples(model):
    prompt = torch.tensor([[3, 14, 15]]).repeat(8, 1)
    greedy = sample_metrics(model, generate(model, prompt, 20), 3)
    hot = sample_metrics(model, generate(model, prompt, 20, temperature=2.0, seed=0), 3)
    # 8 identical greedy rows: each distinct n-gram appears at least 8 times
    assert greedy["distinct_1"] <= 1 / 8 + 1e-9
    assert hot["distinct_1"] > greedy["distinct_1"]
    assert greedy["log_likelihood"] > hot["log_likelihood"]
    assert greedy["stopped"] == 0.0 and greedy["length"] == 20


def test_sample_metrics_stop_fraction_and_length(counting_model):
    prompt = torch.tensor([[0], [5]])
    eos = 1  # the counting model's row 0 emits it first (0 -> 1); row 1 (6, 7, ..., 11) never does
    out = generate(counting_model, prompt, 6, eos_id=eos)
    assert out.tolist() == [[0, 1, 1, 1, 1, 1, 1], [5, 6, 7, 8, 9, 10, 11]]
    m = sample_metrics(counting_model, out, 1, eos_id=eos)
    assert m["stopped"] == 0.5
    assert m["length"] == (1 + 6) / 2
