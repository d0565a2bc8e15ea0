"""Resume: an interrupted, seeded run continues to bit-identical weights; mismatched or missing state is refused."""

from __future__ import annotations

import json

import pytest
import torch
from fit_helpers import stripes, tiny_model

from advlab.errors import CheckpointError
from advlab.train import TrainConfig, fit

# Every stateful ingredient at once: momentum buffers, a per-step schedule, shuffling, augmentation, dropout
# and batch-norm statistics.
SGD = dict(batch_size=24, optimizer="sgd", lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3,
           schedule="cosine", augmentation="cifar", seed=7)


def _run(out_dir, epochs: int, *, resume: bool = False, **settings):
    torch.manual_seed(0)  # make the model's initialization identical in every run
    model = tiny_model(seed=0)
    config = TrainConfig(epochs=3, **{**SGD, **settings})
    if epochs != config.epochs:
        config = TrainConfig.from_dict({**config.to_dict(), "epochs": epochs})
    return fit(model, stripes(100, seed=4), config=config, val_set=stripes(30, seed=5), out_dir=out_dir,
               resume=resume, quiet=True)


def _assert_identical(a: torch.nn.Module, b: torch.nn.Module) -> None:
    state_a, state_b = a.state_dict(), b.state_dict()
    assert state_a.keys() == state_b.keys()
    for name in state_a:
        assert torch.equal(state_a[name], state_b[name]), f"{name} differs after resume"


@pytest.mark.parametrize("settings", [{}, {"optimizer": "adam", "lr": 0.01, "nesterov": False, "schedule": "onecycle"}],
                         ids=["sgd-cosine", "adam-onecycle"])
def test_resume_is_bit_identical_to_an_uninterrupted_run(tmp_path, settings) -> None:
    full = _run(tmp_path / "full", 3, **settings)
    # The same 3-epoch plan, killed during the third epoch (after its training steps, before its save).
    _interrupt_after(tmp_path / "interrupted", settings, epochs_done=2)
    resumed = _run(tmp_path / "interrupted", 3, resume=True, **settings)
    assert resumed.resumed_from == 2 and len(resumed.history) == 3
    _assert_identical(full.model, resumed.model)
    assert [r["train_loss"] for r in resumed.history] == [r["train_loss"] for r in full.history]
    assert [r["val_acc"] for r in resumed.history] == [r["val_acc"] for r in full.history]
    assert resumed.best == full.best


def _interrupt_after(out_dir, settings, *, epochs_done: int) -> None:
    """Run the same 3-epoch plan in ``out_dir`` but stop after ``epochs_done`` epochs, as a crash would."""

    class Crash(Exception):
        pass

    def crash_hook(model, epoch):
        if epoch == epochs_done:
            raise Crash
        return {}

    torch.manual_seed(0)
    model = tiny_model(seed=0)
    config = TrainConfig(epochs=3, **{**SGD, **settings})
    with pytest.raises(Crash):
        fit(model, stripes(100, seed=4), config=config, val_set=stripes(30, seed=5), out_dir=out_dir,
            quiet=True, eval_hook=crash_hook)
    saved = json.loads((out_dir / "train_state.json").read_text())
    assert saved["epochs_completed"] == epochs_done


def test_fewer_epochs_then_more_with_a_constant_schedule(tmp_path) -> None:
    """Train 2 epochs, then extend the same run to 3: equal to training 3 at once (the schedule is constant)."""
    full = _run(tmp_path / "full", 3, schedule="constant")
    _run(tmp_path / "split", 2, schedule="constant")
    resumed = _run(tmp_path / "split", 3, resume=True, schedule="constant")
    _assert_identical(full.model, resumed.model)
    assert json.loads((tmp_path / "split" / "last.json").read_text())["epochs_completed"] == 3
    assert sorted(p.name for p in (tmp_path / "split").glob("train_state-e*")) == ["train_state-e0003.safetensors"]


def test_resume_refuses_changed_settings_and_missing_or_corrupt_state(tmp_path) -> None:
    with pytest.raises(CheckpointError, match="nothing to resume"):
        _run(tmp_path / "empty", 1, resume=True)
    _run(tmp_path / "run", 1, schedule="constant")
    with pytest.raises(CheckpointError, match="lr: 0.05 -> 0.1"):
        _run(tmp_path / "run", 2, resume=True, schedule="constant", lr=0.1)
    tensors = tmp_path / "run" / "train_state-e0001.safetensors"
    tensors.write_bytes(tensors.read_bytes()[:-10])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        _run(tmp_path / "run", 2, resume=True, schedule="constant")


def test_resume_refuses_another_objective(tmp_path) -> None:
    from advlab.objectives import CrossEntropy

    config = TrainConfig(epochs=1, batch_size=50)
    fit(tiny_model(), stripes(50), config=config, out_dir=tmp_path, quiet=True)
    with pytest.raises(CheckpointError, match="another objective"):
        fit(tiny_model(), stripes(50), config=config, objective=CrossEntropy(label_smoothing=0.1), out_dir=tmp_path,
            resume=True, quiet=True)
