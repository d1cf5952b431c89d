"""A Hugging Face Hub cache holding GPT-2 checkpoints in the Hub's exact layout, built offline.

OpenAI's weights cannot be downloaded here, so the code paths that read them from the Hub are
exercised on checkpoints of the same layout and shapes with random weights, written by
``transformers`` itself and laid out as ``hf_hub_download`` leaves them. Never committed.

Used by the tests (``prime_hub_cache``) and, from the command line, to run the chapters' GPT-2
branches offline:

    python tests/hub_snapshot.py /tmp/hf-home                  # GPT-2 124M, random weights
    python tests/hub_snapshot.py /tmp/hf-home gpt2-medium gpt2-large   # and larger sizes
    HF_HOME=/tmp/hf-home HF_HUB_OFFLINE=1 jupyter execute book/05-gpt2-weights.ipynb ...
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from pathlib import Path

from huggingface_hub.file_download import repo_folder_name

#: The commit the snapshot claims to be (any 40 hex digits; the Hub's own are not needed).
COMMIT = "0" * 39 + "1"


def prime_hub_cache(cache: Path, repo_id: str, files: dict[str, Path], commit: str) -> None:
    """Lay files out as ``hf_hub_download`` leaves them: blobs named by their Git/LFS hash,
    snapshot entries linking to them, and ``refs/main`` naming the commit."""
    repo = cache / repo_folder_name(repo_id=repo_id, repo_type="model")
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    for filename, src in files.items():
        data = src.read_bytes()
        if filename.endswith(".safetensors"):  # an LFS file: blob named by its sha256
            etag = hashlib.sha256(data).hexdigest()
        else:  # a plain Git file: blob named by its Git object id
            etag = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        blob = repo / "blobs" / etag
        blob.parent.mkdir(exist_ok=True)
        blob.write_bytes(data)
        link = repo / "snapshots" / commit / filename
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))


#: The Hub's GPT-2 sizes: repository and shape (the rest of GPT2Config is the same for all).
SIZES = {
    "gpt2": ("openai-community/gpt2", dict(n_embd=768, n_layer=12, n_head=12)),
    "gpt2-medium": ("openai-community/gpt2-medium", dict(n_embd=1024, n_layer=24, n_head=16)),
    "gpt2-large": ("openai-community/gpt2-large", dict(n_embd=1280, n_layer=36, n_head=20)),
    "gpt2-xl": ("openai-community/gpt2-xl", dict(n_embd=1600, n_layer=48, n_head=25)),
}


def build_gpt2_snapshot(
    hf_home: Path, size: str = "gpt2", seed: int = 0, shape: dict | None = None
) -> None:
    """Write GPT-2 of ``size`` (its configuration, random weights) into the Hub cache under
    ``hf_home``. ``shape`` (``n_embd``, ``n_layer``, ``n_head``) replaces the size's own: the
    same repository and layout, a smaller network, for runs that check code paths only."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    repo_id, own_shape = SIZES[size]
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(GPT2Config(**(shape or own_shape)))
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)  # config.json + model.safetensors, as on the Hub
        files = {name: Path(tmp) / name for name in ("config.json", "model.safetensors")}
        prime_hub_cache(Path(hf_home) / "hub", repo_id, files, COMMIT)


if __name__ == "__main__":
    home, sizes = Path(sys.argv[1]), sys.argv[2:] or ["gpt2"]
    for size in sizes:
        build_gpt2_snapshot(home, size)
        print(f"{size} (random weights) in the Hub cache under {home}", flush=True)
