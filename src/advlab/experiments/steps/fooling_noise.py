"""Hao, Chen, Huang, "Fooling networks by adding noises" (MNIST): FGSM vs matched Gaussian noise, FGSM training.

Steps (tables as in the paper):
    Table 1: train the MLP 784-256-256-10 and the CNN (``mnist_cnn``) with Adam; clean test accuracy.
    Tables 2-3: accuracy under FGSM at each ε and under Gaussian noise whose per-image mean and std match the FGSM
        perturbation (``matched_noise``): same size, random direction.
    Table 4: retrain with the FGSM mixed loss α·CE(x) + (1 − α)·CE(x_FGSM), α = 0.5 (``fgsm_mixed``); clean and
        FGSM accuracy after.
    Table 5 / Figs. 6-8: accuracy vs the std σ of additive Gaussian noise, before and after adversarial training.
"""

from __future__ import annotations

from advlab.attacks import FGSM, MatchedNoise
from advlab.defenses.registry import create_defense
from advlab.evaluate import accuracy_vs_noise
from advlab.experiments.runner import (
    ExperimentContext,
    Measurement,
    register_experiment,
)
from advlab.experiments.steps.common import (
    as_floats,
    attack_accuracy,
    clean_accuracy,
    eps_key,
    load_split,
    new_figure,
    save_figure,
    train_model,
)

ARCH_LABELS = {"mlp": "MLP", "mnist_cnn": "CNN"}


@register_experiment("fooling_noise", paper="Hao, Chen, Huang, Fooling networks by adding noises")
def fooling_noise(ctx: ExperimentContext) -> list[Measurement]:
    s = ctx.settings
    train_set, test_set = load_split(ctx, "train", "n_train"), load_split(ctx, "test", "n_test")
    eps_list, stds = as_floats(s["fgsm_eps"]), as_floats(s["noise_stds"])
    adv_eps, seed = float(s["adv_train_eps"]), int(s.get("seed", 0))
    out: list[Measurement] = []
    curves: dict[str, dict[str, list[float]]] = {}
    for arch in s["models"]:
        name = ARCH_LABELS.get(arch, arch)
        # Per-network overrides (``epochs_mnist_cnn``, ``n_train_mnist_cnn``) let a reduced scale shrink only the
        # expensive CNN while the cheap MLP keeps the paper's recipe.
        epochs = int(s.get(f"epochs_{arch}", s["epochs"]))
        arch_train = train_set.subset(s.get(f"n_train_{arch}") or None, seed)
        model = train_model(ctx, arch, arch_train, label=f"{name} (standard)", epochs=epochs)
        out.append(Measurement(f"table1.{arch}.clean_acc", "Table 1", f"{name} clean test accuracy",
                               clean_accuracy(ctx, model, test_set)))
        for eps in eps_list:
            out.append(Measurement(f"table2.{arch}.fgsm.{eps_key(eps)}", "Tables 2-3",
                                   f"{name} accuracy under FGSM, ε = {eps:g}",
                                   attack_accuracy(ctx, model, test_set, FGSM(eps=eps))))
            out.append(Measurement(f"table3.{arch}.matched_noise.{eps_key(eps)}", "Tables 2-3",
                                   f"{name} accuracy under Gaussian noise matched to FGSM ε = {eps:g}",
                                   attack_accuracy(ctx, model, test_set, MatchedNoise(eps=eps, seed=seed))))
        before = accuracy_vs_noise(model, test_set, stds, draws=int(s.get("noise_draws", 1)), device=ctx.device,
                                   seed=seed)
        ctx.log(f"{name}: accuracy under FGSM/noise done; adversarial training (FGSM mixed, ε = {adv_eps:g})")
        objective = create_defense("fgsm_mixed", eps=adv_eps, clean_weight=float(s.get("alpha", 0.5)))
        robust = train_model(ctx, arch, arch_train, objective=objective, label=f"{name} (FGSM mixed-loss)",
                             epochs=epochs)
        out.append(Measurement(f"table4.{arch}.adv.clean_acc", "Table 4",
                               f"{name} after FGSM training: clean accuracy", clean_accuracy(ctx, robust, test_set)))
        for eps in eps_list:
            out.append(Measurement(f"table4.{arch}.adv.fgsm.{eps_key(eps)}", "Table 4",
                                   f"{name} after FGSM training: accuracy under FGSM, ε = {eps:g}",
                                   attack_accuracy(ctx, robust, test_set, FGSM(eps=eps))))
        after = accuracy_vs_noise(robust, test_set, stds, draws=int(s.get("noise_draws", 1)), device=ctx.device,
                                  seed=seed)
        for std, acc_before, acc_after in zip(stds, before.accuracy, after.accuracy):
            out.append(Measurement(f"table5.{arch}.noise.{eps_key(std)}.before", "Table 5 / Figs. 6-8",
                                   f"{name} accuracy under Gaussian noise σ = {std:g}, standard training", acc_before))
            out.append(Measurement(f"table5.{arch}.noise.{eps_key(std)}.after", "Table 5 / Figs. 6-8",
                                   f"{name} accuracy under Gaussian noise σ = {std:g}, after FGSM training",
                                   acc_after))
        curves[name] = {"before": list(before.accuracy), "after": list(after.accuracy)}
    ctx.extras["noise_curves"] = {"stds": stds, **curves}
    _plot_noise_curves(ctx, stds, curves)
    return out


def _plot_noise_curves(ctx: ExperimentContext, stds: list[float], curves: dict[str, dict[str, list[float]]]) -> None:
    figure = new_figure()
    axes = figure.add_subplot()
    for name, curve in curves.items():
        axes.plot(stds, curve["before"], marker="o", label=f"{name}, standard training")
        axes.plot(stds, curve["after"], marker="s", linestyle="--", label=f"{name}, after FGSM training")
    axes.set_xlabel("Gaussian noise std σ ([0, 1] pixel units)")
    axes.set_ylabel("test accuracy")
    axes.set_title(f"Accuracy vs Gaussian noise (scale: {ctx.scale})")
    axes.set_ylim(0, 1.02)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    save_figure(ctx, figure, "accuracy_vs_noise.png")
