"""Tests of mygpt.bpe: byte-level BPE from scratch, checked against tiktoken's GPT-2 encoding."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pytest
import tiktoken
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mygpt.bpe import (
    GPT2_SPLIT_PATTERN,
    BPETokenizer,
    apply_merges,
    apply_merges_heap,
    best_pair,
    bytes_to_unicode,
    count_pairs,
    get_pairs,
    merge_pair,
    split_text,
)
from mygpt.errors import DataError, TokenizerError
from mygpt.tokenizer import get_tokenizer

EOT = "<|endoftext|>"

# Strings where a slip in pre-tokenisation, byte handling or merge order shows up.
HARD = [
    "",
    " ",
    "a",
    "Hello, world!",
    "unfathomably Zxqvbnmq floccinaucinihilipilification",
    "1234567890 3.14159 -0.5e-10 1,000,000 ٣٤٥ ⅷ",
    "I'm you're he's she'll we've they'd can't 'tis O'Neil",
    "IT'S YOU'RE  (upper-case contractions are not special in GPT-2)",
    "def f(x):\n    return {'a': [1, 2]}  # comment\n\n\tpass\r\n",
    "trailing spaces   ",
    "   leading spaces",
    "many    inner     spaces",
    "\n\n\n\n",
    " \n \n ",
    "\t\t\ttabs\t",
    "\u00a0non-breaking\u2003em-space\u3000ideographic",
    "你好，世界！今天天气很好。",
    "مرحبا بالعالم، كيف حالك؟",
    "Привет, мир! Как дела?",
    "こんにちは世界 한국어 ภาษาไทย हिन्दी",
    "emoji 😀👍🏽🇫🇷 👩‍👩‍👧 ❤️",
    "Ġ Ċ ĉ (GPT-2's byte characters as text)",
    "<|endoftext|>",
    "one<|endoftext|>two <|endoftext|> three<|endoftext|>",
    "<|endoftext",
    "a" * 500,
    "ab" * 300 + " " + "!?" * 100,
]


def _gpt2_paths() -> tuple[Path, Path]:
    data_dir = os.environ.get("MYGPT_DATA_DIR")
    if not data_dir:
        pytest.skip(
            "MYGPT_DATA_DIR is unset: it must point at local copies of GPT-2's BPE files "
            "(CI: ../shared/data, holding gpt2-bpe/encoder.json and gpt2-bpe/vocab.bpe)"
        )
    folder = Path(data_dir) / "gpt2-bpe"
    return folder / "encoder.json", folder / "vocab.bpe"


@pytest.fixture(scope="module")
def gpt2() -> BPETokenizer:
    return BPETokenizer.from_gpt2_files(*_gpt2_paths())


@pytest.fixture(scope="module")
def tiktoken_gpt2() -> tiktoken.Encoding:
    get_tokenizer()  # let mygpt point tiktoken at the offline cache first
    return tiktoken.get_encoding("gpt2")


@pytest.fixture(scope="module")
def verdict() -> str:
    data_dir = os.environ.get("MYGPT_DATA_DIR")
    if not data_dir:
        pytest.skip("MYGPT_DATA_DIR is unset: the-verdict.txt is read from there")
    return (Path(data_dir) / "the-verdict.txt").read_text(encoding="utf-8")


# ------------------------------------------------------------------------------------------------
# The small pieces


def test_bytes_to_unicode_is_a_printable_bijection() -> None:
    table = bytes_to_unicode()
    assert sorted(table) == list(range(256))
    assert len(set(table.values())) == 256  # reversible
    assert all(ch.isprintable() and not ch.isspace() for ch in table.values())
    assert all(table[b] == chr(b) for b in range(ord("!"), ord("~") + 1))  # ASCII keeps its look
    assert table[ord(" ")] == "Ġ" and table[ord("\n")] == "Ċ" and table[0] == chr(256)


def test_split_text_gpt2_pattern() -> None:
    assert split_text("Hello world  123!!") == ["Hello", " world", " ", " 123", "!!"]
    assert split_text("it's they're") == ["it", "'s", " they", "'re"]
    assert split_text("IT'S") == ["IT", "'", "S"]  # GPT-2's contractions are lower case only
    assert split_text("end  \n") == ["end", "  \n"]
    assert split_text("x\t\ty") == ["x", "\t", "\t", "y"]  # only a space joins the next word
    assert split_text("héllo мир 中文") == ["héllo", " мир", " 中文"]
    assert split_text("ab12", pattern=r"\p{L}+|\p{N}+") == ["ab", "12"]
    assert "p{L}" in GPT2_SPLIT_PATTERN


@given(st.text())
def test_split_text_keeps_every_character(text: str) -> None:
    assert "".join(split_text(text)) == text


def test_get_pairs_merge_pair_count_pairs() -> None:
    assert get_pairs([1, 2, 3, 2, 3]) == {(1, 2), (2, 3), (3, 2)}
    assert get_pairs([7]) == set()
    assert merge_pair([1, 2, 3, 1, 2], (1, 2), 9) == [9, 3, 9]
    assert merge_pair([5, 5, 5], (5, 5), 9) == [9, 5]  # left to right, no overlap
    assert merge_pair([5, 5, 5, 5], (5, 5), 9) == [9, 9]
    assert merge_pair([], (1, 2), 9) == []
    assert count_pairs({(1, 2, 3): 10, (2, 3): 5}) == Counter({(1, 2): 10, (2, 3): 15})
    assert best_pair({(3, 4): 5, (1, 9): 7, (2, 0): 7}) == (1, 9)  # tie on 7: smallest ids win


def test_apply_merges_lowest_rank_first() -> None:
    merged = {(2, 3): 10, (1, 2): 11, (1, 10): 12}
    # (1, 2) comes first in the text, but (2, 3) was learned first, so it wins.
    assert apply_merges([1, 2, 3], {(2, 3): 0, (1, 2): 1}, merged) == [1, 10]
    assert apply_merges([1, 2, 3], {(2, 3): 0, (1, 2): 1, (1, 10): 2}, merged) == [12]
    assert apply_merges([1, 2, 3], {(1, 2): 0, (2, 3): 1}, merged) == [11, 3]
    assert apply_merges([4], {}, {}) == [4]


def test_apply_merges_heap_equals_apply_merges_on_small_cases() -> None:
    merged = {(2, 3): 10, (1, 2): 11, (1, 10): 12, (5, 5): 13, (13, 13): 14, (13, 5): 15}
    cases = [
        ([1, 2, 3], {(2, 3): 0, (1, 2): 1}),
        ([1, 2, 3], {(2, 3): 0, (1, 2): 1, (1, 10): 2}),
        ([1, 2, 3], {(1, 2): 0, (2, 3): 1}),
        ([4], {}),
        ([], {}),
        ([5] * 7, {(5, 5): 0, (13, 13): 1}),
        ([5] * 7, {(5, 5): 0, (13, 5): 1, (13, 13): 2}),
        # A merge whose result takes part in a lower-ranked merge (no real tokenizer has
        # one): apply_merges merges every (1, 2) first, and so must the heap.
        ([1, 2, 1, 2], {(1, 10): 0, (1, 2): 1}),
        ([1, 2, 3, 1, 2, 3], {(1, 10): 0, (2, 3): 1}),
    ]
    for ids, ranks in cases:
        assert apply_merges_heap(ids, ranks, merged) == apply_merges(ids, ranks, merged), (
            ids,
            ranks,
        )


@settings(max_examples=300, deadline=None)
@given(st.text(st.sampled_from("aeinst rl"), max_size=80))
def test_apply_merges_heap_equals_apply_merges_with_gpt2_merges(
    gpt2: BPETokenizer, text: str
) -> None:
    ids = [gpt2._byte_ids[b] for b in text.encode("utf-8")]  # one piece: spaces too, on purpose
    assert apply_merges_heap(ids, gpt2.ranks, gpt2.merged_ids) == apply_merges(
        ids, gpt2.ranks, gpt2.merged_ids
    )


@pytest.mark.parametrize("kind", ["random", "repeated", "pairs"])
def test_gpt2_long_word_is_fast_and_equals_tiktoken(
    kind: str, gpt2: BPETokenizer, tiktoken_gpt2: tiktoken.Encoding
) -> None:
    """A 32,000-letter word, one pre-token: BPE must merge it in near-linear time, not quadratic
    (once ~17 s; tiktoken ~0.4 s)."""
    import random
    import time

    rng = random.Random(0)
    word = {
        "random": lambda: "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(32_000)),
        "repeated": lambda: "a" * 32_000,
        "pairs": lambda: "ab" * 16_000,
    }[kind]()
    start = time.perf_counter()
    ids = gpt2.encode(" " + word)  # no other test encodes this piece: it is not in the cache
    elapsed = time.perf_counter() - start
    assert ids == tiktoken_gpt2.encode(" " + word)
    assert elapsed < 3.0, f"encoding a 32,000-letter word took {elapsed:.1f} s"


# ------------------------------------------------------------------------------------------------
# GPT-2's files: exactly tiktoken's ids


def test_gpt2_files_load(gpt2: BPETokenizer) -> None:
    assert gpt2.vocab_size == 50257
    assert len(gpt2.merges) == 50000
    assert gpt2.special_tokens == {EOT: 50256}
    assert gpt2.vocab[gpt2.merges[0][1]] == b" t"  # first line of vocab.bpe: "Ġ t"
    assert gpt2.vocab[0] == b"!"


@pytest.mark.parametrize("text", HARD)
def test_gpt2_ids_equal_tiktoken(
    text: str, gpt2: BPETokenizer, tiktoken_gpt2: tiktoken.Encoding
) -> None:
    assert gpt2.encode(text) == tiktoken_gpt2.encode(text, allowed_special="all")
    assert gpt2.encode(text, allowed_special={EOT}) == tiktoken_gpt2.encode(
        text, allowed_special={EOT}
    )
    assert gpt2.encode_ordinary(text) == tiktoken_gpt2.encode_ordinary(text)
    assert gpt2.decode(gpt2.encode(text)) == text
    assert gpt2.decode(gpt2.encode_ordinary(text)) == text


def test_gpt2_the_verdict_equals_tiktoken(
    gpt2: BPETokenizer, tiktoken_gpt2: tiktoken.Encoding, verdict: str
) -> None:
    ids = gpt2.encode(verdict)
    assert ids == tiktoken_gpt2.encode(verdict)
    assert gpt2.decode(ids) == verdict


# Characters Python's Unicode database (14.0) assigns; code points that only newer Unicode
# versions assign may be classed differently by `regex` and by tiktoken's engine (see bpe.py).
_assigned = st.characters(exclude_categories=("Cs", "Cn"))
_fragments = st.sampled_from(
    [
        " ",
        "  ",
        "\n",
        "\r\n",
        "\t",
        "'s",
        "'t",
        "'re",
        "'ve",
        "'m",
        "'ll",
        "'d",
        "'S",
        EOT,
        "123",
        " 4.5",
        "hello",
        " world",
        "中文",
        "😀",
        "\u00a0",
        "\u3000",
        "!!",
        "Ġ",
    ]
)
_texts = st.lists(st.one_of(st.text(_assigned, max_size=6), _fragments), max_size=10).map("".join)


@settings(max_examples=400, deadline=None)
@given(_texts)
def test_gpt2_matches_tiktoken_on_random_text(
    gpt2: BPETokenizer, tiktoken_gpt2: tiktoken.Encoding, text: str
) -> None:
    assert gpt2.encode_ordinary(text) == tiktoken_gpt2.encode_ordinary(text)
    assert gpt2.encode(text) == tiktoken_gpt2.encode(text, allowed_special="all")
    if EOT not in text:
        assert gpt2.encode(text, allowed_special=set()) == tiktoken_gpt2.encode(text)


@settings(max_examples=200, deadline=None)
@given(st.text())  # all of Unicode but surrogates, unassigned code points included
def test_gpt2_round_trip_any_text(gpt2: BPETokenizer, text: str) -> None:
    assert gpt2.decode(gpt2.encode(text)) == text
    assert gpt2.decode(gpt2.encode_ordinary(text)) == text


def test_gpt2_decode_partial_utf8_like_tiktoken(
    gpt2: BPETokenizer, tiktoken_gpt2: tiktoken.Encoding
) -> None:
    ids = gpt2.encode("😀")
    assert len(ids) > 1  # an emoji is several byte tokens
    assert gpt2.decode(ids[:1]) == tiktoken_gpt2.decode(ids[:1]) == "\ufffd"
    assert gpt2.decode_bytes(ids) == "😀".encode()


def test_gpt2_decode_accepts_tensors(gpt2: BPETokenizer) -> None:
    ids = gpt2.encode("tensor input<|endoftext|>")
    assert gpt2.decode(torch.tensor(ids)) == gpt2.decode(tuple(ids)) == "tensor input<|endoftext|>"


def test_special_tokens_like_tiktoken(gpt2: BPETokenizer) -> None:
    assert gpt2.encode(EOT) == [50256]
    assert 50256 not in gpt2.encode_ordinary(EOT)
    with pytest.raises(TokenizerError, match=r"special token '<\|endoftext\|>'.*encode_ordinary"):
        gpt2.encode("a<|endoftext|>", allowed_special=set())
    with pytest.raises(TokenizerError, match="not special tokens"):
        gpt2.encode("a", allowed_special={"<|im_start|>"})
    with pytest.raises(TokenizerError, match="allowed_special"):
        gpt2.encode("a", allowed_special=EOT)  # a bare string, not a set


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (b"bytes", "got bytes"),
        (None, "got NoneType"),
        (3, "got int"),
        (["a"], "got list"),
        ("a\udc80", "lone surrogate"),
    ],
)
def test_encode_rejects_bad_input(gpt2: BPETokenizer, bad: object, match: str) -> None:
    with pytest.raises(TokenizerError, match=match):
        gpt2.encode(bad)  # type: ignore[arg-type]
    with pytest.raises(TokenizerError, match=match):
        gpt2.encode_ordinary(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ([50257], "token id 50257 at position 0"),
        ([1, -3], "token id -3 at position 1"),
        ("abc", "got str"),
        (None, "got NoneType"),
        ([2.0], "got float"),
        ([False], "got bool"),
        (torch.zeros(1, 2, dtype=torch.long), "1-D"),
    ],
)
def test_decode_rejects_bad_ids(gpt2: BPETokenizer, bad: object, match: str) -> None:
    with pytest.raises(TokenizerError, match=match):
        gpt2.decode(bad)  # type: ignore[arg-type]


def test_gpt2_files_errors(tmp_path: Path) -> None:
    encoder_path, vocab_path = _gpt2_paths()
    with pytest.raises(DataError, match="not found"):
        BPETokenizer.from_gpt2_files(tmp_path / "nope.json", vocab_path)
    with pytest.raises(DataError, match="not found"):
        BPETokenizer.from_gpt2_files(encoder_path, tmp_path / "nope.bpe")

    no_header = tmp_path / "no_header.bpe"
    no_header.write_text("Ġ t\n", encoding="utf-8")
    with pytest.raises(DataError, match="#version"):
        BPETokenizer.from_gpt2_files(encoder_path, no_header)

    bad_merge = tmp_path / "bad_merge.bpe"
    bad_merge.write_text("#version: 0.2\nĠ t\nzz qq\n", encoding="utf-8")
    with pytest.raises(DataError, match="line 3"):
        BPETokenizer.from_gpt2_files(encoder_path, bad_merge)

    not_json = tmp_path / "encoder.json"
    not_json.write_text("{not json", encoding="utf-8")
    with pytest.raises(DataError, match="not a JSON file"):
        BPETokenizer.from_gpt2_files(not_json, vocab_path)

    # A small but well-formed pair of files loads, and the result is checked for consistency.
    table = bytes_to_unicode()
    encoder = {table[b]: b for b in range(256)} | {table[ord("a")] * 2: 256, EOT: 257}
    small_encoder = tmp_path / "small.json"
    small_encoder.write_text(json.dumps(encoder), encoding="utf-8")
    small_vocab = tmp_path / "small.bpe"
    small_vocab.write_text("#version: 0.2\na a\n", encoding="utf-8")
    small = BPETokenizer.from_gpt2_files(small_encoder, small_vocab)
    assert small.encode("aaa<|endoftext|>") == [256, ord("a"), 257]
    assert small.vocab_size == 258


def test_constructor_checks_consistency() -> None:
    vocab = {i: bytes([i]) for i in range(256)} | {256: b"xy"}
    with pytest.raises(TokenizerError, match="not the concatenation"):
        BPETokenizer([((97, 98), 256)], vocab)
    with pytest.raises(TokenizerError, match="missing"):
        BPETokenizer([((97, 300), 256)], vocab)
    with pytest.raises(TokenizerError, match="single-byte tokens"):
        BPETokenizer([], {i: bytes([i]) for i in range(200)})
    with pytest.raises(TokenizerError, match="also ordinary"):
        BPETokenizer([], {i: bytes([i]) for i in range(256)}, {EOT: 3})


# ------------------------------------------------------------------------------------------------
# Training


def test_training_first_merges_on_a_tiny_corpus() -> None:
    # "aaabdaaabac": "aa" occurs 4 times; after it, "ab" and ("aa", "a") tie at 2 and the
    # smaller ids win: (97, 98) before (256, 97). Then ("aa", "ab") makes "aaab".
    tok = BPETokenizer.train("aaabdaaabac", 259, special_tokens=())
    assert tok.merges == [((97, 97), 256), ((97, 98), 257), ((256, 257), 258)]
    assert tok.merge_counts == [4, 2, 2]
    assert tok.vocab[258] == b"aaab"
    assert tok.encode("aaabdaaabac") == [258, ord("d"), 258, ord("a"), ord("c")]


def test_training_on_words_learns_the_most_frequent_pair() -> None:
    text = "the cat the hat the bat then " * 20 + "zebra"
    tok = BPETokenizer.train(text, 257, special_tokens=())
    # Pre-tokens: "the" x1, " the" x59, " then" x20, " cat"/" hat"/" bat" x20 each, " zebra".
    # Pairs: "th" 1+59+20 = 80, "he" 80, " t" 79, "at" 60: "th" and "he" tie, and the smaller
    # ids win: ("h", "e") = (104, 101) < ("t", "h") = (116, 104).
    assert tok.merges == [((ord("h"), ord("e")), 256)]
    assert tok.merge_counts == [80]


def _naive_train(text: str, n_merges: int) -> list[tuple[tuple[int, int], int]]:
    """Reference trainer: recount every pair from scratch at every step (slow but obvious)."""
    words = Counter(tuple(piece.encode("utf-8")) for piece in split_text(text))
    merges = []
    for step in range(n_merges):
        pair = best_pair(count_pairs(words))
        new_id = 256 + step
        merged: Counter[tuple[int, ...]] = Counter()
        for word, freq in words.items():
            merged[tuple(merge_pair(word, pair, new_id))] += freq
        words = merged
        merges.append((pair, new_id))
    return merges


def test_training_matches_a_naive_reference(verdict: str) -> None:
    text = verdict[:6000]
    tok = BPETokenizer.train(text, 256 + 150, special_tokens=())
    assert tok.merges == _naive_train(text, 150)


def test_training_the_verdict_size_determinism_and_round_trip(verdict: str) -> None:
    tok = BPETokenizer.train(verdict, 800)
    assert tok.vocab_size == 800
    assert len(tok.merges) == 800 - 256 - 1
    assert tok.special_tokens == {EOT: 799}
    assert [new for _, new in tok.merges] == list(range(256, 799))
    assert all(tok.vocab[new] == tok.vocab[a] + tok.vocab[b] for (a, b), new in tok.merges)
    # A merge only creates pairs that contain the new token, which are at most as frequent as it:
    # so the count of the best pair never rises.
    assert tok.merge_counts == sorted(tok.merge_counts, reverse=True)
    again = BPETokenizer.train(verdict, 800)
    assert again.merges == tok.merges and again.vocab == tok.vocab
    ids = tok.encode(verdict)
    assert tok.decode(ids) == verdict
    assert (
        len(ids) < len(verdict.encode("utf-8")) / 2.5
    )  # the merges compress the text they learned from
    assert tok.encode("x<|endoftext|>y") == [ord("x"), 799, ord("y")]


def test_training_never_merges_into_special_tokens() -> None:
    tok = BPETokenizer.train("hello<|endoftext|>" * 50, 256 + 4 + 1)  # "hello" allows 4 merges
    learned = [tok.vocab[new] for _, new in tok.merges]
    assert learned and all(piece in b"hello" for piece in learned)
    assert tok.encode("hello<|endoftext|>") == [tok.merges[-1][1], tok.special_tokens[EOT]]


def test_training_verbose_prints_each_merge(capsys: pytest.CaptureFixture[str]) -> None:
    BPETokenizer.train("aaabdaaabac", 259, special_tokens=(), verbose=True)
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "merge 1/3: b'a' + b'a' -> 256 b'aa' (4 times)",
        "merge 2/3: b'a' + b'b' -> 257 b'ab' (2 times)",
        "merge 3/3: b'aa' + b'ab' -> 258 b'aaab' (2 times)",
    ]


@pytest.fixture(scope="module")
def small_trained() -> BPETokenizer:
    return BPETokenizer.train(
        "The cat sat on the mat. 猫が座った。 <|endoftext|> Then it left.\n" * 5, 290
    )


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.one_of(st.text(max_size=10), st.sampled_from([EOT, " the", " mat.", "猫"])), max_size=6
    ).map("".join)
)
def test_trained_tokenizer_round_trips_any_text(small_trained: BPETokenizer, text: str) -> None:
    assert small_trained.decode(small_trained.encode(text)) == text
    assert small_trained.decode(small_trained.encode_ordinary(text)) == text


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"text": b"bytes", "vocab_size": 300}, "got bytes"),
        ({"text": "abc", "vocab_size": 100}, "at least 256"),
        ({"text": "abc", "vocab_size": 256}, r"= 257"),
        ({"text": "abc", "vocab_size": "300"}, "at least"),
        ({"text": "abc", "vocab_size": True}, "at least"),
        ({"text": "abc", "vocab_size": 300, "special_tokens": EOT}, "got the string"),
        ({"text": "abc", "vocab_size": 300, "special_tokens": ("", EOT)}, "non-empty"),
        ({"text": "abc", "vocab_size": 300, "special_tokens": (EOT, EOT)}, "distinct"),
        # "ab", " ab" -> "ab", " ab" as 2 tokens -> " ab" as 1 token -> no pair left
        ({"text": "ab ab", "vocab_size": 260, "special_tokens": ()}, "after 2 of 4 merges"),
    ],
)
def test_training_rejects_bad_input(kwargs: dict, match: str) -> None:
    with pytest.raises(TokenizerError, match=match):
        BPETokenizer.train(**kwargs)
