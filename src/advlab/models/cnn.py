"""The papers' small CNNs: the MNIST CNN, Wong et al.'s small MNIST CNN and van Everdingen's CIFAR-10 CNN.

"""

from __future__ import annotations

from torch import Tensor, nn

from advlab.errors import InputError
from advlab.models.layers import normalization_layer
from advlab.models.registry import register_model


class MnistCNN(nn.Module):
    """Two 5x5 conv layers, two max-pools, FC 1024 with dropout, FC 10 (the TensorFlow "layers" MNIST CNN).

    conv 32@5x5 'same' -> ReLU -> max-pool 2 -> conv 64@5x5 'same' -> ReLU -> max-pool 2 -> flatten (64*7*7)
    -> FC 1024 -> ReLU -> dropout(0.4) -> FC num_classes. 3,274,634 trainable parameters.

    Shape: (N, 1, 28, 28) floats in [0, 1] -> (N, num_classes) logits.
    """

    def __init__(self, *, normalization: str = "mnist", dropout: float = 0.4, num_classes: int = 10) -> None:
        super().__init__()
        self.normalize = normalization_layer(normalization, channels=1)
        self.conv1 = nn.Conv2d(1, 32, kernel_size=5, padding=2)
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=5, padding=2)
        self.relu2 = nn.ReLU()
        self.pool2 = nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(64 * 7 * 7, 1024)
        self.relu3 = nn.ReLU()
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(1024, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.normalize(x)
        x = self.pool1(self.relu1(self.conv1(x)))
        x = self.pool2(self.relu2(self.conv2(x)))
        x = self.dropout(self.relu3(self.fc1(self.flatten(x))))
        return self.fc2(x)


class CifarCNN(nn.Module):
    """Van Everdingen's CIFAR-10 CNN: 3 blocks of [conv3x3, BN, conv3x3, BN, max-pool 2, dropout], dense 10.

    Channels 32/64/64, 'same' padding, conv layers with bias (Keras' default). Each conv is followed by ReLU and
    then BatchNorm (the Keras idiom ``Conv2D(..., activation="relu")`` then ``BatchNormalization()``; the paper's
    layer list names conv and BN only, so the activation placement is our reading; it does not change the
    parameter count). 'same' padding is what the published count pins down: the flatten size must be
    64*4*4 = 1024 for the dense layer to have 10,250 parameters; 'valid' padding would leave 64*2*2.
    150,314 trainable parameters; 150,954 as Keras counts them (BN running mean/var included).

    ``dropout`` is the rate after each block. The default 0.25 is the rate of the Keras CIFAR-10 example this
    architecture follows; pass the value of the experiment being reproduced when it differs.

    Shape: (N, 3, 32, 32) floats in [0, 1] -> (N, num_classes) logits.
    """

    def __init__(
        self,
        *,
        normalization: str = "cifar10",
        channels: tuple[int, ...] = (32, 64, 64),
        dropout: float = 0.25,
        num_classes: int = 10,
    ) -> None:
        super().__init__()
        self.normalize = normalization_layer(normalization, channels=3)
        blocks: list[nn.Module] = []
        in_channels = 3
        for out_channels in channels:
            blocks.append(
                nn.Sequential(
                    nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1),
                    nn.ReLU(),
                    nn.BatchNorm2d(out_channels),
                    nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1),
                    nn.ReLU(),
                    nn.BatchNorm2d(out_channels),
                    nn.MaxPool2d(2),
                    nn.Dropout(dropout),
                )
            )
            in_channels = out_channels
        self.features = nn.Sequential(*blocks)
        self.flatten = nn.Flatten()
        # Each block's max-pool halves the 32x32 input: three blocks leave 4x4 feature maps.
        side = 32 // 2 ** len(channels)
        if side < 1:
            raise InputError(f"cifar_cnn takes at most 5 blocks on 32x32 images, got channels={channels}")
        self.classifier = nn.Linear(in_channels * side * side, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.flatten(self.features(self.normalize(x))))


@register_model(
    "mnist_cnn",
    dataset="mnist",
    input_shape=(1, 28, 28),
    paper="TensorFlow layers-tutorial MNIST CNN (conv32-conv64-fc1024)",
)
def mnist_cnn(*, normalization: str = "mnist", dropout: float = 0.4, num_classes: int = 10) -> MnistCNN:
    return MnistCNN(normalization=normalization, dropout=dropout, num_classes=num_classes)


class MnistSmallCNN(nn.Module):
    """The small MNIST CNN of Wong & Kolter (2018, arXiv:1711.00851), reused as ``mnist_net`` by Wong, Rice, Kolter's
    fast-adversarial-training MNIST code (2020, arXiv:2001.03994).

    conv 16@4x4 stride 2 pad 1 -> ReLU -> conv 32@4x4 stride 2 pad 1 -> ReLU -> flatten (32*7*7) -> FC 100
    -> ReLU -> FC num_classes. 166,406 trainable parameters, 1/20 of ``mnist_cnn``. No normalization by
    default, as in their code.

    Shape: (N, 1, 28, 28) floats in [0, 1] -> (N, num_classes) logits.
    """

    def __init__(self, *, normalization: str = "none", num_classes: int = 10) -> None:
        super().__init__()
        self.normalize = normalization_layer(normalization, channels=1)
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, kernel_size=4, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(16, 32, kernel_size=4, stride=2, padding=1), nn.ReLU(),
        )
        self.flatten = nn.Flatten()
        self.classifier = nn.Sequential(nn.Linear(32 * 7 * 7, 100), nn.ReLU(), nn.Linear(100, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.flatten(self.features(self.normalize(x))))


@register_model(
    "mnist_small",
    dataset="mnist",
    input_shape=(1, 28, 28),
    paper="Wong & Kolter 2018 / Wong, Rice, Kolter 2020 small MNIST CNN (conv16-conv32-fc100)",
)
def mnist_small(*, normalization: str = "none", num_classes: int = 10) -> MnistSmallCNN:
    return MnistSmallCNN(normalization=normalization, num_classes=num_classes)


@register_model(
    "cifar_cnn",
    dataset="cifar10",
    input_shape=(3, 32, 32),
    paper="van Everdingen, CNNs and adversarial examples",
)
def cifar_cnn(
    *,
    normalization: str = "cifar10",
    channels: tuple[int, ...] = (32, 64, 64),
    dropout: float = 0.25,
    num_classes: int = 10,
) -> CifarCNN:
    return CifarCNN(normalization=normalization, channels=tuple(channels), dropout=dropout, num_classes=num_classes)
