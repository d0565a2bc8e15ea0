"""Defensive distillation: objectives, the T=1 -> T=4 variant, and why testing at T = 1 only hides gradients."""

from __future__ import annotations

import importlib

import pytest
import torch
import torch.nn.functional as F
from training_defense_utils import TinyCNN, accuracy, train_steps

from advlab.defenses.distillation import (
    DefensiveDistillation,
    SoftLabelDistillation,
    TemperatureCrossEntropy,
    TemperatureScaled,
)
from advlab.errors import InputError
from advlab.training.two_stage import train_distillation

TEMPERATURE = 50.0


def input_gradient_max(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-image max |∇ₓ CE(model(x), y)|, shape (N,)."""
    x = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(F.cross_entropy(model(x), y, reduction="sum"), x)
    return grad.flatten(1).abs().amax(dim=1)


@pytest.fixture(scope="module")
def distilled(mnist):
    """(teacher, student) of Papernot's recipe at T = 50 on 3000 MNIST images."""
    recipe = DefensiveDistillation(temperature=TEMPERATURE)
    torch.manual_seed(0)
    teacher = train_steps(TinyCNN(), mnist[0], recipe.teacher_objective(), epochs=3, lr=1e-2)
    student = train_steps(TinyCNN(), mnist[0], recipe.student_objective(teacher), epochs=3, lr=1e-2)
    return teacher, student


def test_temperature_objectives_match_their_formulas(test_batch, trained_cnn) -> None:
    x, y = test_batch[0][:32], test_batch[1][:32]
    student = TinyCNN()
    logits, teacher_logits = student(x), trained_cnn(x)
    torch.testing.assert_close(TemperatureCrossEntropy(temperature=4.0)(student, x, y),
                               F.cross_entropy(logits / 4.0, y))
    soft = F.softmax(teacher_logits / 4.0, dim=-1)
    expected = -(soft * F.log_softmax(logits / 4.0, dim=-1)).sum(dim=-1).mean()
    torch.testing.assert_close(SoftLabelDistillation(teacher=trained_cnn, temperature=4.0)(student, x, y), expected)
    torch.testing.assert_close(TemperatureScaled(student, 4.0)(x), logits / 4.0)


def test_the_van_everdingen_variant_trains_the_teacher_at_t1_and_the_student_at_t4(trained_cnn) -> None:
    recipe = DefensiveDistillation.van_everdingen()
    assert recipe.teacher_objective().temperature == 1.0
    assert recipe.student_objective(trained_cnn).temperature == 4.0
    assert DefensiveDistillation(temperature=100).teacher_objective().temperature == 100
    assert recipe.describe() == {"name": "distillation", "temperature": 4.0, "teacher_temperature": 1.0}
    with pytest.raises(InputError, match="temperature"):
        DefensiveDistillation(temperature=0)


def test_distilled_student_at_t1_hides_gradients_that_logits_over_t_reveal(distilled, trained_cnn,
                                                                            test_batch) -> None:
    fgsm = importlib.import_module("advlab.attacks.fgsm").FGSM(eps=0.2)
    _, student = distilled
    x, y = test_batch
    assert accuracy(student, x, y) > 0.85
    correct = student(x).argmax(dim=-1) == y
    x, y = x[correct], y[correct]
    vanished = (input_gradient_max(student, x, y) < 1e-6).float().mean()
    vanished_plain = (input_gradient_max(trained_cnn, x, y) < 1e-6).float().mean()
    vanished_scaled = (input_gradient_max(TemperatureScaled(student, TEMPERATURE), x, y) < 1e-6).float().mean()
    through_t1 = fgsm(student, x, y).success.float().mean()
    through_scaled = fgsm(TemperatureScaled(student, TEMPERATURE), x, y)
    transferred = (student(through_scaled.adv).argmax(dim=-1) != y).float().mean()  # judged at T = 1
    print(f"vanished grads: student@T=1 {vanished:.2f}, plain {vanished_plain:.2f}, student@T {vanished_scaled:.2f};"
          f" FGSM success via T=1 {through_t1:.2f}, via logits/T {transferred:.2f}")
    assert vanished > 0.5 and vanished_plain < 0.1 and vanished_scaled < 0.1
    assert transferred > through_t1 + 0.3


def test_recipe_runs_both_stages_with_fit_and_records_them_in_the_cards(mnist, tmp_path) -> None:
    train_module = importlib.import_module("advlab.train")
    config = train_module.TrainConfig(epochs=3, batch_size=64, optimizer="adam", lr=1e-2)
    recipe = DefensiveDistillation.van_everdingen()
    teacher_run, student_run = train_distillation(recipe, TinyCNN(), TinyCNN(), mnist[0].subset(1000), config=config,
                                                  quiet=True, device="cpu", out_dir=tmp_path, val_set=mnist[1])
    assert teacher_run.card["objective"] == {"name": "temperature_cross_entropy", "temperature": 1.0}
    assert student_run.card["objective"] == {"name": "soft_label_distillation", "temperature": 4.0}
    assert student_run.card["defense"] == recipe.describe()
    for stage in ("teacher", "student"):
        assert (tmp_path / stage / "last.safetensors").is_file()
    print(f"val acc teacher {teacher_run.final['val_acc']:.3f}, student {student_run.final['val_acc']:.3f}")
    assert student_run.final["val_acc"] > 0.75  # learned from the soft labels alone
