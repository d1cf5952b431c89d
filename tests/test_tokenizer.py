"""Tests of mygpt.tokenizer: tiktoken's GPT-2 encoding behind a small, strict API."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import tiktoken
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mygpt.errors import DataError, MyGPTError, TokenizerError
from mygpt.tokenizer import (
    EOT,
    EOT_ID,
    VOCAB_SIZE,
    decode,
    encode,
    encode_ordinary,
    get_tokenizer,
    ids_to_text,
    text_to_ids,
)

ROOT = Path(__file__).resolve().parents[1]

VARIED = [
    "",
    "Hello, world",
    "The quick brown fox jumps over the lazy dog.",
    "supercalifragilisticexpialidocious Xyzzyplugh",
    "I'm sure they're fine; it's what we'd've done. DON'T",
    "numbers: 3.14159 2024 1,000,000 0x1F -42",
    "def f(x):\n\treturn x ** 2  # square\n\n",
    "trailing spaces   ",
    "   leading spaces",
    "\n\n\n",
    "tabs\t\tand\r\nCRLF",
    "你好，世界",
    "مرحبا بالعالم",
    "Привет, мир!",
    "emoji 😀👍🏽🇫🇷 and ZWJ 👩‍👩‍👧",
    "text<|endoftext|>more text",
]


@pytest.fixture(scope="module")
def tiktoken_gpt2() -> tiktoken.Encoding:
    """tiktoken's own encoding, loaded directly (not through mygpt), to compare against."""
    get_tokenizer()  # makes sure the offline cache variable is in place first
    return tiktoken.get_encoding("gpt2")


def test_get_tokenizer_is_gpt2_and_cached() -> None:
    enc = get_tokenizer()
    assert enc is get_tokenizer()
    assert enc.name == "gpt2"
    assert enc.n_vocab == VOCAB_SIZE == 50257
    assert enc.eot_token == EOT_ID == 50256
    assert enc.decode([EOT_ID]) == EOT


def test_known_ids() -> None:
    # Reference values of GPT-2's vocabulary: "Hello" 15496, "," 11, " world" 995.
    assert encode("Hello, world") == [15496, 11, 995]
    assert encode(EOT) == [EOT_ID]


@pytest.mark.parametrize("text", VARIED)
def test_ids_equal_tiktoken(text: str, tiktoken_gpt2: tiktoken.Encoding) -> None:
    assert encode(text) == tiktoken_gpt2.encode(text, allowed_special={EOT})
    assert encode_ordinary(text) == tiktoken_gpt2.encode_ordinary(text)
    assert decode(encode(text)) == text


def test_special_token_handling() -> None:
    assert encode("a<|endoftext|>b") == encode("a") + [EOT_ID] + encode("b")
    assert encode("a<|endoftext|>b", allowed_special="all") == encode("a<|endoftext|>b")
    assert EOT_ID not in encode_ordinary(EOT)
    assert decode(encode_ordinary(EOT)) == EOT
    with pytest.raises(TokenizerError, match=r"special token '<\|endoftext\|>' at index 1"):
        encode("a<|endoftext|>b", allowed_special=set())
    assert encode("no special here", allowed_special=set()) == encode("no special here")
    with pytest.raises(TokenizerError, match="allowed_special"):
        encode("x", allowed_special=EOT)  # a bare string, not a set
    with pytest.raises(TokenizerError, match="allowed_special"):
        encode("x", allowed_special=None)  # type: ignore[arg-type]


def test_decode_accepts_lists_tuples_and_tensors() -> None:
    ids = encode("Tensors too.")
    assert decode(ids) == decode(tuple(ids)) == decode(torch.tensor(ids)) == "Tensors too."
    assert decode(torch.tensor(ids, dtype=torch.int32)) == "Tensors too."
    assert decode([]) == ""


def test_text_to_ids_shape_dtype_device() -> None:
    ids = text_to_ids("Every effort moves you")
    assert ids.shape == (1, len(encode("Every effort moves you")))
    assert ids.dtype == torch.long
    assert ids.device.type == "cpu"
    assert ids[0].tolist() == encode("Every effort moves you")
    assert text_to_ids("", device="cpu").shape == (1, 0)
    assert text_to_ids(EOT).tolist() == [[EOT_ID]]


def test_ids_to_text_accepts_1d_and_batch_of_one() -> None:
    ids = text_to_ids("Every effort moves you")
    expected = "Every effort moves you"
    assert ids_to_text(ids) == ids_to_text(ids[0]) == expected
    assert ids_to_text(ids.tolist()) == ids_to_text(ids[0].tolist()) == expected
    assert ids_to_text([]) == ""
    with pytest.raises(TokenizerError, match=r"shape \[2, 4\]"):
        ids_to_text(torch.cat([ids, ids]))
    with pytest.raises(TokenizerError, match="2 sequences"):
        ids_to_text([[1, 2], [3, 4]])


@pytest.mark.parametrize(
    ("bad", "named"),
    [
        (b"bytes", "bytes"),
        (None, "NoneType"),
        (42, "int"),
        (["a", "list"], "list"),
        (bytearray(b"x"), "bytearray"),
    ],
)
def test_encode_rejects_non_text(bad: object, named: str) -> None:
    with pytest.raises(TokenizerError, match=rf"expects text \(a str\), got {named}") as info:
        encode(bad)  # type: ignore[arg-type]
    assert isinstance(info.value, MyGPTError) and isinstance(info.value, TypeError)
    with pytest.raises(TokenizerError, match=named):
        text_to_ids(bad)  # type: ignore[arg-type]
    with pytest.raises(TokenizerError, match=named):
        encode_ordinary(bad)  # type: ignore[arg-type]


def test_encode_rejects_lone_surrogates() -> None:
    with pytest.raises(TokenizerError, match="lone surrogate.*index 2"):
        encode("ab\ud800cd")


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ([50257], "token id 50257 at position 0"),
        ([5, -1], "token id -1 at position 1"),
        ([1, 2, 10**9], "token id 1000000000 at position 2"),
        ("abc", "got str"),
        (None, "got NoneType"),
        (b"\x01", "got bytes"),
        ([1.0], "got float"),
        ([True], "got bool"),
        (torch.tensor([1.0, 2.0]), "dtype torch.float32"),
        (torch.zeros(2, 3, dtype=torch.long), r"1-D tensor.*shape \[2, 3\]"),
        (torch.tensor([3, 50300]), "token id 50300"),
    ],
)
def test_decode_rejects_bad_ids(bad: object, match: str) -> None:
    with pytest.raises(TokenizerError, match=match):
        decode(bad)  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(st.text(), st.sampled_from([EOT, " ", "\n", "\t", "  ", "'s", "😀", "中"])),
        max_size=8,
    )
)
def test_round_trip_any_text(parts: list[str]) -> None:
    # st.text() draws from all of Unicode except surrogates; EOT text round-trips via id 50256.
    text = "".join(parts)
    assert decode(encode(text)) == text
    assert decode(encode_ordinary(text)) == text
    assert ids_to_text(text_to_ids(text)) == text


def _import_in_subprocess(
    env_changes: dict[str, str | None], encode_hello: bool = False
) -> list[str]:
    """Import mygpt.tokenizer in a fresh interpreter; return its TIKTOKEN_CACHE_DIR (and ids of "Hello")."""
    env = dict(os.environ)
    for key, value in env_changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    code = (
        "import os, mygpt.tokenizer as t\n"
        "print(os.environ.get('TIKTOKEN_CACHE_DIR'))\n"
        f"print(t.encode('Hello') if {encode_hello} else '-')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=True
    )
    return out.stdout.splitlines()


def test_mygpt_data_dir_alone_points_tiktoken_at_its_cache(tmp_path: Path) -> None:
    data_dir = os.environ.get("MYGPT_DATA_DIR")
    if not data_dir or not os.path.isdir(os.path.join(data_dir, "tiktoken-cache")):
        pytest.skip(
            "MYGPT_DATA_DIR is unset or has no tiktoken-cache/ (CI sets it to ../shared/data)"
        )
    # Only MYGPT_DATA_DIR set: the cache is found, and tiktoken loads from it (offline in CI).
    cache_dir, ids = _import_in_subprocess({"TIKTOKEN_CACHE_DIR": None}, encode_hello=True)
    assert cache_dir == os.path.join(data_dir, "tiktoken-cache")
    assert ids == "[15496]"
    # An explicit TIKTOKEN_CACHE_DIR is left alone.
    explicit = str(tmp_path / "mine")
    assert _import_in_subprocess({"TIKTOKEN_CACHE_DIR": explicit})[0] == explicit


def test_mygpt_data_dir_without_cache_changes_nothing(tmp_path: Path) -> None:
    cache_dir, _ = _import_in_subprocess(
        {"TIKTOKEN_CACHE_DIR": None, "MYGPT_DATA_DIR": str(tmp_path)}
    )
    assert cache_dir == "None"


def test_get_tokenizer_failure_is_a_data_error(tmp_path: Path) -> None:
    # An empty cache and no network access allowed to tiktoken: the failure must say what to do.
    env = dict(os.environ, TIKTOKEN_CACHE_DIR=str(tmp_path), PYTHONPATH=str(ROOT))
    env["HTTPS_PROXY"] = env["HTTP_PROXY"] = env["https_proxy"] = env["http_proxy"] = (
        "http://127.0.0.1:9"
    )
    env.pop("NO_PROXY", None), env.pop("no_proxy", None)
    code = (
        "import mygpt.tokenizer as t\n"
        "try:\n    t.get_tokenizer()\nexcept t.DataError as e:\n    print('DataError:', e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("DataError:") and "MYGPT_DATA_DIR" in out.stdout
    assert issubclass(DataError, MyGPTError)
