"""Number formatting shared by HTML and markdown; the compact analysis payloads and their recognition."""

from __future__ import annotations

import json
import re

import pytest
import torch
from report_helpers import TinyNet

from advlab.attacks.fgsm import FGSM
from advlab.errors import InputError
from advlab.evaluate import GradientNorms, average_perturbation_images
from advlab.evaluate.payloads import (
    adversarial_examples_payload,
    curve_payload,
    decode_array,
    encode_array,
    gradient_norms_payload,
    perturbation_payload,
)
from advlab.formatting import epsilon, number, percent
from advlab.report.analyses import identify, normalise


def test_percent_epsilon_and_number_formats() -> None:
    assert percent(0.9173) == "91.73 %" and percent(0.452, 0.013) == "45.20 ± 1.30 %"
    assert percent(0.5, 0.0) == "50.00 %" and percent(None) == "—" and percent(float("nan")) == "—"
    assert epsilon(8 / 255) == "8/255" and epsilon(2 / 255, "linf") == "2/255"
    assert epsilon(0.3) == "0.3" and epsilon(0.2) == "0.2"  # short decimals stay decimals (0.2 = 51/255)
    assert epsilon(8 / 255, "l2") == "0.03137" and epsilon(None) == "∞"
    assert number(3) == "3" and number(0.77142) == "0.7714" and number(True) == "yes" and number(None) == "—"


def test_perturbation_payload_histograms_count_every_point() -> None:
    x = torch.rand(25, 1, 5, 5, generator=torch.Generator().manual_seed(0))
    adv = (x + torch.linspace(0.01, 0.2, 25).view(-1, 1, 1, 1)).clamp(0, 1)
    payload = perturbation_payload(x, adv, bins=7)
    for norm in ("l0", "l1", "l2", "linf"):
        histogram = payload["histograms"][norm]
        assert sum(histogram["counts"]) == 25 and len(histogram["edges"]) == 8
    assert payload["summary"]["linf"]["max"] == pytest.approx(float((adv - x).abs().amax()), abs=1e-6)
    masked = perturbation_payload(x, adv, torch.arange(25) < 10)
    assert masked["n"] == 10 and sum(masked["histograms"]["l2"]["counts"]) == 10
    with pytest.raises(InputError):
        perturbation_payload(x, adv[:3])
    json.dumps(payload, allow_nan=False)


def test_gradient_norms_payload_splits_correct_and_incorrect() -> None:
    norms = torch.tensor([0.01, 0.02, 0.05, 1.0, 2.0, 0.0])
    correct = torch.tensor([True, True, True, False, False, True])
    payload = gradient_norms_payload(GradientNorms(norms, correct, "l2"), bins=4)
    histogram = payload["histogram"]
    assert sum(histogram["correct"]) == 3 and sum(histogram["incorrect"]) == 2 and histogram["zero"] == 1
    assert payload["correct"]["n"] == 4 and payload["incorrect"]["n"] == 2
    assert histogram["edges"][0] == pytest.approx(0.01) and histogram["edges"][-1] == pytest.approx(2.0)


def test_adversarial_examples_payload_records_predictions_per_eps() -> None:
    model = TinyNet().eval()
    x = torch.rand(5, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    y = model(x).argmax(-1)  # every clean point correct
    payload = adversarial_examples_payload(model, x, y, FGSM(eps=0.1), [0.0, 0.5], count=4)
    assert payload["labels"] == y[:4].tolist() and payload["clean"]["pred"] == y[:4].tolist()
    zero, big = payload["rows"]
    assert zero["pred"] == y[:4].tolist()  # ε = 0 changes nothing
    assert big["pred"] != y[:4].tolist()  # ε = 0.5 FGSM fools a linear model
    assert all(0 < c <= 1 for c in big["confidence"]) and decode_array(big["images"]).shape == (4, 1, 8, 8)
    assert abs(decode_array(payload["clean"]["images"]) - x[:4].double().numpy()).max() <= 1 / 510 + 1e-9
    assert model.training is False


def test_encoded_arrays_round_trip_within_quantisation_error() -> None:
    values = torch.randn(2, 3, 1, 5, 5, generator=torch.Generator().manual_seed(2)) * 0.1
    stored = encode_array(values)
    json.dumps(stored)
    decoded = decode_array(stored)
    assert decoded.shape == (2, 3, 1, 5, 5)
    span = float(values.max() - values.min())
    assert abs(decoded - values.double().numpy()).max() <= span / 510 + 1e-12
    assert (decode_array(encode_array(torch.full((2, 2), 0.25))) == 0.25).all()  # constant arrays stay exact
    with pytest.raises(ValueError):
        decode_array(stored | {"shape": [3, 3]})


def test_raw_results_are_recognised_by_shape() -> None:
    images, counts = average_perturbation_images(torch.zeros(4, 1, 3, 3), torch.ones(4, 1, 3, 3),
                                                 torch.tensor([0, 1, 1, 2]), 3)
    from advlab.evaluate.describe import to_jsonable

    stored = to_jsonable((images, counts))  # what build_card keeps for a tuple
    analysis = normalise("average_perturbation_images", stored)
    assert analysis.kind == "average_perturbation_images" and analysis.data["counts"] == [1, 2, 1]
    assert identify("anything", {"stds": [0.1], "accuracy": [0.9]}) == "noise"
    assert identify("cw", {"success_rate": 1.0, "mean_norms": {}, "robust_accuracy": 0.0}) == "single_attack"
    assert identify("x", {"parameter": "steps", "values": [1], "robust_accuracy": [0.5]}) == "steps_sweep"
    broken = normalise("transfer", {"names": ["a", "b"], "accuracy": [[1.0]], "clean_accuracy": [1, 1]})
    assert broken.kind == "other" and "transfer" in broken.note
    with pytest.raises(InputError):
        curve_payload([1, 2], [0.5], x_label="σ")


def test_check_explanations_render_their_emphasis_not_literal_asterisks() -> None:
    from advlab.report.content import load_check_explanations
    from advlab.report.html import inline_markdown

    assert str(inline_markdown("leaves *more* points, **warn**, `a*b`, 2 * 3")) == (
        "leaves <em>more</em> points, <strong>warn</strong>, <code>a*b</code>, 2 * 3")
    explanations = load_check_explanations()
    assert len(explanations) >= 9
    for anchor, text in explanations.items():
        rendered = re.sub(r"<code>.*?</code>", "", str(inline_markdown(text)))
        assert "*" not in rendered, f"{anchor}: {rendered}"
