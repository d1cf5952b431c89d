"""GPT-2's real tokenizer (tiktoken's ``gpt2`` encoding) and text <-> tensor helpers.

GPT-2 reads token ids, not characters. This module wraps tiktoken's implementation of GPT-2's
byte-level BPE (50,257 ids; ``<|endoftext|>`` is 50,256) so that the rest of the package and the
book can go from a string to a ``[1, T]`` tensor of ids and back in one call, with clear errors on
bad input. The from-scratch version of the same algorithm lives in :mod:`mygpt.bpe`.

Offline use: tiktoken downloads its two GPT-2 files on first use and caches them in
``TIKTOKEN_CACHE_DIR``. If ``MYGPT_DATA_DIR`` is set, ``TIKTOKEN_CACHE_DIR`` is not, and
``$MYGPT_DATA_DIR/tiktoken-cache`` exists, importing this module points tiktoken there (see
:mod:`mygpt.paths`), so that one variable is enough to work without a network.
"""

from __future__ import annotations

import functools
import numbers
from collections.abc import Collection, Sequence
from typing import Literal

import tiktoken
import torch

from . import paths  # noqa: F401  (resolves MYGPT_DATA_DIR and TIKTOKEN_CACHE_DIR before tiktoken reads them)
from .errors import DataError, TokenizerError

EOT = "<|endoftext|>"
"""GPT-2's only special token: it separates documents in the training data."""

EOT_ID = 50256
"""The id of :data:`EOT` (the last id of GPT-2's vocabulary)."""

VOCAB_SIZE = 50257
"""Number of ids in GPT-2's vocabulary: 256 bytes + 50,000 merges + ``<|endoftext|>``."""


@functools.cache
def get_tokenizer() -> tiktoken.Encoding:
    """Return tiktoken's GPT-2 encoding (loaded once, then cached).

    Raises:
        DataError: tiktoken could not load its GPT-2 files (typically: offline with no cache).
    """
    try:
        return tiktoken.get_encoding("gpt2")
    except Exception as exc:  # network or cache failures come in many types
        raise DataError(
            f"Could not load tiktoken's GPT-2 encoding ({type(exc).__name__}: {exc}). "
            "Offline, set MYGPT_DATA_DIR to a directory holding 'tiktoken-cache/' "
            "(or TIKTOKEN_CACHE_DIR to that cache itself)."
        ) from exc


def check_text(text: object, what: str) -> str:
    """Return ``text`` if it is a ``str`` with UTF-8 bytes; raise :class:`TokenizerError` if not.

    The one input check of both tokenizers (this module's and :class:`mygpt.bpe.BPETokenizer`):
    ``what`` names the caller in the message (e.g. ``"encode()"``). Bytes get a hint to decode
    them first; a string with a lone surrogate (no UTF-8 bytes) is refused with its position.
    """
    if not isinstance(text, str):
        hint = (
            " Decode bytes first: data.decode('utf-8')."
            if isinstance(text, (bytes, bytearray))
            else ""
        )
        raise TokenizerError(
            f"{what} expects text (a str), got {type(text).__name__}: {text!r:.60}.{hint}"
        )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        # Lone surrogates (e.g. "\ud800") are not Unicode text: they have no UTF-8 bytes, so no
        # byte-level tokenizer can represent them and decoding could never give them back.
        raise TokenizerError(
            f"{what} got a string with a lone surrogate {text[exc.start]!r} at index {exc.start}, "
            "which is not valid Unicode text and has no UTF-8 bytes. Clean the text first, "
            "e.g. text.encode('utf-8', 'replace').decode('utf-8')."
        ) from None
    return text


def encode(
    text: str, allowed_special: Collection[str] | Literal["all"] = frozenset({EOT})
) -> list[int]:
    """Turn text into GPT-2 token ids.

    Args:
        text: the string to encode.
        allowed_special: special tokens that are encoded as their own id when they appear in the
            text (by default ``<|endoftext|>`` -> 50256), or ``"all"``. With an empty set,
            text that contains ``<|endoftext|>`` is refused (as tiktoken does), so that a
            document cannot smuggle in a separator by accident; :func:`encode_ordinary` encodes
            it as plain text instead.

    Returns:
        The token ids, a ``list[int]``; ``decode(encode(text)) == text`` for any valid text.

    Raises:
        TokenizerError: ``text`` is not a ``str`` (or holds lone surrogates), or it contains a
            special token that ``allowed_special`` does not allow.
    """
    text = check_text(text, "encode()")
    enc = get_tokenizer()
    allowed = enc.special_tokens_set if allowed_special == "all" else _as_set(allowed_special)
    for special in sorted(enc.special_tokens_set - allowed):
        if special in text:
            raise TokenizerError(
                f"The text contains the special token {special!r} at index {text.index(special)}, "
                f"which is not allowed here. Pass allowed_special={{{special!r}}} to encode it as "
                f"id {enc.encode_single_token(special)}, or use encode_ordinary() to encode it as plain text."
            )
    # Checked above, so tiktoken need not check again.
    return enc.encode(text, allowed_special=allowed, disallowed_special=())


def _as_set(allowed_special: object) -> set[str]:
    """``allowed_special`` as a set of strings, or a :class:`TokenizerError` saying what is expected."""
    if (
        isinstance(allowed_special, (str, bytes))
        or not isinstance(allowed_special, Collection)
        or not all(isinstance(s, str) for s in allowed_special)
    ):
        raise TokenizerError(
            f"allowed_special must be 'all' or a set of special-token strings such as {{{EOT!r}}}, "
            f"got {allowed_special!r:.60}."
        )
    return set(allowed_special)


def encode_ordinary(text: str) -> list[int]:
    """Turn text into GPT-2 token ids, encoding ``<|endoftext|>`` like any other text.

    ``encode_ordinary("<|endoftext|>")`` gives the ids of ``<``, ``|``, ``endoftext`` ... rather
    than 50256. Raises :class:`TokenizerError` if ``text`` is not a valid ``str``.
    """
    return get_tokenizer().encode_ordinary(check_text(text, "encode_ordinary()"))


def _ids_as_list(ids: object, what: str) -> list[int]:
    """Return ``ids`` (a 1-D tensor or a sequence of ints) as a checked ``list[int]``."""
    if isinstance(ids, torch.Tensor):
        if ids.dim() != 1:
            raise TokenizerError(
                f"{what} expects a 1-D tensor of token ids, got shape {list(ids.shape)}."
                " Use ids_to_text() for a [1, T] batch, or index one row: ids[0]."
            )
        if ids.dtype.is_floating_point or ids.dtype.is_complex or ids.dtype == torch.bool:
            raise TokenizerError(
                f"{what} expects integer token ids, got a tensor of dtype {ids.dtype}."
            )
        ids = ids.tolist()
    elif isinstance(ids, (str, bytes, bytearray)) or not isinstance(ids, Sequence):
        raise TokenizerError(
            f"{what} expects a list of token ids (ints) or a 1-D tensor, "
            f"got {type(ids).__name__}: {ids!r:.60}."
        )
    out = []
    for position, i in enumerate(ids):
        # bool is an int subclass, but True as a token id is surely a mistake.
        if isinstance(i, bool) or not isinstance(i, numbers.Integral):
            raise TokenizerError(
                f"{what} expects integer token ids, got {type(i).__name__} {i!r:.40} at position {position}."
            )
        if not 0 <= i < VOCAB_SIZE:
            raise TokenizerError(
                f"{what} got token id {i} at position {position}, outside GPT-2's vocabulary "
                f"[0, {VOCAB_SIZE}). Was it produced by another tokenizer or model?"
            )
        out.append(int(i))
    return out


def decode(ids: Sequence[int] | torch.Tensor) -> str:
    """Turn GPT-2 token ids back into text.

    Args:
        ids: a list (or tuple) of ints, or a 1-D integer tensor.

    Returns:
        The text. Bytes that do not form complete UTF-8 characters (possible when decoding an
        arbitrary slice of ids) become U+FFFD, as in tiktoken.

    Raises:
        TokenizerError: ``ids`` is not a sequence of ints / 1-D integer tensor, or an id lies
            outside ``[0, 50257)``.
    """
    return get_tokenizer().decode(_ids_as_list(ids, "decode()"))


def text_to_ids(text: str, device: torch.device | str | None = None) -> torch.Tensor:
    """Encode ``text`` into a ``torch.long`` tensor of shape ``[1, T]`` (a batch of one).

    ``<|endoftext|>`` in the text becomes id 50256. ``device`` is where the tensor goes
    (default: the CPU).
    """
    return torch.tensor([encode(text)], dtype=torch.long, device=device)


def ids_to_text(ids: Sequence[int] | Sequence[Sequence[int]] | torch.Tensor) -> str:
    """Decode a ``[T]`` or ``[1, T]`` tensor (or list, or list of one list) of ids into text.

    Raises:
        TokenizerError: more than one sequence was given (decode each row separately), or
            anything :func:`decode` refuses.
    """
    if isinstance(ids, torch.Tensor):
        if ids.dim() == 2:
            if ids.shape[0] != 1:
                raise TokenizerError(
                    f"ids_to_text() expects one sequence ([T] or [1, T]), got shape {list(ids.shape)}; "
                    "decode each row separately: [ids_to_text(row) for row in ids]."
                )
            ids = ids[0]
    elif (
        isinstance(ids, Sequence)
        and len(ids) > 0
        and isinstance(ids[0], (Sequence, torch.Tensor))
        and not isinstance(ids[0], (str, bytes))
    ):
        if len(ids) != 1:
            raise TokenizerError(
                f"ids_to_text() expects one sequence ([T] or [1, T]), got {len(ids)} sequences; "
                "decode each one separately."
            )
        ids = ids[0]
    return decode(ids)
