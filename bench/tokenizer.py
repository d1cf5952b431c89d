"""Tokenizer speed: the book's from-scratch BPE (``mygpt.bpe``, GPT-2's files) vs tiktoken.

Both encode the same texts (The Verdict, 20 kB; Tiny Shakespeare, 1.1 MB) and must give
identical ids. The from-scratch tokenizer remembers the ids of each pre-token (word) it has
encoded, so it is timed three ways: with that cache cleared before each call ("cold"), kept
from the previous call ("warm"), and without it, merging every word from its bytes each time.
"""

from __future__ import annotations

import tiktoken
from common import interleaved, median, paired_ratio

from mygpt.bpe import BPETokenizer, apply_merges
from mygpt.files import fetch, read_text


def encode_without_cache(tok: BPETokenizer, text: str) -> list[int]:
    """What ``tok.encode_ordinary`` computes, with every pre-token merged from its bytes."""
    ids: list[int] = []
    for piece in tok._split_re.findall(text):
        ids.extend(
            apply_merges(
                [tok._byte_ids[b] for b in piece.encode("utf-8")], tok.ranks, tok.merged_ids
            )
        )
    return ids


def run(quick: bool = False, log=print) -> dict:
    """The whole tokenizer benchmark; returns a JSON-able dict."""
    repeats = 3 if quick else 5
    enc = tiktoken.get_encoding("gpt2")
    tok = BPETokenizer.from_gpt2_files(fetch("gpt2-encoder"), fetch("gpt2-vocab"))
    texts = {
        "the-verdict": read_text("the-verdict"),
        "tinyshakespeare": read_text("tinyshakespeare"),
    }
    if quick:
        texts["tinyshakespeare"] = texts["tinyshakespeare"][:200_000]
    rows = []
    for name, text in texts.items():
        log(f"  {name}: {len(text):,} characters, {repeats} interleaved rounds")
        reference = enc.encode_ordinary(text)
        tok._cache.clear()
        identical = tok.encode_ordinary(text) == reference

        def cold(text=text):
            tok._cache.clear()
            return tok.encode_ordinary(text)

        fns = {
            "tiktoken": lambda text=text: enc.encode_ordinary(text),
            "mygpt.bpe cold": cold,
            "mygpt.bpe warm": lambda text=text: tok.encode_ordinary(text),
        }
        if name == "the-verdict":  # merging every word from scratch: slow, so the short text only
            identical &= encode_without_cache(tok, text) == reference
            fns["mygpt.bpe no cache"] = lambda text=text: encode_without_cache(tok, text)
        times = interleaved(fns, repeats)
        for variant, t in times.items():
            rows.append(
                {
                    "text": name,
                    "characters": len(text),
                    "tokens": len(reference),
                    "variant": variant,
                    "tokens_per_s": len(reference) / median(t),
                    "bytes_per_s": len(text.encode()) / median(t),
                    "times_slower_than_tiktoken": paired_ratio(t, times["tiktoken"]),
                    "identical_ids": identical,
                    "seconds": t,
                }
            )
    return {"tiktoken": tiktoken.__version__, "rows": rows}
