"""``fit``: the one training loop every model and defense goes through (DESIGN.md §3.5).

Per epoch: the objective's ``on_epoch_start`` hook, one pass over the shuffled (and augmented) training set with
the objective's loss, validation (loss and accuracy), the caller's ``eval_hook`` metrics, then -- with an
``out_dir`` -- ``best.safetensors`` (when the best metric improved), ``last.safetensors`` and the resumable
training state. Everything random comes from seeded generators whose states are saved, so a run resumed after
any completed epoch ends with bit-identical weights on the same hardware.

Under ``torchrun`` (``WORLD_SIZE`` > 1) the same loop runs data-parallel: see :mod:`advlab.distributed` for how
each global batch is split across the ranks; rank 0 alone writes files and prints.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from advlab.augment import get_augmentation
from advlab.compiling import compiled
from advlab.data.dataset import ImageDataset
from advlab.distributed import (
    all_reduce_sum,
    get_world_size,
    init_from_env,
    is_distributed,
    is_main,
    rank_device,
    shard_batches,
    split_batch,
    wrap_ddp,
)
from advlab.errors import (
    AdvlabError,
    CheckpointError,
    InputError,
    looks_like_shape_mismatch,
)
from advlab.models.checkpoint import RESERVED_CARD_KEYS, save_checkpoint, to_jsonable
from advlab.objectives import CrossEntropy, HookedObjective, TrainingObjective, objective_label, with_hooks
from advlab.precision import autocast as precision_autocast
from advlab.precision import resolve_precision
from advlab.progress import TrainProgress
from advlab.seed import seed_everything
from advlab.training.config import TrainConfig
from advlab.training.optim import build_optimizer, lr_multiplier, set_lr
from advlab.training.state import (
    TrainingState,
    clear_training_state,
    has_training_state,
    load_training_state,
    save_training_state,
    saved_config,
    saved_objective,
)

EvalHook = Callable[[nn.Module, int], Mapping[str, float]]
# Settings that may change between an interrupted run and its resumption without changing what is computed.
RESUMABLE_CHANGES = frozenset({"epochs", "device", "channels_last", "precision", "compile"})
BUILTIN_METRICS = frozenset({"epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "time_s"})


@dataclass
class TrainResult:
    """What ``fit`` returns.

    Attributes:
        model: the trained model (last epoch's weights), in eval mode, on the training device.
        history: one dict per epoch: ``epoch`` (1-based), ``lr`` (at the epoch's last step), ``train_loss``,
            ``train_acc`` (on the clean batches the objective evaluated in train mode; absent when it evaluated
            none, e.g. adversarial-only training), ``val_loss``, ``val_acc`` (with a validation set), the
            ``eval_hook`` metrics, ``time_s`` (wall seconds of the epoch).
        best: ``{"metric", "value", "epoch"}`` of the best epoch by ``config.best_metric`` (None without it).
        card: the card written with the checkpoints (the same entries without ``out_dir``).
        last_checkpoint / best_checkpoint: paths of ``last.safetensors`` / ``best.safetensors`` (None without
            ``out_dir``; best also None when the metric never appeared).
        resumed_from: epochs already completed when this call started (0 for a fresh run).
    """

    model: nn.Module
    history: list[dict[str, Any]]
    best: dict[str, Any] | None
    card: dict[str, Any]
    last_checkpoint: Path | None = None
    best_checkpoint: Path | None = None
    resumed_from: int = 0
    wall_time_s: float = 0.0
    config: TrainConfig = field(default_factory=TrainConfig)

    @property
    def final(self) -> dict[str, Any]:
        """The last epoch's metrics."""
        return self.history[-1] if self.history else {}


class _TrainAccuracyProbe:
    """Counts correct predictions from the model's train-mode forward passes on the current batch itself.

    Objectives return only a loss; a forward hook sees the logits of any pass they make on ``x`` (the very
    tensor ``fit`` handed them), so clean training accuracy costs an argmax, not an extra forward pass. Passes on
    other inputs (adversarial or noisy copies) and eval-mode passes inside attacks are not counted.
    """

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.x: torch.Tensor | None = None
        self.y: torch.Tensor | None = None
        self.correct: torch.Tensor | int = 0
        self.seen = 0
        self.checked = False
        self._counted = True  # nothing to count before the first batch

    def __deepcopy__(self, memo: dict[int, Any]) -> _TrainAccuracyProbe:
        # A deep copy of the model (an objective's frozen snapshot) copies its hooks; the copy must not count.
        return _TrainAccuracyProbe(self.num_classes)

    def batch(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y, self._counted = x, y, False

    def reset(self) -> None:
        self.correct, self.seen = 0, 0

    def __call__(self, module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        labels = self.y
        if not module.training or self._counted or not args or args[0] is not self.x or labels is None \
                or not isinstance(output, torch.Tensor) or output.dim() != 2:
            return
        if not self.checked:
            if output.shape[1] != self.num_classes:
                raise InputError(f"the model returns {output.shape[1]} logits per image but the dataset has "
                                 f"{self.num_classes} classes; build the model with num_classes="
                                 f"{self.num_classes}")
            self.checked = True
        self._counted = True  # a second pass on the same batch (e.g. a mixed loss) must not count twice
        self.correct = self.correct + (output.detach().argmax(dim=1) == labels).sum()
        self.seen += int(labels.shape[0])

    @property
    def accuracy(self) -> float | None:
        return float(self.correct) / self.seen if self.seen else None


def resolve_device(device: str | torch.device | None, config: TrainConfig) -> torch.device:
    chosen = device if device is not None else config.device
    if chosen is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(chosen)
    except (RuntimeError, TypeError) as exc:
        raise InputError(f"unknown device {chosen!r}; use 'cpu', 'cuda' or 'cuda:<index>'") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {chosen!r} was asked for but CUDA is not available; use device='cpu'")
    return resolved


def training_precision(config: TrainConfig, device: torch.device) -> str:
    """``"fp32"`` or ``"bf16"``: ``config.precision`` on this device (``auto`` decided by the hardware), with the
    older ``amp`` switch meaning bf16 on CUDA."""
    if config.amp and device.type == "cuda":
        return "bf16"
    return resolve_precision(config.precision, device)


def autocast(device: torch.device, precision: str | bool) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast on ``device`` for ``precision="bf16"`` (bf16 needs no loss scaling); a no-op for fp32.

    ``True``/``False`` are the older ``amp`` switch: bf16 on CUDA only.
    """
    if isinstance(precision, bool):
        precision = "bf16" if precision and device.type == "cuda" else "fp32"
    return precision_autocast(precision, device)


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def evaluate(model: nn.Module, dataset: ImageDataset, *, batch_size: int = 512, device: torch.device | None = None,
             amp: bool = False) -> dict[str, float]:
    """Mean cross-entropy and accuracy of ``model`` on ``dataset`` in eval mode: ``{"loss", "acc"}``.

    The model's mode is restored afterwards. Logits are summed in float32 (cross-entropy of bf16 logits would
    round the loss). In a distributed run this is a collective: every rank must call it; each evaluates its share
    of the batches and all get the totals.
    """
    device = device or next(iter(model.parameters()), torch.empty(0)).device
    total_loss = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    mine = set(shard_batches(-(-len(dataset) // batch_size))) if is_distributed() else None
    with _eval_mode(model), torch.no_grad():
        for index, (x, y) in enumerate(dataset.batches(batch_size, device=device)):
            if mine is not None and index not in mine:
                continue
            with autocast(device, amp):
                logits = model(x)
            logits = logits.float()
            total_loss += F.cross_entropy(logits, y, reduction="sum").double()
            correct += (logits.argmax(dim=1) == y).sum()
    loss_sum, correct_sum = all_reduce_sum([total_loss, correct], device=device)
    n = max(len(dataset), 1)
    return {"loss": loss_sum / n, "acc": correct_sum / n}


def _dataset_entry(train_set: ImageDataset, val_set: ImageDataset | None) -> dict[str, Any]:
    return {
        "train": train_set.name, "n_train": len(train_set),
        "val": val_set.name if val_set is not None else None, "n_val": len(val_set) if val_set is not None else 0,
        "classes": list(train_set.classes), "image_shape": list(train_set.image_shape),
    }


def _improved(value: float, best: dict[str, Any] | None, mode: str) -> bool:
    if best is None:
        return True
    return value < best["value"] if mode == "min" else value > best["value"]


def _check_resumable(saved: Mapping[str, Any], config: TrainConfig, out_dir: Path) -> None:
    current = config.to_dict()
    changed = sorted(key for key in set(saved) | set(current)
                     if key not in RESUMABLE_CHANGES and saved.get(key) != current.get(key))
    if changed:
        details = ", ".join(f"{key}: {saved.get(key)!r} -> {current.get(key)!r}" for key in changed)
        raise CheckpointError(f"cannot resume the run in {out_dir} with different settings ({details}); use the "
                              "original settings (only epochs and device may change) or start a new run")


def _check_same_objective(saved: Any, objective: TrainingObjective, out_dir: Path) -> None:
    current = to_jsonable(objective.describe())
    if saved != current:
        raise CheckpointError(f"cannot resume the run in {out_dir} with another objective (saved {saved}, now "
                              f"{current}); resume with the original objective or start a new run")


def _train_one_epoch(
    model: nn.Module, train_set: ImageDataset, objective: HookedObjective, optimizer: torch.optim.Optimizer, *,
    config: TrainConfig, multiplier: Callable[[int], float], step: int, steps_per_epoch: int,
    augment: Callable[..., torch.Tensor],
    data_generator: torch.Generator, device: torch.device, probe: _TrainAccuracyProbe,
    trained_params: list[torch.Tensor], progress: TrainProgress,
) -> tuple[float, float, int]:
    """One pass over the shuffled, augmented training set; returns (mean loss, last lr, global step).

    Distributed: every rank draws and augments the same global batch and trains on its slice of it; ``model`` is
    then the DDP wrapper, which averages the gradients. Scaling each rank's mean loss by its share of the batch
    makes that average the full batch's mean gradient even when the slices differ in size.
    """
    precision = training_precision(config, device)
    model.train()
    probe.reset()
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    seen = 0
    world_size = get_world_size()
    lr = set_lr(optimizer, multiplier(step))
    batches = train_set.batches(config.batch_size, shuffle=True, generator=data_generator, device=device,
                                drop_last=config.drop_last)
    for batch_index, (x, y) in enumerate(batches):
        x = augment(x, data_generator)
        if config.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        lr = set_lr(optimizer, multiplier(step))
        objective.on_batch_start((step + 1) / steps_per_epoch)
        global_n = int(y.shape[0])
        if world_size > 1:
            if global_n < world_size:  # a rank would get no image (every rank skips it alike)
                continue
            mine = split_batch(global_n)
            x, y = x[mine], y[mine]
        probe.batch(x, y)
        optimizer.zero_grad(set_to_none=True)
        try:
            with autocast(device, precision):
                loss = objective(model, x, y)
        except RuntimeError as exc:
            if batch_index or not looks_like_shape_mismatch(exc):  # the first batch tells a wrong input shape
                raise
            raise InputError(f"the model cannot train on images of shape {tuple(x.shape[1:])} from "
                             f"{train_set.name} ({exc}); use a model built for this dataset (see `advlab "
                             "models`)") from exc
        if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
            raise InputError(f"the objective {objective_label(objective)} must return a scalar tensor loss, got "
                             f"{type(loss).__name__}")
        if world_size > 1:
            (loss * (y.shape[0] * world_size / global_n)).backward()
        else:
            loss.backward()
        if config.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(trained_params, config.grad_clip)
        optimizer.step()
        step += 1
        loss_sum += loss.detach().double() * y.shape[0]
        seen += int(y.shape[0])
        # Reading the loss forces a device sync: only every 20 batches, and only when bars show it.
        if progress.bars and batch_index % 20 == 0:
            _show(progress, batch_index + 1, float(loss_sum) / seen, probe.accuracy)
    if world_size > 1:
        total_loss, total_seen, total_correct, total_probed = all_reduce_sum(
            [loss_sum, seen, probe.correct, probe.seen], device=device)
        seen, probe.correct, probe.seen = int(total_seen), int(total_correct), int(total_probed)
        loss_sum = torch.tensor(total_loss, dtype=torch.float64)
    mean_loss = float(loss_sum) / max(seen, 1)
    if progress.bars:
        _show(progress, batch_index + 1, mean_loss, probe.accuracy)
    return mean_loss, lr, step


def _show(progress: TrainProgress, batches_done: int, loss: float, accuracy: float | None) -> None:
    progress.update(batches_done, loss=loss, **({"acc": accuracy} if accuracy is not None else {}))


def _validation_metrics(model: nn.Module, val_set: ImageDataset | None, eval_hook: EvalHook | None, epoch: int, *,
                        config: TrainConfig, device: torch.device) -> dict[str, float]:
    """``val_loss``/``val_acc`` on the validation set and the ``eval_hook``'s metrics (model in eval mode)."""
    metrics: dict[str, float] = {}
    if val_set is not None and len(val_set):
        scores = evaluate(model, val_set, batch_size=max(config.batch_size, 256), device=device, amp=config.amp)
        metrics["val_loss"], metrics["val_acc"] = scores["loss"], scores["acc"]
    if eval_hook is not None:
        with _eval_mode(model):
            hooked = dict(eval_hook(model, epoch))
        clash = sorted(BUILTIN_METRICS & set(hooked))
        if clash:
            raise InputError(f"eval_hook returned metrics {clash}, names fit uses itself; rename them")
        metrics.update({key: float(value) for key, value in hooked.items()})
    return metrics


def fit(
    model: nn.Module,
    train_set: ImageDataset,
    *,
    config: TrainConfig,
    objective: TrainingObjective | None = None,
    val_set: ImageDataset | None = None,
    out_dir: str | Path | None = None,
    resume: bool = False,
    card_extra: Mapping[str, Any] | None = None,
    quiet: bool = False,
    device: str | torch.device | None = None,
    eval_hook: EvalHook | None = None,
    extra_param_groups: tuple[dict, ...] = (),
) -> TrainResult:
    """Train ``model`` on ``train_set`` by minimizing ``objective`` (default :class:`CrossEntropy`).

    Args:
        model: takes float32 (N, C, H, W) images in [0, 1], returns (N, num_classes) logits. Trained in place
            and moved to the device.
        train_set / val_set: uint8 datasets (see ``ImageDataset``); the validation set gives ``val_loss`` and
            ``val_acc`` each epoch. Split one with ``train_set.split(config.val_fraction, seed=config.seed)``.
        config: every optimization setting (:class:`TrainConfig`).
        objective: a :class:`~advlab.objectives.TrainingObjective`: ``objective(model, x, y) -> scalar loss`` with
            ``describe()``; its hooks ``on_epoch_start(model, epoch)`` (0-based) and ``on_batch_start(epochs_done)``
            are called when it has them (see ``advlab.objectives``).
        out_dir: where ``last``/``best`` checkpoints (``.safetensors`` + ``.json`` card) and the resumable
            training state go, after every epoch. None keeps everything in memory.
        resume: continue the interrupted run in ``out_dir`` from its last completed epoch (same settings and
            objective; only ``epochs`` and ``device`` may change, and a longer run re-plans a cosine/onecycle
            schedule over the new length). Without it, a previous state in ``out_dir`` is replaced.
        card_extra: entries added to the card's top level (e.g. ``{"defense": {...}}``).
        quiet: no output at all; otherwise progress bars on a terminal and one line per epoch on stderr.
        device: overrides ``config.device``; default CUDA when available.
        eval_hook: ``eval_hook(model, epoch) -> {metric: float}`` called after validation each epoch (0-based
            epoch, model in eval mode); its metrics join the history, and ``config.best_metric`` may name one
            (e.g. PGD accuracy to guard fast-FGSM training against catastrophic overfitting).
        extra_param_groups: additional torch parameter groups (parameters outside ``model``, own settings).

    Returns a :class:`TrainResult`. Call ``seed_everything(config.seed)`` before building the model so the
    initialization repeats too; ``fit`` reseeds the global generators itself before training.

    Example::

        seed_everything(0)
        model = create_model("mnist_cnn")
        result = fit(model, train, config=TrainConfig(epochs=1, optimizer="adam", lr=1e-3), val_set=test)
    """
    hooked = with_hooks(CrossEntropy() if objective is None else objective)
    if not isinstance(config, TrainConfig):
        raise InputError(f"config must be a TrainConfig, got {type(config).__name__}")
    if len(train_set) == 0:
        raise InputError(f"the training set {train_set.name} is empty; check the data source and --n")
    if val_set is not None and val_set.image_shape != train_set.image_shape:
        raise InputError(f"validation images have shape {val_set.image_shape} but training images "
                         f"{train_set.image_shape}; use two splits of the same dataset")
    extra = dict(card_extra or {})
    reserved = sorted((RESERVED_CARD_KEYS | {"dataset", "objective", "train", "metrics", "best", "seed",
                                             "epochs_completed", "world_size"}) & set(extra))
    if reserved:
        raise InputError(f"card_extra may not set {reserved}; fit writes those entries itself")
    out_path = Path(out_dir) if out_dir is not None else None
    if resume and out_path is None:
        raise InputError("resume=True needs the out_dir of the interrupted run")

    run_device = resolve_device(device, config)
    distributed = init_from_env(run_device)  # torchrun: WORLD_SIZE > 1
    run_device = rank_device(run_device)
    write_dir = out_path if is_main() else None  # where this process writes files (rank 0 only)
    seed_everything(config.seed)
    # One CPU generator for shuffling and augmentation, seeded apart from the global stream (seed + 1) so the
    # shuffle order is not correlated with dropout masks drawn from the same seed.
    data_generator = torch.Generator().manual_seed(config.seed + 1)
    model.to(run_device)
    if config.channels_last:  # before the optimizer is built: its state then matches the parameters' layout
        # torch's stubs omit Module.to's memory_format keyword, which nn.Module.to accepts at runtime.
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    if run_device.type != "cpu":  # uint8 datasets fit on the GPU; per-batch host copies would dominate
        train_set = train_set.to(run_device)
        val_set = val_set.to(run_device) if val_set is not None else None
    augment = get_augmentation(config.augmentation)
    optimizer = build_optimizer(model, config, extra_param_groups)
    trained_params = [param for group in optimizer.param_groups for param in group["params"]]
    steps_per_epoch = (len(train_set) // config.batch_size if config.drop_last
                       else math.ceil(len(train_set) / config.batch_size))
    multiplier = lr_multiplier(config, steps_per_epoch)

    history: list[dict[str, Any]] = []
    best: dict[str, Any] | None = None
    start_epoch_index, step = 0, 0
    if out_path is not None:
        if resume:
            _check_resumable(saved_config(out_path), config, out_path)
            _check_same_objective(saved_objective(out_path), hooked, out_path)
            saved = load_training_state(out_path, model=model, optimizer=optimizer, data_generator=data_generator)
            start_epoch_index, step = saved.epochs_completed, saved.global_step
            history, best = saved.history, saved.best
        elif write_dir is not None and has_training_state(write_dir):
            clear_training_state(write_dir)
    # Wrapped after loading the state (DDP broadcasts rank 0's weights when built); only the objective sees the
    # wrapper: checkpoints, validation and eval_hook use the plain model.
    train_model = wrap_ddp(model)
    if config.compile:
        train_model = compiled(train_model, run_device)
    if distributed:
        extra["world_size"] = get_world_size()

    def build_card() -> dict[str, Any]:
        return to_jsonable({
            "dataset": _dataset_entry(train_set, val_set), "objective": hooked.describe(),
            "train": config.to_dict(), "precision": training_precision(config, run_device), "seed": config.seed,
            "epochs_completed": len(history),
            "metrics": history, "best": best, **extra,
        })

    probe = _TrainAccuracyProbe(train_set.num_classes)
    handle = model.register_forward_hook(probe)
    started = time.perf_counter()
    last_path = best_path = None
    try:
        with TrainProgress(config.epochs, quiet=quiet or not is_main()) as progress:
            if start_epoch_index:
                progress.note(f"resuming {out_path} after epoch {start_epoch_index}/{config.epochs}")
            for epoch in range(start_epoch_index, config.epochs):
                epoch_started = time.perf_counter()
                hooked.on_epoch_start(model, epoch)
                progress.start_epoch(epoch, total_batches=steps_per_epoch)
                train_loss, lr, step = _train_one_epoch(
                    train_model, train_set, hooked, optimizer, config=config, multiplier=multiplier, step=step,
                    steps_per_epoch=steps_per_epoch, augment=augment, data_generator=data_generator,
                    device=run_device, probe=probe, trained_params=trained_params, progress=progress)
                if not math.isfinite(train_loss):
                    raise AdvlabError(f"the training loss became {train_loss} in epoch {epoch + 1}; lower lr "
                                      f"(now {config.lr}), set grad_clip, or check the data")
                record: dict[str, Any] = {"epoch": epoch + 1, "lr": lr, "train_loss": train_loss}
                if probe.accuracy is not None:
                    record["train_acc"] = probe.accuracy
                record.update(_validation_metrics(model, val_set, eval_hook, epoch, config=config, device=run_device))
                record["time_s"] = time.perf_counter() - epoch_started
                history.append(record)

                metric = config.best_metric
                if metric not in record and not (metric == "val_acc" and val_set is None):
                    raise InputError(f"best_metric {metric!r} is not among the epoch metrics "
                                     f"{sorted(record)}; pass val_set or an eval_hook that returns it")
                improved = metric in record and _improved(record[metric], best, config.best_mode)
                if improved:
                    best = {"metric": metric, "value": record[metric], "epoch": epoch + 1}
                if write_dir is not None:
                    card = build_card()
                    if improved:
                        best_path = write_dir / "best.safetensors"
                        save_checkpoint(best_path, model, card)
                    last_path = write_dir / "last.safetensors"
                    save_checkpoint(last_path, model, card)
                    save_training_state(write_dir, TrainingState(
                        epoch + 1, step, history, best, config.to_dict(), to_jsonable(hooked.describe())),
                                        model=model, optimizer=optimizer, data_generator=data_generator)
                progress.end_epoch(_summary(record, config.epochs))
    finally:
        handle.remove()
    if out_path is not None and best is not None and (out_path / "best.safetensors").is_file():
        best_path = out_path / "best.safetensors"
    if out_path is not None and (out_path / "last.safetensors").is_file():
        last_path = out_path / "last.safetensors"
    model.eval()
    return TrainResult(model=model, history=history, best=best, card=build_card(), last_checkpoint=last_path,
                       best_checkpoint=best_path, resumed_from=start_epoch_index,
                       wall_time_s=time.perf_counter() - started, config=config)


def _summary(record: Mapping[str, Any], epochs: int) -> str:
    parts = [f"epoch {record['epoch']}/{epochs}"]
    for key, value in record.items():
        if key not in ("epoch", "time_s"):
            parts.append(f"{key} {value:.4g}")
    parts.append(f"{record['time_s']:.1f}s")
    return "  ".join(parts)
