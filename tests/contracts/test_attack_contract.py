"""The attack contract, for every registered attack (a new attack is covered the day it is registered).

Each attack, run through the base class: the result lies in [0, 1] and in the attack's ε-ball, also under bf16
autocast; the model comes back in the mode and with the parameter flags it had, also when the model raises
mid-attack; and the white-box attacks that promise to fool a network do so on a trained one, a bar that an attack
returning ``x`` fails.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import pytest
import torch
from torch import nn

import advlab.attacks  # noqa: F401 - registers every attack
from advlab.attacks.base import Attack, Norm
from advlab.attacks.fgsm import FGSM
from advlab.attacks.registry import ATTACKS, create_attack

NAMES = ATTACKS.names()
EPS = {Norm.LINF: 0.3, Norm.L2: 3.0}
# Settings only where the defaults need an argument or take minutes on a CPU; everything else runs as registered.
SETTINGS: dict[str, dict[str, Any]] = {
    "cw": {"steps": 100, "binary_steps": 5}, "cw_pni": {"binary_steps": 2},
    "square": {"eps": 0.3, "steps": 300}, "zoo": {"steps": 30, "binary_steps": 1},
    "substitute": {"substitute_epochs": 2, "train_epochs": 3},
    "transfer": {"attack": FGSM(eps=0.3)},
}
# Held to the ball, the box and the modes only: the papers' noise baselines (their point is not to fool), C&W with
# PNI's printed settings (10 Adam steps at lr 5e-4: weak by design), and ZOO, whose strength needs thousands of
# queries per image (tests/attacks/optim/test_zoo.py measures it on its own budget).
NOT_MEANT_TO_FOOL = {"gaussian_noise", "gaussian_blur", "random_sign", "matched_noise", "cw_pni", "zoo"}


def build(name: str, source: nn.Module) -> Attack:
    settings = dict(SETTINGS.get(name, {}))
    if name == "transfer":
        settings["source"] = source
    attack = create_attack(name, **settings)
    fields = {f.name for f in dataclasses.fields(attack)} if dataclasses.is_dataclass(attack) else set()
    if "eps" in fields and "eps" not in settings and attack.norm in EPS:
        attack = dataclasses.replace(attack, eps=EPS[attack.norm])
    return attack


def run(attack: Attack, model: nn.Module, x: torch.Tensor, y: torch.Tensor):
    target = None if attack.supports_untargeted else (y + 1) % 10
    return attack(model, x, y, target=target)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("name", NAMES)
def test_result_stays_in_the_box_and_the_ball(name: str, precision: str, trained_mlp, sample_batch) -> None:
    """Also under bf16, where the attack's passes give bf16 logits that every loss, buffer and estimator must take
    (advlab.precision), and the images still come back in float32."""
    x, y = sample_batch
    x, y = x[:16], y[:16]
    attack = dataclasses.replace(build(name, trained_mlp), precision=precision)
    result = run(attack, trained_mlp, x, y)
    assert result.adv.shape == x.shape and result.adv.dtype == x.dtype
    assert float(result.adv.min()) >= 0.0 and float(result.adv.max()) <= 1.0
    if attack.budget is not None and attack.norm in (Norm.LINF, Norm.L2):
        assert float(result.norms[attack.norm.value].max()) <= attack.budget * (1 + 1e-5) + 1e-6, name


class FailsAfter(nn.Module):
    """The trained network, raising on its ``calls``-th forward pass (a crash in the middle of an attack)."""

    def __init__(self, model: nn.Module, calls: int) -> None:
        super().__init__()
        self.model, self.left = model, calls
        self.dropout = nn.Dropout(0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.left -= 1
        if self.left < 0:
            raise RuntimeError("model failure in the middle of the attack")
        return self.model(x)


@pytest.mark.parametrize("name", NAMES)
def test_the_model_is_handed_back_as_it_was_when_the_attack_fails(name: str, trained_mlp, sample_batch) -> None:
    x, y = sample_batch
    model = FailsAfter(trained_mlp, calls=1).train()
    model.model.eval()  # mixed modes must come back exactly
    flags = [p.requires_grad for p in model.parameters()]
    with pytest.raises(RuntimeError, match="middle of the attack"):
        run(build(name, trained_mlp), model, x[:8], y[:8])
    assert model.training and model.dropout.training and not model.model.training
    assert [p.requires_grad for p in model.parameters()] == flags


@dataclass(frozen=True, kw_only=True)
class ReturnsTheInput(Attack):
    eps: float = 0.3

    def run(self, model, x, y, target):
        return x.clone()


def assert_fools(result, name: str) -> None:
    """The effectiveness bar: at least 40 points of the clean accuracy gone."""
    assert result.robust_accuracy <= result.clean_accuracy - 0.4, (
        f"{name}: clean {result.clean_accuracy:.3f}, robust {result.robust_accuracy:.3f}")


def test_an_attack_returning_its_input_fails_the_bar(trained_mlp, sample_batch) -> None:
    with pytest.raises(AssertionError, match="robust"):
        assert_fools(ReturnsTheInput()(trained_mlp, *sample_batch), "identity")


@pytest.mark.parametrize("name", [n for n in NAMES if n not in NOT_MEANT_TO_FOOL])
def test_every_attack_meant_to_fool_does_so_on_a_trained_network(name: str, trained_mlp, sample_batch) -> None:
    x, y = sample_batch
    result = run(build(name, trained_mlp), trained_mlp, x, y)
    if result.target is not None:
        assert float(result.success.float().mean()) >= 0.4, f"{name}: targeted success {result.success_rate:.3f}"
    else:
        assert_fools(result, name)


@pytest.mark.parametrize("name", NAMES)
def test_bounded_attacks_move_to_another_budget_and_unbounded_ones_refuse(name: str, trained_mlp) -> None:
    from advlab.errors import InputError

    attack = build(name, trained_mlp)
    if not attack.is_bounded():
        assert attack.budget is None
        with pytest.raises(InputError, match="no ε budget"):
            attack.at(0.1)
        return
    moved = attack.at(0.05)
    assert moved.eps == 0.05 and type(moved) is type(attack)  # type: ignore[attr-defined]
    assert dataclasses.replace(moved, eps=attack.eps) == attack  # type: ignore[attr-defined]


def test_a_step_given_as_a_fraction_of_eps_follows_eps() -> None:
    from advlab.attacks.pgd import PGD
    from advlab.errors import InputError

    assert PGD(eps=0.3, step_fraction=0.25).alpha == pytest.approx(0.075)
    assert PGD(eps=0.3, step_fraction=0.25).at(8 / 255).alpha == pytest.approx(2 / 255)
    assert PGD(eps=0.3, step_size=0.01).at(0.1).alpha == 0.01  # an absolute step stays absolute
    with pytest.raises(InputError, match="not both"):
        PGD(eps=0.3, step_size=0.01, step_fraction=0.25)
