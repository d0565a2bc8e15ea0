"""evaluate_model end to end on a tiny trained MLP: card, curves, cascade, checks, analyses, reuse; the report
drawn from its card."""

from __future__ import annotations

import io
import itertools
import json
import re

import pytest
from pipeline_helpers import ForwardCounter, NoisyInput
from rich.console import Console

from advlab.errors import InputError, UnknownNameError
from advlab.evaluate import load_card
from advlab.evaluate.analyses import analysis_names, parse_analyses
from advlab.evaluate.pipeline import evaluate_model
from advlab.report import build_report
from advlab.report.analyses import normalise
from advlab.report.console import print_summary, summary_rows

EPSILONS = [0.05, 0.1, 0.2]


def test_evaluate_model_writes_card_and_report_and_reuses_its_state(tiny_mlp, test_points, tmp_path) -> None:
    counter = ForwardCounter(tiny_mlp)
    try:
        card = evaluate_model(tiny_mlp, {"label": "tiny mlp"}, test_points, epsilons=EPSILONS,
                              analyses=set(analysis_names()), attacks=["deepfool"], out_dir=tmp_path, batch_size=64,
                              analysis_points=60, grid_per_class=2, check_points=60)
        first_run_calls, counter.calls = counter.calls, 0
        again = evaluate_model(tiny_mlp, {"label": "tiny mlp"}, test_points, epsilons=EPSILONS,
                               analyses=set(analysis_names()), attacks=["deepfool"], out_dir=tmp_path, batch_size=64,
                               analysis_points=60, grid_per_class=2, check_points=60)
    finally:
        counter.close()

    # Files: the card on disk is the card returned; the evaluation wrote no report, the report reads the card.
    assert load_card(tmp_path / "card.json").to_dict() == again.to_dict()  # the last run wrote it
    assert not (tmp_path / "report.html").exists()
    build_report([tmp_path / "card.json"], tmp_path)
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    markdown = (tmp_path / "report.md").read_text(encoding="utf-8")

    # A curve per suite attack over every ε, falling with ε and far below clean at the largest ε.
    curves = dict(summary_rows(card))
    assert set(curves) == {"FGSM", "PGD-20"}
    clean = card.results[0]["clean_accuracy"]
    for label, points in curves.items():
        assert [eps for eps, _, _ in points] == EPSILONS, label
        accuracy = [acc for _, acc, _ in points]
        assert all(later <= earlier for earlier, later in itertools.pairwise(accuracy)), (label, accuracy)  # chained ε
        assert accuracy[-1] < clean - 0.3, (label, accuracy, clean)
    # The headline curve (card.results) is the stronger one, and the report's summary row shows its numbers.
    assert card.attacks[0]["name"] == "PGD-20"
    assert sum(a for _, a, _ in curves["PGD-20"]) <= sum(a for _, a, _ in curves["FGSM"])
    row = next(line for line in markdown.splitlines() if line.startswith("| tiny mlp |"))
    assert f"{100 * curves['PGD-20'][-1][1]:.2f} %" in row

    # Cascade at the largest ε: FGSM is deterministic, so its stage equals the FGSM curve there exactly; PGD
    # on the survivors can only lower it.
    cascade = card.cascade
    assert [stage["label"] for stage in cascade["stages"]][:2] == ["FGSM", "PGD-20"]
    assert cascade["stages"][0]["attack"]["settings"]["eps"] == 0.2
    assert cascade["stages"][0]["robust_accuracy"] == pytest.approx(curves["FGSM"][-1][1])
    assert cascade["robust_accuracy"] <= cascade["stages"][0]["robust_accuracy"]
    # The worst case counts every run at that ε, so it is never above a single attack's curve.
    assert cascade["robust_accuracy"] <= min(points[-1][1] for points in curves.values())
    # ... and so at every ε: robust only if no attack fooled the point there or at a smaller ε.
    worst = [row["robust_accuracy"] for row in cascade["worst_case"]]
    assert [row["eps"] for row in cascade["worst_case"]] == EPSILONS and worst[-1] == cascade["robust_accuracy"]
    assert all(w <= min(points[i][1] for points in curves.values()) for i, w in enumerate(worst))
    assert all(later <= earlier for earlier, later in itertools.pairwise(worst))
    assert f"{100 * cascade['robust_accuracy']:.2f} %" in row

    # Sanity checks at the largest ε: all of them ran; a plain MLP trips none.
    checks = {check["name"]: check["status"] for check in card.checks}
    assert len(checks) == 9 and set(checks.values()) <= {"pass", "skip"}, checks
    assert checks["unbounded_attack"] == checks["iterative_vs_single_step"] == "pass"

    # Analyses: every one is in a form the report recognises and draws.
    kinds = {name: normalise(name, payload).kind for name, payload in card.analyses.items()}
    assert kinds == {
        "curve: FGSM": "curve", "deepfool": "single_attack", "pixel_histograms": "pixel_histograms",
        "average_perturbation_images": "average_perturbation_images",
        "perturbation_statistics": "perturbation_statistics", "average_adversarial_grid": "average_adversarial_grid",
        "gradient_norms": "gradient_norms", "adversarial_examples": "adversarial_examples",
        "accuracy_vs_noise": "noise", "accuracy_vs_steps": "steps_sweep",
    }
    grid = card.analyses["average_adversarial_grid"]
    assert len(grid["success_rate"]) == 10 and grid["images"]["shape"] == [10, 10, 1, 28, 28]
    assert [row["eps"] for row in card.analyses["adversarial_examples"]["rows"]] == EPSILONS
    assert card.analyses["deepfool"]["success_rate"] > 0.9
    for section in ("curves", "checks", "perturbation-statistics", "average-adversarial-grid", "adversarial-examples",
                    "gradient-norms", "accuracy-vs-steps", "accuracy-vs-noise", "other-curves", "single-attacks"):
        assert f'id="{section}"' in html, section
    assert len(re.findall(r'src="data:image/png;base64,', html)) >= 10

    # The rerun found every step finished: same numbers, and (almost) no forward pass.
    assert again.to_dict() | {"timestamp": "", "duration_s": 0} == card.to_dict() | {"timestamp": "", "duration_s": 0}
    assert first_run_calls > 1000 and counter.calls <= 4, (first_run_calls, counter.calls)

    console = Console(file=io.StringIO(), width=200)
    print_summary(card, console)
    text = console.file.getvalue()
    assert "PGD-20" in text and "FGSM" in text and "worst case" in text
    assert f"{100 * cascade['robust_accuracy']:.2f} %" in text
    assert "sanity checks: " in text and " pass" in text


def test_randomized_model_is_evaluated_with_eot_and_trials(tiny_mlp, test_points, tmp_path) -> None:
    noisy = NoisyInput(tiny_mlp, std=0.2)
    card = evaluate_model(noisy, {"label": "noisy"}, test_points.subset(40, seed=1), epsilons=[0.1], trials=2,
                          out_dir=tmp_path, batch_size=64, check_points=12)
    assert card.trials == {"count": 2, "randomized": True, "eot_samples": 10}
    assert card.attacks[0]["settings"]["eot_samples"] == 10
    assert all(len(point["trials"]) == 2 for point in card.results)
    assert len(card.cascade["trial_stage_robust_accuracy"]) == 2
    statuses = {check["name"]: check for check in card.checks}
    assert statuses["randomness_without_eot"]["status"] == "pass"
    assert statuses["randomness_without_eot"]["values"]["eot_samples"] == 10
    assert not (tmp_path / "report.html").exists()
    assert json.loads((tmp_path / "card.json").read_text())["trials"]["count"] == 2


@pytest.mark.parametrize("settings, error, words", [
    ({"epsilons": []}, InputError, "at least one epsilon"),
    ({"epsilons": [-0.1]}, InputError, ">= 0"),
    ({"analyses": {"grid", "histogram"}}, InputError, "histogram"),
    ({"attacks": ["pgdd"]}, UnknownNameError, "pgdd"),
    ({"suite": "fast"}, UnknownNameError, "quick"),
    ({"norm": "l3"}, InputError, "l3"),
    ({"attacks": ["pgd_l2"]}, InputError, "--norm l2"),
    ({"precision": "fp16"}, InputError, "precision"),
])
def test_bad_settings_fail_before_any_work(tiny_mlp, test_points, tmp_path, settings, error, words) -> None:
    arguments = {"epsilons": [0.1], "out_dir": tmp_path / "out"} | settings
    with pytest.raises(error, match=re.escape(words)):
        evaluate_model(tiny_mlp, {}, test_points, **arguments)
    assert not (tmp_path / "out").exists()


def test_parse_analyses_reads_commas_repeats_and_all() -> None:
    assert parse_analyses(["statistics,grid", "examples"]) == {"statistics", "grid", "examples"}
    assert parse_analyses(["all"]) == set(analysis_names())
    assert parse_analyses([]) == set()
    with pytest.raises(InputError, match="histogram"):
        parse_analyses(["grid,histogram"])


def test_bf16_attacks_are_recorded_and_as_strong_as_fp32(tiny_mlp, test_points, tmp_path) -> None:
    settings = {"epsilons": [0.1], "checks": False, "batch_size": 64}
    fp32 = evaluate_model(tiny_mlp, {}, test_points, out_dir=tmp_path / "fp32", **settings)
    bf16 = evaluate_model(tiny_mlp, {}, test_points, out_dir=tmp_path / "bf16", precision="bf16", **settings)
    assert fp32.data["precision"] == "fp32" and bf16.data["precision"] == "bf16"
    assert {a["settings"]["precision"] for a in bf16.attacks} == {"bf16"}
    assert bf16.cascade["clean_accuracy"] == fp32.cascade["clean_accuracy"]  # the clean pass stays fp32
    assert abs(bf16.cascade["robust_accuracy"] - fp32.cascade["robust_accuracy"]) <= 0.05
