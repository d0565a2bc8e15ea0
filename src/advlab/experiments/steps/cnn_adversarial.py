"""van Everdingen, "CNNs and adversarial examples" (CIFAR-10, ``cifar_cnn``): FGSM at ε = 0.01 on test images.

Steps:
    Table 1: baseline CNN: clean accuracy, accuracy under FGSM (ε = 0.01) and under random-sign noise of the
        same size (ε·R, R ∈ {−1, +1}^d).
    Table 2: retraining with random-sign noise (``random_sign_training``) and with FGSM examples regenerated once
        per epoch against a snapshot of the model (``per_epoch_adversarial``): clean and FGSM accuracy.
    Table 3: defensive distillation at T = 50 (teacher and student at T), deployed at T = 1. FGSM on the T = 1
        model sees a saturated softmax (gradient masking); the sanity checks flag it, and FGSM through the model
        at T = 50 (logits / T; same predictions) exposes the real robustness.
    Table 4: the T = 4 variant (teacher at T = 1, soft labels and student at T = 4), same measurements.
    Final: the per-epoch adversarially trained model behind random-sign input noise (one draw per pass),
        attacked with FGSM using EOT gradients and averaged over trials (advlab's evaluation of random models).
"""

from __future__ import annotations

import torch

from advlab.attacks import FGSM, RandomSign
from advlab.defenses.distillation import DefensiveDistillation, TemperatureScaled
from advlab.defenses.noise import InputNoise
from advlab.defenses.registry import create_defense
from advlab.evaluate import check_saturated_softmax, check_zero_gradients
from advlab.evaluate.gradient_norms import input_gradient_norms
from advlab.experiments.runner import (
    ExperimentContext,
    Measurement,
    register_experiment,
)
from advlab.experiments.steps.common import (
    attack_accuracy,
    clean_accuracy,
    load_split,
    train_config,
    train_model,
)
from advlab.models.registry import create_model

# A distilled student's input gradient counts as vanished below this fraction of the baseline CNN's median norm: a
# softmax saturated at T = 1 leaves gradients many orders of magnitude smaller, not merely somewhat smaller.
VANISHING_FRACTION = 1e-3


@register_experiment("cnn_adversarial", paper="van Everdingen, CNNs and adversarial examples")
def cnn_adversarial(ctx: ExperimentContext) -> list[Measurement]:
    s = ctx.settings
    eps, seed = float(s["eps"]), int(s.get("seed", 0))
    model_kwargs = {"dropout": float(s.get("dropout", 0.25))}
    train_set, test_set = load_split(ctx, "train", "n_train"), load_split(ctx, "test", "n_test")
    fgsm = FGSM(eps=eps)
    out: list[Measurement] = []

    def clean_and_fgsm(key: str, table: str, name: str, model: object) -> None:
        out.append(Measurement(f"{key}.clean_acc", table, f"{name}: clean accuracy",
                               clean_accuracy(ctx, model, test_set)))
        out.append(Measurement(f"{key}.fgsm_acc", table, f"{name}: accuracy under FGSM ε = {eps:g}",
                               attack_accuracy(ctx, model, test_set, fgsm)))

    baseline = train_model(ctx, "cifar_cnn", train_set, label="baseline", model_kwargs=model_kwargs)
    clean_and_fgsm("baseline", "Table 1", "baseline CNN", baseline)
    out.append(Measurement("baseline.random_sign_acc", "Table 1",
                           f"baseline CNN: accuracy under random-sign noise ε = {eps:g}",
                           attack_accuracy(ctx, baseline, test_set, RandomSign(eps=eps, seed=seed))))

    noise_trained = train_model(ctx, "cifar_cnn", train_set, label="random-sign training", model_kwargs=model_kwargs,
                                objective=create_defense("random_sign_training", scale=eps))
    clean_and_fgsm("random_sign_training", "Table 2", "random-sign noise training", noise_trained)
    per_epoch = train_model(ctx, "cifar_cnn", train_set, label="per-epoch adversarial training",
                            model_kwargs=model_kwargs, objective=create_defense("per_epoch_adversarial", eps=eps))
    clean_and_fgsm("per_epoch_adversarial", "Table 2", "per-epoch adversarial training", per_epoch)

    x_check, y_check = _check_batch(test_set, int(s.get("check_images", 256)), ctx)
    baseline_median = _median_gradient_norm(baseline, x_check, y_check)
    out.append(Measurement("baseline.median_gradient_l2", "Table 3",
                           "baseline CNN: median ‖∇ₓ CE‖₂ over the check images", baseline_median, "norm"))
    for table, key, recipe in (("Table 3", "distillation_t50", DefensiveDistillation(temperature=50.0)),
                               ("Table 4", "distillation_t4", DefensiveDistillation.van_everdingen())):
        teacher = create_model("cifar_cnn", **model_kwargs)
        student = create_model("cifar_cnn", **model_kwargs)
        ctx.log(f"defensive distillation {recipe.describe()}")
        _, student_run = recipe.run(teacher, student, train_set, config=train_config(s, ctx.device),
                                    quiet=ctx.quiet, device=ctx.device)
        student = student_run.model.eval()
        t = recipe.temperature
        clean_and_fgsm(key, table, f"distilled (T = {t:g}) at T = 1", student)
        out.append(Measurement(f"{key}.fgsm_acc_at_T", table,
                               f"distilled (T = {t:g}): accuracy under FGSM through logits / {t:g} (unmasked)",
                               _fgsm_through_temperature(ctx, student, test_set, fgsm, t)))
        saturated = check_saturated_softmax(student, x_check)
        zero = check_zero_gradients(student, x_check, y_check)
        out.append(Measurement(f"{key}.zero_gradient_share", table,
                               f"distilled (T = {t:g}) at T = 1: share of images with an exactly zero input gradient",
                               float(zero.values["zero_gradient_fraction"]), "share"))
        norms = _gradient_norms(student, x_check, y_check)
        out.append(Measurement(f"{key}.vanishing_gradient_share", table,
                               f"distilled (T = {t:g}) at T = 1: share of images with ‖∇ₓ CE‖₂ below "
                               f"{VANISHING_FRACTION:g} × the baseline's median",
                               float((norms < VANISHING_FRACTION * baseline_median).float().mean()), "share"))
        out.append(Measurement(f"{key}.median_gradient_l2", table,
                               f"distilled (T = {t:g}) at T = 1: median ‖∇ₓ CE‖₂ over the check images",
                               float(norms.median()), "norm"))
        out.append(Measurement(f"{key}.median_gradient_l2_at_T", table,
                               f"distilled (T = {t:g}): median ‖∇ₓ CE‖₂ through logits / {t:g}",
                               _median_gradient_norm(TemperatureScaled(student, t), x_check, y_check), "norm"))
        out.append(Measurement(f"{key}.saturated_share", table,
                               f"distilled (T = {t:g}) at T = 1: share of images whose softmax rounds to exactly 1",
                               float(saturated.values["saturated_fraction"]), "share"))
        out.append(Measurement(f"{key}.checks_flag_masking", table,
                               f"distilled (T = {t:g}) at T = 1: sanity checks flag gradient masking (1 = yes)",
                               float(saturated.warned or zero.warned), "flag"))

    noisy = InputNoise(per_epoch, kind="random_sign", scale=float(s["input_noise_scale"]), votes=1)
    out.append(Measurement("final.input_noise.clean_acc", "Final model",
                           "per-epoch adversarial model + random-sign input noise: clean accuracy (one draw)",
                           clean_accuracy(ctx, noisy, test_set)))
    out.append(Measurement("final.input_noise.fgsm_acc", "Final model",
                           f"per-epoch adversarial model + random-sign input noise: accuracy under EOT-FGSM "
                           f"ε = {eps:g}", attack_accuracy(ctx, noisy, test_set, fgsm)))
    return out


def _fgsm_through_temperature(ctx: ExperimentContext, student: object, test_set: object, fgsm: FGSM,
                              temperature: float) -> float:
    """FGSM crafted on logits / T, scored on the deployed T = 1 model (same argmax, so the same accuracy)."""
    return attack_accuracy(ctx, TemperatureScaled(student, temperature), test_set, fgsm)


def _gradient_norms(model: object, x: object, y: object) -> torch.Tensor:
    """Per-image L2 norm of the input gradient of the cross-entropy, (N,) ([0, 1] pixel units)."""
    return input_gradient_norms(model, (x, y), norm="l2").norms


def _median_gradient_norm(model: object, x: object, y: object) -> float:
    return float(_gradient_norms(model, x, y).median())


def _check_batch(test_set: object, n: int, ctx: ExperimentContext) -> tuple[object, object]:
    images, labels = test_set.images[:n], test_set.labels[:n]
    return images.float().div(255.0).to(ctx.device), labels.to(ctx.device)
