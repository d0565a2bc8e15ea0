"""Defensive distillation with an adversarially trained teacher (van Everdingen §7: both teachers were "trained
adversarially") and a student distilled from an already trained network (§8's final model)."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from training_defense_utils import TinyCNN

from advlab.defenses.adversarial_training import PerEpochAdversarialTraining
from advlab.defenses.distillation import DefensiveDistillation, TemperatureScaled
from advlab.defenses.noise import with_random_sign_set
from advlab.training.two_stage import train_distillation, train_student


@dataclass
class SpyObjective:
    """Cross-entropy that records what it trains: the module's type, its temperature, whether it wraps the teacher
    and whether its outputs are the teacher's logits / T."""

    teacher: torch.nn.Module
    seen: list[Any] = field(default_factory=list)

    def __call__(self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logits = model(x)
        temperature = getattr(model, "temperature", None)
        with torch.no_grad():
            scaled = temperature is not None and torch.allclose(logits, self.teacher(x) / temperature)
        self.seen.append((type(model), temperature, getattr(model, "model", None) is self.teacher, scaled))
        return F.cross_entropy(logits, y)

    def describe(self) -> dict[str, Any]:
        return {"name": "spy"}


def test_a_teacher_objective_trains_the_teacher_at_its_temperature(mnist) -> None:
    train_module = importlib.import_module("advlab.train")
    config = train_module.TrainConfig(epochs=1, batch_size=100, optimizer="adam", lr=1e-2)
    teacher, student = TinyCNN(), TinyCNN()
    spy = SpyObjective(teacher)
    recipe = DefensiveDistillation(temperature=50.0)
    teacher_set = with_random_sign_set(mnist[0].subset(250), 0.1)  # the teacher may learn on another set
    teacher_run, student_run = train_distillation(recipe, teacher, student, mnist[0].subset(300), config=config,
                                                  quiet=True, device="cpu", teacher_objective=spy,
                                                  teacher_set=teacher_set)
    assert len(spy.seen) == 5  # the teacher's 500 images in batches of 100
    assert set(spy.seen) == {(TemperatureScaled, 50.0, True, True)}  # every step: the teacher's logits / 50
    assert teacher_run.card["objective"] == {"name": "spy"}
    assert student_run.card["objective"] == {"name": "soft_label_distillation", "temperature": 50.0}
    assert teacher_run.card["dataset"] != student_run.card["dataset"]


def test_per_epoch_adversarial_teacher_is_trained_and_the_variant_student_learns_from_it(mnist) -> None:
    train_module = importlib.import_module("advlab.train")
    config = train_module.TrainConfig(epochs=2, batch_size=64, optimizer="adam", lr=1e-2)
    torch.manual_seed(0)
    teacher, student = TinyCNN(), TinyCNN()
    before = [p.detach().clone() for p in teacher.parameters()]
    recipe = DefensiveDistillation.van_everdingen()
    teacher_run, student_run = train_distillation(recipe, teacher, student, mnist[0].subset(1500), config=config,
                                                  quiet=True, device="cpu", val_set=mnist[1],
                                                  teacher_objective=PerEpochAdversarialTraining(eps=0.1))
    assert teacher_run.card["objective"]["name"] == "per_epoch_adversarial"
    assert any(not torch.equal(b, p) for b, p in zip(before, teacher.parameters()))  # trained in place
    assert teacher_run.final["val_acc"] > 0.8
    assert student_run.final["val_acc"] > 0.75  # it learned from the adversarial teacher's T = 4 soft labels


def test_train_student_distils_an_already_trained_network(trained_cnn, mnist) -> None:
    train_module = importlib.import_module("advlab.train")
    config = train_module.TrainConfig(epochs=2, batch_size=64, optimizer="adam", lr=1e-2)
    torch.manual_seed(1)
    teacher_state = {k: v.clone() for k, v in trained_cnn.state_dict().items()}
    run = train_student(DefensiveDistillation.van_everdingen(), trained_cnn, TinyCNN(), mnist[0].subset(1500),
                                                               config=config, quiet=True, device="cpu",
                                                               val_set=mnist[1])
    assert run.card["objective"] == {"name": "soft_label_distillation", "temperature": 4.0}
    assert run.card["defense"] == {"name": "distillation", "temperature": 4.0, "teacher_temperature": 1.0}
    assert all(torch.equal(v, trained_cnn.state_dict()[k]) for k, v in teacher_state.items())  # teacher untouched
    assert run.final["val_acc"] > 0.75
