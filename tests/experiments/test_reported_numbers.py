"""Every number a paper prints is a [[reported]] entry, and every entry is measured or says why it is not.

Issue 14's rules: a preset's reported key that its steps never produce, or a produced row that names no paper item
(and is not marked as an advlab extension), fails here. The shipped presets run at the ``tiny`` scale on the real
data (../shared/data; skipped where that folder is absent), once per preset for the whole module.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from advlab.errors import InputError
from advlab.experiments import list_presets, run_preset
from advlab.experiments.presets import names_paper_item, parse_preset
from advlab.experiments.runner import Measurement, ReproductionResult, _merge_rows, render_markdown

PRESETS = [preset.name for preset in list_presets()]


@pytest.mark.parametrize("name", PRESETS)
def test_each_reported_number_names_its_table_row_column_and_unit(name: str) -> None:
    preset = next(p for p in list_presets() if p.name == name)
    for number in preset.reported:
        where = f"{name} {number.key}"
        assert names_paper_item(number.table) and not number.table.startswith("extension"), where
        assert number.row and number.column, f"{where}: give the paper's row and column labels"
        assert number.unit, where
    text = " ".join(preset.notes) + json.dumps([r.to_dict() for r in preset.reported])
    assert "could not be read" not in text, f"{name}: the paper texts are in ../shared/papers"


@pytest.fixture(scope="module")
def tiny_runs(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    runs = {}
    for name in PRESETS:
        out = tmp_path_factory.mktemp(name)
        run_preset(name, scale="tiny", data_dir=shared_data, out_dir=out, quiet=True, device="cpu")
        runs[name] = json.loads((out / "results.json").read_text())
    return runs


@pytest.mark.parametrize("name", PRESETS)
def test_every_reported_key_is_measured_and_every_row_names_a_paper_item(name: str, tiny_runs: dict) -> None:
    rows = tiny_runs[name]["rows"]
    never = [r["key"] for r in rows if r["paper"] is not None and r["ours"] is None and not r["not_measured"]]
    assert not never, f"{name}: reported keys its steps never produce: {never}"
    stray = [(r["key"], r["table"]) for r in rows if r["ours"] is not None and not names_paper_item(r["table"])]
    assert not stray, f"{name}: rows whose table names no paper item (or 'extension ...'): {stray}"
    for row in rows:
        if row["not_measured"]:
            assert row["ours"] is None, f"{name} {row['key']} is measured but says it is not"


PRESET = """
name = "t"
experiment = "x"
[paper]
title = "T"
authors = ["A"]
year = 2020
[scales.tiny]
description = "d"
[[reported]]
key = "a.clean"
table = "Table 2"
row = "PNI-W"
column = "Clean"
value = 0.8489
std = 0.0011
[[reported]]
key = "imagenet.clean"
table = "Table 1"
row = "Baseline"
column = "ImageNet, k=0"
value = 0.57
not_measured = "no ImageNet training set here"
"""


def test_schema_defaults_the_label_and_renders_std_and_the_reason() -> None:
    preset = parse_preset(PRESET)
    first, second = preset.reported
    assert first.label == "PNI-W — Clean" and first.std == pytest.approx(0.0011)
    rows = _merge_rows(preset, [Measurement("a.clean", "Table 2", "clean", 0.80, std=0.02)], "tiny")
    assert rows[0].delta == pytest.approx(0.80 - 0.8489) and rows[0].ours_std == 0.02
    result = ReproductionResult(preset=preset, scale="tiny", scale_description="d", rows=rows, settings={},
                                command="c", machine={"platform": "p", "cpu_cores": 2, "torch_threads": 1,
                                                      "device": "cpu", "python": "3", "torch": "2"},
                                started="now", duration_s=1.0, extras={}, out_dir=Path("."))
    markdown = render_markdown(result)
    assert "0.8489 ± 0.0011" in markdown and "0.8000 ± 0.0200" in markdown
    assert "not measured: no ImageNet training set here" in markdown
    assert rows[0].measured_as == "clean" and "PNI-W — Clean; ours: clean" in markdown
    assert "2 numbers of the paper are recorded; 1 of them measured here" in markdown


def test_a_negative_std_or_a_missing_row_and_label_is_refused() -> None:
    with pytest.raises(InputError, match="std"):
        parse_preset(PRESET.replace("std = 0.0011", "std = -1"))
    with pytest.raises(InputError, match="row and column"):
        parse_preset(PRESET.replace('row = "PNI-W"\ncolumn = "Clean"\n', ""))


def test_paper_items_and_extensions_are_told_apart() -> None:
    for ok in ("Table 2", "Fig. 3", "§5 text", "Eq. 2", "App. E", "extension: EOT-PGD"):
        assert names_paper_item(ok), ok
    for bad in ("results", "Final model", "table 2", ""):
        assert not names_paper_item(bad), bad
