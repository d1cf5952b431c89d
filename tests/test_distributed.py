"""Distributed training: 2 processes under torchrun (gloo, CPU, loopback only) train like one.

The end-to-end test launches ``examples/train_ddp.py`` twice on the same small text: once as a
plain process with a batch of 8 windows, once under ``torchrun --standalone --nproc_per_node=2``
with 4 windows per rank (the same global batch of 8). Per-step training and validation losses
and the final weights must agree to 1e-5.

Why not bit for bit: one process averages the loss over 8 windows in one reduction, while DDP
averages each rank's mean over 4 windows and then all-reduces the two gradients (a sum, then a
division by 2). Floating-point addition is not associative, so the two orders of summation
differ in the last bits (about 1e-7 relative in float32), and the optimizer carries those
differences from step to step. They stay far below the 1e-5 tolerance, while a real mistake
(ranks seeing the same windows, a wrong global batch, unsynchronised weights) moves the losses
by 1e-3 or more.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from mygpt.distributed import (
    DistributedContext,
    distributed_dataloader,
    get_world_size,
    init_distributed,
    is_main_process,
    mean_across_ranks,
    wrap_model,
)
from mygpt.errors import ConfigError, DataError
from mygpt.model import GPT

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "train_ddp.py"
SHARED = Path(os.environ.get("MYGPT_DATA_DIR") or ROOT.parent / "shared" / "data")
STEPS = 20  # the loader has 15 steps per epoch: the run crosses an epoch boundary
ARGS = [
    "--context-length",
    "16",
    "--n-layer",
    "2",
    "--n-embd",
    "32",
    "--n-head",
    "2",
    "--max-steps",
    str(STEPS),
    "--eval-every",
    "1",
    "--checkpoint-every",
    "100",
    "--val-frac",
    "0.1",
    "--lr",
    "1e-3",
    "--seed",
    "7",
]
TIMEOUT = 120  # seconds per launch; each takes about 8 s on 2 cores


@pytest.fixture(scope="module")
def text_file(tmp_path_factory) -> Path:
    """About 10 kB of made-up sentences (no data files needed)."""
    words = (
        "the quick brown fox jumps over a lazy dog while seven wizards quietly hum old "
        "songs near river banks and mountains"
    ).split()
    rng = random.Random(0)
    lines = [" ".join(rng.choice(words) for _ in range(12)).capitalize() + "." for _ in range(150)]
    path = tmp_path_factory.mktemp("text") / "input.txt"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _env() -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), TQDM_DISABLE="1", OMP_NUM_THREADS="1")
    for name in ("MASTER_ADDR", "MASTER_PORT", "RANK", "LOCAL_RANK", "WORLD_SIZE"):
        env.pop(name, None)  # the plain run must not think it is a rank
    if SHARED.is_dir() and "TIKTOKEN_CACHE_DIR" not in env:
        env["TIKTOKEN_CACHE_DIR"] = str(SHARED / "tiktoken-cache")
    if Path("/sys/class/net/lo").exists():
        env["GLOO_SOCKET_IFNAME"] = "lo"  # gloo talks over the loopback interface only
    return env


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    done = subprocess.run(
        cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=TIMEOUT
    )
    assert done.returncode == 0, f"{cmd} failed:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def runs(text_file, tmp_path_factory) -> dict[str, tuple[Path, str]]:
    """Output directory and stdout of the one-process run and of the two-process run."""
    out = tmp_path_factory.mktemp("runs")
    single = _run(
        [
            sys.executable,
            str(EXAMPLE),
            "--text",
            str(text_file),
            *ARGS,
            "--batch-size",
            "8",
            "--out",
            str(out / "single"),
        ]
    )
    ddp = _run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            str(EXAMPLE),
            "--text",
            str(text_file),
            *ARGS,
            "--batch-size",
            "4",
            "--out",
            str(out / "ddp"),
        ]
    )
    return {"single": (out / "single", single.stdout), "ddp": (out / "ddp", ddp.stdout)}


def test_two_ranks_match_one_process_with_the_same_global_batch(runs):
    (single_dir, _), (ddp_dir, ddp_out) = runs["single"], runs["ddp"]
    assert "2 process(es), backend gloo" in ddp_out
    a = json.loads((single_dir / "history.json").read_text())
    b = json.loads((ddp_dir / "history.json").read_text())
    assert a["step"] == b["step"] == list(range(1, STEPS + 1))
    assert a["tokens"] == b["tokens"]  # counted over both ranks
    assert a["lr"] == b["lr"]
    for key in ("train_loss", "val_loss"):
        assert b[key] == pytest.approx(a[key], abs=1e-5, rel=0), key
    assert a["train_loss"][-1] < a["train_loss"][0] - 0.05  # it did learn something

    name = f"step-{STEPS:07d}"
    wa, wb = (load_file(d / name / "model.safetensors") for d in (single_dir, ddp_dir))
    assert wa.keys() == wb.keys()
    for k in wa:
        torch.testing.assert_close(wb[k], wa[k], atol=1e-5, rtol=0, msg=k)


def test_only_rank_0_logs_and_writes(runs):
    ddp_dir, ddp_out = runs["ddp"]
    for step in range(1, STEPS + 1):
        assert ddp_out.count(f"step {step:5d} |") == 1  # one line per step, not one per rank
    assert sorted(p.name for p in ddp_dir.iterdir()) == [
        "history.json",
        "latest",
        f"step-{STEPS:07d}",
    ]


def test_single_process_without_torchrun(monkeypatch, tiny_cfg):
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    ctx = init_distributed(device="cpu")
    assert ctx == DistributedContext(device=torch.device("cpu")) and ctx.is_main
    assert is_main_process() and get_world_size() == 1
    model = GPT(tiny_cfg)
    assert wrap_model(model, ctx) is model  # no DDP wrapper around a single process
    assert mean_across_ranks(2.5) == 2.5


def test_distributed_loader_in_one_process_is_a_seeded_shuffle():
    ids = torch.arange(200)
    loader = distributed_dataloader(ids, batch_size=4, context_length=8, seed=3)
    loader.sampler.set_epoch(5)
    first = [x[:, 0].tolist() for x, _ in loader]
    loader.sampler.set_epoch(5)
    assert [x[:, 0].tolist() for x, _ in loader] == first  # replayable from (seed, epoch)
    starts = sorted(s for batch in first for s in batch)
    assert starts == list(range(0, 8 * len(starts), 8))  # every full-batch window once
    with pytest.raises(DataError, match="fewer than batch_size=64"):
        distributed_dataloader(ids, batch_size=64, context_length=8)


def test_half_set_torchrun_variables_are_an_error(monkeypatch):
    for name in ("LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(ConfigError, match="start every process with torchrun"):
        init_distributed()
