"""The two-stage defenses, trained with the one ``fit`` loop: defensive distillation and the denoising purifier.

The defenses themselves (:mod:`advlab.defenses.distillation`, :mod:`advlab.defenses.denoiser`) only define their
objectives and how the deployed model is put together; training them lives here, with the loop, so no defense
module imports the training layer.

* :func:`train_distillation`: teacher at its temperature, then a student on its soft labels (Papernot et al.
  2016, arXiv:1511.04508; van Everdingen's T = 1 -> 4 variant with adversarially trained teachers);
* :func:`train_teacher` / :func:`train_student`: either stage alone (a student of an already trained teacher);
* :func:`train_denoiser`: an autoencoder on (attacked, clean) pairs against a fixed classifier (Wang, Kunin,
  Pyron's perturbation filter);
* :func:`train_two_stage`: what ``advlab train --defense distillation|denoiser`` runs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import nn

from advlab.data.dataset import ImageDataset
from advlab.defenses.denoiser import DenoiserDefense, DenoisingObjective, purification_hook
from advlab.defenses.distillation import DefensiveDistillation, TemperatureScaled
from advlab.errors import InputError
from advlab.models.checkpoint import save_checkpoint
from advlab.objectives import TrainingObjective
from advlab.training.config import TrainConfig
from advlab.training.loop import TrainResult, fit

if TYPE_CHECKING:
    from advlab.attacks.base import Attack
    from advlab.training.recipe import DefenseSetup


def train_distillation(recipe: DefensiveDistillation, teacher: nn.Module, student: nn.Module,
                       train_set: ImageDataset, *, config: TrainConfig, teacher_config: TrainConfig | None = None,
                       teacher_objective: TrainingObjective | None = None, teacher_set: ImageDataset | None = None,
                       **fit_kwargs: Any) -> tuple[TrainResult, TrainResult]:
    """Train the teacher, then the student, with ``fit``; returns both ``TrainResult`` s.

    ``teacher_objective`` replaces the teacher's plain ``CE(z / T)``: any training objective (e.g.
    ``PerEpochAdversarialTraining(eps=0.01)`` for van Everdingen's adversarially trained teachers, §7) is run on
    ``TemperatureScaled(teacher, T_teacher)``, so its cross-entropies are taken at the teacher's temperature and
    its attack differentiates the teacher's softmax at that temperature. ``teacher_set`` trains the teacher on
    another set (e.g. :func:`~advlab.defenses.noise.with_random_sign_set`); the student always learns on
    ``train_set``. ``fit_kwargs`` (val_set, device, quiet, ...) go to both runs; an ``out_dir`` gets ``teacher/``
    and ``student/`` subfolders. The student's card records the recipe under ``card_extra["defense"]``.
    """
    out_dir = fit_kwargs.pop("out_dir", None)
    extra = dict(fit_kwargs.pop("card_extra", None) or {})
    teacher_run = train_teacher(recipe, teacher, teacher_set if teacher_set is not None else train_set,
                                config=teacher_config or config, objective=teacher_objective,
                                out_dir=None if out_dir is None else Path(out_dir) / "teacher", card_extra=extra,
                                **fit_kwargs)
    student_run = train_student(recipe, teacher, student, train_set, config=config,
                                out_dir=None if out_dir is None else Path(out_dir) / "student", card_extra=extra,
                                **fit_kwargs)
    return teacher_run, student_run


def train_teacher(recipe: DefensiveDistillation, teacher: nn.Module, train_set: ImageDataset, *, config: TrainConfig,
                  objective: TrainingObjective | None = None, **fit_kwargs: Any) -> TrainResult:
    """The first stage: ``teacher`` trained at the recipe's teacher temperature, in place.

    Without ``objective`` the loss is ``CE(z / T)``; with one (e.g. an adversarial-training objective) it runs on
    ``TemperatureScaled(teacher, T)``, so its cross-entropies and its attack see the teacher's softmax at T.
    """
    extra = dict(fit_kwargs.pop("card_extra", None) or {})
    trained: nn.Module = teacher
    loss: TrainingObjective = recipe.teacher_objective()
    if objective is not None:
        trained, loss = TemperatureScaled(teacher, recipe.teacher_temperature_used), objective
    return fit(trained, train_set, config=config, objective=loss,
               card_extra={**extra, "role": "distillation teacher"}, **fit_kwargs)


def train_student(recipe: DefensiveDistillation, teacher: nn.Module, student: nn.Module, train_set: ImageDataset,
                  *, config: TrainConfig, **fit_kwargs: Any) -> TrainResult:
    """Train ``student`` at the recipe's temperature on the soft labels of an already trained ``teacher`` (any
    network with the student's classes; van Everdingen's final model uses the Random AT model, §8).

    The teacher is only read (eval mode, no gradients). Returns the student's ``TrainResult``.
    """
    extra = dict(fit_kwargs.pop("card_extra", None) or {})
    return fit(student, train_set, config=config, objective=recipe.student_objective(teacher),
               card_extra={**extra, "role": "distillation student", "defense": recipe.describe()}, **fit_kwargs)


def train_denoiser(denoiser: nn.Module, classifier: nn.Module, train_set: ImageDataset, *, attack: Attack,
                   config: TrainConfig, clean_weight: float = 0.0, val_set: ImageDataset | None = None,
                   **fit_kwargs: Any) -> TrainResult:
    """Train ``denoiser`` with the one ``fit`` on (attack(classifier, x), x) pairs.

    ``fit`` drives an image-to-image model without change: its training-accuracy probe only reads (N, classes)
    outputs, so the denoiser's images are ignored. Its label-based validation (cross-entropy and accuracy of the
    trained model) does not apply, so ``val_set`` goes to :func:`~advlab.defenses.denoiser.purification_hook`
    instead (metrics ``purify_loss``, ``purify_fixed_share``; set ``config.best_metric="purify_loss"`` to keep the
    best epoch). ``fit_kwargs`` (out_dir, quiet, device, card_extra, ...) go to ``fit``.

    Example::

        run = train_denoiser(ConvDenoiser(1), classifier, train, attack=FGSM(eps=0.1),
                             config=TrainConfig(epochs=5, optimizer="adam", lr=1e-3), quiet=True)
    """
    hook = fit_kwargs.pop("eval_hook", None)
    if val_set is not None:
        if hook is not None:
            raise InputError("give either val_set (purification metrics) or eval_hook, not both")
        hook = purification_hook(classifier, val_set, attack)
    objective = DenoisingObjective(classifier=classifier, attack=attack, clean_weight=clean_weight)
    return fit(denoiser, train_set, config=config, objective=objective, eval_hook=hook, **fit_kwargs)


def train_two_stage(setup: DefenseSetup, first: nn.Module, fresh_model: Callable[[], nn.Module],
                    train_set: ImageDataset, *, config: TrainConfig, out_dir: Path, card_extra: dict[str, Any],
                    **fit_kwargs: Any) -> TrainResult:
    """The two-stage recipes of ``advlab train``, each leaving the deployable model in ``out_dir/last.safetensors``.

    * ``distillation``: the teacher trains in ``out_dir/teacher`` (at its temperature; with ``setup.objective``
      when given, e.g. adversarially as van Everdingen's teachers), then a fresh student on its soft labels in
      ``out_dir``.
    * ``denoiser``: the classifier trains in ``out_dir/classifier`` (with ``setup.objective`` when given), then
      the denoiser on (attacked, clean) pairs against it in ``out_dir/denoiser``; the purified model
      ``classifier(denoiser(x))`` is saved in ``out_dir`` with its test accuracy.

    ``first`` is the first stage's network; ``fresh_model()`` builds the student (same architecture/transforms).
    """
    recipe, resume = setup.recipe, fit_kwargs.pop("resume", False)
    eval_hook = fit_kwargs.pop("eval_hook", None)
    if isinstance(recipe, DefensiveDistillation):
        train_teacher(recipe, first, train_set, config=config, objective=setup.objective,
                      out_dir=out_dir / "teacher", resume=resume, card_extra=card_extra, **fit_kwargs)
        return train_student(recipe, first.eval(), fresh_model(), train_set, config=config, out_dir=out_dir,
                             resume=resume, card_extra=card_extra, eval_hook=eval_hook, **fit_kwargs)
    if isinstance(recipe, DenoiserDefense):
        classifier = fit(first, train_set, config=config, objective=setup.objective,
                         out_dir=out_dir / "classifier", resume=resume, eval_hook=eval_hook,
                         card_extra={**card_extra, "role": "denoiser's classifier"}, **fit_kwargs).model
        channels = int(train_set.image_shape[0])
        if recipe.channels != channels:
            raise InputError(f"the denoiser is set for {recipe.channels}-channel images but the data have "
                             f"{channels}; pass --defense-arg channels={channels}")
        run = train_denoiser(recipe.build(), classifier, train_set, attack=recipe.make_attack(), config=config,
                             clean_weight=recipe.clean_weight, out_dir=out_dir / "denoiser", resume=resume,
                             card_extra={**card_extra, "role": "denoiser"}, **fit_kwargs)
        purified = recipe.purified(classifier, run.model)
        metrics = eval_hook(purified, config.epochs) if eval_hook is not None else {}
        last = out_dir / "last.safetensors"
        card = save_checkpoint(last, purified, {**card_extra, "metrics": metrics, "role": "purified classifier"})
        return TrainResult(model=purified.eval(), history=[{"epoch": config.epochs, **metrics}], best=None,
                           card=card, last_checkpoint=last, config=config)
    raise InputError(f"no two-stage training for {type(recipe).__name__}")
