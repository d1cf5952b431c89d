"""Byte-level byte-pair encoding (BPE) from scratch: train a vocabulary, or load GPT-2's.

How GPT-2 turns text into ids, in four steps (each a small function below):

1. **Pre-tokenise.** :data:`GPT2_SPLIT_PATTERN` cuts the text into pieces: words with their
   leading space (``" world"``), runs of digits, runs of punctuation, runs of whitespace, and
   English contractions (``"'s"``, ``"'t"`` ...). Merges never cross a piece boundary, so
   ``"dog."`` and ``"dog!"`` share the token ``"dog"``.
2. **Bytes.** Each piece becomes its UTF-8 bytes, and each byte its own token (ids for all 256
   byte values exist from the start), so *any* string can be encoded: there is no unknown token.
3. **Merge.** A learned, ranked list of merges says which adjacent pair of tokens to fuse into a
   new token. Encoding repeatedly fuses the adjacent pair with the lowest rank (the one learned
   first) until no learned pair is left (:func:`apply_merges`; the tokenizer uses
   :func:`apply_merges_heap`, which gives the same ids in near-linear time).
4. **Training** learns that list: start from the 256 bytes, count adjacent pairs over the
   training text, fuse the most frequent pair into a new token, repeat until the vocabulary has
   the wanted size (:meth:`BPETokenizer.train`).

:class:`BPETokenizer` loads GPT-2's own ``encoder.json`` and ``vocab.bpe`` too
(:meth:`BPETokenizer.from_gpt2_files`) and then gives exactly the ids of tiktoken's ``gpt2``
encoding (:mod:`mygpt.tokenizer`), only more slowly. One caveat: whether a character is a
letter (``\\p{L}``) comes from the Unicode tables built into the regex engine, and the ``regex``
package and tiktoken's Rust engine carry different Unicode versions. For every character that
Python 3.11's Unicode 14 assigns, the two agree (checked code point by code point); code points
assigned only by later Unicode versions may be split differently.
"""

from __future__ import annotations

import heapq
import json
import math
import numbers
import os
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Literal

import regex  # not `re`: GPT-2's pattern needs Unicode classes (\p{L} letters, \p{N} numbers)

from .errors import DataError, TokenizerError
from .tokenizer import check_text  # one input check for both tokenizers

Pair = tuple[int, int]
Merge = tuple[Pair, int]  # ((left id, right id), id of the new token)

GPT2_SPLIT_PATTERN = (
    r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
)
"""GPT-2's pre-tokenisation regex (from OpenAI's ``encoder.py``), tried left to right:

- ``'s|'t|'re|'ve|'m|'ll|'d``: common English contractions (lower case only, as in GPT-2);
- `` ?\\p{L}+``: a run of letters (any script) with at most one leading space;
- `` ?\\p{N}+``: a run of digits/numerals with at most one leading space;
- `` ?[^\\s\\p{L}\\p{N}]+``: a run of other symbols (punctuation, emoji) with at most one leading space;
- ``\\s+(?!\\S)``: whitespace, but leave the last space for the next word (``"a   b"`` ->
  ``"a"``, ``"  "``, ``" b"``), so that ``" b"`` is the same token as in ``"a b"``;
- ``\\s+``: any remaining whitespace (e.g. at the end of the text).
"""

_GPT2_SPLIT_RE = regex.compile(GPT2_SPLIT_PATTERN)

_CACHE_LIMIT = 100_000  # pre-tokens remembered by BPETokenizer.encode; cleared when full


def bytes_to_unicode() -> dict[int, str]:
    """Map each of the 256 byte values to a printable, non-whitespace character (GPT-2's table).

    Why: GPT-2 stores its vocabulary as text files, with a merge per line written as two tokens
    separated by a space. Tokens are byte strings, though, which may hold spaces, newlines,
    control characters or half of a UTF-8 character. So each byte is written as one visible
    character: bytes that already print as themselves (``!``..``~``, ``¡``..``¬``, ``®``..``ÿ``)
    keep their character, and the other 68 (space, control characters, ...) are moved to
    ``chr(256)``, ``chr(257)``, ... in byte order. That is why a leading space shows up as ``Ġ``
    (``chr(256 + 32)``) in GPT-2's files. The map is one-to-one, so it can be reversed exactly.
    """
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    table = {b: chr(b) for b in printable}
    shift = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + shift)
            shift += 1
    return table


def split_text(text: str, pattern: str = GPT2_SPLIT_PATTERN) -> list[str]:
    """Pre-tokenise ``text`` into the pieces that BPE merges within (see :data:`GPT2_SPLIT_PATTERN`).

    ``"".join(split_text(text)) == text`` for the GPT-2 pattern: no character is dropped.
    """
    compiled = _GPT2_SPLIT_RE if pattern == GPT2_SPLIT_PATTERN else regex.compile(pattern)
    return compiled.findall(text)


def get_pairs(ids: Sequence[int]) -> set[Pair]:
    """Return the set of adjacent pairs in ``ids``: ``[1, 2, 3, 2, 3]`` -> ``{(1, 2), (2, 3), (3, 2)}``."""
    return set(zip(ids, ids[1:]))


def merge_pair(ids: Sequence[int], pair: Pair, new_id: int) -> list[int]:
    """Replace every occurrence of ``pair`` in ``ids`` by ``new_id``, scanning left to right.

    Occurrences do not overlap: ``merge_pair([5, 5, 5], (5, 5), 9) == [9, 5]``.
    """
    out: list[int] = []
    i = 0
    while i < len(ids):
        if i + 1 < len(ids) and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def count_pairs(words: Mapping[tuple[int, ...], int]) -> Counter[Pair]:
    """Count adjacent pairs over words given with their frequencies.

    Training counts over *distinct* pre-tokens weighted by how often each occurs, which is much
    cheaper than walking the raw text: ``{(1, 2, 3): 10, (2, 3): 5}`` -> ``{(1, 2): 10, (2, 3): 15}``.
    """
    counts: Counter[Pair] = Counter()
    for word, freq in words.items():
        for pair in zip(word, word[1:]):
            counts[pair] += freq
    return counts


def best_pair(counts: Mapping[Pair, int]) -> Pair:
    """The pair to merge next: the most frequent one; ties go to the smallest ids (deterministic)."""
    return min(counts, key=lambda pair: (-counts[pair], pair))


def apply_merges(
    ids: Sequence[int], ranks: Mapping[Pair, int], merged_ids: Mapping[Pair, int]
) -> list[int]:
    """Encode one pre-token's byte ids with learned merges, as GPT-2's ``encoder.py`` does.

    Repeatedly pick the adjacent pair with the lowest rank (learned earliest) and merge all its
    occurrences, until no adjacent pair has a rank. ``ranks[pair]`` is the merge's position in
    the learned list; ``merged_ids[pair]`` is the id of the token it makes.
    """
    ids = list(ids)
    while len(ids) > 1:
        pair = min(get_pairs(ids), key=lambda p: ranks.get(p, math.inf))
        if pair not in ranks:
            break  # no pair left that training ever merged
        ids = merge_pair(ids, pair, merged_ids[pair])
    return ids


def apply_merges_heap(
    ids: Sequence[int], ranks: Mapping[Pair, int], merged_ids: Mapping[Pair, int]
) -> list[int]:
    """:func:`apply_merges` in ``O(n log n)`` instead of ``O(n^2)``: the same ids, for long pieces.

    :func:`apply_merges` rescans the whole piece for every merge, so a 32,000-letter "word"
    takes seconds. Here the tokens form a linked list (``nxt``/``prv``: neighbour positions) and
    a heap holds ``(rank, position)`` of every mergeable adjacent pair, lowest rank first and,
    among equal ranks, leftmost first. Each merge touches only its two neighbours and pushes
    the (at most two) pairs it creates. Heap entries are never removed; one whose pair has
    changed since it was pushed (a neighbour merged) is recognised as stale and skipped.

    To equal :func:`apply_merges` for *any* ranks, all occurrences of one rank are merged
    (left to right) before the pairs they create enter the heap, as ``merge_pair`` does.
    """
    ids: list[int | None] = list(ids)  # None marks a position merged into its left neighbour
    n = len(ids)
    nxt = list(range(1, n + 1))  # n: no right neighbour
    prv = list(range(-1, n - 1))  # -1: no left neighbour

    def rank_at(i: int) -> int | None:
        """The rank of the pair starting at position ``i`` now (None: no mergeable pair there)."""
        j = nxt[i]
        return ranks.get((ids[i], ids[j])) if ids[i] is not None and j < n else None

    heap = [(r, i) for i in range(n - 1) if (r := rank_at(i)) is not None]
    heapq.heapify(heap)
    while heap:
        rank = heap[0][0]
        created: list[int] = []  # positions of the new pairs: pushed after this rank is done
        while heap and heap[0][0] == rank:
            _, i = heapq.heappop(heap)
            if rank_at(i) != rank:
                continue  # stale: a merge next to it changed this pair
            j = nxt[i]
            ids[i], ids[j] = merged_ids[(ids[i], ids[j])], None
            nxt[i] = nxt[j]
            if nxt[i] < n:
                prv[nxt[i]] = i
            created += [prv[i], i] if prv[i] >= 0 else [i]
        for i in created:
            if (r := rank_at(i)) is not None:
                heapq.heappush(heap, (r, i))
    return [t for t in ids if t is not None]


def _special_splitter(specials: Iterable[str]) -> regex.Pattern:
    """A regex that splits text around the given special tokens, keeping them (longest first)."""
    alternatives = "|".join(regex.escape(s) for s in sorted(specials, key=len, reverse=True))
    return regex.compile(f"({alternatives})")


class BPETokenizer:
    """A byte-level BPE tokenizer: 256 byte tokens, an ordered list of merges, special tokens.

    Build one with :meth:`train` (learn merges from text) or :meth:`from_gpt2_files` (GPT-2's).

    Attributes:
        merges: the merges in the order they were learned, each ``((left_id, right_id), new_id)``;
            ``merges[0]`` is the first (most frequent) one.
        merge_counts: for a trained tokenizer, how often each merged pair occurred when it was
            chosen (same order as ``merges``); empty for a loaded one.
        vocab: ``id -> bytes`` of every ordinary token (bytes and merged tokens).
        special_tokens: ``text -> id`` of tokens like ``<|endoftext|>`` that are never merged
            and are matched in the text before pre-tokenisation.
        pattern: the pre-tokenisation regex.
    """

    def __init__(
        self,
        merges: Sequence[Merge],
        vocab: Mapping[int, bytes],
        special_tokens: Mapping[str, int] | None = None,
        pattern: str = GPT2_SPLIT_PATTERN,
        merge_counts: Sequence[int] = (),
    ) -> None:
        """Assemble a tokenizer from its parts, checking that they fit together.

        Raises:
            TokenizerError: a byte value has no token, a merge names a missing token or does not
                produce the concatenation of its parts, or ids collide.
        """
        self.merges: list[Merge] = [((int(a), int(b)), int(new)) for (a, b), new in merges]
        self.merge_counts: list[int] = list(merge_counts)
        self.vocab: dict[int, bytes] = dict(vocab)
        self.special_tokens: dict[str, int] = dict(special_tokens or {})
        self.pattern = pattern
        self._split_re = regex.compile(pattern)

        # Each byte value starts as its own token. They are ids 0..255 after training, but not in
        # GPT-2's files (where "!" is 0), so keep a byte -> id table.
        single = {tok[0]: i for i, tok in self.vocab.items() if len(tok) == 1}
        missing = [b for b in range(256) if b not in single]
        if missing:
            raise TokenizerError(
                f"The vocabulary lacks single-byte tokens for {len(missing)} byte values "
                f"(first: {missing[0]}); byte-level BPE needs all 256 so that any text can be encoded."
            )
        self._byte_ids = [single[b] for b in range(256)]

        self.ranks: dict[Pair, int] = {}
        self.merged_ids: dict[Pair, int] = {}
        for rank, ((a, b), new) in enumerate(self.merges):
            if a not in self.vocab or b not in self.vocab or new not in self.vocab:
                raise TokenizerError(
                    f"Merge {rank} ({a}, {b}) -> {new} names a token id missing from the vocabulary."
                )
            if self.vocab[new] != self.vocab[a] + self.vocab[b]:
                raise TokenizerError(
                    f"Merge {rank} ({a}, {b}) -> {new}: token {new} is {self.vocab[new]!r}, "
                    f"not the concatenation {self.vocab[a] + self.vocab[b]!r}."
                )
            self.ranks[(a, b)] = rank
            self.merged_ids[(a, b)] = new
        clash = set(self.special_tokens.values()) & set(self.vocab)
        if clash:
            raise TokenizerError(
                f"Special token ids {sorted(clash)} are also ordinary token ids; give them their own ids."
            )

        self._id_to_special = {i: s.encode("utf-8") for s, i in self.special_tokens.items()}
        self._special_re = _special_splitter(self.special_tokens) if self.special_tokens else None
        self._cache: dict[str, tuple[int, ...]] = {}

    # ----------------------------------------------------------------------------------------
    # Building a tokenizer

    @classmethod
    def train(
        cls,
        text: str,
        vocab_size: int,
        special_tokens: Sequence[str] = ("<|endoftext|>",),
        verbose: bool = False,
        pattern: str = GPT2_SPLIT_PATTERN,
    ) -> BPETokenizer:
        """Learn a BPE vocabulary of ``vocab_size`` tokens from ``text``.

        Starts from the 256 byte tokens (ids 0..255), then ``vocab_size - 256 - len(special_tokens)``
        times: count adjacent pairs over the pre-tokens, fuse the most frequent pair (ties: the
        smallest ids) into a new token with the next id. Special tokens get the last ids, like
        ``<|endoftext|>`` in GPT-2. Their text is cut out of the training text, so no merge
        crosses or touches them.

        Args:
            text: the training text.
            vocab_size: wanted vocabulary size, special tokens included (at least
                ``256 + len(special_tokens)``).
            special_tokens: tokens to reserve (default: ``<|endoftext|>``).
            verbose: print each merge as it is learned (deterministic lines, no timings).
            pattern: the pre-tokenisation regex (GPT-2's by default).

        Raises:
            TokenizerError: bad arguments, or the text has too few adjacent pairs left to reach
                ``vocab_size`` (use more text or a smaller ``vocab_size``).
        """
        text = check_text(text, "BPETokenizer.train()")
        special_tokens = cls._check_special_tokens(special_tokens)
        if (
            isinstance(vocab_size, bool)
            or not isinstance(vocab_size, int)
            or vocab_size < 256 + len(special_tokens)
        ):
            raise TokenizerError(
                f"vocab_size must be an int of at least 256 (the byte tokens) + {len(special_tokens)} "
                f"(the special tokens) = {256 + len(special_tokens)}, got {vocab_size!r}."
            )
        n_merges = vocab_size - 256 - len(special_tokens)

        # Distinct pre-tokens with their frequencies: the work scales with the vocabulary of the
        # text, not its length.
        chunks = _special_splitter(special_tokens).split(text) if special_tokens else [text]
        piece_freqs = Counter(
            piece
            for chunk in chunks
            if chunk not in special_tokens
            for piece in split_text(chunk, pattern)
        )
        words = [list(piece.encode("utf-8")) for piece in piece_freqs]
        freqs = list(piece_freqs.values())

        # Pair counts, kept up to date as words change, plus which words hold each pair, so that
        # a merge only revisits the words it affects.
        counts: Counter[Pair] = Counter()
        holders: defaultdict[Pair, set[int]] = defaultdict(set)

        def tally(w: int, sign: int) -> None:
            word = words[w]
            for pair in zip(word, word[1:]):
                counts[pair] += sign * freqs[w]
                if sign > 0:
                    holders[pair].add(w)
                else:
                    holders[pair].discard(w)
                    if counts[pair] == 0:
                        del counts[pair]

        for w in range(len(words)):
            tally(w, +1)

        vocab = {i: bytes([i]) for i in range(256)}
        merges: list[Merge] = []
        merge_counts: list[int] = []
        for step in range(n_merges):
            if not counts:
                raise TokenizerError(
                    f"Training stopped after {step} of {n_merges} merges: no adjacent pair of tokens "
                    f"is left in the text (every pre-token is a single token). Use more text or a "
                    f"vocab_size of at most {256 + step + len(special_tokens)}."
                )
            pair = best_pair(counts)
            new_id = 256 + step
            vocab[new_id] = vocab[pair[0]] + vocab[pair[1]]
            merges.append((pair, new_id))
            merge_counts.append(counts[pair])
            if verbose:
                print(
                    f"merge {step + 1}/{n_merges}: {vocab[pair[0]]!r} + {vocab[pair[1]]!r} -> "
                    f"{new_id} {vocab[new_id]!r} ({counts[pair]} times)"
                )
            for w in sorted(holders[pair]):
                tally(w, -1)
                words[w] = merge_pair(words[w], pair, new_id)
                tally(w, +1)

        specials = {s: 256 + n_merges + k for k, s in enumerate(special_tokens)}
        return cls(merges, vocab, specials, pattern=pattern, merge_counts=merge_counts)

    @classmethod
    def from_gpt2_files(
        cls,
        encoder_json_path: str | os.PathLike[str],
        vocab_bpe_path: str | os.PathLike[str],
        special_tokens: Collection[str] = ("<|endoftext|>",),
    ) -> BPETokenizer:
        """Load GPT-2's tokenizer from OpenAI's ``encoder.json`` and ``vocab.bpe``.

        ``encoder.json`` maps each token, written with :func:`bytes_to_unicode`'s characters, to
        its id; ``vocab.bpe`` lists the 50,000 merges in rank order, one ``left right`` per line
        after a ``#version`` header. Entries named in ``special_tokens`` (``<|endoftext|>``,
        id 50256) become special tokens, as in tiktoken.

        Raises:
            DataError: a file is missing or is not in GPT-2's format.
        """
        encoder = _read_json(encoder_json_path)
        merge_lines = _read_merge_lines(vocab_bpe_path)
        byte_of = {ch: b for b, ch in bytes_to_unicode().items()}

        vocab: dict[int, bytes] = {}
        specials: dict[str, int] = {}
        for token, i in encoder.items():
            if token in special_tokens:
                specials[token] = i
                continue
            try:
                vocab[i] = bytes(byte_of[ch] for ch in token)
            except KeyError as exc:
                raise DataError(
                    f"{encoder_json_path}: token {token!r} (id {i}) uses the character {exc.args[0]!r}, "
                    "which is not in GPT-2's byte-to-character table. Is this GPT-2's encoder.json?"
                ) from None
        missing = [s for s in special_tokens if s not in specials]
        if missing:
            raise DataError(f"{encoder_json_path} has no entry for the special token(s) {missing}.")

        merges: list[Merge] = []
        for line_no, line in merge_lines:
            parts = line.split(" ")
            if (
                len(parts) != 2
                or any(p not in encoder for p in parts)
                or parts[0] + parts[1] not in encoder
            ):
                raise DataError(
                    f"{vocab_bpe_path}, line {line_no}: {line!r} is not a merge of two tokens of "
                    f"{encoder_json_path} into a third. Are the two files from the same tokenizer?"
                )
            merges.append(((encoder[parts[0]], encoder[parts[1]]), encoder[parts[0] + parts[1]]))
        return cls(merges, vocab, specials)

    @staticmethod
    def _check_special_tokens(special_tokens: object) -> tuple[str, ...]:
        if isinstance(special_tokens, str):
            raise TokenizerError(
                f"special_tokens must be a sequence of strings, got the string {special_tokens!r}; "
                f"write ({special_tokens!r},) for one token."
            )
        tokens = tuple(special_tokens)  # type: ignore[arg-type]
        if not all(isinstance(s, str) and s for s in tokens) or len(set(tokens)) != len(tokens):
            raise TokenizerError(
                f"special_tokens must be distinct, non-empty strings, got {tokens!r}."
            )
        return tokens

    # ----------------------------------------------------------------------------------------
    # Using it

    @property
    def vocab_size(self) -> int:
        """Number of token ids: byte tokens + merged tokens + special tokens."""
        return len(self.vocab) + len(self.special_tokens)

    def encode_piece(self, piece: str) -> tuple[int, ...]:
        """Token ids of one pre-token (bytes, then the merges), remembered for reuse.

        Merges with :func:`apply_merges_heap`: the ids of :func:`apply_merges`, but near-linear
        time, so even a 32,000-letter "word" (one pre-token) encodes in a fraction of a second.
        """
        ids = self._cache.get(piece)
        if ids is None:
            byte_ids = [self._byte_ids[b] for b in piece.encode("utf-8")]
            ids = tuple(apply_merges_heap(byte_ids, self.ranks, self.merged_ids))
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[piece] = ids
        return ids

    def encode_ordinary(self, text: str) -> list[int]:
        """Encode ``text`` treating special-token text like any other text (no special ids)."""
        text = check_text(text, "BPETokenizer.encode_ordinary()")
        return self._encode_chunk(text)

    def _encode_chunk(self, text: str) -> list[int]:
        ids: list[int] = []
        for piece in self._split_re.findall(text):
            ids.extend(self.encode_piece(piece))
        return ids

    def encode(
        self, text: str, allowed_special: Collection[str] | Literal["all"] = "all"
    ) -> list[int]:
        """Encode ``text`` into token ids.

        Special tokens in ``allowed_special`` (default: all of them, so ``<|endoftext|>`` -> 50256
        with GPT-2's files) become their own id. A special token that appears in the text but is
        not allowed raises, as in tiktoken; use :meth:`encode_ordinary` to encode it as plain text.

        Raises:
            TokenizerError: ``text`` is not a ``str`` (or holds lone surrogates), a disallowed
                special token appears in it, or ``allowed_special`` names an unknown token.
        """
        text = check_text(text, "BPETokenizer.encode()")
        if allowed_special == "all":
            allowed = set(self.special_tokens)
        elif isinstance(allowed_special, (str, bytes)) or not isinstance(
            allowed_special, Collection
        ):
            raise TokenizerError(
                f"allowed_special must be 'all' or a set of special-token strings, got {allowed_special!r:.60}."
            )
        else:
            allowed = set(allowed_special)
            unknown = allowed - set(self.special_tokens)
            if unknown:
                raise TokenizerError(
                    f"allowed_special names {sorted(unknown)}, which are not special tokens of this "
                    f"tokenizer (it has {sorted(self.special_tokens)})."
                )
        if self._special_re is None:
            return self._encode_chunk(text)

        ids: list[int] = []
        for k, chunk in enumerate(self._special_re.split(text)):
            if k % 2 == 0:  # text between special tokens (split() puts the matches at odd k)
                ids.extend(self._encode_chunk(chunk))
            elif chunk in allowed:
                ids.append(self.special_tokens[chunk])
            else:
                raise TokenizerError(
                    f"The text contains the special token {chunk!r}, which is not allowed here. "
                    f"Pass allowed_special={{{chunk!r}}} to encode it as id {self.special_tokens[chunk]}, "
                    "or use encode_ordinary() to encode it as plain text."
                )
        return ids

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """The bytes that ``ids`` stand for (special tokens as their UTF-8 text).

        Raises:
            TokenizerError: ``ids`` is not a list of ints / 1-D tensor, or holds an unknown id.
        """
        if hasattr(ids, "tolist") and not isinstance(ids, (list, tuple)):  # a tensor or array
            if getattr(ids, "ndim", 1) != 1:
                raise TokenizerError(
                    f"decode() expects a 1-D sequence of ids, got shape {tuple(ids.shape)}."
                )
            ids = ids.tolist()
        if isinstance(ids, (str, bytes, bytearray)) or not isinstance(ids, Iterable):
            raise TokenizerError(
                f"decode() expects a list of token ids (ints), got {type(ids).__name__}: {ids!r:.60}."
            )
        parts = []
        for position, i in enumerate(ids):
            if isinstance(i, bool) or not isinstance(i, numbers.Integral):
                raise TokenizerError(
                    f"decode() expects integer token ids, got {type(i).__name__} {i!r:.40} at position {position}."
                )
            i = int(i)
            token = self.vocab.get(i)
            if token is None:
                token = self._id_to_special.get(i)
            if token is None:
                raise TokenizerError(
                    f"decode() got token id {i} at position {position}, which is not in this tokenizer's "
                    f"vocabulary of {self.vocab_size} ids."
                )
            parts.append(token)
        return b"".join(parts)

    def decode(self, ids: Iterable[int]) -> str:
        """Turn token ids back into text; ``decode(encode(text)) == text`` for any valid text.

        Bytes that do not form whole UTF-8 characters (possible for an arbitrary slice of ids)
        become U+FFFD, as in tiktoken.
        """
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    def __repr__(self) -> str:
        return (
            f"BPETokenizer(vocab_size={self.vocab_size}, merges={len(self.merges)}, "
            f"special_tokens={self.special_tokens})"
        )


def _read_json(path: str | os.PathLike[str]) -> dict[str, int]:
    """Read GPT-2's ``encoder.json`` (token text -> id), with clear errors."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise DataError(f"GPT-2's encoder.json was not found at {os.fspath(path)!r}.") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(
            f"{os.fspath(path)!r} is not a JSON file ({exc}); expected GPT-2's encoder.json."
        ) from None
    if not isinstance(data, dict) or not all(isinstance(v, int) for v in data.values()):
        raise DataError(
            f"{os.fspath(path)!r} is not GPT-2's encoder.json: expected an object of token -> id."
        )
    return data


def _read_merge_lines(path: str | os.PathLike[str]) -> list[tuple[int, str]]:
    """Read GPT-2's ``vocab.bpe``: ``(line number, "left right")`` for each merge, in rank order."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().split("\n")
    except FileNotFoundError:
        raise DataError(f"GPT-2's vocab.bpe was not found at {os.fspath(path)!r}.") from None
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{os.fspath(path)!r} is not UTF-8 text ({exc}); expected GPT-2's vocab.bpe."
        ) from None
    if not lines or not lines[0].startswith("#version"):
        raise DataError(
            f"{os.fspath(path)!r} does not start with a '#version' line; expected GPT-2's vocab.bpe."
        )
    return [(n, line) for n, line in enumerate(lines[1:], start=2) if line]
