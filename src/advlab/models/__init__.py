"""Models of the papers, behind one registry. Each takes [0, 1] images and returns logits.

Importing this package registers every architecture (``mlp``, ``mnist_cnn``, ``mnist_small``, ``cifar_cnn``,
``nin``, ``resnet18``, ``resnet20/32/44/56``); build one with ``create_model(name, **kwargs)``.
"""

from advlab.models import cnn, mlp, nin, resnet_cifar  # noqa: F401  (imported for their @register_model)
from advlab.models.cnn import CifarCNN, MnistCNN, MnistSmallCNN
from advlab.models.foreign import load_foreign_weights, read_state_dict
from advlab.models.layers import NORMALIZATIONS, Normalize, normalization_layer
from advlab.models.mlp import MLP
from advlab.models.nin import NIN
from advlab.models.registry import MODELS, count_parameters, create_model, list_models, register_model
from advlab.models.resnet_cifar import BasicBlock, CifarResNet, ShortcutA, cifar_resnet

__all__ = [
    "MLP",
    "MODELS",
    "NIN",
    "NORMALIZATIONS",
    "BasicBlock",
    "CifarCNN",
    "CifarResNet",
    "MnistCNN",
    "MnistSmallCNN",
    "Normalize",
    "ShortcutA",
    "cifar_resnet",
    "count_parameters",
    "create_model",
    "list_models",
    "load_foreign_weights",
    "normalization_layer",
    "read_state_dict",
    "register_model",
]
