"""FGSM family, BIM/PGD and MI-FGSM on a small trained MNIST model: budgets, strength, targeting, modes.

Every strength test goes through :func:`assert_attack_effective`, which an identity attack fails
(``test_identity_attack_fails_the_effectiveness_check``), so none of these tests can pass for ``adv = x``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest
import torch
from gradient_attack_helpers import assert_attack_effective, assert_within_budget
from torch import nn

from advlab.attacks.base import Attack
from advlab.attacks.fgsm import FGM, FGSM, FGSMLeastLikely, GradientStep
from advlab.attacks.gradients import AutogradGradient
from advlab.attacks.mifgsm import MIFGSM
from advlab.attacks.pgd import BIM, PGD, PGDL2
from advlab.attacks.registry import create_attack
from advlab.errors import InputError


@dataclass(frozen=True, kw_only=True)
class IdentityAttack(Attack):
    eps: float = 0.3

    def run(self, model, x, y, target):
        return x.clone()


def test_identity_attack_fails_the_effectiveness_check(trained_cnn, test_batch) -> None:
    x, y = test_batch
    with pytest.raises(AssertionError, match="robust accuracy|attack ineffective"):
        assert_attack_effective(IdentityAttack()(trained_cnn, x, y), max_robust=0.5, min_drop=0.3)


def test_the_registry_builds_gradient_sign_attacks_with_their_settings() -> None:
    built = create_attack("pgd", eps=0.1, steps=3)
    assert isinstance(built, PGD) and built.eps == 0.1 and built.steps == 3
    assert create_attack("fgsm_ll").least_likely and not create_attack("bim").random_start


BUDGETED = [
    (FGSM(eps=0.1), 0.1, "linf"), (FGSMLeastLikely(eps=0.1), 0.1, "linf"), (GradientStep(eps=0.1), 0.1, "linf"),
    (FGM(eps=1.5), 1.5, "l2"), (PGD(eps=0.1, steps=5, seed=0), 0.1, "linf"), (BIM(eps=0.1, steps=5), 0.1, "linf"),
    (PGDL2(eps=1.5, steps=5, seed=0), 1.5, "l2"), (MIFGSM(eps=0.1, steps=5), 0.1, "linf"),
    (PGD(eps=0.1, steps=5, step_size=0.05, restarts=2, seed=0), 0.1, "linf"),
]


@pytest.mark.parametrize(("attack", "eps", "norm"), BUDGETED, ids=lambda a: type(a).__name__ if isinstance(a, Attack)
                         else None)
def test_adversarial_images_stay_in_the_ball_and_the_box(trained_cnn, test_batch, attack, eps, norm) -> None:
    x, y = test_batch
    result = attack(trained_cnn, x, y)
    assert_within_budget(result, x, eps, norm)
    assert result.queries > 0 and float(result.norms[norm].max()) > 0.5 * eps  # it did move


def test_pgd_is_much_stronger_than_clean_and_than_fgsm(trained_cnn, test_batch) -> None:
    x, y = test_batch
    fgsm = FGSM(eps=0.1)(trained_cnn, x, y)
    pgd = PGD(eps=0.1, steps=20, seed=0)(trained_cnn, x, y)
    assert pgd.clean_accuracy > 0.9
    assert_attack_effective(fgsm, max_robust=0.6, min_drop=0.3)
    assert_attack_effective(pgd, max_robust=0.3, min_drop=0.6)
    assert pgd.robust_accuracy < fgsm.robust_accuracy - 0.05


@pytest.mark.parametrize("attack", [BIM(eps=0.1, steps=20), MIFGSM(eps=0.1, steps=10), PGD(eps=0.1, loss="margin",
                         steps=20, seed=0), PGD(eps=0.1, loss="dlr", steps=20, seed=0), PGDL2(eps=1.5, steps=20, seed=0),
                         FGM(eps=2.5), FGSMLeastLikely(eps=0.2)], ids=repr)
def test_other_variants_cut_accuracy(trained_cnn, test_batch, attack) -> None:
    assert_attack_effective(attack(trained_cnn, *test_batch), max_robust=0.4, min_drop=0.5)


def test_fgsm_is_one_step_pgd_without_random_start(trained_cnn, test_batch) -> None:
    x, y = test_batch
    fgsm = FGSM(eps=0.1)(trained_cnn, x, y)
    pgd = PGD(eps=0.1, steps=1, step_size=0.1, random_start=False, early_stop=False)(trained_cnn, x, y)
    assert torch.equal(fgsm.adv, pgd.adv)
    # And the closed form of Goodfellow et al.: x + ε·sign(∇ₓ CE), clipped to [0, 1].
    xg = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(nn.functional.cross_entropy(trained_cnn(xg), y, reduction="sum"), xg)
    torch.testing.assert_close(fgsm.adv, (x + 0.1 * grad.sign()).clamp(0, 1))


def test_mifgsm_without_momentum_is_bim(trained_cnn, test_batch) -> None:
    # sign(g/‖g‖₁) = sign(g): with μ = 0 the momentum iteration collapses to BIM with the same step.
    x, y = test_batch
    mi = MIFGSM(eps=0.1, steps=5, decay=0.0, step_size=0.02, early_stop=False)(trained_cnn, x, y)
    bim = BIM(eps=0.1, steps=5, step_size=0.02, early_stop=False)(trained_cnn, x, y)
    assert torch.equal(mi.adv, bim.adv)
    momentum = MIFGSM(eps=0.1, steps=5, step_size=0.02, early_stop=False)(trained_cnn, x, y)
    assert not torch.equal(momentum.adv, bim.adv)


def _target_log_prob(model: nn.Module, images: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(images).log_softmax(dim=1).gather(1, target[:, None]).squeeze(1)


@pytest.mark.parametrize("attack", [FGSM(eps=0.01), GradientStep(eps=0.01), PGD(eps=0.01, steps=3, seed=0),
                                    MIFGSM(eps=0.01, steps=3)], ids=repr)
def test_targeted_steps_raise_the_target_probability(trained_cnn, test_batch, attack) -> None:
    x, y = test_batch
    target = (y + 1) % 10
    result = attack(trained_cnn, x, target=target)
    gain = _target_log_prob(trained_cnn, result.adv, target) - _target_log_prob(trained_cnn, x, target)
    assert float((gain > 0).float().mean()) > 0.95, "a small targeted step must ascend log p(target)"
    untargeted = attack(trained_cnn, x, y)
    assert float((_target_log_prob(trained_cnn, untargeted.adv, y) < _target_log_prob(trained_cnn, x, y))
                 .float().mean()) > 0.95, "a small untargeted step must descend log p(true class)"


def test_targeted_attacks_reach_the_target_far_above_chance(trained_cnn, test_batch) -> None:
    x, y = test_batch
    target = (y + 3) % 10
    for attack, min_success in ((FGSM(eps=0.3), 0.5), (PGD(eps=0.2, steps=20, seed=0), 0.9)):
        result = attack(trained_cnn, x, target=target)
        assert torch.equal(result.target, target)
        assert result.success_rate >= min_success  # chance is 0.1
        assert torch.equal(result.success, result.adv_pred == target)


def test_least_likely_fgsm_moves_toward_the_least_likely_class(trained_cnn, test_batch) -> None:
    x, y = test_batch
    with torch.no_grad():
        least_likely = trained_cnn(x).argmin(dim=1)
    result = FGSMLeastLikely(eps=0.01)(trained_cnn, x, y)
    gain = _target_log_prob(trained_cnn, result.adv, least_likely) - _target_log_prob(trained_cnn, x, least_likely)
    assert float((gain > 0).float().mean()) > 0.95
    assert result.target is None  # threat model stays untargeted: success = misclassification
    with pytest.raises(InputError, match="least_likely"):
        FGSMLeastLikely(eps=0.1)(trained_cnn, x, target=y)


def test_restarts_are_never_weaker_than_one_run(trained_cnn, test_batch) -> None:
    x, y = test_batch
    single = PGD(eps=0.1, steps=10, seed=0)(trained_cnn, x, y)
    several = PGD(eps=0.1, steps=10, seed=0, restarts=3)(trained_cnn, x, y)
    robust_single, robust_several = single.adv_pred == y, several.adv_pred == y
    assert not (robust_several & ~robust_single).any()  # every image fooled once stays fooled
    assert robust_several.sum() <= robust_single.sum()
    assert several.queries > single.queries


def test_early_stop_is_never_weaker_and_needs_fewer_forward_passes(trained_cnn, test_batch) -> None:
    x, y = test_batch
    for attack in (PGD(eps=0.1, steps=10, seed=0), MIFGSM(eps=0.1, steps=10)):
        fast = attack(trained_cnn, x, y)
        fixed = type(attack)(**{**attack.__dict__, "early_stop": False})(trained_cnn, x, y)
        assert not ((fast.adv_pred == y) & (fixed.adv_pred != y)).any()
        assert fast.queries < 0.8 * fixed.queries
        assert fixed.queries == 10 * len(x)  # fixed-step: every image, every step, one pass each


def test_eot_on_a_deterministic_model_equals_plain_pgd(trained_cnn, test_batch) -> None:
    x, y = test_batch
    plain = PGD(eps=0.1, steps=5, seed=0, early_stop=False)(trained_cnn, x, y)
    eot = PGD(eps=0.1, steps=5, seed=0, eot_samples=3)(trained_cnn, x, y)
    custom = PGD(eps=0.1, steps=5, seed=0, gradient=AutogradGradient())(trained_cnn, x, y)
    torch.testing.assert_close(eot.adv, plain.adv, atol=1e-6, rtol=0)
    torch.testing.assert_close(custom.adv, plain.adv, atol=1e-6, rtol=0)
    assert eot.queries == 3 * plain.queries  # EOT switches early stop off: all steps, 3 passes each


def test_same_seed_repeats_and_other_seed_differs(trained_cnn, test_batch) -> None:
    x, y = test_batch
    first = PGD(eps=0.1, steps=2, seed=1)(trained_cnn, x, y).adv
    assert torch.equal(first, PGD(eps=0.1, steps=2, seed=1)(trained_cnn, x, y).adv)
    assert not torch.equal(first, PGD(eps=0.1, steps=2, seed=2)(trained_cnn, x, y).adv)


class _RecordsInputs(nn.Module):
    """Passes through to ``model`` and keeps every input batch it is shown."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model, self.inputs = model, []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.inputs.append(x.detach().clone())
        return self.model(x)


@pytest.mark.parametrize("early_stop", [True, False])
def test_unclipped_random_start_leaves_the_box_only_for_the_first_gradient(trained_cnn, test_batch,
                                                                          early_stop) -> None:
    x, y, eps = test_batch[0][:64], test_batch[1][:64], 0.3
    clipped, unclipped = _RecordsInputs(trained_cnn), _RecordsInputs(trained_cnn)
    PGD(eps=eps, steps=3, step_size=0.1, seed=0, early_stop=early_stop)(clipped, x, y)
    result = PGD(eps=eps, steps=3, step_size=0.1, seed=0, early_stop=early_stop, start_in_box=False)(unclipped, x, y)
    def in_box(batch: torch.Tensor) -> bool:
        return 0.0 <= float(batch.min()) and float(batch.max()) <= 1.0

    assert all(in_box(batch) for batch in clipped.inputs) and len(clipped.inputs) == len(unclipped.inputs)
    # Exactly one pass (the first gradient) sees the unclipped start: MNIST's background is 0, so about half of it
    # starts below 0, down to -ε; clipped, it is the same draw as the default attack's start.
    outside = [i for i, batch in enumerate(unclipped.inputs) if not in_box(batch)]
    assert len(outside) == 1
    start = unclipped.inputs[outside[0]]
    assert float(start.min()) < -0.25 and float((start < 0).float().mean()) > 0.2
    torch.testing.assert_close(start.clamp(0, 1), clipped.inputs[outside[0]])
    assert_within_budget(result, x, eps, "linf")
    assert result.robust_accuracy < result.clean_accuracy - 0.3


@pytest.mark.parametrize(("factory", "settings"), [
    (PGD, {"eps": -0.1}), (PGD, {"eps": 8}), (PGD, {"steps": 0}), (PGD, {"step_size": 0.0}), (PGD, {"restarts": 0}),
    (PGD, {"loss": "hinge"}), (PGD, {"eot_samples": 0}), (PGD, {"eot_samples": 2, "gradient": AutogradGradient()}),
    (BIM, {"eps": 1.5}), (PGDL2, {"eps": -1.0}), (FGSM, {"eps": -0.01}), (FGSM, {"eps": 255}), (FGM, {"eps": -1}),
    (GradientStep, {"loss": "nope"}), (MIFGSM, {"decay": -1.0}), (MIFGSM, {"steps": 0}),
])
def test_invalid_settings_raise_input_error(factory, settings) -> None:
    with pytest.raises(InputError):
        factory(**settings)


def test_l2_eps_above_one_is_allowed() -> None:
    assert PGDL2(eps=3.0).eps == 3.0 and FGM(eps=2.0).eps == 2.0


@pytest.mark.parametrize("attack", [FGSM(eps=0.1), PGD(eps=0.1, steps=5, seed=0)], ids=["fgsm", "pgd"])
def test_channels_last_gives_the_same_adversarial_images(trained_cnn, test_batch, attack) -> None:
    x, y = test_batch
    plain = attack(trained_cnn, x, y)
    fast = replace(attack, channels_last=True)(trained_cnn, x, y)
    # Same arithmetic in another memory layout: equal up to float reordering; a sign flip of a gradient entry
    # that is ~0 can move one pixel, so compare predictions and nearly all pixels.
    assert (fast.adv - plain.adv).abs().gt(1e-4).float().mean() < 0.01
    assert (fast.adv_pred == plain.adv_pred).float().mean() >= 0.99
    assert torch.equal(fast.clean_pred, plain.clean_pred)
    assert all(p.is_contiguous() for p in trained_cnn.parameters())  # the user's model is not converted


def test_fgsm_reuses_its_gradient_pass_for_the_clean_prediction(trained_cnn, test_batch) -> None:
    x, y = test_batch
    calls = []
    handle = trained_cnn.register_forward_hook(lambda module, inputs, output: calls.append(inputs[0].shape[0]))
    try:
        result = FGSM(eps=0.1)(trained_cnn, x, y)
    finally:
        handle.remove()
    # a one-image probe, the gradient pass at x (which also gives the clean prediction), the final pass at adv
    assert calls == [1, len(x), len(x)]
    with torch.no_grad():
        assert torch.equal(result.clean_pred, trained_cnn(x).argmax(dim=1))


class _CountingModel(nn.Module):
    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body, self.images = body, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.images += int(x.shape[0])
        return self.body(x)


@pytest.mark.parametrize("attack", [FGSM(eps=0.2), PGD(eps=0.2, steps=3, seed=0)], ids=["fgsm", "pgd"])
def test_perturb_returns_the_call_images_without_the_reporting_passes(trained_cnn, test_batch, attack) -> None:
    x, y = test_batch[0][:32], test_batch[1][:32]
    model = _CountingModel(trained_cnn).train()
    full = attack(model, x, y)
    reported = model.images
    model.images = 0
    adv = attack.perturb(model, x, y)
    torch.testing.assert_close(adv, full.adv)  # same images (the seeded random start included)
    # the one-image probe, the adversarial prediction (and PGD's clean pass) are skipped: 33 images for
    # FGSM, whose gradient pass gives the clean logits, 65 for PGD
    assert reported - model.images == (33 if isinstance(attack, FGSM) else 65)
    assert model.training and all(p.requires_grad for p in model.parameters())
    trained_cnn.eval()  # the fixture is shared
