"""Hao, Chen, Huang, "Fooling neural networks by adding noises" (MNIST): FGSM vs matched Gaussian noise, FGSM training.

The paper's protocol (003:L47, L197-276):
    Split the 60,000 MNIST training images at random into 50,000 training and 10,000 validation images; train the
    BP net (MLP 784-256-256-10) and the CNN (``mnist_cnn``) on the 50,000 with Adam for 5 epochs. Accuracies are
    measured on 5,000 training and 5,000 validation images ("TRAINING" / "VALIDATION" rows):
    Table 1: clean accuracy.
    Tables 2 (BP) and 3 (CNN): accuracy under FGSM, and under Gaussian noise with the mean and std of the FGSM
        perturbation (``matched_noise``: the same size in a random direction).
    Table 4: the same FGSM accuracy before (ORD) and after (ADV) training with the mixed loss
        α·CE(x) + (1 − α)·CE(x_FGSM), α = 0.5 (Eq. 2, ``fgsm_mixed``).
    Table 5: FGSM and Gaussian-noise accuracy (STD 0.3 for BP, 0.8 for CNN) before → after that training.
The paper states neither FGSM's ε nor the training ε; the preset gives one per network (``paper_eps``,
``adv_train_eps``) and says why. A printed cell that repeats another (Table 4's ORD columns, Table 5's FGSM column,
the §5 text) gets its own key carrying the same measurement, so every cell has a row with its Δ.

Extensions on the MNIST test set: the ε grid (FGSM and matched noise, before and after FGSM training), clean test
accuracy, the accuracy-vs-σ curves of Figs. 7 (CNN) and 8 (BP), the std the matched noise actually gets, and a
labelled calibration row (the grid ε whose FGSM accuracy is closest to the paper's).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from advlab.attacks import FGSM, GaussianNoise, MatchedNoise
from advlab.data.dataset import ImageDataset
from advlab.data.sources import load_dataset
from advlab.defenses.registry import create_defense
from advlab.errors import InputError
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

ARCH_LABELS = {"mlp": "BP", "mnist_cnn": "CNN"}
# The paper's Tables 2 (BP) and 3 (CNN) hold the same measurement for the two networks; Figs. 8 (BP) and 7 (CNN)
# their accuracy-vs-σ curves.
PAPER_TABLE = {"mlp": 2, "mnist_cnn": 3}
PAPER_FIGURE = {"mlp": 8, "mnist_cnn": 7}
# Images used for the std statistic of the FGSM perturbation (a mean of per-image stds; 1,000 pin it to ~1e-3).
NOISE_STD_IMAGES = 1000


@dataclass(frozen=True)
class PaperSets:
    """The paper's evaluation sets for one network: images it was trained on and held-out validation images."""

    train: ImageDataset
    val: ImageDataset


@dataclass(frozen=True)
class PaperNumbers:
    """One network's measurements under the paper's protocol (accuracies as fractions, on 5,000 + 5,000 images).

    ``clean``, ``fgsm`` and ``matched`` hold ("train", "val") accuracies of the standard model; ``adv_fgsm`` those
    of the FGSM-trained model under FGSM; ``gauss_before``/``gauss_after`` the validation accuracy under Gaussian
    noise of Table 5's std σ before and after FGSM training.
    """

    clean: Mapping[str, float]
    fgsm: Mapping[str, float]
    matched: Mapping[str, float]
    adv_fgsm: Mapping[str, float]
    gauss_before: float
    gauss_after: float


def arch_setting(settings: Mapping[str, Any], name: str, arch: str) -> float:
    """``settings[name]`` for ``arch``: a table keyed by network (``{mlp = 0.3, mnist_cnn = 0.8}``) or one number."""
    if name not in settings:
        raise InputError(f"the fooling_noise experiment needs the setting {name!r}")
    value = settings[name]
    if isinstance(value, Mapping):
        if arch not in value:
            raise InputError(f"setting {name!r} gives no value for the network {arch!r}: {dict(value)}")
        value = value[arch]
    return float(value)


def paper_split(ctx: ExperimentContext) -> tuple[ImageDataset, ImageDataset]:
    """The 60,000 training images split at random into (training, validation) of ``n_validation`` (003:L47).

    Seeded by ``settings["seed"]``, so every run, scale and network sees the same split.
    """
    full = load_dataset(ctx.preset.dataset, "train", data_dir=ctx.data_dir)
    n_val = int(ctx.settings["n_validation"])
    if not 0 < n_val < len(full):
        raise InputError(f"n_validation must lie in 1..{len(full) - 1} for {full.name}, got {n_val}")
    train, val = full.split(n_val / len(full), seed=int(ctx.settings.get("seed", 0)))
    ctx.log(f"{full.name}: {len(train)} training + {len(val)} validation images (seeded random split)")
    return train, val


def fgsm_noise_std(model: nn.Module, data: ImageDataset, eps: float, device: torch.device) -> float:
    """Mean per-image std of δ = FGSM_ε(x) − x after the [0, 1] clip: the std ``matched_noise`` draws with.

    Unclipped, ε·sign(∇) has std ε·sqrt(1 − m²) for a mean sign m (≈ ε). On MNIST's many pixels at 0 or 1,
    the clip removes the steps that would leave [0, 1] (about half of them), so the clipped std is smaller.
    """
    attack, stds = FGSM(eps=eps), []
    for x, y in data.batches(256, device=device):
        stds.append((attack(model, x, y).adv - x).flatten(1).std(dim=1))
    return float(torch.cat(stds).mean())


def measure_paper_protocol(ctx: ExperimentContext, model: nn.Module, robust: nn.Module, sets: PaperSets,
                           eps: float, sigma: float) -> PaperNumbers:
    """Tables 1-5's accuracies of one network: ``model`` (standard), ``robust`` (FGSM-trained), FGSM at ``eps``,
    Gaussian noise of std ``sigma`` (Table 5) on the validation images."""
    seed = int(ctx.settings.get("seed", 0))
    parts = {"train": sets.train, "val": sets.val}
    return PaperNumbers(
        clean={part: clean_accuracy(ctx, model, data) for part, data in parts.items()},
        fgsm={part: attack_accuracy(ctx, model, data, FGSM(eps=eps)) for part, data in parts.items()},
        matched={part: attack_accuracy(ctx, model, data, MatchedNoise(eps=eps, seed=seed))
                 for part, data in parts.items()},
        adv_fgsm={part: attack_accuracy(ctx, robust, data, FGSM(eps=eps)) for part, data in parts.items()},
        gauss_before=attack_accuracy(ctx, model, sets.val, GaussianNoise(std=sigma, seed=seed)),
        gauss_after=attack_accuracy(ctx, robust, sets.val, GaussianNoise(std=sigma, seed=seed)),
    )


def paper_measurements(arch: str, numbers: PaperNumbers, eps: float, sigma: float) -> list[Measurement]:
    """Every printed cell of Tables 1-5 and the §5 text for ``arch``, each under its own key.

    Cells that repeat another cell of the paper (Table 4's ORD = Table 2/3's FGSM; Table 5's FGSM column = Table
    4's VALIDATION row; the §5 text = Tables 1 and 4) carry the same measurement under their own key.
    """
    name, table = ARCH_LABELS.get(arch, arch), PAPER_TABLE[arch]
    rows = {"train": "TRAINING", "val": "VALIDATION"}
    out: list[Measurement] = []
    for part, row in rows.items():
        out += [
            Measurement(f"table1.{arch}.{part}_acc", "Table 1", f"{name} clean accuracy, {row}",
                        numbers.clean[part]),
            Measurement(f"text.{arch}.{part}_acc", "§5 text", f"{name} accuracy after 5 epochs, {row} (= Table 1)",
                        numbers.clean[part]),
            Measurement(f"table{table}.{arch}.fgsm.{part}", f"Table {table}",
                        f"{name} accuracy under FGSM ε = {eps:g}, {row}", numbers.fgsm[part]),
            Measurement(f"table{table}.{arch}.matched_noise.{part}", f"Table {table}",
                        f"{name} accuracy under Gaussian noise matched to FGSM ε = {eps:g}, {row}",
                        numbers.matched[part]),
            Measurement(f"table4.{arch}.ord.{part}", "Table 4",
                        f"{name} standard training, FGSM ε = {eps:g}, {row} (= Table {table})", numbers.fgsm[part]),
            Measurement(f"table4.{arch}.adv.{part}", "Table 4",
                        f"{name} after FGSM training, FGSM ε = {eps:g}, {row}", numbers.adv_fgsm[part]),
        ]
    out += [
        Measurement(f"table5.{arch}.fgsm.before", "Table 5",
                    f"{name} FGSM ε = {eps:g}, VALIDATION, before FGSM training (= Table 4)", numbers.fgsm["val"]),
        Measurement(f"table5.{arch}.fgsm.after", "Table 5",
                    f"{name} FGSM ε = {eps:g}, VALIDATION, after FGSM training (= Table 4)", numbers.adv_fgsm["val"]),
        Measurement(f"table5.{arch}.gaussian.before", "Table 5",
                    f"{name} Gaussian noise σ = {sigma:g}, VALIDATION, before FGSM training", numbers.gauss_before),
        Measurement(f"table5.{arch}.gaussian.after", "Table 5",
                    f"{name} Gaussian noise σ = {sigma:g}, VALIDATION, after FGSM training", numbers.gauss_after),
    ]
    # §5 text after Table 4 (003:L248): BP "from around 0.18 to 0.6"; CNN "the accuracy only improves 0.03".
    if arch == "mlp":
        out += [Measurement(f"text.{arch}.ord_fgsm", "§5 text",
                            f"{name} FGSM accuracy before FGSM training (VALIDATION)", numbers.fgsm["val"]),
                Measurement(f"text.{arch}.adv_fgsm", "§5 text",
                            f"{name} FGSM accuracy after FGSM training (VALIDATION)", numbers.adv_fgsm["val"])]
    else:
        out.append(Measurement(f"text.{arch}.adv_gain", "§5 text",
                               f"{name} FGSM accuracy gain from FGSM training (VALIDATION, ADV − ORD)",
                               numbers.adv_fgsm["val"] - numbers.fgsm["val"], unit="accuracy difference"))
    return out


def closest_eps(accuracy_by_eps: Mapping[float, float], target: float) -> float:
    """The ε whose accuracy is closest to ``target`` (ties: the smaller ε). A calibration, never a setting."""
    return min(sorted(accuracy_by_eps), key=lambda eps: abs(accuracy_by_eps[eps] - target))


def _reported_value(ctx: ExperimentContext, key: str) -> float | None:
    return next((r.value for r in ctx.preset.reported if r.key == key), None)


def _arch_training_set(ctx: ExperimentContext, arch: str, train: ImageDataset) -> ImageDataset:
    """The images ``arch`` trains on: all of the training part, or ``n_train[_arch]`` of them at reduced scales."""
    s = ctx.settings
    n = s.get(f"n_train_{arch}", s.get("n_train")) or None
    return train.subset(n, int(s.get("seed", 0)))


@register_experiment("fooling_noise", paper="Hao, Chen, Huang, Fooling neural networks by adding noises")
def fooling_noise(ctx: ExperimentContext) -> list[Measurement]:
    """Per network: train standard and FGSM-trained copies, then the paper's Tables 1-5 and the extensions."""
    s = ctx.settings
    seed, n_eval = int(s.get("seed", 0)), s.get("n_eval") or None
    train_part, val_part = paper_split(ctx)
    test_set = load_split(ctx, "test", "n_test")
    eval_val = val_part.subset(n_eval, seed)
    eps_grid, stds = as_floats(s["fgsm_eps"]), as_floats(s["noise_stds"])
    model_kwargs = {"normalization": s.get("normalization", "mnist")}
    out: list[Measurement] = []
    curves: dict[str, dict[str, list[float]]] = {}
    protocol: dict[str, Any] = {"train_images": len(train_part), "validation_images": len(val_part),
                                "eval_validation_images": len(eval_val)}
    for arch in s["models"]:
        if arch not in PAPER_TABLE:
            raise InputError(f"the fooling_noise experiment runs the paper's networks {sorted(PAPER_TABLE)}, "
                             f"got {arch!r}")
        name = ARCH_LABELS[arch]
        eps, train_eps = arch_setting(s, "paper_eps", arch), arch_setting(s, "adv_train_eps", arch)
        sigma = arch_setting(s, "table5_std", arch)
        epochs = int(s.get(f"epochs_{arch}", s["epochs"]))
        arch_train = _arch_training_set(ctx, arch, train_part)
        # "TRAINING" accuracies are on images the network was trained on (a subset when a scale trains on fewer).
        sets = PaperSets(train=arch_train.subset(n_eval, seed), val=eval_val)
        # train_model seeds before it builds each network: both copies start from the same weights.
        model = train_model(ctx, arch, arch_train, label=f"{name} (standard)", epochs=epochs,
                            model_kwargs=model_kwargs)
        objective = create_defense("fgsm_mixed", eps=train_eps, clean_weight=float(s.get("alpha", 0.5)))
        robust = train_model(ctx, arch, arch_train, objective=objective, label=f"{name} (FGSM mixed-loss)",
                             epochs=epochs, model_kwargs=model_kwargs)
        ctx.log(f"{name}: paper protocol (FGSM ε = {eps:g}, Table 5 σ = {sigma:g}) on {len(sets.train)} training "
                f"+ {len(sets.val)} validation images")
        numbers = measure_paper_protocol(ctx, model, robust, sets, eps, sigma)
        out += paper_measurements(arch, numbers, eps, sigma)
        out.append(Measurement(f"table{PAPER_TABLE[arch]}.{arch}.matched_noise.std",
                               "extension: std of the FGSM perturbation the matched noise copies",
                               f"{name} mean per-image std of FGSM ε = {eps:g} noise after the [0, 1] clip "
                               f"(VALIDATION; Table 5 prints STD = {sigma:g})",
                               fgsm_noise_std(model, eval_val.subset(NOISE_STD_IMAGES, seed), eps, ctx.device),
                               unit="std"))
        ctx.log(f"{name}: test-set extensions (ε grid, noise curves)")
        out += _test_set_extensions(ctx, arch, model, robust, test_set, eps_grid, curves, stds)
        out += _calibration(ctx, arch, out, eps_grid)
        protocol[arch] = {"fgsm_eps": eps, "adv_train_eps": train_eps, "table5_std": sigma, "epochs": epochs,
                          "trained_on": len(arch_train), "eval_training_images": len(sets.train)}
    ctx.extras["paper_protocol"] = protocol
    ctx.extras["noise_curves"] = {"stds": stds, **curves}
    _plot_noise_curves(ctx, stds, curves)
    return out


def _test_set_extensions(ctx: ExperimentContext, arch: str, model: nn.Module, robust: nn.Module,
                         test_set: ImageDataset, eps_grid: list[float], curves: dict[str, dict[str, list[float]]],
                         stds: list[float]) -> list[Measurement]:
    """advlab's rows on the MNIST test set: clean, the ε grid before/after FGSM training, and Figs. 7-8's curves."""
    s, name, seed = ctx.settings, ARCH_LABELS[arch], int(ctx.settings.get("seed", 0))
    where = "extension: MNIST test set"
    out = [Measurement(f"test.{arch}.clean_acc", where, f"{name} clean test accuracy",
                       clean_accuracy(ctx, model, test_set)),
           Measurement(f"test.{arch}.adv.clean_acc", where, f"{name} after FGSM training: clean test accuracy",
                       clean_accuracy(ctx, robust, test_set))]
    for eps in eps_grid:
        key = eps_key(eps)
        out += [
            Measurement(f"test.{arch}.fgsm.{key}", where, f"{name} test accuracy under FGSM, ε = {eps:g}",
                        attack_accuracy(ctx, model, test_set, FGSM(eps=eps))),
            Measurement(f"test.{arch}.matched_noise.{key}", where,
                        f"{name} test accuracy under Gaussian noise matched to FGSM ε = {eps:g}",
                        attack_accuracy(ctx, model, test_set, MatchedNoise(eps=eps, seed=seed))),
            Measurement(f"test.{arch}.adv.fgsm.{key}", where,
                        f"{name} after FGSM training: test accuracy under FGSM, ε = {eps:g}",
                        attack_accuracy(ctx, robust, test_set, FGSM(eps=eps))),
        ]
    draws = int(s.get("noise_draws", 1))
    before = accuracy_vs_noise(model, test_set, stds, draws=draws, device=ctx.device, seed=seed)
    after = accuracy_vs_noise(robust, test_set, stds, draws=draws, device=ctx.device, seed=seed)
    figure = PAPER_FIGURE[arch]
    for std, acc_before, acc_after in zip(stds, before.accuracy, after.accuracy):
        out += [
            Measurement(f"fig{figure}.{arch}.noise.{eps_key(std)}.before", f"Fig. {figure}",
                        f"{name} test accuracy under Gaussian noise σ = {std:g}, standard training", acc_before),
            Measurement(f"fig{figure}.{arch}.noise.{eps_key(std)}.after", f"Fig. {figure}",
                        f"{name} test accuracy under Gaussian noise σ = {std:g}, after FGSM training", acc_after),
        ]
    curves[name] = {"before": list(before.accuracy), "after": list(after.accuracy)}
    return out


def _calibration(ctx: ExperimentContext, arch: str, measured: list[Measurement],
                 eps_grid: list[float]) -> list[Measurement]:
    """The grid ε whose test-set FGSM accuracy is closest to the paper's VALIDATION FGSM number (when recorded).

    A labelled calibration: it shows which attack strength the paper's number corresponds to for our network; no
    other row uses it.
    """
    table = PAPER_TABLE[arch]
    target = _reported_value(ctx, f"table{table}.{arch}.fgsm.val")
    if target is None or not eps_grid:
        return []
    by_key = {m.key: m.value for m in measured}
    accuracy = {eps: by_key[f"test.{arch}.fgsm.{eps_key(eps)}"] for eps in eps_grid}
    return [Measurement(f"calibration.{arch}.closest_eps", "extension: calibration (not a setting)",
                        f"{ARCH_LABELS[arch]} grid ε whose test FGSM accuracy is closest to the paper's Table {table} "
                        f"VALIDATION {target:g}", closest_eps(accuracy, target), unit="eps")]


def _plot_noise_curves(ctx: ExperimentContext, stds: list[float], curves: dict[str, dict[str, list[float]]]) -> None:
    figure = new_figure()
    axes = figure.add_subplot()
    for name, curve in curves.items():
        axes.plot(stds, curve["before"], marker="o", label=f"{name}, standard training")
        axes.plot(stds, curve["after"], marker="s", linestyle="--", label=f"{name}, after FGSM training")
    axes.set_xlabel("Gaussian noise std σ ([0, 1] pixel units)")
    axes.set_ylabel("test accuracy")
    axes.set_title(f"Figs. 7-8: accuracy vs Gaussian noise (scale: {ctx.scale})")
    axes.set_ylim(0, 1.02)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    save_figure(ctx, figure, "accuracy_vs_noise.png")
