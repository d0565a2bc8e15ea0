"""Wang, Kunin, Pyron, "Exploring adversarial input spaces" (MNIST): where targeted attacks move digits, and a
Monte-Carlo-dropout vote that defends and detects.

Steps:
    * train the MNIST CNN (``mnist_cnn``, dropout 0.4 before the last layer);
    * the 10×10 grid of mean adversarial images (row = source class, column = target class) of a targeted attack
      (targeted FGSM, or ``gradient_step`` which keeps the gradient's shape), with the targeted success rate;
    * perturbation statistics (L0 share, L2, L∞) of successful targeted examples, for FGSM and the gradient step;
    * MC dropout: accuracy of the n-pass vote on clean and on FGSM images (crafted against the deterministic
      network), and the ROC AUC of the vote disagreement as an adversarial-input detector.
"""

from __future__ import annotations

import torch

from advlab.attacks import create_attack
from advlab.attacks.fgsm import FGSM
from advlab.defenses.dropout_ensemble import MCDropoutEnsemble, roc_auc
from advlab.evaluate import average_adversarial_grid, perturbation_statistics
from advlab.evaluate.randomness import seeded
from advlab.experiments.runner import (
    ExperimentContext,
    Measurement,
    register_experiment,
)
from advlab.experiments.steps.common import (
    clean_accuracy,
    load_split,
    new_figure,
    save_figure,
    train_model,
)


@register_experiment("exploring_input_spaces", paper="Wang, Kunin, Pyron, Exploring adversarial input spaces")
def exploring_input_spaces(ctx: ExperimentContext) -> list[Measurement]:
    s = ctx.settings
    seed = int(s.get("seed", 0))
    train_set, test_set = load_split(ctx, "train", "n_train"), load_split(ctx, "test", "n_test")
    model = train_model(ctx, s["model"], train_set, label="MNIST CNN")
    out = [Measurement("model.clean_acc", "Setup", "MNIST CNN clean test accuracy",
                       clean_accuracy(ctx, model, test_set))]
    num_classes = test_set.num_classes

    # The grid: a balanced subset, every point attacked towards each of the other nine classes.
    grid_eps = float(s["grid_eps"])
    per_class = int(s["grid_per_class"])
    grid_data = _balanced(test_set.images, test_set.labels, per_class, num_classes)
    for attack_name in s["grid_attacks"]:
        attack = create_attack(attack_name, eps=grid_eps)
        ctx.log(f"average adversarial grid: {attack_name}, ε = {grid_eps:g}, {per_class} images per class")
        grid = average_adversarial_grid(model, grid_data, attack, num_classes=num_classes, device=ctx.device,
                                        seed=seed)
        off_diagonal = ~torch.eye(num_classes, dtype=torch.bool)
        out.append(Measurement(f"grid.{attack_name}.targeted_success", "10×10 grid",
                               f"targeted success rate, {attack_name} ε = {grid_eps:g} (mean over 90 pairs)",
                               float(grid.success_rate[off_diagonal].mean())))
        ctx.extras.setdefault("grid_success_rate", {})[attack_name] = grid.success_rate.tolist()
        _plot_grid(ctx, grid.images, attack_name, grid_eps)

    # Perturbation statistics of successful targeted examples (target: the next class, (y + 1) mod 10).
    x, y = grid_data
    target = (y + 1) % num_classes
    for attack_name in s["grid_attacks"]:
        with seeded(seed, "stats", attack_name, device=ctx.device):
            result = create_attack(attack_name, eps=grid_eps)(model, x.to(ctx.device), target=target.to(ctx.device))
        if not bool(result.success.any()):
            continue
        stats = perturbation_statistics(x, result.adv.cpu(), mask=result.success.cpu())
        pixels = x[0].numel()
        out += [
            Measurement(f"stats.{attack_name}.l2", "Perturbation statistics",
                        f"mean L2 of successful targeted {attack_name} perturbations", stats["l2"].mean, "L2"),
            Measurement(f"stats.{attack_name}.linf", "Perturbation statistics",
                        f"mean L∞ of successful targeted {attack_name} perturbations", stats["linf"].mean, "L∞"),
            Measurement(f"stats.{attack_name}.l0_share", "Perturbation statistics",
                        f"share of pixels changed by successful targeted {attack_name} perturbations",
                        stats["l0"].mean / pixels, "share"),
        ]

    # MC dropout: vote accuracy and detection on FGSM images crafted against the deterministic network.
    n_mc = int(s["mc_images"])
    x_mc = test_set.images[:n_mc].float().div(255.0).to(ctx.device)
    y_mc = test_set.labels[:n_mc].to(ctx.device)
    fgsm_eps = float(s["mc_fgsm_eps"])
    adv = FGSM(eps=fgsm_eps)(model, x_mc, y_mc).adv
    ensemble = MCDropoutEnsemble(model, passes=int(s["mc_passes"]))
    with seeded(seed, "mc-dropout", device=ctx.device):
        clean_votes = ensemble.vote_counts(x_mc)
        adv_votes = ensemble.vote_counts(adv)
    with torch.no_grad():
        deterministic_adv = float((model(adv).argmax(-1) == y_mc).float().mean())
    out += [
        Measurement("mc.deterministic.fgsm_acc", "MC-dropout defense",
                    f"deterministic CNN accuracy under FGSM ε = {fgsm_eps:g}", deterministic_adv),
        Measurement("mc.vote.clean_acc", "MC-dropout defense",
                    f"MC-dropout vote ({ensemble.passes} passes) accuracy, clean",
                    float((clean_votes.argmax(-1) == y_mc).float().mean())),
        Measurement("mc.vote.fgsm_acc", "MC-dropout defense",
                    f"MC-dropout vote accuracy on FGSM ε = {fgsm_eps:g} images (crafted on the deterministic CNN)",
                    float((adv_votes.argmax(-1) == y_mc).float().mean())),
        Measurement("mc.detection_auc", "MC-dropout detection",
                    f"ROC AUC of vote disagreement, clean vs FGSM ε = {fgsm_eps:g}",
                    roc_auc(_disagreement(clean_votes), _disagreement(adv_votes)), "AUC"),
    ]
    return out


def _disagreement(votes: torch.Tensor) -> torch.Tensor:
    shares = votes.float() / votes.sum(dim=-1, keepdim=True)
    return 1.0 - shares.amax(dim=-1)


def _balanced(images: torch.Tensor, labels: torch.Tensor, per_class: int,
              num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``per_class`` images of every class as float [0, 1] images and int64 labels, classes in order."""
    index = torch.cat([(labels == k).nonzero().squeeze(1)[:per_class] for k in range(num_classes)])
    return images[index].float().div(255.0), labels[index]


def _plot_grid(ctx: ExperimentContext, images: torch.Tensor, attack_name: str, eps: float) -> None:
    k = images.shape[0]
    figure = new_figure(7.0, 7.4)
    for i in range(k):
        for j in range(k):
            axes = figure.add_subplot(k, k, i * k + j + 1)
            axes.imshow(images[i, j, 0].numpy(), cmap="gray", vmin=0, vmax=1)
            axes.set_xticks([])
            axes.set_yticks([])
            if i == 0:
                axes.set_title(str(j), fontsize=8)
            if j == 0:
                axes.set_ylabel(str(i), fontsize=8)
    figure.suptitle(f"Mean adversarial images, targeted {attack_name} ε = {eps:g} (row: source, column: target; "
                    f"scale {ctx.scale})", fontsize=8)
    save_figure(ctx, figure, f"average_adversarial_grid_{attack_name}.png")
