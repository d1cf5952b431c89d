"""The formats of the book's datasets: what a good copy looks like, and how to parse it.

Two files have a shape worth checking beyond their SHA-256 (:data:`mygpt.files.REGISTRY` runs
these checks on every copy it hands out):

- the **SMS Spam Collection**: 5,574 rows of ``label<TAB>text``, each label ``ham`` or ``spam``
  (:func:`parse_sms_spam`, :func:`check_sms_spam`);
- the **instruction data**: a JSON list of 1,100 Alpaca-style records, each a dict with string
  fields ``instruction``, ``input`` and ``output`` (:func:`check_instruction_data`).

Every function here takes a local path; finding and verifying the file is :mod:`mygpt.files`'s job,
except :func:`wikitext_to_plain`, which turns WikiText's tokenized text back into plain text.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from .errors import DataError

SMS_SPAM_ROWS = 5574
SMS_SPAM_LABELS = ("ham", "spam")
INSTRUCTION_RECORDS = 1100
INSTRUCTION_KEYS = ("instruction", "input", "output")


def parse_sms_spam(path: Path, label: str | None = None) -> list[tuple[str, str]]:
    """Read ``label<TAB>text`` rows as ``(label, text)`` pairs.

    ``label`` names the file in messages (default: its path).

    Raises:
        DataError: the file is not UTF-8 text, or a row is not ``ham``/``spam``, a tab, and text.
    """
    name = label or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{name} cannot be read as UTF-8 text ({exc}).") from exc
    # split("\n"), not splitlines(): the latter also splits on form feeds and the like.
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    rows = []
    for number, line in enumerate(lines, start=1):
        kind, tab, message = line.rstrip("\r").partition("\t")
        if not tab or kind not in SMS_SPAM_LABELS:
            raise DataError(
                f"{name} line {number} is not 'ham<TAB>text' or 'spam<TAB>text': {line[:60]!r}."
            )
        rows.append((kind, message))
    return rows


def check_sms_spam(path: Path, label: str | None = None) -> None:
    """Raise :class:`DataError` unless ``path`` has 5,574 tab-separated ``ham``/``spam`` rows.

    ``label`` names the file in messages (default: its path).
    """
    rows = parse_sms_spam(path, label)
    if len(rows) != SMS_SPAM_ROWS:
        raise DataError(f"{label or path} has {len(rows):,} rows, expected {SMS_SPAM_ROWS:,}.")


def check_instruction_data(path: Path, label: str | None = None) -> None:
    """Raise :class:`DataError` unless ``path`` is a JSON list of 1,100 instruction records.

    ``label`` names the file in messages (default: its path).
    """
    name = label or str(path)
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{name} is not readable JSON ({exc}).") from exc
    if not isinstance(records, list) or len(records) != INSTRUCTION_RECORDS:
        found = (
            f"a list of {len(records):,}" if isinstance(records, list) else type(records).__name__
        )
        raise DataError(
            f"{name} holds {found}, expected a list of {INSTRUCTION_RECORDS:,} records."
        )
    for index, record in enumerate(records):
        if not isinstance(record, dict) or not all(
            isinstance(record.get(key), str) for key in INSTRUCTION_KEYS
        ):
            raise DataError(
                f"{name} record {index} is not a dict with string fields {INSTRUCTION_KEYS}: "
                f"{str(record)[:80]}."
            )


# WikiText joins hyphens and separators inside numbers and words with "@": "1 @,@ 000".
_WIKITEXT_JOINED = re.compile(r" ?@([-,.])@ ?")
# Its tokenizer puts a space before these; plain English has none.
_SPACE_BEFORE = re.compile(r" ([,.;:!?%)\]]|'(?:s|t|re|ve|m|d|ll)\b)")
_SPACE_AFTER = re.compile(r"([(\[$]) ")
_QUOTED = re.compile(r'" ([^"]*?) "')
_UNK = re.compile(r" ?<unk>")
_EMPTY = re.compile(r' ?(?:\( \)|\(\)|"")')  # what is left of "( <unk> )" and "<unk>"
_HEADING = re.compile(r"^(=(?: =)*) (.*?) (=(?: =)*)$")


def wikitext_to_plain(text: str) -> str:
    """WikiText's tokenized form -> plain text, the way GPT-2's tokenizer expects text to look.

    WikiText (Merity et al., 2016) is stored word-tokenized: ``"1 @,@ 000 km ( 620 mi ) , the
    company 's"``. Undone here, line by line: ``@-@``, ``@,@``, ``@.@`` join their neighbours
    (``1,000``); no space before ``, . ; : ! ? % ) ]`` and contractions (``'s``), none after
    ``( [ $``; ``" quoted "`` -> ``"quoted"``; headings ``= = Name = =`` -> ``== Name ==``;
    surrounding spaces go and blank lines separate paragraphs.

    ``<unk>`` (the rare words the dataset replaced, about one word in twenty) is *removed*: kept,
    it would cost three GPT-2 tokens each time and a model trained on it would learn to write
    ``<unk>`` in one word of twenty. Removing it leaves a gap in some sentences ("a species of
    lobster" for "a species of <unk> lobster") but no token the model should learn.
    """
    paragraphs = []
    for line in text.splitlines():
        line = line.strip()
        heading = _HEADING.match(line)
        if heading:
            marks, title, _ = heading.groups()
            level = "=" * marks.count("=")
            line = f"{level} {_detokenize(title)} {level}"
        elif line:
            line = _detokenize(line)
        if line:
            paragraphs.append(line)
    return "\n\n".join(paragraphs) + "\n"


def _detokenize(line: str) -> str:
    line = _WIKITEXT_JOINED.sub(r"\1", line)
    line = _QUOTED.sub(r'"\1"', line)  # quotes paired before <unk> goes, so no pair shifts
    line = _EMPTY.sub("", _UNK.sub("", line)).strip()
    line = _SPACE_BEFORE.sub(r"\1", line)
    return _SPACE_AFTER.sub(r"\1", line)
