"""The α trace behind Fig. 2 of Rakin, He, Fan 2019: one snapshot before every training step, and the last one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from advlab.data.dataset import ImageDataset
from advlab.defenses.adversarial_training import PGDAdversarialTraining
from advlab.defenses.pni import inject_pni, pni_alphas
from advlab.experiments.steps.pni import _AlphaTrace
from advlab.train import TrainConfig, fit


def _data(n: int = 24) -> ImageDataset:
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 1, 8, 8), dtype=torch.uint8, generator=generator)
    return ImageDataset(images, torch.arange(n) % 3, classes=("a", "b", "c"), name="random")


def _model() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 3))
    return inject_pni(net, locations="W")


def test_the_trace_has_a_point_per_step_and_forwards_the_objective_hooks() -> None:
    objective = PGDAdversarialTraining.pni(eps=0.1, step_size=0.05, steps=2, eps_ramp_epochs=2.0)
    trace = _AlphaTrace(objective)
    model = _model()
    fit(model, _data(), config=TrainConfig(epochs=2, batch_size=8, lr=0.5, no_weight_decay=("*pni_alpha*",)),
        objective=trace, quiet=True, device="cpu")
    trace.finish(model)
    assert len(trace.points) == 2 * 3 + 1  # 2 epochs × 3 batches, plus the final α
    epochs = [done for done, _ in trace.points]
    assert epochs[0] == 0.0 and epochs == sorted(epochs) and abs(epochs[-1] - 2.0) < 1e-9
    assert trace.points[0][1] == {name: 0.25 for name in pni_alphas(model)}  # the initial α
    assert trace.points[-1][1] == pni_alphas(model) != trace.points[0][1]  # α was trained
    assert objective.eps_scale == 1.0  # the ε ramp saw the progress: the hooks reached the wrapped objective
    assert trace.describe() == objective.describe()


def test_thinning_keeps_the_first_and_the_last_point() -> None:
    trace = _AlphaTrace(PGDAdversarialTraining.pni())
    trace.points = [(i / 10, {"a": float(i)}) for i in range(1001)]
    kept = trace.thinned()
    assert kept[0] == trace.points[0] and kept[-1] == trace.points[-1] and len(kept) <= 401


class _Killed(Exception):
    """Stands in for the kill of a long training run."""


class _TraceKilledInEpoch2(_AlphaTrace):
    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if len(self.points) == 4:  # epoch 2's second batch, after epoch 1's checkpoint
            raise _Killed
        return super().__call__(model, x, y)


def test_a_network_resumed_by_another_process_continues_the_trace_of_the_epochs_it_keeps(tmp_path: Path) -> None:
    config = TrainConfig(epochs=2, batch_size=8, lr=0.5, no_weight_decay=("*pni_alpha*",))

    def objective() -> PGDAdversarialTraining:
        return PGDAdversarialTraining.pni(eps=0.1, step_size=0.05, steps=2)

    whole = _AlphaTrace(objective())
    model = _model()
    fit(model, _data(), config=config, objective=whole, quiet=True, device="cpu")
    whole.finish(model)

    saved, folder = tmp_path / "alpha_trace.json", tmp_path / "network"
    with pytest.raises(_Killed):
        fit(_model(), _data(), config=config, objective=_TraceKilledInEpoch2(objective(), saved), quiet=True,
            device="cpu", out_dir=folder)
    resumed = _AlphaTrace(objective(), saved)
    model = _model()
    fit(model, _data(), config=config, objective=resumed, quiet=True, device="cpu", out_dir=folder, resume=True)
    resumed.finish(model)
    finished = _AlphaTrace(objective(), saved)  # a third process finds the network trained: nothing left to do
    fit(_model(), _data(), config=config, objective=finished, quiet=True, device="cpu", out_dir=folder, resume=True)
    finished.finish(model)

    for trace in (resumed, finished):
        assert [done for done, _ in trace.points] == pytest.approx([done for done, _ in whole.points], abs=1e-4)
        assert [alphas for _, alphas in trace.points] == [alphas for _, alphas in whole.points]
    assert json.loads(saved.read_text())["trace"][-1]["epoch"] == 2.0
