"""The shipped presets parse, name their paper, scales and numbers; malformed presets fail with clear errors."""

from __future__ import annotations

import pytest

from advlab.errors import InputError, UnknownNameError
from advlab.experiments import EXPERIMENTS, list_presets, load_preset
from advlab.experiments.presets import parse_preset

EXPECTED = ["fooling-noise", "exploring-input-spaces", "cnn-adversarial", "stochastic-feedforward", "pni"]


def test_the_five_presets_ship_in_priority_order() -> None:
    assert [p.name for p in list_presets()] == EXPECTED


@pytest.mark.parametrize("name", EXPECTED)
def test_each_preset_names_its_paper_scales_and_a_registered_experiment(name: str) -> None:
    import advlab.experiments.steps  # noqa: F401 - registers the experiments

    preset = load_preset(name)
    assert preset.paper["title"] and preset.paper["authors"]
    assert {"tiny", "quick", "full"} <= set(preset.scales)
    for scale in ("tiny", "quick", "full"):
        assert preset.scale_settings(scale)["description"]
    assert preset.experiment in EXPERIMENTS
    assert preset.notes, "every preset explains its choices and the numbers it leaves out"
    for number in preset.reported:
        assert isinstance(number.value, float)


def test_van_everdingen_numbers_from_the_issue_are_recorded() -> None:
    preset = load_preset("cnn-adversarial")
    reported = {r.key: r for r in preset.reported}
    assert reported["baseline.clean_acc"].value == pytest.approx(0.828)
    assert reported["baseline.fgsm_acc"].value == pytest.approx(0.204)
    assert reported["baseline.random_sign_acc"].value == pytest.approx(0.830)
    # §5's numbers are text, not Table 1; Table 1 is the architecture and its parameter count
    assert {reported[k].table for k in ("baseline.clean_acc", "baseline.fgsm_acc", "baseline.random_sign_acc")} == \
        {"§5 text"}
    assert (reported["cifar_cnn.params"].table, reported["cifar_cnn.params"].value,
            reported["cifar_cnn.params"].unit) == ("Table 1", 150954, "params")
    tables = {"Table 2": 4, "Table 3": 6, "Table 4": 4}
    for table, count in tables.items():
        assert sum(r.table == table for r in preset.reported) == count, table
    text = {k: reported[k].value for k in ("final.student.clean_acc", "final.student.fgsm_acc",
                                            "final.input_noise.fgsm_acc", "random_sign_training.input_noise.fgsm_acc",
                                            "distillation_t50.fgsm_acc_on_T_set")}
    assert text == pytest.approx({"final.student.clean_acc": 0.786, "final.student.fgsm_acc": 0.488,
                                  "final.input_noise.fgsm_acc": 0.598,
                                  "random_sign_training.input_noise.fgsm_acc": 0.601,
                                  "distillation_t50.fgsm_acc_on_T_set": 0.376})
    cited = [r for r in preset.reported if r.key.startswith("cited.")]
    assert len(cited) == 7 and all("cited from other work" in r.not_measured for r in cited)
    assert not any("could not be read" in note for note in preset.notes)
    settings = preset.scale_settings("quick")
    assert settings["normalization"] == "none" and settings["augmentation"] == "flip_shift_brightness_contrast"
    assert settings["random_at_draw"] == "fixed_set"


def test_pni_full_scale_is_marked_as_needing_a_gpu() -> None:
    full = load_preset("pni").scale_settings("full")
    assert full["runs_here"] is False and "GPU" in full["limitation"]
    assert full["epochs"] == 160 and full["milestones"] == [80, 120] and full["nesterov"] is False  # Eq. 9


def test_scale_overrides_the_defaults() -> None:
    preset = load_preset("fooling-noise")
    assert preset.scale_settings("full")["epochs"] == 5
    assert preset.scale_settings("tiny")["epochs"] == 1 and preset.scale_settings("quick")["epochs"] == 5
    with pytest.raises(InputError, match="no scale"):
        preset.scale_settings("huge")


def test_unknown_preset_lists_the_known_ones() -> None:
    with pytest.raises(UnknownNameError, match="fooling-noise"):
        load_preset("fooling-nois")


MINIMAL = """
name = "x"
experiment = "fooling_noise"
[paper]
title = "t"
authors = ["a"]
year = 2000
[scales.tiny]
description = "d"
"""


def test_minimal_preset_parses() -> None:
    assert parse_preset(MINIMAL).name == "x"


@pytest.mark.parametrize("text, message", [
    ("name = ", "not valid TOML"),
    (MINIMAL.replace('name = "x"', ""), "'name'"),
    (MINIMAL.replace('description = "d"', ""), "description"),
    (MINIMAL.replace("[scales.tiny]", "[scales.huge]"), "unknown scales"),
    (MINIMAL + '[[reported]]\nkey = "k"\ntable = "T"\nlabel = "l"\nvalue = "0.9"\n', "value"),
    (MINIMAL + '[[reported]]\nkey = "k"\ntable = "T"\nlabel = "l"\nvalue = nan\n', "finite"),
    (MINIMAL + ('[[reported]]\nkey = "k"\ntable = "T"\nlabel = "l"\nvalue = 0.5\n' * 2), "twice"),
])
def test_malformed_presets_fail_with_a_message_naming_the_problem(text: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_preset(text, source="bad.toml")


def test_reproduce_list_shows_each_preset_with_its_measured_quick_duration() -> None:
    from typer.testing import CliRunner

    from advlab.cli import app

    result = CliRunner().invoke(app, ["reproduce", "--list"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    for preset in list_presets():
        assert preset.name in result.output
        for scale in ("quick", "medium"):
            duration = preset.scales.get(scale, {}).get("duration")
            if duration:
                assert duration.split(" (")[0] in result.output


def test_every_medium_scale_checkpoints_its_networks_and_trains_all_images() -> None:
    """A medium run takes hours: each network must survive a kill (checkpoints), on the whole training set."""
    mediums = [preset for preset in list_presets() if "medium" in preset.scales]
    assert mediums, "no preset has a medium scale"
    for preset in mediums:
        settings = preset.scale_settings("medium")
        assert settings.get("checkpoints") is True, preset.name
        assert not settings.get("n_train"), preset.name  # 0 or absent: all training images


def test_pni_sections_are_checked_before_any_training() -> None:
    from advlab.experiments.steps.pni import _sections

    assert _sections({"sections": ["fig3", "worst_case"], "fig3_model": "resnet20"}) == {"fig3", "worst_case"}
    with pytest.raises(InputError, match="unknown pni sections"):
        _sections({"sections": ["table9"]})
    with pytest.raises(InputError, match="a list"):
        _sections({"sections": "fig3"})
    with pytest.raises(InputError, match="resnet18 section"):
        _sections({"sections": ["fig3"]})  # Fig. 3 on ResNet-18 without training them
