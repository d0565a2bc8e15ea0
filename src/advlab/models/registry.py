"""The model registry: ``@register_model`` on small factories, ``create_model(name, **kwargs)`` to build one.

Every registered model takes float32 NCHW images in [0, 1] and returns logits; its ``Normalize`` layer is inside
(DESIGN.md §3.1). ``create_model`` records the name and arguments on the module as ``model.advlab_spec`` so a
checkpoint card can rebuild the same architecture later.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from advlab.registry import Registry

MODELS: Registry[nn.Module] = Registry("model")


def register_model(
    name: str, *, dataset: str, input_shape: tuple[int, int, int], num_classes: int = 10, paper: str = ""
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register a model factory with the dataset it is meant for and its input shape (C, H, W)."""
    return MODELS.register(name, dataset=dataset, input_shape=input_shape, num_classes=num_classes, paper=paper)


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered model; ``kwargs`` go to its factory (e.g. ``width=2`` for a wide ResNet)."""
    model = MODELS.create(name, **kwargs)
    # torch's stubs type Module.__setattr__ for tensors and modules only; any value is allowed at runtime.
    model.advlab_spec = {"name": name, "args": dict(kwargs)}  # type: ignore[assignment]
    return model


def list_models() -> list[str]:
    return MODELS.names()


def count_parameters(model: nn.Module, *, trainable_only: bool = True) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
