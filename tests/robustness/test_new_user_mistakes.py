"""What a new user hit (issue 15, items 6-8): each mistake gives one line and exit code 2 before any work, and
leaves nothing written. The sweep of tests/robustness/test_hostile_inputs.py, continued."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from cli_helpers import advlab, assert_one_line_error

from advlab.attacks.pgd import PGD
from advlab.errors import InputError
from advlab.models import create_model

TRAIN = ["train", "--model", "mlp", "--dataset", "mnist-sample", "--n", "64", "--epochs", "1", "--quiet",
         "--device", "cpu"]


def test_train_refuses_a_folder_that_holds_a_run_unless_resumed_or_overwritten(tmp_path: Path,
                                                                               cli_env: dict[str, str]) -> None:
    out = str(tmp_path / "run")
    assert advlab(*TRAIN, "--out", out, env=cli_env).returncode == 0
    before = (tmp_path / "run" / "last.safetensors").read_bytes()
    assert_one_line_error(advlab(*TRAIN, "--seed", "1", "--out", out, env=cli_env), "already holds a training run",
                    "--resume", "--overwrite")
    assert (tmp_path / "run" / "last.safetensors").read_bytes() == before, "the finished run was touched"
    replaced = advlab(*TRAIN, "--seed", "1", "--overwrite", "--out", out, env=cli_env)
    assert replaced.returncode == 0, replaced.stderr
    assert (tmp_path / "run" / "last.safetensors").read_bytes() != before


@pytest.mark.parametrize(("command", "fragments"), [
    (["train", "--model", "mlp", "--dataset", "mnist-sample", "--out", "/etc/passwd/x"], ("/etc/passwd", "is a file")),
    (["attack", "--attack", "fgsm", "--model", "mlp", "--dataset", "mnist-sample", "--eps", "0.1",
      "--save-adv", "adv.txt"], ("--save-adv must end in .safetensors or .npz",)),
    (["evaluate", "--model", "mlp", "--dataset", "mnist-sample", "--out", "/etc/passwd/x"], ("/etc/passwd",)),
    (["reproduce", "fooling-noise", "--scale", "tiny", "--out", "/etc/passwd/x"], ("/etc/passwd",)),
])
def test_output_paths_are_checked_before_any_work(command: list[str], fragments: tuple[str, ...], tmp_path: Path,
                                                   cli_env: dict[str, str]) -> None:
    begin = time.monotonic()
    completed = subprocess.run([sys.executable, "-m", "advlab", *command], capture_output=True, text=True,
                               timeout=300, env=cli_env, cwd=tmp_path)
    assert_one_line_error(completed, *fragments)
    assert time.monotonic() - begin < 30, "the check came after the work"
    assert not list(tmp_path.iterdir()), "nothing may be written"


@pytest.mark.parametrize(("device", "fragment"), [("cuda", "--device cpu"), ("cuda:3", "--device"),
                                                  ("tpu", "unknown --device")])
def test_devices_this_machine_lacks_are_one_line(device: str, fragment: str, tmp_path: Path,
                                                 cli_env: dict[str, str]) -> None:
    if device.startswith("cuda") and torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    completed = advlab("attack", "--attack", "fgsm", "--model", "mlp", "--dataset", "mnist-sample", "--n", "4",
                        "--eps", "0.1", "--device", device, env=cli_env)
    assert_one_line_error(completed, fragment)


def test_weights_naming_a_folder_is_one_line(tmp_path: Path, cli_env: dict[str, str]) -> None:
    completed = advlab("attack", "--attack", "fgsm", "--model", "mlp", "--weights", str(tmp_path), "--dataset",
                        "mnist-sample", "--n", "4", "--eps", "0.1", "--device", "cpu", env=cli_env)
    assert_one_line_error(completed, "is a folder", "last.safetensors")


def test_evaluating_an_mnist_model_on_cifar_images_is_one_line(shared_data: Path, tmp_path: Path,
                                                              cli_env: dict[str, str]) -> None:
    completed = advlab("evaluate", "--model", "mlp", "--dataset", "cifar10", "--data-dir", str(shared_data),
                        "--subset", "8", "--eps", "0.01", "--device", "cpu", "--out", str(tmp_path / "e"),
                        env=cli_env)
    assert_one_line_error(completed, "(3, 32, 32)")


def test_float64_images_through_the_python_api_are_refused_with_the_fix() -> None:
    model = create_model("mlp").eval()
    x, y = torch.rand(4, 1, 28, 28, dtype=torch.float64), torch.zeros(4, dtype=torch.long)
    with pytest.raises(InputError, match=r"x.float\(\)"):
        PGD(eps=0.1, steps=1)(model, x, y)


def test_a_folder_with_no_dataset_file_fails_verification(tmp_path: Path, cli_env: dict[str, str]) -> None:
    assert_one_line_error(advlab("data", "verify", "--data-dir", str(tmp_path), env=cli_env), "no dataset file")


def test_a_defense_setting_of_the_wrong_type_is_refused_before_training(tmp_path: Path,
                                                                        cli_env: dict[str, str]) -> None:
    completed = advlab(*TRAIN, "--defense", "pgd_at", "--defense-arg", "eps=abc", "--out", str(tmp_path / "r"),
                        env=cli_env)
    assert_one_line_error(completed, "eps must be a number", "'abc'")
    assert not (tmp_path / "r").exists()


def test_training_prints_every_setting_of_its_defenses(tmp_path: Path, cli_env: dict[str, str]) -> None:
    args = [a for a in TRAIN if a != "--quiet"]
    completed = advlab(*args, "--defense", "fgsm_mixed", "--defense-arg", "eps=0.2", "--out", str(tmp_path / "r"),
                        env=cli_env)
    assert completed.returncode == 0, completed.stderr
    line = next(line for line in completed.stdout.splitlines() if line.startswith("defense fgsm_mixed:"))
    assert "eps=0.2" in line and "clean_weight=0.5" in line


def test_pgd_training_steps_follow_eps_and_the_attack_is_printed(tmp_path: Path, cli_env: dict[str, str]) -> None:
    args = [a for a in TRAIN if a != "--quiet"]
    completed = advlab(*args, "--defense", "pgd_at", "--defense-arg", "eps=0.3", "--out", str(tmp_path / "r"),
                        env=cli_env)
    assert completed.returncode == 0, completed.stderr
    line = next(line for line in completed.stdout.splitlines() if "training attack:" in line)
    assert "eps=0.3" in line and "alpha=0.075" in line and "steps=7" in line  # ε/4, not Madry's CIFAR 2/255


def test_an_existing_save_adv_file_is_replaced_not_refused(tmp_path: Path) -> None:
    from advlab.outputs import check_output_file

    existing = tmp_path / "adv.npz"
    existing.write_bytes(b"old")
    assert check_output_file(existing, "--save-adv", (".safetensors", ".npz")) == existing
    with pytest.raises(InputError, match="is a file, so nothing can be written below it"):
        check_output_file(existing / "x.npz", "--save-adv", (".safetensors", ".npz"))
