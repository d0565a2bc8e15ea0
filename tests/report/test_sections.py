"""The section registry: every registered kind renders from a minimal payload; unknown kinds land in "Other analyses".

These cards are written by hand (plain JSON payloads with a ``"kind"``), as a newer or older advlab might store
them; nothing here runs a model.
"""

from __future__ import annotations

from typing import Any

import pytest

from advlab.evaluate import build_card
from advlab.report import build_report
from advlab.report.analyses import KINDS, identify, normalise
from advlab.report.content import analysis_sections
from advlab.report.entries import make_entries
from advlab.report.legacy_kinds import KIND_BY_NAME, legacy_kind
from advlab.report.sections import OTHER, SECTIONS, SectionRegistry

IMAGES = [[[[0.0, 0.5], [1.0, 0.25]]]]  # (1, 1, 2, 2)

# The smallest payload each kind's section draws, and the id of that section. A new section adds its line here.
MINIMAL: dict[str, tuple[dict[str, Any], str]] = {
    "single_attack": ({"robust_accuracy": 0.1, "success_rate": 0.9}, "single-attacks"),
    "perturbation_statistics": ({"summary": {"l2": {"mean": 1.0, "std": 0.0, "min": 1.0, "max": 1.0}}},
                                "perturbation-statistics"),
    "pixel_histograms": ({"edges": [0.0, 0.5, 1.0], "clean": [0.5, 0.5], "adversarial": [0.3, 0.7]},
                         "pixel-histograms"),
    "average_adversarial_grid": ({"success_rate": [[1.0, 0.2], [0.3, 0.9]]}, "average-adversarial-grid"),
    "average_perturbation_images": ({"images": IMAGES * 2, "counts": [3, 4]}, "average-perturbations"),
    "adversarial_examples": ({"clean": {"images": IMAGES, "pred": [0], "confidence": [0.9]}, "labels": [0],
                              "rows": [{"eps": 0.1, "images": IMAGES, "pred": [1], "confidence": [0.6]}]},
                             "adversarial-examples"),
    "gradient_norms": ({"norm": "l2", "correct": {"n": 1, "mean": 0.1}, "incorrect": {"n": 1, "mean": 1.0}},
                       "gradient-norms"),
    "transfer": ({"names": ["a", "b"], "accuracy": [[0.1, 0.5], [0.6, 0.2]], "clean_accuracy": [0.9, 0.8]},
                 "transfer"),
    "steps_sweep": ({"parameter": "steps", "values": [1, 10], "robust_accuracy": [0.5, 0.3]}, "accuracy-vs-steps"),
    "sweep": ({"parameter": "restarts", "values": [1, 2], "robust_accuracy": [0.5, 0.4]}, "accuracy-vs-setting"),
    "noise": ({"stds": [0.0, 0.1], "accuracy": [0.9, 0.8]}, "accuracy-vs-noise"),
    "curve": ({"x": [0.0, 1.0], "y": [0.9, 0.5]}, "other-curves"),
    "other": ({"anything": [1, 2]}, "other-analyses"),
}


def card_with(analyses: dict[str, Any]):
    return build_card(model_card={"name": "m"}, data={"name": "d", "n": 1, "seed": 0}, analyses=analyses)


def test_kinds_are_the_registered_sections_in_order() -> None:
    assert KINDS == SECTIONS.kinds() == (
        "single_attack", "perturbation_statistics", "pixel_histograms", "average_adversarial_grid",
        "average_perturbation_images", "adversarial_examples", "gradient_norms", "transfer", "steps_sweep",
        "sweep", "noise", "curve", "other")
    assert set(MINIMAL) == set(SECTIONS.kinds()), "give every registered section a minimal payload in MINIMAL"


@pytest.mark.parametrize("kind", SECTIONS.kinds())
def test_every_registered_kind_renders_its_section_from_a_minimal_payload(kind: str) -> None:
    payload, section_id = MINIMAL[kind]
    entries = make_entries([card_with({f"my {kind}": {"kind": kind, **payload}})])
    (analysis,) = entries[0].analyses
    assert analysis.kind == kind and not analysis.note, analysis.note
    sections = analysis_sections(entries)
    assert [section.id for section in sections] == [section_id]
    assert sections[0].blocks and (sections[0].tables() or sections[0].figure_count() or kind == OTHER)


def test_sections_follow_the_registry_order_whatever_the_card_order() -> None:
    analyses = {kind: {"kind": kind, **payload} for kind, (payload, _) in reversed(MINIMAL.items())}
    sections = analysis_sections(make_entries([card_with(analyses)]))
    assert [section.id for section in sections] == [section_id for _, section_id in MINIMAL.values()]


def test_a_payload_of_unknown_kind_lands_in_other_analyses(tmp_path) -> None:
    # Keys a legacy guess would call a curve, and an alias name: the "kind" wins, and it has no section.
    payload = {"kind": "brand_new_analysis", "x": [1, 2], "y": [0.5, 0.4]}
    assert identify("transfer", payload) == OTHER
    card = card_with({"transfer": payload, "also_new": {"kind": 7}})
    html = build_report([card], tmp_path).html.read_text(encoding="utf-8")
    assert 'id="other-analyses"' in html and "brand_new_analysis" in html and "also_new" in html
    assert 'id="other-curves"' not in html and 'id="transfer"' not in html


def test_a_known_kind_that_does_not_fit_is_listed_with_the_reason() -> None:
    broken = normalise("t", {"kind": "transfer", "names": ["a", "b"], "accuracy": [[1.0]], "clean_accuracy": [1, 1]})
    assert broken.kind == OTHER and "transfer" in broken.note and broken.data["value"]["names"] == ["a", "b"]
    missing = normalise("n", {"kind": "noise", "stds": [0.1]})
    assert missing.kind == OTHER and "KeyError" in missing.note


def test_legacy_guesses_only_name_registered_kinds() -> None:
    assert set(KIND_BY_NAME.values()) <= set(SECTIONS.kinds())
    for name, payload in [("x", {"edges": [], "clean": [], "adversarial": []}), ("x", {"stds": [], "accuracy": []}),
                          ("x", {"x": [], "y": []}), ("x", {"counts": [], "success_rate": []}), ("x", {"a": 1}),
                          ("x", 3.0), ("average_perturbation_images", [[], []])]:
        assert legacy_kind(name, payload) in SECTIONS
    assert identify("accuracy_vs_noise", {"stds": [0.1], "accuracy": [0.9]}) == "noise"  # no "kind": legacy


def test_registry_refuses_a_kind_or_an_order_twice_and_puts_other_last() -> None:
    registry = SectionRegistry()
    registry.register("b", order=5, normalise=dict)(lambda entries, items: None)
    registry.register(OTHER, order=1, normalise=dict)(lambda entries, items: None)
    registry.register("a", order=7, normalise=dict)(lambda entries, items: None)
    assert registry.kinds() == ("b", "a", OTHER) and "a" in registry and len(registry) == 3
    with pytest.raises(ValueError, match="twice"):
        registry.register("a", order=9, normalise=dict)(lambda entries, items: None)
    with pytest.raises(ValueError, match="same order"):
        registry.register("c", order=5, normalise=dict)(lambda entries, items: None)
