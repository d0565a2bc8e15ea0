"""van Everdingen, "Convolutional neural networks and adversarial examples" (CIFAR-10, ``cifar_cnn``), FGSM ε = 0.01.

Steps, in the paper's order (every network is ``cifar_cnn``, Table 1, trained with the preset's recipe):
    Table 1: the parameter count as Keras reports it (trainable parameters + batch-norm running mean/var).
    §5: the baseline: clean accuracy, accuracy on its FGSM set (Eq. 1) and on a random-sign set (Eq. 2).
    Table 2: Random Adversarial Training (one random-sign set drawn before training and added to the training set;
        ``random_at_draw = "per_batch"`` draws afresh every batch instead) and Per Epoch Adversarial Training
        (an FGSM set regenerated every epoch).
    Fig. 4: per-image input-gradient L2 norms of those three networks, correct and incorrect images apart; and
        §7.1's remark that the Random AT network at T = 0.01 has many zero gradients.
    Table 3: defensive distillation at T = 50 with an adversarially trained teacher: teacher at T = 50, student
        at T = 50 and at T = 1, and (§7.1 text) the T = 1 student on the T = 50 student's FGSM set. Fig. 5's
        gradient norms, and how concentrated the teacher's T = 50 soft labels are (§7.1's example output).
    Table 4: the variant (adversarially trained teacher at T = 1, soft labels at T = 4, student at T = 4); Fig. 6.
    §8: the final model: the Random AT network as teacher of a T = 4 variant student, then Eq. 2 noise added to
        its inputs. §9: the Random AT network with the same input noise.

Protocol: as the paper, one FGSM set per tested network, from that network's own gradients (a network "at T" is
``logits / T``), on every test image whether or not it was classified correctly. The noisy models are scored as the
paper does (one noise draw per pass, FGSM through the noisy model) and, as extension rows, with advlab's protocol
for randomized models (EOT-FGSM, mean ± std over repeated trials).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from advlab.attacks import FGSM, RandomSign
from advlab.attacks.base import frozen_eval
from advlab.data.dataset import ImageDataset
from advlab.defenses.adversarial_training import PerEpochAdversarialTraining
from advlab.defenses.distillation import DefensiveDistillation, TemperatureScaled, soft_labels
from advlab.defenses.noise import InputNoise, RandomSignNoiseTraining, with_random_sign_set
from advlab.evaluate import check_saturated_softmax, check_zero_gradients, evaluate_attack
from advlab.evaluate.checks import CheckResult
from advlab.evaluate.gradient_norms import GradientNorms, input_gradient_norms
from advlab.experiments.runner import ExperimentContext, Measurement, register_experiment
from advlab.experiments.steps.common import (
    attack_accuracy,
    clean_accuracy,
    load_split,
    new_figure,
    save_figure,
    train_model,
)
from advlab.models.registry import count_parameters, create_model
from advlab.objectives import CrossEntropy
from advlab.seed import seed_everything

# A distilled student's input gradient counts as vanished below this fraction of the baseline CNN's median norm: a
# softmax saturated at T = 1 leaves gradients many orders of magnitude smaller, not merely somewhat smaller.
VANISHING_FRACTION = 1e-3
EOT_SAMPLES = 10  # noise draws averaged per EOT gradient (advlab's default)
RANDOM_AT_DRAWS = ("fixed_set", "per_batch")
TEACHER_TRAININGS = ("per_epoch_adversarial", "random_sign_set", "none")


@register_experiment("cnn_adversarial", paper="van Everdingen, CNNs and adversarial examples")
def cnn_adversarial(ctx: ExperimentContext) -> list[Measurement]:
    s = ctx.settings
    eps = float(s["eps"])
    run = _Run(ctx, eps, load_split(ctx, "train", "n_train"), load_split(ctx, "test", "n_test"))

    run.add("cifar_cnn.params", "Table 1", "cifar_cnn: parameters as Keras counts them (trainable + BN mean/var)",
            float(keras_parameter_count(run.new_model())), "params")

    baseline = run.train("baseline")
    run.clean_and_fgsm("baseline", "§5 text", "baseline", baseline)
    run.add("baseline.random_sign_acc", "§5 text", f"baseline: accuracy on its random-sign set (Eq. 2, ε = {eps:g})",
            attack_accuracy(ctx, baseline, run.test_set, RandomSign(eps=eps, seed=run.seed)))

    random_at = run.train_random_at()
    run.clean_and_fgsm("random_sign_training", "Table 2", "Random Adversarial Training", random_at)
    per_epoch = run.train("per-epoch adversarial training", objective=PerEpochAdversarialTraining(eps=eps))
    run.per_epoch_network = per_epoch
    run.clean_and_fgsm("per_epoch_adversarial", "Table 2", "Per Epoch Adversarial Training", per_epoch)

    baseline_norms = run.gradient_norms(baseline)
    run.figure("fig4_gradient_norms.png", "Fig. 4: ‖∇ₓ J‖₂ per test image (red: correct, blue: incorrect)",
               [("baseline", baseline_norms), ("Random AT", run.gradient_norms(random_at)),
                ("Per Epoch AT", run.gradient_norms(per_epoch))])
    for key, name, model in (("baseline", "baseline", baseline), ("random_sign_training", "Random AT", random_at),
                             ("per_epoch_adversarial", "Per Epoch AT", per_epoch)):
        run.median_norms(key, "Fig. 4", name, run.gradient_norms(model) if key != "baseline" else baseline_norms)
    cold = TemperatureScaled(random_at, 0.01)
    run.add("random_sign_training.t0.01.zero_gradient_share", "§7.1 text",
            "Random AT at T = 0.01: share of check images with an exactly zero input gradient",
            _zero_gradient_share(cold, run.x_check, run.y_check), "share")
    run.add("random_sign_training.zero_gradient_share", "extension (§7.1 control)",
            "Random AT at T = 1: share of check images with an exactly zero input gradient",
            _zero_gradient_share(random_at, run.x_check, run.y_check), "share")

    baseline_median = float(baseline_norms.norms.median())
    run.distillation("distillation_t50", "Table 3", "Fig. 5", DefensiveDistillation(temperature=50.0), baseline_median)
    run.distillation("distillation_t4", "Table 4", "Fig. 6", DefensiveDistillation.van_everdingen(), baseline_median)

    final = DefensiveDistillation.van_everdingen()
    student = run.train("final student (Random AT teacher, T = 4)", objective=final.student_objective(random_at))
    deployed = TemperatureScaled(student, final.temperature)  # the variant's student is used at its T (§7.2)
    run.add("final.student.clean_acc", "§8 text", "final student (Random AT teacher, T = 4): clean accuracy",
            clean_accuracy(ctx, deployed, run.test_set))
    run.add("final.student.fgsm_acc", "§8 text",
            f"final student at T = 4: accuracy on its FGSM set (ε = {eps:g})",
            attack_accuracy(ctx, deployed, run.test_set, run.fgsm))
    run.input_noise("final", "§8 text", "final student at T = 4", deployed)
    run.input_noise("random_sign_training", "§9 text", "Random AT", random_at)
    return run.out


def keras_parameter_count(model: nn.Module) -> int:
    """Parameters as Keras' ``model.summary()`` counts them: every weight plus batch-norm running mean and var.

    Keras lists BN's moving mean/variance as (non-trainable) parameters; torch keeps them as buffers, and its
    ``num_batches_tracked`` counter has no Keras counterpart.
    """
    weights = count_parameters(model, trainable_only=False)
    statistics = sum(m.running_mean.numel() + m.running_var.numel() for m in model.modules()
                     if isinstance(m, nn.modules.batchnorm._BatchNorm)
                     and m.running_mean is not None and m.running_var is not None)
    return int(weights + statistics)


class _Run:
    """The state every step shares: settings, data, the FGSM attack, the check images and the measurements."""

    def __init__(self, ctx: ExperimentContext, eps: float, train_set: ImageDataset, test_set: ImageDataset) -> None:
        s = ctx.settings
        self.ctx, self.eps, self.seed = ctx, eps, int(s.get("seed", 0))
        self.train_set, self.test_set = train_set, test_set
        self.model_kwargs = {"dropout": float(s.get("dropout", 0.25)),
                             "normalization": str(s.get("normalization", "none"))}
        self.fgsm = FGSM(eps=eps)
        n_check = int(s.get("check_images", 256))
        self.x_check = test_set.images[:n_check].float().div(255.0).to(ctx.device)
        self.y_check = test_set.labels[:n_check].to(ctx.device)
        self.x_train_check = train_set.images[:n_check].float().div(255.0).to(ctx.device)
        self.out: list[Measurement] = []
        # Table 2's Per Epoch AT network: Table 4's teacher (per-epoch adversarial training at T = 1) is the same
        # recipe from the same seed, so it is reused rather than trained twice.
        self.per_epoch_network: nn.Module | None = None

    # --- building blocks --------------------------------------------------------------------------------------

    def add(self, key: str, table: str, label: str, value: float, unit: str = "accuracy",
            std: float | None = None) -> None:
        self.out.append(Measurement(key, table, label, float(value), unit, std=std))

    def new_model(self) -> nn.Module:
        """A fresh cifar_cnn from the preset's seed: every network starts from the same weights, in every run."""
        seed_everything(self.seed)
        return create_model("cifar_cnn", **self.model_kwargs)

    def train(self, label: str, *, objective: Any = None, data: ImageDataset | None = None,
              model: nn.Module | None = None) -> nn.Module:
        return train_model(self.ctx, "cifar_cnn", data if data is not None else self.train_set, label=label,
                           objective=objective, model=model if model is not None else self.new_model())

    def train_random_at(self) -> nn.Module:
        """Table 2's Random AT: the paper's one pre-drawn random-sign set (default) or a fresh draw per batch."""
        draw = str(self.ctx.settings.get("random_at_draw", "fixed_set"))
        if draw not in RANDOM_AT_DRAWS:
            raise ValueError(f"random_at_draw must be one of {RANDOM_AT_DRAWS}, got {draw!r}")
        if draw == "per_batch":
            return self.train("Random AT (fresh random-sign draw per batch)",
                              objective=RandomSignNoiseTraining(scale=self.eps))
        return self.train("Random AT (one random-sign set drawn before training)",
                          data=with_random_sign_set(self.train_set, self.eps, seed=self.seed))

    def train_teacher(self, temperature: float, label: str) -> nn.Module:
        """A distillation teacher at ``temperature``, trained adversarially (§7: "trained adversarially"; which
        adversarial training the paper does not say: ``teacher_training``, our choice)."""
        kind = str(self.ctx.settings.get("teacher_training", "per_epoch_adversarial"))
        if kind not in TEACHER_TRAININGS:
            raise ValueError(f"teacher_training must be one of {TEACHER_TRAININGS}, got {kind!r}")
        if temperature == 1.0 and kind == "per_epoch_adversarial" and self.per_epoch_network is not None:
            self.ctx.log(f"{label}: Table 2's Per Epoch AT network (the same recipe and seed), not trained again")
            return self.per_epoch_network
        data = with_random_sign_set(self.train_set, self.eps, seed=self.seed) if kind == "random_sign_set" else None
        objective = PerEpochAdversarialTraining(eps=self.eps) if kind == "per_epoch_adversarial" else CrossEntropy()
        # Training logits / T with a plain objective is training at temperature T, adversary included.
        scaled = self.train(f"{label} ({kind})", objective=objective, data=data,
                            model=TemperatureScaled(self.new_model(), temperature))
        if not isinstance(scaled, TemperatureScaled):  # train() hands back the model it was given
            raise TypeError(f"training returned a {type(scaled).__name__}, not the TemperatureScaled it was given")
        return scaled.model.eval()

    def clean_and_fgsm(self, key: str, table: str, name: str, model: nn.Module, suffix: str = "") -> None:
        self.add(f"{key}.clean_acc{suffix}", table, f"{name}: clean accuracy",
                 clean_accuracy(self.ctx, model, self.test_set))
        self.add(f"{key}.fgsm_acc{suffix}", table, f"{name}: accuracy on its FGSM set (ε = {self.eps:g})",
                 attack_accuracy(self.ctx, model, self.test_set, self.fgsm))

    def gradient_norms(self, model: nn.Module) -> GradientNorms:
        """‖∇ₓ CE‖₂ of the check images, (N,), in [0, 1] pixel units: the gradients FGSM takes the sign of."""
        return input_gradient_norms(model, (self.x_check, self.y_check), norm="l2", device=self.ctx.device)

    def median_norms(self, key: str, table: str, name: str, norms: GradientNorms, suffix: str = "") -> None:
        self.add(f"{key}.median_gradient_l2{suffix}", table, f"{name}: median ‖∇ₓ J‖₂ over the check images",
                 float(norms.norms.median()), "norm")
        correct = norms.norms[norms.correct]
        self.add(f"{key}.median_gradient_l2_correct{suffix}", table,
                 f"{name}: median ‖∇ₓ J‖₂ over the correctly classified check images",
                 float(correct.median()) if len(correct) else float("nan"), "norm")

    def figure(self, filename: str, title: str, panels: list[tuple[str, GradientNorms]]) -> None:
        """One scatter panel per model: image index against ‖∇ₓ J‖₂, correct images red, incorrect blue."""
        figure = new_figure(4.0 * len(panels), 3.4)
        for index, (name, norms) in enumerate(panels):
            axes = figure.add_subplot(1, len(panels), index + 1)
            position = torch.arange(len(norms.norms))
            for mask, colour, what in ((norms.correct, "tab:red", "correct"), (~norms.correct, "tab:blue",
                                                                                 "incorrect")):
                axes.scatter(position[mask].numpy(), norms.norms[mask].numpy(), s=6, c=colour, label=what)
            axes.set_title(name)
            axes.set_xlabel("check image")
            if index == 0:
                axes.set_ylabel("‖∇ₓ J‖₂")
                axes.legend(loc="upper right", fontsize=7)
        figure.suptitle(title, fontsize=9)
        save_figure(self.ctx, figure, filename)

    # --- Tables 3-4 ------------------------------------------------------------------------------------------

    def distillation(self, key: str, table: str, fig: str, recipe: DefensiveDistillation,
                     baseline_median: float) -> None:
        """Teacher (trained adversarially at its T) -> student at T; rows for both and the gradient checks."""
        t_teacher, t = recipe.teacher_temperature_used, recipe.temperature
        teacher = self.train_teacher(t_teacher, f"distillation teacher (T = {t_teacher:g})")
        teacher_at_t = TemperatureScaled(teacher, t_teacher)
        student = self.train(f"distillation student (T = {t:g})", objective=recipe.student_objective(teacher))
        student_at_t = TemperatureScaled(student, t)

        self.add(f"{key}.teacher.clean_acc", table, f"teacher (T = {t_teacher:g}): clean accuracy",
                 clean_accuracy(self.ctx, teacher, self.test_set))
        teacher_suffix = "_at_T" if t_teacher != 1.0 else ""
        self.add(f"{key}.teacher.fgsm_acc{teacher_suffix}", table,
                 f"teacher at T = {t_teacher:g}: accuracy on its FGSM set (ε = {self.eps:g})",
                 attack_accuracy(self.ctx, teacher_at_t, self.test_set, self.fgsm))
        self.add(f"{key}.clean_acc", table, f"student (T = {t:g}) at T = 1: clean accuracy",
                 clean_accuracy(self.ctx, student, self.test_set))
        self.add(f"{key}.clean_acc_at_T", table, f"student at T = {t:g}: clean accuracy",
                 clean_accuracy(self.ctx, student_at_t, self.test_set))
        masked_table = table if t_teacher == t else "extension (student at T = 1)"
        self.add(f"{key}.fgsm_acc", masked_table,
                 f"student (T = {t:g}) at T = 1: accuracy on its FGSM set (ε = {self.eps:g}; masked gradients)",
                 attack_accuracy(self.ctx, student, self.test_set, self.fgsm))
        self.add(f"{key}.fgsm_acc_at_T", table,
                 f"student at T = {t:g}: accuracy on its FGSM set (ε = {self.eps:g}; FGSM through logits / {t:g})",
                 attack_accuracy(self.ctx, student_at_t, self.test_set, self.fgsm))
        if t_teacher == t:  # Papernot's recipe: §7.1 tests the T = 1 student on the T = 50 student's FGSM set
            self.add(f"{key}.fgsm_acc_on_T_set", "§7.1 text",
                     f"student at T = 1 on the FGSM set of the student at T = {t:g}",
                     transfer_accuracy(student_at_t, student, self.test_set, self.fgsm, self.ctx.device))
            top = soft_labels(teacher, self.x_train_check, t).topk(2, dim=-1).values
            self.add(f"{key}.teacher.median_top_soft_label", "§7.1 text",
                     f"teacher's soft labels at T = {t:g} on training images: median largest probability",
                     float(top[:, 0].median()), "probability")
            self.add(f"{key}.teacher.median_second_soft_label", "§7.1 text",
                     f"teacher's soft labels at T = {t:g} on training images: median second-largest probability",
                     float(top[:, 1].median()), "probability")

        teacher_norms = self.gradient_norms(teacher_at_t)
        norms_at_t, norms_t1 = self.gradient_norms(student_at_t), self.gradient_norms(student)
        self.figure(f"{fig.lower().replace('. ', '')}_gradient_norms.png",
                    f"{fig}: ‖∇ₓ J‖₂ per test image (red: correct, blue: incorrect)",
                    [(f"Teacher (T={t_teacher:g})", teacher_norms), (f"Student (T={t:g})", norms_at_t),
                     ("Student (T=1)", norms_t1)])
        self.add(f"{key}.teacher.median_gradient_l2", fig,
                 f"teacher at T = {t_teacher:g}: median ‖∇ₓ J‖₂ over the check images",
                 float(teacher_norms.norms.median()), "norm")
        self.add(f"{key}.median_gradient_l2_at_T", fig, f"student at T = {t:g}: median ‖∇ₓ J‖₂",
                 float(norms_at_t.norms.median()), "norm")
        self.add(f"{key}.median_gradient_l2", fig, f"student (T = {t:g}) at T = 1: median ‖∇ₓ J‖₂",
                 float(norms_t1.norms.median()), "norm")
        self.add(f"{key}.max_gradient_l2", fig, f"student (T = {t:g}) at T = 1: largest ‖∇ₓ J‖₂",
                 float(norms_t1.norms.max()), "norm")
        self.add(f"{key}.zero_gradient_share", fig,
                 f"student (T = {t:g}) at T = 1: share of check images with an exactly zero input gradient",
                 _zero_gradient_share(student, self.x_check, self.y_check), "share")
        self.add(f"{key}.vanishing_gradient_share", fig,
                 f"student (T = {t:g}) at T = 1: share of check images with ‖∇ₓ J‖₂ below "
                 f"{VANISHING_FRACTION:g} × the baseline's median",
                 float((norms_t1.norms < VANISHING_FRACTION * baseline_median).float().mean()), "share")
        saturated = check_saturated_softmax(student, self.x_check)
        zero = check_zero_gradients(student, self.x_check, self.y_check)
        self.add(f"{key}.saturated_share", "extension (gradient-masking checks)",
                 f"student (T = {t:g}) at T = 1: share of check images whose softmax rounds to exactly 1",
                 _measured(saturated, "saturated_fraction"), "share")
        self.add(f"{key}.checks_flag_masking", "extension (gradient-masking checks)",
                 f"student (T = {t:g}) at T = 1: advlab's sanity checks flag gradient masking (1 = yes)",
                 float(saturated.warned or zero.warned), "flag")

    # --- §8-9: input noise ---------------------------------------------------------------------------------

    def input_noise(self, key: str, table: str, name: str, model: nn.Module) -> None:
        """Eq. 2 noise (ε·R, a fresh draw per pass) before ``model``: the paper's protocol, then advlab's."""
        scale = float(self.ctx.settings["input_noise_scale"])
        noisy = InputNoise(model, kind="random_sign", scale=scale, votes=1)
        self.add(f"{key}.input_noise.clean_acc", "extension (input noise)",
                 f"{name} + random-sign input noise ({scale:g}): clean accuracy (one draw)",
                 clean_accuracy(self.ctx, noisy, self.test_set))
        self.add(f"{key}.input_noise.fgsm_acc", table,
                 f"{name} + random-sign input noise ({scale:g}): accuracy on its FGSM set (one noise draw per "
                 "pass, as the paper)",
                 attack_accuracy(self.ctx, noisy, self.test_set, self.fgsm, randomized=False))
        # advlab's protocol for randomized models: FGSM on the gradient averaged over EOT_SAMPLES draws, and the
        # whole evaluation repeated in independent trials (on eot_images test images: it costs ~50 passes each).
        data = self.test_set.subset(int(self.ctx.settings.get("eot_images", 0)) or None, seed=self.seed)
        trials = int(self.ctx.settings.get("trials", 5))
        result = evaluate_attack(noisy, data, self.fgsm, device=self.ctx.device, seed=self.seed, trials=trials,
                                 eot_samples=EOT_SAMPLES)
        self.add(f"{key}.input_noise.eot_fgsm_acc", "extension (EOT)",
                 f"{name} + random-sign input noise: accuracy under EOT-FGSM ({EOT_SAMPLES} draws per gradient, "
                 f"{len(data)} images; mean ± std over {len(result.trials)} trials)",
                 result.robust_accuracy, std=result.robust_accuracy_std)


def transfer_accuracy(source: nn.Module, target: nn.Module, data: ImageDataset, attack: FGSM,
                      device: torch.device, batch_size: int = 256) -> float:
    """Accuracy of ``target`` on ``attack``'s adversarial images crafted against ``source`` (every image of data)."""
    correct = 0
    for x, y in data.batches(batch_size, device=device):
        adv = attack.perturb(source, x, y)
        with frozen_eval(target), torch.no_grad():
            correct += int((target(adv).argmax(dim=-1) == y).sum())
    return correct / max(len(data), 1)


def _zero_gradient_share(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return _measured(check_zero_gradients(model, x, y), "zero_gradient_fraction")


def _measured(check: CheckResult, key: str) -> float:
    """The number ``check`` measured under ``key``; a check that measured none there is a bug, not a zero."""
    value = check.values[key]
    if value is None:
        raise ValueError(f"the {check.name} check measured no {key!r} (status {check.status!r})")
    return float(value)
