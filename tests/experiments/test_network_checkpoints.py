"""A reproduction whose scale sets ``checkpoints = true`` (medium, full) keeps every network it trains and, rerun into
the same folder, continues from there: finished networks are reused, not trained again, and the numbers repeat."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from advlab.errors import InputError
from advlab.experiments.runner import run_preset

SHIPPED = Path(__file__).parents[2] / "src" / "advlab" / "experiments" / "cnn_adversarial.toml"


def tiny_with_checkpoints(tmp_path: Path) -> Path:
    """The shipped cnn-adversarial preset with ``checkpoints = true`` in its tiny scale."""
    text = SHIPPED.read_text(encoding="utf-8")
    copy = tmp_path / "cnn_adversarial.toml"
    copy.write_text(text.replace("[scales.tiny]\n", "[scales.tiny]\ncheckpoints = true\n"), encoding="utf-8")
    return copy


def test_a_rerun_reuses_every_finished_network(shared_data, tmp_path) -> None:
    preset = tiny_with_checkpoints(tmp_path)
    out = tmp_path / "out"
    first = run_preset(str(preset), scale="tiny", data_dir=shared_data, out_dir=out, quiet=True, device="cpu")
    networks = sorted(path.name for path in (out / "networks").iterdir())
    assert len(networks) == len(first.extras["training"]) >= 7  # one folder per trained network
    assert all((out / "networks" / name / "last.safetensors").exists() for name in networks)

    again = run_preset(str(preset), scale="tiny", data_dir=shared_data, out_dir=out, quiet=True, device="cpu")
    trained = again.extras["training"]
    assert all(entry.get("resumed_after_epoch") == entry["epochs"] for entry in trained.values()), trained
    assert [row.ours for row in again.rows] == [row.ours for row in first.rows]
    # The results name every network, with the training time of all its epochs (the earlier process's included).
    report = (out / "results.md").read_text(encoding="utf-8")
    assert "## Networks trained" in report and report.count("| after epoch 1 |") == len(trained)
    assert all(entry["training_s"] > 0 and entry["median_epoch_s"] > 0 for entry in trained.values())
    # The machine line names the CPU (timings mean little without it) and its native bf16 support.
    assert again.machine["cpu"] and f"- Machine: {again.machine['cpu']} (" in report
    # Its duration counts the first process's training too, not only the rerun's evaluation.
    earlier = sum(entry["earlier_processes_s"] for entry in trained.values())
    assert earlier == pytest.approx(sum(entry["training_s"] for entry in trained.values()))
    assert f"{(again.duration_s + earlier) / 60:.1f} min in all: {again.duration_s / 60:.1f} min in the last" in report

    # A changed preset (other training images) does not silently reuse the old networks.
    changed = preset.read_text(encoding="utf-8").replace("[scales.tiny]\n", "[scales.tiny]\nseed = 1\n")
    preset.write_text(changed, encoding="utf-8")
    with pytest.raises(InputError, match="other data or from other initial weights"):
        run_preset(str(preset), scale="tiny", data_dir=shared_data, out_dir=out, quiet=True, device="cpu")

    # Without the setting nothing is written, as before.
    plain = run_preset("cnn-adversarial", scale="tiny", data_dir=shared_data, out_dir=tmp_path / "plain",
                       quiet=True, device="cpu")
    assert not (tmp_path / "plain" / "networks").exists() and plain.rows
    shutil.rmtree(out / "networks")
    assert json.loads((out / "results.json").read_text())["scale"] == "tiny"


def test_the_fgsm_twin_can_start_from_the_standard_network(shared_data, tmp_path) -> None:
    """stochastic-feedforward's ``nin_adv_init = "standard"`` (its medium scale): the FGSM-trained NIN-BN is a
    fine-tuned copy of the standard one, which stays as it was trained."""
    shipped = SHIPPED.with_name("stochastic_feedforward.toml").read_text(encoding="utf-8")
    preset = tmp_path / "stochastic_feedforward.toml"
    preset.write_text(shipped.replace("[scales.tiny]\n", "[scales.tiny]\nnin_adv_init = \"standard\"\n"
                                      "nin_adv_epochs = 1\nnin_adv_lr = 0.001\nresnet20 = false\n"), encoding="utf-8")
    result = run_preset(str(preset), scale="tiny", data_dir=shared_data, out_dir=tmp_path / "out", quiet=True,
                        device="cpu")
    trained = result.extras["training"]
    assert set(trained) == {"NIN-BN (standard training)",
                            "NIN-BN (FGSM adversarial fine-tuning of the standard network)"}
    assert all(entry["epochs"] == 1 for entry in trained.values())
    assert any(row.key.startswith("nin_adv.") for row in result.rows)

    preset.write_text(shipped.replace("[scales.tiny]\n", "[scales.tiny]\nnin_adv_init = \"teacher\"\n"),
                      encoding="utf-8")
    with pytest.raises(InputError, match="nin_adv_init must be one of scratch, standard"):
        run_preset(str(preset), scale="tiny", data_dir=shared_data, out_dir=tmp_path / "bad", quiet=True,
                   device="cpu")
