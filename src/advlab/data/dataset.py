"""The in-memory dataset every source returns: uint8 images + int64 labels, batched on demand.

Keeping images as uint8 NCHW tensors (4x smaller than float32) lets whole datasets sit in memory, or on the GPU,
and be converted to float [0, 1] one batch at a time (DESIGN.md §4: no PIL or numpy in the hot path).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import torch

from advlab.errors import InputError


@dataclass(frozen=True)
class ImageDataset:
    """Images and labels of one split.

    Attributes:
        images: uint8 tensor, shape (N, C, H, W), values 0..255.
        labels: int64 tensor, shape (N,), values 0..num_classes-1.
        classes: class names, ``len(classes) == num_classes``.
        name: dataset name and split, e.g. ``"mnist/test"`` (written into cards).
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]
    name: str
    info: dict[str, object] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise InputError(f"{self.name}: images must be a uint8 (N, C, H, W) tensor, got "
                             f"{self.images.dtype} of shape {tuple(self.images.shape)}")
        if self.labels.dtype != torch.int64 or self.labels.shape != (self.images.shape[0],):
            raise InputError(f"{self.name}: labels must be int64 of shape ({self.images.shape[0]},), got "
                             f"{self.labels.dtype} of shape {tuple(self.labels.shape)}")
        if len(self.labels) and (int(self.labels.min()) < 0 or int(self.labels.max()) >= len(self.classes)):
            raise InputError(f"{self.name}: labels must lie in 0..{len(self.classes) - 1}")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        shape = self.images.shape  # (N, C, H, W), checked in __post_init__
        return (shape[1], shape[2], shape[3])

    def select(self, index: torch.Tensor | slice, name: str | None = None) -> ImageDataset:
        """A new dataset holding ``images[index]`` (index tensor or slice)."""
        return ImageDataset(self.images[index], self.labels[index], self.classes, name or self.name, self.info)

    def subset(self, n: int | None, seed: int = 0) -> ImageDataset:
        """``n`` examples drawn without replacement with a fixed seed (all of them when ``n`` is None)."""
        if n is None or n >= len(self):
            return self
        if n <= 0:
            raise InputError(f"--n must be a positive number of examples, got {n}")
        generator = torch.Generator().manual_seed(seed)
        index = torch.randperm(len(self), generator=generator)[:n].sort().values
        return self.select(index, f"{self.name}[{n}]")

    def split(self, val_fraction: float, seed: int = 0) -> tuple[ImageDataset, ImageDataset]:
        """Seeded (train, validation) split; ``val_fraction`` in [0, 1)."""
        if not 0.0 <= val_fraction < 1.0:
            raise InputError(f"validation fraction must be in [0, 1), got {val_fraction}")
        n_val = int(round(len(self) * val_fraction))
        generator = torch.Generator().manual_seed(seed)
        order = torch.randperm(len(self), generator=generator)
        train_idx, val_idx = order[n_val:].sort().values, order[:n_val].sort().values
        return self.select(train_idx, f"{self.name}:train"), self.select(val_idx, f"{self.name}:val")

    def to(self, device: torch.device | str) -> ImageDataset:
        return ImageDataset(self.images.to(device), self.labels.to(device), self.classes, self.name, self.info)

    def batches(
        self,
        batch_size: int,
        *,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        drop_last: bool = False,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield ``(x, y)``: x float32 (B, C, H, W) in [0, 1], y int64 (B,), on ``device``."""
        if batch_size <= 0:
            raise InputError(f"batch size must be positive, got {batch_size}")
        n = len(self)
        order = torch.randperm(n, generator=generator) if shuffle else None
        stop = n - n % batch_size if drop_last else n
        for start in range(0, stop, batch_size):
            index = order[start:start + batch_size] if order is not None else slice(start, start + batch_size)
            images, labels = self.images[index], self.labels[index]
            if device is not None:
                images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
            yield images.float().div_(255.0), labels

    def float_images(self) -> torch.Tensor:
        """All images as float32 in [0, 1] (for small sets: tests, grids, statistics)."""
        return self.images.float().div_(255.0)
