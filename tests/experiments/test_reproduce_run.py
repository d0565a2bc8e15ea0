"""End to end: a tiny preset runs, prints and writes paper / ours / Δ as markdown and JSON with provenance."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from advlab.errors import InputError
from advlab.experiments import run_preset


def test_tiny_preset_writes_markdown_and_json_with_numbers(tiny_preset_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    console = Console(record=True, width=160)
    result = run_preset(str(tiny_preset_path), scale="tiny", out_dir=out, console=console, device="cpu",
                        command="advlab reproduce test-tiny --scale tiny")

    payload = json.loads((out / "results.json").read_text())
    assert payload["scale"] == "tiny" and payload["command"] == "advlab reproduce test-tiny --scale tiny"
    assert payload["machine"]["cpu_cores"] >= 1 and payload["duration_s"] > 0 and payload["started"]
    rows = {row["key"]: row for row in payload["rows"]}
    # Measured rows are numbers in [0, 1], each labelled with the scale it ran at.
    for key in ("table1.mlp.val_acc", "table2.mlp.fgsm.val", "table2.mlp.matched_noise.val", "table4.mlp.adv.val",
                "table5.mlp.gaussian.after", "test.mlp.fgsm.0.3", "fig8.mlp.noise.0.5.after"):
        assert isinstance(rows[key]["ours"], float) and 0.0 <= rows[key]["ours"] <= 1.0
        assert rows[key]["scale"] == "tiny"
    # The paper's number sits beside ours and Δ is their difference.
    clean = rows["table1.mlp.val_acc"]
    assert clean["paper"] == 0.5 and clean["delta"] == pytest.approx(clean["ours"] - 0.5)
    assert clean["ours"] > 0.3, "one epoch on 300 images must beat chance (0.1) clearly"
    # FGSM at ε = 0.3 hurts far more than Gaussian noise of the same mean and std (the paper's point).
    assert rows["table2.mlp.fgsm.val"]["ours"] < rows["table2.mlp.matched_noise.val"]["ours"]
    # A reported number no step measures stays in the table, with no "ours" and no Δ.
    never = rows["table9.never_measured"]
    assert never["paper"] == 0.25 and never["ours"] is None and never["delta"] is None
    assert result.row("table1.mlp.val_acc").ours == clean["ours"]

    markdown = (out / "results.md").read_text()
    assert "| table | quantity | unit | paper | ours | Δ (ours − paper) | scale |" in markdown
    assert "Scale: `tiny`" in markdown and "advlab reproduce test-tiny" in markdown
    assert f"{clean['ours']:.4f}" in markdown and "0.5000" in markdown
    assert "accuracy_vs_noise.png" in markdown and (out / "accuracy_vs_noise.png").stat().st_size > 1000
    printed = console.export_text()
    assert "paper" in printed and "ours" in printed and "BP validation accuracy" in printed


def test_a_scale_that_cannot_run_here_is_refused_before_any_work(tiny_preset_path: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot run"):
        run_preset(str(tiny_preset_path), scale="full", out_dir=tmp_path / "never", quiet=True)
    assert not (tmp_path / "never").exists()


def test_unknown_scale_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="scale must be one of"):
        run_preset("fooling-noise", scale="huge", out_dir=tmp_path, quiet=True)


def test_missing_data_folder_is_a_clear_error(tmp_path: Path) -> None:
    from advlab.errors import AdvlabError

    with pytest.raises(AdvlabError):
        run_preset("fooling-noise", scale="tiny", data_dir=tmp_path / "no-data", out_dir=tmp_path / "o",
                   quiet=True, device="cpu")
