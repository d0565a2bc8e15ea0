from __future__ import annotations

import json

import pytest
from evaluate_helpers import IterativeSign, OneStepSign, ScaledLogits

from advlab.errors import AdvlabError
from advlab.evaluate import (
    build_card,
    check_saturated_softmax,
    input_gradient_norms,
    load_card,
    robust_accuracy_curve,
    run_cascade,
    save_card,
)


@pytest.fixture(scope="module")
def card(trained, test_xy):
    data = (test_xy[0][:64], test_xy[1][:64])
    curve = robust_accuracy_curve(trained, data, IterativeSign(eps=0.1, steps=2), [0.05, 0.1])
    cascade = run_cascade(trained, data, [OneStepSign(eps=0.1), IterativeSign(eps=0.1, steps=2)])
    checks = [check_saturated_softmax(ScaledLogits(trained, 100.0), data[0])]
    return build_card(model_card={"name": "mlp", "args": {"hidden": 128}}, data={"name": "mnist", "n": 64, "seed": 0},
                      curve=curve, cascade=cascade, checks=checks,
                      analyses={"gradient_norms": input_gradient_norms(trained, data)}, seed=0, duration_s=1.5)


def test_card_round_trip_keeps_numbers_as_numbers(card, tmp_path) -> None:
    path = tmp_path / "card.json"
    save_card(path, card)
    assert load_card(path) == card
    raw = json.loads(path.read_text())
    assert raw["schema_version"] == 1 and set(raw["versions"]) == {"advlab", "torch", "python"}
    row = raw["results"][1]
    assert isinstance(row["eps"], float) and isinstance(row["robust_accuracy"], float)
    assert isinstance(row["trials"][0]["mean_norms"]["linf"], float)
    assert raw["attacks"][0]["settings"]["steps"] == 2 and raw["attacks"][0]["class"].endswith("IterativeSign")
    assert raw["trials"] == {"count": 1, "randomized": False, "eot_samples": 1}
    assert raw["cascade"]["robust_accuracy"] <= raw["results"][1]["robust_accuracy"]  # the cascade holds that attack
    assert raw["checks"][0]["status"] == "warn" and raw["checks"][0]["doc"].endswith("#saturated-softmax")
    assert raw["analyses"]["gradient_norms"]["norm"] == "l2"


def test_corrupt_and_foreign_cards_give_clear_errors(card, tmp_path) -> None:
    path = tmp_path / "card.json"
    path.write_text('{"format": "advlab-evaluation-card", "schema_')
    with pytest.raises(AdvlabError, match="corrupt"):
        load_card(path)
    path.write_text(json.dumps({"model": "resnet"}))
    with pytest.raises(AdvlabError, match="not an advlab evaluation card"):
        load_card(path)
    with pytest.raises(AdvlabError, match="does not exist"):
        load_card(tmp_path / "missing.json")
    raw = card.to_dict()
    raw["results"][0]["robust_accuracy"] = "0.93"
    path.write_text(json.dumps(raw))
    with pytest.raises(AdvlabError, match="not a number"):
        load_card(path)
    raw = card.to_dict() | {"schema_version": 99}
    path.write_text(json.dumps(raw))
    with pytest.raises(AdvlabError, match="schema version 99"):
        load_card(path)
