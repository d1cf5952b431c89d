"""Training corpora for the book's models: named text sources, each split into train and held-out.

A *source* is one kind of text made from one or more registered files (:data:`SOURCES`):
``tinyshakespeare`` as it is, ``wikitext2`` as the WikiText-2 validation and test splits turned
back into plain text (:func:`mygpt.formats.wikitext_to_plain`); any other registered text file
is a source as it is. Each source is split on its own
(:func:`source_split`), so a model trained on several sources has a held-out part of each and its
loss can be reported per kind of text.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .data import train_val_split
from .errors import ConfigError
from .files import REGISTRY, read_text
from .formats import wikitext_to_plain


@dataclass(frozen=True)
class Source:
    """A kind of text: the registered files it is made of, joined, then prepared."""

    files: tuple[str, ...]
    prepare: Callable[[str], str] = str
    description: str = ""


SOURCES: dict[str, Source] = {
    "tinyshakespeare": Source(
        ("tinyshakespeare",), description="Shakespeare's plays (Tiny Shakespeare), as published"
    ),
    "wikitext2": Source(
        ("wikitext2-valid", "wikitext2-test"),
        wikitext_to_plain,
        "Wikipedia articles (WikiText-2 validation + test), detokenized, <unk> removed",
    ),
}


def _source(name: str) -> Source:
    if name in SOURCES:
        return SOURCES[name]
    if name in REGISTRY:  # any registered text file is a source as it is
        return Source((name,))
    raise ConfigError(
        f"Unknown text source {name!r}; known: {', '.join(sorted(SOURCES))} "
        f"(or any registered data file: {', '.join(sorted(REGISTRY))})."
    )


def source_files(name: str) -> dict[str, str]:
    """The registered files behind the source ``name`` and their SHA-256: what its text depends on."""
    return {f: REGISTRY[f].sha256 for f in _source(name).files}


def source_text(name: str) -> str:
    """The prepared text of the source ``name`` (its files fetched, verified and joined)."""
    source = _source(name)
    return source.prepare("\n".join(read_text(f) for f in source.files))


def source_split(name: str, train_frac: float = 0.9) -> tuple[str, str]:
    """``(train, held_out)`` text of the source ``name``: the first ``train_frac`` of it by
    characters, then the rest (see :func:`mygpt.train_val_split`)."""
    return train_val_split(source_text(name), train_frac)
