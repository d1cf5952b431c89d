"""Chapter 9's control runs: the same fine-tuning from random weights, stored for the page.

Chapter 9 fine-tunes the book's model twice (instructions, then the agent's tool calls) and
asks what pretraining contributed. The answer needs the same two runs from random weights,
which take as long again as the runs themselves; the chapter reads them from
``ch9-random-starts.json`` beside this file (shipped with the package, read by
:func:`mygpt.experiments.shipped_result`), and re-runs a short version of each live to check
that the file matches the code. Rebuild it after changing chapter 9's settings, from the
repository root:

    python mygpt/results/ch9_random_starts.py

It takes about three minutes on two CPU cores. The settings below must equal the chapter's; the
chapter compares them with the stored ones and refuses a stale file.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import sys
import time
from pathlib import Path

import torch

import mygpt
from mygpt import agent as A
from mygpt import instruct as I

OUT = Path(__file__).with_name("ch9-random-starts.json")

INSTRUCT_CFG = mygpt.TrainConfig(
    max_steps=96, lr=2e-3, min_lr=2e-4, warmup_steps=8, eval_every=32, seed=123
)
AGENT_CFG = mygpt.TrainConfig(
    max_steps=500, lr=3e-3, min_lr=3e-4, warmup_steps=20, eval_every=100, seed=123
)
AGENT_BATCH = 4
#: The short runs the chapter repeats live: the same settings, fewer steps.
INSTRUCT_CHECK_STEPS, AGENT_CHECK_STEPS = 16, 20


def settings() -> dict:
    """Everything the stored runs depend on, as the chapter states it."""
    return {
        "model": dataclasses.asdict(mygpt.book_model(verbose=False).config),
        "instruct": dataclasses.asdict(INSTRUCT_CFG),
        "agent": dataclasses.asdict(AGENT_CFG),
        "agent_batch": AGENT_BATCH,
        "check_steps": [INSTRUCT_CHECK_STEPS, AGENT_CHECK_STEPS],
    }


def random_start(dtype: torch.dtype) -> mygpt.GPT:
    """The book model's shape with random weights, initialised as the chapter does."""
    config = mygpt.book_model(verbose=False).config  # (loading draws random numbers too)
    torch.manual_seed(123)
    return mygpt.GPT(config).to(dtype)


def history_dict(h: mygpt.History) -> dict:
    return {"step": h.step, "train_loss": h.train_loss, "val_loss": h.val_loss}


def instruct_runs() -> dict:
    """Instruction tuning from random weights (float64, as the chapter's run)."""
    records = mygpt.data.load_instruction_data()
    train_records, val_records, test_records = I.split_records(records, seed=123)
    train_loader = I.create_loader(
        I.instruction_pairs(train_records), batch_size=8, mask_prompt=True, seed=123
    )
    val_loader = I.create_loader(
        I.instruction_pairs(val_records), batch_size=8, shuffle=False, mask_prompt=True
    )
    cfg = dataclasses.replace(INSTRUCT_CFG, log=False)
    short = mygpt.train(
        random_start(torch.float64),
        train_loader,
        val_loader,
        cfg=dataclasses.replace(cfg, max_steps=INSTRUCT_CHECK_STEPS),
    )
    model = random_start(torch.float64)
    history = mygpt.train(model, train_loader, val_loader, cfg=cfg)
    model.eval()
    prompts = [I.format_prompt(r) for r in test_records]
    responses = I.generate_responses(model, prompts, max_new_tokens=48)
    scores = I.score_responses(responses, [r["output"] for r in test_records])
    return {
        "check_val_loss": short.val_loss[-1],
        "history": history_dict(history),
        "scores": scores,
        "responses": responses,
    }


def agent_runs() -> dict:
    """Agent fine-tuning from random weights (float32, as the chapter's run)."""
    train_tasks, test_tasks = A.make_tasks(2400, seed=1), A.make_tasks(60, seed=2)
    cfg = dataclasses.replace(AGENT_CFG, log=False)
    short = A.train_agent(
        random_start(torch.float32),
        train_tasks,
        test_tasks,
        dataclasses.replace(cfg, max_steps=AGENT_CHECK_STEPS),
        batch_size=AGENT_BATCH,
    )
    model = random_start(torch.float32)
    history = A.train_agent(model, train_tasks, test_tasks, cfg, batch_size=AGENT_BATCH)
    _, results = A.success_rate(model.eval(), test_tasks)
    return {
        "check_val_loss": short.val_loss[-1],
        "history": history_dict(history),
        "results": [dataclasses.asdict(r) for r in results],
    }


def main() -> None:
    mygpt.seed_everything(123)
    torch.set_default_dtype(torch.float64)  # as on the chapter's page
    start = time.time()
    stored = {"settings": settings()}
    print("instruction tuning from random weights ...", flush=True)
    stored["instruct"] = instruct_runs()
    print("agent fine-tuning from random weights ...", flush=True)
    stored["agent"] = agent_runs()
    stored["made_with"] = {
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        "machine": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "seconds": round(time.time() - start),
        "script": "mygpt/results/ch9_random_starts.py",
    }
    text = json.dumps(stored, indent=1) + "\n"
    mygpt.checkpoint.atomic_write(OUT, lambda tmp: Path(tmp).write_text(text))
    print(f"wrote {OUT} in {stored['made_with']['seconds']} s")


if __name__ == "__main__":
    main()
