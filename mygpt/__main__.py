"""The command line: ``python -m mygpt`` (or ``mygpt``) generate, train, classify.

    mygpt generate --model gpt2 --prompt "Every effort moves you" --max-new-tokens 30
    mygpt train --text input.txt --out ckpt/ --config small --steps 500
    mygpt classify --model spam-classifier/ "You won a prize!" "See you at noon"
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import MyGPTError

#: Small model shapes for ``mygpt train --config``; any GPT-2 preset name works too.
TRAIN_CONFIGS = {
    "tiny": dict(n_layer=2, n_embd=128, n_head=4, context_length=128),
    "small": dict(n_layer=4, n_embd=256, n_head=4, context_length=256),
    "medium": dict(n_layer=6, n_embd=384, n_head=6, context_length=256),
}


def _load_any(model: str, device):
    """A mygpt model directory (save_model / training checkpoint) or a GPT-2 name/path."""
    from .checkpoint import CONFIG_NAME, load_model
    from .pretrained import load_pretrained
    from .train import latest_checkpoint

    path = Path(model)
    if path.is_dir() and (path / "latest").exists():
        path = latest_checkpoint(path)
    if path.is_dir() and (path / CONFIG_NAME).exists():
        import json

        if "n_layer" in json.loads((path / CONFIG_NAME).read_text()):  # mygpt's own config
            return load_model(path, device=device).eval()
    return load_pretrained(model, device=device)


def cmd_generate(args) -> None:
    from .device import get_device
    from .generate import generate_text

    device = get_device(args.device)
    model = _load_any(args.model, device)
    texts = generate_text(model, args.prompt, max_new_tokens=args.max_new_tokens,
                          temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                          seed=args.seed)
    for text in texts:
        print(text)
        print("-" * 40) if len(texts) > 1 else None


def cmd_train(args) -> None:
    from .config import PRESETS, GPTConfig
    from .data import create_dataloader, train_val_split
    from .device import get_device, seed_everything
    from .model import GPT
    from .tokenizer import encode
    from .train import TrainConfig, train

    text_path = Path(args.text)
    if not text_path.is_file():
        raise MyGPTError(f"No text file at {text_path}.")
    if args.config in TRAIN_CONFIGS:
        cfg = GPTConfig(**TRAIN_CONFIGS[args.config], dropout=args.dropout)
    else:
        cfg = GPTConfig.from_name(args.config, dropout=args.dropout)
    if args.context_length:
        cfg = cfg.replace(context_length=args.context_length)
    seed_everything(args.seed)
    device = get_device(args.device)
    train_ids, val_ids = train_val_split(encode(text_path.read_text(encoding="utf-8")), 0.9)
    T = cfg.context_length
    train_loader = create_dataloader(train_ids, args.batch_size, T, seed=args.seed)
    val_loader = create_dataloader(val_ids, args.batch_size, T, shuffle=False, drop_last=False)
    model = GPT(cfg).to(device)
    tc = TrainConfig(max_steps=args.steps, lr=args.lr, warmup_steps=args.warmup,
                     eval_every=args.eval_every, eval_batches=args.eval_batches,
                     checkpoint_every=args.checkpoint_every or args.eval_every, seed=args.seed)
    print(f"model: {model.num_parameters():,} parameters, {cfg}")
    train(model, train_loader, val_loader, tc, device=device, checkpoint_dir=args.out,
          resume=args.resume)
    print(f"checkpoints in {args.out} (load with: mygpt generate --model {args.out})")


def cmd_classify(args) -> None:
    from .device import get_device
    from .finetune import classify, load_classifier

    device = get_device(args.device)
    model = load_classifier(args.model, device=device)
    messages = args.messages or [line.rstrip("\n") for line in sys.stdin if line.strip()]
    for message, label in zip(messages, classify(model, messages)):
        print(f"{label}\t{message}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mygpt", description="GPT-2 from scratch: generate, train, classify.")
    sub = parser.add_subparsers(dest="command", required=True)

    g = sub.add_parser("generate", help="continue a prompt with a model")
    g.add_argument("--model", default="gpt2",
                   help="gpt2, gpt2-medium, gpt2-large, gpt2-xl, a local Hub-layout directory or "
                        ".safetensors file, or a mygpt checkpoint directory (default: gpt2)")
    g.add_argument("--prompt", action="append", required=True,
                   help="text to continue (repeat for a batch)")
    g.add_argument("--max-new-tokens", type=int, default=50)
    g.add_argument("--temperature", type=float, default=0.8, help="0 = greedy (default 0.8)")
    g.add_argument("--top-k", type=int, default=None)
    g.add_argument("--top-p", type=float, default=None)
    g.add_argument("--seed", type=int, default=None, help="make sampling repeatable")
    g.add_argument("--device", default=None, help="cpu, cuda, mps (default: best available)")
    g.set_defaults(func=cmd_generate)

    t = sub.add_parser("train", help="train a model on a text file")
    t.add_argument("--text", required=True, help="UTF-8 text file to train on (90%% train, 10%% validation)")
    t.add_argument("--out", required=True, help="checkpoint directory")
    t.add_argument("--config", default="small",
                   help=f"model size: {', '.join(TRAIN_CONFIGS)} or a GPT-2 preset (default small)")
    t.add_argument("--context-length", type=int, default=None)
    t.add_argument("--steps", type=int, default=500)
    t.add_argument("--batch-size", type=int, default=8)
    t.add_argument("--lr", type=float, default=4e-4)
    t.add_argument("--warmup", type=int, default=20)
    t.add_argument("--dropout", type=float, default=0.0)
    t.add_argument("--eval-every", type=int, default=50)
    t.add_argument("--eval-batches", type=int, default=20)
    t.add_argument("--checkpoint-every", type=int, default=None, help="default: --eval-every")
    t.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --out")
    t.add_argument("--seed", type=int, default=123)
    t.add_argument("--device", default=None)
    t.set_defaults(func=cmd_train)

    c = sub.add_parser("classify", help="label messages with a fine-tuned classifier")
    c.add_argument("--model", required=True, help="classifier directory (saved by mygpt.finetune)")
    c.add_argument("messages", nargs="*", help="messages (default: one per line on stdin)")
    c.add_argument("--device", default=None)
    c.set_defaults(func=cmd_classify)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m mygpt`` and the ``mygpt`` console script."""
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except MyGPTError as e:
        print(f"mygpt {args.command}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
