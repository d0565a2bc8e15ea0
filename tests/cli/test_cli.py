"""The CLI end to end, in-process through typer's runner and once as a real subprocess (exit codes, one-line errors)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from advlab.cli import app

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_models_lists_parameter_counts() -> None:
    result = invoke("models")
    assert result.exit_code == 0
    assert "mnist_cnn" in result.output and "3,274,634" in result.output and "269,722" in result.output


def test_user_mistake_is_one_line_and_exit_code_2(tmp_path) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "advlab", "train", "--model", "resnet2O", "--dataset", "mnist-sample",
         "--out", str(tmp_path / "run")],
        capture_output=True, text=True, timeout=120,
    )
    assert completed.returncode == 2
    assert "Traceback" not in completed.stderr
    assert "unknown model 'resnet2O'" in completed.stderr and "resnet20" in completed.stderr
    assert not (tmp_path / "run").exists()


def test_data_verify_on_the_shared_folder(shared_data) -> None:
    result = invoke("data", "verify", "--data-dir", str(shared_data))
    assert result.exit_code == 0
    assert "t10k-images-idx3-ubyte.gz" in result.output and "MISMATCH" not in result.output


@pytest.fixture(scope="module")
def trained_checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("train")
    result = invoke("train", "--model", "mlp", "--dataset", "mnist-sample", "--n", "3000", "--epochs", "2",
                    "--batch-size", "64", "--lr", "3e-3", "--schedule", "triangular", "--pct-start", "0.4",
                    "--out", str(out), "--quiet", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert "test accuracy" in result.output
    return out / "last.safetensors"


def test_train_writes_a_checkpoint_with_its_card(trained_checkpoint) -> None:
    import json

    card = json.loads(trained_checkpoint.with_suffix(".json").read_text())
    assert card["model"]["name"] == "mlp" and card["model"]["parameters"] == 269_322
    assert card["metrics"][-1]["test_acc"] > 0.85
    assert card["train"]["schedule"] == "triangular" and card["train"]["pct_start"] == 0.4
    assert card["metrics"][-1]["lr"] == 0.0  # Wong et al.'s cyclic lr ends at 0
    # The defaults: bf16 exactly where this CPU has it natively; NHWC only for 3-channel conv nets.
    from advlab.precision import has_native_bf16

    assert card["train"]["precision"] == "auto"
    assert card["precision"] == ("bf16" if has_native_bf16(torch.device("cpu")) else "fp32")
    assert card["train"]["channels_last"] is False


def test_channels_last_is_the_default_for_advlab_3_channel_conv_nets_only() -> None:
    from advlab.cli import _channels_last_pays

    assert _channels_last_pays("resnet20") and _channels_last_pays("cifar_cnn") and _channels_last_pays("nin_bn")
    assert not _channels_last_pays("mnist_cnn") and not _channels_last_pays("mlp")
    assert not _channels_last_pays("mypackage.models:factory")  # a user's net may .view() conv outputs


def test_attack_lowers_accuracy_and_saves_examples(trained_checkpoint, tmp_path) -> None:
    saved = tmp_path / "adv.npz"
    result = invoke("attack", "--attack", "pgd", "--weights", str(trained_checkpoint), "--dataset", "mnist-sample",
                    "--n", "200", "--eps", "0.05,0.2", "--attack-arg", "steps=10", "--save-adv", str(saved))
    assert result.exit_code == 0, result.output
    arrays = np.load(saved, allow_pickle=False)
    assert arrays["adv_0"].shape == (200, 1, 28, 28) and arrays["labels"].shape == (200,)
    accuracy = [(arrays[f"adv_pred_{i}"] == arrays["labels"]).mean() for i in (0, 1)]
    assert accuracy[1] < accuracy[0] < 0.95 and accuracy[1] < 0.3
    clean = np.asarray(arrays["adv_1"])  # inside the ε-ball of the clean images is checked by the attack tests
    assert clean.min() >= 0 and clean.max() <= 1


def test_attack_rejects_an_eps_written_in_pixel_units(trained_checkpoint) -> None:
    from advlab.errors import InputError

    with pytest.raises(InputError, match="8/255"):
        invoke("attack", "--attack", "fgsm", "--weights", str(trained_checkpoint), "--dataset", "mnist-sample",
               "--n", "10", "--eps", "8")


def test_pni_with_pgd_training_round_trips_through_its_card(tmp_path) -> None:
    from advlab.defenses.pni import pni_layers
    from advlab.evaluate.randomness import declares_stochastic
    from advlab.loading import load_model

    out = tmp_path / "pni"
    result = invoke("train", "--model", "mlp", "--dataset", "mnist-sample", "--n", "256", "--epochs", "1",
                    "--defense", "pni", "--defense", "pgd_at", "--defense-arg", "pgd_at.eps=8/255",
                    "--defense-arg", "pgd_at.steps=2", "--defense-arg", "pni.alpha_init=0.1",
                    "--out", str(out), "--quiet", "--device", "cpu")
    assert result.exit_code == 0, result.output
    loaded = load_model(None, out / "last.safetensors")
    assert [card["name"] for card in loaded.card["defenses"]] == ["pni", "pgd_at"]
    assert loaded.card["defenses"][1]["eps"] == pytest.approx(8 / 255)
    assert loaded.card["train"]["no_weight_decay"] == ["*pni_alpha*"]
    assert pni_layers(loaded.model) and declares_stochastic(loaded.model)


def test_robust_check_keeps_the_best_checkpoint_by_pgd_accuracy(tmp_path) -> None:
    import json

    out = tmp_path / "fast"
    result = invoke("train", "--model", "mlp", "--dataset", "mnist-sample", "--n", "512", "--epochs", "2",
                    "--defense", "fast_fgsm", "--defense-arg", "eps=0.1", "--robust-check", "64",
                    "--out", str(out), "--quiet", "--device", "cpu")
    assert result.exit_code == 0, result.output
    card = json.loads((out / "best.json").read_text())
    pgd = [record["pgd_acc"] for record in card["metrics"]]
    assert card["best"]["metric"] == "pgd_acc" and card["best"]["value"] == max(pgd)
    assert all(0 <= value <= record["pgd_acc_clean"] for value, record in zip(pgd, card["metrics"]))
    assert "best epoch by the PGD-10 check" in result.output


def test_robust_check_needs_an_adversarial_training_defense() -> None:
    from advlab.errors import InputError

    with pytest.raises(InputError, match="training attack's ε"):
        invoke("train", "--model", "mlp", "--dataset", "mnist-sample", "--n", "64", "--epochs", "1",
               "--robust-check", "32", "--out", "unused")


def test_two_objectives_are_refused() -> None:
    from advlab.errors import InputError

    with pytest.raises(InputError, match="both training objectives"):
        invoke("train", "--model", "mlp", "--dataset", "mnist-sample", "--n", "64", "--epochs", "1",
               "--defense", "pgd_at", "--defense", "fgsm_mixed", "--out", "unused")


def test_attacks_run_nhwc_on_conv_nets_without_defense_layers() -> None:
    from advlab.cli import _nhwc_attacks

    assert _nhwc_attacks({"model": {"name": "resnet20"}})
    assert _nhwc_attacks({"model": {"name": "cifar_cnn"}, "defenses": [{"name": "pgd_at", "eps": 0.03}]})
    assert not _nhwc_attacks({"model": {"name": "resnet20"}, "defenses": [{"name": "pni"}]})
    assert not _nhwc_attacks({"model": {"name": "mlp"}}) and not _nhwc_attacks({})
