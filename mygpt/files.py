"""The book's public data files: where each comes from, how it is verified, where it is kept.

:data:`REGISTRY` lists every public file the chapters read, with its canonical address and its
SHA-256 (and, for two of them, a shape check from :mod:`mygpt.formats`). :func:`fetch` returns a
verified local path: from the directory in ``MYGPT_DATA_DIR`` when the file is there (offline
copies; nothing is copied), else from the cache (``MYGPT_CACHE_DIR`` or ``~/.cache/mygpt``,
subfolder ``data``), downloading it first if needed. A download goes to a temporary file beside
its destination and only replaces the destination once it is complete and verified, so the cache
never holds a partial file. :func:`read_text`, :func:`load_sms_spam` and
:func:`load_instruction_data` return a file's content.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .errors import DataError
from .formats import check_instruction_data, check_sms_spam, parse_sms_spam
from .paths import cache_dir, data_dir

USER_AGENT = "mygpt (GPT-2 from scratch book)"
DEFAULT_TIMEOUT = 60.0  # seconds without data before a download gives up
_CHUNK = 1 << 16


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
_WIKITEXT2 = (
    "https://raw.githubusercontent.com/pytorch/examples/"
    "77f55b912142e11fcfdf5b530231fb9c52f181e8/word_language_model/data/wikitext-2"
)
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
            "wikitext2-valid",
            f"{_WIKITEXT2}/valid.txt",
            "f0737ed31fc1329026e95cb8b98e19c2a182c39c240ab909dc31abf2f8af58e8",
            "wikitext-2/valid.txt",
            "WikiText-2 validation split (Merity et al., 2016), 213,886 words in its tokenized "
            "form; CC BY-SA 3.0",
        ),
        DataFile(
            "wikitext2-test",
            f"{_WIKITEXT2}/test.txt",
            "d790b833ef8cf03a90db7bf1271b7520b83c45ce07ba3c1a9699df81e239eca0",
            "wikitext-2/test.txt",
            "WikiText-2 test split (Merity et al., 2016), 241,211 words in its tokenized form; "
            "CC BY-SA 3.0",
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
    return parse_sms_spam(fetch("sms-spam"))  # fetch has already checked the shape


def load_instruction_data() -> list[dict]:
    """The 1,100 instruction records, each a dict with ``instruction``, ``input`` and ``output``."""
    return json.loads(fetch("instruction-data").read_text(encoding="utf-8"))
