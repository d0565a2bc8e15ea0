"""Parametric Noise Injection (Rakin, He, Fan 2019): noise switch, α training, noise statistics, state dicts."""

from __future__ import annotations

import fnmatch
import importlib

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from advlab.defenses.pni import (
    PNIConv2d,
    PNILinear,
    PNITransform,
    inject_pni,
    is_stochastic,
    parse_locations,
    pni_alpha_parameters,
    pni_alphas,
    pni_disabled,
    pni_layers,
    set_pni_enabled,
)
from advlab.errors import InputError
from advlab.models.layers import Normalize


def small_net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        Normalize((0.5,), (0.25,)),
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3),
    )


@pytest.mark.parametrize("locations", ["W", "A-a", "A-b", "I", "W+A-a"])
def test_noise_is_on_in_train_and_eval_and_off_with_the_switch(locations: str) -> None:
    model = inject_pni(small_net(), locations=locations)
    x = torch.rand(4, 1, 8, 8)
    for mode in (model.train, model.eval):
        mode()
        with torch.no_grad():
            assert not torch.allclose(model(x), model(x))
    model.eval()
    with pni_disabled(model), torch.no_grad():
        assert not is_stochastic(model)
        torch.testing.assert_close(model(x), model(x), rtol=0, atol=0)
        silent = model(x)
    assert is_stochastic(model) and all(layer.pni_enabled for _, layer in pni_layers(model))
    set_pni_enabled(model, False)
    with torch.no_grad():
        torch.testing.assert_close(model(x), silent, rtol=0, atol=0)
    assert not is_stochastic(model)
    wrapper = nn.Sequential(model)  # the declaration is per layer, so wrappers see it too
    assert not is_stochastic(wrapper)
    set_pni_enabled(wrapper, True)
    assert is_stochastic(wrapper) and is_stochastic(model)


def test_disabled_model_equals_the_original() -> None:
    original = small_net().eval()
    model = inject_pni(original, locations="W+A-a+A-b")
    set_pni_enabled(model, False)
    x = torch.rand(3, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(model(x), original(x))


def test_context_manager_restores_the_switch_on_error() -> None:
    model = inject_pni(small_net())
    with pytest.raises(RuntimeError), pni_disabled(model):
        raise RuntimeError("boom")
    assert all(layer.pni_enabled for _, layer in pni_layers(model)) and is_stochastic(model)


def test_inject_copies_by_default_and_converts_in_place_on_request() -> None:
    original = small_net()
    copied = inject_pni(original)
    assert not pni_layers(original) and len(pni_layers(copied)) == 3
    same = inject_pni(original, inplace=True)
    assert same is original and isinstance(original[1], PNIConv2d) and isinstance(original[9], PNILinear)


def test_alpha_gets_gradients_and_moves_under_an_optimizer_step() -> None:
    model = inject_pni(small_net(), locations="W+A-a")
    alphas = pni_alpha_parameters(model)
    assert len(alphas) == 6 and all(float(a.detach()) == pytest.approx(0.25) for a in alphas)
    before = [a.detach().clone() for a in alphas]
    optimizer = torch.optim.SGD(alphas, lr=0.5)
    loss = F.cross_entropy(model(torch.rand(8, 1, 8, 8)), torch.randint(0, 3, (8,)))
    loss.backward()
    assert all(a.grad is not None and a.grad.abs().sum() > 0 for a in alphas)
    optimizer.step()
    assert all(not torch.equal(a, b) for a, b in zip(alphas, before))


def test_weight_noise_std_is_alpha_times_weight_std() -> None:
    torch.manual_seed(1)
    layer = inject_pni(nn.Sequential(nn.Conv2d(8, 16, 3)), locations="W")[0]
    with torch.no_grad():
        layer.pni_alpha_weight.fill_(0.4)
        noise = torch.stack([layer.noisy_weight() - layer.weight for _ in range(400)])
    assert noise.mean().abs() < 0.01 * layer.weight.std()
    assert noise.std().item() == pytest.approx(0.4 * layer.weight.std(unbiased=False).item(), rel=0.02)


def test_channel_wise_weight_noise_uses_each_channels_std_and_alpha() -> None:
    torch.manual_seed(2)
    layer = inject_pni(nn.Sequential(nn.Conv2d(4, 3, 3)), locations="W", granularity="channel")[0]
    assert layer.pni_alpha_weight.shape == (3, 1, 1, 1)
    with torch.no_grad():
        layer.weight[1] *= 10.0  # channel 1 has a 10x larger std: its noise must be 10x larger too
        layer.pni_alpha_weight.copy_(torch.tensor([0.1, 0.2, 0.3]).view(3, 1, 1, 1))
        noise = torch.stack([layer.noisy_weight() - layer.weight for _ in range(500)])
    channel_std = layer.weight.detach().flatten(1).std(1, unbiased=False)
    measured = noise.transpose(0, 1).flatten(1).std(1)
    torch.testing.assert_close(measured, torch.tensor([0.1, 0.2, 0.3]) * channel_std, rtol=0.03, atol=0)


def test_activation_noise_std_is_alpha_times_per_sample_std() -> None:
    torch.manual_seed(3)
    plain = nn.Linear(32, 64)
    model = inject_pni(nn.Sequential(plain), locations="A-a")
    x = torch.randn(4, 32) * torch.tensor([1.0, 2.0, 5.0, 10.0]).view(4, 1)
    with torch.no_grad():
        clean = F.linear(x, plain.weight, plain.bias)
        noise = torch.stack([model(x) - clean for _ in range(300)])
    expected = 0.25 * clean.std(dim=1, unbiased=False)  # one σ per sample, as documented
    torch.testing.assert_close(noise.transpose(0, 1).flatten(1).std(1), expected, rtol=0.03, atol=0)


@pytest.mark.parametrize(
    "granularity,expected",
    [("layer", {"0.pni_alpha_weight": (1,), "0.pni_alpha_output": (1,), "0.pni_alpha_input": (1,)}),
     ("channel", {"0.pni_alpha_weight": (5, 1, 1, 1), "0.pni_alpha_output": (1, 5, 1, 1),
                  "0.pni_alpha_input": (1, 2, 1, 1), "3.pni_alpha_weight": (4, 1), "3.pni_alpha_output": (1, 4),
                  "3.pni_alpha_input": (1, 5 * 3 * 3)}),
     ("element", {"0.pni_alpha_weight": (5, 2, 3, 3), "0.pni_alpha_output": (1, 5, 3, 3),
                  "0.pni_alpha_input": (1, 2, 5, 5), "3.pni_alpha_weight": (4, 45), "3.pni_alpha_output": (1, 4),
                  "3.pni_alpha_input": (1, 45)})],
)
def test_alpha_shapes_per_granularity(granularity: str, expected: dict[str, tuple[int, ...]]) -> None:
    net = nn.Sequential(nn.Conv2d(2, 5, 3), nn.ReLU(), nn.Flatten(), nn.Linear(45, 4))
    model = inject_pni(net, locations="W+A-a+A-b", granularity=granularity, input_shape=(2, 5, 5))
    shapes = {name: tuple(p.shape) for name, p in model.named_parameters() if "pni_alpha" in name}
    assert {k: v for k, v in shapes.items() if k in expected} == expected
    assert len(shapes) == 6
    out = model(torch.rand(3, 2, 5, 5))
    out.sum().backward()
    assert all(p.grad is not None for p in pni_alpha_parameters(model))


def test_element_wise_activation_noise_needs_the_input_shape() -> None:
    with pytest.raises(InputError, match="input_shape"):
        inject_pni(small_net(), locations="A-a", granularity="element")


def test_input_noise_goes_on_the_first_layer_only() -> None:
    model = inject_pni(small_net(), locations="I")
    assert list(pni_alphas(model)) == ["1.pni_alpha_input"]
    assert not isinstance(model[5], PNIConv2d)
    chosen = inject_pni(small_net(), locations="I", input_layer="5")
    assert list(pni_alphas(chosen)) == ["5.pni_alpha_input"]
    with pytest.raises(InputError, match="input_layer"):
        inject_pni(small_net(), locations="I", input_layer="nope")


def test_locations_and_granularity_are_validated() -> None:
    assert parse_locations("W+A-a") == {"W", "A-a"} == parse_locations({"w", "a-A"})
    with pytest.raises(InputError, match="locations"):
        inject_pni(small_net(), locations="X")
    with pytest.raises(InputError, match="granularity"):
        inject_pni(small_net(), granularity="pixel")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="Conv2d"):
        inject_pni(nn.Sequential(nn.ReLU()))


def test_state_dict_keys_and_round_trip() -> None:
    base = small_net()
    model = inject_pni(base, locations="W+A-b", granularity="channel")
    keys = set(model.state_dict())
    assert set(base.state_dict()) < keys  # the original keys are unchanged
    assert {k for k in keys - set(base.state_dict())} == {
        f"{layer}.pni_alpha_{where}" for layer in ("1", "5", "9") for where in ("weight", "input")}
    with torch.no_grad():
        for p in pni_alpha_parameters(model):
            p.uniform_(0.0, 1.0)
    fresh = inject_pni(small_net(), locations="W+A-b", granularity="channel")
    fresh.load_state_dict(model.state_dict())
    assert pni_alphas(fresh) == pni_alphas(model)
    loaded = inject_pni(small_net(), locations="W+A-b", granularity="channel")
    missing = loaded.load_state_dict(base.state_dict(), strict=False).missing_keys
    assert all("pni_alpha" in key for key in missing) and len(missing) == 6


def test_pni_alphas_reports_the_mean_per_noise_source() -> None:
    model = inject_pni(small_net(), locations="W", granularity="channel")
    with torch.no_grad():
        model[1].pni_alpha_weight.copy_(torch.tensor([0.0, 0.2, 0.4, 0.6]).view(4, 1, 1, 1))
    alphas = pni_alphas(model)
    assert alphas["1.pni_alpha_weight"] == pytest.approx(0.3)
    assert alphas["9.pni_alpha_weight"] == pytest.approx(0.25) and len(alphas) == 3


def test_model_still_trains_with_noise() -> None:
    torch.manual_seed(4)
    y = torch.randint(0, 2, (64,))
    x = (torch.rand(64, 1, 8, 8) + y.view(-1, 1, 1, 1).float()) / 2  # class 1 images are brighter
    model = inject_pni(small_net(), locations="W")
    decay = [p for n, p in model.named_parameters() if "pni_alpha" not in n]
    optimizer = torch.optim.Adam([{"params": decay, "weight_decay": 1e-4},
                                  {"params": pni_alpha_parameters(model), "weight_decay": 0.0}], lr=0.02)
    with torch.no_grad():
        initial = F.cross_entropy(model(x), y).item()
    for _ in range(15):
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        noisy_accuracy = (model(x).argmax(1) == y).float().mean()
        with pni_disabled(model):
            final = F.cross_entropy(model(x), y).item()
    assert final < 0.5 * initial and noisy_accuracy > 0.9


def test_transform_describes_itself() -> None:
    transform = PNITransform(locations="A-a+W", granularity="channel")
    assert transform.stochastic
    assert transform.describe() == {"name": "pni", "locations": "A-a+W", "granularity": "channel",
                                    "alpha_init": 0.25, "activation_std": "sample"}
    model = transform.apply(small_net())
    assert is_stochastic(model) and len(pni_alphas(model)) == 6
    excluded = {n for n, _ in model.named_parameters()
                if any(fnmatch.fnmatchcase(n, pattern) for pattern in transform.no_weight_decay)}
    assert excluded == set(pni_alphas(model))
    with pytest.raises(InputError):
        PNITransform(locations="Q")


def test_registered_resnet20_gets_noise_everywhere() -> None:
    try:
        importlib.import_module("advlab.models.resnet_cifar")
        from advlab.models import create_model
    except ImportError:
        pytest.skip("advlab.models.resnet_cifar is not available")
    model = inject_pni(create_model("resnet20"), locations="W+A-a", granularity="element")
    assert len(pni_layers(model)) == 20  # 19 convs + the linear layer
    assert model.layer1[0].conv1.pni_alpha_output.shape == (1, 16, 32, 32)  # shape from the model registry
    x = torch.rand(2, 3, 32, 32)
    F.cross_entropy(model(x), torch.tensor([0, 1])).backward()
    assert all(p.grad is not None for p in pni_alpha_parameters(model))


def test_activation_noise_with_the_papers_tensor_std_is_alpha_times_the_batch_std() -> None:
    """Eq. 6 (Rakin et al. 2019): σ is the std of the whole tensor v, so every sample gets the same noise level."""
    torch.manual_seed(3)
    plain = nn.Linear(32, 64)
    model = inject_pni(nn.Sequential(plain), locations="A-a", activation_std="tensor")
    x = torch.randn(4, 32) * torch.tensor([1.0, 2.0, 5.0, 10.0]).view(4, 1)
    with torch.no_grad():
        clean = F.linear(x, plain.weight, plain.bias)
        noise = torch.stack([model(x) - clean for _ in range(300)])
    expected = torch.full((4,), 0.25 * float(clean.std(unbiased=False)))
    torch.testing.assert_close(noise.transpose(0, 1).flatten(1).std(1), expected, rtol=0.03, atol=0)
    # the per-sample default would have given the four samples four different noise levels
    assert float(clean.std(dim=1).max() / clean.std(dim=1).min()) > 5


def test_tensor_std_makes_a_prediction_depend_on_the_batch_and_the_default_does_not() -> None:
    x = torch.rand(2, 1, 8, 8)
    partner = torch.rand(1, 1, 8, 8) * 50  # a wild batch-mate inflates the batch std
    outputs = {}
    for scope in ("tensor", "sample"):
        model = inject_pni(small_net(), locations="A-a", activation_std=scope, alpha_init=1.0).eval()
        with torch.no_grad():
            torch.manual_seed(0)
            alone = torch.stack([model(x[:1]) for _ in range(200)]).std(0)
            torch.manual_seed(0)
            mixed = torch.stack([model(torch.cat([x[:1], partner]))[:1] for _ in range(200)]).std(0)
        outputs[scope] = float((mixed - alone).abs().max() / alone.abs().max())
    assert outputs["tensor"] > 0.5 and outputs["sample"] < 0.3


def test_activation_std_is_validated_and_described() -> None:
    with pytest.raises(InputError, match="activation_std"):
        inject_pni(small_net(), locations="A-a", activation_std="batch")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="activation_std"):
        PNITransform(locations="A-a", activation_std="batch")  # type: ignore[arg-type]
    transform = PNITransform(locations="A-a", activation_std="tensor")
    assert transform.describe()["activation_std"] == "tensor"
    layers = pni_layers(transform.apply(small_net()))
    assert layers and all(layer.pni_activation_std == "tensor" for _, layer in layers)
