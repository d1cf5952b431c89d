"""The command line: ``python -m mygpt`` (or ``mygpt``) generate, train, classify.

mygpt generate --model gpt2 --prompt "Every effort moves you" --max-new-tokens 30
mygpt train --text input.txt --out ckpt/ --config small --steps 500
mygpt classify --model spam-classifier/ "You won a prize!" "See you at noon"
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .errors import CheckpointError, ConfigError, DataError, MyGPTError

#: Small model shapes for ``mygpt train --config``; any GPT-2 preset name works too.
TRAIN_CONFIGS = {
    "tiny": dict(n_layer=2, n_embd=128, n_head=4, context_length=128),
    "small": dict(n_layer=4, n_embd=256, n_head=4, context_length=256),
    "medium": dict(n_layer=6, n_embd=384, n_head=6, context_length=256),
}


def _device(name: str | None):
    """``--device`` (or ``MYGPT_DEVICE``) as a ``torch.device``, checked to exist on this machine.

    Checked here, up front: ``torch.device("banana")`` raises a RuntimeError listing PyTorch's
    internal device types, and ``cuda`` on a build without CUDA fails only at the first tensor.
    """
    import torch

    from .device import get_device

    source = (
        f"--device {name!r}" if name else f"MYGPT_DEVICE={os.environ.get('MYGPT_DEVICE', '')!r}"
    )
    name = name or os.environ.get("MYGPT_DEVICE")
    if not name:
        return get_device()  # the best device available
    try:
        device = torch.device(name)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"{source} is not a device; use cpu, cuda, cuda:N or mps.")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"{source}: no CUDA GPU is available (this PyTorch build: CUDA "
            f"{torch.version.cuda or 'none'}); use --device cpu."
        )
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ConfigError(
            f"{source}: CUDA has only {torch.cuda.device_count()} device(s), "
            f"cuda:0..cuda:{torch.cuda.device_count() - 1}."
        )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(
            f"{source}: Apple's MPS is not available on this machine; use --device cpu."
        )
    return device


def _load_any(model: str, device):
    """``--model``: a mygpt model or training-checkpoint directory, a Hub-layout directory, a
    ``.safetensors`` file, or a GPT-2 name (``gpt2`` ...).

    Which one a directory is comes from :func:`mygpt.checkpoint.directory_kind`: the package
    marks what it saves (``"format"`` in ``config.json``, ``latest`` in a training run), and a
    Hub config is told by its own keys.
    """
    from .checkpoint import directory_kind, load_model
    from .pretrained import load_pretrained
    from .training import latest_checkpoint

    path = Path(model)
    kind = directory_kind(path) if path.is_dir() else None
    if kind == "training-run":  # a training run's directory: its last checkpoint
        path = latest_checkpoint(path)
        kind = directory_kind(path)
    if kind == "model":
        return load_model(path, device=device)
    if kind == "classifier":
        raise CheckpointError(
            f"{path} holds a classifier, not a language model; "
            f"use it with: mygpt classify --model {path}"
        )
    if kind is None and path.is_dir() and (path / "config.json").is_file():
        raise CheckpointError(
            f"{path / 'config.json'} is neither a mygpt config (it has 'context_length') nor a Hugging "
            f"Face GPT-2 config (it has 'n_positions'); pass a directory saved by mygpt.save_model, "
            f"mygpt train, or transformers' save_pretrained."
        )
    # A Hub-layout directory, a directory of weights only, a .safetensors file, a name, or
    # nothing: the Hub loader handles each (and names the valid model names when it is none).
    return load_pretrained(path if path.exists() else model, device=device)


def cmd_generate(args) -> None:
    from .generation import generate_text

    device = _device(args.device)
    model = _load_any(args.model, device)
    texts = generate_text(
        model,
        args.prompt,
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        seed=args.seed,
    )
    for text in texts:
        print(text)
        print("-" * 40) if len(texts) > 1 else None


def _read_text_file(path: Path) -> str:
    """The training text: :class:`DataError` if it is missing, unreadable or not UTF-8."""
    if not path.is_file():
        raise DataError(f"No text file at {path}.")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DataError(
            f"{path} is not UTF-8 text ({e.reason} at byte {e.start}); convert it, "
            f"e.g. iconv -f latin1 -t utf-8 {path} > {path.stem}-utf8.txt"
        ) from None
    except OSError as e:
        raise DataError(f"Cannot read {path}: {e.strerror}.") from None


def _check_out_dir(out: Path) -> None:
    """Make sure ``--out`` can hold checkpoints *before* training: a path that is a file (or
    inside one) would otherwise fail at the first checkpoint, after the training time is spent."""
    blocker = next((p for p in (out, *out.parents) if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise CheckpointError(
            f"--out {out}: {blocker} is a file, not a directory; choose "
            "another --out for the checkpoints."
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CheckpointError(
            f"--out {out}: cannot create the checkpoint directory ({e.strerror})."
        ) from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise CheckpointError(f"--out {out}: the directory is not writable; choose another --out.")


def cmd_train(args) -> None:
    from .config import GPTConfig
    from .data import create_dataloader, train_val_split
    from .device import seed_everything
    from .model import GPT
    from .tokenizer import encode
    from .training import TrainConfig, train

    text_path, out = Path(args.text), Path(args.out)
    if args.config in TRAIN_CONFIGS:
        cfg = GPTConfig(**TRAIN_CONFIGS[args.config], dropout=args.dropout)
    else:
        cfg = GPTConfig.from_name(args.config, dropout=args.dropout)
    if args.context_length:
        cfg = cfg.replace(context_length=args.context_length)
    device = _device(args.device)
    text = _read_text_file(text_path)
    seed_everything(args.seed)
    train_ids, val_ids = train_val_split(encode(text), 0.9)
    T = cfg.context_length
    windows = (len(train_ids) - 1) // T  # non-overlapping training windows of T + 1 tokens
    if windows < args.batch_size or len(val_ids) < T + 1:
        raise DataError(
            f"{text_path} is too short: its {len(train_ids) + len(val_ids):,} tokens give {windows} "
            f"training window(s) of {T} tokens for --batch-size {args.batch_size}, and "
            f"{len(val_ids)} validation tokens for {T + 1} needed. Use a longer text, or lower "
            f"--batch-size or --context-length."
        )
    train_loader = create_dataloader(
        train_ids, args.batch_size, T, seed=args.seed, vocab_size=cfg.vocab_size
    )
    val_loader = create_dataloader(
        val_ids, args.batch_size, T, shuffle=False, drop_last=False, vocab_size=cfg.vocab_size
    )
    tc = TrainConfig(
        max_steps=args.steps,
        lr=args.lr,
        warmup_steps=args.warmup,
        eval_every=args.eval_every,
        eval_batches=args.eval_batches,
        checkpoint_every=args.checkpoint_every or args.eval_every,
        seed=args.seed,
    )
    _check_out_dir(out)  # last check, so that a failing one above leaves no empty directory
    model = GPT(cfg).to(device)
    print(f"model: {model.num_parameters():,} parameters, {cfg}")
    train(
        model, train_loader, val_loader, tc, device=device, checkpoint_dir=out, resume=args.resume
    )
    print(f"checkpoints in {out} (load with: mygpt generate --model {out})")


def cmd_classify(args) -> None:
    from .finetune import classify, load_classifier

    device = _device(args.device)
    from .checkpoint import directory_kind

    path = Path(args.model)
    if path.is_dir() and directory_kind(path) in ("model", "hub", "training-run"):
        raise CheckpointError(
            f"{args.model} holds a language model, not a classifier; continue "
            f"text with: mygpt generate --model {args.model}"
        )
    model = load_classifier(args.model, device=device)
    messages = args.messages or [line.rstrip("\n") for line in sys.stdin if line.strip()]
    for message, label in zip(messages, classify(model, messages)):
        print(f"{label}\t{message}")


def cmd_zoo(args) -> None:
    from . import zoo

    if args.action == "build":
        print(f"built: {zoo.build(args.name, device=_device(args.device))}")
    else:
        print(f"shipped: {zoo.ship(args.name)}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mygpt", description="GPT-2 from scratch: generate, train, classify, build models."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    g = sub.add_parser("generate", help="continue a prompt with a model")
    g.add_argument(
        "--model",
        default="gpt2",
        help="gpt2, gpt2-medium, gpt2-large, gpt2-xl; a local Hub-layout directory "
        "(transformers' save_pretrained) or .safetensors file; or a mygpt model "
        "directory (save_model, or mygpt train's --out) (default: gpt2)",
    )
    g.add_argument(
        "--prompt", action="append", required=True, help="text to continue (repeat for a batch)"
    )
    g.add_argument("--max-new-tokens", type=int, default=50)
    g.add_argument("--temperature", type=float, default=0.8, help="0 = greedy (default 0.8)")
    g.add_argument("--top-k", type=int, default=None)
    g.add_argument("--top-p", type=float, default=None)
    g.add_argument("--seed", type=int, default=None, help="make sampling repeatable")
    g.add_argument("--device", default=None, help="cpu, cuda, mps (default: best available)")
    g.set_defaults(func=cmd_generate)

    t = sub.add_parser("train", help="train a model on a text file")
    t.add_argument(
        "--text", required=True, help="UTF-8 text file to train on (90%% train, 10%% validation)"
    )
    t.add_argument("--out", required=True, help="checkpoint directory")
    t.add_argument(
        "--config",
        default="small",
        help=f"model size: {', '.join(TRAIN_CONFIGS)} or a GPT-2 preset (default small)",
    )
    t.add_argument("--context-length", type=int, default=None)
    t.add_argument("--steps", type=int, default=500)
    t.add_argument("--batch-size", type=int, default=8)
    t.add_argument("--lr", type=float, default=4e-4)
    t.add_argument("--warmup", type=int, default=20)
    t.add_argument("--dropout", type=float, default=0.0)
    t.add_argument("--eval-every", type=int, default=50)
    t.add_argument("--eval-batches", type=int, default=20)
    t.add_argument("--checkpoint-every", type=int, default=None, help="default: --eval-every")
    t.add_argument(
        "--resume", action="store_true", help="continue from the latest checkpoint in --out"
    )
    t.add_argument("--seed", type=int, default=123)
    t.add_argument("--device", default=None)
    t.set_defaults(func=cmd_train)

    c = sub.add_parser("classify", help="label messages with a fine-tuned classifier")
    c.add_argument("--model", required=True, help="classifier directory (saved by mygpt.finetune)")
    c.add_argument("messages", nargs="*", help="messages (default: one per line on stdin)")
    c.add_argument("--device", default=None)
    c.set_defaults(func=cmd_classify)

    z = sub.add_parser(
        "zoo",
        help="build (train, resumably) or ship one of the book's pretrained models",
        description="build: train the model NAME by its recipe into the cache; run the same "
        "command again to resume after an interruption. ship: write the built model into the "
        "package (mygpt/models/NAME) and print its SHA-256 for mygpt.zoo.SHIPPED_SHA256.",
    )
    z.add_argument("action", choices=["build", "ship"])
    z.add_argument(
        "name", nargs="?", default="book", help="a model of mygpt.zoo.ZOO (default: book)"
    )
    z.add_argument("--device", default=None, help="cpu, cuda, mps (default: best available)")
    z.set_defaults(func=cmd_zoo)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m mygpt`` and the ``mygpt`` console script.

    A user error (a bad argument, file or model: the package's own errors, and the file system's)
    exits with status 2 and one line on stderr, never a traceback; a traceback means a bug.
    """
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (MyGPTError, OSError) as e:
        # Some messages list details on further lines (e.g. each missing tensor): one line here.
        message = " ".join(line.strip() for line in str(e).splitlines() if line.strip())
        print(f"mygpt {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mygpt {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
