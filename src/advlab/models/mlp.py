"""The fully connected MNIST network of "Fooling networks by adding noises": 784-256-256-10 with ReLU."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from advlab.models.layers import normalization_layer
from advlab.models.registry import register_model


class MLP(nn.Module):
    """Flatten, then Linear+ReLU per hidden layer, then a Linear layer to the logits.

    With the default 784-256-256-10 it has 269,322 trainable parameters.

    Shape: (N, C, H, W) floats in [0, 1] with C*H*W == ``in_features`` -> (N, num_classes) logits.
    """

    def __init__(
        self,
        *,
        normalization: str = "mnist",
        in_shape: tuple[int, int, int] = (1, 28, 28),
        hidden_sizes: Sequence[int] = (256, 256),
        num_classes: int = 10,
    ) -> None:
        super().__init__()
        channels, height, width = in_shape
        self.normalize = normalization_layer(normalization, channels=channels)
        self.flatten = nn.Flatten()
        layers: list[nn.Module] = []
        in_features = channels * height * width
        for size in hidden_sizes:
            layers += [nn.Linear(in_features, size), nn.ReLU()]
            in_features = size
        layers.append(nn.Linear(in_features, num_classes))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(self.flatten(self.normalize(x)))


@register_model(
    "mlp",
    dataset="mnist",
    input_shape=(1, 28, 28),
    paper="Fooling networks by adding noises (MLP 784-256-256-10)",
)
def mlp(
    *, normalization: str = "mnist", hidden_sizes: Sequence[int] = (256, 256), num_classes: int = 10
) -> MLP:
    return MLP(normalization=normalization, hidden_sizes=tuple(hidden_sizes), num_classes=num_classes)
