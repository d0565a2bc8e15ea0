"""Cards for the report tests, assembled with ``build_card`` from synthetic evaluation results.

The numbers are made up but of the right types (AttackMetrics per trial, a CascadeResult, CheckResults, the
analyses' result classes), so these tests exercise the real card path without running any evaluation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytest
import torch
from torch import nn

from advlab.attacks.fgsm import FGSM
from advlab.evaluate import (
    AverageAdversarialGrid,
    CascadeResult,
    CheckResult,
    EpsilonResult,
    EvaluationCard,
    GradientNorms,
    NoiseCurve,
    RobustnessCurve,
    SweepResult,
    TransferMatrix,
    build_card,
    pixel_histograms,
)
from advlab.evaluate.payloads import (
    adversarial_examples_payload,
    average_perturbation_payload,
    curve_payload,
    gradient_norms_payload,
    grid_payload,
    perturbation_payload,
)
from advlab.evaluate.runner import AttackMetrics

EPSILONS = (0.1, 0.2, 0.3)
PGD = {"name": "pgd", "registry_name": "pgd", "class": "advlab.attacks.pgd.PGD", "norm": "linf",
       "settings": {"eps": 0.3, "steps": 40, "step_size": 0.01}}


def metrics(robust: float, clean: float = 0.98, n: int = 200) -> AttackMetrics:
    return AttackMetrics(n=n, clean_accuracy=clean, robust_accuracy=robust, success_rate=1 - robust / clean,
                         mean_norms={"l0": 700.0, "l1": 60.0, "l2": 2.5, "linf": 0.3},
                         median_norms={"l0": 690.0, "l1": 58.0, "l2": 2.4, "linf": 0.3}, queries_per_sample=41.0)


def curve(per_trial: Sequence[Sequence[float]], epsilons: Sequence[float] = EPSILONS, clean: float = 0.98,
          attack: dict | None = None) -> RobustnessCurve:
    """``per_trial[t][i]``: robust accuracy of trial t at epsilons[i]."""
    points = tuple(EpsilonResult(eps, tuple(metrics(trial[i], clean) for trial in per_trial))
                   for i, eps in enumerate(epsilons))
    randomized = len(per_trial) > 1
    return RobustnessCurve(attack=attack or PGD, points=points, randomized=randomized,
                           eot_samples=10 if randomized else 1, trials=len(per_trial), n=200,
                           data_name="mnist/test")


def cascade(final: float, clean: float = 0.98) -> CascadeResult:
    stages = (final + 0.05, final)
    return CascadeResult(
        labels=("apgd-ce", "square"), attacks=(PGD | {"name": "apgd-ce", "target_classes": 0},
                                               PGD | {"name": "square", "target_classes": 0}),
        clean_accuracy=clean, stage_robust_accuracy=stages, stage_robust_accuracy_std=(0.0, 0.0),
        trial_stage_robust_accuracy=(stages,), fooled_by=torch.tensor([0, 1, -1, -2]), adv=None,
        queries_per_stage=(1000, 5000), randomized=False, eot_samples=1, trials=1)


def passing_checks() -> list[CheckResult]:
    return [CheckResult("iterative_vs_single_step", "pass", {"single_step_accuracy": 0.6, "iterative_accuracy": 0.4},
                        "the iterative attack (0.400) is at least as strong as one step (0.600)",
                        "iterative-vs-single-step"),
            CheckResult("zero_gradients", "pass", {"zero_gradient_fraction": 0.0}, "0.0% zero input gradients",
                        "zero-gradients")]


def failing_checks() -> list[CheckResult]:
    return [CheckResult("saturated_softmax", "warn", {"saturated_fraction": 0.93, "median_logit_margin": 41.0},
                        "the softmax is saturated (top probability exactly 1) for 93.0% of the points",
                        "saturated-softmax"),
            CheckResult("unbounded_attack", "warn", {"eps": 1.0, "accuracy": 0.71},
                        "with an unlimited budget (eps=1) 71.0% of points stay correct", "unbounded-attack"),
            CheckResult("random_sampling", "skip", {}, "no ε-ball to sample", "random-sampling")]


class TinyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.linear = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1)) * 5


def analyses(seed: int = 0) -> dict:
    """Every analysis kind the report draws, from real evaluate/report helpers on small synthetic tensors."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(40, 1, 8, 8, generator=generator)
    adv = (x + 0.1 * torch.sign(torch.randn(40, 1, 8, 8, generator=generator))).clamp(0, 1)
    labels = torch.arange(40) % 10
    delta_means = torch.stack([(adv - x)[labels == c].mean(0) for c in range(10)])
    grid = AverageAdversarialGrid(images=torch.rand(10, 10, 1, 8, 8, generator=generator),
                                  counts=torch.full((10, 10), 4), success_rate=torch.rand(10, 10, generator=generator))
    norms = torch.cat([torch.rand(30, generator=generator) * 0.1 + 0.01, torch.rand(10, generator=generator) + 1])
    correct = torch.arange(40) < 30
    model = TinyNet().eval()
    return {
        "perturbation_statistics": perturbation_payload(x, adv),
        "pixel_histograms": pixel_histograms(x, adv, bins=20),
        "average_adversarial_grid": grid_payload(grid),
        "average_perturbation_images": average_perturbation_payload(delta_means, torch.bincount(labels)),
        "adversarial_examples": adversarial_examples_payload(model, x, labels, FGSM(eps=0.1), [0.05, 0.2], count=6),
        "gradient_norms": gradient_norms_payload(GradientNorms(norms, correct, "l2")),
        "transfer": TransferMatrix(("a", "b"), torch.tensor([[0.05, 0.6], [0.5, 0.1]]), torch.tensor([0.98, 0.97])),
        "accuracy_vs_steps": SweepResult("steps", (1, 5, 10, 20), tuple(
            EpsilonResult(0.3, (metrics(acc),)) for acc in (0.6, 0.3, 0.2, 0.19))),
        "accuracy_vs_noise": NoiseCurve((0.0, 0.1, 0.3, 0.5), (0.98, 0.95, 0.7, 0.4), (0.0, 0.01, 0.02, 0.02), 3),
        "cw": EpsilonResult(None, (metrics(0.0),)),
        "zoo": EpsilonResult(None, (metrics(0.35),)),
        "accuracy_vs_sigma_n2": curve_payload([0.0, 0.01, 0.1, 1.0], [0.97, 0.96, 0.9, 0.5], x_label="σ_N²",
                                              title="Accuracy vs σ_N²", log_x=True),
    }


@pytest.fixture(scope="session")
def deterministic_card() -> EvaluationCard:
    """A standard CNN: one trial, full analyses, passing checks and a cascade."""
    return build_card(model_card={"name": "mnist_cnn", "args": {}}, data={"name": "mnist/test", "n": 200, "seed": 0},
                      curve=curve([[0.8173, 0.4121, 0.0525]]), cascade=cascade(0.03), checks=passing_checks(),
                      analyses=analyses(0), seed=0, duration_s=12.5)


@pytest.fixture(scope="session")
def randomized_card() -> EvaluationCard:
    """A PNI-style randomized model: 3 trials (mean ± std), failing checks, no analyses."""
    trials = [[0.90, 0.70, 0.42], [0.88, 0.66, 0.40], [0.92, 0.71, 0.47]]
    return build_card(model_card={"name": "mnist_cnn_pni"}, data={"name": "mnist/test", "n": 200, "seed": 0},
                      curve=curve(trials), checks=failing_checks(), seed=1, duration_s=30.0)


@pytest.fixture(scope="session")
def full_report(tmp_path_factory, deterministic_card, randomized_card):
    """Both cards side by side, built once: (ReportPaths, html text, markdown text)."""
    from advlab.report import build_report

    paths = build_report([deterministic_card, randomized_card], tmp_path_factory.mktemp("report"), title="Two models")
    return paths, paths.html.read_text(encoding="utf-8"), paths.markdown.read_text(encoding="utf-8")


def expected_mean_std(values: Sequence[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
