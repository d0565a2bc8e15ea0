"""NIN with batch normalization (``nin_bn``) and its moment network: BN placement and exact propagation (Eq. 5)."""

from __future__ import annotations

import torch
from torch import nn

from advlab.defenses import moments as mom
from advlab.defenses.moments import Moments
from advlab.defenses.stochastic import MomentNetwork
from advlab.models import count_parameters, create_model


def trained_looking_nin_bn(seed: int = 0) -> nn.Module:
    """nin_bn with non-trivial BN statistics and affine parameters (a fresh BN is the identity at test time)."""
    torch.manual_seed(seed)
    model = create_model("nin_bn")
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                size = module.num_features
                module.weight.copy_(torch.rand(size, generator=generator) + 0.5)
                module.bias.copy_(torch.randn(size, generator=generator) * 0.3)
                module.running_mean.copy_(torch.randn(size, generator=generator) * 0.3)
                module.running_var.copy_(torch.rand(size, generator=generator) * 2 + 0.1)
    return model.eval()


def test_nin_bn_puts_batchnorm_between_every_conv_and_relu_but_the_last() -> None:
    children = list(create_model("nin_bn").features.named_children())
    names = [name for name, _ in children]
    convs = [(i, name, m) for i, (name, m) in enumerate(children) if isinstance(m, nn.Conv2d)]
    assert len(convs) == 9
    for index, name, conv in convs[:-1]:
        assert isinstance(children[index + 1][1], nn.BatchNorm2d), name
        assert isinstance(children[index + 2][1], nn.ReLU), name
        assert conv.bias is None  # BN's shift replaces the bias
    last_index, last_name, last = convs[-1]
    assert last_name == "cccp6" and last.bias is not None and names[last_index + 1] == "pool3"
    plain = create_model("nin")
    assert not any(isinstance(m, nn.BatchNorm2d) for m in plain.modules())
    assert count_parameters(create_model("nin_bn")) == 968_394
    dropouts = [m.p for m in create_model("nin_bn").modules() if isinstance(m, nn.Dropout)]
    assert dropouts == [0.5, 0.5]


def layer_by_layer(model: nn.Module, x: torch.Tensor, variance: float) -> Moments:
    """Reference propagation without the conv + BN fold: every BN through its own affine rule (Eq. 5)."""
    moments = Moments(x, torch.full_like(x, variance))
    std = model.normalize.std.reshape(1, -1, 1, 1)
    moments = Moments((moments.mean - model.normalize.mean.reshape(1, -1, 1, 1)) / std, moments.var / std**2)
    for layer in model.features:
        if isinstance(layer, nn.Conv2d):
            moments = mom.conv2d_moments(moments, layer)
        elif isinstance(layer, nn.BatchNorm2d):
            moments = mom.batchnorm_moments(moments, layer)
        elif isinstance(layer, nn.ReLU):
            moments = mom.relu_moments(*moments)
        elif isinstance(layer, nn.MaxPool2d):
            moments = mom.max_pool2d_moments(moments, layer.kernel_size, layer.stride, layer.padding,
                                             layer.dilation, layer.ceil_mode)
        elif isinstance(layer, nn.AvgPool2d):
            moments = mom.avg_pool2d_moments(moments, layer.kernel_size, layer.stride, layer.padding,
                                             layer.ceil_mode, layer.count_include_pad)
        elif isinstance(layer, nn.AdaptiveAvgPool2d):
            moments = mom.adaptive_avg_pool2d_moments(moments, layer.output_size)
        elif isinstance(layer, nn.Flatten):
            moments = Moments(moments.mean.flatten(1), moments.var.flatten(1))
    return moments


def test_moment_network_through_batchnorm_is_exact() -> None:
    model = trained_looking_nin_bn()
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        # Without noise the moment network is the network (BN at its running statistics included).
        torch.testing.assert_close(MomentNetwork(model, 0.0)(x), model(x), atol=1e-4, rtol=1e-4)
        folded = MomentNetwork(model, 0.003).forward_moments(x)
        reference = layer_by_layer(model, x, 0.003)
    # The conv + BN fold is the same affine map as BN's own rule applied after the conv.
    torch.testing.assert_close(folded.mean, reference.mean, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(folded.var, reference.var, atol=1e-7, rtol=1e-3)
    assert (folded.var > 0).all()


def test_moment_network_of_nin_bn_follows_monte_carlo_means() -> None:
    model = trained_looking_nin_bn(seed=2)
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    variance = 0.002
    generator = torch.Generator().manual_seed(4)
    with torch.no_grad():
        samples = model(x + torch.randn(128, 3, 32, 32, generator=generator) * variance**0.5)
        mean = MomentNetwork(model, variance)(x)
    # 128 draws: the sample mean's error is about std/√128; the moment means must sit within a few of those.
    tolerance = 4 * samples.std(0) / 128**0.5 + 1e-4
    assert ((mean[0] - samples.mean(0)).abs() <= tolerance).all()
