"""Network in Network for CIFAR-10 (Lin, Chen, Yan, ICLR 2014, arXiv:1312.4400).

The layer list is the authors' released CIFAR-10 Caffe model (the NIN entry of the Caffe Model Zoo,
``train_val.prototxt``), the 3-block 192/160/96 variant that adversarial-robustness papers use on CIFAR-10:

    conv1 5x5 192 (pad 2) -> cccp1 1x1 160 -> cccp2 1x1 96 -> max-pool 3/2 -> dropout
    conv2 5x5 192 (pad 2) -> cccp3 1x1 192 -> cccp4 1x1 192 -> avg-pool 3/2 -> dropout
    conv3 3x3 192 (pad 1) -> cccp5 1x1 192 -> cccp6 1x1 10 -> global average pool

with a ReLU after every conv ("mlpconv" layers). Two details follow Caffe rather than PyTorch defaults:
the pools round up (``ceil_mode=True``: 32 -> 16 -> 8, as in the paper), and the dropout rate is 0.5.
The released model also puts a ReLU after ``cccp6``, i.e. on the class maps that become the logits; that makes
every logit >= 0 and zeroes the gradient of any class whose map is negative everywhere, which hides gradients from
attacks. We leave it out by default and offer ``final_relu=True`` to reproduce the Caffe model exactly.
966,986 trainable parameters.

``nin_bn`` is the same network with batch normalization (Ioffe & Szegedy 2015), as Jin, Dundar, Culurciello
(arXiv:1511.06306, §3) train their NIN "with the latest technique including dropout and batch normalization". They
do not say where the BN layers sit; ours is the usual conv -> BN -> ReLU in every mlpconv layer except the last
(``cccp6``, whose outputs are the class maps), with the conv bias dropped where a BN follows (BN's shift replaces
it). 968,394 trainable parameters (+ 2,816 running means and variances). At test time each conv + BN pair is one affine
map, so the moment network propagates through it exactly (their Eq. 5).
"""

from __future__ import annotations

from collections import OrderedDict

from torch import Tensor, nn

from advlab.models.layers import normalization_layer
from advlab.models.registry import register_model


def _mlpconv(name: str, in_channels: int, out_channels: int, kernel_size: int,
             batch_norm: bool = False) -> list[tuple[str, nn.Module]]:
    """A conv with 'same' padding and its ReLU, named like the Caffe layers (conv1/relu1, cccp1/relu_cccp1);
    with ``batch_norm`` a BatchNorm2d (``bn_<name>``) sits between them and the conv has no bias."""
    conv = nn.Conv2d(in_channels, out_channels, kernel_size=kernel_size, padding=kernel_size // 2,
                     bias=not batch_norm)
    norm = [(f"bn_{name}", nn.BatchNorm2d(out_channels))] if batch_norm else []
    return [(name, conv), *norm, (f"relu_{name}", nn.ReLU())]


class NIN(nn.Module):
    """Network in Network (CIFAR-10 variant). Shape: (N, 3, 32, 32) floats in [0, 1] -> (N, num_classes) logits.

    ``features`` is an ``nn.Sequential`` whose children keep the Caffe names, so layers can be found by walking it.
    ``batch_norm=True`` adds conv -> BN -> ReLU in every mlpconv layer but the last (see the module docstring).
    """

    def __init__(
        self,
        *,
        normalization: str = "cifar10",
        dropout: float = 0.5,
        final_relu: bool = False,
        num_classes: int = 10,
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        self.normalize = normalization_layer(normalization, channels=3)
        bn = batch_norm
        layers: list[tuple[str, nn.Module]] = [
            *_mlpconv("conv1", 3, 192, 5, bn),
            *_mlpconv("cccp1", 192, 160, 1, bn),
            *_mlpconv("cccp2", 160, 96, 1, bn),
            ("pool1", nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True)),
            ("drop1", nn.Dropout(dropout)),
            *_mlpconv("conv2", 96, 192, 5, bn),
            *_mlpconv("cccp3", 192, 192, 1, bn),
            *_mlpconv("cccp4", 192, 192, 1, bn),
            ("pool2", nn.AvgPool2d(kernel_size=3, stride=2, ceil_mode=True)),
            ("drop2", nn.Dropout(dropout)),
            *_mlpconv("conv3", 192, 192, 3, bn),
            *_mlpconv("cccp5", 192, 192, 1, bn),
            ("cccp6", nn.Conv2d(192, num_classes, kernel_size=1)),
        ]
        if final_relu:
            layers.append(("relu_cccp6", nn.ReLU()))
        layers += [("pool3", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten())]
        self.features = nn.Sequential(OrderedDict(layers))

    def forward(self, x: Tensor) -> Tensor:
        return self.features(self.normalize(x))


@register_model(
    "nin",
    dataset="cifar10",
    input_shape=(3, 32, 32),
    paper="Lin et al. 2014, Network In Network (CIFAR-10 Caffe model)",
)
def nin(
    *, normalization: str = "cifar10", dropout: float = 0.5, final_relu: bool = False, num_classes: int = 10
) -> NIN:
    return NIN(normalization=normalization, dropout=dropout, final_relu=final_relu, num_classes=num_classes)


@register_model(
    "nin_bn",
    dataset="cifar10",
    input_shape=(3, 32, 32),
    paper="Lin et al. 2014 NIN with batch normalization (conv -> BN -> ReLU), as trained by Jin et al. 2015",
)
def nin_bn(*, normalization: str = "cifar10", dropout: float = 0.5, num_classes: int = 10) -> NIN:
    return NIN(normalization=normalization, dropout=dropout, num_classes=num_classes, batch_norm=True)
