"""A tiny model and a synthetic, linearly separable image problem for the training-loop tests (no real data)."""

from __future__ import annotations

import torch
from torch import nn

from advlab.data.dataset import ImageDataset
from advlab.models.layers import Normalize

CLASSES = ("left", "middle", "right")


class TinyNet(nn.Module):
    """Normalize -> conv 3x3 (4) -> batch norm -> ReLU -> flatten -> dropout -> linear: buffers, dropout, 1-d params.

    Shape: (N, 1, 8, 8) in [0, 1] -> (N, num_classes) logits.
    """

    def __init__(self, num_classes: int = 3, dropout: float = 0.2) -> None:
        super().__init__()
        self.normalize = Normalize((0.25,), (0.4,))
        self.conv = nn.Conv2d(1, 4, kernel_size=3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.relu = nn.ReLU()
        self.flatten = nn.Flatten()
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(4 * 8 * 8, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn(self.conv(self.normalize(x))))
        return self.fc(self.dropout(self.flatten(x)))


def stripes(n: int, *, seed: int = 0, name: str = "stripes") -> ImageDataset:
    """``n`` noisy 1x8x8 uint8 images of 3 classes: a bright vertical stripe in the left, middle or right third."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 3, (n,), generator=generator)
    images = torch.randint(0, 90, (n, 1, 8, 8), generator=generator)
    columns = torch.tensor([[0, 1], [3, 4], [6, 7]])[labels]  # (n, 2)
    rows = torch.arange(n)[:, None]
    images[rows, 0, :, columns] += 150
    return ImageDataset(images.clamp(0, 255).to(torch.uint8), labels.long(), CLASSES, name)


def tiny_model(seed: int = 0, **kwargs: object) -> TinyNet:
    torch.manual_seed(seed)
    return TinyNet(**kwargs)  # type: ignore[arg-type]
