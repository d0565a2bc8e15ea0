from __future__ import annotations

import dataclasses
import itertools

import pytest
import torch
from evaluate_helpers import CountingModel, DoNothing, IterativeSign, NoisyInput, OneStepSign

from advlab.attacks.base import Attack
from advlab.data.dataset import ImageDataset
from advlab.errors import InputError
from advlab.evaluate import evaluate_attack, is_randomized, robust_accuracy_curve, run_attack, with_eot


def test_curve_is_monotone_and_falls_well_below_clean_accuracy(trained, test_xy) -> None:
    x, y = test_xy[0][:128], test_xy[1][:128]
    epsilons = [0.0, 0.05, 0.1, 0.2, 0.3]
    curve = robust_accuracy_curve(trained, (x, y), IterativeSign(eps=0.3, steps=6), epsilons, batch_size=64)
    acc = curve.robust_accuracy
    assert curve.epsilons == epsilons and len(curve.points) == 5
    assert all(a >= b for a, b in itertools.pairwise(acc)), acc
    clean = curve.points[0].clean_accuracy
    assert clean > 0.85 and acc[0] == pytest.approx(clean)
    assert acc[-1] < 0.2 < clean - 0.5
    assert curve.trials == 1 and not curve.randomized and curve.robust_accuracy_std == [0.0] * 5
    for previous, point, eps in zip(curve.points, curve.points[1:], epsilons[1:]):
        assert 0 < point.mean_norms["linf"] <= eps + 1e-6
        assert point.median_norms["l2"] > 0
        # Only the points still robust at the smaller ε are attacked again (at most 6 steps + 1 pass each).
        assert (point.queries_per_sample > 0) == (previous.robust_accuracy > 0)
        assert point.queries_per_sample <= 7 * previous.robust_accuracy
        assert point.success_rate == pytest.approx(1 - point.robust_accuracy / clean, abs=1e-9)
    assert curve.points[0].mean_norms["linf"] is None  # no success at eps = 0


def test_an_attack_that_does_nothing_gives_a_flat_curve(trained, test_xy) -> None:
    curve = robust_accuracy_curve(trained, (test_xy[0][:64], test_xy[1][:64]), DoNothing(), [0.1, 0.3])
    assert curve.robust_accuracy[0] == curve.robust_accuracy[1] == curve.points[0].clean_accuracy


def test_curve_accepts_an_image_dataset_and_matches_tensors(trained, mnist) -> None:
    data = ImageDataset(mnist["test_x"][:96], mnist["test_y"][:96], tuple(map(str, range(10))), "mnist/test")
    attack = OneStepSign(eps=0.1)
    from_dataset = robust_accuracy_curve(trained, data, attack, [0.1], batch_size=40)
    from_tensors = robust_accuracy_curve(trained, (data.float_images(), data.labels), attack, [0.1], batch_size=40)
    assert from_dataset.robust_accuracy == from_tensors.robust_accuracy
    assert from_dataset.data_name == "mnist/test" and from_dataset.n == 96


def test_randomized_model_is_detected_and_reported_over_trials(trained, test_xy) -> None:
    x, y = test_xy[0][:64], test_xy[1][:64]
    noisy = NoisyInput(trained, std=0.3)
    assert is_randomized(noisy, x) and not is_randomized(trained, x)
    curve = robust_accuracy_curve(noisy, (x, y), IterativeSign(eps=0.1, steps=2), [0.1], eot_samples=3)
    assert curve.randomized and curve.trials == 5 and len(curve.points[0].trials) == 5
    assert curve.eot_samples == 3 and curve.attack["settings"]["eot_samples"] == 3
    assert curve.points[0].robust_accuracy_std > 0
    naive = robust_accuracy_curve(noisy, (x, y), IterativeSign(eps=0.1, steps=2), [0.1], eot=False, trials=2)
    assert naive.eot_samples == 1 and naive.trials == 2


def test_deterministic_model_gets_one_trial_even_when_more_are_asked(trained, test_xy) -> None:
    result = evaluate_attack(trained, (test_xy[0][:64], test_xy[1][:64]), OneStepSign(eps=0.1), trials=5)
    assert len(result.trials) == 1 and result.robust_accuracy_std == 0.0


def test_with_eot_only_raises_the_setting_where_the_attack_has_it() -> None:
    assert with_eot(OneStepSign(eps=0.1), 7).eot_samples == 7
    assert with_eot(OneStepSign(eps=0.1, eot_samples=20), 7).eot_samples == 20
    assert with_eot(DoNothing(), 7) == DoNothing()


def test_evaluation_leaves_the_callers_rng_and_model_mode_alone(trained, test_xy) -> None:
    trained.train()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    robust_accuracy_curve(trained, (test_xy[0][:32], test_xy[1][:32]), IterativeSign(eps=0.1, steps=2,
                          random_start=True), [0.1])
    assert torch.equal(torch.rand(3), expected) and trained.training
    trained.eval()


def test_same_seed_same_numbers_for_random_start_attacks(trained, test_xy) -> None:
    data = (test_xy[0][:64], test_xy[1][:64])
    attack = IterativeSign(eps=0.1, steps=2, random_start=True)
    first = robust_accuracy_curve(trained, data, attack, [0.05, 0.1], seed=3)
    second = robust_accuracy_curve(trained, data, attack, [0.05, 0.1], seed=3)
    assert first.points == second.points


def test_progress_callback_and_rich_progress(trained, test_xy) -> None:
    from rich.progress import Progress

    calls = []
    data = (test_xy[0][:50], test_xy[1][:50])
    robust_accuracy_curve(trained, data, OneStepSign(), [0.1, 0.2], batch_size=20,
                          progress=lambda done, total, text: calls.append((done, total)))
    assert calls == [(i, 3) for i in range(1, 4)]  # one step per batch (both ε of it)
    with Progress(disable=True) as bars:
        robust_accuracy_curve(trained, data, OneStepSign(), [0.1], batch_size=20, progress=bars)
        assert bars.tasks[0].completed == 3 and bars.tasks[0].total == 3


def test_bad_arguments_raise_clear_errors(trained, test_xy) -> None:
    data = (test_xy[0][:8], test_xy[1][:8])

    @dataclasses.dataclass(frozen=True, kw_only=True)
    class NoEps(Attack):  # an Attack without an eps field
        def run(self, model, x, y, target):
            return x

    with pytest.raises(InputError, match="no eps"):
        robust_accuracy_curve(trained, data, NoEps(), [0.1])
    with pytest.raises(InputError, match=">= 0"):
        robust_accuracy_curve(trained, data, OneStepSign(), [-0.1])
    with pytest.raises(InputError, match="at least one"):
        robust_accuracy_curve(trained, data, OneStepSign(), [])
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        robust_accuracy_curve(trained, (data[0] * 255, data[1]), OneStepSign(), [0.1])
    with pytest.raises(InputError, match="batch_size"):
        robust_accuracy_curve(trained, data, OneStepSign(), [0.1], batch_size=0)


def test_run_attack_keeps_per_sample_records(trained, test_xy) -> None:
    x, y = test_xy[0][:50], test_xy[1][:50]
    counting = CountingModel(trained)
    run = run_attack(counting, (x, y), IterativeSign(eps=0.2, steps=3), batch_size=20, keep_adversarial=True)
    assert run.adv is not None and run.adv.shape == x.shape
    assert (run.adv - x).abs().max() <= 0.2 + 1e-6
    with torch.no_grad():
        assert torch.equal(trained(run.adv).argmax(1), run.adv_pred)
    assert run.queries == 50 * 3 and run.metrics().n == 50
