"""Worker functions run in spawned processes by the distributed tests (importable by name in the children)."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import torch
import torch.multiprocessing as mp

from advlab.data.dataset import ImageDataset


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def spawn(worker: Any, world_size: int, *args: Any) -> None:
    """Run ``worker(rank, world_size, port, *args)`` in ``world_size`` fresh processes; re-raise their errors."""
    mp.start_processes(worker, args=(world_size, free_port(), *args), nprocs=world_size, join=True,
                       start_method="spawn")


def torchrun_env(rank: int, world_size: int, port: int) -> None:
    """The environment torchrun would give this rank (loopback only)."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)


def digits(n: int, *, seed: int) -> ImageDataset:
    """``n`` noisy 1x28x28 uint8 images of 10 classes: a faint horizontal band at rows 2*label..2*label+1."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 10, (n,), generator=generator)
    images = torch.randint(0, 100, (n, 1, 28, 28), generator=generator)
    rows = torch.arange(28).view(1, 28)
    band = (rows // 2 == labels.view(n, 1)).view(n, 1, 28, 1)
    images = images + 60 * band
    return ImageDataset(images.to(torch.uint8), labels, tuple(str(i) for i in range(10)), "digits")


def tiny_mlp(seed: int = 0) -> torch.nn.Module:
    from advlab.models import create_model

    torch.manual_seed(seed)
    return create_model("mlp", hidden_sizes=(16,))


def fit_worker(rank: int, world_size: int, port: int, out: str, settings: dict[str, Any]) -> None:
    """``fit`` exactly as a torchrun rank runs it: the process group comes from the environment."""
    from advlab.distributed import teardown
    from advlab.train import TrainConfig, fit

    torchrun_env(rank, world_size, port)
    try:
        result = fit(tiny_mlp(), digits(settings.pop("n"), seed=1), config=TrainConfig(**settings),
                     val_set=digits(13, seed=2), out_dir=Path(out) / "run", quiet=True, device="cpu")
        torch.save({"state": result.model.state_dict(), "history": result.history, "card": result.card},
                   Path(out) / f"rank{rank}.pt")
    finally:
        teardown()


def attack_worker(rank: int, world_size: int, port: int, out: str, batch_sizes: list[int]) -> None:
    """``run_attack`` with FGSM inside a process group: each rank attacks its batches, all get every record."""
    from advlab.attacks import create_attack
    from advlab.distributed import init_from_env, teardown
    from advlab.evaluate import run_attack

    torchrun_env(rank, world_size, port)
    assert init_from_env("cpu")
    try:
        model = tiny_mlp()
        model.load_state_dict(torch.load(Path(out) / "model.pt", weights_only=True))
        for batch_size in batch_sizes:
            run = run_attack(model, digits(37, seed=3), create_attack("fgsm", eps=0.03), batch_size=batch_size,
                             keep_adversarial=True)
            torch.save(run, Path(out) / f"attack{rank}-b{batch_size}.pt")
    finally:
        teardown()
