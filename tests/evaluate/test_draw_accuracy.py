"""Re-judging points on many noise draws: a deterministic model gives 0/1, a randomized one its per-point rate, and
re-running a randomized model's first trial with its adversarial examples kept repeats that trial's verdicts."""

from __future__ import annotations

import pytest
import torch
from evaluate_helpers import NoisyInput, OneStepSign
from torch import nn

from advlab.errors import InputError
from advlab.evaluate import draw_accuracy, run_cascade


class CorrectWithProbability(nn.Module):
    """Logits that name class 0 with probability ``p`` per pass and class 1 otherwise."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p
        self.scale = nn.Parameter(torch.ones(()))  # gives the model a device and a mode to restore

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        zero = (torch.rand(x.shape[0], device=x.device) < self.p).float()
        return self.scale * torch.stack([zero, 1 - zero], dim=1)


def test_a_deterministic_model_gives_its_zero_one_correctness(trained, test_xy) -> None:
    x, y = test_xy[0][:64], test_xy[1][:64]
    with torch.no_grad():
        correct = (trained(x).argmax(1) == y).double()
    assert torch.equal(draw_accuracy(trained, x, y, 3, batch_size=20), correct)


def test_a_randomized_model_gives_its_rate_reproducibly_and_leaves_mode_and_rng_alone() -> None:
    model = CorrectWithProbability(0.7).train()
    x, y = torch.rand(50, 1, 4, 4), torch.zeros(50, dtype=torch.int64)
    before = torch.random.get_rng_state()
    share = draw_accuracy(model, x, y, 200, seed=1, batch_size=16)
    assert torch.equal(torch.random.get_rng_state(), before) and model.training
    assert abs(float(share.mean()) - 0.7) < 0.03 and share.min() > 0.4 and share.max() < 1.0
    assert torch.equal(draw_accuracy(model, x, y, 200, seed=1, batch_size=16), share)
    assert not torch.equal(draw_accuracy(model, x, y, 200, seed=2, batch_size=16), share)


def test_bad_arguments_raise_clear_errors(trained, test_xy) -> None:
    x, y = test_xy[0][:8], test_xy[1][:8]
    with pytest.raises(InputError, match="draws"):
        draw_accuracy(trained, x, y, 0)
    with pytest.raises(InputError, match="labels"):
        draw_accuracy(trained, x, y[:4], 2)
    with pytest.raises(InputError, match="batch_size"):
        draw_accuracy(trained, x, y, 2, batch_size=0)


def test_keeping_the_examples_repeats_the_first_trials_verdicts(trained, test_xy) -> None:
    noisy = NoisyInput(trained, 0.3)
    x, y = test_xy[0][:48], test_xy[1][:48]
    stages = [OneStepSign(eps=0.1), OneStepSign(eps=0.1)]
    kept = run_cascade(noisy, (x, y), stages, trials=1, eot_samples=2, batch_size=16, keep_adversarial=True)
    three = run_cascade(noisy, (x, y), stages, trials=3, eot_samples=2, batch_size=16, keep_adversarial=False)
    assert kept.trial_stage_robust_accuracy[0] == three.trial_stage_robust_accuracy[0]
    assert torch.equal(kept.fooled_by, three.fooled_by)
    assert kept.adv is not None
    fooled = kept.fooled_by >= 0
    assert fooled.any() and torch.equal(kept.adv[~fooled], x[~fooled])
    # The kept examples, re-judged on fresh draws: the points the cascade fooled are misclassified more often
    # than the points it did not fool.
    share = draw_accuracy(noisy, kept.adv, y, 20)
    assert share[fooled].mean() < share[kept.fooled_by == -1].mean()
