"""Defensive distillation: a student trained on a teacher's softened labels at a high softmax temperature.

Paper: Papernot, McDaniel, Wu, Jha, Swami, "Distillation as a defense to adversarial perturbations against deep
neural networks" (2016, arXiv:1511.04508). Threat model: any; the defense changes training only.

Recipe (Papernot): train the teacher on hard labels with softmax(z/T); compute soft labels softmax(z_teacher/T)
on the training set; train the student (same architecture) on them at the same T; deploy the student at T = 1,
i.e. use its logits unchanged. The variant of "CNNs and adversarial examples" (van Everdingen, §7.2) trains the
teacher at T = 1 and only raises it to T = 4 to produce the soft labels; the student is trained at T = 4. In that
paper both teachers are trained adversarially
(:func:`advlab.training.two_stage.train_distillation` with ``teacher_objective=...``).

Why it "works" and why that is gradient masking (Carlini & Wagner 2016, arXiv:1607.04311): a student trained at
temperature T learns logits about T times larger than a normally trained network. At T = 1 its softmax saturates:
the probability of the predicted class rounds to 1 in float32, so the cross-entropy's input gradient is (nearly)
exactly zero and gradient attacks such as FGSM get no signal. Attacking ``TemperatureScaled(student, T)`` (logits
/ T) or using a margin loss on the logits restores the gradient, and the adversarial examples transfer to the T = 1
model, whose predictions are the same (argmax is scale invariant). Evaluate distilled models that way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from advlab.attacks.base import frozen_eval
from advlab.defenses.registry import register_defense
from advlab.errors import InputError
from advlab.objectives import ObjectiveBase


def check_temperature(temperature: float) -> None:
    if not isinstance(temperature, (int, float)) or math.isnan(temperature) or temperature <= 0:
        raise InputError(f"the softmax temperature must be a number > 0 (e.g. 1, 4, 100), got {temperature!r}")


class TemperatureScaled(nn.Module):
    """``model(x) / T``: the model evaluated "at temperature T". Shapes: (N, C, H, W) -> (N, num_classes).

    Example::

        attackable = TemperatureScaled(student, 100.0)   # un-saturates the softmax of a distilled student
    """

    def __init__(self, model: nn.Module, temperature: float) -> None:
        super().__init__()
        check_temperature(temperature)
        self.model = model
        self.temperature = float(temperature)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x) / self.temperature

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}"


@dataclass(kw_only=True)
class TemperatureCrossEntropy(ObjectiveBase):
    """Objective ``CE(softmax(model(x) / T), y)``: the teacher of defensive distillation, trained at T.

    Example::

        fit(teacher, train_set, config=config, objective=TemperatureCrossEntropy(temperature=100))
    """

    name: ClassVar[str] = "temperature_cross_entropy"
    temperature: float = 1.0

    def __post_init__(self) -> None:
        check_temperature(self.temperature)

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(model(x) / self.temperature, y)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "temperature": self.temperature}


def soft_labels(teacher: nn.Module, x: torch.Tensor, temperature: float) -> torch.Tensor:
    """``softmax(teacher(x) / T)``, (N, num_classes), computed in eval mode without gradients (mode restored)."""
    with frozen_eval(teacher), torch.no_grad():
        return F.softmax(teacher(x) / temperature, dim=-1)


@dataclass(kw_only=True)
class SoftLabelDistillation(ObjectiveBase):
    """Objective ``−Σ_k p_k(teacher, T) · log softmax(student(x) / T)_k``: the student of defensive distillation.

    The soft labels are computed per batch from the frozen teacher (eval mode); the teacher is fixed, so this is
    the same as precomputing them once, and it stays right under data augmentation. The true labels are unused.
    No T² factor (Hinton et al. use one to mix with a hard-label loss; Papernot trains on soft labels only).

    Args: teacher: trained teacher model; temperature: T used for both the soft labels and the student.
    """

    name: ClassVar[str] = "soft_label_distillation"
    teacher: nn.Module
    temperature: float = 100.0

    def __post_init__(self) -> None:
        check_temperature(self.temperature)

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        targets = soft_labels(self.teacher, x, self.temperature)
        log_probs = F.log_softmax(model(x) / self.temperature, dim=-1)
        return -(targets * log_probs).sum(dim=-1).mean()

    def describe(self) -> dict[str, Any]:
        # The teacher is a model, not a setting: the card of the teacher's own checkpoint describes it.
        return {"name": self.name, "temperature": self.temperature}


@register_defense("distillation", stochastic=False,
                  paper="Papernot et al. 2016 (arXiv:1511.04508); van Everdingen's T=1 -> T=4 variant",
                  summary="teacher at T, student on soft labels at T, deployed at T = 1 (masks gradients)")
@dataclass(frozen=True, kw_only=True)
class DefensiveDistillation:
    """The two-stage recipe, registered as ``distillation``; the deployed student is the model itself (T = 1).

    A :class:`~advlab.defenses.base.TwoStageRecipe`: :mod:`advlab.training.two_stage` trains the teacher with
    :meth:`teacher_objective`, then the student with :meth:`student_objective`.

    Args:
        temperature: T of the soft labels and of the student's training (Papernot: 100 on MNIST/CIFAR-10;
            the van Everdingen variant: 4).
        teacher_temperature: T at which the teacher is trained; None means ``temperature`` (Papernot). The
            variant of "CNNs and adversarial examples" is ``teacher_temperature=1, temperature=4``.

    Example::

        recipe = DefensiveDistillation(temperature=100)
        teacher_run, student_run = train_distillation(recipe, teacher, student, train_set, config=config)

    (``train_distillation`` from :mod:`advlab.training.two_stage`, where training lives.)
    """

    name: ClassVar[str] = "distillation"
    stochastic: ClassVar[bool] = False

    temperature: float = 100.0
    teacher_temperature: float | None = None

    def __post_init__(self) -> None:
        check_temperature(self.temperature)
        if self.teacher_temperature is not None:
            check_temperature(self.teacher_temperature)

    @classmethod
    def van_everdingen(cls) -> DefensiveDistillation:
        """Teacher trained at T = 1, raised to T = 4 for the soft labels; student trained at T = 4."""
        return cls(temperature=4.0, teacher_temperature=1.0)

    def teacher_objective(self) -> TemperatureCrossEntropy:
        return TemperatureCrossEntropy(temperature=self.teacher_temperature_used)

    def student_objective(self, teacher: nn.Module) -> SoftLabelDistillation:
        return SoftLabelDistillation(teacher=teacher, temperature=self.temperature)

    def deployed_model(self, model: nn.Module) -> nn.Module:
        """Deployment at T = 1: the student (``model``, the teacher's architecture) with its logits unchanged (wrap
        it in :class:`TemperatureScaled` to attack it)."""
        return model

    @property
    def teacher_temperature_used(self) -> float:
        """The T the teacher is trained at: ``teacher_temperature``, or ``temperature`` when that is None."""
        return self.temperature if self.teacher_temperature is None else self.teacher_temperature

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "temperature": self.temperature, "teacher_temperature": self.teacher_temperature}
