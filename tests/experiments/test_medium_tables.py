"""experiments/medium_tables.py: the README's medium tables come from the runs' results.json, never typed by hand."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

SCRIPT = Path(__file__).parents[2] / "experiments" / "medium_tables.py"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("medium_tables", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _row(key: str, paper: float | None, ours: float | None, std: float | None = None) -> dict:
    return {"key": key, "table": "Table 2", "label": key, "paper": paper, "paper_std": None, "ours": ours,
            "ours_std": std, "unit": "accuracy", "delta": None if paper is None or ours is None else ours - paper}


def test_the_committed_readme_matches_the_committed_results() -> None:
    tables = _script()
    text = tables.README.read_text(encoding="utf-8")
    assert tables.render(text) == text, "experiments/results/README.md is stale: run experiments/medium_tables.py"


def test_the_table_keeps_measured_paper_rows_and_the_preset_s_question_rows() -> None:
    tables = _script()
    medium = {"rows": [_row("resnet20.vanilla.pgd_acc", 0.3914, 0.402),
                       _row("resnet20.pni_W.pgd_acc_eot", None, 0.41, std=0.004),
                       _row("resnet20.pni_W.worst_case_acc", None, 0.38),
                       _row("resnet20.pni_W.worst_case_redrawn_majority_acc", None, 0.35),
                       _row("resnet20.pni_I.pgd_acc", 0.4325, None),  # not measured at medium
                       _row("resnet20.pni_W.alpha_mean", None, 0.1)]}  # neither the paper's nor a question row
    quick = {"rows": [_row("resnet20.vanilla.pgd_acc", 0.3914, 0.0)]}
    table = tables.comparison_table("pni", quick, medium)
    assert "| 0.3914 | 0.0000 | 0.4020 | +0.0106 |" in table
    assert "0.4100 ± 0.0040" in table and "worst_case_acc" in table and "redrawn_majority_acc" in table
    assert "pni_I" not in table and "alpha_mean" not in table


def test_a_missing_marker_is_a_clear_error() -> None:
    tables = _script()
    try:
        tables.replace_between("no markers here", "medium-status", "body")
    except SystemExit as error:
        assert "<!-- medium-status -->" in str(error)
    else:
        raise AssertionError("a README without the markers must not be silently left alone")
