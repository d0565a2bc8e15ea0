"""Data-parallel training and evaluation with ``torch.distributed`` (``torchrun --nproc_per_node=N -m advlab ...``).

torchrun starts N copies of the command and tells each its place through the environment (``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``). Without those variables (or with
``WORLD_SIZE=1``) every function here is a cheap no-op, so the single-process path is the same code.

How advlab splits the work (the same seed on every rank, so the ranks agree without talking):

- **Training** (``fit``): every rank draws the same shuffled order and the same *global* batch of
  ``batch_size`` images, augments it with the same generator, and keeps its own contiguous slice
  (:func:`split_batch`; ``batch_size // world_size`` images each when it divides). The union of the slices is the
  single-process batch, so the number of steps, the learning-rate schedule and the data each step sees are those
  of a single-process run; DistributedDataParallel averages the gradients. Only rank 0 writes files.
- **Evaluation** (``run_attack``, ``evaluate``): rank r takes the batches ``r, r + N, r + 2N, ...`` of the
  single-process batching (:func:`shard_batches`), so every image is attacked in exactly the batch it would be
  in alone, and the per-batch records are gathered back in order: deterministic attacks give identical numbers.

Backends: ``gloo`` on CPU, ``nccl`` on CUDA (one GPU per rank: ``cuda:LOCAL_RANK``).
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn

from advlab.data.dataset import ImageDataset
from advlab.errors import InputError

T = TypeVar("T")
ENV_KEYS = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def env_world_size() -> int:
    """``WORLD_SIZE`` from the environment (1 when unset): how many processes torchrun started."""
    value = os.environ.get("WORLD_SIZE", "1")
    try:
        size = int(value)
    except ValueError as exc:
        raise InputError(f"WORLD_SIZE={value!r} is not a number; launch with torchrun --nproc_per_node=N") from exc
    if size < 1:
        raise InputError(f"WORLD_SIZE={size} must be >= 1; launch with torchrun --nproc_per_node=N")
    return size


def is_distributed() -> bool:
    """True inside an initialized process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def get_rank() -> int:
    """This process's rank (0 outside a distributed run)."""
    return dist.get_rank() if is_distributed() else 0


def get_world_size() -> int:
    """Number of processes (1 outside a distributed run)."""
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    """True on the process that writes files and prints (rank 0, or the only process)."""
    return get_rank() == 0


def backend_for(device: torch.device | str | None) -> str:
    """``"nccl"`` for CUDA devices, ``"gloo"`` otherwise."""
    return "nccl" if device is not None and torch.device(device).type == "cuda" else "gloo"


def rank_device(device: torch.device | str) -> torch.device:
    """The device this rank should use: ``cuda`` becomes ``cuda:LOCAL_RANK`` in a distributed run."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None and is_distributed():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def init_from_env(device: torch.device | str | None = None) -> bool:
    """Join the process group torchrun described in the environment, once; returns whether this run is distributed.

    A no-op (returning False) when ``WORLD_SIZE`` is unset or 1. Safe to call again (returns True if already
    initialized). The group is torn down at interpreter exit; :func:`teardown` does it sooner.
    """
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size() > 1
    world_size = env_world_size()
    if world_size == 1:
        return False
    if not dist.is_available():
        raise InputError("this torch build has no torch.distributed; run with a single process")
    missing = [key for key in ENV_KEYS if key not in os.environ]
    if missing:
        raise InputError(f"WORLD_SIZE={world_size} but {', '.join(missing)} are not set; launch with "
                         "torchrun --nproc_per_node=N -m advlab ...")
    backend = backend_for(device)
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend)
    atexit.register(teardown)
    return True


def teardown() -> None:
    """Leave the process group (no-op when there is none)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


@contextmanager
def distributed_session(device: torch.device | str | None = None) -> Iterator[bool]:
    """``with distributed_session("cpu") as distributed: ...``: init from the environment, tear down after
    (only if this call initialized the group)."""
    already = dist.is_available() and dist.is_initialized()
    distributed = init_from_env(device)
    try:
        yield distributed
    finally:
        if not already:
            teardown()


def wrap_ddp(model: nn.Module) -> nn.Module:
    """``model`` wrapped in DistributedDataParallel in a distributed run, else ``model`` itself.

    The model must already be on this rank's device; ``device_ids`` stays None so inputs are passed through
    untouched (advlab moves batches itself, and fit's accuracy probe recognizes the very batch tensor).
    """
    if not is_distributed():
        return model
    return nn.parallel.DistributedDataParallel(model)


def split_batch(n: int, rank: int | None = None, world_size: int | None = None) -> slice:
    """The contiguous slice of a global batch of ``n`` items that ``rank`` trains on.

    Sizes differ by at most one (the first ``n % world_size`` ranks take one more); a rank gets an empty slice
    when ``n < world_size``.
    """
    rank = get_rank() if rank is None else rank
    world_size = get_world_size() if world_size is None else world_size
    base, extra = divmod(n, world_size)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (1 if rank < extra else 0))


def shard_batches(num_batches: int, rank: int | None = None, world_size: int | None = None) -> range:
    """Batch indices of one rank: ``rank, rank + world_size, ...`` (round-robin keeps the load even)."""
    rank = get_rank() if rank is None else rank
    world_size = get_world_size() if world_size is None else world_size
    return range(rank, num_batches, world_size)


def shard_indices(n: int, rank: int | None = None, world_size: int | None = None, *,
                  order: torch.Tensor | None = None) -> torch.Tensor:
    """Indices (into 0..n-1, or into ``order``) of one rank's share: every ``world_size``-th, from ``rank``.

    The shares of all ranks are disjoint and their union is everything, as with torch's DistributedSampler
    without padding (so shares differ in size by at most one).
    """
    rank = get_rank() if rank is None else rank
    world_size = get_world_size() if world_size is None else world_size
    if not 0 <= rank < world_size:
        raise InputError(f"rank {rank} is outside 0..{world_size - 1}")
    order = torch.arange(n) if order is None else order
    return order[rank::world_size]


def shard_dataset(dataset: ImageDataset, rank: int | None = None, world_size: int | None = None, *,
                  seed: int | None = None) -> ImageDataset:
    """One rank's share of ``dataset``; with ``seed``, of a seeded shuffle (the same on every rank)."""
    order = None
    if seed is not None:
        order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))
    index = shard_indices(len(dataset), rank, world_size, order=order)
    world_size = get_world_size() if world_size is None else world_size
    rank = get_rank() if rank is None else rank
    return dataset.select(index, f"{dataset.name}[rank {rank}/{world_size}]" if world_size > 1 else dataset.name)


def all_gather_objects(obj: T) -> list[T]:
    """Every rank's ``obj`` (picklable), in rank order; ``[obj]`` outside a distributed run."""
    if not is_distributed():
        return [obj]
    gathered: list[Any] = [None] * get_world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def all_reduce_sum(values: Sequence[float | int | torch.Tensor], device: torch.device | str = "cpu") -> list[float]:
    """Element-wise sums over the ranks of a few numbers (float64); the numbers themselves when alone."""
    tensor = torch.tensor([float(v) for v in values], dtype=torch.float64, device=device)
    if is_distributed():
        dist.all_reduce(tensor)
    return tensor.tolist()


def barrier() -> None:
    """Wait for every rank (no-op when alone)."""
    if is_distributed():
        dist.barrier()


__all__ = [
    "all_gather_objects", "all_reduce_sum", "backend_for", "barrier", "distributed_session", "env_world_size",
    "get_rank", "get_world_size", "init_from_env", "is_distributed", "is_main", "rank_device", "shard_batches",
    "shard_dataset", "shard_indices", "split_batch", "teardown", "wrap_ddp",
]
