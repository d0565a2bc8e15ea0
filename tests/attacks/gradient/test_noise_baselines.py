"""Random-noise baselines: bounded where they claim a budget, repeatable, and much weaker than FGSM."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from gradient_attack_helpers import assert_within_budget

from advlab.attacks.fgsm import FGSM
from advlab.attacks.noise import GaussianBlur, GaussianNoise, MatchedNoise, RandomSign, gaussian_kernel
from advlab.errors import InputError


def _gray(n: int = 8) -> torch.Tensor:
    """Mid-range images, far from the [0, 1] edges, so clipping does not distort noise statistics."""
    return 0.4 + 0.2 * torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(3))


def test_random_sign_moves_every_pixel_by_exactly_eps(trained_cnn) -> None:
    x = _gray()
    result = RandomSign(eps=0.05, seed=0)(trained_cnn, x)
    delta = result.adv - x
    torch.testing.assert_close(delta.abs(), torch.full_like(delta, 0.05), atol=1e-6, rtol=0)
    assert abs(float((delta > 0).float().mean()) - 0.5) < 0.05
    assert result.queries == 0


def test_gaussian_noise_has_the_requested_std(trained_cnn) -> None:
    x = _gray()
    delta = GaussianNoise(std=0.03, seed=0)(trained_cnn, x).adv - x
    assert abs(float(delta.std()) - 0.03) < 0.002 and abs(float(delta.mean())) < 0.002


@pytest.mark.parametrize("attack", [GaussianNoise(std=0.5, seed=0), RandomSign(eps=0.3, seed=0),
                                    GaussianBlur(sigma=2.0), MatchedNoise(eps=0.3, seed=0)], ids=repr)
def test_noise_stays_in_the_box_and_repeats_with_a_seed(trained_cnn, test_batch, attack) -> None:
    x, y = test_batch
    first = attack(trained_cnn, x, y)
    assert_within_budget(first, x, 0.3 if isinstance(attack, RandomSign) else None, "linf")
    assert torch.equal(first.adv, attack(trained_cnn, x, y).adv)
    if not isinstance(attack, GaussianBlur):
        other = type(attack)(**{**attack.__dict__, "seed": 1})
        assert not torch.equal(first.adv, other(trained_cnn, x, y).adv)
    with pytest.raises(InputError, match="targeted"):
        attack(trained_cnn, x, target=y)


def test_matched_noise_copies_the_fgsm_perturbation_statistics(trained_cnn) -> None:
    x = _gray()
    fgsm_delta = (FGSM(eps=0.05)(trained_cnn, x).adv - x).flatten(1)
    noise = (MatchedNoise(eps=0.05, seed=0)(trained_cnn, x).adv - x).flatten(1)
    torch.testing.assert_close(noise.mean(dim=1), fgsm_delta.mean(dim=1), atol=0.006, rtol=0)
    torch.testing.assert_close(noise.std(dim=1), fgsm_delta.std(dim=1), atol=0, rtol=0.1)
    assert noise.abs().amax() > 0.05  # Gaussian tails: not bounded by ε, unlike FGSM


def test_blur_is_a_normalized_separable_gaussian() -> None:
    kernel = gaussian_kernel(1.5, torch.device("cpu"), torch.float32)
    assert kernel.numel() == 11 and abs(float(kernel.sum()) - 1) < 1e-6 and int(kernel.argmax()) == 5
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(2 * 20 * 20, 3))
    x = torch.rand(4, 2, 20, 20, generator=torch.Generator().manual_seed(0))
    blurred = GaussianBlur(sigma=1.5)(model, x).adv
    # Away from the edges it equals one full 2-D convolution with the outer-product kernel, per channel.
    full = F.conv2d(x.view(8, 1, 20, 20), torch.outer(kernel, kernel)[None, None]).view(4, 2, 10, 10)
    torch.testing.assert_close(blurred[:, :, 5:15, 5:15], full, atol=1e-5, rtol=0)
    assert blurred.var() < x.var()  # smoothing removes high-frequency energy
    assert torch.equal(GaussianBlur(sigma=0.0)(model, x).adv, x)
    constant = torch.full((1, 2, 20, 20), 0.3)
    torch.testing.assert_close(GaussianBlur(sigma=2.0)(model, constant).adv, constant)


def test_noise_baselines_are_much_weaker_than_fgsm_at_matched_strength(trained_cnn, test_batch) -> None:
    x, y = test_batch
    fgsm = FGSM(eps=0.1)(trained_cnn, x, y)
    assert fgsm.robust_accuracy < fgsm.clean_accuracy - 0.5
    # Same L∞ size (random sign), same per-image mean and std (matched), at least the same L2 after clipping
    # (Gaussian: σ = 0.15 because clipping at the black MNIST background removes about half of the noise).
    baselines = [RandomSign(eps=0.1, seed=0), MatchedNoise(eps=0.1, seed=0), GaussianNoise(std=0.15, seed=0)]
    for attack in baselines:
        result = attack(trained_cnn, x, y)
        assert result.robust_accuracy > fgsm.robust_accuracy + 0.5, f"{attack!r} nearly as strong as FGSM"
    assert result.norms["l2"].mean() >= fgsm.norms["l2"].mean()


@pytest.mark.parametrize(("factory", "settings"), [
    (GaussianNoise, {"std": -0.1}), (RandomSign, {"eps": -0.1}), (RandomSign, {"eps": 2.0}),
    (GaussianBlur, {"sigma": -1.0}), (MatchedNoise, {"eps": -0.1}), (MatchedNoise, {"reference": "fgsm"}),
])
def test_invalid_settings_raise_input_error(factory, settings) -> None:
    with pytest.raises(InputError):
        factory(**settings)
