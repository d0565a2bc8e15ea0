"""``measured_once``: a checkpointed scale keeps the rows of a finished evaluation, and a rerun into the same folder
reuses them only while the model, the images and the settings are the ones they were measured under."""

from __future__ import annotations

from pathlib import Path

import torch
from rich.console import Console
from torch import nn

from advlab.data.dataset import ImageDataset
from advlab.experiments.presets import load_preset
from advlab.experiments.runner import ExperimentContext, Measurement, earlier_evaluation_s
from advlab.experiments.steps.common import measured_once


def _context(out: Path, **settings: object) -> ExperimentContext:
    return ExperimentContext(preset=load_preset("pni"), scale="medium", settings={"checkpoints": True, **settings},
                             data_dir=None, out_dir=out, device=torch.device("cpu"), console=Console(quiet=True),
                             quiet=True)


def _data(n: int = 8) -> ImageDataset:
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 1, 4, 4), dtype=torch.uint8, generator=generator)
    return ImageDataset(images, torch.arange(n) % 2, ("a", "b"), "toy/test")


class _Counter:
    """A measurement that counts its calls and returns one row whose value is the call number."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> list[Measurement]:
        self.calls += 1
        return [Measurement("net.clean_acc", "Table 2", "net: clean accuracy", float(self.calls), std=0.5)]


def test_a_rerun_reuses_the_rows_of_the_same_model_data_and_settings(tmp_path: Path) -> None:
    model, data, measure = nn.Linear(16, 2), _data(), _Counter()
    first = measured_once(_context(tmp_path), "resnet20.pni_W", model, data, measure)
    assert measure.calls == 1 and (tmp_path / "rows" / "resnet20.pni_W.json").is_file()

    # A scale's description and duration are words, not settings: editing them keeps the rows.
    rerun = _context(tmp_path, description="now with its measured duration", duration="3 h")
    again = measured_once(rerun, "resnet20.pni_W", model, data, measure)
    assert measure.calls == 1 and again == first  # same values, std and labels: not measured again
    assert set(rerun.extras["reused_rows"]) == {"resnet20.pni_W"}
    assert earlier_evaluation_s(rerun.extras) >= 0.0


def test_another_model_other_images_or_settings_are_measured_again(tmp_path: Path) -> None:
    model, data, measure = nn.Linear(16, 2), _data(), _Counter()
    measured_once(_context(tmp_path), "net", model, data, measure)

    with torch.no_grad():
        model.bias.add_(1.0)
    assert measured_once(_context(tmp_path), "net", model, data, measure)[0].value == 2.0
    assert measured_once(_context(tmp_path), "net", model, _data(9), measure)[0].value == 3.0
    changed = _context(tmp_path, eot_images=500)
    assert measured_once(changed, "net", model, _data(9), measure)[0].value == 4.0
    assert "reused_rows" not in changed.extras
    # The last rows replaced the earlier ones: the same inputs again are reused.
    assert measured_once(_context(tmp_path, eot_images=500), "net", model, _data(9), measure)[0].value == 4.0
    assert measure.calls == 4


def test_an_unreadable_file_is_measured_again_and_replaced(tmp_path: Path) -> None:
    model, data, measure = nn.Linear(16, 2), _data(), _Counter()
    measured_once(_context(tmp_path), "net", model, data, measure)
    stored = tmp_path / "rows" / "net.json"
    stored.write_text('{"identity": {', encoding="utf-8")  # cut off mid-write by something other than advlab

    assert measured_once(_context(tmp_path), "net", model, data, measure)[0].value == 2.0
    assert measured_once(_context(tmp_path), "net", model, data, measure)[0].value == 2.0
    assert measure.calls == 2


def test_without_checkpoints_nothing_is_kept(tmp_path: Path) -> None:
    context = _context(tmp_path)
    context.settings["checkpoints"] = False
    measure = _Counter()
    for _ in range(2):
        measured_once(context, "net", nn.Linear(16, 2), _data(), measure)
    assert measure.calls == 2 and not (tmp_path / "rows").exists()
