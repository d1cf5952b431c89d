"""Tests for the data modules: mygpt.files (the public-file registry: verify, cache, download),
mygpt.formats (the shape checks) and mygpt.data (the window dataset, seeded loaders, splits).

Downloads are exercised against a real HTTP server on 127.0.0.1 that the tests start; nothing
leaves the machine.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import json
import os
import shutil
import threading
import zipfile
from pathlib import Path

import pytest
import torch

import mygpt.data
import mygpt.files
from mygpt.data import (
    TokenWindowDataset,
    create_dataloader,
    seeded_loader,
    split_fractions,
    train_val_split,
)
from mygpt.errors import DataError
from mygpt.files import (
    REGISTRY,
    DataFile,
    download,
    fetch,
    load_instruction_data,
    load_sms_spam,
    read_text,
)
from mygpt.formats import check_instruction_data
from mygpt.paths import cache_dir, data_dir
from mygpt.tokenizer import encode

# CI points MYGPT_DATA_DIR at the offline copies (../shared/data from the project's root).
SHARED = Path(
    os.environ.get("MYGPT_DATA_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data"
)
needs_shared = pytest.mark.skipif(
    not SHARED.is_dir(), reason=f"offline copies of the public data not found at {SHARED}"
)
TIMEOUT = 5.0


# ---------------------------------------------------------------- fixtures: env and local server


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """An empty cache, and no offline data directory."""
    monkeypatch.setenv("MYGPT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("MYGPT_DATA_DIR", raising=False)
    return tmp_path / "cache" / "data"


class _Quiet:
    def log_message(self, *args) -> None:  # keep pytest output clean
        pass


class _FileHandler(_Quiet, http.server.SimpleHTTPRequestHandler):
    pass


class _TruncatingHandler(_Quiet, http.server.BaseHTTPRequestHandler):
    """Announces 2,000 bytes, sends 1,000, then closes the connection."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2000")
        self.end_headers()
        self.wfile.write(b"x" * 1000)
        self.wfile.flush()
        self.close_connection = True


def _serve(handler):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    return server, thread


@pytest.fixture
def served(tmp_path):
    """(directory, base_url): a local HTTP server serving the files put into directory."""
    root = tmp_path / "www"
    root.mkdir()
    server, thread = _serve(functools.partial(_FileHandler, directory=str(root)))
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(TIMEOUT)


@pytest.fixture
def truncating_url():
    server, thread = _serve(_TruncatingHandler)
    yield f"http://127.0.0.1:{server.server_address[1]}/file.txt"
    server.shutdown()
    server.server_close()
    thread.join(TIMEOUT)


def _toy(payload: bytes, **kwargs) -> DataFile:
    return DataFile(
        name="toy",
        url="http://127.0.0.1:9/unused",
        sha256=hashlib.sha256(payload).hexdigest(),
        filename="toys/toy.txt",
        **kwargs,
    )


def _files_under(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.exists() else []


def _sms_rows(n: int) -> bytes:
    labels = ["ham", "spam", "ham"]
    return "".join(f"{labels[i % 3]}\tmessage number {i}\n" for i in range(n)).encode()


# ---------------------------------------------------------------- registry and local copies


def test_registry_names_and_layout():
    assert set(REGISTRY) == {
        "the-verdict",
        "tinyshakespeare",
        "wikitext2-valid",
        "wikitext2-test",
        "sms-spam",
        "instruction-data",
        "gpt2-encoder",
        "gpt2-vocab",
    }
    for name, entry in REGISTRY.items():
        assert entry.name == name
        assert len(entry.sha256) == 64 and int(entry.sha256, 16) >= 0
        assert entry.url.startswith("https://")
    assert REGISTRY["sms-spam"].filename == "sms-spam-collection/SMSSpamCollection"
    assert REGISTRY["sms-spam"].archive_member == "SMSSpamCollection"


@needs_shared
def test_every_registered_file_verifies_from_data_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("MYGPT_DATA_DIR", str(SHARED))
    monkeypatch.setenv("MYGPT_CACHE_DIR", str(tmp_path / "cache"))
    assert data_dir() == SHARED
    for name, entry in REGISTRY.items():
        path = fetch(name)
        assert path == SHARED / entry.filename  # used in place, never copied
        assert hashlib.sha256(path.read_bytes()).hexdigest() == entry.sha256
    assert not (tmp_path / "cache").exists()
    assert len(read_text("the-verdict")) == 20479
    rows = load_sms_spam()
    assert len(rows) == 5574
    assert sum(label == "spam" for label, _ in rows) == 747
    records = load_instruction_data()
    assert len(records) == 1100 and set(records[0]) == {"instruction", "input", "output"}


@needs_shared
def test_corrupted_local_copy_names_file_and_hashes(monkeypatch, tmp_path):
    entry = REGISTRY["the-verdict"]
    bad = tmp_path / "data" / entry.filename
    bad.parent.mkdir(parents=True)
    text = (SHARED / entry.filename).read_bytes()
    bad.write_bytes(text.replace(b"Gisburn", b"Gisborn", 1))
    monkeypatch.setenv("MYGPT_DATA_DIR", str(tmp_path / "data"))
    with pytest.raises(DataError) as info:
        fetch("the-verdict")
    message = str(info.value)
    assert str(bad) in message
    assert entry.sha256 in message
    assert hashlib.sha256(bad.read_bytes()).hexdigest() in message


@needs_shared
def test_instruction_data_checked_for_hash_and_shape(monkeypatch, tmp_path):
    entry = REGISTRY["instruction-data"]
    records = json.loads((SHARED / entry.filename).read_text(encoding="utf-8"))
    local = tmp_path / "data" / entry.filename
    local.parent.mkdir(parents=True)
    local.write_text(json.dumps(records[:-1]), encoding="utf-8")
    monkeypatch.setenv("MYGPT_DATA_DIR", str(tmp_path / "data"))
    with pytest.raises(DataError, match="sha256"):
        fetch("instruction-data")
    with pytest.raises(DataError, match="list of 1,099, expected a list of 1,100"):
        check_instruction_data(local)
    records[5] = {"instruction": "x", "output": "y"}
    local.write_text(json.dumps(records), encoding="utf-8")
    with pytest.raises(DataError, match="record 5"):
        check_instruction_data(local)


def test_sms_spam_accepted_by_shape_and_rejected_by_shape(monkeypatch, tmp_path):
    local = tmp_path / "data" / "sms-spam-collection" / "SMSSpamCollection"
    local.parent.mkdir(parents=True)
    monkeypatch.setenv("MYGPT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MYGPT_CACHE_DIR", str(tmp_path / "cache"))
    local.write_bytes(_sms_rows(5574))  # other bytes than the pinned hash, right shape
    assert fetch("sms-spam") == local
    assert load_sms_spam()[1] == ("spam", "message number 1")

    local.write_bytes(_sms_rows(5573))
    with pytest.raises(DataError, match="5,573 rows, expected 5,574"):
        fetch("sms-spam")
    local.write_bytes(_sms_rows(5573) + b"eggs\tnot a label\n")
    with pytest.raises(DataError, match="line 5574"):
        fetch("sms-spam")


def test_unknown_name_lists_valid_names():
    with pytest.raises(DataError) as info:
        fetch("the-verdikt")
    for name in REGISTRY:
        assert name in str(info.value)


def test_cache_dir_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv("MYGPT_CACHE_DIR", str(tmp_path))
    assert cache_dir() == tmp_path
    monkeypatch.delenv("MYGPT_CACHE_DIR")
    assert cache_dir() == Path.home() / ".cache" / "mygpt"
    monkeypatch.delenv("MYGPT_DATA_DIR", raising=False)
    assert data_dir() is None


# ---------------------------------------------------------------- downloads from 127.0.0.1


def test_download_into_empty_cache_then_reuse(cache, served):
    root, base = served
    payload = b"It had always been my fancy...\n" * 100
    (root / "toy.txt").write_bytes(payload)
    toy = _toy(payload)

    path = fetch(toy, url=f"{base}/toy.txt", timeout=TIMEOUT)
    assert path == cache / "toys" / "toy.txt"
    assert path.read_bytes() == payload
    assert _files_under(cache) == [path]  # no temporary file left

    # Second call uses the cache: the server no longer has the file.
    (root / "toy.txt").unlink()
    assert fetch(toy, url=f"{base}/toy.txt", timeout=TIMEOUT) == path

    # A damaged cache copy is downloaded again.
    path.write_bytes(b"damaged")
    (root / "toy.txt").write_bytes(payload)
    assert fetch(toy, url=f"{base}/toy.txt", timeout=TIMEOUT).read_bytes() == payload


@needs_shared
def test_fetch_registered_name_from_local_mirror(cache, served):
    root, base = served
    shutil.copy(SHARED / "the-verdict.txt", root / "the-verdict.txt")
    path = fetch("the-verdict", url=f"{base}/the-verdict.txt", timeout=TIMEOUT)
    assert path == cache / "the-verdict.txt"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == REGISTRY["the-verdict"].sha256


def test_download_with_wrong_bytes_leaves_nothing(cache, served):
    root, base = served
    (root / "toy.txt").write_bytes(b"not what was promised")
    toy = _toy(b"the real content")
    url = f"{base}/toy.txt"
    with pytest.raises(DataError) as info:
        fetch(toy, url=url, timeout=TIMEOUT)
    message = str(info.value)
    assert url in message and toy.sha256 in message and "MYGPT_DATA_DIR" in message
    assert _files_under(cache) == []


def test_connection_dropped_half_way_leaves_no_partial_file(cache, truncating_url):
    toy = _toy(b"x" * 2000)
    with pytest.raises(DataError) as info:
        fetch(toy, url=truncating_url, timeout=TIMEOUT)
    message = str(info.value)
    assert truncating_url in message and "2,000" in message and "1,000" in message
    assert _files_under(cache) == []


def test_http_error_and_unreachable_server(cache, served):
    _, base = served
    with pytest.raises(DataError, match="404"):
        fetch(_toy(b"abc"), url=f"{base}/missing.txt", timeout=TIMEOUT)
    with pytest.raises(DataError, match="MYGPT_DATA_DIR"):
        fetch(_toy(b"abc"), url="http://127.0.0.1:9/x", timeout=TIMEOUT)  # nobody listens there
    assert _files_under(cache) == []


def test_zip_member_is_extracted_and_checked_by_shape(cache, served):
    root, base = served
    sms = REGISTRY["sms-spam"]

    def make_zip(name: str, rows: bytes) -> str:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as zf:
            zf.writestr("readme", "SMS Spam Collection v.1")
            zf.writestr("SMSSpamCollection", rows)
        (root / name).write_bytes(buffer.getvalue())
        return f"{base}/{name}"

    good = make_zip("good.zip", _sms_rows(5574))
    path = fetch("sms-spam", url=good, timeout=TIMEOUT)
    assert path == cache / sms.filename
    assert path.read_bytes() == _sms_rows(5574)
    assert _files_under(cache) == [path]

    path.unlink()
    bad = make_zip("bad.zip", _sms_rows(100))
    with pytest.raises(DataError, match="100 rows, expected 5,574"):
        fetch("sms-spam", url=bad, timeout=TIMEOUT)
    assert _files_under(cache) == []

    (root / "not.zip").write_bytes(b"this is no archive")
    with pytest.raises(DataError, match="not a valid zip"):
        fetch("sms-spam", url=f"{base}/not.zip", timeout=TIMEOUT)
    assert _files_under(cache) == []


def test_download_to_explicit_destination(tmp_path, served):
    root, base = served
    (root / "toy.txt").write_bytes(b"hello")
    dest = tmp_path / "elsewhere" / "copy.txt"
    assert download(_toy(b"hello"), dest, url=f"{base}/toy.txt", timeout=TIMEOUT) == dest
    assert dest.read_bytes() == b"hello"


# ---------------------------------------------------------------- next-token dataset


def test_windows_are_shifted_by_one_and_strided():
    ids = list(range(100, 120))  # 20 tokens
    ds = TokenWindowDataset(ids, context_length=4, stride=3)
    assert len(ds) == (20 - 4 - 1) // 3 + 1 == 6
    for i in range(len(ds)):
        x, y = ds[i]
        s = 3 * i
        assert x.tolist() == ids[s : s + 4]
        assert y.tolist() == ids[s + 1 : s + 5]
        assert x.dtype == torch.long and x.shape == (4,)
    last_x, last_y = ds[len(ds) - 1]
    assert last_y[-1].item() <= ids[-1]
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_window_count_matches_enumeration():
    for n in range(5, 40):
        for T in range(1, 6):
            for stride in range(1, 7):
                if n < T + 1:
                    continue
                starts = [s for s in range(0, n, stride) if s + T + 1 <= n]
                assert len(TokenWindowDataset(torch.arange(n), T, stride)) == len(starts)


def test_default_stride_is_context_length():
    ds = TokenWindowDataset(torch.arange(13), context_length=4)
    assert ds.stride == 4 and len(ds) == 3
    assert ds[2][0].tolist() == [8, 9, 10, 11]


def test_too_short_and_bad_arguments():
    with pytest.raises(DataError, match="at least 9 tokens"):
        TokenWindowDataset(list(range(8)), context_length=8)
    TokenWindowDataset(list(range(9)), context_length=8)  # exactly enough: one window
    with pytest.raises(DataError, match="stride"):
        TokenWindowDataset(list(range(20)), context_length=4, stride=0)
    with pytest.raises(DataError, match="context_length"):
        TokenWindowDataset(list(range(20)), context_length=0)
    with pytest.raises(DataError, match="1-D"):
        TokenWindowDataset(torch.zeros(2, 10, dtype=torch.long), context_length=4)
    with pytest.raises(DataError, match="0 tokens are too few"):
        TokenWindowDataset([], context_length=4)
    with pytest.raises(DataError, match="integers"):
        TokenWindowDataset(torch.rand(20), context_length=4)


def test_token_ids_outside_the_vocabulary_are_named(tiny_cfg):
    ids = [1, 2, 3, 300, 5, 999, 7, 8, 9, 10]
    with pytest.raises(DataError) as e:
        TokenWindowDataset(ids, context_length=4, vocab_size=256)
    for words in ["Token id 300", "position 3", "vocabulary of 256 ids"]:
        assert words in str(e.value), str(e.value)
    TokenWindowDataset(ids, context_length=4)  # no vocabulary given: not checked
    TokenWindowDataset(ids, context_length=4, vocab_size=1000)  # 999 is the last id: fine
    with pytest.raises(DataError, match="vocab_size must be a positive integer"):
        TokenWindowDataset(ids, context_length=4, vocab_size=0)
    with pytest.raises(DataError, match="Token id 300"):
        create_dataloader(ids, batch_size=1, context_length=4, vocab_size=256)


def test_out_of_vocabulary_training_data_is_a_data_error_not_an_index_error(tiny_cfg):
    # Before the check, this reached the embedding as a bare IndexError in the first step.
    from mygpt.model import GPT
    from mygpt.training import TrainConfig, train

    ids = torch.randint(0, tiny_cfg.vocab_size, (200,))
    ids[150] = tiny_cfg.vocab_size  # one past the last id
    with pytest.raises(DataError, match=f"Token id {tiny_cfg.vocab_size} at position 150"):
        loader = create_dataloader(
            ids, batch_size=2, context_length=8, vocab_size=tiny_cfg.vocab_size
        )
        train(GPT(tiny_cfg), loader, cfg=TrainConfig(max_steps=30, log=False))


def test_dataloader_is_deterministic_with_seed():
    ids = torch.arange(504)  # exactly 100 windows: 25 full batches, nothing dropped

    def batches(seed):
        loader = create_dataloader(ids, batch_size=4, context_length=8, stride=5, seed=seed)
        return [x.tolist() for x, _ in loader]

    first, again, other = batches(0), batches(0), batches(1)
    assert first == again
    assert first != other
    assert sorted(map(tuple, sum(first, []))) == sorted(map(tuple, sum(other, [])))

    loader = create_dataloader(ids, batch_size=4, context_length=8, stride=5, seed=0)
    epoch1 = [x.tolist() for x, _ in loader]
    epoch2 = [x.tolist() for x, _ in loader]
    assert epoch1 == first and epoch2 != epoch1  # epochs reshuffle, reproducibly


def test_dataloader_shapes_order_and_drop_last():
    ids = torch.arange(101)
    loader = create_dataloader(ids, batch_size=3, context_length=10, shuffle=False)
    batches = list(loader)
    assert len(batches) == 10 // 3  # 10 windows, last partial batch dropped
    x, y = batches[0]
    assert x.shape == y.shape == (3, 10)
    assert torch.equal(y[:, :-1], x[:, 1:])
    assert x[1, 0].item() == 10
    keep = create_dataloader(ids, batch_size=3, context_length=10, shuffle=False, drop_last=False)
    assert len(list(keep)) == 4
    with pytest.raises(DataError, match="no batch"):
        create_dataloader(torch.arange(30), batch_size=8, context_length=10)


def test_dataloader_from_text_uses_gpt2_tokens(monkeypatch):
    if SHARED.is_dir():
        monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(SHARED / "tiktoken-cache"))
    text = "In the beginning the Universe was created. " * 20
    ids = encode(text)
    loader = create_dataloader(text, batch_size=2, context_length=6, shuffle=False)
    x, _ = next(iter(loader))
    assert x[0].tolist() == ids[:6] and x[1].tolist() == ids[6:12]


def test_train_val_split_by_position():
    text = "abcdefghij"
    assert train_val_split(text, 0.8) == ("abcdefgh", "ij")
    train, val = train_val_split(torch.arange(100), 0.9)
    assert train.tolist() == list(range(90)) and val.tolist() == list(range(90, 100))
    train, val = train_val_split(list(range(10)))
    assert train == list(range(9)) and val == [9]
    for bad in (0.0, 1.0, 1.5, -0.1):
        with pytest.raises(DataError, match="train_frac"):
            train_val_split(text, bad)
    with pytest.raises(DataError, match="empty"):
        train_val_split("abc", 0.1)


def test_split_fractions_cuts_in_order_or_after_a_seeded_shuffle():
    assert split_fractions("abcdefghij", (0.5, 0.3, 0.2)) == ("abcde", "fgh", "ij")
    # The last part takes what rounding leaves: int(0.33 * 10) = 3, twice, then 4.
    assert [len(p) for p in split_fractions(list(range(10)), (0.33, 0.33, 0.34))] == [3, 3, 4]
    shuffled = split_fractions(range(20), (0.7, 0.3), seed=1)
    again = split_fractions(range(20), (0.7, 0.3), seed=1)
    assert shuffled == again and all(isinstance(p, list) for p in shuffled)
    assert sorted(shuffled[0] + shuffled[1]) == list(range(20))
    assert shuffled[0] != list(range(14))  # shuffled, not cut in order
    for bad in ((), (0.5, 0.6), (-0.5, 1.5)):
        with pytest.raises(DataError, match="sum to 1"):
            split_fractions("abc", bad)


def test_seeded_loader_seeds_shuffling_and_leaves_the_global_rng_alone():
    def order(loader):
        return [b.tolist() for b in loader]

    a = seeded_loader(torch.arange(20), 4, shuffle=True, seed=3)
    b = seeded_loader(torch.arange(20), 4, shuffle=True, seed=3)
    assert order(a) == order(b) and order(a) != order(a)  # same seed alike; epochs differ
    plain = seeded_loader(torch.arange(10), 4, seed=0, drop_last=True)
    state = torch.get_rng_state()
    assert order(plain) == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert torch.equal(torch.get_rng_state(), state)  # iterating a seeded loader draws nothing
    with pytest.raises(DataError, match="seed"):
        seeded_loader(torch.arange(10), 4, shuffle=True)


def test_the_chapters_names_stay_in_mygpt_data():
    # book/08 and book/09 call these as mygpt.data.<name>; the errors appendix imports the last two.
    for name in ("read_text", "load_sms_spam", "load_instruction_data", "REGISTRY", "DataFile"):
        assert getattr(mygpt.data, name) is getattr(mygpt.files, name)
