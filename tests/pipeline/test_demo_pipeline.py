"""The main job at toy scale: two trained mnist_cnn models, evaluated, in one report; the defense must help.

Marked slow: about 30 s of CPU time (two CNN trainings, two full evaluations, the report); the fast tests of
evaluate_model cover the pipeline itself.
"""

from __future__ import annotations

import io
import json

import pytest
from rich.console import Console

from advlab.demo import DEMO_EPSILONS, DemoSizes, run_demo
from advlab.evaluate import load_card

TINY = DemoSizes(train=1500, epochs=1, test=60, analysis_points=20, grid_per_class=1, check_points=10)

pytestmark = pytest.mark.slow


def test_demo_trains_evaluates_and_reports_both_models(tmp_path) -> None:
    console = Console(file=io.StringIO(), width=200)
    summary = run_demo(tmp_path, console=console, quiet=True, sizes=TINY)

    report = tmp_path / "report.html"
    assert console.file.getvalue().strip().splitlines()[-1] == str(report)
    assert summary["report"] == str(report)
    html = report.read_text(encoding="utf-8")
    assert "standard" in html and "fast_fgsm" in html and 'id="average-adversarial-grid"' in html
    assert json.loads((tmp_path / "summary.json").read_text())["models"].keys() == {"standard", "fast_fgsm"}

    standard, defended = summary["models"]["standard"], summary["models"]["fast_fgsm"]
    largest = str(max(DEMO_EPSILONS))
    # Adversarial training buys robustness where it was trained: PGD-20 and the worst case at ε = 0.2.
    assert defended["pgd20"][largest] > standard["pgd20"][largest]
    assert defended["worst_case"] > standard["worst_case"]
    for name in ("standard", "fast_fgsm"):
        card = load_card(tmp_path / f"eval-{name}" / "card.json")
        assert card.model["label"] == name and card.data["n"] == TINY.test
        assert {"average_adversarial_grid", "gradient_norms", "adversarial_examples",
                "perturbation_statistics"} <= set(card.analyses)
        assert len(card.checks) == 9
        assert (tmp_path / name / "last.safetensors").exists()
    assert load_card(tmp_path / "eval-fast_fgsm" / "card.json").model["defense"]["name"] == "fast_fgsm"
