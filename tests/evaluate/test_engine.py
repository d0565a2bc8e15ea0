"""The one evaluation loop: which points each attack sees, the worst case as the AND of every run, resumption."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from evaluate_helpers import DoNothing, IterativeSign, NoisyInput, OneStepSign

from advlab.attacks.base import Attack
from advlab.errors import InputError
from advlab.evaluate.engine import EvalSettings, Schedule, Stage, run_stages


def recording(attack: Attack, seen: list) -> Attack:
    """``attack`` with a side record of its batch sizes (a subclass keeps the frozen base's ``__call__``)."""

    class Spy(type(attack)):  # type: ignore[misc, valid-type]
        def run(self, model, x, y, target):
            seen.append(x.shape[0])
            return super().run(model, x, y, target)

    return Spy(**{f.name: getattr(attack, f.name) for f in dataclasses.fields(attack)})


def test_points_fooled_at_a_smaller_eps_are_not_attacked_again(trained, test_xy) -> None:
    data = (test_xy[0][:96], test_xy[1][:96])
    seen: list[int] = []
    pgd = recording(IterativeSign(eps=0.3, steps=5), seen)
    records = run_stages(trained, data, [[Stage("pgd", pgd.at(eps))] for eps in (0.3, 0.05, 0.15)], [0.3, 0.05, 0.15],
                         settings=EvalSettings(batch_size=96))
    robust = records.robust[0, :, 0]  # (E, N), in the order given
    correct = records.correct[0]
    # Visited in ascending order: 0.05 on the clean-correct points, then 0.15 on those still robust, then 0.3.
    assert seen == [int(correct.sum()), int(robust[1].sum()), int(robust[2].sum())]
    assert bool((robust[0] <= robust[2]).all() and (robust[2] <= robust[1]).all())
    assert robust[0].sum() < robust[1].sum()
    # A point carried over keeps the norms of the example found at the smaller ε.
    carried = ~robust[1] & correct
    assert torch.equal(records.norms[0, 0, 0][:, carried], records.norms[0, 1, 0][:, carried])
    assert int(records.queries[0, 0, 0]) < int(records.queries[0, 1, 0]) * 2


def test_cascade_attacks_only_survivors_and_the_worst_case_is_the_and_of_all_runs(trained, test_xy) -> None:
    data = (test_xy[0][:128], test_xy[1][:128])
    fgsm_seen: list[int] = []
    pgd_seen: list[int] = []
    fgsm, pgd = recording(OneStepSign(eps=0.1), fgsm_seen), recording(IterativeSign(eps=0.1, steps=5), pgd_seen)
    rows = [[Stage("fgsm", fgsm), Stage("pgd", pgd)]]
    each = run_stages(trained, data, rows, [0.1], schedule=Schedule.EACH, settings=EvalSettings(batch_size=128))
    cascade = run_stages(trained, data, rows, [0.1], schedule=Schedule.CASCADE, settings=EvalSettings(batch_size=128))
    n_correct = int(each.correct.sum())
    assert fgsm_seen == [n_correct, n_correct] and pgd_seen[0] == n_correct
    assert pgd_seen[1] == int(cascade.robust[0, 0, 0].sum()) < n_correct  # only what FGSM left
    for records in (each, cascade):
        worst = records.worst_case()[0, 0]
        assert torch.equal(worst, records.robust[0, 0, 0] & records.robust[0, 0, 1])
        assert torch.equal(records.cumulative()[0, 0, 1], worst)
        fooled_by = records.first_fooled_by(0)
        assert bool(((fooled_by == -1) == worst).all()) and bool(((fooled_by == -2) == ~records.correct[0]).all())
    # The worst case is never above a single attack's robust accuracy.
    assert each.worst_case().float().mean() <= min(each.robust[0, 0, s].float().mean() for s in range(2))
    assert each.metrics(0, 1, cumulative=True)[0].robust_accuracy == float(each.worst_case().double().mean())


def test_misclassified_points_are_never_attacked(trained, test_xy) -> None:
    x, y = test_xy[0][:64], test_xy[1][:64].clone()
    y[:10] = (y[:10] + 1) % 10  # wrong labels: the model is "wrong" on these
    seen: list[int] = []
    records = run_stages(trained, (x, y), [[Stage("fgsm", recording(OneStepSign(eps=0.1), seen))]], [0.1])
    assert seen == [int(records.correct.sum())] and not records.robust[0, 0, 0, :10].any()


def test_rows_must_carry_the_same_stages(trained, test_xy) -> None:
    data = (test_xy[0][:8], test_xy[1][:8])
    with pytest.raises(InputError):
        run_stages(trained, data, [[Stage("a", OneStepSign())], [Stage("b", OneStepSign())]], [0.1, 0.2])
    with pytest.raises(InputError):
        run_stages(trained, data, [[Stage("a", OneStepSign())]], [0.1, 0.2])
    with pytest.raises(InputError):
        EvalSettings(trials=0)



def test_targeted_stages_aim_at_wrong_classes_only(trained, test_xy) -> None:
    x, y = test_xy[0][:32], test_xy[1][:32]
    calls: list[tuple[torch.Tensor, torch.Tensor]] = []

    class Spy(OneStepSign):
        def run(self, model, x, y, target):
            calls.append((y.clone(), target.clone()))
            return x.clone()  # fools nothing: every target rank is tried

    run_stages(trained, (x, y), [[Stage("T", Spy(eps=0.1), target_classes=10)]], [0.1])
    assert len(calls) == 9  # 10 classes: 9 wrong ones, never the label itself
    assert all(bool((target != labels).all()) for labels, target in calls)


def test_a_cascade_counts_what_any_stage_fooled_at_a_smaller_eps_from_the_first_stage_on(trained, test_xy) -> None:
    data = (test_xy[0][:128], test_xy[1][:128])
    rows = [[Stage("nothing", DoNothing(eps=eps)), Stage("pgd", IterativeSign(eps=eps, steps=5))]
            for eps in (0.05, 0.2)]
    records = run_stages(trained, data, rows, [0.05, 0.2], schedule=Schedule.CASCADE)
    cumulative = records.cumulative()[0]  # (E, S, N)
    fooled_small = records.correct[0] & ~cumulative[0, 1]  # PGD's successes at 0.05
    assert fooled_small.any()
    # After the do-nothing stage at 0.2, those points are already fooled (not robust again because it failed).
    assert not (cumulative[1, 0] & fooled_small).any()
    assert bool((records.first_fooled_by(1)[fooled_small] == 0).all())


def test_a_resumed_randomized_evaluation_repeats_an_uninterrupted_one(trained, test_xy, tmp_path) -> None:
    noisy = NoisyInput(trained, 0.3)
    data = (test_xy[0][:96], test_xy[1][:96])
    rows = [[Stage("pgd", IterativeSign(eps=0.1, steps=2, random_start=True))]]
    settings = EvalSettings(batch_size=32, trials=2, eot_samples=2)
    reference = run_stages(noisy, data, rows, [0.1], settings=settings)

    class Stop(Exception):
        pass

    def stop_after_two(done: int, total: int, text: str) -> None:
        if done == 2:
            raise Stop

    with pytest.raises(Stop):
        run_stages(noisy, data, rows, [0.1], settings=dataclasses.replace(settings, progress=stop_after_two),
                   state_path=tmp_path / "state.json")
    torch.randn(1000)  # the caller's RNG moves on between the runs; the evaluation must not care
    resumed = run_stages(noisy, data, rows, [0.1], settings=settings, state_path=tmp_path / "state.json")
    assert resumed.resumed_batches == 2
    assert torch.equal(resumed.correct, reference.correct) and torch.equal(resumed.robust, reference.robust)


def test_each_eps_once() -> None:
    from advlab.evaluate.robustness import check_epsilons

    with pytest.raises(InputError, match="each epsilon once"):
        check_epsilons([8 / 255, 8 / 255])
