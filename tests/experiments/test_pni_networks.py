"""The networks the pni reproduction trains are ordinary advlab checkpoints: their card names the PNI defense (so
``advlab evaluate --weights`` rebuilds the noise layers) and the objective they were trained with; their finished
worst-case evaluations are kept for a later process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from rich.console import Console

from advlab.data.dataset import ImageDataset
from advlab.defenses.pni import PNITransform, pni_alphas
from advlab.experiments.presets import load_preset
from advlab.experiments.runner import ExperimentContext
from advlab.experiments.steps.pni import _Protocol, _Run, _train, _worst_case
from advlab.loading import load_model
from advlab.models import create_model


def _images(n: int = 8) -> ImageDataset:
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=generator)
    return ImageDataset(images, torch.arange(n) % 10, tuple(str(c) for c in range(10)), "random/train")


def _tiny_run(out_dir: Path, **overrides: object) -> _Run:
    """A run of the pni preset's tiny scale into ``out_dir``, checkpointing (so rows are kept), as a new process
    would start it."""
    preset = load_preset("pni")
    settings = {**preset.scale_settings("tiny"), "checkpoints": True, **overrides}
    ctx = ExperimentContext(preset=preset, scale="tiny", settings=settings, data_dir=None, out_dir=out_dir,
                            device=torch.device("cpu"), console=Console(quiet=True), quiet=True)
    return _Run(ctx, _Protocol.from_settings(settings))


def test_a_trained_pni_network_loads_back_with_its_noise(tmp_path: Path) -> None:
    run = _tiny_run(tmp_path, init="scratch", train_attack_precision="bf16")
    trained = _train(run, "resnet20", "pni_W", "W", _images(), scratch=True)

    loaded = load_model(None, tmp_path / "networks" / "resnet20.pni_W" / "last.safetensors")
    assert loaded.card["defenses"] == [{"name": "pni", "locations": "W", "granularity": "layer",
                                        "alpha_init": 0.25, "activation_std": "tensor"}]
    assert loaded.card["objective"]["attack_precision"] == "bf16"
    assert len(pni_alphas(loaded.model)) == 20 and pni_alphas(loaded.model) == pni_alphas(trained)
    state = trained.state_dict()
    assert all(torch.equal(tensor, state[key]) for key, tensor in loaded.model.state_dict().items())


def test_a_finished_worst_case_is_kept_and_a_later_process_reuses_it(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    def run_in_new_process() -> _Run:
        run = _tiny_run(tmp_path)
        torch.manual_seed(0)
        run.models["resnet20.vanilla"] = create_model("resnet20").eval()
        return run

    first = _worst_case(run_in_new_process(), _images(4))
    assert [row.key for row in first] == ["resnet20.vanilla.worst_case_acc"]
    assert (tmp_path / "rows" / "resnet20.vanilla.worst_case.json").is_file()

    def not_again(*args: object, **kwargs: object) -> None:
        raise AssertionError("a finished worst case was evaluated again")

    monkeypatch.setattr("advlab.evaluate.pipeline.evaluate_model", not_again)
    later = run_in_new_process()
    assert _worst_case(later, _images(4)) == first
    assert set(later.ctx.extras["reused_rows"]) == {"resnet20.vanilla.worst_case"}


def test_a_noisy_models_worst_case_is_re_judged_on_fresh_draws(tmp_path: Path) -> None:
    run = _tiny_run(tmp_path)
    torch.manual_seed(0)
    run.models["resnet20.pni_W"] = PNITransform(locations="W").apply(create_model("resnet20")).eval()

    rows = {row.key: row for row in _worst_case(run, _images(6))}
    assert set(rows) == {f"resnet20.pni_W.{name}" for name in (
        "worst_case_acc", "worst_case_trial0_acc", "worst_case_redrawn_expected_acc",
        "worst_case_redrawn_majority_acc", "worst_case_fooled_by_draw")}
    assert all(0.0 <= row.value <= 1.0 for row in rows.values())
    # The rerun of the first trial gives the verdict that trial gave inside the worst-case evaluation.
    card = json.loads((tmp_path / "worst_case" / "pni_W" / "card.json").read_text())
    assert rows["resnet20.pni_W.worst_case_trial0_acc"].value == card["cascade"]["trial_stage_robust_accuracy"][0][-1]
    assert (tmp_path / "rows" / "resnet20.pni_W.worst_case_redrawn.json").is_file()
