"""What every evaluation function accepts as data, and how it is batched, fingerprinted and described.

Evaluation functions take either an :class:`~advlab.data.dataset.ImageDataset` (uint8 images, converted to
float [0, 1] one batch at a time) or a pair ``(x, y)`` of float images (N, C, H, W) in [0, 1] and int64 labels
(N,). :func:`as_eval_data` turns both into one small :class:`EvalData` so the rest of the package has one path.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from advlab.data.dataset import ImageDataset
from advlab.errors import InputError

DataLike = ImageDataset | tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class EvalData:
    """Images (uint8 0..255 or float [0, 1], (N, C, H, W)) and int64 labels (N,), with a name for cards."""

    images: torch.Tensor
    labels: torch.Tensor
    name: str

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def num_batches(self, batch_size: int) -> int:
        return -(-len(self) // batch_size)

    def batch(
        self, index: int, batch_size: int, device: torch.device | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch ``index``: x float32 (B, C, H, W) in [0, 1] and y int64 (B,), on ``device``."""
        window = slice(index * batch_size, (index + 1) * batch_size)
        return self.convert(self.images[window], device), self.labels[window].to(device)

    def batches(
        self, batch_size: int, device: torch.device | None = None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for index in range(self.num_batches(batch_size)):
            yield self.batch(index, batch_size, device)

    def convert(self, images: torch.Tensor, device: torch.device | None = None) -> torch.Tensor:
        images = images.to(device)
        return images.float().div_(255.0) if images.dtype == torch.uint8 else images.float()

    def float_images(self) -> torch.Tensor:
        return self.convert(self.images)

    def fingerprint(self) -> str:
        """sha256 of the images and labels: two calls on the same data give the same key in the state file."""
        digest = hashlib.sha256()
        for tensor in (self.images, self.labels):
            digest.update(str((tuple(tensor.shape), str(tensor.dtype))).encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()


def as_eval_data(data: DataLike | EvalData, name: str | None = None) -> EvalData:
    """Accept an ImageDataset or ``(x, y)``; raise :class:`InputError` for anything else."""
    if isinstance(data, EvalData):
        return data
    if isinstance(data, ImageDataset):
        return EvalData(data.images, data.labels, name or data.name)
    if isinstance(data, (tuple, list)) and len(data) == 2:
        x, y = data
        if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
            raise InputError("data must be an ImageDataset or a pair (x, y) of tensors")
        if x.dim() != 4 or (x.dtype != torch.uint8 and not x.is_floating_point()):
            raise InputError(f"images must be (N, C, H, W) float in [0, 1] or uint8, got {x.dtype} "
                             f"of shape {tuple(x.shape)}")
        if x.is_floating_point() and x.numel() and (x.min() < 0 or x.max() > 1):
            raise InputError("images must lie in [0, 1]; divide uint8 images by 255 and keep normalization "
                             "inside the model")
        if y.dtype not in (torch.int64, torch.int32) or y.shape != (x.shape[0],):
            raise InputError(f"labels must be an integer tensor of shape ({x.shape[0]},), got {y.dtype} "
                             f"of shape {tuple(y.shape)}")
        if x.shape[0] == 0:
            raise InputError("the data is empty: pass at least one image")
        return EvalData(x.detach(), y.to(torch.int64), name or "tensors")
    raise InputError(f"data must be an ImageDataset or a pair (x, y) of tensors, got {type(data).__name__}")


def model_device(model: nn.Module, device: torch.device | str | None = None) -> torch.device:
    """The device to evaluate on: ``device`` if given, else where the model's first parameter/buffer lives."""
    if device is not None:
        return torch.device(device)
    for tensor in list(model.parameters()) + list(model.buffers()):
        return tensor.device
    return torch.device("cpu")


def model_fingerprint(model: nn.Module) -> str:
    """sha256 of the model's class name and state dict (names, shapes, dtypes, values)."""
    digest = hashlib.sha256(type(model).__qualname__.encode())
    for key, tensor in model.state_dict().items():
        digest.update(f"{key}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
                      if tensor.numel() else b"")
    return digest.hexdigest()


def check_batch_size(batch_size: int) -> None:
    if not isinstance(batch_size, int) or batch_size <= 0:
        raise InputError(f"batch_size must be a positive integer, got {batch_size!r}")
