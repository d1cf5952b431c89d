"""The formats of the book's datasets: what a good copy looks like, and how to parse it.

Two files have a shape worth checking beyond their SHA-256 (:data:`mygpt.files.REGISTRY` runs
these checks on every copy it hands out):

- the **SMS Spam Collection**: 5,574 rows of ``label<TAB>text``, each label ``ham`` or ``spam``
  (:func:`parse_sms_spam`, :func:`check_sms_spam`);
- the **instruction data**: a JSON list of 1,100 Alpaca-style records, each a dict with string
  fields ``instruction``, ``input`` and ``output`` (:func:`check_instruction_data`).

Every function here takes a local path; finding and verifying the file is :mod:`mygpt.files`'s job.
"""

from __future__ import annotations

import json
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
