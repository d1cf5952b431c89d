"""Training on several processes at once with PyTorch's own engine: torchrun + DDP.

Data parallelism in one paragraph: every process (a *rank*) holds a full copy of the model and
trains on its own slice of each batch; after the backward pass ``DistributedDataParallel`` averages
the gradients over all ranks (an all-reduce), so every copy takes the same optimizer step and the
copies never drift apart. ``N`` ranks with ``b`` windows each compute the gradient of one global
batch of ``N * b`` windows, in about the time one rank needs for ``b``.

``torchrun`` starts the ranks and tells each who it is through environment variables
(``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``)::

    torchrun --standalone --nproc_per_node=4 examples/train_ddp.py --text input.txt --out ckpt/

A training script calls :func:`init_distributed` (joins the group: NCCL between GPUs, gloo on
CPUs; one GPU per local rank), :func:`wrap_model` and :func:`distributed_dataloader`, then
:func:`mygpt.training.train` as usual, which is rank-aware: only rank 0 prints, shows a progress bar
and writes checkpoints, and the logged losses are averaged over ranks. Every function here also
works in a plain single process (no torchrun): it then does nothing special, so one script runs
both ways.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from .data import TokenIds, TokenWindowDataset, encode_if_text, positive_int, seeded_loader
from .device import get_device
from .errors import ConfigError, DataError

#: The variables torchrun sets for every rank; all of them, or none (a plain process).
TORCHRUN_VARS = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class DistributedContext:
    """Who this process is in a (possibly one-process) run.

    Attributes:
        rank: this process's number among all processes, ``0 .. world_size - 1``.
        local_rank: its number on this machine (which GPU it drives).
        world_size: how many processes train together.
        device: where this process keeps its model and batches.
        backend: ``"nccl"``, ``"gloo"``, or ``None`` for a plain single process.
    """

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0, the one that prints and writes files."""
        return self.rank == 0


def is_distributed() -> bool:
    """Whether this process belongs to an initialised process group."""
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    """This process's rank (0 outside a distributed run)."""
    return dist.get_rank() if is_distributed() else 0


def get_world_size() -> int:
    """The number of processes training together (1 outside a distributed run)."""
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    """True on rank 0, and in a plain single process: the one that should print and save."""
    return get_rank() == 0


def _env_int(name: str) -> int:
    value = os.environ[name]
    try:
        return int(value)
    except ValueError:
        raise ConfigError(
            f"Environment variable {name}={value!r} is not an integer; "
            "launch the script with torchrun, which sets it."
        ) from None


def init_distributed(
    backend: str | None = None, device: str | None = None, timeout_s: float = 600.0
) -> DistributedContext:
    """Join the process group torchrun set up, and pick this rank's device.

    Without torchrun's variables this is a plain single process: no group is created and the
    device is :func:`mygpt.device.get_device`'s choice (or ``device``).

    Args:
        backend: ``"nccl"`` (GPUs) or ``"gloo"`` (CPUs, or GPUs without NCCL). Default: NCCL
            when CUDA is available (and ``device`` is not ``"cpu"``), else gloo.
        device: ``"cpu"`` to train on CPUs even on a GPU machine; default: GPU ``LOCAL_RANK``
            when there are GPUs, else the CPU.
        timeout_s: how long a collective operation waits for the other ranks before failing
            (a rank that died or hangs then stops the others instead of blocking forever).

    Raises:
        ConfigError: some of torchrun's variables are set but not all, a variable is not an
            integer, there are fewer GPUs than local ranks, or NCCL was asked for without a GPU.
    """
    present = [v for v in TORCHRUN_VARS if v in os.environ]
    if not present:
        return DistributedContext(device=get_device(device))
    if len(present) != len(TORCHRUN_VARS):
        missing = [v for v in TORCHRUN_VARS if v not in os.environ]
        raise ConfigError(
            f"Environment has {present} but not {missing}: start every process with "
            "torchrun (e.g. torchrun --standalone --nproc_per_node=2 script.py), "
            "or unset these variables to run a single process."
        )
    rank, local_rank, world = _env_int("RANK"), _env_int("LOCAL_RANK"), _env_int("WORLD_SIZE")
    use_cuda = torch.cuda.is_available() and (device is None or device.startswith("cuda"))
    backend = backend or ("nccl" if use_cuda else "gloo")
    if backend == "nccl" and not use_cuda:
        raise ConfigError("backend 'nccl' needs CUDA GPUs; use backend='gloo' to train on CPUs.")
    if use_cuda:
        if local_rank >= torch.cuda.device_count():
            raise ConfigError(
                f"LOCAL_RANK {local_rank} but this machine has {torch.cuda.device_count()} GPU(s): "
                f"launch with --nproc_per_node={torch.cuda.device_count()} or fewer."
            )
        here = torch.device("cuda", local_rank)
        torch.cuda.set_device(here)  # later .cuda() calls and NCCL use this rank's own GPU
    else:
        here = torch.device(device or "cpu")
    if not is_distributed():
        dist.init_process_group(
            backend=backend,
            timeout=timedelta(seconds=timeout_s),
            device_id=here if here.type == "cuda" else None,
        )
    return DistributedContext(
        rank=rank, local_rank=local_rank, world_size=world, device=here, backend=dist.get_backend()
    )


def wrap_model(model: nn.Module, ctx: DistributedContext) -> nn.Module:
    """Move ``model`` to ``ctx.device`` and, in a distributed run, wrap it in DDP.

    DDP copies rank 0's weights to every rank when it wraps the model, so the copies start equal
    even if the ranks initialised them differently. Its ``.module`` is the plain model again
    (what :func:`mygpt.training.train` saves). In a single process the model is returned unwrapped.
    """
    model = model.to(ctx.device)
    if not is_distributed():
        return model
    device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


def distributed_dataloader(
    ids_or_text: str | TokenIds,
    batch_size: int,
    context_length: int,
    stride: int | None = None,
    shuffle: bool = True,
    seed: int = 0,
    num_workers: int = 0,
) -> DataLoader:
    """Like :func:`mygpt.data.create_dataloader`, but each rank gets its own share of the windows.

    A ``DistributedSampler`` shuffles the window indices with one seeded permutation that every
    rank computes alike, and rank ``r`` of ``N`` takes positions ``r, r + N, r + 2N, ...`` of it.
    ``batch_size`` is per rank: the global batch is ``batch_size * world_size``, and batch ``j``
    of all ranks together holds exactly the windows that batch ``j`` of a one-process loader with
    ``batch_size * world_size`` would hold. Windows that do not fill a whole share are dropped
    (never padded with repeats). :func:`mygpt.training.train` calls the sampler's ``set_epoch`` so
    that each epoch has its own order, the same on every rank and after a resume.

    Raises:
        DataError: too few windows for one batch on every rank.
    """
    positive_int("batch_size", batch_size)
    dataset = TokenWindowDataset(encode_if_text(ids_or_text), context_length, stride)
    world, rank = get_world_size(), get_rank()
    sampler = DistributedSampler(
        dataset, num_replicas=world, rank=rank, shuffle=shuffle, seed=seed, drop_last=True
    )
    if len(sampler) < batch_size:
        raise DataError(
            f"{len(dataset)} windows shared by {world} rank(s) leave {len(sampler)} per rank, fewer "
            f"than batch_size={batch_size}: the loader would yield no batch. Use more text, or a "
            f"smaller batch_size, context_length or stride."
        )
    # No generator of its own (seed=None): the sampler orders the windows.
    return seeded_loader(
        dataset, batch_size, sampler=sampler, drop_last=True, num_workers=num_workers
    )


def barrier() -> None:
    """Wait until every rank gets here (nothing to wait for in a single process)."""
    if is_distributed():
        dist.barrier()


def mean_across_ranks(value):
    """The mean of ``value`` (a float or a tensor) over all ranks; ``value`` itself in one process.

    Every rank gets the same result, so every rank logs, and decides, the same thing.
    """
    if not is_distributed():
        return value
    is_tensor = isinstance(value, torch.Tensor)
    on = "cuda" if dist.get_backend() == "nccl" else "cpu"  # NCCL reduces GPU tensors only
    t = (value.detach().clone() if is_tensor else torch.tensor(float(value))).to(on, torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    t /= dist.get_world_size()
    return t.to(value.device, value.dtype) if is_tensor else t.item()


def cleanup() -> None:
    """Leave the process group (call once at the end of a distributed script)."""
    if is_distributed():
        dist.destroy_process_group()
