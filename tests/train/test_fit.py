"""The training loop: it learns, records its metrics, calls the hooks, and refuses bad input clearly."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from fit_helpers import stripes, tiny_model
from torch import nn

from advlab.errors import InputError
from advlab.objectives import CrossEntropy, Objective
from advlab.train import TrainConfig, evaluate, fit

FAST = dict(epochs=3, batch_size=32, optimizer="adam", lr=0.01)


def test_fit_learns_a_separable_problem_and_records_history(tmp_path) -> None:
    train, val = stripes(384, seed=1), stripes(192, seed=2, name="stripes-val")
    model = tiny_model()
    before = evaluate(model, val)
    result = fit(model, train, config=TrainConfig(**FAST), val_set=val, out_dir=tmp_path, quiet=True)

    losses = [record["train_loss"] for record in result.history]
    assert losses[-1] < 0.5 * losses[0]
    assert result.final["val_acc"] > 0.9 > 1 / 3 + 0.1 > before["acc"] - 0.25
    assert result.final["val_loss"] < before["loss"]
    assert [record["epoch"] for record in result.history] == [1, 2, 3]
    assert {"lr", "train_loss", "train_acc", "val_loss", "val_acc", "time_s"} <= set(result.final)
    assert 0.0 <= result.final["train_acc"] <= 1.0
    assert not result.model.training  # returned in eval mode
    # best/last checkpoints with a card carrying the run's metrics
    assert result.best is not None and result.best["metric"] == "val_acc"
    assert result.best_checkpoint == tmp_path / "best.safetensors" and result.last_checkpoint.is_file()
    card = json.loads((tmp_path / "last.json").read_text())
    assert card["metrics"] == result.history and card["epochs_completed"] == 3
    assert card["objective"] == {"name": "cross_entropy", "label_smoothing": 0.0}
    assert card["train"]["optimizer"] == "adam" and card["seed"] == 0
    assert card["dataset"]["n_train"] == 384 and card["dataset"]["val"] == "stripes-val"
    best_card = json.loads((tmp_path / "best.json").read_text())
    assert best_card["best"]["value"] == max(r["val_acc"] for r in result.history)


def test_evaluate_matches_a_direct_computation_and_restores_mode() -> None:
    data = stripes(70, seed=3)
    model = tiny_model().train()
    metrics = evaluate(model, data, batch_size=32)
    assert model.training
    model.eval()
    with torch.no_grad():
        logits = model(data.float_images())
    assert metrics["acc"] == pytest.approx((logits.argmax(1) == data.labels).float().mean().item())
    assert metrics["loss"] == pytest.approx(F.cross_entropy(logits, data.labels).item(), rel=1e-5)


@dataclass
class RecordingObjective:
    """Cross-entropy that records the epochs its hook saw and the batch sizes it was called with."""

    epochs_seen: list[int] = field(default_factory=list)
    batch_sizes: list[int] = field(default_factory=list)

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        assert model.training and x.dtype == torch.float32 and 0.0 <= float(x.min()) and float(x.max()) <= 1.0
        self.batch_sizes.append(int(x.shape[0]))
        return F.cross_entropy(model(x), y)

    def on_epoch_start(self, model: nn.Module, epoch: int) -> None:
        self.epochs_seen.append(epoch)

    def describe(self) -> dict[str, Any]:
        return {"name": "recording"}


def test_objective_hook_eval_hook_and_best_metric() -> None:
    objective = RecordingObjective()
    assert isinstance(objective, Objective)
    hook_calls: list[tuple[int, bool]] = []

    def eval_hook(model: nn.Module, epoch: int) -> dict[str, float]:
        hook_calls.append((epoch, model.training))
        return {"score": [0.2, 0.9, 0.5][epoch]}

    config = TrainConfig(**{**FAST, "batch_size": 40}, best_metric="score")
    result = fit(tiny_model(), stripes(100), config=config, objective=objective, eval_hook=eval_hook, quiet=True,
                 card_extra={"defense": {"name": "none"}})
    assert objective.epochs_seen == [0, 1, 2]
    assert objective.batch_sizes == [40, 40, 20] * 3  # no drop_last: the last partial batch is trained on
    assert hook_calls == [(0, False), (1, False), (2, False)]  # called in eval mode
    assert [r["score"] for r in result.history] == [0.2, 0.9, 0.5]
    assert result.best == {"metric": "score", "value": 0.9, "epoch": 2}
    assert result.card["objective"] == {"name": "recording"} and result.card["defense"] == {"name": "none"}
    assert "val_acc" not in result.final  # no validation set


def test_train_accuracy_is_absent_when_the_objective_never_sees_the_clean_batch() -> None:
    def shifted(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(model((x + 0.01).clamp(0, 1)), y)

    shifted.describe = lambda: {"name": "shifted"}  # type: ignore[attr-defined]
    result = fit(tiny_model(), stripes(64), config=TrainConfig(epochs=1, batch_size=32), objective=shifted,
                 quiet=True)
    assert "train_acc" not in result.final and result.final["train_loss"] > 0


def test_label_smoothing_is_described_and_validated() -> None:
    assert CrossEntropy(label_smoothing=0.1).describe() == {"name": "cross_entropy", "label_smoothing": 0.1}
    with pytest.raises(InputError, match="label_smoothing"):
        CrossEntropy(label_smoothing=1.0)


def test_bad_input_raises_clear_errors(tmp_path) -> None:
    data = stripes(32)
    config = TrainConfig(epochs=1, batch_size=16)
    with pytest.raises(InputError, match="objective"):
        fit(tiny_model(), data, config=config, objective=lambda m, x, y: m(x).sum(), quiet=True)
    with pytest.raises(InputError, match="num_classes=3"):
        fit(tiny_model(num_classes=5), data, config=config, quiet=True)
    with pytest.raises(InputError, match="best_metric 'pgd_acc'"):
        fit(tiny_model(), data, config=TrainConfig(epochs=1, best_metric="pgd_acc"), quiet=True)
    with pytest.raises(InputError, match="empty"):
        fit(tiny_model(), data.select(slice(0, 0)), config=config, quiet=True)
    with pytest.raises(InputError, match="card_extra may not set"):
        fit(tiny_model(), data, config=config, card_extra={"metrics": []}, quiet=True)
    with pytest.raises(InputError, match="resume=True needs"):
        fit(tiny_model(), data, config=config, resume=True, quiet=True)
    with pytest.raises(InputError, match="schedule must be one of"):
        TrainConfig(schedule="linear")
    with pytest.raises(InputError, match="augmentation must be one of"):
        TrainConfig(augmentation="imagenet")
    with pytest.raises(InputError, match="unknown training settings"):
        TrainConfig.from_dict({"epochs": 2, "learning_rate": 0.1})


def test_config_round_trips_through_its_dict() -> None:
    config = TrainConfig(epochs=4, schedule="step", milestones=[2, 3], no_weight_decay=["*alpha*"], betas=[0.8, 0.9])
    assert config.milestones == (2, 3) and config.no_weight_decay == ("*alpha*",)
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_non_quiet_run_prints_one_line_per_epoch(capsys) -> None:
    fit(tiny_model(), stripes(32), config=TrainConfig(epochs=2, batch_size=16), quiet=False)
    err = capsys.readouterr().err
    assert err.count("epoch 1/2") == 1 and err.count("epoch 2/2") == 1 and "train_loss" in err
    fit(tiny_model(), stripes(32), config=TrainConfig(epochs=2, batch_size=16), quiet=True)
    assert capsys.readouterr().err == ""


def test_channels_last_training_matches_the_default_layout(tmp_path) -> None:
    from advlab.models.checkpoint import load_checkpoint

    train = stripes(256, seed=1)
    results = {}
    for channels_last in (False, True):
        # SGD, not Adam: the conv bias before batch norm has a zero gradient, and Adam would blow its rounding
        # noise up to full-size steps
        config = TrainConfig(epochs=2, batch_size=32, optimizer="sgd", lr=0.05, channels_last=channels_last)
        results[channels_last] = fit(tiny_model(), train, config=config, out_dir=tmp_path / str(channels_last),
                                     quiet=True)
    nhwc = results[True].model
    assert nhwc.conv.weight.is_contiguous(memory_format=torch.channels_last)
    for (name, a), b in zip(results[False].model.state_dict().items(), nhwc.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-5), name  # same run; only the summation order may differ
    # the checkpoint of a channels_last run loads into a plain model
    loaded, _ = load_checkpoint(tmp_path / "True" / "last.safetensors", build=tiny_model)
    assert torch.equal(loaded.conv.weight, nhwc.conv.weight)
