"""Hostile and broken inputs that the loader, model, data and training tests elsewhere do not cover: each gives
one AdvlabError line (exit code 2 from the CLI), runs no foreign code and leaves no half-written file.

Already covered elsewhere (not repeated here): truncated/corrupt MNIST idx (tests/data/test_mnist_loader.py),
CIFAR pickles (test_cifar10_loader.py), images (test_image_folders.py), checkpoints and sha256 mismatches
(tests/train/test_checkpoint.py), foreign torch files and malicious pickles in the library
(tests/models/test_foreign_weights.py), download checksums, unknown model names, atomic writes.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
import torch
from cli_helpers import advlab, assert_one_line_error

from advlab.attacks import create_attack
from advlab.data.dataset import ImageDataset
from advlab.errors import AdvlabError, InputError, UnknownNameError
from advlab.evaluate import run_attack
from advlab.models import create_model
from advlab.train import TrainConfig, fit


def _mnist_like(n: int = 8, channels: int = 1, size: int = 28, classes: int = 10) -> ImageDataset:
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, channels, size, size), generator=generator, dtype=torch.uint8)
    labels = torch.arange(n) % classes
    return ImageDataset(images, labels, tuple(str(i) for i in range(classes)), f"fake{channels}x{size}")


def _visible_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*")) if folder.exists() else []


# --- the command line: one line, exit code 2 -------------------------------------------------------------------


def test_cli_typo_in_a_model_setting(tmp_path: Path, cli_env: dict[str, str]) -> None:
    completed = advlab("train", "--model", "mlp", "--model-arg", "hiden_sizes=[8]", "--dataset", "mnist-sample",
                        "--n", "20", "--epochs", "1", "--out", str(tmp_path / "run"), "--quiet", "--device", "cpu",
                        env=cli_env)
    assert_one_line_error(completed, "hiden_sizes", "hidden_sizes")
    assert not list((tmp_path / "run").glob("*.safetensors"))


def test_cli_model_for_another_image_shape(tmp_path: Path, cli_env: dict[str, str]) -> None:
    # cifar_cnn expects 3x32x32 images; the MNIST sample has 1x28x28.
    completed = advlab("train", "--model", "cifar_cnn", "--dataset", "mnist-sample", "--n", "20", "--epochs", "1",
                        "--out", str(tmp_path / "run"), "--quiet", "--device", "cpu", env=cli_env)
    assert_one_line_error(completed, "(1, 28, 28)", "advlab models")
    assert not list((tmp_path / "run").glob("*.safetensors"))


class _OpensAFile:
    """Unpickling this calls ``open(path, "w")``: proof that code ran, without any import at load time."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_cli_malicious_torch_file_runs_only_with_trust_pickle(tmp_path: Path, cli_env: dict[str, str]) -> None:
    marker = tmp_path / "code-ran"
    torch.save({"state_dict": {"layers.0.weight": torch.zeros(1)}, "hook": _OpensAFile(str(marker))},
               tmp_path / "evil.pt")
    attack = ["attack", "--attack", "fgsm", "--eps", "0.1", "--model", "mlp", "--weights", str(tmp_path / "evil.pt"),
              "--dataset", "mnist-sample", "--n", "4", "--device", "cpu"]
    refused = advlab(*attack, env=cli_env)
    assert_one_line_error(refused, "--trust-pickle")
    assert not marker.exists(), "the default load ran code from the file"
    # The flag is what gates it: with --trust-pickle the payload does run (then the file is refused as weights).
    trusted = advlab(*attack, "--trust-pickle", env=cli_env)
    assert trusted.returncode == 2 and "Traceback" not in trusted.stderr
    assert marker.exists()


# --- the library: wrong shapes, names, empty data ------------------------------------------------------------


@pytest.mark.parametrize(("channels", "size"), [(3, 28), (1, 32), (3, 32)])
def test_attack_on_images_of_the_wrong_shape(channels: int, size: int) -> None:
    model = create_model("mlp", hidden_sizes=(8,))
    x = torch.rand(2, channels, size, size)
    with pytest.raises(InputError, match=rf"\({channels}, {size}, {size}\)"):
        create_attack("fgsm", eps=0.1)(model, x, torch.tensor([0, 1]))


def test_attack_failures_that_are_not_about_shape_propagate() -> None:
    class Broken(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("driver crashed")

    with pytest.raises(RuntimeError, match="driver crashed"):
        create_attack("fgsm", eps=0.1)(Broken(), torch.rand(1, 1, 4, 4), torch.tensor([0]))


def test_fit_on_images_of_the_wrong_shape() -> None:
    with pytest.raises(InputError, match=r"\(3, 32, 32\)"):
        fit(create_model("mlp", hidden_sizes=(8,)), _mnist_like(channels=3, size=32),
            config=TrainConfig(epochs=1, batch_size=4), quiet=True, device="cpu")


@pytest.mark.parametrize("values", [[float("nan")], [float("inf")], [-0.5], [1.5]])
def test_attack_refuses_non_finite_or_out_of_range_images(values: list[float]) -> None:
    x = torch.rand(2, 1, 28, 28)
    x[1, 0, 3, 3] = values[0]
    with pytest.raises(InputError, match=r"NaN or inf|\[0, 1\]"):
        create_attack("fgsm", eps=0.1)(create_model("mlp", hidden_sizes=(8,)), x, torch.tensor([0, 1]))


@pytest.mark.parametrize("labels", [[0, 10], [-1, 0]])
def test_attack_refuses_labels_out_of_range(labels: list[int]) -> None:
    with pytest.raises(InputError, match=r"labels must (lie in 0\.\.9|be class indices >= 0)"):
        create_attack("fgsm", eps=0.1)(create_model("mlp", hidden_sizes=(8,)), torch.rand(2, 1, 28, 28),
                                       torch.tensor(labels))


@pytest.mark.parametrize("eps", [-0.01, 1.5, float("nan")])
def test_eps_outside_the_pixel_range(eps: float) -> None:
    with pytest.raises(InputError, match="eps"):
        create_attack("pgd", eps=eps)


@pytest.mark.parametrize(("create", "name"), [
    (create_model, "mlp"), (create_attack, "fgsm"),
])
def test_unknown_settings_name_the_known_ones(create, name: str) -> None:
    with pytest.raises(InputError, match="its settings are"):
        create(name, bogus=1)


def test_unknown_names_suggest_the_closest() -> None:
    from advlab.defenses.registry import create_defense

    for create, typo, suggestion in ((create_attack, "fgsmm", "fgsm"), (create_defense, "pgd_att", "pgd_at"),
                                     (create_model, "resnet21", "resnet")):
        with pytest.raises(UnknownNameError, match=f"Did you mean '{suggestion}"):
            create(typo)


def test_evaluating_an_empty_dataset() -> None:
    empty = _mnist_like(n=0)
    with pytest.raises(InputError, match="no images"):
        run_attack(create_model("mlp", hidden_sizes=(8,)), empty, create_attack("fgsm", eps=0.1))


# --- writing: read-only folder and full disk during training ---------------------------------------------------


def test_fit_into_a_read_only_folder_fails_cleanly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "readonly"
    out.mkdir()
    if os.geteuid() == 0:  # root writes anywhere: simulate the permission error where files get created
        def refuse(*args, **kwargs):
            raise PermissionError(errno.EACCES, "Permission denied")

        monkeypatch.setattr("tempfile.mkstemp", refuse)
    else:
        out.chmod(0o555)
    try:
        with pytest.raises(AdvlabError, match="writable output directory"):
            fit(create_model("mlp", hidden_sizes=(8,)), _mnist_like(), config=TrainConfig(epochs=1, batch_size=4),
                out_dir=out, quiet=True, device="cpu")
    finally:
        out.chmod(0o755)
    assert _visible_files(out) == []


def test_full_disk_during_a_later_epoch_keeps_the_previous_checkpoint(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from advlab.models.checkpoint import load_tensors

    out = tmp_path / "run"
    config = TrainConfig(epochs=2, batch_size=4, optimizer="adam", lr=1e-2)
    calls = {"n": 0}
    real_fsync = os.fsync
    writes_per_epoch: list[int] = []

    def count_epoch_writes(model, epoch):
        writes_per_epoch.append(calls["n"])
        return {}

    def fsync_until_disk_full(fd: int) -> None:
        calls["n"] += 1
        if len(writes_per_epoch) == 2:  # epoch 2's writes: the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync_until_disk_full)
    with pytest.raises(AdvlabError, match="No space left on device"):
        fit(create_model("mlp", hidden_sizes=(8,)), _mnist_like(), config=config, out_dir=out, quiet=True,
            device="cpu", eval_hook=count_epoch_writes)
    # No temporary file is left, and epoch 1's checkpoint and training state are whole.
    assert not [name for name in _visible_files(out) if name.endswith(".tmp")]
    assert load_tensors(out / "last.safetensors")
    monkeypatch.setattr(os, "fsync", real_fsync)
    resumed = fit(create_model("mlp", hidden_sizes=(8,)), _mnist_like(), config=config, out_dir=out, resume=True,
                  quiet=True, device="cpu")
    assert resumed.resumed_from == 1 and len(resumed.history) == 2
