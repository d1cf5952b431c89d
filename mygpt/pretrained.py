"""OpenAI's GPT-2 weights -> a :class:`~mygpt.model.GPT`, from the Hugging Face Hub or a local copy.

The Hub stores GPT-2 the way ``transformers`` names it (``h.0.attn.c_attn.weight``); our model
names the same numbers differently (``blocks.0.attn.qkv.weight``). :data:`NAME_MAP` is the whole
translation. Two more facts matter:

* GPT-2's linear layers are ``Conv1D`` modules that store their weight as ``[in, out]``, while
  ``nn.Linear`` stores ``[out, in]``: those weights (:data:`CONV1D_WEIGHTS`) are transposed.
* The output layer is tied to the token embedding, so files usually have no ``lm_head.weight``.

Loading is strict (every parameter filled, every tensor used, every shape right) and frugal: the
model is built on the ``meta`` device (shapes only, no memory) and each tensor is read, converted
and placed on its own, so the weights never exist twice in memory. Files are read with
``safetensors`` only, never ``pickle``, which could run code hidden in a checkpoint.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open

from .checkpoint import write_directory, write_json, write_weights
from .config import PRESET_ALIASES, PRESETS, GPTConfig
from .errors import CheckpointError, ConfigError
from .model import GPT

#: Our model names -> the Hub repositories holding OpenAI's released weights.
HUB_REPOS: dict[str, str] = {
    "gpt2": "openai-community/gpt2",
    "gpt2-medium": "openai-community/gpt2-medium",
    "gpt2-large": "openai-community/gpt2-large",
    "gpt2-xl": "openai-community/gpt2-xl",
}

#: Hub tensor name -> our parameter name (``{i}`` is the block number).
NAME_MAP: dict[str, str] = {
    "wte.weight": "tok_emb.weight",
    "wpe.weight": "pos_emb.weight",
    "h.{i}.ln_1.weight": "blocks.{i}.ln1.weight",
    "h.{i}.ln_1.bias": "blocks.{i}.ln1.bias",
    "h.{i}.attn.c_attn.weight": "blocks.{i}.attn.qkv.weight",
    "h.{i}.attn.c_attn.bias": "blocks.{i}.attn.qkv.bias",
    "h.{i}.attn.c_proj.weight": "blocks.{i}.attn.proj.weight",
    "h.{i}.attn.c_proj.bias": "blocks.{i}.attn.proj.bias",
    "h.{i}.ln_2.weight": "blocks.{i}.ln2.weight",
    "h.{i}.ln_2.bias": "blocks.{i}.ln2.bias",
    "h.{i}.mlp.c_fc.weight": "blocks.{i}.mlp.fc.weight",
    "h.{i}.mlp.c_fc.bias": "blocks.{i}.mlp.fc.bias",
    "h.{i}.mlp.c_proj.weight": "blocks.{i}.mlp.proj.weight",
    "h.{i}.mlp.c_proj.bias": "blocks.{i}.mlp.proj.bias",
    "ln_f.weight": "ln_f.weight",
    "ln_f.bias": "ln_f.bias",
    "lm_head.weight": "lm_head.weight",  # usually absent: tied to wte.weight
}

#: ``Conv1D`` weights, stored ``[in, out]``: transposed to ``nn.Linear``'s ``[out, in]``.
CONV1D_WEIGHTS = frozenset(
    f"h.{{i}}.{layer}.weight" for layer in ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")
)

# Not weights: older transformers versions saved the causal mask (``attn.bias``, a lower
# triangle of ones) and a constant (``attn.masked_bias``) as buffers; the files converted from
# OpenAI's release carry them. Our attention builds its mask on the fly, so they are skipped.
IGNORED_BUFFERS = frozenset({"h.{i}.attn.bias", "h.{i}.attn.masked_bias"})

# config.json fields (transformers' GPT2Config) whose other values change the computation.
_GPT2_ONLY = {
    "activation_function": ("gelu_new", "gelu_pytorch_tanh"),  # both are the tanh approximation
    "scale_attn_weights": (True,),
    "scale_attn_by_inverse_layer_idx": (False,),
}

_BLOCK = re.compile(r"h\.(\d+)\.(.+)")


def hub_to_ours(hub_name: str) -> tuple[str, bool] | None:
    """Translate one Hub tensor name: ``(our name, transpose?)``, or ``None`` for a skipped buffer.

    Accepts names with or without the ``transformer.`` prefix (``save_pretrained`` writes it,
    the files converted from OpenAI's release do not). Raises ``KeyError`` for unknown names.
    """
    name = hub_name.removeprefix("transformer.")
    block = _BLOCK.fullmatch(name)
    pattern = f"h.{{i}}.{block.group(2)}" if block else name
    if pattern in IGNORED_BUFFERS:
        return None
    ours = NAME_MAP[pattern].format(i=block.group(1) if block else "")
    return ours, pattern in CONV1D_WEIGHTS


def load_pretrained(
    name_or_path: str | Path,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    revision: str | None = None,
) -> GPT:
    """Load GPT-2 weights into a :class:`GPT` (in ``eval`` mode).

    Args:
        name_or_path: a model name (``"gpt2"``, ``"gpt2-medium"``, ``"gpt2-large"``,
            ``"gpt2-xl"``, an alias such as ``"124M"``, or a repository in :data:`HUB_REPOS`),
            downloaded from the Hub into its cache (offline, ``HF_HUB_OFFLINE=1``, it must be
            cached already); or a local directory with ``model.safetensors`` (and optionally
            ``config.json``, as ``transformers``' ``save_pretrained`` writes them); or a single
            ``.safetensors`` file, whose configuration is inferred from the tensor shapes.
            An existing local path wins over a model name.
        device: where the weights go (default: CPU).
        dtype: floating-point type of the weights (e.g. ``torch.bfloat16`` halves the memory).
        revision: Hub branch, tag or commit (default: ``main``); ignored for local paths.
    """
    if not dtype.is_floating_point:
        raise ConfigError(f"dtype must be a floating-point type (torch.float32...), got {dtype}.")
    path = Path(name_or_path)
    if path.is_dir():
        weights, config = path / "model.safetensors", path / "config.json"
        if not weights.is_file():
            raise CheckpointError(
                f"{path} has no model.safetensors. Save the model with save_pretrained() "
                "(safetensors is its default); pickle files (.bin/.pt) are not read."
            )
        hub_config = _read_json(config) if config.is_file() else None
    elif path.is_file():
        weights, hub_config = path, None
    else:
        weights, hub_config = _download(str(name_or_path), revision)
    return _load(weights, hub_config, torch.device(device or "cpu"), dtype)


def _download(name: str, revision: str | None) -> tuple[Path, dict]:
    """Fetch ``config.json`` and ``model.safetensors`` of a named model through the Hub cache."""
    repos = {**HUB_REPOS, **{alias: HUB_REPOS[key] for alias, key in PRESET_ALIASES.items()}}
    repos.update({repo: repo for repo in HUB_REPOS.values()})
    if name not in repos:
        raise ConfigError(
            f"{name!r} is neither an existing path nor a known model. Valid names: "
            f"{sorted(repos)}; or pass a directory with model.safetensors, or a .safetensors file."
        )
    # Imported here, not at the top, and with tqdm's "IProgress not found" warning silenced:
    # huggingface_hub's download code pulls in tqdm's notebook bars, which warn inside Jupyter
    # when ipywidgets is missing. Only downloads need it.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="IProgress not found")
        from huggingface_hub import constants as hub_constants
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        config = hf_hub_download(repos[name], "config.json", revision=revision)
        weights = hf_hub_download(repos[name], "model.safetensors", revision=revision)
    except OSError as e:  # offline, Hub unreachable, repository/revision/file not found
        cache = hub_constants.HF_HUB_CACHE
        if hub_constants.HF_HUB_OFFLINE:
            why = f"HF_HUB_OFFLINE is set and the files are not in the Hub cache ({cache})"
        elif isinstance(e, LocalEntryNotFoundError):
            why = f"the Hub cannot be reached and the files are not in its cache ({cache})"
        else:
            why = f"the download failed ({type(e).__name__}: {e})"
        raise CheckpointError(
            f"Cannot get {repos[name]} (revision {revision or 'main'}) from the Hugging Face Hub: "
            f"{why}. Download it once online, or pass a local directory containing "
            "model.safetensors and config.json (or a single .safetensors file)."
        ) from e
    return Path(weights), _read_json(Path(config))


def _read_json(path: Path) -> dict:
    """A ``config.json`` as a dict."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise CheckpointError(f"Cannot read the model configuration {path}: {e}") from e


def _open(path: Path):
    """Open a safetensors file, turning its errors into a CheckpointError naming the file."""
    try:
        return safe_open(str(path), framework="pt")
    except (SafetensorError, OSError) as e:
        raise CheckpointError(
            f"{path} is not a readable safetensors file ({e}); it may be truncated or corrupt: "
            "download or save it again."
        ) from e


def _infer_config(shapes: dict[str, tuple], hub: dict | None, tied: bool, path: Path) -> GPTConfig:
    """The model configuration: from ``config.json`` when given, else from the tensor shapes."""
    if hub is not None:
        odd = {k: hub[k] for k, ok in _GPT2_ONLY.items() if k in hub and hub[k] not in ok}
        if hub.get("n_inner") not in (None, 4 * hub.get("n_embd", 0)):
            odd["n_inner"] = hub["n_inner"]
        if odd:
            raise CheckpointError(
                f"The config.json of {path} asks for {odd}; this model implements only GPT-2's "
                "own choices (tanh GELU, a 4x wide MLP, attention scaled by 1/sqrt(head_dim))."
            )
        try:
            return GPTConfig(
                vocab_size=hub["vocab_size"], context_length=hub["n_positions"],
                n_embd=hub["n_embd"], n_layer=hub["n_layer"], n_head=hub["n_head"],
                ln_eps=hub.get("layer_norm_epsilon", 1e-5), tie_weights=tied,
            )  # fmt: skip
        except KeyError as e:
            raise CheckpointError(f"The config.json of {path} lacks the field {e}.") from e
    if "tok_emb.weight" not in shapes or "pos_emb.weight" not in shapes:
        raise CheckpointError(f"{path} lacks wte.weight or wpe.weight: cannot infer model size.")
    (vocab, n_embd), context = shapes["tok_emb.weight"], shapes["pos_emb.weight"][0]
    blocks = [int(n.split(".")[1]) for n in shapes if n.startswith("blocks.")]
    preset = next((p for p in PRESETS.values() if p.n_embd == n_embd), None)
    if preset is None:
        raise CheckpointError(
            f"{path}: no GPT-2 size has width {n_embd}, so the number of attention heads is "
            "unknown. Put the file in a directory as model.safetensors next to a config.json."
        )
    return preset.replace(
        vocab_size=vocab, context_length=context, n_layer=max(blocks, default=0) + 1,
        tie_weights=tied,
    )  # fmt: skip


def _load(path: Path, hub_config: dict | None, device: torch.device, dtype: torch.dtype) -> GPT:
    """The one loading path for Hub and local files: plan, check, then read tensor by tensor."""
    plan, unexpected = {}, []  # our name -> (Hub name, transpose?); Hub names we cannot use
    with _open(path) as f:
        for hub_name in f.keys():
            try:
                mapped = hub_to_ours(hub_name)
            except KeyError:
                unexpected.append(hub_name)
                continue
            if mapped is not None:
                if mapped[0] in plan:  # e.g. both "h.0..." and "transformer.h.0..."
                    unexpected.append(hub_name)
                plan[mapped[0]] = (hub_name, mapped[1])
        shapes = {}
        for ours, (hub_name, transpose) in plan.items():
            shape = tuple(f.get_slice(hub_name).get_shape())
            shapes[ours] = shape[::-1] if transpose else shape

    # Tied (GPT-2's way) unless config.json says otherwise or the file has a different lm_head.
    tied = hub_config.get("tie_word_embeddings", True) if hub_config else True
    if tied and "lm_head.weight" in plan and "tok_emb.weight" in plan:
        same = _same(path, plan["lm_head.weight"][0], plan["tok_emb.weight"][0])
        if hub_config and not same:
            raise CheckpointError(
                f"{path}: lm_head.weight differs from wte.weight, but config.json says they are "
                "tied (tie_word_embeddings); fix config.json or the file."
            )
        tied = same
        if same:
            del plan["lm_head.weight"]  # the same numbers as wte.weight
    cfg = _infer_config(shapes, hub_config, tied, path)

    with torch.device("meta"):  # parameters with shapes but no storage: no memory spent yet
        model = GPT(cfg)
    expected = {n: tuple(p.shape) for n, p in model.named_parameters()}  # tied: lm_head not listed
    missing = [_hub_name(n) for n in expected if n not in plan]
    unexpected += [plan[n][0] for n in plan if n not in expected]
    misshaped = [
        f"{plan[n][0]} (as {n}): expected {expected[n]}, found {shapes[n]}"
        for n in plan if n in expected and shapes[n] != expected[n]
    ]  # fmt: skip
    if missing or unexpected or misshaped:
        raise CheckpointError(
            f"{path} does not fit a GPT with {cfg}."
            + (f"\n  missing tensors: {missing}" if missing else "")
            + (f"\n  unexpected tensors: {unexpected}" if unexpected else "")
            + (f"\n  wrong shapes (after transposing Conv1D): {misshaped}" if misshaped else "")
        )

    # Largest first: while a tensor is converted it exists twice (file pages + our copy), and
    # the big embedding matrix doubling early, when little else is loaded, keeps the peak low.
    state = {}
    for ours in sorted(plan, key=lambda n: -math.prod(shapes[n])):
        hub_name, transpose = plan[ours]
        with _open(path) as f:  # reopened each time, so the file's pages are released as we go
            t = f.get_tensor(hub_name)
        t = t.t() if transpose else t
        # A fresh contiguous tensor, cast on the way, owns its memory (not the file's mapping).
        state[ours] = torch.empty(t.shape, dtype=dtype, device=device).copy_(t)
        del t
    if cfg.tie_weights:
        state["lm_head.weight"] = state["tok_emb.weight"]
    model.load_state_dict(state, strict=True, assign=True)
    if cfg.tie_weights:  # assign=True wrapped each tensor in its own Parameter: share one again
        model.lm_head.weight = model.tok_emb.weight
    return model.eval()


def _hub_name(ours: str) -> str:
    """Our parameter name -> the Hub's (for error messages)."""
    block = re.fullmatch(r"blocks\.(\d+)\.(.+)", ours)
    pattern = f"blocks.{{i}}.{block.group(2)}" if block else ours
    hub = {v: k for k, v in NAME_MAP.items()}[pattern]
    return hub.format(i=block.group(1)) if block else hub


def _same(path: Path, name_a: str, name_b: str) -> bool:
    """Whether two tensors of a file hold the same shape and values."""
    with _open(path) as f:
        a, b = f.get_tensor(name_a), f.get_tensor(name_b)
        return a.shape == b.shape and torch.equal(a, b)


def hub_config(cfg: GPTConfig, dtype: torch.dtype = torch.float32) -> dict:
    """``cfg`` as GPT-2's ``config.json`` (``transformers``' ``GPT2Config`` fields)."""
    return {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "vocab_size": cfg.vocab_size,
        "n_positions": cfg.context_length,
        "n_embd": cfg.n_embd,
        "n_layer": cfg.n_layer,
        "n_head": cfg.n_head,
        "n_inner": None,
        "activation_function": "gelu_new",
        "layer_norm_epsilon": cfg.ln_eps,
        "resid_pdrop": cfg.dropout,
        "embd_pdrop": cfg.dropout,
        "attn_pdrop": cfg.dropout,
        "initializer_range": 0.02,
        "scale_attn_weights": True,
        "tie_word_embeddings": cfg.tie_weights,
        "bos_token_id": 50256,
        "eos_token_id": 50256,
        "torch_dtype": str(dtype).removeprefix("torch."),
    }


def hub_tensors(model: GPT, dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """``model``'s weights under GPT-2's Hub names, as ``save_pretrained`` writes them.

    The inverse of loading: our names back to the Hub's (:data:`NAME_MAP`, with the
    ``transformer.`` prefix), ``Conv1D`` weights transposed back to ``[in, out]``, a tied output
    layer left out (it is the embedding).
    """
    tensors = {}
    for ours, t in model.state_dict().items():
        if ours == "lm_head.weight" and model.config.tie_weights:
            continue
        hub = _hub_name(ours)
        block = _BLOCK.fullmatch(hub)
        transpose = (f"h.{{i}}.{block.group(2)}" if block else hub) in CONV1D_WEIGHTS
        t = t.detach().to("cpu", dtype)
        prefix = "" if hub == "lm_head.weight" else "transformer."
        tensors[prefix + hub] = (t.t() if transpose else t).contiguous()
    return tensors


def save_pretrained(model: GPT, directory: str | Path, dtype: torch.dtype = torch.float32) -> Path:
    """Save ``model`` in GPT-2's Hub layout: ``config.json`` + ``model.safetensors``.

    What ``transformers``' ``save_pretrained`` writes for a ``GPT2LMHeadModel``, so both
    :func:`load_pretrained` and ``GPT2LMHeadModel.from_pretrained`` read it (and the Hub can host
    it). ``dtype``: how the weights are stored (``torch.float16`` halves the file). The directory
    is written whole (:func:`mygpt.checkpoint.write_directory`). GPT-2 has biases everywhere, so
    a model built with ``bias=False`` has no such layout (:class:`CheckpointError`).
    """
    if not model.config.bias:
        raise CheckpointError("GPT-2's Hub layout has biases; this model has none (bias=False).")
    tensors = hub_tensors(model, dtype)

    def fill(tmp: Path) -> None:
        write_weights(tensors, tmp / "model.safetensors", metadata={"format": "pt"})  # Hub's
        write_json(hub_config(model.config, dtype), tmp / "config.json")

    return write_directory(directory, fill)
