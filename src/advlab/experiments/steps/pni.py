"""Rakin, He, Fan, "Parametric Noise Injection" (2019, arXiv:1811.09310), CIFAR-10, ResNet-20.

Steps (each PNI row is evaluated with EOT-PGD, and also without EOT to show what a naive evaluation reports):
    * vanilla adversarial training and PNI adversarial training (PGD-7, ε = 8/255, step 0.01, clean and
      adversarial loss weighted 0.5 each, attack on the model's predicted labels) for every PNI location in
      ``settings.locations`` (Table 2: "W", "A-a", "A-b", "W+A-a", ...);
    * clean / PGD / FGSM accuracy, PNI tested with and without its noise (Table 2);
    * Table 1: the learned α of every layer (PNI-W);
    * Table 3: depth/width variants (``settings.depth_models``; full scale only);
    * Table 4: C&W L2 (accuracy under the attack and mean L2 of the successful perturbations);
    * Table 5: transfer from the undefended pretrained ResNet-20 (PGD) and ZOO (``settings.zoo_images``).
"""

from __future__ import annotations

from typing import Any

import torch

from advlab.attacks import FGSM, PGD, ZOO, CarliniWagnerL2, TransferAttack
from advlab.data.download import resolve_data_dir
from advlab.defenses.adversarial_training import PGDAdversarialTraining
from advlab.defenses.pni import inject_pni, pni_alphas, pni_disabled
from advlab.evaluate import evaluate_attack
from advlab.experiments.runner import (
    ExperimentContext,
    Measurement,
    register_experiment,
)
from advlab.experiments.steps.common import clean_accuracy, load_split, train_model
from advlab.experiments.steps.stochastic_feedforward import PRETRAINED
from advlab.models.foreign import load_foreign_weights
from advlab.models.registry import create_model


@register_experiment("pni", paper="Rakin, He, Fan 2019 (arXiv:1811.09310)")
def pni_experiment(ctx: ExperimentContext) -> list[Measurement]:
    s = ctx.settings
    train_set, test_set = load_split(ctx, "train", "n_train"), load_split(ctx, "test", "n_test")
    eps, step_size, steps = float(s["eps"]), float(s["step_size"]), int(s["pgd_steps"])
    objective = PGDAdversarialTraining.pni(eps=eps, step_size=step_size, steps=steps)
    out: list[Measurement] = []
    pgd = PGD(eps=eps, step_size=step_size, steps=int(s.get("eval_pgd_steps", steps)))
    models: dict[str, torch.nn.Module] = {}

    for arch in [s["model"], *s.get("depth_models", [])]:
        for location in ["none", *s["locations"]]:
            if arch != s["model"] and location not in ("none", "W"):
                continue  # Table 3 compares depths/widths for vanilla and PNI-W only
            name = f"{arch} vanilla adv. training" if location == "none" else f"{arch} PNI-{location}"
            key = f"{arch}.{'vanilla' if location == 'none' else 'pni_' + location}"
            table = "Table 2" if arch == s["model"] else "Table 3"
            model = _initial_model(ctx, arch)
            if location != "none":
                model = inject_pni(model, locations=location, alpha_init=float(s.get("alpha_init", 0.25)),
                                   input_shape=(3, 32, 32))
            model = train_model(ctx, arch, train_set, model=model, objective=objective, label=name,
                                no_weight_decay=() if location == "none" else ("*pni_alpha*",))
            models[key] = model
            out += _robustness_rows(ctx, key, table, name, model, test_set, pgd, FGSM(eps=eps))
            if location != "none":
                with pni_disabled(model):
                    out.append(Measurement(f"{key}.no_noise.clean_acc", table,
                                           f"{name}, tested without noise: clean accuracy",
                                           clean_accuracy(ctx, model, test_set)))
                    out.append(Measurement(f"{key}.no_noise.pgd_acc", table,
                                           f"{name}, tested without noise: PGD accuracy",
                                           _accuracy(ctx, model, test_set, pgd)))
            if arch == s["model"] and location == "W":
                for layer, alpha in pni_alphas(model).items():
                    out.append(Measurement(f"alpha.{layer}", "Table 1", f"learned α, PNI-W, {layer}", alpha, "α"))

    base = f"{s['model']}.pni_W" if f"{s['model']}.pni_W" in models else None
    cw_images = int(s.get("cw_images", 0))
    if cw_images:
        cw = CarliniWagnerL2(steps=int(s["cw_steps"]), binary_steps=int(s["cw_binary_steps"]))
        subset = test_set.subset(cw_images, int(s.get("seed", 0)))
        for key in [f"{s['model']}.vanilla", *([base] if base else [])]:
            point = evaluate_attack(models[key], subset, cw, device=ctx.device, seed=int(s.get("seed", 0)))
            out.append(Measurement(f"{key}.cw.acc", "Table 4", f"{key}: accuracy under C&W L2", point.robust_accuracy))
            l2 = point.mean_norms.get("l2")
            if l2 is not None:
                out.append(Measurement(f"{key}.cw.mean_l2", "Table 4", f"{key}: mean L2 of successful C&W", l2, "L2"))
    if s.get("transfer", False):
        source = _pretrained(ctx)
        transfer = TransferAttack(source=source, attack=PGD(eps=eps, step_size=step_size, steps=steps))
        for key, model in models.items():
            if key.startswith(s["model"]):
                out.append(Measurement(f"{key}.transfer.acc", "Table 5",
                                       f"{key}: accuracy under PGD transferred from the undefended ResNet-20",
                                       _accuracy(ctx, model, test_set, transfer)))
    zoo_images = int(s.get("zoo_images", 0))
    if zoo_images:
        zoo = ZOO(steps=int(s["zoo_steps"]), binary_steps=1)
        subset = test_set.subset(zoo_images, int(s.get("seed", 0)))
        for key in [f"{s['model']}.vanilla", *([base] if base else [])]:
            out.append(Measurement(f"{key}.zoo.acc", "Table 5", f"{key}: accuracy under ZOO",
                                   _accuracy(ctx, models[key], subset, zoo)))
    return out


def _robustness_rows(ctx: ExperimentContext, key: str, table: str, name: str, model: torch.nn.Module,
                     test_set: Any, pgd: PGD, fgsm: FGSM) -> list[Measurement]:
    rows = [Measurement(f"{key}.clean_acc", table, f"{name}: clean accuracy", clean_accuracy(ctx, model, test_set))]
    attacks = [("pgd_acc", "PGD accuracy (EOT for PNI)", pgd, True),
               ("fgsm_acc", "FGSM accuracy (EOT for PNI)", fgsm, True)]
    if "pni" in key:
        attacks.append(("pgd_acc_no_eot", "PGD accuracy without EOT (naive)", pgd, False))
    for suffix, label, attack, eot in attacks:
        point = _evaluated(ctx, model, test_set, attack, eot=eot)
        rows.append(Measurement(f"{key}.{suffix}", table, f"{name}: {label}", point.robust_accuracy))
        if len(point.trials) > 1:  # a randomized model: the spread over the repeated trials
            rows.append(Measurement(f"{key}.{suffix}_std", table,
                                    f"{name}: {label}, std over {len(point.trials)} trials",
                                    point.robust_accuracy_std))
    return rows


def _accuracy(ctx: ExperimentContext, model: torch.nn.Module, data: Any, attack: Any, eot: bool = True) -> float:
    return float(_evaluated(ctx, model, data, attack, eot=eot).robust_accuracy)


def _evaluated(ctx: ExperimentContext, model: torch.nn.Module, data: Any, attack: Any, eot: bool = True) -> Any:
    """The attack's evaluation point: mean (and std) over trials, EOT gradients for randomized models."""
    s = ctx.settings
    return evaluate_attack(model, data, attack, device=ctx.device, eot=eot, eot_samples=int(s.get("eot_samples", 10)),
                           trials=int(s.get("trials", 5)), seed=int(s.get("seed", 0)))


def _pretrained(ctx: ExperimentContext) -> torch.nn.Module:
    model = create_model("resnet20", normalization="imagenet")
    return load_foreign_weights(model, resolve_data_dir(ctx.data_dir) / PRETRAINED).to(ctx.device).eval()


def _initial_model(ctx: ExperimentContext, arch: str) -> torch.nn.Module:
    """From scratch (the paper), or -- at reduced scales -- fine-tuned from the pretrained ResNet-20."""
    if ctx.settings.get("init") == "pretrained" and arch == "resnet20":
        return _pretrained(ctx)
    return create_model(arch)
