"""Randomized smoothing (issue 18): the bounds, and CERTIFY against closed forms and degenerate models."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from advlab.certify import ABSTAIN, SmoothedClassifier, certify_dataset, clopper_pearson_lower
from advlab.certify.bounds import binomial_two_sided_p_value, binomial_upper_tail
from advlab.certify.smoothing import image_generator
from advlab.errors import InputError


@pytest.mark.parametrize(("k", "n", "alpha"), [(990, 1000, 0.001), (50, 100, 0.05), (7, 10, 0.01),
                                               (99_000, 100_000, 0.001)])
def test_clopper_pearson_bound_is_where_the_tail_equals_alpha(k: int, n: int, alpha: float) -> None:
    bound = clopper_pearson_lower(k, n, alpha)
    assert 0.0 < bound < k / n
    assert binomial_upper_tail(k, n, bound) == pytest.approx(alpha, rel=1e-6)


def test_bound_edge_cases_and_known_values() -> None:
    assert clopper_pearson_lower(0, 10, 0.05) == 0.0
    assert clopper_pearson_lower(10, 10, 0.05) == pytest.approx(0.05 ** 0.1)
    # Beta quantiles (scipy.stats.beta.ppf(0.001, 990, 11), ppf(0.05, 50, 51)).
    assert clopper_pearson_lower(990, 1000, 0.001) == pytest.approx(0.9760361871553114, abs=1e-10)
    assert clopper_pearson_lower(50, 100, 0.05) == pytest.approx(0.41362171463091174, abs=1e-10)
    assert binomial_two_sided_p_value(60, 100) == pytest.approx(0.056887933640975, rel=1e-9)
    with pytest.raises(InputError):
        clopper_pearson_lower(11, 10, 0.05)


class Linear2(nn.Module):
    """Two classes split by the hyperplane w·x = b (w a unit vector): class 1 where w·x > b."""

    def __init__(self, w: torch.Tensor, b: float) -> None:
        super().__init__()
        self.w, self.b = w, b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        score = x.flatten(1) @ self.w.flatten() - self.b
        return torch.stack([-score, score], dim=1)


def test_linear_classifier_radius_is_the_distance_to_the_boundary_within_the_monte_carlo_bound() -> None:
    torch.manual_seed(0)
    w = torch.randn(1, 4, 4)
    w = w / w.norm()
    x = torch.full((1, 4, 4), 0.5)
    b = float(x.flatten() @ w.flatten()) - 0.3  # x lies 0.3 (L2) on class 1's side
    sigma, n, alpha = 0.25, 20_000, 0.001
    certificate = SmoothedClassifier(Linear2(w, b), sigma).certify(x, 100, n, alpha, image_generator(0, 0, x.device))
    assert certificate.prediction == 1
    # Closed form: p_A = Φ(0.3 / σ), radius σ·Φ⁻¹(p_A) = 0.3. The estimate is a (1 − α) lower bound, below 0.3
    # by the Clopper-Pearson slack of n samples (a few standard errors of p_A, mapped through σ·Φ⁻¹).
    p_a = 0.5 * (1 + math.erf(0.3 / sigma / math.sqrt(2)))
    slack = 5 * math.sqrt(p_a * (1 - p_a) / n) / (math.exp(-0.5 * (0.3 / sigma) ** 2) / math.sqrt(2 * math.pi))
    assert 0.3 - sigma * slack <= certificate.radius <= 0.3


def test_abstaining_grows_as_the_sample_count_falls() -> None:
    torch.manual_seed(1)
    w = torch.randn(1, 4, 4)
    w = w / w.norm()
    points = torch.rand(60, 1, 4, 4) * 0.2 + 0.4
    margins = (points.flatten(1) @ w.flatten())
    model = Linear2(w, float(margins.median()))  # half the points on each side, all near the boundary
    rates = []
    for n in (20, 200, 2000):
        result = certify_dataset(model, (points, torch.zeros(60, dtype=torch.long)), sigma=0.25, n0=20, n=n,
                                 alpha=0.001, seed=0)
        rates.append(result.abstain_rate)
    assert rates[0] > rates[1] > rates[2], rates


class Constant(nn.Module):
    def __init__(self, label: int) -> None:
        super().__init__()
        self.label = label

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.one_hot(torch.full((x.shape[0],), self.label), 10).float()


def test_a_model_that_ignores_its_input_certifies_only_its_own_class() -> None:
    x, y = torch.rand(20, 1, 4, 4), torch.arange(20) % 10
    result = certify_dataset(Constant(3), (x, y), sigma=0.5, n0=10, n=200, alpha=0.01)
    assert all(record["prediction"] == 3 for record in result.records)
    assert result.certified_accuracy(0.0) == pytest.approx(float((y == 3).float().mean()))
    assert all(not record["correct"] for record in result.records if record["label"] != 3)


def test_reruns_and_resumes_are_identical(tmp_path: Path) -> None:
    torch.manual_seed(2)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 10))
    data = (torch.rand(6, 1, 4, 4), torch.arange(6) % 10)
    first = certify_dataset(model, data, sigma=0.25, n0=20, n=300, alpha=0.01, seed=4)
    again = certify_dataset(model, data, sigma=0.25, n0=20, n=300, alpha=0.01, seed=4)
    strip = lambda r: {k: v for k, v in r.items() if k != "seconds"}  # noqa: E731
    assert [strip(r) for r in first.records] == [strip(r) for r in again.records]
    state = tmp_path / "state.json"

    class Killed(Exception):
        pass

    def kill_after_three(done: int, total: int, description: str) -> None:
        if done == 3:
            raise Killed

    with pytest.raises(Killed):
        certify_dataset(model, data, sigma=0.25, n0=20, n=300, alpha=0.01, seed=4, state_path=state,
                        progress=kill_after_three)
    resumed = certify_dataset(model, data, sigma=0.25, n0=20, n=300, alpha=0.01, seed=4, state_path=state)
    assert resumed.resumed == 3 and [strip(r) for r in resumed.records] == [strip(r) for r in first.records]


def test_settings_are_checked() -> None:
    model = Constant(0)
    with pytest.raises(InputError, match="sigma"):
        SmoothedClassifier(model, 0.0)
    with pytest.raises(InputError, match="n0"):
        SmoothedClassifier(model, 0.25).certify(torch.rand(1, 2, 2), 0, 10, 0.01, torch.Generator())
    assert ABSTAIN == -1


def test_the_cli_writes_per_image_radii_and_the_curve(tmp_path: Path) -> None:
    import json
    import os
    import subprocess
    import sys

    command = [sys.executable, "-m", "advlab", "certify", "--model", "mlp", "--dataset", "mnist-sample",
               "--subset", "4", "--n", "100", "--n0", "10", "--sigma", "0.5", "--device", "cpu", "--quiet",
               "--out", str(tmp_path / "c")]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    payload = json.loads((tmp_path / "c" / "certify.json").read_text())
    assert payload["sigma"] == 0.5 and payload["n"] == 100 and len(payload["records"]) == 4
    assert payload["curve"][0][0] == 0.0 and all(0.0 <= acc <= 1.0 for _, acc in payload["curve"])
    refused = subprocess.run([*command[:-1], str(tmp_path / "c" / "certify.json" / "x")], capture_output=True,
                             text=True, timeout=300, env=env)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr


def test_what_is_certified_is_never_more_than_what_survives_the_attack() -> None:
    from advlab.certify.analysis import certified_analysis, training_sigma

    torch.manual_seed(3)
    w = torch.randn(1, 4, 4)
    w = w / w.norm()
    x = torch.rand(40, 1, 4, 4)
    model = Linear2(w, float((x.flatten(1) @ w.flatten()).median()))
    y = model(x).argmax(1)
    curves = certified_analysis(model, (x, y), sigma=0.25, n0=50, n=2000, radii=(0.0, 0.1, 0.2, 0.4),
                                attack_samples=32, attack_steps=10)
    certified, attacked = (payload["y"] for payload in curves.values())
    assert all(c <= a + 1e-9 for c, a in zip(certified, attacked)), (certified, attacked)
    assert attacked[-1] < attacked[0] and certified[-1] < certified[0]  # both fall with the radius
    assert all(payload["x_label"] == "L2 radius" for payload in curves.values())  # drawn in one plot
    assert training_sigma({"defenses": [{"name": "gaussian_augmentation", "scale": 0.5}]}) == 0.5
    assert training_sigma({"defenses": [{"name": "pgd_at"}]}) is None


def test_the_moment_network_agrees_with_smoothing_on_a_linear_model_and_costs_one_pass() -> None:
    from advlab.certify.moments import moment_network_agreement

    torch.manual_seed(4)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 3)).eval()
    x = torch.rand(30, 1, 4, 4)
    y = model(x).argmax(1)
    small = moment_network_agreement(model, (x, y), sigma=0.05, n=400, alpha=0.01)
    assert small.images == 30 and small.agreement >= 0.9  # little noise: both are the network's own prediction
    assert small.moment_accuracy >= 0.9 and small.cost_ratio > 1.0


def test_bf16_channels_last_certifies_like_fp32() -> None:
    torch.manual_seed(5)
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 8 * 8, 3)).eval()
    x = torch.rand(20, 1, 8, 8)
    y = model(x).argmax(1)
    full = certify_dataset(model, (x, y), sigma=0.1, n0=20, n=300, alpha=0.01, seed=1)
    fast = certify_dataset(model, (x, y), sigma=0.1, n0=20, n=300, alpha=0.01, seed=1, precision="bf16",
                           channels_last=True)
    agree = sum(a["prediction"] == b["prediction"] for a, b in zip(full.records, fast.records))
    assert agree >= 18 and fast.settings["precision"] == "bf16"
    assert next(model.parameters()).is_contiguous()  # the caller's model is not converted
