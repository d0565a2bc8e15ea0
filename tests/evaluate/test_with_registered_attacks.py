"""The evaluation library with the project's own attacks (skipped where an attack module is not there yet)."""

from __future__ import annotations

import importlib

import pytest

from advlab.errors import UnknownNameError
from advlab.evaluate import SUITES, build_suite, robust_accuracy_curve, run_cascade, run_checks
from advlab.evaluate.suites import AttackSpec

fgsm = importlib.import_module("advlab.attacks.fgsm")
pgd = importlib.import_module("advlab.attacks.pgd")


def test_quick_suite_is_built_through_the_registry_with_eps_relative_settings() -> None:
    stages = build_suite("quick", 0.2)
    assert [s.label for s in stages] == ["FGSM", "PGD-20"]
    assert isinstance(stages[0].attack, fgsm.FGSM) and stages[0].attack.eps == 0.2
    assert isinstance(stages[1].attack, pgd.PGD)
    assert stages[1].attack.steps == 20 and stages[1].attack.step_size == pytest.approx(0.05)
    l2 = build_suite("quick", 1.5, "l2")
    assert l2[1].attack.norm.value == "l2" and l2[1].attack.eps == 1.5
    assert set(SUITES) >= {"quick", "standard", "papers"}
    with pytest.raises(UnknownNameError, match="unknown suite"):
        build_suite("fast", 0.1)
    with pytest.raises(UnknownNameError):
        build_suite((AttackSpec("X", {"linf": "no_such_attack"}),), 0.1)


def test_curve_cascade_and_checks_with_the_project_attacks(trained, test_xy) -> None:
    data = (test_xy[0][:64], test_xy[1][:64])
    curve = robust_accuracy_curve(trained, data, pgd.PGD(eps=0.1, steps=5), [0.05, 0.1, 0.2])
    acc = curve.robust_accuracy
    assert acc[0] >= acc[1] >= acc[2] and acc[2] < 0.3
    assert curve.attack["registry_name"] == "pgd" and curve.attack["settings"]["steps"] == 5
    cascade = run_cascade(trained, data, build_suite("quick", 0.1))
    assert cascade.robust_accuracy <= acc[1] + 0.05 and cascade.labels == ("FGSM", "PGD-20")
    results = {r.name: r for r in run_checks(trained, *data, 0.1, max_points=64)}
    assert results["iterative_vs_single_step"].status == "pass"
    assert not any(r.warned for r in results.values()), [r.message for r in results.values() if r.warned]
