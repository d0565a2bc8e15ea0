"""Save and restore the train/eval flag of every submodule around code that switches modes.

Attacks run models in eval mode, MC-dropout turns dropout back on, GradAlign takes a second-order input gradient
in eval mode: each must hand the caller's model back exactly as it was, per module (a model may be in eval mode
with some submodules training, as MC-dropout leaves it), also when the code in between raises.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn


@contextmanager
def restored_modes(model: nn.Module) -> Iterator[nn.Module]:
    """Record every submodule's ``training`` flag; restore each one on exit (in ``finally``).

    Example::

        with restored_modes(model):
            model.eval()
            logits = model(x)
        # model.training and every submodule's flag are as before
    """
    modes = [(module, module.training) for module in model.modules()]
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training
