"""Adversarial-training objectives: losses, label modes, warm-up, noise during generation, robustness gain."""

from __future__ import annotations

import copy
import importlib
import time

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from training_defense_utils import TinyCNN, accuracy, train_steps

from advlab.defenses.adversarial_training import (
    FastFGSMTraining,
    FGSMMixedLoss,
    GradAlignTraining,
    NoiseFGSMTraining,
    PerEpochAdversarialTraining,
    PGDAdversarialTraining,
    pgd_accuracy_hook,
)
from advlab.defenses.distillation import SoftLabelDistillation, TemperatureCrossEntropy
from advlab.defenses.noise import GaussianNoiseAugmentation, RandomSignNoiseTraining
from advlab.defenses.registry import create_defense
from advlab.errors import InputError

pgd_module = importlib.import_module("advlab.attacks.pgd")
fgsm_module = importlib.import_module("advlab.attacks.fgsm")


def objectives(teacher: nn.Module) -> list:
    return [
        FGSMMixedLoss(eps=0.1),
        PGDAdversarialTraining(eps=0.2, step_size=0.05, steps=3),
        PGDAdversarialTraining.pni(eps=0.2, step_size=0.05, steps=3),
        FastFGSMTraining(eps=0.2),
        NoiseFGSMTraining(eps=0.1),
        GradAlignTraining(eps=0.2, align_weight=0.5),
        PerEpochAdversarialTraining(eps=0.1),
        RandomSignNoiseTraining(scale=0.3),
        GaussianNoiseAugmentation(scale=0.2),
        TemperatureCrossEntropy(temperature=20.0),
        SoftLabelDistillation(teacher=teacher, temperature=20.0),
    ]


def test_every_objective_returns_a_finite_scalar_with_gradients(test_batch, trained_cnn) -> None:
    x, y = test_batch[0][:32], test_batch[1][:32]
    for objective in objectives(trained_cnn):
        torch.manual_seed(0)
        model = TinyCNN(batch_norm=True).train()
        loss = objective(model, x, y)
        assert loss.dim() == 0 and torch.isfinite(loss), objective
        loss.backward()
        grads = [p.grad for p in model.parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads), objective
        assert sum(float(g.abs().sum()) for g in grads) > 0, objective
        # the attack's eval mode and frozen parameters are restored: training continues normally
        assert model.training and all(p.requires_grad for p in model.parameters()), objective
        assert all(p.grad is None for p in trained_cnn.parameters())  # the teacher is never trained


def test_fgsm_mixed_loss_equals_the_manual_formula(test_batch, trained_cnn) -> None:
    x, y, eps = test_batch[0][:64], test_batch[1][:64], 0.1
    model = trained_cnn  # no batch-norm or dropout: train and eval passes agree
    xr = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(F.cross_entropy(model(xr), y), xr)
    x_fgsm = (x + eps * grad.sign()).clamp(0, 1)
    for alpha in (0.5, 0.3):
        expected = alpha * F.cross_entropy(model(x), y) + (1 - alpha) * F.cross_entropy(model(x_fgsm), y)
        got = FGSMMixedLoss(eps=eps, clean_weight=alpha)(model, x, y)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    # the adversarial part really is adversarial: larger than the clean loss on a trained model
    assert F.cross_entropy(model(x_fgsm), y) > 2 * F.cross_entropy(model(x), y)


def test_predicted_label_mode_attacks_the_predictions(test_batch, trained_cnn) -> None:
    x = test_batch[0][:64]
    predictions = trained_cnn(x).argmax(dim=-1)
    wrong = (predictions + 1) % 10  # "true" labels that disagree with every prediction
    settings = {"eps": 0.2, "step_size": 0.05, "steps": 3, "random_start": False}
    PGD = pgd_module.PGD
    attack = PGD(eps=0.2, step_size=0.05, steps=3, random_start=False, restarts=1, early_stop=False)
    predicted = PGDAdversarialTraining(labels="predicted", **settings).perturb(trained_cnn, x, wrong)
    true = PGDAdversarialTraining(labels="true", **settings).perturb(trained_cnn, x, wrong)
    torch.testing.assert_close(predicted, attack(trained_cnn, x, predictions).adv)
    torch.testing.assert_close(true, attack(trained_cnn, x, wrong).adv)
    assert (predicted - true).abs().amax() > 0.1


def test_warmup_epochs_use_the_clean_loss(test_batch, trained_cnn) -> None:
    x, y = test_batch[0][:64], test_batch[1][:64]
    objective = PGDAdversarialTraining(eps=0.2, step_size=0.05, steps=3, warmup_epochs=2)
    clean = F.cross_entropy(trained_cnn(x), y)
    for epoch in (0, 1):
        objective.on_epoch_start(trained_cnn, epoch)
        torch.testing.assert_close(objective(trained_cnn, x, y), clean)
    objective.on_epoch_start(trained_cnn, 2)
    assert objective(trained_cnn, x, y) > 2 * clean


class RecordingNoise(nn.Module):
    """PNI-style noise: drawn in train *and* eval mode; records the mode of every call."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(self.training)
        return x + 0.5 * torch.randn_like(x)


def test_noise_of_the_model_is_on_while_the_attack_is_generated(test_batch, trained_cnn) -> None:
    x, y = test_batch[0][:32], test_batch[1][:32]
    noise = RecordingNoise()
    net = copy.deepcopy(trained_cnn.net)
    model = nn.Sequential(net[:3], noise, net[3:]).train()
    objective = PGDAdversarialTraining(eps=0.2, step_size=0.05, steps=3, random_start=False)
    first = objective.perturb(model, x, y)
    # attack passes ran in eval mode through the noise layer (which stayed in place and active) ...
    assert noise.calls.count(False) >= 3 and not any(noise.calls)
    # ... and the noise changed the adversarial examples: two generations from the same start differ
    assert (objective.perturb(model, x, y) - first).abs().amax() > 0
    assert model.training and noise.training
    noise.calls.clear()
    objective(model, x, y)
    assert noise.calls[-1] is True  # the training loss itself is computed in train mode


def test_pni_weight_noise_stays_on_during_generation(test_batch, trained_cnn) -> None:
    pni = importlib.import_module("advlab.defenses.pni")
    x, y = test_batch[0][:32], test_batch[1][:32]
    noisy = pni.inject_pni(trained_cnn, locations="W", alpha_init=0.25).train()
    objective = PGDAdversarialTraining.pni(eps=0.2, step_size=0.05, steps=3, random_start=False)
    torch.manual_seed(0)
    first = objective.perturb(noisy, x, y)
    second = objective.perturb(noisy, x, y)
    assert (first - second).abs().amax() > 0  # same start, different weight-noise draws in eval mode
    with pni.pni_disabled(noisy):
        quiet = [objective.perturb(noisy, x, y) for _ in range(2)]
    torch.testing.assert_close(quiet[0], quiet[1])  # and that difference is the PNI noise, nothing else
    assert noisy.training


def test_fast_fgsm_uses_a_random_start_and_125_eps_steps(test_batch, trained_cnn) -> None:
    x, y, eps = test_batch[0][:64], test_batch[1][:64], 0.2
    objective = FastFGSMTraining(eps=eps)
    assert objective.describe()["step_size"] == pytest.approx(1.25 * eps)
    torch.manual_seed(0)
    first = objective.perturb(trained_cnn, x, y)
    second = objective.perturb(trained_cnn, x, y)
    assert (first - x).abs().amax() <= eps + 1e-6
    assert (first - second).abs().amax() > 0  # a fresh random start each call
    assert accuracy(trained_cnn, first, y) < accuracy(trained_cnn, x, y) - 0.3


def test_fast_fgsm_can_take_its_gradient_at_the_unclipped_start(test_batch, trained_cnn) -> None:
    x, y, eps = test_batch[0][:64], test_batch[1][:64], 0.2
    objective = FastFGSMTraining(eps=eps, start_in_box=False)
    assert objective.build_attack().start_in_box is False and objective.describe()["start_in_box"] is False
    assert FastFGSMTraining(eps=eps).build_attack().start_in_box is True  # CIFAR-10 code's default
    torch.manual_seed(0)
    adv = objective.perturb(trained_cnn, x, y)
    assert (adv - x).abs().amax() <= eps + 1e-6 and 0.0 <= float(adv.min()) and float(adv.max()) <= 1.0
    assert accuracy(trained_cnn, adv, y) < accuracy(trained_cnn, x, y) - 0.3


def test_n_fgsm_steps_from_wider_noise_without_projecting_back(test_batch, trained_cnn) -> None:
    x, y, eps = test_batch[0][:64], test_batch[1][:64], 0.1
    objective = NoiseFGSMTraining(eps=eps)
    trained_cnn.train()
    assert objective.describe()["step_size"] == pytest.approx(eps) and objective.noise_scale == 2.0
    torch.manual_seed(0)
    first = objective.perturb(trained_cnn, x, y)
    second = objective.perturb(trained_cnn, x, y)
    distance = (first - x).abs().amax(dim=1).amax(dim=(1, 2))
    assert float(distance.max()) <= 3 * eps + 1e-6 and 0.0 <= float(first.min()) and float(first.max()) <= 1.0
    assert float(distance.min()) > eps  # not projected onto the ε-ball: the noise alone reaches 2ε
    assert (first - second).abs().amax() > 0  # fresh noise each call
    assert accuracy(trained_cnn, first, y) < accuracy(trained_cnn, x, y) - 0.3
    # the step follows the gradient at the noisy start: without the step the accuracy is higher
    torch.manual_seed(0)
    noise_only = NoiseFGSMTraining(eps=eps, step_size=0.0).perturb(trained_cnn, x, y)
    assert accuracy(trained_cnn, first, y) < accuracy(trained_cnn, noise_only, y)
    assert trained_cnn.training and all(p.requires_grad for p in trained_cnn.parameters())  # both restored
    trained_cnn.eval()


def test_eps_ramp_grows_epsilon_batch_by_batch_in_fit_and_keeps_the_step_ratio(mnist, test_batch, trained_cnn) -> None:
    train_module = importlib.import_module("advlab.train")
    objective = FastFGSMTraining(eps=0.2, eps_ramp_epochs=1.5)
    assert objective.eps_scale == 1.0  # outside fit: the full ε
    seen: list[tuple[float, float]] = []
    build = objective.build_attack

    def recording_build():
        attack = build()
        seen.append((attack.eps, attack.step_size))
        return attack

    objective.build_attack = recording_build
    config = train_module.TrainConfig(epochs=2, batch_size=64, optimizer="adam", lr=1e-3)
    train_module.fit(TinyCNN(), mnist[0].subset(640), config=config, objective=objective, quiet=True, device="cpu")
    # 10 batches an epoch: batch b (0-based, over both epochs) attacks at ε·min(1, (b + 1) / 15)
    assert [eps for eps, _ in seen] == pytest.approx([0.2 * min(1.0, (b + 1) / 15) for b in range(20)])
    assert all(step == pytest.approx(1.25 * eps) for eps, step in seen)
    objective.on_batch_start(0.3)  # a fifth of the ramp: the perturbation stays in the ε/5-ball
    x, y = test_batch[0][:32], test_batch[1][:32]
    assert float((objective.perturb(trained_cnn, x, y) - x).abs().amax()) <= 0.04 + 1e-6
    with pytest.raises(InputError, match="eps_ramp_epochs"):
        PGDAdversarialTraining(eps_ramp_epochs=-1)


def test_grad_align_steps_fgsm_and_penalizes_misaligned_gradients(test_batch, trained_cnn) -> None:
    x, y, eps = test_batch[0][:32], test_batch[1][:32], 0.1
    model = TinyCNN()
    model.load_state_dict(trained_cnn.state_dict())
    model.train()
    objective = GradAlignTraining(eps=eps, align_weight=1.0)
    assert objective.describe()["step_size"] == pytest.approx(eps)
    adv = objective.perturb(model, x, y)
    torch.testing.assert_close(adv, fgsm_module.FGSM(eps=eps).perturb(model, x, y))  # FGSM from the clean point
    assert model.training and all(p.requires_grad for p in model.parameters())
    # the alignment is the mean cosine of the two input gradients, recomputed here by hand with the same noise
    grad, labels = objective.input_gradient(model, x, y)
    torch.testing.assert_close(adv, objective.step(x, grad))  # the step and the alignment share one gradient
    torch.manual_seed(3)
    cosine = objective.gradient_alignment(model, x, grad, labels)
    torch.manual_seed(3)
    noisy = (x + torch.empty_like(x).uniform_(-eps, eps)).clamp(0, 1)
    model.eval()
    grads = []
    for point in (x, noisy):
        point = point.clone().requires_grad_(True)
        grads.append(torch.autograd.grad(F.cross_entropy(model(point), y, reduction="sum"), point)[0].flatten(1))
    model.train()
    value = float(cosine.detach())
    assert value == pytest.approx(float(F.cosine_similarity(*grads, dim=1).mean()), abs=1e-5)
    assert 0.0 < value < 1.0
    (1.0 - cosine).backward()  # second order: the penalty alone moves the weights
    assert any(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in model.parameters())
    model.zero_grad()
    loss = objective(model, x, y)
    plain = F.cross_entropy(model(adv), y)
    assert float(loss.detach()) > float(plain.detach())  # CE on the FGSM images plus λ·(1 − cos) > 0
    with pytest.raises(InputError, match="align_weight"):
        GradAlignTraining(eps=0.1, align_weight=-1.0)
    with pytest.raises(InputError, match="step_size"):
        GradAlignTraining(eps=0.1, step_size=0.125)  # one step from x must stay in the ε-ball
    with pytest.raises(InputError, match="input gradient of this batch"):
        GradAlignTraining(eps=0.1).gradient_alignment(model, x, grad[:1], labels)


def test_grad_align_keeps_no_state_between_calls(test_batch, trained_cnn) -> None:
    """One call computes the FGSM step and the alignment from the same gradient; nothing is left on the object,
    so interleaved batches (or a perturb() of another batch in between) cannot mix gradients."""
    model = TinyCNN()
    model.load_state_dict(trained_cnn.state_dict())
    model.train()
    x, y = test_batch[0][:16], test_batch[1][:16]
    objective = GradAlignTraining(eps=0.1, align_weight=1.0)
    before = dict(vars(objective))
    torch.manual_seed(5)
    first = objective(model, x, y)
    objective.perturb(model, test_batch[0][16:40], test_batch[1][16:40])  # another batch in between
    torch.manual_seed(5)
    again = objective(model, x, y)
    assert vars(objective) == before
    torch.testing.assert_close(first, again)


def test_pgd_accuracy_hook_is_fixed_and_leaves_the_training_rng_alone(mnist, trained_cnn) -> None:
    hook = pgd_accuracy_hook(mnist[1], eps=0.2, steps=5, n=100)
    torch.manual_seed(123)
    first = hook(trained_cnn, 0)
    after_hook = torch.rand(3)
    torch.manual_seed(123)
    expected = torch.rand(3)
    assert torch.equal(after_hook, expected)
    assert hook(trained_cnn, 1) == first
    assert set(first) == {"pgd_acc", "pgd_acc_clean"}
    assert first["pgd_acc"] < first["pgd_acc_clean"] - 0.3 and first["pgd_acc_clean"] > 0.85


def test_per_epoch_adversarial_set_is_fixed_within_an_epoch(test_batch, trained_cnn) -> None:
    x, y = test_batch[0][:64], test_batch[1][:64]
    model = TinyCNN()
    model.load_state_dict(trained_cnn.state_dict())
    objective = PerEpochAdversarialTraining(eps=0.1)
    objective.on_epoch_start(model, 0)
    cached = fgsm_module.FGSM(eps=0.1)(model, x, y).adv  # what a regenerated adversarial set would hold
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.05 * torch.randn_like(param))
    torch.testing.assert_close(objective.perturb(model, x, y), cached)
    objective.on_epoch_start(model, 1)
    regenerated = objective.perturb(model, x, y)
    torch.testing.assert_close(regenerated, fgsm_module.FGSM(eps=0.1)(model, x, y).adv)
    assert (regenerated - cached).abs().amax() > 0


def test_bad_settings_raise_clear_errors() -> None:
    with pytest.raises(InputError, match="clean_weight"):
        PGDAdversarialTraining(clean_weight=1.5)
    with pytest.raises(InputError, match="labels"):
        PGDAdversarialTraining(labels="oracle")
    with pytest.raises(InputError, match="warmup"):
        FGSMMixedLoss(warmup_epochs=-1)


AUTOCAST_SEEN: list[tuple[bool, bool]] = []  # (training mode, bf16 autocast on) of every forward pass


class _AutocastRecorder(nn.Module):
    """A linear MNIST classifier that records, for each forward pass, its mode and whether bf16 autocast is on
    (module-level list: the attack's folded copy of the model records into it too)."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(28 * 28, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        AUTOCAST_SEEN.append((self.training, torch.is_autocast_enabled("cpu")))
        return self.linear(x.flatten(1))


def test_pgd_training_attacks_in_bf16_only_when_asked(test_batch) -> None:
    """fit's bf16 autocast covers the loss passes; the inner attack is float32 unless ``attack_precision`` asks
    for bf16, and a bf16 attack still returns images inside the ε-ball and [0, 1]."""
    x, y = test_batch[0][:16], test_batch[1][:16]
    for precision, attack_in_bf16 in (("fp32", False), ("bf16", True)):
        objective = PGDAdversarialTraining(eps=0.2, step_size=0.05, steps=3, attack_precision=precision)
        model = _AutocastRecorder().train()
        AUTOCAST_SEEN.clear()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = objective(model, x, y)
        assert torch.isfinite(loss)
        attack_passes = [on for training, on in AUTOCAST_SEEN if not training]
        loss_passes = [on for training, on in AUTOCAST_SEEN if training]
        assert loss_passes and all(loss_passes), precision
        assert any(attack_passes) is attack_in_bf16, (precision, AUTOCAST_SEEN)
        perturbed = objective.perturb(model, x, y)
        assert float((perturbed - x).abs().amax()) <= 0.2 + 1e-6 and 0 <= float(perturbed.min()) <= 1
        assert float((perturbed - x).abs().amax()) > 0.1  # it moved
    # Described only when not fp32, so runs saved before the setting existed still resume.
    assert "attack_precision" not in PGDAdversarialTraining().describe()
    bf16 = PGDAdversarialTraining.pni(attack_precision="auto")
    assert create_defense(**bf16.describe()) == bf16 and bf16.describe()["attack_precision"] == "auto"
    with pytest.raises(InputError, match="attack_precision must be one of fp32, bf16, auto"):
        PGDAdversarialTraining(attack_precision="fp16")


def test_pgd_training_raises_pgd_robust_accuracy(mnist) -> None:
    """A few hundred steps of PGD-AT beat plain training under PGD at ε = 0.2 (tiny CNN, 3000 images)."""
    train, test = mnist
    x, y = test.float_images(), test.labels
    eps = 0.2
    attack = pgd_module.PGD(eps=eps, step_size=0.05, steps=10, random_start=True, restarts=1, early_stop=False)
    start = time.perf_counter()
    torch.manual_seed(1)
    plain = train_steps(TinyCNN(), train, epochs=4)
    torch.manual_seed(1)
    objective = PGDAdversarialTraining(eps=eps, step_size=0.05, steps=5, clean_weight=0.5, warmup_epochs=1)
    robust = train_steps(TinyCNN(), train, objective, epochs=4)
    torch.manual_seed(2)
    plain_robust = attack(plain, x, y).robust_accuracy
    torch.manual_seed(2)
    at_robust = attack(robust, x, y).robust_accuracy
    print(f"clean {accuracy(plain, x, y):.3f}/{accuracy(robust, x, y):.3f} "
          f"PGD {plain_robust:.3f}/{at_robust:.3f} ({time.perf_counter() - start:.1f}s)")
    assert accuracy(robust, x, y) > 0.8
    assert at_robust > plain_robust + 0.25


def test_fast_fgsm_runs_in_fit_with_warmup_and_keeps_the_best_epoch_by_pgd_accuracy(mnist, tmp_path) -> None:
    train_module = importlib.import_module("advlab.train")
    train, test = mnist
    hook = pgd_accuracy_hook(test, eps=0.2, steps=5, n=200)
    config = train_module.TrainConfig(epochs=3, batch_size=64, optimizer="adam", lr=3e-3, best_metric="pgd_acc")
    objective = FastFGSMTraining(eps=0.2, warmup_epochs=1)
    torch.manual_seed(0)
    run = train_module.fit(TinyCNN(), train.subset(1500), config=config, objective=objective, eval_hook=hook,
                           quiet=True, device="cpu", out_dir=tmp_path)
    # fit's training accuracy only counts clean train-mode passes: present in the warm-up epoch (clean loss),
    # absent afterwards (adversarial loss only), so fit called on_epoch_start with 0-based epochs.
    assert "train_acc" in run.history[0] and all("train_acc" not in r for r in run.history[1:])
    assert all(0.0 <= r["pgd_acc"] <= r["pgd_acc_clean"] for r in run.history)
    assert run.best is not None and run.best["metric"] == "pgd_acc"
    assert run.best["value"] == max(r["pgd_acc"] for r in run.history)
    assert run.best_checkpoint is not None and run.best_checkpoint.is_file()
    assert run.card["objective"] == objective.describe()
    assert run.history[-1]["pgd_acc"] > run.history[0]["pgd_acc"]  # the adversarial epochs raise robustness
