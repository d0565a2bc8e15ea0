"""Weight-decay parameter groups and learning-rate schedules, checked against torch's own schedulers."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from fit_helpers import stripes, tiny_model
from torch import nn

from advlab.errors import InputError
from advlab.train import TrainConfig, fit
from advlab.training.config import OPTIMIZER_NAMES, SCHEDULE_NAMES
from advlab.training.optim import _SCHEDULES, OPTIMIZERS, build_optimizer, lr_multiplier, param_groups


class WithAlpha(nn.Module):
    """A tiny model with a PNI-like learned noise scale ``noise.alpha``."""

    def __init__(self) -> None:
        super().__init__()
        self.body = tiny_model(dropout=0.0)
        self.noise = nn.Module()
        self.noise.alpha = nn.Parameter(torch.tensor([0.25]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) * (1 + 0 * self.noise.alpha)


def test_name_tables_match_the_config() -> None:
    assert set(OPTIMIZERS) == set(OPTIMIZER_NAMES) and set(_SCHEDULES) == set(SCHEDULE_NAMES)


def test_param_groups_exclude_named_and_optionally_1d_params() -> None:
    model = WithAlpha()
    groups = {g["name"]: g for g in param_groups(model, TrainConfig(weight_decay=0.1, no_weight_decay=("*alpha",)))}
    assert groups["no_decay"]["param_names"] == ["noise.alpha"] and groups["no_decay"]["weight_decay"] == 0.0
    assert "body.conv.weight" in groups["decay"]["param_names"] and groups["decay"]["weight_decay"] == 0.1

    config = TrainConfig(weight_decay=0.1, no_weight_decay=("*alpha",), decay_norm_and_bias=False)
    groups = {g["name"]: g for g in param_groups(model, config)}
    assert sorted(groups["decay"]["param_names"]) == ["body.conv.weight", "body.fc.weight"]
    assert {"body.bn.weight", "body.bn.bias", "body.fc.bias", "noise.alpha"} <= set(groups["no_decay"]["param_names"])

    with pytest.raises(InputError, match="match no trainable parameter"):
        param_groups(model, TrainConfig(no_weight_decay=("*alhpa",)))


def test_excluded_params_are_not_decayed_during_training() -> None:
    """With a loss whose gradient is zero, SGD with weight decay shrinks only the decayed parameters."""

    def zero_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return 0.0 * model(x).sum()

    zero_loss.describe = lambda: {"name": "zero"}  # type: ignore[attr-defined]
    model = WithAlpha()
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    config = TrainConfig(epochs=1, batch_size=16, optimizer="sgd", lr=0.5, momentum=0.0, weight_decay=0.1,
                         no_weight_decay=("noise.*",))
    fit(model, stripes(32), config=config, objective=zero_loss, quiet=True)
    after = dict(model.named_parameters())
    assert torch.equal(after["noise.alpha"], before["noise.alpha"])
    # two steps of p <- p - lr * wd * p
    torch.testing.assert_close(after["body.conv.weight"], before["body.conv.weight"] * (1 - 0.05) ** 2)


def _torch_lrs(scheduler_factory: Any, steps: int, lr: float = 0.1) -> list[float]:
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=lr)
    scheduler = scheduler_factory(optimizer)
    lrs = []
    for _ in range(steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


def _ours(config: TrainConfig, steps_per_epoch: int) -> list[float]:
    multiplier = lr_multiplier(config, steps_per_epoch)
    return [config.lr * multiplier(step) for step in range(config.epochs * steps_per_epoch)]


def test_step_schedule_matches_multistep_lr_per_epoch() -> None:
    config = TrainConfig(epochs=6, lr=0.1, schedule="step", milestones=(2, 4), gamma=0.1)
    per_step = _ours(config, steps_per_epoch=3)
    per_epoch = per_step[::3]
    assert per_step[:3] == [0.1] * 3  # constant within an epoch
    expected = _torch_lrs(lambda opt: torch.optim.lr_scheduler.MultiStepLR(opt, [2, 4], 0.1), 6)
    assert per_epoch == pytest.approx(expected, rel=1e-12)
    assert per_epoch == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001, 0.001])


def test_cosine_schedule_matches_cosine_annealing_per_step() -> None:
    config = TrainConfig(epochs=4, lr=0.1, schedule="cosine")
    ours = _ours(config, steps_per_epoch=5)
    expected = _torch_lrs(lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=20), 20)
    assert ours == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert ours[0] == 0.1 and ours[10] == pytest.approx(0.05)


def test_warmup_then_cosine() -> None:
    config = TrainConfig(epochs=4, lr=0.1, schedule="cosine", warmup_epochs=1)
    ours = _ours(config, steps_per_epoch=4)
    assert ours[:4] == pytest.approx([0.025, 0.05, 0.075, 0.1])
    assert ours[4] == pytest.approx(0.1) and ours[4 + 6] == pytest.approx(0.05)  # cosine over the 12 later steps


def test_onecycle_matches_torch_onecycle_lr() -> None:
    config = TrainConfig(epochs=5, lr=0.2, schedule="onecycle", pct_start=0.25)
    ours = _ours(config, steps_per_epoch=7)
    expected = _torch_lrs(lambda opt: torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=0.2, total_steps=35, pct_start=0.25, cycle_momentum=False), 35)
    assert ours == pytest.approx(expected, rel=1e-9)
    assert max(ours) == pytest.approx(0.2, rel=1e-3) and ours[0] == pytest.approx(0.2 / 25)


def test_triangular_is_wong_et_al_cyclic_lr() -> None:
    # np.interp([epoch + (i + 1) / steps_per_epoch], [0, 2/5 · epochs, epochs], [0, lr, 0]) in their training code
    config = TrainConfig(epochs=5, lr=0.2, schedule="triangular", pct_start=0.4)
    ours = _ours(config, steps_per_epoch=4)
    points = [(i + 1) / 4 for i in range(20)]
    expected = [0.2 * (t / 2 if t <= 2 else (5 - t) / 3) for t in points]
    assert ours == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert max(ours) == pytest.approx(0.2) and ours[0] > 0
    with pytest.raises(InputError, match="own warm-up"):
        TrainConfig(epochs=5, schedule="triangular", warmup_epochs=1)


def test_fit_applies_the_schedule_and_records_it() -> None:
    config = TrainConfig(epochs=3, batch_size=16, lr=0.1, schedule="step", milestones=(1, 2), gamma=0.5)
    result = fit(tiny_model(), stripes(48), config=config, quiet=True)
    assert [r["lr"] for r in result.history] == pytest.approx([0.1, 0.05, 0.025])


def test_optimizer_settings_reach_torch() -> None:
    model = tiny_model()
    sgd = build_optimizer(model, TrainConfig(optimizer="sgd", lr=0.3, momentum=0.8, nesterov=True))
    assert isinstance(sgd, torch.optim.SGD) and sgd.param_groups[0]["nesterov"] is True
    assert sgd.param_groups[0]["momentum"] == 0.8 and sgd.param_groups[0]["initial_lr"] == 0.3
    adam = build_optimizer(model, TrainConfig(optimizer="adam", lr=1e-3, betas=(0.5, 0.9)))
    assert isinstance(adam, torch.optim.Adam) and adam.param_groups[0]["betas"] == (0.5, 0.9)
    with pytest.raises(InputError, match="nesterov"):
        TrainConfig(optimizer="adam", nesterov=True)
    assert math.isclose(TrainConfig().lr, 0.1)
