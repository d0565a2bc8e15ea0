"""Batch norm folded into the convolution before it, for the attack's own passes (advlab.attacks.folding)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from advlab.attacks import PGD
from advlab.attacks.folding import fold_batch_norm
from advlab.defenses.noise import InputNoise
from advlab.defenses.pni import inject_pni, pni_disabled
from advlab.errors import InputError
from advlab.models.registry import create_model


def trained_looking(model: nn.Module, seed: int = 0) -> nn.Module:
    """``model`` in eval mode with batch-norm statistics and affine parameters away from their initial 0/1."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            channels = module.num_features
            module.running_mean.copy_(0.2 * torch.randn(channels, generator=generator))
            module.running_var.copy_(0.5 + 1.5 * torch.rand(channels, generator=generator))
            module.weight.data.copy_(0.5 + torch.rand(channels, generator=generator))
            module.bias.data.copy_(0.1 * torch.randn(channels, generator=generator))
    return model.eval()


def batch_norms(model: nn.Module) -> int:
    return sum(type(module) is nn.BatchNorm2d for module in model.modules())


def images(n: int = 6, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 32, 32, generator=generator), torch.randint(0, 10, (n,), generator=generator)


def test_resnet_folds_to_the_same_function_and_input_gradient() -> None:
    torch.manual_seed(5)  # initial weights where one ReLU sits at the rounding edge (measured: 0.04 % of signs)
    model = trained_looking(create_model("resnet20"))
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    x, y = images()
    folded = fold_batch_norm(model, x)
    assert folded is not model and batch_norms(folded) == 0 and batch_norms(model) == 19

    with torch.no_grad():
        expected, got = model(x), folded(x)
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-4 * float(expected.abs().max()))
    gradients = []
    for network in (model, folded):
        xr = x.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(nn.functional.cross_entropy(network(xr), y), xr)
        gradients.append(grad)
    # A ReLU input within rounding of 0 may switch its unit's gradient path, so entries can differ at a few places;
    # the direction and the signs an L∞ attack steps along agree.
    cosine = nn.functional.cosine_similarity(gradients[0].flatten(), gradients[1].flatten(), dim=0)
    assert float(cosine) > 0.9999
    assert (gradients[0].sign() == gradients[1].sign()).float().mean() > 0.999
    # The user's model is untouched.
    assert all(torch.equal(before[name], tensor) for name, tensor in model.state_dict().items())


def test_the_copy_is_cached_and_rebuilt_when_a_weight_changes() -> None:
    model = trained_looking(create_model("resnet20"))
    x, _ = images()
    first = fold_batch_norm(model, x)
    assert fold_batch_norm(model, x) is first
    with torch.no_grad():
        model.layer1[0].bn1.weight.mul_(2.0)  # what an optimizer step does: an in-place update
    second = fold_batch_norm(model, x)
    assert second is not first
    with torch.no_grad():
        expected, got = model(x), second(x)
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-4 * float(expected.abs().max()))

    model.layer1[0].conv1.weight.data.mul_(0.5)  # through .data: no version counter moves
    third = fold_batch_norm(model, x)
    assert third is not second
    with torch.no_grad():
        expected, got = model(x), third(x)
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-4 * float(expected.abs().max()))


def test_pgd_finds_the_same_adversarial_images_folded_or_not() -> None:
    torch.manual_seed(3)  # initial weights where the two runs do part ways somewhere (measured: 2.5 % of entries)
    model = trained_looking(create_model("resnet20"), seed=1)
    x, y = images(8, seed=1)
    folded = PGD(eps=8 / 255, steps=5, seed=0, early_stop=False)(model, x, y)
    plain = PGD(eps=8 / 255, steps=5, seed=0, early_stop=False, fold_batch_norm=False)(model, x, y)
    # Sign steps agree except where a gradient entry sits at rounding level, and a flipped step moves that pixel's
    # later iterates too: a few percent of the entries may differ, the predictions do not.
    assert (folded.adv - plain.adv).abs().gt(1e-6).float().mean() < 0.05
    assert torch.equal(folded.adv_pred, plain.adv_pred)
    assert float(folded.norms["linf"].max()) <= 8 / 255 + 1e-6


class SharedConvOutput(nn.Module):
    """A conv whose output feeds its BN and a second branch: folding would change the second branch."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.bn, self.head = nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.Linear(4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.conv(x)
        return self.head((self.bn(z) + z).mean(dim=(2, 3)))


class DataDependent(nn.Module):
    """Control flow on values: fx cannot trace it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.bn, self.head = nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.Linear(4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.bn(self.conv(x))
        if z.mean() > 0:
            z = z * 2
        return self.head(z.mean(dim=(2, 3)))


def test_models_that_cannot_be_folded_safely_are_attacked_as_they_are() -> None:
    x, y = images()
    shared = trained_looking(SharedConvOutput())
    assert fold_batch_norm(shared, x) is shared
    untraceable = trained_looking(DataDependent())
    assert fold_batch_norm(untraceable, x) is untraceable
    assert PGD(eps=8 / 255, steps=2, seed=0)(untraceable, x, y).adv.shape == x.shape
    private = trained_looking(PrivateNoise())
    assert fold_batch_norm(private, x) is private  # its noise does not follow the seed: the copy cannot prove itself
    training = create_model("resnet20").train()  # batch statistics, not an affine map
    assert fold_batch_norm(training, x) is training


class PrivateNoise(nn.Module):
    """Noise from a generator of its own: two passes from the same global seed differ."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.bn, self.head = nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.Linear(4, 10)
        self.generator = torch.Generator().manual_seed(0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.bn(self.conv(x))
        return self.head(z.mean(dim=(2, 3))) + torch.randn(x.shape[0], 10, generator=self.generator)


def same_seed_logits(network: nn.Module, x: torch.Tensor, seed: int = 5) -> torch.Tensor:
    with torch.random.fork_rng(), torch.no_grad():
        torch.manual_seed(seed)
        return network(x)


def test_randomized_models_fold_when_they_draw_the_same_noise() -> None:
    x, y = images()
    noisy = InputNoise(trained_looking(create_model("resnet20")), kind="gaussian", scale=0.1).eval()
    folded = fold_batch_norm(noisy, x)
    assert folded is not noisy and batch_norms(folded) == 0
    expected = same_seed_logits(noisy, x)
    assert torch.allclose(same_seed_logits(folded, x), expected, atol=1e-4 * float(expected.abs().max()))

    pni = inject_pni(trained_looking(create_model("resnet20")), locations="W").eval()
    folded = fold_batch_norm(pni, x)  # PNI-W's noisy convolutions fold through their folding protocol
    assert folded is not pni and batch_norms(folded) == 0
    expected = same_seed_logits(pni, x)
    assert torch.allclose(same_seed_logits(folded, x), expected, atol=1e-4 * float(expected.abs().max()))
    with pni_disabled(pni):  # a switch moves no version counter: the copy is checked and rebuilt
        quiet = fold_batch_norm(pni, x)
        assert quiet is not folded
        with torch.no_grad():
            assert torch.allclose(quiet(x), pni(x), atol=1e-4 * float(pni(x).abs().max()))
    # Noise on activations passes through BN's affine map too: not folded, attacked as it is.
    activations = inject_pni(trained_looking(create_model("resnet20")), locations="W+A-a").eval()
    assert fold_batch_norm(activations, x) is activations


def test_images_a_folded_model_cannot_take_are_still_one_clear_error() -> None:
    model = trained_looking(create_model("resnet20"))
    x, y = torch.rand(2, 2, 32, 32), torch.tensor([1, 2])  # two channels for a three-channel network
    assert fold_batch_norm(model, x) is model
    for attack in (PGD(eps=0.1, steps=2), PGD(eps=0.1, steps=2).perturb):
        with pytest.raises(InputError, match="cannot process images of shape"):
            attack(model, x, y)
