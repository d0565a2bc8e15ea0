"""The networks the pni reproduction trains are ordinary advlab checkpoints: their card names the PNI defense (so
``advlab evaluate --weights`` rebuilds the noise layers) and the objective they were trained with."""

from __future__ import annotations

from pathlib import Path

import torch
from rich.console import Console

from advlab.data.dataset import ImageDataset
from advlab.defenses.pni import pni_alphas
from advlab.experiments.presets import load_preset
from advlab.experiments.runner import ExperimentContext
from advlab.experiments.steps.pni import _Protocol, _Run, _train
from advlab.loading import load_model


def _images(n: int = 8) -> ImageDataset:
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=generator)
    return ImageDataset(images, torch.arange(n) % 10, tuple(str(c) for c in range(10)), "random/train")


def test_a_trained_pni_network_loads_back_with_its_noise(tmp_path: Path) -> None:
    preset = load_preset("pni")
    settings = {**preset.scale_settings("tiny"), "checkpoints": True, "init": "scratch",
                "train_attack_precision": "bf16"}
    ctx = ExperimentContext(preset=preset, scale="tiny", settings=settings, data_dir=None, out_dir=tmp_path,
                            device=torch.device("cpu"), console=Console(quiet=True), quiet=True)
    trained = _train(_Run(ctx, _Protocol.from_settings(settings)), "resnet20", "pni_W", "W", _images(), scratch=True)

    loaded = load_model(None, tmp_path / "networks" / "resnet20.pni_W" / "last.safetensors")
    assert loaded.card["defenses"] == [{"name": "pni", "locations": "W", "granularity": "layer",
                                        "alpha_init": 0.25, "activation_std": "tensor"}]
    assert loaded.card["objective"]["attack_precision"] == "bf16"
    assert len(pni_alphas(loaded.model)) == 20 and pni_alphas(loaded.model) == pni_alphas(trained)
    state = trained.state_dict()
    assert all(torch.equal(tensor, state[key]) for key, tensor in loaded.model.state_dict().items())
