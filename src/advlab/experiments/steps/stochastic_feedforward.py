"""Jin, Dundar, Culurciello, "Robust convolutional neural networks under adversarial noise" (2015,
arXiv:1511.06306): the stochastic feedforward network (input-noise moments propagated through a trained CNN,
classification by the output means) under FGSM, on CIFAR-10.

Networks:
    * ``nin``: NIN with batch normalization (``nin_bn``), trained with cross-entropy (Table 1 "Standard training");
    * ``nin_adv``: the same network trained with Goodfellow et al.'s FGSM objective, 0.5·CE(x) + 0.5·CE(x_FGSM)
      (Table 1 "Adversarial training"), ε for training ``adv_train_k``/255 (the paper does not state it);
    * ``resnet20`` (extension, not in the paper): the pretrained ResNet-20 (``<data_dir>/pretrained/
      resnet20-12fca82f.th``, ImageNet normalization).

For every network, FGSM images of intensity k (0-255 pixel units, ε = k/255; k = 0 is the clean image) are crafted
on the standard network itself (the paper's setting: adversarial examples made beforehand, App. C.1) and fed to
the stochastic network for every σ_N² in ``input_variances`` ([0, 1] pixel units). The logits of this σ_N² × k grid
are computed once, on the evaluation images and on disjoint held-out images, and every row is read from them:

    * Table 1 (the paper's protocol): per k, the σ_N² with the best accuracy **on the evaluation images** (000:L69
      "a different input variance σ_N² ... for each level of adversarial noise"; 000:L83 "the best classification
      results"); extension rows choose σ_N² per k on the held-out images instead, and advlab's single σ_N² for all
      k (held-out, clean-accuracy budget);
    * Fig. 2: accuracy vs σ_N² at each k; Fig. 3: accuracy vs k at one σ_N² (the single held-out choice);
    * Fig. 4 (extension on CIFAR-10; the paper's is ImageNet): the 1:1 probability ensemble over σ_N²;
    * Fig. 5 / App. E: the clean-accuracy gap to the standard network over σ_N², sorted vs plain max-pool order
      (the paper used AlexNet; here the standard NIN, whose one max-pool is 3x3), and as an extension the distance
      of either order's output means to Monte Carlo;
    * extension: FGSM through the moment network itself (white-box), the honest robustness of the defense.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from advlab.attacks import FGSM
from advlab.data.dataset import ImageDataset
from advlab.data.sources import load_dataset
from advlab.defenses.adversarial_training import FGSMMixedLoss
from advlab.defenses.moments import DEFAULT_VAR_FLOOR
from advlab.defenses.stochastic import MomentNetwork, ensemble_log_probabilities
from advlab.errors import InputError
from advlab.evaluate.runner import run_attack
from advlab.experiments.runner import ExperimentContext, Measurement, register_experiment
from advlab.experiments.steps.common import (
    as_floats,
    attack_accuracy,
    clean_accuracy,
    load_split,
    new_figure,
    pretrained_resnet20,
    save_figure,
    train_model,
)
from advlab.models.registry import create_model

#: Batch size of the moment network's forward passes: measured fastest per image on one CPU thread (NIN, 16-32).
NIN_ADV_INITS = ("scratch", "standard")  # where the FGSM-trained twin starts (nin_adv_init)
MOMENT_BATCH = 32


@register_experiment("stochastic_feedforward", paper="Jin, Dundar, Culurciello 2015 (arXiv:1511.06306)")
def stochastic_feedforward(ctx: ExperimentContext) -> list[Measurement]:
    s = ctx.settings
    test_set, held_out = _evaluation_and_held_out(ctx)
    var_floor = float(s.get("var_floor", DEFAULT_VAR_FLOOR))
    out = [Measurement("settings.var_floor", "App. C", "ε regularizing the ReLU / max-pool denominators (added to "
                       "σ² under the square root here)", var_floor, unit="ε")]
    train_set = load_split(ctx, "train", "nin_n_train")
    start = str(s.get("nin_adv_init", "scratch"))
    if start not in NIN_ADV_INITS:  # checked before any network trains
        raise InputError(f"nin_adv_init must be one of {', '.join(NIN_ADV_INITS)}, got {start!r}")
    standard = _train_nin(ctx, train_set, adversarial=False)
    networks = [
        _Network("nin", "NIN-BN, standard training", standard, maxpool_rows=True),
        _Network("nin_adv", "NIN-BN, FGSM adversarial training",
                 _train_nin(ctx, train_set, adversarial=True, start=standard if start == "standard" else None)),
    ]
    if s.get("resnet20", True):
        networks.append(_Network("resnet20", "ResNet-20 (pretrained)", pretrained_resnet20(ctx), extension=True,
                                 k_values=as_floats(s.get("resnet20_k_values", s["fig3_k_values"]))))
    if s.get("test_split_clean") is not None:
        out.extend(_test_split_clean(ctx, networks, int(s["test_split_clean"])))
    for network in networks:
        grid = _measure_grid(ctx, network, test_set, held_out, var_floor)
        out.extend(_rows(ctx, network, grid, test_set, var_floor))
        _figures(ctx, network, grid)
    return out


# ------------------------------------------------------------------------------------------------------- networks


@dataclass
class _Network:
    """A trained classifier and how its rows are labelled (``extension``: every row is beyond the paper)."""

    prefix: str
    title: str
    model: nn.Module
    extension: bool = False
    maxpool_rows: bool = False
    k_values: list[float] | None = None  # Fig. 3's k list (default: the settings' fig3_k_values)

    def table(self, item: str) -> str:
        """The row's paper item, or an extension label for networks the paper does not have."""
        if self.extension:
            return f"extension: {self.title} (not in the paper), as {item}"
        return item


def _train_nin(ctx: ExperimentContext, train_set: ImageDataset, *, adversarial: bool,
               start: nn.Module | None = None) -> nn.Module:
    """NIN-BN trained with the scale's recipe (not in the paper: our choice) and CE or Goodfellow's FGSM loss.

    ``start``: fine-tune a copy of this network (``nin_adv_init = "standard"``: the FGSM twin starts from the
    standard network, for ``nin_adv_epochs`` at ``nin_adv_lr``) instead of training from scratch.
    """
    s = ctx.settings
    torch.manual_seed(int(s.get("seed", 0)))
    network = copy.deepcopy(start) if start is not None else create_model("nin_bn")
    objective = FGSMMixedLoss(eps=float(s["adv_train_k"]) / 255.0) if adversarial else None
    overrides: dict[str, Any] = {"epochs": int(s["nin_epochs"])}
    if adversarial:
        overrides["epochs"] = int(s.get("nin_adv_epochs", s["nin_epochs"]))
        if s.get("nin_adv_lr") is not None:
            overrides["lr"] = float(s["nin_adv_lr"])
    label = "NIN-BN (standard training)"
    if adversarial:
        label = ("NIN-BN (FGSM adversarial fine-tuning of the standard network)" if start is not None
                 else "NIN-BN (FGSM adversarial training)")
    # The scale's ``precision`` (a TrainConfig field) decides bf16 training; every evaluation below runs in fp32.
    return train_model(ctx, "nin_bn", train_set, objective=objective, label=label, model=network,
                       **overrides).eval()


def _evaluation_and_held_out(ctx: ExperimentContext) -> tuple[ImageDataset, ImageDataset]:
    """``(evaluation images, held-out images)``, disjoint, both from the test split (the pretrained ResNet-20
    saw every training image, so the held-out images for choosing σ_N² come from the test split for all)."""
    s = ctx.settings
    seed = int(s.get("seed", 0))
    full = load_dataset(ctx.preset.dataset, "test", data_dir=ctx.data_dir)
    pool, held_out = full.split(int(s["validation_n"]) / len(full), seed=seed)
    evaluation = pool.subset(int(s.get("n_test") or 0) or None, seed)
    ctx.log(f"σ_N² chosen on {len(held_out)} held-out test images; evaluation on {len(evaluation)} others")
    return evaluation, held_out


def _test_split_clean(ctx: ExperimentContext, networks: list[_Network], n_images: int) -> list[Measurement]:
    """Each network's clean accuracy on ``n_images`` test images (0: every one), beside the Table 1 cell measured on
    the ``n_test`` evaluation images: the standard network's is cheap, so it can be scored on the whole split."""
    data = load_dataset(ctx.preset.dataset, "test", data_dir=ctx.data_dir)
    data = data.subset(n_images or None, int(ctx.settings.get("seed", 0)))
    return [Measurement(f"{n.prefix}.standard.clean_acc_test_split", n.table("Table 1"),
                        f"{n.title}: standard network, clean accuracy on {len(data)} test images (the Table 1 cell "
                        "above uses the evaluation images only)", clean_accuracy(ctx, n.model, data))
            for n in networks]


# ------------------------------------------------------------------------------------------- the σ_N² × k grid


@dataclass
class _Split:
    """Labels and logits of one image set: ``standard[k]`` (N, classes), ``stochastic[(σ², k)]``, ``plain[σ²]``."""

    y: torch.Tensor
    standard: dict[float, torch.Tensor] = field(default_factory=dict)
    stochastic: dict[tuple[float, float], torch.Tensor] = field(default_factory=dict)
    plain: dict[float, torch.Tensor] = field(default_factory=dict)

    def acc(self, logits: torch.Tensor) -> float:
        return int((logits.argmax(-1) == self.y).sum()) / len(self.y)


@dataclass
class _Grid:
    variances: list[float]
    grid_ks: list[float]
    test: _Split
    held_out: _Split
    single: float | None = None  # advlab's one σ_N² for all k, once chosen


def _measure_grid(ctx: ExperimentContext, network: _Network, test_set: ImageDataset, held_out: ImageDataset,
                  var_floor: float) -> _Grid:
    """Logits of the standard and the stochastic network for every σ_N² and grid k, on both image sets, plus
    the Fig. 3 ks (single σ_N² only, filled in later) and the plain max-pool order at k = 0 (Fig. 5)."""
    s = ctx.settings
    variances, grid_ks = as_floats(s["input_variances"]), as_floats(s["grid_k_values"])
    model = network.model.to(ctx.device).eval()
    splits = []
    for data, maxpool in ((test_set, network.maxpool_rows), (held_out, False)):
        x, y = data.images.float().div(255.0), data.labels
        split = _Split(y)
        for k in grid_ks:
            adv = _fgsm_images(ctx, model, x, y, k)
            split.standard[k] = _logits(model, adv, ctx)
            for variance in variances:
                moment = MomentNetwork(model, variance, var_floor=var_floor)
                split.stochastic[(variance, k)] = _logits(moment, adv, ctx, MOMENT_BATCH)
            if k == 0 and maxpool:
                for variance in variances:
                    plain = MomentNetwork(model, variance, sort_maxpool=False, var_floor=var_floor)
                    split.plain[variance] = _logits(plain, adv, ctx, MOMENT_BATCH)
        splits.append(split)
        ctx.log(f"{network.prefix}: σ_N² × k grid done on {len(y)} images")
    test_split, held_out_split = splits
    return _Grid(variances, grid_ks, test_split, held_out_split)


def _fgsm_images(ctx: ExperimentContext, model: nn.Module, x: torch.Tensor, y: torch.Tensor, k: float) -> torch.Tensor:
    """FGSM images of intensity k [px] (ε = k/255) crafted on ``model``; k = 0 returns the clean images."""
    if k == 0:
        return x
    run = run_attack(model, (x, y), FGSM(eps=k / 255.0), device=ctx.device, keep_adversarial=True)
    assert run.adv is not None
    return run.adv


@torch.no_grad()
def _logits(model: nn.Module, x: torch.Tensor, ctx: ExperimentContext, batch_size: int = 256) -> torch.Tensor:
    model.eval()
    return torch.cat([model(x[i:i + batch_size].to(ctx.device)).float().cpu() for i in range(0, len(x), batch_size)])


# ------------------------------------------------------------------------------------------------------ the rows


def _kkey(k: float) -> str:
    return "clean_acc" if k == 0 else f"k{k:g}"


def _klabel(k: float) -> str:
    return "clean" if k == 0 else f"FGSM k = {k:g}"


def _best(split: _Split, variances: list[float], k: float) -> tuple[float, float]:
    """(best accuracy, its σ_N²) over ``variances`` at ``k`` (ties: the smaller σ_N², listed first)."""
    scores = [(split.acc(split.stochastic[(v, k)]), -i, v) for i, v in enumerate(variances)]
    acc, _, variance = max(scores)
    return acc, variance


def _single_variance(ctx: ExperimentContext, grid: _Grid) -> tuple[float, list[tuple[str, str, float, str]]]:
    """advlab's one σ_N² for all k, chosen on the held-out images: the best mean accuracy over the grid's k > 0
    among the candidates whose clean accuracy is at most ``clean_loss_budget`` below the standard network's."""
    budget, h = float(ctx.settings["clean_loss_budget"]), grid.held_out
    attacked = [k for k in grid.grid_ks if k > 0] or [0.0]
    standard_clean = h.acc(h.standard[0.0])
    rows = [("standard.clean_acc", "standard network, clean accuracy", standard_clean, "accuracy")]
    best: tuple[float, float] | None = None
    for variance in grid.variances:
        clean = h.acc(h.stochastic[(variance, 0.0)])
        robust = sum(h.acc(h.stochastic[(variance, k)]) for k in attacked) / len(attacked)
        rows.append((f"var{variance:g}.clean_acc", f"σ_N² = {variance:g}, clean accuracy", clean, "accuracy"))
        rows.append((f"var{variance:g}.mean_fgsm_acc", f"σ_N² = {variance:g}, mean accuracy over FGSM k ∈ "
                     f"{{{', '.join(f'{k:g}' for k in attacked)}}}", robust, "accuracy"))
        if standard_clean - clean <= budget and (best is None or robust > best[0]):
            best = (robust, variance)
    chosen = best[1] if best is not None else min(grid.variances)
    rows.append(("chosen_variance", f"chosen σ_N² (≤ {budget * 100:g} points of clean accuracy lost)", chosen, "σ_N²"))
    return chosen, rows


def _rows(ctx: ExperimentContext, network: _Network, grid: _Grid, test_set: ImageDataset,
          var_floor: float) -> list[Measurement]:
    p, t, h = network.prefix, grid.test, grid.held_out
    out: list[Measurement] = []

    def add(key: str, item: str, label: str, value: float, unit: str = "accuracy") -> None:
        out.append(Measurement(f"{p}.{key}", network.table(item), f"{network.title}: {label}", value, unit))

    table1 = {0.0, 0.5}
    for k in grid.grid_ks:
        item = "Table 1" if k in table1 else "Fig. 3"
        add(f"standard.{_kkey(k)}", item, f"standard network, {_klabel(k)}", t.acc(t.standard[k]))
        acc, variance = _best(t, grid.variances, k)
        item = "Table 1" if k in table1 else f"extension: Table 1's protocol at k = {k:g}"
        add(f"stochastic.{_kkey(k)}", item, f"stochastic FF, {_klabel(k)}, σ_N² = {variance:g} (best on the "
            "evaluation images, the paper's protocol)", acc)
        add(f"stochastic.{_kkey(k)}.variance", "extension: σ_N² per k (best on the evaluation images)",
            f"σ_N² of the Table 1 protocol, {_klabel(k)}", variance, "σ_N²")
        _, held_variance = _best(h, grid.variances, k)
        add(f"stochastic_heldout.{_kkey(k)}", "extension: σ_N² per k chosen on held-out images",
            f"stochastic FF, {_klabel(k)}, σ_N² = {held_variance:g} (best on {len(h.y)} held-out images)",
            t.acc(t.stochastic[(held_variance, k)]))
        add(f"stochastic_heldout.{_kkey(k)}.variance", "extension: σ_N² per k chosen on held-out images",
            f"σ_N² chosen on held-out images, {_klabel(k)}", held_variance, "σ_N²")
        for variance in grid.variances:
            add(f"sweep.var{variance:g}.{_kkey(k)}", "Fig. 2", f"stochastic FF σ_N² = {variance:g}, {_klabel(k)}",
                t.acc(t.stochastic[(variance, k)]))
            add(f"ensemble.var{variance:g}.{_kkey(k)}", "extension: Fig. 4 on CIFAR-10 (the paper's is ImageNet)",
                f"1:1 ensemble with σ_N² = {variance:g}, {_klabel(k)}",
                t.acc(ensemble_log_probabilities(t.standard[k], t.stochastic[(variance, k)])))
    # The ensemble's summary like the paper's text (000:L89): gain under attack and loss on clean images, at the σ_N²
    # whose ensemble is best on the held-out images at k = 0.5.
    if 0.5 in grid.grid_ks and 0.0 in grid.grid_ks:
        scores = [(h.acc(ensemble_log_probabilities(h.standard[0.5], h.stochastic[(v, 0.5)])), -i, v)
                  for i, v in enumerate(grid.variances)]
        variance = max(scores)[2]
        gain = (t.acc(ensemble_log_probabilities(t.standard[0.5], t.stochastic[(variance, 0.5)]))
                - t.acc(t.standard[0.5]))
        clean_ensemble = ensemble_log_probabilities(t.standard[0.0], t.stochastic[(variance, 0.0)])
        loss = t.acc(t.standard[0.0]) - t.acc(clean_ensemble)
        item = "extension: §3 text's ensemble numbers on CIFAR-10 (the paper's are ImageNet)"
        add("ensemble.gain_k0.5", item, f"ensemble (σ_N² = {variance:g}, held-out choice) minus standard, FGSM k = 0.5",
            gain, "accuracy difference")
        add("ensemble.clean_loss", item, f"standard minus ensemble (σ_N² = {variance:g}), clean", loss,
            "accuracy difference")

    single, selection = _single_variance(ctx, grid)
    grid.single = single
    out.extend(Measurement(f"{p}.validation.{key}", network.table("extension: one σ_N² for all k (held-out)"),
                           f"{network.title}, held-out: {label}", value, unit) for key, label, value, unit in selection)
    out.extend(_single_variance_rows(ctx, network, grid, test_set, single, var_floor))
    if network.maxpool_rows:
        baseline = t.acc(t.standard[0.0])
        for variance in grid.variances:
            add(f"maxpool_sorted.var{variance:g}.gap", "Fig. 5", f"clean accuracy gap to the standard network, sorted "
                f"max-pool, σ_N² = {variance:g}", t.acc(t.stochastic[(variance, 0.0)]) - baseline,
                "accuracy difference")
            add(f"maxpool_plain.var{variance:g}.gap", "Fig. 5", f"clean accuracy gap to the standard network, plain "
                f"(raster-order) max-pool, σ_N² = {variance:g}", t.acc(t.plain[variance]) - baseline,
                "accuracy difference")
        out.extend(_maxpool_order_rows(ctx, network, grid, test_set))
    return out


def _maxpool_order_rows(ctx: ExperimentContext, network: _Network, grid: _Grid,
                        test_set: ImageDataset) -> list[Measurement]:
    """Extension to Fig. 5: how often the two max-pool orders disagree, and which one is closer to Monte Carlo.

    App. E's claim is about approximation error; the accuracy gap sees it only where a prediction flips. Here the
    moment network's output means (logits) are compared with the Monte Carlo mean of the standard network's logits
    over ``mc_samples`` draws of x + N(0, σ_N²) (unclipped, the paper's input model) on the first ``mc_images``
    clean evaluation images: the RMS difference in logit units, beside the Monte Carlo mean's own standard error.
    """
    s, p, t = ctx.settings, network.prefix, grid.test
    n_images, samples = int(s["mc_images"]), int(s["mc_samples"])
    x = test_set.images[:n_images].float().div(255.0)
    generator = torch.Generator().manual_seed(int(s.get("seed", 0)))
    item = network.table("extension: Fig. 5's approximation error against Monte Carlo")
    out = []
    for variance in grid.variances:
        sorted_logits, plain_logits = t.stochastic[(variance, 0.0)], t.plain[variance]
        changes = float((sorted_logits.argmax(-1) != plain_logits.argmax(-1)).float().mean())
        out.append(Measurement(f"{p}.maxpool_order.var{variance:g}.prediction_changes", item,
                               f"{network.title}: share of clean evaluation images whose class differs between "
                               f"sorted and plain max-pool, σ_N² = {variance:g}", changes, "fraction"))
        mc_mean, mc_var = _monte_carlo_logits(ctx, network.model, x, variance, samples, generator)
        for order, logits in (("sorted", sorted_logits), ("plain", plain_logits)):
            rms = float((logits[:n_images] - mc_mean).pow(2).mean().sqrt())
            out.append(Measurement(f"{p}.maxpool_{order}.var{variance:g}.mc_rms", item,
                                   f"{network.title}: RMS of moment-network logit means − Monte Carlo means "
                                   f"({samples} draws, {n_images} images), {order} max-pool, σ_N² = {variance:g}",
                                   rms, "logit"))
        out.append(Measurement(f"{p}.mc.var{variance:g}.standard_error", item,
                               f"{network.title}: the Monte Carlo means' own RMS standard error, σ_N² = {variance:g}",
                               float((mc_var / samples).mean().sqrt()), "logit"))
    return out


@torch.no_grad()
def _monte_carlo_logits(ctx: ExperimentContext, model: nn.Module, x: torch.Tensor, variance: float, samples: int,
                        generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image (N, classes): mean and variance of the logits of model(x + N(0, variance)) over ``samples``."""
    model.eval()
    means, variances = [], []
    for image in x:
        noisy = image.unsqueeze(0) + torch.randn((samples,) + tuple(image.shape), generator=generator) * variance**0.5
        logits = _logits(model, noisy, ctx)
        means.append(logits.mean(0))
        variances.append(logits.var(0))
    return torch.stack(means), torch.stack(variances)


def _single_variance_rows(ctx: ExperimentContext, network: _Network, grid: _Grid, test_set: ImageDataset,
                          variance: float, var_floor: float) -> list[Measurement]:
    """Fig. 3 (accuracy vs k at one σ_N²) and the white-box extension, both at the single held-out σ_N²."""
    s, p, t = ctx.settings, network.prefix, grid.test
    model = network.model
    moment = MomentNetwork(model, variance, var_floor=var_floor)
    ks = network.k_values or as_floats(s["fig3_k_values"])
    x = test_set.images.float().div(255.0)
    out = []
    for k in sorted(set(ks) | set(grid.grid_ks)):
        if (variance, k) not in t.stochastic:
            adv = _fgsm_images(ctx, model, x, t.y, k)
            t.standard[k] = _logits(model, adv, ctx)
            t.stochastic[(variance, k)] = _logits(moment, adv, ctx, MOMENT_BATCH)
        if k not in grid.grid_ks:
            out.append(Measurement(f"{p}.standard.{_kkey(k)}", network.table("Fig. 3"),
                                   f"{network.title}: standard network, {_klabel(k)}", t.acc(t.standard[k])))
        out.append(Measurement(f"{p}.stochastic_single.{_kkey(k)}", network.table("Fig. 3"),
                               f"{network.title}: stochastic FF, one σ_N² = {variance:g} (held-out choice), "
                               f"{_klabel(k)}", t.acc(t.stochastic[(variance, k)])))
    for k in as_floats(s.get("whitebox_k_values", [])):
        out.append(Measurement(f"{p}.stochastic_whitebox.{_kkey(k)}", "extension: white-box FGSM",
                               f"{network.title}: stochastic FF (σ_N² = {variance:g}), FGSM k = {k:g} through the "
                               "moment network", attack_accuracy(ctx, moment, test_set, FGSM(eps=k / 255.0))))
    return out


# --------------------------------------------------------------------------------------------------------- figures


def _figures(ctx: ExperimentContext, network: _Network, grid: _Grid) -> None:
    t, p = grid.test, network.prefix
    fig = new_figure(11.0, 3.6)
    ax2, ax3, ax4 = fig.subplots(1, 3)
    for k in grid.grid_ks:
        line = ax2.plot(grid.variances, [t.acc(t.stochastic[(v, k)]) for v in grid.variances], marker="o",
                        label=f"stochastic, k = {k:g}")[0]
        ax2.axhline(t.acc(t.standard[k]), color=line.get_color(), linestyle=":", label=f"standard, k = {k:g}")
        ax4.plot(grid.variances, [t.acc(ensemble_log_probabilities(t.standard[k], t.stochastic[(v, k)]))
                                  for v in grid.variances], marker="s", color=line.get_color(),
                 label=f"ensemble, k = {k:g}")
        ax4.axhline(t.acc(t.standard[k]), color=line.get_color(), linestyle=":")
    single = grid.single
    if single is None:
        raise ValueError(f"{network.prefix}: the single σ_N² is chosen (by _rows) before the figures are drawn")
    ks = sorted(k for k in t.standard if (single, k) in t.stochastic)
    positions = range(len(ks))  # one evenly spaced tick per measured k (k = 0 and 0.5 would overlap otherwise)
    ax3.plot(positions, [t.acc(t.standard[k]) for k in ks], marker="o", label="standard")
    ax3.plot(positions, [t.acc(t.stochastic[(single, k)]) for k in ks], marker="o",
             label=f"stochastic, σ_N² = {single:g}")
    ax3.set_xticks(list(positions), [f"{k:g}" for k in ks])
    for ax, title, xlabel in ((ax2, "Fig. 2: accuracy vs σ_N²", "σ_N² ([0, 1] pixel units)"),
                              (ax3, "Fig. 3: accuracy vs k", "FGSM k [px]"),
                              (ax4, "Fig. 4 (CIFAR-10): 1:1 ensemble", "σ_N² ([0, 1] pixel units)")):
        ax.set_title(title, fontsize=9)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("accuracy")
        if ax is not ax3:
            ax.set_xscale("log")
        ax.legend(fontsize=6)
    fig.suptitle(network.title + (" — extension, not in the paper" if network.extension else ""), fontsize=10)
    save_figure(ctx, fig, f"{p}_figs_2_3_4.png")
    if network.maxpool_rows:
        fig = new_figure(5.0, 3.6)
        ax = fig.subplots()
        baseline = t.acc(t.standard[0.0])
        ax.plot(grid.variances, [t.acc(t.stochastic[(v, 0.0)]) - baseline for v in grid.variances], marker="o",
                label="sorted max-pool (ascending means)")
        ax.plot(grid.variances, [t.acc(t.plain[v]) - baseline for v in grid.variances], marker="s",
                label="plain max-pool (raster order)")
        ax.axhline(0.0, color="gray", linewidth=0.8)
        ax.set_xscale("log")
        ax.set_xlabel("σ_N² ([0, 1] pixel units)")
        ax.set_ylabel("clean accuracy − standard network's")
        ax.set_title(f"Fig. 5 on {network.title} (the paper's is AlexNet)", fontsize=9)
        ax.legend(fontsize=7)
        save_figure(ctx, fig, f"{p}_fig5_maxpool_order.png")
