"""Helpers every experiment shares: data at the preset's scale, training from the settings, accuracies, figures."""

from __future__ import annotations

import dataclasses
import io
import json
import re
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from advlab.attacks.base import Attack
from advlab.data.dataset import ImageDataset
from advlab.data.sources import load_dataset, resolve_data_dir
from advlab.errors import DataError, InputError
from advlab.evaluate import evaluate_attack
from advlab.experiments.presets import SCALE_PROSE
from advlab.experiments.runner import ExperimentContext, Measurement
from advlab.io import write_bytes, write_json
from advlab.models.foreign import load_foreign_weights
from advlab.models.registry import create_model
from advlab.objectives import CrossEntropy
from advlab.seed import seed_everything
from advlab.train import TrainConfig, evaluate, fit
from advlab.training.loop import training_precision
from advlab.training.state import has_training_state

_TRAIN_FIELDS = {f.name for f in dataclasses.fields(TrainConfig)}


def load_split(ctx: ExperimentContext, split: str, size_key: str, dataset: str | None = None) -> ImageDataset:
    """The ``split`` of the preset's dataset, subsampled to ``settings[size_key]`` images (all when absent/0)."""
    n = ctx.settings.get(size_key) or None
    data = load_dataset(dataset or ctx.preset.dataset, split, data_dir=ctx.data_dir, n=n,
                        seed=int(ctx.settings.get("seed", 0)))
    ctx.log(f"{data.name} {split}: {len(data)} images")
    return data


def train_config(settings: dict[str, Any], device: torch.device, **overrides: Any) -> TrainConfig:
    """A TrainConfig from the settings keys that name TrainConfig fields (epochs, lr, optimizer, ...)."""
    values = {key: value for key, value in settings.items() if key in _TRAIN_FIELDS}
    values.update(overrides)
    values["device"] = str(device)
    return TrainConfig.from_dict(values)


def network_folder(ctx: ExperimentContext, label: str) -> Path | None:
    """Where the network ``label`` checkpoints every epoch when the scale sets ``checkpoints = true`` (the medium
    and full scales: a killed reproduction reruns into the same --out and continues each network from its last
    finished epoch, and reuses the finished ones), else None (in memory)."""
    if not ctx.settings.get("checkpoints"):
        return None
    return ctx.out_dir / "networks" / _file_name(label, "network")


def _file_name(label: str, fallback: str) -> str:
    """``label`` as one safe file name: anything but letters, digits and ``_.=-`` becomes ``_``."""
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", label).strip("_") or fallback


def _check_same_network(folder: Path, train_set: ImageDataset, model: nn.Module, *, resume: bool) -> None:
    """Refuse to continue a network whose folder was trained on other images or from other initial weights (``fit``
    itself checks the settings and the objective): a changed preset must not silently reuse an old network."""
    from advlab.evaluate.inputs import as_eval_data, model_fingerprint

    identity = {"data": {"name": train_set.name, "n": len(train_set),
                         "sha256": as_eval_data(train_set).fingerprint()},
                "initial_weights": model_fingerprint(model)}
    marker = folder / "network.json"
    if resume and marker.exists():
        stored = json.loads(marker.read_text(encoding="utf-8"))
        if stored != identity:
            raise InputError(f"{folder} holds a network trained on other data or from other initial weights than this "
                             "preset now asks for; use another --out, or delete that folder to train it again")
    elif not resume:
        write_json(marker, identity)


def train_model(ctx: ExperimentContext, arch: str, train_set: ImageDataset, *, objective: Any = None,
                label: str = "", model_kwargs: dict[str, Any] | None = None, model: nn.Module | None = None,
                card_extra: dict[str, Any] | None = None, **overrides: Any) -> nn.Module:
    """Build ``arch`` (unless ``model`` is given) and train it with the scale's recipe; returns it in eval mode.

    When it builds the network it seeds every generator from the preset's ``seed`` first: torch seeds its global
    generator randomly per process, so without this the initial weights, and every number measured on them,
    changed run to run. A caller that passes ``model`` built (and seeded) it itself. ``card_extra`` goes on the
    checkpoint cards (``fit``'s argument): ``{"defenses": [...]}`` for a model a defense transformed.
    """
    if model is None:
        seed_everything(int(ctx.settings.get("seed", 0)))
        model = create_model(arch, **(model_kwargs or {}))
    config = train_config(ctx.settings, ctx.device, **overrides)
    ctx.log(f"training {label or arch}: {config.epochs} epochs, {config.optimizer} lr {config.lr}, "
            f"{len(train_set)} images, objective {(objective or CrossEntropy()).describe()['name']}")
    folder = network_folder(ctx, label or arch)
    resume = folder is not None and has_training_state(folder)
    if folder is not None:
        _check_same_network(folder, train_set, model, resume=resume)
    result = fit(model, train_set, config=config, objective=objective or CrossEntropy(), quiet=ctx.quiet,
                 device=ctx.device, out_dir=folder, resume=resume, card_extra=card_extra)
    epoch_seconds = [float(entry["time_s"]) for entry in result.history if "time_s" in entry]
    ctx.extras.setdefault("training", {})[label or arch] = {
        "epochs": config.epochs, "images": len(train_set), "wall_time_s": result.wall_time_s,
        # Over every epoch, also those of earlier processes when the network was resumed from its checkpoints.
        "training_s": sum(epoch_seconds), "median_epoch_s": statistics.median(epoch_seconds) if epoch_seconds else None,
        "earlier_processes_s": sum(float(entry.get("time_s", 0.0)) for entry in result.history[:result.resumed_from]),
        "final_train_loss": result.final.get("train_loss"), "precision": training_precision(config, ctx.device),
        "channels_last": config.channels_last,
        **({"resumed_after_epoch": result.resumed_from} if result.resumed_from else {}),
    }
    return result.model.eval()


def measured_once(ctx: ExperimentContext, name: str, model: nn.Module, data: ImageDataset,
                  measure: Callable[[], list[Measurement]]) -> list[Measurement]:
    """``measure()``'s rows of ``model`` on ``data``, kept under ``--out/rows/<name>.json`` when the scale sets
    ``checkpoints = true``: a rerun into the same folder (a killed medium run) reuses them instead of repeating an
    evaluation that can take half an hour, as long as the model's weights, the images and the scale's settings (its
    description and duration aside) are the ones they were measured under; anything else (or an unreadable file)
    measures again and replaces them.

    The rows do not follow a change of the evaluation code itself: after one, use a fresh --out or delete ``rows/``.
    ``ctx.extras["reused_rows"]`` maps each name taken from an earlier process to the seconds that process spent
    measuring it, so the results can count them in the run's duration.
    """
    if not ctx.settings.get("checkpoints"):
        return measure()
    from advlab.evaluate.inputs import as_eval_data, model_fingerprint

    path = ctx.out_dir / "rows" / f"{_file_name(name, 'rows')}.json"
    identity = {"model": model_fingerprint(model), "data": as_eval_data(data).fingerprint(),
                "scale": ctx.scale, "settings": json.loads(json.dumps(
                    {key: value for key, value in ctx.settings.items() if key not in SCALE_PROSE}, default=str))}
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
        if stored["identity"] == identity:
            rows = [Measurement(**row) for row in stored["rows"]]
            ctx.extras.setdefault("reused_rows", {})[name] = float(stored["seconds"])
            ctx.log(f"{name}: {len(rows)} rows reused from {path}")
            return rows
    except FileNotFoundError:
        pass
    except (OSError, ValueError, KeyError, TypeError) as error:
        ctx.log(f"{path} is unreadable ({error}); measuring {name} again")
    begin = time.perf_counter()
    rows = measure()
    write_json(path, {"identity": identity, "seconds": round(time.perf_counter() - begin, 1),
                      "rows": [dataclasses.asdict(row) for row in rows]})
    return rows


# The pretrained CIFAR-10 ResNet-20 under the data folder (its authors' preprocessing: ImageNet mean and std).
PRETRAINED_RESNET20 = "pretrained/resnet20-12fca82f.th"


def pretrained_resnet20(ctx: ExperimentContext) -> nn.Module:
    """The pretrained ResNet-20 on the context's device, in eval mode; a clear error when its file is missing."""
    path = resolve_data_dir(ctx.data_dir) / PRETRAINED_RESNET20
    if not path.is_file():
        raise DataError(f"the pretrained ResNet-20 is not at {path}; pass --data-dir pointing at the folder that "
                        f"holds {PRETRAINED_RESNET20}")
    model = create_model("resnet20", normalization="imagenet")
    return load_foreign_weights(model, path).to(ctx.device).eval()


def clean_accuracy(ctx: ExperimentContext, model: nn.Module, data: ImageDataset) -> float:
    return float(evaluate(model, data, device=ctx.device)["acc"])


def attack_accuracy(ctx: ExperimentContext, model: nn.Module, data: ImageDataset | tuple[torch.Tensor, torch.Tensor],
                    attack: Attack, **kwargs: Any) -> float:
    """Accuracy on ``attack``'s outputs over ``data`` (randomized models get EOT and trials automatically)."""
    seed = int(ctx.settings.get("seed", 0))
    return float(evaluate_attack(model, data, attack, device=ctx.device, seed=seed, **kwargs).robust_accuracy)


def eps_key(eps: float) -> str:
    """A stable key fragment for ε (``0.1`` -> ``"0.1"``, ``8/255`` -> ``"0.03137"``)."""
    return f"{eps:.4g}"


def save_figure(ctx: ExperimentContext, figure: Any, filename: str) -> None:
    """Write a matplotlib Figure as PNG under out_dir and list it in the results."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    write_bytes(ctx.out_dir / filename, buffer.getvalue())
    ctx.extras.setdefault("figures", []).append(filename)


def new_figure(width: float = 6.0, height: float = 4.0) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


def as_floats(values: Sequence[Any]) -> list[float]:
    return [float(v) for v in values]
