from __future__ import annotations

import pytest
import torch
from evaluate_helpers import DoNothing, IterativeSign, NoisyInput, OneStepSign, Quantize, ScaledLogits

from advlab.evaluate import (
    check_iterative_vs_single_step,
    check_random_sampling,
    check_randomness_without_eot,
    check_saturated_softmax,
    check_unbounded_attack,
    check_white_box_vs_black_box,
    check_zero_gradients,
    run_checks,
)
from advlab.evaluate.checks import sample_in_ball


@pytest.fixture(scope="module")
def xy(test_xy):
    return test_xy[0][:100], test_xy[1][:100]


def test_saturation_fires_on_a_distilled_model_at_t1_and_passes_on_the_normal_one(trained, xy) -> None:
    x, _ = xy
    distilled = ScaledLogits(trained, 100.0)
    warned = check_saturated_softmax(distilled, x)
    assert warned.status == "warn" and warned.values["saturated_fraction"] > 0.5
    assert warned.doc_anchor == "saturated-softmax" and "checks.md#saturated-softmax" in warned.to_dict()["doc"]
    normal = check_saturated_softmax(trained, x)
    assert normal.status == "pass" and normal.values["saturated_fraction"] < 0.5


def test_zero_gradient_check_fires_on_a_rounding_layer(trained, xy) -> None:
    masked = check_zero_gradients(Quantize(trained), *xy)
    assert masked.status == "warn" and masked.values["zero_gradient_fraction"] == 1.0
    normal = check_zero_gradients(trained, *xy)
    assert normal.status == "pass" and normal.values["mean_abs_gradient"] > 0
    assert check_zero_gradients(ScaledLogits(trained, 100.0), *xy).status == "warn"


def test_randomness_without_eot(trained, xy) -> None:
    x, _ = xy
    noisy = NoisyInput(trained, std=0.3)
    assert check_randomness_without_eot(noisy, x, attack=OneStepSign()).status == "warn"
    assert check_randomness_without_eot(noisy, x, attack=OneStepSign(eot_samples=10)).status == "pass"
    assert check_randomness_without_eot(trained, x, attack=OneStepSign()).status == "pass"


def test_attack_comparisons_fire_on_a_broken_attack(trained, xy) -> None:
    x, y = xy
    broken = DoNothing(eps=0.2)
    fgsm, pgd = OneStepSign(eps=0.2), IterativeSign(eps=0.2, steps=5)
    assert check_iterative_vs_single_step(trained, x, y, single_step=fgsm, iterative=broken).status == "warn"
    assert check_iterative_vs_single_step(trained, x, y, single_step=fgsm, iterative=pgd).status == "pass"
    assert check_white_box_vs_black_box(trained, x, y, white_box=broken, black_box={"fgsm": fgsm}).warned
    assert check_white_box_vs_black_box(trained, x, y, white_box=pgd, black_box={"fgsm": fgsm}).status == "pass"
    assert check_white_box_vs_black_box(trained, x, y, white_box=pgd, black_box={}).status == "skip"
    assert check_unbounded_attack(trained, x, y, attack=broken).status == "warn"
    unbounded = check_unbounded_attack(trained, x, y, attack=IterativeSign(eps=0.1, steps=10))
    assert unbounded.status == "pass" and unbounded.values["accuracy"] <= 0.05
    noise = check_random_sampling(trained, x, y, attack=DoNothing(eps=0.3), draws=10)
    assert noise.status == "warn", noise.values
    assert check_random_sampling(trained, x, y, attack=IterativeSign(eps=0.3, steps=5), draws=10).status == "pass"


def test_sample_in_ball_respects_the_ball() -> None:
    import torch

    x = torch.rand(8, 1, 5, 5)
    linf = sample_in_ball(x, 0.1, "linf")
    assert (linf - x).abs().max() <= 0.1 + 1e-6 and (linf - x).abs().max() > 0.05
    l2 = sample_in_ball(x, 0.5, "l2")
    assert ((l2 - x).flatten(1).norm(dim=1) <= 0.5 + 1e-5).all()


def test_run_checks_on_a_normal_and_a_masked_model(trained, xy) -> None:
    x, y = xy
    attacks = {"single_step": OneStepSign(eps=0.15), "iterative": IterativeSign(eps=0.15, steps=5),
               "black_box": None}
    results = run_checks(trained, x, y, 0.15, attacks=attacks, max_points=60)
    statuses = {r.name: r.status for r in results}
    assert len(results) == 9 and statuses["white_box_vs_black_box"] == "skip"
    assert "warn" not in statuses.values(), [r.message for r in results if r.warned]
    masked = {r.name: r for r in run_checks(ScaledLogits(trained, 100.0), x, y, 0.15, attacks=attacks,
                                            max_points=60)}
    assert masked["saturated_softmax"].warned and masked["zero_gradients"].warned
    assert masked["unbounded_attack"].warned  # CE gradients vanish, so even eps = 1 leaves points correct


class NaNOffData(torch.nn.Module):
    """Finite on the clean images, NaN once an input moves off them (a broken defense)."""

    def __init__(self, model: torch.nn.Module, x: torch.Tensor) -> None:
        super().__init__()
        self.model, self.x = model, x

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        logits = self.model(inputs)
        off = (inputs - self.x[: inputs.shape[0]]).flatten(1).abs().amax(dim=1) > 0
        return torch.where(off[:, None], torch.full_like(logits, float("nan")), logits)


def test_finite_outputs_check_fires_on_nan_logits_off_the_data(trained, xy) -> None:
    from advlab.evaluate.checks import check_finite_outputs

    x, _ = xy
    broken = check_finite_outputs(NaNOffData(trained, x), x, 0.1, "linf")
    assert broken.status == "warn" and broken.values["non_finite"] == 5 * x.shape[0]
    assert check_finite_outputs(trained, x, 0.1, "linf").status == "pass"
