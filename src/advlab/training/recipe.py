"""The recipe behind ``advlab train``: model + optional defense + ``fit()``, with the test set checked each epoch.

A defense from the registry is an objective (``fit(objective=...)``), a model transform (``apply(model)``, e.g.
PNI noise layers), both, or a two-stage recipe (:mod:`advlab.training.two_stage`); the contracts are in
:mod:`advlab.defenses.base`. A run takes at most one objective, at most one recipe and any transforms (PNI + PGD
training is ``["pni", "pgd_at"]``). Their ``describe()`` dicts go into the checkpoint card under ``defenses`` so
that loading the checkpoint re-applies the transforms (see :func:`advlab.loading.load_model`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from advlab.data.dataset import ImageDataset
from advlab.defenses.base import ModelTransform, TrainingObjective, TwoStageRecipe
from advlab.errors import InputError
from advlab.seed import seed_everything
from advlab.training.config import TrainConfig
from advlab.training.loop import TrainResult, evaluate, fit


def resolve_device(device: str | None) -> str:
    """``"auto"``/None -> ``"cuda"`` when a GPU is visible, else ``"cpu"``; ``cpu``, ``cuda`` and ``cuda:N``
    are checked against this machine and this torch build (an :class:`InputError` says what to use instead)."""
    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    text = str(device).strip().lower()
    if text == "cpu":
        return "cpu"
    if text == "cuda" or (text.startswith("cuda:") and text[5:].isdigit()):
        if not torch.cuda.is_available():
            build = "a CPU-only torch build" if torch.version.cuda is None else "no visible CUDA GPU"
            raise InputError(f"--device {device}: this machine has {build} (torch {torch.__version__}); use "
                             "--device cpu, or auto")
        index = int(text[5:]) if ":" in text else 0
        if index >= torch.cuda.device_count():
            raise InputError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) are visible")
        return text
    raise InputError(f"unknown --device {device!r}; use cpu, cuda, cuda:N or auto")


@dataclass
class DefenseSetup:
    """The registered defenses of one run: at most one training objective, any number of model transforms."""

    objective: TrainingObjective | None = None
    transforms: list[ModelTransform] = field(default_factory=list)
    cards: list[dict[str, Any]] = field(default_factory=list)
    recipe: TwoStageRecipe | None = None  # a two-stage defense (distillation, denoiser): see training.two_stage

    @property
    def no_weight_decay(self) -> tuple[str, ...]:
        return tuple(pattern for t in self.transforms for pattern in t.no_weight_decay)


def check_setting_types(name: str, settings: Mapping[str, Any]) -> None:
    """Refuse a setting whose value cannot be what the defense's default is (``eps=abc`` where a number goes).

    Command-line values arrive parsed as Python literals (``0.3``, ``True``) or as strings; a string or a bool
    where the default is a number, or a non-bool where it is a bool, is a typo the defense would only trip over
    in the middle of training. The defaults are read from a default instance (defenses are light dataclasses).
    """
    from advlab.defenses.registry import create_defense

    if not settings:
        return
    try:
        defaults = create_defense(name)
    except InputError:  # a defense with required settings: its own constructor checks them
        return
    for key, value in settings.items():
        default = getattr(defaults, key, None)
        if isinstance(default, bool):
            wrong, wanted = not isinstance(value, bool), "True or False"
        elif isinstance(default, (int, float)):
            wrong, wanted = isinstance(value, (bool, str)) or not isinstance(value, (int, float)), "a number"
        else:
            continue
        if wrong:
            raise InputError(f"defense {name!r}: {key} must be {wanted} (default {default!r}), got {value!r}")


def build_defenses(names: Sequence[str], settings: Mapping[str, Mapping[str, Any]]) -> DefenseSetup:
    """Create each named defense with ``settings[name]``; e.g. ``["pni", "pgd_at"]`` is PNI-W trained with PGD.

    A defense of kind ``both`` serves as the objective and as a transform; one of kind ``recipe`` (two stages:
    distillation, denoiser) is run by :func:`advlab.training.two_stage.train_two_stage`, with the objective, if
    any, training its first stage (e.g. van Everdingen's adversarially trained distillation teacher).
    """
    from advlab.defenses.registry import DEFENSES, create_defense

    unknown = sorted(set(settings) - set(names))
    if unknown:
        raise InputError(f"settings given for {unknown}, which is not among the chosen defenses {list(names)}")
    setup = DefenseSetup()
    for name in names:
        kind = DEFENSES.entry(name).info["kind"]
        check_setting_types(name, settings.get(name, {}))
        defense = create_defense(name, **dict(settings.get(name, {})))
        if kind == "recipe":
            assert isinstance(defense, TwoStageRecipe), name  # the registry derived the kind from the class
            if setup.recipe is not None:
                raise InputError(f"{name!r} and {setup.recipe.describe()['name']!r} are both two-stage recipes; "
                                 "choose one")
            setup.recipe = defense
        if kind in ("objective", "both"):
            assert isinstance(defense, TrainingObjective), name
            if setup.objective is not None:
                raise InputError(f"{name!r} and {setup.objective.describe()['name']!r} are both training objectives; "
                                 "choose one (transforms such as pni combine with any objective)")
            setup.objective = defense
        if kind in ("transform", "both"):
            assert isinstance(defense, ModelTransform), name
            setup.transforms.append(defense)
        setup.cards.append(defense.describe())
    return setup


def with_transforms(model: nn.Module, transforms: Sequence[ModelTransform]) -> nn.Module:
    """``model`` with each transform applied in order, keeping the architecture spec the checkpoint card records
    (a wrapper such as input noise or the moment network is rebuilt from the base architecture plus the card's
    defenses, so the card must name the base)."""
    spec = getattr(model, "advlab_spec", None)
    for transform in transforms:
        model = transform.apply(model)
    if spec is not None and getattr(model, "advlab_spec", None) is None:
        model.advlab_spec = spec
    return model


def train_with_defense(
    model_name: str,
    train_set: ImageDataset,
    test_set: ImageDataset,
    *,
    model_args: Mapping[str, Any] | None = None,
    defenses: Sequence[str] = (),
    defense_args: Mapping[str, Mapping[str, Any]] | None = None,
    config: Mapping[str, Any],
    out_dir: str | Path,
    resume: bool = False,
    device: str | None = "auto",
    quiet: bool = False,
    robust_check: int = 0,
) -> TrainResult:
    """Train ``model_name`` on ``train_set`` with registered defenses; ``test_acc`` logged per epoch.

    ``config`` holds :class:`TrainConfig` fields; with ``val_fraction > 0`` a seeded share of ``train_set`` is held
    out as the validation set that selects ``best.safetensors``.

    ``robust_check = n > 0`` (adversarial-training objectives only) measures PGD-10 accuracy at the objective's ε
    on n fixed images after every epoch (``pgd_acc``) and keeps ``best.safetensors`` by it: the guard against
    catastrophic overfitting of fast FGSM training (Wong et al. 2020, §5). The images come from the validation
    split, or else from the training set (Wong et al. check a training minibatch: the collapse shows there
    too), never from the test set that reports the result.
    """
    from advlab.loading import build_architecture

    device = resolve_device(device)
    setup = build_defenses(defenses, defense_args or {})
    train_config = TrainConfig(**{**config, "device": device,
                                  "no_weight_decay": tuple(config.get("no_weight_decay", ())) + setup.no_weight_decay})
    # Seed before building: torch seeds its global generator randomly per process, so without this two runs
    # with the same --seed would start from different initial weights.
    seed_everything(train_config.seed)
    model = with_transforms(build_architecture(model_name, model_args or {}), setup.transforms)

    val_set = None
    if train_config.val_fraction > 0:
        train_set, val_set = train_set.split(train_config.val_fraction, seed=train_config.seed)
    robust_hook = None
    if robust_check:
        robust_hook = _robust_check_hook(setup.objective, val_set if val_set is not None else train_set,
                                         n=robust_check, seed=train_config.seed)
        train_config = dataclasses.replace(train_config, best_metric="pgd_acc")

    def test_accuracy(trained: nn.Module, epoch: int) -> dict[str, float]:
        metrics = {"test_acc": evaluate(trained, test_set, device=torch.device(device))["acc"]}
        if robust_hook is not None:
            metrics.update(robust_hook(trained, epoch))
        return metrics

    card_extra: dict[str, Any] = {"test_dataset": test_set.name}
    if setup.cards:
        card_extra["defenses"] = setup.cards
    if setup.recipe is not None:
        def fresh_model() -> nn.Module:  # the second network of a recipe: same architecture and transforms
            return with_transforms(build_architecture(model_name, model_args or {}), setup.transforms)

        from advlab.training.two_stage import train_two_stage

        return train_two_stage(setup, model, fresh_model, train_set, config=train_config, val_set=val_set,
                               out_dir=Path(out_dir), resume=resume, card_extra=card_extra, quiet=quiet,
                               device=device, eval_hook=test_accuracy)
    return fit(model, train_set, config=train_config, objective=setup.objective, val_set=val_set, out_dir=out_dir,
               resume=resume, card_extra=card_extra, quiet=quiet, device=device, eval_hook=test_accuracy)


def _robust_check_hook(objective: TrainingObjective | None, check_set: ImageDataset, *, n: int, seed: int
                       ) -> Callable[[nn.Module, int], dict[str, float]]:
    """The per-epoch PGD check of :func:`train_with_defense` at the objective's ε (see its docstring)."""
    from advlab.defenses.adversarial_training import pgd_accuracy_hook

    if not isinstance(n, int) or n < 1:
        raise InputError(f"robust_check must be a number of images >= 1, got {n!r}")
    eps = getattr(objective, "eps", None)
    if not isinstance(eps, (int, float)) or eps <= 0:
        raise InputError("the robust check attacks at the training attack's ε; choose an adversarial-training "
                         "defense (fast_fgsm, pgd_at, fgsm_mixed, ...) or drop --robust-check")
    return pgd_accuracy_hook(check_set, eps=float(eps), n=min(n, len(check_set)), seed=seed)
