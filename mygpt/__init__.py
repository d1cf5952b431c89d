"""mygpt: GPT-2 from scratch, small enough to read, complete enough to use.

The few names a reader needs::

    import mygpt
    model = mygpt.load_pretrained("gpt2")                      # OpenAI's weights (Hub or local dir)
    print(mygpt.generate_text(model, "Every effort moves you", max_new_tokens=20))

    cfg = mygpt.GPTConfig(n_layer=4, n_embd=256, n_head=4, context_length=128)
    model = mygpt.GPT(cfg)                                      # a fresh model to train
    loader = mygpt.create_dataloader(mygpt.read_text("the-verdict"), batch_size=8,
                                     context_length=128)
    history = mygpt.train(model, loader, cfg=mygpt.TrainConfig(epochs=1))

Modules, by concept: ``config`` (GPTConfig), ``tokenizer`` (GPT-2's encoding via tiktoken),
``bpe`` (byte-level BPE from scratch), ``files`` (the public data files), ``formats`` (their
formats), ``data`` (token windows, seeded loaders, splits), ``attention``,
``model``, ``generate``, ``train``, ``checkpoint``, ``pretrained`` (GPT-2 weights), ``zoo`` (a
small pretrained model), ``inference`` (bf16/int8 decoding), ``metrics``, ``experiments``
(cached sweeps), ``finetune`` (classification), ``instruct``, ``agent``, ``distributed``
(torchrun/DDP), ``device``, ``errors``. ``python -m mygpt`` is the command line.
"""

from . import agent, experiments, instruct, metrics  # modules used by name (mygpt.agent.…)
from .attention import CausalSelfAttention, KVCache, attention_explicit, attention_fused
from .bpe import BPETokenizer
from .checkpoint import load_model, save_model
from .config import PRESETS, GPTConfig
from .data import TokenWindowDataset, create_dataloader, train_val_split
from .device import get_device, progress, seed_everything, setup_notebook, show_source
from .errors import (
    CheckpointError,
    ConfigError,
    DataError,
    MyGPTError,
    PromptError,
    SamplingError,
    TokenizerError,
    ToolError,
    TrainingError,
)
from .experiments import ExperimentSpec, run_experiment, sweep
from .files import REGISTRY, fetch, read_text
from .finetune import GPTClassifier, classify, load_classifier, save_classifier
from .generation import (
    apply_temperature,
    generate,
    generate_text,
    next_token_probs,
    sample_next_token,
    top_k_filter,
    top_p_filter,
)
from .model import GELU, GPT, Block, FeedForward, LayerNorm
from .pretrained import load_pretrained
from .tokenizer import (
    EOT,
    EOT_ID,
    decode,
    encode,
    encode_ordinary,
    get_tokenizer,
    ids_to_text,
    text_to_ids,
)
from .training import (
    History,
    TrainConfig,
    batch_loss,
    evaluate,
    lm_loss,
    next_token_loss,
    perplexity,
    train,
)
from .zoo import book_model, fine_tuning_base, pretrained_history, small_pretrained

__version__ = "0.1.0"

__all__ = [
    "GPTConfig",
    "PRESETS",
    "MyGPTError",
    "ConfigError",
    "PromptError",
    "SamplingError",
    "TokenizerError",
    "DataError",
    "CheckpointError",
    "TrainingError",
    "ToolError",
    "get_device",
    "seed_everything",
    "setup_notebook",
    "show_source",
    "progress",
    "get_tokenizer",
    "encode",
    "encode_ordinary",
    "decode",
    "text_to_ids",
    "ids_to_text",
    "EOT",
    "EOT_ID",
    "BPETokenizer",
    "REGISTRY",
    "fetch",
    "read_text",
    "TokenWindowDataset",
    "create_dataloader",
    "train_val_split",
    "CausalSelfAttention",
    "KVCache",
    "attention_explicit",
    "attention_fused",
    "LayerNorm",
    "GELU",
    "FeedForward",
    "Block",
    "GPT",
    "generate",
    "generate_text",
    "next_token_probs",
    "sample_next_token",
    "apply_temperature",
    "top_k_filter",
    "top_p_filter",
    "save_model",
    "load_model",
    "TrainConfig",
    "History",
    "train",
    "evaluate",
    "next_token_loss",
    "batch_loss",
    "lm_loss",
    "perplexity",
    "load_pretrained",
    "GPTClassifier",
    "classify",
    "save_classifier",
    "load_classifier",
    "small_pretrained",
    "book_model",
    "fine_tuning_base",
    "pretrained_history",
    "instruct",
    "agent",
    "metrics",
    "experiments",
    "ExperimentSpec",
    "run_experiment",
    "sweep",
]
