"""The book's public data files, and the sliding-window dataset that turns text into training pairs.

Two jobs live here:

1. **Files.** :data:`REGISTRY` lists every public file the chapters read, with its canonical
   address and its SHA-256. :func:`fetch` returns a verified local path: from the directory in
   ``MYGPT_DATA_DIR`` when the file is there (offline copies; nothing is copied), else from the
   cache (``MYGPT_CACHE_DIR`` or ``~/.cache/mygpt``, subfolder ``data``), downloading it first if
   needed. A download goes to a temporary file beside its destination and only replaces the
   destination once it is complete and verified, so the cache never holds a partial file.
2. **Next-token pairs.** :class:`TokenWindowDataset` slides a window of ``context_length`` tokens
   over a sequence of token ids; each window ``x`` comes with its target ``y``, the same window
   shifted one token to the right. :func:`create_dataloader` wraps it in a seeded ``DataLoader``.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from .errors import DataError
from .paths import cache_dir, data_dir

USER_AGENT = "mygpt (GPT-2 from scratch book)"
DEFAULT_TIMEOUT = 60.0  # seconds without data before a download gives up
_CHUNK = 1 << 16


# --------------------------------------------------------------------------------------------
# Shape checks: what a file must look like, beyond its hash
# --------------------------------------------------------------------------------------------

SMS_SPAM_ROWS = 5574
SMS_SPAM_LABELS = ("ham", "spam")
INSTRUCTION_RECORDS = 1100
INSTRUCTION_KEYS = ("instruction", "input", "output")


def _parse_sms_spam(path: Path, label: str | None = None) -> list[tuple[str, str]]:
    """Read ``label<TAB>text`` rows, raising :class:`DataError` on any malformed row."""
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
    rows = _parse_sms_spam(path, label)
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


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DataFile:
    """One public file the book uses.

    Attributes:
        name: short key used with :func:`fetch` (e.g. ``"the-verdict"``).
        url: canonical download address.
        sha256: expected SHA-256 of the file (hex).
        filename: path relative to the data directory and to the cache's ``data`` folder
            (the layout of the offline copies, so ``MYGPT_DATA_DIR`` can point at them).
        description: one line for humans.
        archive_member: if set, ``url`` is a zip archive and this member is the file.
        check: extra shape check ``check(path, label)`` that raises :class:`DataError`; always run.
        hash_required: if ``False``, a file whose hash differs is still accepted when ``check``
            passes (for files whose published copies differ byte-wise but not in content).
    """

    name: str
    url: str
    sha256: str
    filename: str
    description: str = ""
    archive_member: str | None = None
    check: Callable[[Path, str | None], None] | None = field(
        default=None, compare=False, repr=False
    )
    hash_required: bool = True


_RASBT = "https://raw.githubusercontent.com/rasbt/LLMs-from-scratch/main"
_GPT2_BPE = "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main"

REGISTRY: dict[str, DataFile] = {
    f.name: f
    for f in (
        DataFile(
            "the-verdict",
            f"{_RASBT}/ch02/01_main-chapter-code/the-verdict.txt",
            "b41e41a68f0398a3154ae69e2e4c0e2694e17fe0d66730536837f1b01935b31f",
            "the-verdict.txt",
            "Edith Wharton, The Verdict (1908), 20,479 characters; public domain",
        ),
        DataFile(
            "tinyshakespeare",
            "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/"
            "input.txt",
            "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
            "tinyshakespeare.txt",
            "Shakespeare, 1,115,394 characters (char-rnn's corpus); public domain",
        ),
        DataFile(
            "sms-spam",
            "https://archive.ics.uci.edu/static/public/228/sms+spam+collection.zip",
            "7d039a24a6083ed9ef0f806ebad56bbb976e3aeb8de05669173bfdc4996c239d",
            "sms-spam-collection/SMSSpamCollection",
            "SMS Spam Collection v.1, 5,574 rows (4,827 ham, 747 spam); CC BY 4.0",
            archive_member="SMSSpamCollection",
            check=check_sms_spam,
            # The pinned hash is of a public mirror; the UCI zip's copy may differ in bytes.
            hash_required=False,
        ),
        DataFile(
            "instruction-data",
            f"{_RASBT}/ch07/01_main-chapter-code/instruction-data.json",
            "7e09a9af353722ca15c18bc580f093f9c39d3178335a75177319cb1e1d163944",
            "instruction-data.json",
            "1,100 Alpaca-style records {instruction, input, output}; Apache-2.0",
            check=check_instruction_data,
        ),
        DataFile(
            "gpt2-encoder",
            f"{_GPT2_BPE}/encoder.json",
            "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
            "gpt2-bpe/encoder.json",
            "GPT-2's byte-level BPE vocabulary (50,257 entries); modified MIT",
        ),
        DataFile(
            "gpt2-vocab",
            f"{_GPT2_BPE}/vocab.bpe",
            "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
            "gpt2-bpe/vocab.bpe",
            "GPT-2's 50,000 BPE merges; modified MIT",
        ),
    )
}


def _lookup(name: str | DataFile) -> DataFile:
    if isinstance(name, DataFile):
        return name
    if name not in REGISTRY:
        raise DataError(f"Unknown data file {name!r}. Known names: {', '.join(sorted(REGISTRY))}.")
    return REGISTRY[name]


def sha256_of(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes, as lowercase hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _problem(datafile: DataFile, path: Path, label: str) -> str | None:
    """What is wrong with ``path`` as a copy of ``datafile`` (``None`` if nothing)."""
    actual = sha256_of(path)
    if actual != datafile.sha256 and datafile.hash_required:
        return (
            f"{label} does not match {datafile.name!r}: sha256 is {actual}, "
            f"expected {datafile.sha256}"
        )
    if datafile.check is not None:
        try:
            datafile.check(path, label)
        except DataError as exc:
            if actual == datafile.sha256:
                return str(exc).rstrip(".")
            return f"{str(exc).rstrip('.')}; its sha256 is {actual}, expected {datafile.sha256}"
    return None


def verify_file(datafile: DataFile, path: str | os.PathLike) -> None:
    """Check ``path`` against ``datafile``'s hash and shape; raise :class:`DataError` if it fails.

    The shape check (if any) always runs. A hash mismatch is fatal unless
    ``datafile.hash_required`` is false, in which case a passing shape check is enough.
    """
    path = Path(path)
    problem = _problem(datafile, path, str(path))
    if problem is not None:
        raise DataError(
            f"{problem}. The file is corrupt or a different version: replace it with a good copy "
            f"(or, in the cache, delete it so that it is downloaded again)."
        )


# --------------------------------------------------------------------------------------------
# Download and fetch
# --------------------------------------------------------------------------------------------


def _offline_hint(datafile: DataFile) -> str:
    hint = (
        f"If this machine is offline, set MYGPT_DATA_DIR to a directory holding a copy at "
        f"<MYGPT_DATA_DIR>/{datafile.filename}."
    )
    local = data_dir()
    if local is not None:
        hint += f" (MYGPT_DATA_DIR is {local}, but {local / datafile.filename} does not exist.)"
    return hint


def _stream(url: str, dest: Path, timeout: float) -> None:
    """Copy the body at ``url`` into ``dest``; fail if it is shorter than announced."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    with urllib.request.urlopen(request, timeout=timeout) as response, open(dest, "wb") as out:
        announced = response.headers.get("Content-Length")
        received = 0
        while chunk := response.read(_CHUNK):
            out.write(chunk)
            received += len(chunk)
    # http.client returns a short body without error when the connection drops: check it here.
    if announced is not None and announced.isdigit() and received != int(announced):
        raise DataError(f"the server announced {int(announced):,} bytes but sent {received:,}")


def _extract(archive: Path, member: str, dest: Path) -> None:
    """Copy ``member`` of the zip ``archive`` into ``dest``."""
    try:
        with zipfile.ZipFile(archive) as zf, zf.open(member) as src, open(dest, "wb") as out:
            while chunk := src.read(_CHUNK):
                out.write(chunk)
    except KeyError as exc:
        raise DataError(f"the zip archive has no member {member!r}") from exc
    except zipfile.BadZipFile as exc:
        raise DataError(f"the download is not a valid zip archive ({exc})") from exc


def download(
    datafile: DataFile,
    dest: str | os.PathLike,
    *,
    url: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> Path:
    """Download ``datafile`` to ``dest`` from ``url`` (default: its canonical address); verify it.

    The bytes go to a temporary file in ``dest``'s directory; only a complete, verified file is
    moved into place (atomically, with ``os.replace``). On any failure every temporary file is
    removed and :class:`DataError` says which address failed, how, and how to work offline.
    For a zip archive (``datafile.archive_member``), the member is extracted and verified.
    """
    url = url or datafile.url
    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(
            f"Cannot create {dest.parent} to store {datafile.name!r} ({exc}). "
            f"Set MYGPT_CACHE_DIR to a writable directory."
        ) from exc

    temps: list[Path] = []

    def new_temp() -> Path:
        fd, name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
        os.close(fd)
        temps.append(Path(name))
        return temps[-1]

    try:
        try:
            candidate = new_temp()
            _stream(url, candidate, timeout)
            if datafile.archive_member is not None:
                archive, candidate = candidate, new_temp()
                _extract(archive, datafile.archive_member, candidate)
            problem = _problem(datafile, candidate, "the downloaded file")
            if problem is not None:
                raise DataError(problem)
        except (DataError, OSError, http.client.HTTPException) as exc:
            raise DataError(
                f"Downloading {datafile.name!r} from {url} failed: {exc}. {_offline_hint(datafile)}"
            ) from exc
        os.replace(candidate, dest)
        temps.remove(candidate)
    finally:
        # Whatever happened (even Ctrl-C), leave no partial file behind.
        for temp in temps:
            temp.unlink(missing_ok=True)
    return dest


def fetch(
    name: str | DataFile, *, url: str | None = None, timeout: float = DEFAULT_TIMEOUT
) -> Path:
    """Return a verified local path to the public file ``name`` (a :data:`REGISTRY` key).

    Order: ``$MYGPT_DATA_DIR/<filename>`` if it exists (used in place, never copied; a mismatch
    raises :class:`DataError`), else the cache copy ``<cache_dir()>/data/<filename>`` if it is
    valid, else a fresh download into the cache (from ``url`` if given, for mirrors and tests).
    A :class:`DataFile` may be passed instead of a name.
    """
    datafile = _lookup(name)
    local = data_dir()
    if local is not None and (local / datafile.filename).is_file():
        path = local / datafile.filename
        verify_file(datafile, path)
        return path

    cached = cache_dir() / "data" / datafile.filename
    if cached.is_file():
        try:
            verify_file(datafile, cached)
            return cached
        except DataError:
            pass  # a stale or damaged cache copy is simply downloaded again
    return download(datafile, cached, url=url, timeout=timeout)


def read_text(name: str | DataFile) -> str:
    """The text of the public file ``name`` (UTF-8), fetched and verified with :func:`fetch`."""
    return fetch(name).read_text(encoding="utf-8")


def load_sms_spam() -> list[tuple[str, str]]:
    """The SMS Spam Collection as ``(label, text)`` pairs; ``label`` is ``"ham"`` or ``"spam"``."""
    return _parse_sms_spam(fetch("sms-spam"))  # fetch has already checked the shape


def load_instruction_data() -> list[dict]:
    """The 1,100 instruction records, each a dict with ``instruction``, ``input`` and ``output``."""
    return json.loads(fetch("instruction-data").read_text(encoding="utf-8"))


# --------------------------------------------------------------------------------------------
# Next-token dataset
# --------------------------------------------------------------------------------------------

TokenIds = Sequence[int] | torch.Tensor


def _as_ids(ids: TokenIds) -> torch.Tensor:
    """Token ids as a 1-D int64 tensor, with a clear error for anything else."""
    try:
        tensor = torch.as_tensor(ids)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise DataError(f"Token ids must be a 1-D sequence of integers ({exc}).") from exc
    if tensor.dim() != 1:
        raise DataError(f"Token ids must be 1-D, got shape {tuple(tensor.shape)}.")
    # An empty list becomes a float tensor: let it through to the "too few tokens" message.
    bad_dtype = tensor.is_floating_point() or tensor.is_complex() or tensor.dtype == torch.bool
    if tensor.numel() and bad_dtype:
        raise DataError(f"Token ids must be integers, got dtype {tensor.dtype}.")
    tensor = tensor.to(torch.long)
    if tensor.numel() and int(tensor.min()) < 0:
        raise DataError("Token ids must be non-negative.")
    return tensor


def encode_if_text(ids_or_text: str | TokenIds) -> TokenIds:
    """Token ids for ``ids_or_text``: a ``str`` is encoded with GPT-2's tokenizer, ids pass as is.

    The loaders (:func:`create_dataloader`, :func:`mygpt.distributed.distributed_dataloader`)
    accept either; the ids are checked later, by :class:`TokenWindowDataset`.
    """
    if isinstance(ids_or_text, str):
        from .tokenizer import encode  # lazy: only text inputs need the tokenizer

        return encode(ids_or_text)
    return ids_or_text


def positive_int(name: str, value: object) -> int:
    """Return ``value`` if it is an ``int`` above 0 (not a ``bool``).

    Raises:
        DataError: it is not; the message names the parameter ``name``.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise DataError(f"{name} must be a positive integer, got {value!r}.")
    return value


def _check_vocab(ids: torch.Tensor, vocab_size: int) -> None:
    """:class:`DataError` naming the first id that is not below ``vocab_size``."""
    if ids.numel() and int(ids.max()) >= vocab_size:  # one pass; locate the id only when bad
        position = int((ids >= vocab_size).nonzero()[0, 0])
        raise DataError(
            f"Token id {int(ids[position])} at position {position} is outside the vocabulary of "
            f"{vocab_size} ids (0..{vocab_size - 1}). Encode the text with the model's tokenizer, "
            f"or give the model a larger vocab_size."
        )


class TokenWindowDataset(Dataset):
    """Sliding windows over token ids: item ``i`` is ``(x, y)`` for next-token prediction.

    With ``s = i * stride`` and ``T = context_length``: ``x = ids[s : s+T]`` and
    ``y = ids[s+1 : s+T+1]`` (the same window shifted by one, so ``y[t]`` is the token that
    follows ``x[t]``). Only full windows count, so there are ``(len(ids) - T - 1) // stride + 1``
    items. ``stride = T`` gives non-overlapping windows; a smaller stride overlaps them.
    Items are views into one int64 tensor (no copy per window).

    ``vocab_size`` (the model's, optional): every id must be below it. Checked here, once, so
    that a bad id is a :class:`DataError` naming it, not an ``IndexError`` from the embedding
    somewhere in training (or a device-side assert on a GPU).
    """

    def __init__(
        self,
        ids: TokenIds,
        context_length: int,
        stride: int | None = None,
        vocab_size: int | None = None,
    ) -> None:
        self.context_length = positive_int("context_length", context_length)
        self.stride = positive_int("stride", context_length if stride is None else stride)
        self.ids = _as_ids(ids)
        if vocab_size is not None:
            _check_vocab(self.ids, positive_int("vocab_size", vocab_size))
        needed = self.context_length + 1  # T inputs plus the one extra target token
        if self.ids.numel() < needed:
            raise DataError(
                f"{self.ids.numel()} tokens are too few for one window: context_length="
                f"{self.context_length} needs at least {needed} tokens (inputs plus one shifted "
                f"target). Use a longer text or a smaller context_length."
            )

    def __len__(self) -> int:
        return (self.ids.numel() - self.context_length - 1) // self.stride + 1

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"window {index} out of range for {len(self)} windows")
        start = (index % len(self)) * self.stride
        end = start + self.context_length
        return self.ids[start:end], self.ids[start + 1 : end + 1]


def create_dataloader(
    ids_or_text: str | TokenIds,
    batch_size: int,
    context_length: int,
    stride: int | None = None,
    shuffle: bool = True,
    drop_last: bool = True,
    seed: int = 0,
    num_workers: int = 0,
    vocab_size: int | None = None,
) -> DataLoader:
    """A ``DataLoader`` of ``(x, y)`` batches, each of shape ``[batch_size, context_length]``.

    Text is encoded with the GPT-2 tokenizer first. ``stride`` defaults to ``context_length``.
    Shuffling draws from a ``torch.Generator`` seeded with ``seed``: two loaders made with the
    same arguments yield the same batches, and successive epochs of one loader differ.
    Pass the model's ``vocab_size`` to have every id checked against it up front.
    Raises :class:`DataError` if ``drop_last`` would leave no batch at all, or an id is not
    below ``vocab_size``.
    """
    positive_int("batch_size", batch_size)
    dataset = TokenWindowDataset(encode_if_text(ids_or_text), context_length, stride, vocab_size)
    if drop_last and len(dataset) < batch_size:
        raise DataError(
            f"Only {len(dataset)} windows for batch_size={batch_size} with drop_last=True: the "
            f"loader would yield no batch. Lower batch_size, context_length or stride, or pass "
            f"drop_last=False."
        )
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        drop_last=drop_last,
        num_workers=num_workers,
        generator=generator,
    )


def train_val_split(ids_or_text: str | TokenIds, train_frac: float = 0.9) -> tuple:
    """Split by position: the first ``train_frac`` is training data, the rest validation.

    Returns two pieces of the input's own type (two strings for text, split by characters as in
    the book; two slices for ids). Not random, so the validation text is unseen continuous prose.
    """
    if (
        isinstance(train_frac, bool)
        or not isinstance(train_frac, (int, float))
        or not 0.0 < train_frac < 1.0
    ):
        raise DataError(f"train_frac must be between 0 and 1 (exclusive), got {train_frac!r}.")
    cut = int(len(ids_or_text) * train_frac)
    if cut == 0 or cut == len(ids_or_text):
        raise DataError(
            f"train_frac={train_frac} of {len(ids_or_text)} items leaves one part empty; "
            f"use more data or a train_frac nearer 0.5."
        )
    return ids_or_text[:cut], ids_or_text[cut:]
