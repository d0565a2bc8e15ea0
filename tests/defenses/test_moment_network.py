"""The moment-propagating network (Jin, Dundar, Culurciello 2015) against Monte Carlo and the standard network."""

from __future__ import annotations

import copy
import importlib

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from advlab.defenses.moments import Moments
from advlab.defenses.pni import inject_pni, set_pni_enabled
from advlab.defenses.stochastic import (
    _MODULE_RULES,
    MomentNetwork,
    MomentPropagationTransform,
    ProbabilityEnsemble,
    register_moment_rule,
)
from advlab.errors import AdvlabError, InputError
from advlab.models.layers import Normalize


def monte_carlo(model: nn.Module, x: torch.Tensor, variance: float, samples: int, seed: int = 0):
    """Mean and variance of model(x + N(0, variance)) per logit over ``samples`` draws (x: one image)."""
    generator = torch.Generator().manual_seed(seed)
    outs = []
    with torch.no_grad():
        for chunk in torch.arange(samples).split(5000):
            noise = torch.randn((len(chunk),) + tuple(x.shape[1:]), generator=generator) * variance**0.5
            outs.append(model(x + noise))
    out = torch.cat(outs)
    return out.mean(0, keepdim=True), out.var(0, keepdim=True)


def randomize_batchnorm(model: nn.Module, seed: int = 0) -> nn.Module:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                size = module.num_features
                module.weight.copy_(torch.rand(size, generator=generator) + 0.5)
                module.bias.copy_(torch.randn(size, generator=generator) * 0.2)
                module.running_mean.copy_(torch.randn(size, generator=generator) * 0.2)
                module.running_var.copy_(torch.rand(size, generator=generator) + 0.5)
    return model.eval()


def small_cnn() -> nn.Module:
    torch.manual_seed(0)
    return randomize_batchnorm(nn.Sequential(
        Normalize((0.5,), (0.25,)),
        nn.Conv2d(1, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Dropout(0.5),
        nn.Flatten(), nn.Linear(8 * 2 * 2, 16), nn.ReLU(), nn.Linear(16, 5),
    ))


def relative_error(estimate: torch.Tensor, reference: torch.Tensor) -> float:
    return float((estimate - reference).detach().norm() / reference.norm())


def test_one_conv_relu_layer_is_exact_per_unit() -> None:
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Flatten()).eval()
    x = torch.rand(1, 1, 5, 5)
    mean, var = MomentNetwork(model, 0.04).forward_moments(x)
    mc_mean, mc_var = monte_carlo(model, x, 0.04, 40_000)
    torch.testing.assert_close(mean, mc_mean, atol=0.01, rtol=0.0)
    torch.testing.assert_close(var, mc_var, atol=0.003, rtol=0.05)


def test_small_cnn_matches_monte_carlo() -> None:
    model = small_cnn()
    x = torch.rand(1, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    network = MomentNetwork(model, 0.01)
    mean, var = network.forward_moments(x)
    mc_mean, mc_var = monte_carlo(model, x, 0.01, 30_000)
    # Several layers: the paper's independence approximation; means stay close, variances within a factor.
    assert relative_error(mean, mc_mean) < 0.05
    assert 0.3 < float(var.detach().sum() / mc_var.sum()) < 2.0
    assert var.shape == mean.shape == (1, 5)


class ShortcutPad(nn.Module):
    """Option-A shortcut (subsample + zero-pad channels), written with slicing and F.pad as in CIFAR ResNets."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, 2, 2))


class Block(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = ShortcutPad() if stride == 2 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class TinyResNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.blocks = nn.Sequential(Block(4, 4, 1), Block(4, 8, 2))
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(torch.relu(self.stem(x)))
        return self.head(x.mean(dim=(2, 3)))


def test_residual_network_matches_monte_carlo() -> None:
    torch.manual_seed(3)
    model = randomize_batchnorm(TinyResNet(), seed=3)
    x = torch.rand(1, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    mean, var = MomentNetwork(model, 0.01).forward_moments(x)
    mc_mean, mc_var = monte_carlo(model, x, 0.01, 20_000)
    assert relative_error(mean, mc_mean) < 0.05
    # Residual sums ignore the covariance of the two branches (and conv outputs share inputs): a factor, not %.
    assert 0.3 < float(var.detach().sum() / mc_var.sum()) < 3.0


def test_one_residual_block_adds_means_and_variances() -> None:
    torch.manual_seed(4)
    block = randomize_batchnorm(nn.Sequential(Block(4, 8, 2)), seed=4)
    network = MomentNetwork(block, 0.0)
    mean, var = torch.randn(1, 4, 6, 6), torch.rand(1, 4, 6, 6)
    out = network.propagate(block, Moments(mean, var))
    inner = block[0]
    branch = network.propagate(nn.Sequential(inner.conv1, inner.bn1, nn.ReLU(), inner.conv2, inner.bn2),
                               Moments(mean, var))
    shortcut = Moments(*(F.pad(t[:, :, ::2, ::2], (0, 0, 0, 0, 2, 2)) for t in (mean, var)))
    expected = network.propagate(nn.ReLU(), Moments(branch.mean + shortcut.mean, branch.var + shortcut.var))
    torch.testing.assert_close(out.mean, expected.mean)
    torch.testing.assert_close(out.var, expected.var)


class FunctionalGlue(nn.Module):
    """Functional calls seen in CIFAR code: F.max_pool2d, F.avg_pool2d(out, out.size()[3]), scaling, cat, view."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.bn, self.fc = nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.max_pool2d(F.relu(self.bn(self.conv(x))), 2)
        out = F.avg_pool2d(out, out.size()[3]) * 2.0 - 0.5
        out = torch.cat([out[:, :2], out[:, 2:]], dim=1)
        return self.fc(F.dropout(out.view(out.size(0), -1), 0.5, self.training))


@pytest.mark.parametrize("build", [small_cnn, lambda: randomize_batchnorm(TinyResNet()),
                                   lambda: randomize_batchnorm(FunctionalGlue())])
def test_zero_variance_gives_the_standard_logits(build) -> None:
    model = build()
    x = torch.rand(4, 1, 8, 8)
    with torch.no_grad():
        assert torch.allclose(MomentNetwork(model, 0.0)(x), model(x), atol=1e-5, rtol=1e-5)


def test_functional_glue_matches_monte_carlo() -> None:
    torch.manual_seed(6)
    model = randomize_batchnorm(FunctionalGlue(), seed=6)
    x = torch.rand(1, 1, 8, 8)
    with torch.no_grad():
        mean, var = MomentNetwork(model, 0.02).forward_moments(x)
    mc_mean, mc_var = monte_carlo(model, x, 0.02, 20_000)
    assert relative_error(mean, mc_mean) < 0.05
    assert 0.3 < float(var.sum() / mc_var.sum()) < 3.0


def test_gradients_reach_the_input_and_match_finite_differences() -> None:
    model = small_cnn().double()
    x = torch.rand(1, 1, 8, 8, dtype=torch.float64, requires_grad=True)
    network = MomentNetwork(model, 0.01)
    loss = F.cross_entropy(network(x), torch.tensor([1]))
    (grad,) = torch.autograd.grad(loss, x)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    direction = torch.randn_like(x)
    step = 1e-5
    with torch.no_grad():
        plus = F.cross_entropy(network(x + step * direction), torch.tensor([1]))
        minus = F.cross_entropy(network(x - step * direction), torch.tensor([1]))
    torch.testing.assert_close((plus - minus) / (2 * step), (grad * direction).sum(), rtol=1e-4, atol=1e-7)


def test_batchnorm_uses_running_statistics_in_train_mode() -> None:
    model = small_cnn()
    network = MomentNetwork(model, 0.01)
    x = torch.rand(3, 1, 8, 8)
    with torch.no_grad():
        eval_out = network(x)
        network.train()
        train_out = network(x)
    torch.testing.assert_close(eval_out, train_out)


def test_sort_option_changes_max_pool_only_slightly() -> None:
    model = small_cnn()
    x = torch.rand(2, 1, 8, 8)
    with torch.no_grad():
        sorted_logits = MomentNetwork(model, 0.05, sort_maxpool=True)(x)
        raster_logits = MomentNetwork(model, 0.05, sort_maxpool=False)(x)
    assert not torch.equal(sorted_logits, raster_logits)
    assert relative_error(raster_logits, sorted_logits) < 0.05


def test_unsupported_module_is_named() -> None:
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Tanh(), nn.Flatten(), nn.Linear(2 * 6 * 6, 3))
    with pytest.raises(InputError, match="Tanh"):
        MomentNetwork(model, 0.01)


class SigmoidBlock(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(x) + 1.0


def test_unsupported_function_in_a_traced_block_is_named() -> None:
    network = MomentNetwork(nn.Sequential(nn.Flatten(), SigmoidBlock()), 0.01)
    with pytest.raises(AdvlabError, match="sigmoid"):
        network(torch.rand(2, 1, 4, 4))


class Square(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * x


def test_registered_rule_is_used_for_a_custom_module() -> None:
    model = nn.Sequential(nn.Flatten(), Square())
    with pytest.raises(AdvlabError):  # x * x multiplies two noisy tensors: no generic rule
        MomentNetwork(model, 0.01)(torch.rand(2, 1, 2, 2))

    def square_rule(module: Square, moments: Moments, ctx) -> Moments:
        # X ~ N(μ, σ²): E[X²] = μ² + σ², Var[X²] = 4μ²σ² + 2σ⁴.
        mean, var = moments
        return Moments(mean**2 + var, 4 * mean**2 * var + 2 * var**2)

    register_moment_rule(Square)(square_rule)
    try:
        x = torch.rand(2, 1, 2, 2)
        mean, var = MomentNetwork(model, 0.01).forward_moments(x)
        torch.testing.assert_close(mean, x.flatten(1) ** 2 + 0.01)
        torch.testing.assert_close(var, 4 * x.flatten(1) ** 2 * 0.01 + 2 * 0.01**2)
    finally:
        _MODULE_RULES.pop(Square)


def test_bad_variance_and_noisy_pni_layers_are_refused() -> None:
    model = small_cnn()
    with pytest.raises(InputError, match="input_variance"):
        MomentNetwork(model, -0.1)
    noisy = inject_pni(model, locations="W")
    with pytest.raises(InputError, match="PNI"):
        MomentNetwork(noisy, 0.01)(torch.rand(1, 1, 8, 8))
    set_pni_enabled(noisy, False)
    x = torch.rand(2, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(MomentNetwork(noisy, 0.01)(x), MomentNetwork(model, 0.01)(x))


def test_deepcopy_and_device_independent_state() -> None:
    network = MomentNetwork(randomize_batchnorm(TinyResNet()), 0.01)
    clone = copy.deepcopy(network)
    x = torch.rand(2, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(clone(x), network(x))
        next(clone.parameters()).add_(1.0)  # the copy owns its weights
        assert not torch.allclose(clone(x), network(x))
    assert set(network.state_dict()) == {f"model.{k}" for k in network.model.state_dict()}


def test_probability_ensemble_returns_log_of_mean_probabilities() -> None:
    model = small_cnn()
    network = MomentNetwork(model, 0.02)
    ensemble = ProbabilityEnsemble(network)
    x = torch.rand(3, 1, 8, 8, requires_grad=True)
    out = ensemble(x)
    expected = torch.log((F.softmax(model(x), -1) + F.softmax(network(x), -1)) / 2)
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(out.logsumexp(-1), torch.zeros(3), atol=1e-6, rtol=0)
    (grad,) = torch.autograd.grad(out[:, 0].sum(), x)
    assert grad.abs().sum() > 0


def test_transform_builds_the_network_or_the_ensemble() -> None:
    model = small_cnn()
    assert isinstance(MomentPropagationTransform(input_variance=0.01).apply(model), MomentNetwork)
    assert isinstance(MomentPropagationTransform(input_variance=0.01, ensemble=True).apply(model),
                      ProbabilityEnsemble)
    card = MomentPropagationTransform(input_variance=0.02).describe()
    assert card["name"] == "stochastic_feedforward" and card["input_variance"] == 0.02
    with pytest.raises(InputError):
        MomentPropagationTransform(input_variance=-1.0)


# ------------------------------------------------------------------------------------------- registered models

def registered_models() -> list[str]:
    try:
        models = importlib.import_module("advlab.models")
        for name in ("cnn", "mlp", "nin", "resnet_cifar"):
            importlib.import_module(f"advlab.models.{name}")
    except ImportError:
        return []
    # resnet18 is covered by the same rules as resnet20 and costs ~30x more.
    return [name for name in models.list_models() if name != "resnet18"]


@pytest.mark.parametrize("name", registered_models())
def test_registered_models_convert_and_agree_without_noise(name: str) -> None:
    from advlab.models import MODELS, create_model

    torch.manual_seed(0)
    model = create_model(name).eval()
    shape = MODELS.entry(name).info["input_shape"]
    x = torch.rand((2,) + tuple(shape))
    with torch.no_grad():
        logits = model(x)
        torch.testing.assert_close(MomentNetwork(model, 0.0)(x), logits, atol=1e-4, rtol=1e-4)
        noisy_mean, noisy_var = MomentNetwork(model, 0.01).forward_moments(x)
    assert noisy_mean.shape == logits.shape and (noisy_var > 0).all()


def test_resnet20_block_matches_monte_carlo() -> None:
    resnet = importlib.import_module("advlab.models.resnet_cifar")
    torch.manual_seed(5)
    block = randomize_batchnorm(resnet.BasicBlock(4, 8, stride=2, shortcut="A"), seed=5)
    x = torch.rand(1, 4, 6, 6)
    mean, var = MomentNetwork(block, 0.01).forward_moments(x)
    mc_mean, mc_var = monte_carlo(block, x, 0.01, 20_000)
    assert relative_error(mean, mc_mean) < 0.05
    assert 0.3 < float(var.detach().sum() / mc_var.sum()) < 3.0


class DataDependentBranch(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x if x.sum() > 0 else -x


def test_untraceable_block_is_named() -> None:
    with pytest.raises(InputError, match="DataDependentBranch"):
        MomentNetwork(nn.Sequential(nn.Flatten(), DataDependentBranch()), 0.01)
