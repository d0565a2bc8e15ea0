"""Jin, Dundar, Culurciello, "Robust convolutional neural networks under adversarial noise" (2015,
arXiv:1511.06306), Table 1 on CIFAR-10: the stochastic feedforward network (input-noise moments propagated
through a trained CNN, classification by the output means) under FGSM.

Steps:
    * the pretrained ResNet-20 (``<data_dir>/pretrained/resnet20-12fca82f.th``, ImageNet normalization) and an
      advlab-trained NIN (the only one of the two with a max-pool);
    * accuracy vs k, the FGSM intensity in 0-255 pixel units (ε = k/255): the standard network, and the
      stochastic network both on FGSM images crafted against the standard network (the paper's setting) and
      white-box (FGSM through the moment network, which is differentiable);
    * the σ_N² sweep (input variance, [0, 1] pixel units) at one k;
    * NIN with the max-pool folded in sorted vs plain (raster) order;
    * the 1:1 ensemble of standard and stochastic network (probabilities averaged).

σ_N² is chosen on a validation split (``validation_n`` test images held out, disjoint from the evaluation
images, since the pretrained network saw the whole training set): among ``input_variances``, the one with the
highest mean FGSM accuracy over ``selection_k_values`` whose clean accuracy is at most ``clean_loss_budget``
below the standard network's. Without a validation split the fixed ``input_variance`` is used.
"""

from __future__ import annotations

import torch

from advlab.attacks import FGSM
from advlab.data.dataset import ImageDataset
from advlab.data.sources import load_dataset
from advlab.data.download import resolve_data_dir
from advlab.defenses.stochastic import MomentPropagationTransform
from advlab.errors import DataError
from advlab.evaluate.runner import run_attack
from advlab.experiments.runner import (
    ExperimentContext,
    Measurement,
    register_experiment,
)
from advlab.experiments.steps.common import (
    as_floats,
    attack_accuracy,
    clean_accuracy,
    load_split,
    train_model,
)
from advlab.models.foreign import load_foreign_weights
from advlab.models.registry import create_model

PRETRAINED = "pretrained/resnet20-12fca82f.th"


@register_experiment("stochastic_feedforward", paper="Jin, Dundar, Culurciello 2015 (arXiv:1511.06306)")
def stochastic_feedforward(ctx: ExperimentContext) -> list[Measurement]:
    s = ctx.settings
    test_set, validation_set = _evaluation_and_validation(ctx)
    ks, variances = as_floats(s["k_values"]), as_floats(s["input_variances"])
    sweep_k = float(s["sweep_k"])
    out: list[Measurement] = []
    networks = {"resnet20": _pretrained_resnet20(ctx)}
    if s.get("nin_epochs", 0):
        train_set = load_split(ctx, "train", "nin_n_train")
        networks["nin"] = train_model(ctx, "nin", train_set, label="NIN", epochs=int(s["nin_epochs"]))
    x = test_set.images.float().div(255.0)
    y = test_set.labels
    for arch, model in networks.items():
        model = model.to(ctx.device).eval()
        main_variance = float(s["input_variance"])
        if validation_set is not None:
            main_variance, selection = _select_variance(ctx, model, validation_set, variances)
            out.extend(Measurement(f"{arch}.validation.{key}", "σ_N² selection (validation split)",
                                   f"{arch}, validation: {label}", value, unit)
                       for key, label, value, unit in selection)
        stochastic = MomentPropagationTransform(input_variance=main_variance).apply(model)
        ensemble = MomentPropagationTransform(input_variance=main_variance, ensemble=True).apply(model)
        out.append(Measurement(f"{arch}.standard.clean_acc", "Table 1", f"{arch} standard: clean accuracy",
                               clean_accuracy(ctx, model, test_set)))
        out.append(Measurement(f"{arch}.stochastic.clean_acc", "Table 1",
                               f"{arch} stochastic (σ_N² = {main_variance:g}): clean accuracy",
                               clean_accuracy(ctx, stochastic, test_set)))
        for k in ks:
            eps = k / 255.0
            transferred = _fgsm_images(ctx, model, x, y, eps)
            out.append(Measurement(f"{arch}.standard.k{k:g}", "Table 1", f"{arch} standard: accuracy, FGSM k = {k:g}",
                                   _accuracy(model, transferred, y, ctx)))
            out.append(Measurement(f"{arch}.stochastic.k{k:g}", "Table 1",
                                   f"{arch} stochastic (σ_N² = {main_variance:g}): accuracy, FGSM k = {k:g} crafted "
                                   "on the standard network", _accuracy(stochastic, transferred, y, ctx)))
            out.append(Measurement(f"{arch}.stochastic_whitebox.k{k:g}", "Table 1 (white-box)",
                                   f"{arch} stochastic (σ_N² = {main_variance:g}): accuracy, FGSM k = {k:g} through "
                                   "the moment network", attack_accuracy(ctx, stochastic, test_set, FGSM(eps=eps))))
            out.append(Measurement(f"{arch}.ensemble.k{k:g}", "Table 1",
                                   f"{arch} 1:1 ensemble: accuracy, FGSM k = {k:g} crafted on the standard network",
                                   _accuracy(ensemble, transferred, y, ctx)))
        sweep_images = _fgsm_images(ctx, model, x, y, sweep_k / 255.0)
        for variance in variances:
            network = MomentPropagationTransform(input_variance=variance).apply(model)
            out.append(Measurement(f"{arch}.sweep.var{variance:g}", "σ_N² sweep",
                                   f"{arch} stochastic σ_N² = {variance:g}: accuracy, FGSM k = {sweep_k:g} "
                                   "crafted on the standard network", _accuracy(network, sweep_images, y, ctx)))
        if any(isinstance(m, torch.nn.MaxPool2d) for m in model.modules()):
            plain = MomentPropagationTransform(input_variance=main_variance, sort_maxpool=False).apply(model)
            out.append(Measurement(f"{arch}.plain_maxpool.k{sweep_k:g}", "max-pool order",
                                   f"{arch} stochastic, plain (raster-order) max-pool: accuracy, FGSM k = {sweep_k:g}",
                                   _accuracy(plain, sweep_images, y, ctx)))
            out.append(Measurement(f"{arch}.sorted_maxpool.k{sweep_k:g}", "max-pool order",
                                   f"{arch} stochastic, sorted max-pool: accuracy, FGSM k = {sweep_k:g}",
                                   _accuracy(stochastic, sweep_images, y, ctx)))
    return out


def _evaluation_and_validation(ctx: ExperimentContext) -> tuple[ImageDataset, ImageDataset | None]:
    """``(evaluation images, validation images or None)``, disjoint, both from the test split."""
    n_validation = int(ctx.settings.get("validation_n", 0))
    if not n_validation:
        return load_split(ctx, "test", "n_test"), None
    seed = int(ctx.settings.get("seed", 0))
    full = load_dataset(ctx.preset.dataset, "test", data_dir=ctx.data_dir)
    pool, validation = full.split(n_validation / len(full), seed=seed)
    evaluation = pool.subset(int(ctx.settings.get("n_test") or 0) or None, seed)
    ctx.log(f"σ_N² chosen on {len(validation)} held-out test images; evaluation on {len(evaluation)}")
    return evaluation, validation


def _select_variance(ctx: ExperimentContext, model: torch.nn.Module, validation: ImageDataset,
                     candidates: list[float]) -> tuple[float, list[tuple[str, str, float, str]]]:
    """The σ_N² among ``candidates`` with the best mean FGSM accuracy whose clean cost stays within budget."""
    s = ctx.settings
    budget, selection_ks = float(s["clean_loss_budget"]), as_floats(s["selection_k_values"])
    x, y = validation.images.float().div(255.0), validation.labels
    standard_clean = _accuracy(model, x, y, ctx)
    crafted = [_fgsm_images(ctx, model, x, y, k / 255.0) for k in selection_ks]
    rows: list[tuple[str, str, float, str]] = [("standard.clean_acc", "standard network, clean accuracy",
                                                standard_clean, "accuracy")]
    best: tuple[float, float] | None = None  # (mean FGSM accuracy, variance)
    for variance in candidates:
        network = MomentPropagationTransform(input_variance=variance).apply(model)
        clean = _accuracy(network, x, y, ctx)
        robust = sum(_accuracy(network, adv, y, ctx) for adv in crafted) / len(crafted)
        rows.append((f"var{variance:g}.clean_acc", f"σ_N² = {variance:g}, clean accuracy", clean, "accuracy"))
        rows.append((f"var{variance:g}.mean_fgsm_acc", f"σ_N² = {variance:g}, mean accuracy over FGSM k ∈ "
                     f"{{{', '.join(f'{k:g}' for k in selection_ks)}}}", robust, "accuracy"))
        if standard_clean - clean <= budget and (best is None or robust > best[0]):
            best = (robust, variance)
    chosen = best[1] if best is not None else min(candidates)
    ctx.log(f"chosen σ_N² = {chosen:g} (clean-accuracy budget {budget:g})")
    rows.append(("chosen_variance", f"chosen σ_N² (≤ {budget * 100:g} points of clean accuracy lost)", chosen,
                 "σ_N²"))
    return chosen, rows


def _pretrained_resnet20(ctx: ExperimentContext) -> torch.nn.Module:
    path = resolve_data_dir(ctx.data_dir) / PRETRAINED
    if not path.is_file():
        raise DataError(f"the pretrained ResNet-20 is not at {path}; pass --data-dir pointing at the folder that "
                        f"holds {PRETRAINED}")
    model = create_model("resnet20", normalization="imagenet")
    return load_foreign_weights(model, path).eval()


def _fgsm_images(ctx: ExperimentContext, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                 eps: float) -> torch.Tensor:
    run = run_attack(model, (x, y), FGSM(eps=eps), device=ctx.device, keep_adversarial=True)
    assert run.adv is not None
    return run.adv


@torch.no_grad()
def _accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, ctx: ExperimentContext,
              batch_size: int = 256) -> float:
    model.eval()
    correct = 0
    for start in range(0, len(y), batch_size):
        xb, yb = x[start:start + batch_size].to(ctx.device), y[start:start + batch_size].to(ctx.device)
        correct += int((model(xb).argmax(-1) == yb).sum())
    return correct / len(y)
