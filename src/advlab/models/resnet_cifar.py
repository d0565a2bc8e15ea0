"""CIFAR ResNets: ResNet-20/32/44/56 with option-A shortcuts and width multipliers, and the CIFAR ResNet-18.

He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition", CVPR 2016 (arXiv:1512.03385), section 4.2:
a 3x3 stem, three stages of n BasicBlocks at 16/32/64 channels (depth 6n+2), global average pooling, one linear
layer; shortcuts between stages are "option A" (subsample and zero-pad the channels, no parameters). The wide
variants multiply every stage's channels by ``width`` (1, 1.5, 2, 4), as in the Parametric Noise Injection paper
(He, Rakin, Fan, CVPR 2019, arXiv:1811.09310).

Module names follow akamaster/pytorch_resnet_cifar10 (``conv1``, ``bn1``, ``layer{1,2,3}.{k}.conv{1,2}``,
``layer{1,2,3}.{k}.bn{1,2}``, ``linear``), so its published weights load without renaming
(:func:`advlab.models.foreign.load_foreign_weights`). Every step is a module (``nn.ReLU`` included, the shortcut
too) so later code (moment propagation, PNI noise injection) can find and replace layers by walking the model.

ResNet-18 is the CIFAR variant popularised by kuangliu/pytorch-cifar: a 3x3 stem without max-pool, four stages
of two BasicBlocks at 64..512 channels, 1x1-conv+BN projection shortcuts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch.nn.functional as F
from torch import Tensor, nn

from advlab.errors import InputError
from advlab.models.layers import normalization_layer
from advlab.models.registry import register_model

ShortcutKind = Literal["A", "projection"]


class ShortcutA(nn.Module):
    """He et al.'s option-A shortcut: subsample by ``stride`` and zero-pad the channels; no parameters.

    For a stage that doubles the channels, akamaster pads ``planes // 4`` channels on each side; for any
    ``out_channels - in_channels`` this module splits the padding as evenly as it can (the same thing there).

    Shape: (N, in_channels, H, W) -> (N, out_channels, ceil(H/stride), ceil(W/stride)).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        if out_channels < in_channels:
            raise ValueError(f"option-A shortcut cannot shrink channels ({in_channels} -> {out_channels})")
        self.stride = stride
        self.pad_front = (out_channels - in_channels) // 2
        self.pad_back = out_channels - in_channels - self.pad_front

    def forward(self, x: Tensor) -> Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        # F.pad's last pair pads dim 1 (channels) when given (W_left, W_right, H_top, H_bottom, C_front, C_back).
        return F.pad(x, (0, 0, 0, 0, self.pad_front, self.pad_back))

    def extra_repr(self) -> str:
        return f"stride={self.stride}, pad=({self.pad_front}, {self.pad_back})"


def projection_shortcut(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    """Option B: a strided 1x1 conv + BN (ResNet-18); named ``shortcut.0`` / ``shortcut.1`` as in kuangliu's code."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False),
        nn.BatchNorm2d(out_channels),
    )


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN, plus the shortcut, then ReLU.

    The shortcut is the identity when shape is kept, else option A (no parameters) or a projection.

    Shape: (N, in_channels, H, W) -> (N, out_channels, H/stride, W/stride).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, shortcut: ShortcutKind) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module
        if stride == 1 and in_channels == out_channels:
            self.shortcut = nn.Identity()
        elif shortcut == "A":
            self.shortcut = ShortcutA(in_channels, out_channels, stride)
        else:
            self.shortcut = projection_shortcut(in_channels, out_channels, stride)
        self.relu2 = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """Stem conv3x3+BN+ReLU, stages of BasicBlocks (stride 2 at the start of every stage but the first),
    global average pooling, ``linear`` to the logits.

    Args:
        blocks_per_stage: BasicBlocks in each stage, e.g. (3, 3, 3) for ResNet-20, (2, 2, 2, 2) for ResNet-18.
        stage_channels: output channels of each stage, e.g. (16, 32, 64); the stem has ``stage_channels[0]``.
        shortcut: "A" (parameter-free, He et al. CIFAR) or "projection" (1x1 conv + BN).
        normalization: "cifar10", "imagenet" (what the akamaster weights were trained with), "mnist" or "none".
        num_classes: logits out.

    Shape: (N, 3, 32, 32) floats in [0, 1] -> (N, num_classes) logits (any H, W >= 2**(stages-1) works).
    """

    def __init__(
        self,
        *,
        blocks_per_stage: Sequence[int],
        stage_channels: Sequence[int],
        shortcut: ShortcutKind,
        normalization: str = "cifar10",
        num_classes: int = 10,
    ) -> None:
        super().__init__()
        if len(blocks_per_stage) != len(stage_channels) or not blocks_per_stage:
            raise InputError(
                f"give one channel count per stage: blocks_per_stage={tuple(blocks_per_stage)}, "
                f"stage_channels={tuple(stage_channels)}"
            )
        # A separate attribute whose buffers ("normalize.mean/std") cannot collide with the weights' names.
        self.normalize = normalization_layer(normalization, channels=3)
        self.conv1 = nn.Conv2d(3, stage_channels[0], kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(stage_channels[0])
        self.relu = nn.ReLU()
        in_channels = stage_channels[0]
        for index, (blocks, channels) in enumerate(zip(blocks_per_stage, stage_channels), start=1):
            stage = []
            for k in range(blocks):
                stride = 2 if index > 1 and k == 0 else 1
                stage.append(BasicBlock(in_channels, channels, stride, shortcut))
                in_channels = channels
            self.add_module(f"layer{index}", nn.Sequential(*stage))
        self.num_stages = len(blocks_per_stage)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.linear = nn.Linear(in_channels, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        # He (Kaiming) normal init for convs and the linear layer, as in He et al. 2016 and akamaster's code.
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(module.weight)

    def stages(self) -> list[nn.Sequential]:
        return [getattr(self, f"layer{i}") for i in range(1, self.num_stages + 1)]

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.bn1(self.conv1(self.normalize(x))))
        for stage in self.stages():
            x = stage(x)
        return self.linear(self.flatten(self.avgpool(x)))


def widen(channels: Sequence[int], width: float) -> tuple[int, ...]:
    """Stage channels times the width multiplier (16*1.5 = 24, ...); refuses widths that round to nothing."""
    if width <= 0:
        raise InputError(f"width must be positive (1, 1.5, 2, 4 in the PNI paper), got {width}")
    widened = tuple(int(round(c * width)) for c in channels)
    if min(widened) < 1:
        raise InputError(f"width {width} leaves a stage without channels: {widened}")
    return widened


def cifar_resnet(
    depth: int, *, width: float = 1.0, normalization: str = "cifar10", num_classes: int = 10
) -> CifarResNet:
    """He et al.'s CIFAR ResNet of ``depth`` = 6n+2 layers (20, 32, 44, 56, 110, ...), option-A shortcuts."""
    if depth < 8 or (depth - 2) % 6:
        raise InputError(f"CIFAR ResNet depth must be 6n+2 (20, 32, 44, 56, 110), got {depth}")
    n = (depth - 2) // 6
    return CifarResNet(
        blocks_per_stage=(n, n, n),
        stage_channels=widen((16, 32, 64), width),
        shortcut="A",
        normalization=normalization,
        num_classes=num_classes,
    )


_HE_2016 = "He et al. 2016, Deep Residual Learning (CIFAR, option A)"


@register_model("resnet20", dataset="cifar10", input_shape=(3, 32, 32), paper=_HE_2016 + "; PNI wide variants")
def resnet20(*, width: float = 1.0, normalization: str = "cifar10", num_classes: int = 10) -> CifarResNet:
    return cifar_resnet(20, width=width, normalization=normalization, num_classes=num_classes)


@register_model("resnet32", dataset="cifar10", input_shape=(3, 32, 32), paper=_HE_2016)
def resnet32(*, width: float = 1.0, normalization: str = "cifar10", num_classes: int = 10) -> CifarResNet:
    return cifar_resnet(32, width=width, normalization=normalization, num_classes=num_classes)


@register_model("resnet44", dataset="cifar10", input_shape=(3, 32, 32), paper=_HE_2016)
def resnet44(*, width: float = 1.0, normalization: str = "cifar10", num_classes: int = 10) -> CifarResNet:
    return cifar_resnet(44, width=width, normalization=normalization, num_classes=num_classes)


@register_model("resnet56", dataset="cifar10", input_shape=(3, 32, 32), paper=_HE_2016)
def resnet56(*, width: float = 1.0, normalization: str = "cifar10", num_classes: int = 10) -> CifarResNet:
    return cifar_resnet(56, width=width, normalization=normalization, num_classes=num_classes)


@register_model(
    "resnet18",
    dataset="cifar10",
    input_shape=(3, 32, 32),
    paper="He et al. 2016, ResNet-18 (CIFAR variant of kuangliu/pytorch-cifar)",
)
def resnet18(*, normalization: str = "cifar10", num_classes: int = 10) -> CifarResNet:
    return CifarResNet(
        blocks_per_stage=(2, 2, 2, 2),
        stage_channels=(64, 128, 256, 512),
        shortcut="projection",
        normalization=normalization,
        num_classes=num_classes,
    )


__all__ = [
    "BasicBlock",
    "CifarResNet",
    "ShortcutA",
    "cifar_resnet",
    "projection_shortcut",
    "resnet18",
    "resnet20",
    "resnet32",
    "resnet44",
    "resnet56",
    "widen",
]
