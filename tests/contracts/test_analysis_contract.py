"""Every registered analysis: it computes payloads with a kind on a small model, and the report draws each one
in a section of its own (never under "Other analyses")."""

from __future__ import annotations

import json
import re

import pytest

from advlab.data.sources import load_dataset
from advlab.evaluate.analyses import ANALYSES, Analysis, analysis_names
from advlab.evaluate.pipeline import evaluate_model
from advlab.report import build_report
from advlab.report.analyses import KINDS


def test_the_registry_holds_the_documented_analyses() -> None:
    assert set(analysis_names()) >= {"statistics", "grid", "gradients", "examples", "noise", "steps"}
    for name in analysis_names():
        entry = ANALYSES.entry(name)
        assert issubclass(entry.factory, Analysis) and entry.factory.name == name and entry.info["summary"]


@pytest.mark.parametrize("name", analysis_names())
def test_each_analysis_computes_payloads_the_report_draws(name, trained_mlp, tmp_path) -> None:
    data = load_dataset("mnist-sample", "test", n=40, seed=0)
    card = evaluate_model(trained_mlp, {"label": "mlp"}, data, epsilons=[0.1], analyses={name}, checks=False,
                          batch_size=40, analysis_points=20, grid_per_class=1, out_dir=tmp_path / "eval")
    produced = {key: payload for key, payload in card.analyses.items() if not key.startswith("curve: ")}
    assert produced, f"{name} stored nothing in the card"
    for key, payload in produced.items():
        assert payload.get("kind") in KINDS and payload["kind"] != "other", (key, payload.get("kind"))
    paths = build_report([card], tmp_path / "report")
    html = paths.html.read_text(encoding="utf-8")
    assert 'id="other-analyses"' not in html, f"{name}'s payloads fell into 'Other analyses'"
    assert json.loads((tmp_path / "eval" / "card.json").read_text())["analyses"].keys() == card.analyses.keys()
    # Rerunning the same analysis reads its stored result: the card is identical.
    again = evaluate_model(trained_mlp, {"label": "mlp"}, data, epsilons=[0.1], analyses={name}, checks=False,
                           batch_size=40, analysis_points=20, grid_per_class=1, out_dir=tmp_path / "eval")
    assert again.analyses == card.analyses
    assert re.search(r"<section", html)
