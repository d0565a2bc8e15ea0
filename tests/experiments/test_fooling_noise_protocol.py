"""The fooling-noise experiment's paper protocol: the 50k/10k split, every printed cell under its own key, the ε
settings per network, the std the matched noise copies, and the calibration helper."""

from __future__ import annotations

import pytest
import torch
from rich.console import Console
from torch import nn

from advlab.data.dataset import ImageDataset
from advlab.errors import InputError
from advlab.experiments import load_preset
from advlab.experiments.presets import names_paper_item
from advlab.experiments.runner import ExperimentContext
from advlab.experiments.steps import fooling_noise as steps
from advlab.experiments.steps.fooling_noise import (
    PaperNumbers,
    arch_setting,
    closest_eps,
    fgsm_noise_std,
    paper_measurements,
    paper_split,
)


def _numbers(offset: float) -> PaperNumbers:
    """Distinct values per cell, so an alias that reads the wrong cell shows."""
    return PaperNumbers(clean={"train": offset + 0.01, "val": offset + 0.02},
                        fgsm={"train": offset + 0.03, "val": offset + 0.04},
                        matched={"train": offset + 0.05, "val": offset + 0.06},
                        adv_fgsm={"train": offset + 0.07, "val": offset + 0.09},
                        gauss_before=offset + 0.10, gauss_after=offset + 0.11)


def test_every_printed_cell_of_the_shipped_preset_is_produced_with_its_repeats_equal() -> None:
    measured = {m.key: m for arch, offset in (("mlp", 0.0), ("mnist_cnn", 0.5))
                for m in paper_measurements(arch, _numbers(offset), eps=0.3, sigma=0.3)}
    reported = {r.key for r in load_preset("fooling-noise").reported}
    assert len(reported) == 35  # Tables 1-5 (4 + 4 + 4 + 8 + 8) and the §5 text (4 + 3)
    assert reported <= set(measured), sorted(reported - set(measured))
    assert all(names_paper_item(m.table) and not m.table.startswith("extension") for m in measured.values())
    value = {key: m.value for key, m in measured.items()}
    # Repeated cells read the same measurement as the cell they repeat.
    assert value["table4.mlp.ord.train"] == value["table2.mlp.fgsm.train"] == 0.03
    assert value["table4.mnist_cnn.ord.val"] == value["table3.mnist_cnn.fgsm.val"] == 0.54
    assert value["table5.mlp.fgsm.after"] == value["table4.mlp.adv.val"] == 0.09
    assert value["table5.mnist_cnn.gaussian.before"] == 0.60 and value["table5.mnist_cnn.gaussian.after"] == 0.61
    assert value["text.mlp.val_acc"] == value["table1.mlp.val_acc"] == 0.02
    assert value["text.mnist_cnn.adv_gain"] == pytest.approx(0.59 - 0.54)
    assert measured["text.mnist_cnn.adv_gain"].unit == "accuracy difference"


def test_the_shipped_preset_states_a_per_network_eps_and_the_paper_split() -> None:
    full = load_preset("fooling-noise").scale_settings("full")
    assert full["n_validation"] == 10000 and full["n_eval"] == 5000 and full["epochs"] == 5
    assert (arch_setting(full, "paper_eps", "mlp"), arch_setting(full, "paper_eps", "mnist_cnn")) == (0.3, 0.8)
    assert arch_setting(full, "table5_std", "mnist_cnn") == 0.8
    assert set(load_preset("fooling-noise").scale_settings("tiny")["models"]) == {"mlp", "mnist_cnn"}


def test_arch_setting_reads_a_table_or_one_number_and_names_what_is_missing() -> None:
    assert arch_setting({"eps": {"mlp": 0.3}}, "eps", "mlp") == 0.3
    assert arch_setting({"eps": 0.1}, "eps", "mnist_cnn") == 0.1
    with pytest.raises(InputError, match="mnist_cnn"):
        arch_setting({"eps": {"mlp": 0.3}}, "eps", "mnist_cnn")
    with pytest.raises(InputError, match="'eps'"):
        arch_setting({}, "eps", "mlp")


def _indexed_dataset(n: int) -> ImageDataset:
    """Images whose first two pixels spell their index, so a split's pieces can be traced back."""
    images = torch.zeros(n, 1, 28, 28, dtype=torch.uint8)
    index = torch.arange(n)
    images[:, 0, 0, 0], images[:, 0, 0, 1] = (index // 256).to(torch.uint8), (index % 256).to(torch.uint8)
    return ImageDataset(images, index % 10, tuple(str(c) for c in range(10)), "indexed/train")


def _indices(data: ImageDataset) -> set[int]:
    return set((data.images[:, 0, 0, 0].long() * 256 + data.images[:, 0, 0, 1].long()).tolist())


def _context(settings: dict) -> ExperimentContext:
    preset = load_preset("fooling-noise")
    return ExperimentContext(preset=preset, scale="tiny", settings=settings, data_dir=None, out_dir=None,
                             device=torch.device("cpu"), console=Console(quiet=True), quiet=True)


def test_paper_split_is_a_seeded_random_partition(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(steps, "load_dataset", lambda *args, **kwargs: _indexed_dataset(600))
    train, val = paper_split(_context({"n_validation": 100, "seed": 0}))
    assert (len(train), len(val)) == (500, 100)
    assert _indices(train).isdisjoint(_indices(val)) and _indices(train) | _indices(val) == set(range(600))
    assert _indices(val) != set(range(100)), "the validation images are drawn at random, not the first ones"
    _, again_val = paper_split(_context({"n_validation": 100, "seed": 0}))
    assert _indices(again_val) == _indices(val)
    _, other_val = paper_split(_context({"n_validation": 100, "seed": 1}))
    assert _indices(other_val) != _indices(val)
    with pytest.raises(InputError, match="n_validation"):
        paper_split(_context({"n_validation": 600, "seed": 0}))


def _images(value: float, n: int = 8) -> ImageDataset:
    images = torch.full((n, 1, 28, 28), round(value * 255), dtype=torch.uint8)
    return ImageDataset(images, torch.arange(n) % 10, tuple(str(c) for c in range(10)), "flat")


def test_fgsm_noise_std_is_eps_without_clipping_and_smaller_where_the_clip_bites() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10)).eval()
    grey = fgsm_noise_std(model, _images(128 / 255), eps=0.1, device=torch.device("cpu"))
    black = fgsm_noise_std(model, _images(0.0), eps=0.1, device=torch.device("cpu"))
    # Mid-grey pixels never leave [0, 1]: δ = ±ε with balanced signs, std ≈ ε.
    assert grey == pytest.approx(0.1, abs=0.01)
    # Black pixels lose every negative step to the clip: δ ∈ {0, ε}, std ≈ ε/2.
    assert black == pytest.approx(0.05, abs=0.01)


def test_closest_eps_is_the_grid_point_nearest_the_target() -> None:
    grid = {0.1: 0.40, 0.2: 0.07, 0.3: 0.02}
    assert closest_eps(grid, 0.17) == 0.2
    assert closest_eps(grid, 0.9) == 0.1
    assert closest_eps({0.1: 0.2, 0.3: 0.4}, 0.3) == 0.1  # a tie goes to the smaller ε


def test_a_run_repeats_exactly(tiny_preset_path, tmp_path) -> None:
    from advlab.experiments import run_preset

    def measure(out: str) -> dict[str, float]:
        result = run_preset(str(tiny_preset_path), scale="tiny", out_dir=tmp_path / out, quiet=True, device="cpu")
        return {row.key: row.ours for row in result.rows if row.ours is not None}

    torch.manual_seed(1)  # whatever the global RNG holds before a run must not change its numbers
    first = measure("a")
    torch.manual_seed(2)
    assert measure("b") == first
