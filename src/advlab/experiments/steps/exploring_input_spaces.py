"""Wang, Kunin, Pyron, "Exploring Adversarial Input Spaces for Convolutional Neural Network Defense" (MNIST).

The paper reports figures only (Figs. 1, 3, 4, 5; no table and no number), so every row here is our measurement of
what a figure shows, or an extension. Steps:

    * train the MNIST CNN (``mnist_cnn``; the paper gives no architecture or recipe);
    * the paper's targeted attacks on the class score F_t (001:L30, L73): targeted FGSM ``x + ε·sign(∇F_t)`` and
      the non-sign gradient step, each run from every image of a class-balanced subset towards each of the other
      nine classes (:func:`advlab.evaluate.statistics.targeted_pairs`);
    * Fig. 1: the 10×10 grid of mean adversarial images over the *successful* attacks only, the success count in
      every cell, the originals' means on the diagonal;
    * §2.2's "Perturbation Stats" (001:L75): mean/std/min/max of the L1 and L2 norms of the successful
      perturbations, and their histograms;
    * Fig. 3: pixel histograms of originals labeled 1 and of adversarials 1→2 (gradient-step set);
    * Fig. 4: the average perturbation ``adv − x`` of 1→2 and 1→3, with its correlation to the difference of the
      class means (the paper's reading: "subtracting the original image class and ... adding the target class");
    * Fig. 5: the vote histograms of the MC-dropout ensemble for one original and one adversarial image of the
      targeted gradient-step set;
    * extensions: the log-softmax variants of both attacks, the gradient step iterated until the target is reached,
      the MC-dropout vote and detection AUC over the whole targeted set and on untargeted FGSM.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from advlab.attacks.base import Attack, perturbation_norms
from advlab.attacks.fgsm import FGSM, GradientStep
from advlab.defenses.dropout_ensemble import MCDropoutEnsemble, roc_auc
from advlab.evaluate import perturbation_statistics
from advlab.evaluate.randomness import seeded
from advlab.evaluate.statistics import (
    AverageAdversarialGrid,
    TargetedPairs,
    grid_from_pairs,
    targeted_pairs,
)
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

# The paper item (or extension) each attack's rows belong to: the paper's attacks ascend the logit F_t.
TABLES = {
    "fgsm": "§1.1 targeted FGSM (grid as Fig. 1)",
    "gradient_step": "Fig. 1",
    "fgsm_logsoftmax": "extension: log-softmax FGSM",
    "gradient_step_logsoftmax": "extension: log-softmax gradient step",
    "gradient_step_iterated": "extension: iterated gradient step",
}
HISTOGRAM_BINS = 50
MID_BAND = (0.02, 0.98)  # Fig. 3: a pixel "off the two modes" lies strictly inside this band (our threshold)


@register_experiment("exploring_input_spaces", paper="Wang, Kunin, Pyron, Exploring adversarial input spaces")
def exploring_input_spaces(ctx: ExperimentContext) -> list[Measurement]:
    s = ctx.settings
    seed = int(s.get("seed", 0))
    train_set, test_set = load_split(ctx, "train", "n_train"), load_split(ctx, "test", "n_test")
    model = train_model(ctx, s["model"], train_set, label="MNIST CNN")
    out = [Measurement("model.clean_acc", "extension: setup (the paper gives no architecture and no accuracy)",
                       "MNIST CNN clean test accuracy", clean_accuracy(ctx, model, test_set))]
    k = test_set.num_classes
    per_class = int(s["grid_per_class"])
    data = _balanced(test_set.images, test_set.labels, per_class, k)
    ctx.log(f"targeted attacks from {per_class} test images per class towards each of the other {k - 1} classes")

    main = {name: _run_pairs(ctx, model, data, name, attack, k, seed) for name, attack in _main_attacks(s).items()}
    for name, pairs in main.items():
        grid = grid_from_pairs(pairs, successful_only=True)
        out += _grid_rows(ctx, name, TABLES[name], grid, _describe(s, name))
        _plot_grid(ctx, grid, name, _describe(s, name))
        out += _norm_rows(name, pairs)
    _plot_norm_histograms(ctx, {name: _describe(s, name) for name in main}, main)

    source, targets = int(s["fig_source"]), [int(t) for t in s["fig_targets"]]
    paper_set = main["gradient_step"]
    out += _figure3(ctx, paper_set, source, targets[0])
    out += _figure4(ctx, paper_set, source, targets)
    ensemble = MCDropoutEnsemble(model, passes=int(s["mc_passes"]))
    out += _figure5(ctx, ensemble, paper_set, source, targets[0], seed)
    out += _targeted_vote_rows(ctx, ensemble, paper_set, int(s["mc_images"]), seed)

    for name, attack in _extension_attacks(s).items():
        pairs = _run_pairs(ctx, model, data, name, attack, k, seed)
        grid = grid_from_pairs(pairs, successful_only=True)
        out += _grid_rows(ctx, name, TABLES[name], grid, _describe(s, name))
        out += _norm_rows(name, pairs, table=TABLES[name], norms=("l2",), summaries=("mean",))
        if name == "gradient_step_iterated":
            _plot_grid(ctx, grid, name, _describe(s, name))

    out += _untargeted_mc_rows(ctx, model, ensemble, test_set, int(s["mc_images"]), float(s["mc_fgsm_eps"]), seed)
    return out


# ----------------------------------------------------------------------------------------------------- attacks


def _main_attacks(s: dict[str, Any]) -> dict[str, Attack]:
    """The paper's two targeted attacks on the class score F_t (001:L30, L73); ε is not in the paper."""
    return {"fgsm": FGSM(eps=float(s["fgsm_eps"]), loss="score"),
            "gradient_step": GradientStep(eps=float(s["gradient_step_eps"]), loss="score")}


def _extension_attacks(s: dict[str, Any]) -> dict[str, Attack]:
    """Beyond the paper: log-softmax instead of the score, and the gradient step iterated to the target."""
    attacks: dict[str, Attack] = {
        "fgsm_logsoftmax": FGSM(eps=float(s["fgsm_eps"]), loss="ce"),
        "gradient_step_logsoftmax": GradientStep(eps=float(s["gradient_step_eps"]), loss="ce"),
    }
    if int(s.get("iterated_steps", 0)) > 0:
        attacks["gradient_step_iterated"] = GradientStep(
            eps=float(s["iterated_eps"]), steps=int(s["iterated_steps"]), step_size=float(s["iterated_step_size"]),
            loss="score")
    return attacks


def _describe(s: dict[str, Any], name: str) -> str:
    fgsm, step = f"ε = {float(s['fgsm_eps']):g}", f"L∞ = ε = {float(s['gradient_step_eps']):g}"
    return {
        "fgsm": f"targeted FGSM on the score F_t, {fgsm}",
        "gradient_step": f"targeted gradient step on the score F_t, one step rescaled to {step}",
        "fgsm_logsoftmax": f"targeted FGSM on log softmax_t (not the paper's F_t), {fgsm}",
        "gradient_step_logsoftmax": f"targeted gradient step on log softmax_t (not the paper's F_t), one step "
                                    f"rescaled to {step}",
        "gradient_step_iterated": (f"targeted gradient step on F_t iterated until the target is reached: at most "
                                   f"{s.get('iterated_steps')} steps of L∞ {s.get('iterated_step_size')}, "
                                   f"ε = {s.get('iterated_eps')}"),
    }[name]


def _run_pairs(ctx: ExperimentContext, model: nn.Module, data: tuple[torch.Tensor, torch.Tensor], name: str,
               attack: Attack, k: int, seed: int) -> TargetedPairs:
    ctx.log(f"targeted pairs: {name} ({attack})")
    pairs = targeted_pairs(model, data, attack, num_classes=k, device=ctx.device, seed=seed)
    ctx.extras.setdefault("attacks", {})[name] = repr(attack)
    return pairs


# ------------------------------------------------------------------------------------------- Fig. 1 and §2.2


def _grid_rows(ctx: ExperimentContext, name: str, table: str, grid: AverageAdversarialGrid,
               description: str) -> list[Measurement]:
    k = grid.counts.shape[0]
    off = ~torch.eye(k, dtype=torch.bool)
    assert grid.successes is not None
    ctx.extras.setdefault("grid_success_counts", {})[name] = grid.successes.tolist()
    ctx.extras.setdefault("grid_attempts_per_cell", {})[name] = grid.counts.diagonal().tolist()
    return [
        Measurement(f"grid.{name}.targeted_success", table,
                    f"targeted success rate over the {int(off.sum())} (source, target) cells, {description}",
                    float(grid.success_rate[off].mean()), "success_rate"),
        Measurement(f"grid.{name}.empty_cells", table,
                    f"grid cells with no successful attack (of {int(off.sum())}), {description}",
                    float((grid.successes[off] == 0).sum()), "cells"),
    ]


def _norm_rows(name: str, pairs: TargetedPairs, *, table: str = "§2.2 Perturbation Stats",
               norms: tuple[str, ...] = ("l1", "l2"), summaries: tuple[str, ...] = ("mean", "std", "min", "max")
               ) -> list[Measurement]:
    """Mean/std/min/max of the norms of the successful perturbations (the paper's tables, 001:L75)."""
    success = pairs.success
    if not bool(success.any()):
        return []
    stats = perturbation_statistics(pairs.clean[pairs.index], pairs.adv, mask=success)
    n = int(success.sum())
    rows = [Measurement(f"stats.{name}.{norm}.{summary}", table,
                        f"{summary} of the {norm.upper()} norms of the {n} successful targeted {name} perturbations",
                        getattr(stats[norm], summary), norm.upper())
            for norm in norms for summary in summaries]
    if not table.startswith("extension"):
        pixels = pairs.clean[0].numel()
        rows += [
            Measurement(f"stats.{name}.linf.mean", table, f"mean L∞ norm of the successful {name} perturbations",
                        stats["linf"].mean, "L∞"),
            Measurement(f"stats.{name}.l0_share", table,
                        f"mean share of pixels changed by the successful {name} perturbations",
                        stats["l0"].mean / pixels, "fraction"),
        ]
    return rows


def _plot_grid(ctx: ExperimentContext, grid: AverageAdversarialGrid, name: str, description: str) -> None:
    """Fig. 1: mean successful adversarial image per (source, target) cell, its success count drawn in the cell.

    The cells are tiled into one mosaic (one ``imshow``; 100 subplots take seconds to draw).
    """
    k, height, width = grid.images.shape[0], grid.images.shape[-2], grid.images.shape[-1]
    assert grid.successes is not None
    gap = 2
    mosaic = torch.ones(k * (height + gap) - gap, k * (width + gap) - gap)  # white lines between the cells
    for i in range(k):
        for j in range(k):
            top, left = i * (height + gap), j * (width + gap)
            mosaic[top:top + height, left:left + width] = grid.images[i, j, 0]
    figure = new_figure(7.0, 7.6)
    axes = figure.add_subplot(1, 1, 1)
    axes.imshow(mosaic.numpy(), cmap="gray", vmin=0, vmax=1)
    centers = [c * (height + gap) + height / 2 - 0.5 for c in range(k)]
    axes.set_xticks(centers, [str(j) for j in range(k)], fontsize=8)
    axes.set_yticks(centers, [str(i) for i in range(k)], fontsize=8)
    axes.xaxis.tick_top()
    axes.set_xlabel("class reached (target)", fontsize=8)
    axes.set_ylabel("original class", fontsize=8)
    for i in range(k):
        for j in range(k):
            if i != j:
                axes.text(j * (width + gap) + 1, i * (height + gap) + 4, str(int(grid.successes[i, j])),
                          color="yellow", fontsize=6)
    attempts = int(grid.counts[0, 0]) if k else 0
    figure.suptitle(f"Fig. 1 as the paper reads: mean of the successful adversarial images, {description}\n"
                    f"yellow: successes of about {attempts} attacked images (black: none); diagonal: mean "
                    f"originals; scale {ctx.scale}", fontsize=7)
    save_figure(ctx, figure, f"fig1_grid_{name}.png")


def _plot_norm_histograms(ctx: ExperimentContext, descriptions: dict[str, str],
                          sets: dict[str, TargetedPairs]) -> None:
    """§2.2: histograms of the L1 and L2 norms of the successful perturbations of each main attack."""
    figure = new_figure(8.0, 3.2)
    for column, norm in enumerate(("l1", "l2")):
        axes = figure.add_subplot(1, 2, column + 1)
        for name, pairs in sets.items():
            values = perturbation_norms(pairs.adv - pairs.clean[pairs.index])[norm][pairs.success]
            if values.numel():
                axes.hist(values.numpy(), bins=30, alpha=0.6, label=f"{name} (n = {values.numel()})")
        axes.set_xlabel(f"{norm.upper()} norm of adv − x ([0, 1] pixel units)", fontsize=8)
        axes.set_ylabel("successful attacks", fontsize=8)
        axes.legend(fontsize=7)
    figure.suptitle(f"§2.2 Perturbation Stats: norms of the successful targeted perturbations (scale {ctx.scale})",
                    fontsize=8)
    save_figure(ctx, figure, "perturbation_norm_histograms.png")


# ---------------------------------------------------------------------------------------------- Figs. 3 and 4


def _figure3(ctx: ExperimentContext, pairs: TargetedPairs, source: int, target: int) -> list[Measurement]:
    """Fig. 3: pixel histograms of the originals labeled ``source`` and of the adversarials ``source → target``."""
    originals = pairs.clean[pairs.labels == source]
    adversarials = pairs.adv[pairs.select(source, target)]
    sets = {"original": originals, "adversarial": adversarials}
    edges = torch.linspace(0.0, 1.0, HISTOGRAM_BINS + 1)
    figure = new_figure(8.0, 3.2)
    figure.subplots_adjust(top=0.8)  # room for the title above the panels' titles
    rows, record = [], {"edges": edges.tolist()}
    for column, (kind, images) in enumerate(sets.items()):
        axes = figure.add_subplot(1, 2, column + 1)
        title = (f"originals labeled {source} (n = {len(images)})" if kind == "original" else
                 f"adversarials {source}→{target} (n = {len(images)})")
        axes.set_title(title, fontsize=8)
        axes.set_xlabel("pixel value", fontsize=8)
        if not len(images):
            ctx.log(f"Fig. 3: no successful {source}→{target} attack at this scale")
            continue
        values = images.flatten()
        counts = torch.histc(values, bins=HISTOGRAM_BINS, min=0.0, max=1.0)
        axes.bar(edges[:-1].numpy(), counts.numpy(), width=1.0 / HISTOGRAM_BINS, align="edge")
        axes.set_yscale("log")
        record[kind] = counts.tolist()
        mid = ((values > MID_BAND[0]) & (values < MID_BAND[1])).float().mean()
        label = title.split(" (")[0]
        rows += [
            Measurement(f"fig3.{kind}.mid_share", "Fig. 3",
                        f"share of pixels off the two modes, in ({MID_BAND[0]:g}, {MID_BAND[1]:g}): {label}",
                        float(mid), "fraction"),
            Measurement(f"fig3.{kind}.pixel_std", "Fig. 3", f"standard deviation of the pixel values: {label}",
                        float(values.std()), "pixel"),
            Measurement(f"fig3.{kind}.images", "Fig. 3", f"images in the histogram: {label}", float(len(images)),
                        "images"),
        ]
    ctx.extras["fig3_pixel_histograms"] = record
    figure.suptitle(f"Fig. 3: pixel histograms (log scale), targeted gradient step on F_t (scale {ctx.scale})",
                    fontsize=8)
    save_figure(ctx, figure, "fig3_pixel_histograms.png")
    return rows


def _figure4(ctx: ExperimentContext, pairs: TargetedPairs, source: int, targets: list[int]) -> list[Measurement]:
    """Fig. 4: mean perturbation of the successful ``source → target`` attacks, beside the class-mean difference."""
    class_mean = {c: pairs.clean[pairs.labels == c].mean(0) for c in [source, *targets]}
    figure = new_figure(3.2 * len(targets), 6.0)
    rows = []
    for column, target in enumerate(targets):
        chosen = pairs.select(source, target)
        reference = class_mean[target] - class_mean[source]
        perturbation = ((pairs.adv[chosen] - pairs.clean[pairs.index[chosen]]).mean(0) if chosen.numel()
                        else torch.zeros_like(reference))
        panels = [(perturbation, f"mean adv − x, {source}→{target} (n = {chosen.numel()})"),
                  (reference, f"mean({target}) − mean({source}) originals")]
        for row, (image, title) in enumerate(panels):
            axes = figure.add_subplot(2, len(targets), row * len(targets) + column + 1)
            bound = float(image.abs().max()) or 1.0
            shown = axes.imshow(image[0].numpy(), cmap="RdBu_r", vmin=-bound, vmax=bound)
            figure.colorbar(shown, ax=axes, fraction=0.046)
            axes.set_title(title, fontsize=7)
            axes.set_xticks([])
            axes.set_yticks([])
        if not chosen.numel():
            ctx.log(f"Fig. 4: no successful {source}→{target} attack at this scale")
            continue
        correlation = torch.corrcoef(torch.stack([perturbation.flatten(), reference.flatten()]))[0, 1]
        rows += [
            Measurement(f"fig4.{source}to{target}.correlation", "Fig. 4",
                        f"Pearson correlation of the mean perturbation {source}→{target} with mean({target}) − "
                        f"mean({source}) of the originals", float(correlation), "correlation"),
            Measurement(f"fig4.{source}to{target}.images", "Fig. 4",
                        f"successful {source}→{target} perturbations averaged", float(chosen.numel()), "images"),
        ]
    figure.suptitle(f"Fig. 4: average perturbation, targeted gradient step on F_t (top) and the difference of the "
                    f"class means (bottom); scale {ctx.scale}", fontsize=7)
    save_figure(ctx, figure, "fig4_average_perturbations.png")
    return rows


# ----------------------------------------------------------------------------------- Fig. 5 and MC dropout


def _figure5(ctx: ExperimentContext, ensemble: MCDropoutEnsemble, pairs: TargetedPairs, source: int, target: int,
             seed: int) -> list[Measurement]:
    """Fig. 5: vote histograms of one original and of its adversarial (the first successful source → target pair;
    any successful pair when there is none)."""
    chosen = pairs.select(source, target)
    if not chosen.numel():
        chosen = pairs.success.nonzero().squeeze(1)
    if not chosen.numel():
        ctx.log("Fig. 5: no successful targeted gradient-step attack at this scale")
        return []
    pair = int(chosen[0])
    original = pairs.clean[pairs.index[pair]][None].to(ctx.device)
    adversarial = pairs.adv[pair][None].to(ctx.device)
    with seeded(seed, "fig5", device=ctx.device):
        votes = {"original": ensemble.vote_counts(original)[0].cpu(),
                 "adversarial": ensemble.vote_counts(adversarial)[0].cpu()}
    label, reached = int(pairs.source[pair]), int(pairs.target[pair])
    ctx.extras["fig5_votes"] = {"source": label, "target": reached, "passes": ensemble.passes,
                                **{kind: v.tolist() for kind, v in votes.items()}}
    figure = new_figure(5.0, 5.4)
    figure.subplots_adjust(hspace=0.5)
    rows = []
    for row, (kind, counts) in enumerate(votes.items()):
        axes = figure.add_subplot(2, 1, row + 1)
        axes.bar(range(len(counts)), counts.numpy())
        axes.set_xticks(range(len(counts)))
        axes.set_ylabel("votes", fontsize=8)
        name = f"original (label {label})" if kind == "original" else f"adversarial {label}→{reached}"
        axes.set_title(f"{name}: {ensemble.passes} dropout passes", fontsize=8)
        rows += [
            Measurement(f"fig5.{kind}.top_vote_share", "Fig. 5",
                        f"share of the {ensemble.passes} dropout passes voting for the plurality class: {name}",
                        float(counts.max()) / ensemble.passes, "fraction"),
            Measurement(f"fig5.{kind}.classes_voted", "Fig. 5", f"classes receiving at least one vote: {name}",
                        float((counts > 0).sum()), "classes"),
        ]
    figure.suptitle(f"Fig. 5: MC-dropout vote histograms, targeted gradient step on F_t (scale {ctx.scale})",
                    fontsize=8)
    save_figure(ctx, figure, "fig5_vote_histograms.png")
    return rows


def _targeted_vote_rows(ctx: ExperimentContext, ensemble: MCDropoutEnsemble, pairs: TargetedPairs, limit: int,
                        seed: int) -> list[Measurement]:
    """Fig. 5 over the whole set: votes on (at most ``limit``) successful targeted adversarials and their
    originals; the paper shows one image of each."""
    chosen = pairs.success.nonzero().squeeze(1)[:limit]
    if not chosen.numel():
        return []
    originals = pairs.clean[pairs.index[chosen]].to(ctx.device)
    adversarials = pairs.adv[chosen].to(ctx.device)
    with seeded(seed, "mc-dropout-targeted", device=ctx.device):
        clean_votes, adv_votes = ensemble.vote_counts(originals).cpu(), ensemble.vote_counts(adversarials).cpu()
    n, table = chosen.numel(), "extension: Fig. 5 over every successful targeted gradient-step image"
    vote = adv_votes.argmax(-1)
    return [
        Measurement("mc.targeted.clean_disagreement", table,
                    f"mean vote disagreement (1 − plurality share) on the {n} originals",
                    float(_disagreement(clean_votes).mean()), "fraction"),
        Measurement("mc.targeted.adv_disagreement", table,
                    f"mean vote disagreement on their {n} targeted gradient-step adversarials",
                    float(_disagreement(adv_votes).mean()), "fraction"),
        Measurement("mc.targeted.vote_true_label", table,
                    f"share of the {n} adversarials the MC-dropout vote gives their original label",
                    float((vote == pairs.source[chosen]).float().mean()), "fraction"),
        Measurement("mc.targeted.vote_target", table,
                    f"share of the {n} adversarials the MC-dropout vote still gives the attack's target",
                    float((vote == pairs.target[chosen]).float().mean()), "fraction"),
        Measurement("mc.targeted.detection_auc", table,
                    f"ROC AUC of vote disagreement, {n} originals vs their adversarials",
                    roc_auc(_disagreement(clean_votes), _disagreement(adv_votes)), "AUC"),
    ]


def _untargeted_mc_rows(ctx: ExperimentContext, model: nn.Module, ensemble: MCDropoutEnsemble, test_set: Any,
                        n: int, eps: float, seed: int) -> list[Measurement]:
    """advlab's defense and detection test on untargeted FGSM crafted against the deterministic network."""
    x = test_set.images[:n].float().div(255.0).to(ctx.device)
    y = test_set.labels[:n].to(ctx.device)
    adv = FGSM(eps=eps)(model, x, y).adv
    with seeded(seed, "mc-dropout", device=ctx.device):
        clean_votes, adv_votes = ensemble.vote_counts(x), ensemble.vote_counts(adv)
    with torch.no_grad():
        deterministic = float((model(adv).argmax(-1) == y).float().mean())
    table = "extension: MC-dropout (§3.2) on untargeted FGSM"
    return [
        Measurement("mc.deterministic.fgsm_acc", table,
                    f"deterministic CNN accuracy under untargeted FGSM ε = {eps:g}", deterministic),
        Measurement("mc.vote.clean_acc", table, f"MC-dropout vote ({ensemble.passes} passes) accuracy, clean",
                    float((clean_votes.argmax(-1) == y).float().mean())),
        Measurement("mc.vote.fgsm_acc", table,
                    f"MC-dropout vote accuracy on FGSM ε = {eps:g} images (crafted on the deterministic CNN)",
                    float((adv_votes.argmax(-1) == y).float().mean())),
        Measurement("mc.detection_auc", table, f"ROC AUC of vote disagreement, clean vs FGSM ε = {eps:g}",
                    roc_auc(_disagreement(clean_votes.cpu()), _disagreement(adv_votes.cpu())), "AUC"),
    ]


def _disagreement(votes: torch.Tensor) -> torch.Tensor:
    shares = votes.float() / votes.sum(dim=-1, keepdim=True)
    return 1.0 - shares.amax(dim=-1)


def _balanced(images: torch.Tensor, labels: torch.Tensor, per_class: int,
              num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``per_class`` images of every class as float [0, 1] images and int64 labels, classes in order."""
    index = torch.cat([(labels == k).nonzero().squeeze(1)[:per_class] for k in range(num_classes)])
    return images[index].float().div(255.0), labels[index]
