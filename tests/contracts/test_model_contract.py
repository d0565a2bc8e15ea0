"""The model contract, for every registered model: [0, 1] images of its input shape in, finite logits of its
number of classes out, gradients reaching the input and every trainable parameter; eval mode is deterministic."""

from __future__ import annotations

import pytest
import torch

from advlab.models import MODELS, create_model


@pytest.mark.parametrize("name", MODELS.names())
def test_forward_and_backward(name: str) -> None:
    info = MODELS.entry(name).info
    torch.manual_seed(0)
    model = create_model(name).train()
    x = torch.rand(2, *info["input_shape"], requires_grad=True)
    logits = model(x)
    assert logits.shape == (2, info["num_classes"]) and logits.dtype == torch.float32
    assert torch.isfinite(logits).all()
    logits.logsumexp(dim=1).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    for parameter_name, parameter in model.named_parameters():
        if parameter.requires_grad:
            assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), parameter_name
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x.detach()), model(x.detach()), rtol=0, atol=0)
