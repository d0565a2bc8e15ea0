"""End to end on real MNIST: train a tiny MLP, evaluate it with the evaluate package, card it, report it.

Marked slow (about a minute on two busy cores); skipped without the shared data folder.
"""

from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from advlab.attacks.fgsm import FGSM
from advlab.attacks.pgd import PGD
from advlab.data.mnist import load_mnist
from advlab.evaluate import (
    CascadeStage,
    accuracy_vs_noise,
    accuracy_vs_steps,
    average_adversarial_grid,
    average_perturbation_images,
    build_card,
    input_gradient_norms,
    pixel_histograms,
    robust_accuracy_curve,
    run_attack,
    run_cascade,
    run_checks,
    save_card,
)
from advlab.evaluate.payloads import (
    adversarial_examples_payload,
    average_perturbation_payload,
    gradient_norms_payload,
    grid_payload,
    perturbation_payload,
)
from advlab.report import build_report

pytestmark = pytest.mark.slow


def test_report_of_a_real_mnist_evaluation(shared_data, tmp_path) -> None:
    train, test = load_mnist(shared_data, "train"), load_mnist(shared_data, "test")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 10))
    x_train, y_train = train.images[:6000].float() / 255, train.labels[:6000]
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for start in range(0, 6000, 100):
        loss = F.cross_entropy(model(x_train[start:start + 100]), y_train[start:start + 100])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    x, y = test.images[:300].float() / 255, test.labels[:300]
    data = (x, y)
    pgd = PGD(eps=0.1, steps=10, step_size=0.025)
    curve = robust_accuracy_curve(model, data, pgd, [0.02, 0.05, 0.1])
    cascade = run_cascade(model, data, [CascadeStage("fgsm", FGSM(eps=0.1)), CascadeStage("pgd", pgd)])
    run = run_attack(model, data, pgd, keep_adversarial=True)
    per_class = torch.cat([(y == c).nonzero().squeeze(1)[:3] for c in range(10)])
    grid = average_adversarial_grid(model, (x[per_class], y[per_class]), PGD(eps=0.2, steps=5, step_size=0.05))
    analyses = {
        "perturbation_statistics": perturbation_payload(x, run.adv, run.adv_pred != y),
        "pixel_histograms": pixel_histograms(x, run.adv),
        "average_adversarial_grid": grid_payload(grid),
        "average_perturbation_images": average_perturbation_payload(*average_perturbation_images(x, run.adv, y, 10)),
        "adversarial_examples": adversarial_examples_payload(model, x, y, pgd, [0.05, 0.1, 0.2], count=8),
        "gradient_norms": gradient_norms_payload(input_gradient_norms(model, data)),
        "accuracy_vs_steps": accuracy_vs_steps(model, data, pgd, [1, 3, 10]),
        "accuracy_vs_noise": accuracy_vs_noise(model, data, [0.0, 0.2, 0.5]),
    }
    card = build_card(model_card={"name": "mnist_mlp"}, data={"name": "mnist/test", "n": 300, "seed": 0},
                      curve=curve, cascade=cascade, checks=run_checks(model, x, y, 0.1, max_points=100),
                      analyses=analyses)
    save_card(tmp_path / "card.json", card)
    paths = build_report([tmp_path / "card.json"], tmp_path)  # from the file alone, as `advlab report` does
    markdown = paths.markdown.read_text(encoding="utf-8")
    row = next(line for line in markdown.splitlines() if line.startswith("| mnist_mlp |"))
    assert f"{100 * curve.points[2].robust_accuracy:.2f} %" in row
    assert f"{100 * cascade.robust_accuracy:.2f} %" in row
    html = paths.html.read_text(encoding="utf-8")
    assert len(re.findall(r'src="data:image/png;base64,', html)) >= 10
    assert curve.points[2].robust_accuracy < curve.points[0].robust_accuracy
    # The cascade's PGD and the curve's PGD are separate runs (other random starts): close, not ordered.
    assert cascade.robust_accuracy <= cascade.stage_robust_accuracy[0]
    assert abs(cascade.robust_accuracy - curve.points[2].robust_accuracy) <= 0.03
