"""Evaluation: robust accuracy over ε, attack cascades, randomized models, sanity checks, analyses, cards.

Grouped public API:

* robust accuracy: :func:`robust_accuracy_curve`, :func:`evaluate_attack` (also C&W's mean L2 to fool and
  ZOO's success rate), :func:`run_attack` (per-sample records);
* worst case over an attack set: :func:`run_cascade`, :class:`CascadeStage`, :data:`SUITES`, :func:`build_suite`;
* randomized models: :func:`is_randomized`, :func:`with_eot`, :func:`draw_accuracy`;
* sanity checks: :func:`run_checks` and the ``check_*`` functions, :class:`CheckResult` (advlab/evaluate/checks.md);
* analyses: :func:`perturbation_statistics`, :func:`pixel_histograms`, :func:`average_perturbation_images`,
  :func:`average_adversarial_grid`, :func:`input_gradient_norms`, :func:`transfer_matrix`,
  :func:`accuracy_vs_steps`, :func:`parameter_sweep`, :func:`accuracy_vs_noise`;
* resumability: :class:`EvaluationState` (pass ``state_path=`` to the evaluation functions);
* result cards: :class:`EvaluationCard`, :func:`build_card`, :func:`save_card`, :func:`load_card`.
"""

from advlab.evaluate.card import EvaluationCard, build_card, load_card, save_card
from advlab.evaluate.cascade import CascadeResult, CascadeStage, run_cascade
from advlab.evaluate.checks import (
    CheckResult,
    check_iterative_vs_single_step,
    check_more_iterations,
    check_random_sampling,
    check_randomness_without_eot,
    check_saturated_softmax,
    check_unbounded_attack,
    check_white_box_vs_black_box,
    check_zero_gradients,
    run_checks,
)
from advlab.evaluate.gradient_norms import GradientNorms, input_gradient_norms
from advlab.evaluate.randomness import draw_accuracy, is_randomized, with_eot
from advlab.evaluate.robustness import EpsilonResult, RobustnessCurve, evaluate_attack, robust_accuracy_curve
from advlab.evaluate.runner import AttackMetrics, AttackRun, run_attack
from advlab.evaluate.state import EvaluationState
from advlab.evaluate.statistics import (
    AverageAdversarialGrid,
    NormSummary,
    PixelHistogram,
    average_adversarial_grid,
    average_perturbation_images,
    perturbation_statistics,
    pixel_histograms,
)
from advlab.evaluate.suites import SUITES, AttackSpec, build_suite
from advlab.evaluate.sweeps import NoiseCurve, SweepResult, accuracy_vs_noise, accuracy_vs_steps, parameter_sweep
from advlab.evaluate.transfer import TransferMatrix, transfer_matrix

__all__ = [
    "SUITES", "AttackMetrics", "AttackRun", "AttackSpec", "AverageAdversarialGrid", "CascadeResult", "CascadeStage",
    "CheckResult", "EpsilonResult", "EvaluationCard", "EvaluationState", "GradientNorms", "NoiseCurve",
    "NormSummary", "PixelHistogram", "RobustnessCurve", "SweepResult", "TransferMatrix", "accuracy_vs_noise",
    "accuracy_vs_steps", "average_adversarial_grid", "average_perturbation_images", "build_card", "build_suite",
    "check_iterative_vs_single_step", "check_more_iterations", "check_random_sampling",
    "check_randomness_without_eot", "check_saturated_softmax", "check_unbounded_attack",
    "check_white_box_vs_black_box", "check_zero_gradients", "draw_accuracy", "evaluate_attack", "input_gradient_norms",
    "is_randomized", "load_card", "parameter_sweep", "perturbation_statistics", "pixel_histograms",
    "robust_accuracy_curve", "run_attack", "run_cascade", "run_checks", "save_card", "transfer_matrix", "with_eot",
]
