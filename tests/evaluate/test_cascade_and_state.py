from __future__ import annotations

import json

import pytest
import torch
from evaluate_helpers import CountingModel, IterativeSign, OneStepSign

from advlab.errors import AdvlabError, InputError
from advlab.evaluate import CascadeStage, evaluate_attack, robust_accuracy_curve, run_cascade
from advlab.evaluate.cascade import MISCLASSIFIED, NOT_FOOLED


@pytest.fixture(scope="module")
def data(test_xy):
    return test_xy[0][:96], test_xy[1][:96]


def test_cascade_is_at_most_each_single_attack(trained, data) -> None:
    attacks = [OneStepSign(eps=0.1), IterativeSign(eps=0.1, steps=4), OneStepSign(eps=0.08)]
    singles = [evaluate_attack(trained, data, attack, batch_size=32).robust_accuracy for attack in attacks]
    result = run_cascade(trained, data, attacks, batch_size=32)
    assert result.stage_robust_accuracy[0] == pytest.approx(singles[0])
    assert result.robust_accuracy <= min(singles) + 1e-12
    assert list(result.stage_robust_accuracy) == sorted(result.stage_robust_accuracy, reverse=True)
    assert result.robust_accuracy < result.clean_accuracy
    x, y = data
    fooled = result.fooled_by >= 0
    assert result.adv is not None and torch.equal(result.adv[~fooled], x[~fooled])
    assert (result.adv - x).abs().max() <= 0.1 + 1e-6
    with torch.no_grad():
        assert (trained(result.adv[fooled]).argmax(1) != y[fooled]).all()
    clean_wrong = trained(x).argmax(1) != y
    assert torch.equal(result.fooled_by == MISCLASSIFIED, clean_wrong)
    assert result.robust_accuracy == pytest.approx(float((result.fooled_by == NOT_FOOLED).float().mean()))
    card = result.to_dict()
    assert [s["label"] for s in card["stages"]] == ["OneStepSign", "IterativeSign", "OneStepSign"]
    assert sum(s["newly_fooled"] for s in card["stages"]) == int(fooled.sum())


def test_targeted_stage_tries_the_most_likely_wrong_classes(trained, data) -> None:
    untargeted = run_cascade(trained, data, [OneStepSign(eps=0.05)]).robust_accuracy
    targeted = run_cascade(trained, data, [CascadeStage("sign-T", OneStepSign(eps=0.05), target_classes=9)])
    assert targeted.robust_accuracy < targeted.clean_accuracy
    assert targeted.queries_per_stage[0] > len(data[1])  # several targeted passes
    assert targeted.robust_accuracy <= untargeted  # nine targeted tries beat one untargeted step
    assert targeted.labels == ("sign-T",)
    with pytest.raises(InputError):
        CascadeStage("bad", OneStepSign(), target_classes=-1)
    with pytest.raises(InputError):
        run_cascade(trained, data, [])


class Interrupt(Exception):
    pass


def interrupt_after(k: int):
    def callback(done: int, total: int, description: str) -> None:
        if done == k:
            raise Interrupt
    return callback


def test_curve_resumes_after_a_crash_without_recomputing_finished_batches(trained, data, tmp_path) -> None:
    attack, epsilons = IterativeSign(eps=0.1, steps=3, random_start=True), [0.05, 0.1]
    state = tmp_path / "state.json"
    reference_model = CountingModel(trained)
    reference = robust_accuracy_curve(reference_model, data, attack, epsilons, batch_size=32)

    # One state record per batch (every ε of that batch); the third of three batches is interrupted.
    with pytest.raises(Interrupt):
        robust_accuracy_curve(CountingModel(trained), data, attack, epsilons, batch_size=32, state_path=state,
                              progress=interrupt_after(2))
    assert len(json.loads(state.read_text())["records"]) == 2
    resumed_model = CountingModel(trained)
    resumed = robust_accuracy_curve(resumed_model, data, attack, epsilons, batch_size=32, state_path=state)
    assert resumed.resumed_batches == 2
    assert 2 < resumed_model.calls < reference_model.calls / 2  # only the last batch (and the detection) ran
    assert resumed.points == reference.points
    again_model = CountingModel(trained)
    again = robust_accuracy_curve(again_model, data, attack, epsilons, batch_size=32, state_path=state)
    assert again.resumed_batches == 3 and again.points == reference.points and again_model.calls == 2

    assert robust_accuracy_curve(trained, data, attack, epsilons, batch_size=32, state_path=state).resumed_batches == 0
    fresh = robust_accuracy_curve(trained, data, attack, epsilons, batch_size=32, state_path=state, seed=1)
    assert fresh.resumed_batches == 0
    other = robust_accuracy_curve(trained, data, attack, [0.05, 0.2], batch_size=32, state_path=state)
    assert other.resumed_batches == 0


def test_cascade_resumes_with_its_adversarial_examples(trained, data, tmp_path) -> None:
    attacks = [OneStepSign(eps=0.1), IterativeSign(eps=0.1, steps=3, random_start=True)]
    state = tmp_path / "cascade.json"
    reference = run_cascade(trained, data, attacks, batch_size=32)
    with pytest.raises(Interrupt):
        run_cascade(trained, data, attacks, batch_size=32, state_path=state, progress=interrupt_after(2))
    resumed = run_cascade(trained, data, attacks, batch_size=32, state_path=state)
    assert resumed.resumed_batches == 2
    assert resumed.stage_robust_accuracy == reference.stage_robust_accuracy
    assert torch.equal(resumed.fooled_by, reference.fooled_by) and torch.equal(resumed.adv, reference.adv)


def test_corrupt_or_foreign_state_file_gives_a_clear_error(trained, data, tmp_path) -> None:
    state = tmp_path / "state.json"
    state.write_text("{not json")
    with pytest.raises(AdvlabError, match="delete it"):
        robust_accuracy_curve(trained, data, OneStepSign(), [0.1], state_path=state)
    state.write_text(json.dumps({"some": "other file"}))
    with pytest.raises(AdvlabError, match="not an advlab evaluation state"):
        robust_accuracy_curve(trained, data, OneStepSign(), [0.1], state_path=state)


def test_cascade_on_a_randomized_model_uses_eot_and_trials(trained, data) -> None:
    from evaluate_helpers import NoisyInput

    result = run_cascade(NoisyInput(trained, 0.3), (data[0][:32], data[1][:32]), [OneStepSign(eps=0.1)], trials=3,
                         eot_samples=3)
    assert result.randomized and result.trials == 3 and result.eot_samples == 3
    assert len(result.trial_stage_robust_accuracy) == 3 and result.robust_accuracy_std > 0
