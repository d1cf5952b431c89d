"""Tests of mygpt.instruct: prompt format, splits, collate masks, scores, responses."""

import json

import pytest
import torch

import mygpt
from mygpt import instruct as I
from mygpt.tokenizer import EOT_ID, encode

REC = {"instruction": "Name a colour.", "input": "", "output": "Blue."}
REC_IN = {"instruction": "Add the numbers.", "input": "2 and 3", "output": "5"}


def test_format_prompt_with_and_without_input():
    p = I.format_prompt(REC)
    assert p.startswith(I.ALPACA_PREAMBLE) and p.endswith("### Response:\n")
    assert "### Input:" not in p and "Name a colour." in p
    assert "### Input:\n2 and 3\n\n### Response:\n" in I.format_prompt(REC_IN)
    with pytest.raises(mygpt.DataError):
        I.format_prompt({"output": "x"})


def test_split_records_sizes_and_disjoint():
    recs = list(range(100))
    tr, va, te = I.split_records(recs)
    assert (len(tr), len(va), len(te)) == (85, 5, 10)
    assert sorted(tr + va + te) == recs
    tr2, _, _ = I.split_records(recs, seed=1)
    assert tr2 != tr and I.split_records(recs, seed=1)[0] == tr2
    with pytest.raises(mygpt.DataError):
        I.split_records(recs, 0.9, 0.2)


def test_collate_pads_appends_eot_and_masks():
    a, b = ([1, 2, 3, 4, 5], 2), ([7, 8], 1)
    x, y = I.collate([a, b])
    assert x.shape == y.shape == (2, 5)
    assert x[0].tolist() == [1, 2, 3, 4, 5] and y[0].tolist() == [2, 3, 4, 5, EOT_ID]
    # b: [7, 8, EOT] padded with EOT; only the first EOT is a target
    assert x[1].tolist() == [7, 8, EOT_ID, EOT_ID, EOT_ID]
    assert y[1].tolist() == [8, EOT_ID, -100, -100, -100]
    xm, ym = I.collate([a, b], mask_prompt=True)
    assert torch.equal(xm, x)
    assert ym[0].tolist() == [-100, 3, 4, 5, EOT_ID]  # target 2 is a prompt token
    assert ym[1].tolist() == [8, EOT_ID, -100, -100, -100]  # a 1-token prompt masks nothing
    xt, yt = I.collate([a, b], max_length=3)
    assert xt.shape == (2, 3) and torch.equal(yt, y[:, :3])


def test_collate_with_target_flags_keeps_only_flagged_tokens():
    # Tokens 3 and 4 are not targets (say, a tool's output); the appended end-of-text is.
    x, y = I.collate(
        [([1, 2, 3, 4, 5], [False, True, False, False, True]), ([7, 8], [False, True])]
    )
    assert y[0].tolist() == [2, -100, -100, 5, EOT_ID]
    assert y[1].tolist() == [8, EOT_ID, -100, -100, -100]
    # flags override mask_prompt, which is about prompt lengths
    assert torch.equal(
        I.collate([([1, 2, 3], [True, True, True])], mask_prompt=True)[1],
        torch.tensor([[2, 3, EOT_ID]]),
    )
    with pytest.raises(mygpt.DataError, match="2 target flags"):
        I.collate([([1, 2, 3], [True, False])])


def test_collate_loss_ignores_masked_targets():
    torch.manual_seed(0)
    x, y = I.collate([([1, 2, 3, 4], 2), ([5, 6], 1)])
    logits = torch.randn(*x.shape, 50)
    y = y.clamp(max=49).where(y != -100, y)  # keep ids inside the toy vocabulary
    keep = y != -100
    expected = torch.nn.functional.cross_entropy(logits[keep], y[keep])
    torch.testing.assert_close(mygpt.next_token_loss(logits, y), expected)


def test_dataset_prompt_length_and_loader():
    ds = I.PromptResponseDataset(I.instruction_pairs([REC, REC_IN]))
    ids, n = ds[0]
    assert ids == encode(I.format_prompt(REC) + "Blue.") and n == len(encode(I.format_prompt(REC)))
    loader = I.create_loader(I.instruction_pairs([REC, REC_IN]), batch_size=2, mask_prompt=True)
    x, y = next(iter(loader))
    assert x.shape[0] == 2 and (y != -100).sum() > 0
    with pytest.raises(mygpt.DataError):
        I.PromptResponseDataset([("only one",)])


def test_scores():
    assert I.exact_match("The Blue!", "blue") == 1.0
    assert I.exact_match("blue sky", "blue") == 0.0
    assert I.token_f1("red blue", "blue green") == pytest.approx(0.5)
    assert I.token_f1("", "") == 1.0 and I.token_f1("x", "") == 0.0
    assert I.rouge_l("a b c d", "a c d") == pytest.approx(
        0.8
    )  # articles dropped: LCS("b c d", "c d") = 2
    assert I.rouge_l("one two three four", "one three four five") == pytest.approx(0.75)
    s = I.score_responses(["blue", "red"], ["blue", "green"])
    assert s == {"exact_match": 0.5, "token_f1": 0.5, "rouge_l": 0.5}
    with pytest.raises(mygpt.DataError):
        I.score_responses(["a"], [])


def test_generate_responses_and_save(tmp_path):
    torch.manual_seed(0)
    model = mygpt.GPT(
        mygpt.GPTConfig(vocab_size=EOT_ID + 1, context_length=64, n_embd=32, n_layer=1, n_head=2)
    ).eval()
    prompts = [I.format_prompt(REC), "Hello"]
    out = I.generate_responses(model, prompts, max_new_tokens=5, batch_size=1)
    batched = I.generate_responses(model, prompts, max_new_tokens=5, batch_size=2)
    assert len(out) == 2 and all(isinstance(s, str) for s in out)
    assert out[1] == batched[1]  # left padding does not change a response
    path = I.save_responses([REC, REC_IN], out, tmp_path / "r.json")
    saved = json.loads(path.read_text())
    assert saved[0]["model_response"] == out[0] and saved[1]["instruction"] == REC_IN["instruction"]
    with pytest.raises(mygpt.DataError):
        I.save_responses([REC], out, tmp_path / "bad.json")


def test_finetuning_lowers_response_loss():
    torch.manual_seed(0)
    model = mygpt.GPT(
        mygpt.GPTConfig(vocab_size=EOT_ID + 1, context_length=64, n_embd=32, n_layer=1, n_head=2)
    )
    loader = I.create_loader(I.instruction_pairs([REC, REC_IN]), batch_size=2, mask_prompt=True)
    before = mygpt.evaluate(model, loader)
    mygpt.train(model, loader, cfg=mygpt.TrainConfig(max_steps=30, lr=3e-3, log=False))
    assert mygpt.evaluate(model, loader) < before - 1.0
