"""MC-dropout ensemble: dropout on and batch-norm off during passes, votes, detection score, ROC AUC."""

from __future__ import annotations

import importlib

import pytest
import torch
from torch import nn
from training_defense_utils import TinyCNN, accuracy, train_steps

from advlab.defenses.dropout_ensemble import MCDropoutEnsemble, detection_auc, dropout_active, roc_auc
from advlab.errors import InputError
from advlab.evaluate.randomness import declares_stochastic


@pytest.fixture(scope="module")
def dropout_cnn(mnist) -> nn.Module:
    torch.manual_seed(0)
    return train_steps(TinyCNN(dropout=0.5, batch_norm=True), mnist[0], epochs=3)


def test_auc_is_one_for_separated_scores_and_half_for_identical_ones() -> None:
    assert roc_auc(torch.tensor([0.1, 0.2, 0.3]), torch.tensor([0.5, 0.9])) == 1.0
    assert roc_auc(torch.tensor([0.5, 0.9]), torch.tensor([0.1, 0.2, 0.3])) == 0.0
    assert roc_auc(torch.full((7,), 0.4), torch.full((5,), 0.4)) == 0.5
    generator = torch.Generator().manual_seed(0)
    negative, positive = torch.rand(40, generator=generator), torch.rand(30, generator=generator) + 0.3
    negative[:5] = positive[:5]  # some ties across the groups
    pairs = (positive[:, None] > negative[None, :]).double() + 0.5 * (positive[:, None] == negative[None, :])
    assert roc_auc(negative, positive) == pytest.approx(float(pairs.mean()))
    with pytest.raises(InputError):
        roc_auc(torch.tensor([]), torch.tensor([1.0]))


def test_passes_differ_while_batch_norm_stays_in_eval_mode(dropout_cnn, test_batch) -> None:
    x = test_batch[0][:32]
    bn = next(m for m in dropout_cnn.modules() if isinstance(m, nn.BatchNorm2d))
    running_mean = bn.running_mean.clone()
    seen_modes: list[bool] = []
    handle = bn.register_forward_hook(lambda module, inputs, output: seen_modes.append(module.training))
    dropout_cnn.train()  # even a model left in train mode gets eval batch-norm during the passes
    try:
        ensemble = MCDropoutEnsemble(dropout_cnn, passes=8)
        logits = ensemble.pass_logits(x)
    finally:
        handle.remove()
    assert logits.shape == (8, 32, 10)
    assert (logits[0] - logits[1]).abs().amax() > 1e-3  # dropout masks differ between passes
    assert seen_modes and not any(seen_modes)
    torch.testing.assert_close(bn.running_mean, running_mean)  # batch statistics never updated
    assert all(m.training for m in dropout_cnn.modules())  # every mode restored afterwards
    dropout_cnn.eval()
    with dropout_active(dropout_cnn):
        assert [m.training for m in dropout_cnn.modules() if isinstance(m, nn.Dropout)] == [True]
        assert not bn.training
    assert not any(m.training for m in dropout_cnn.modules())


def test_forward_is_a_differentiable_mean_log_softmax_and_votes_count(dropout_cnn, test_batch) -> None:
    x, y = test_batch
    ensemble = MCDropoutEnsemble(dropout_cnn, passes=10)
    assert declares_stochastic(ensemble)
    xr = x[:16].clone().requires_grad_(True)
    torch.manual_seed(3)
    out = ensemble(xr)
    torch.manual_seed(3)
    expected = torch.log_softmax(ensemble.pass_logits(x[:16]), dim=-1).mean(dim=0)
    torch.testing.assert_close(out, expected)
    assert (out.exp().sum(dim=-1) <= 1 + 1e-5).all()  # a geometric mean of probabilities
    (grad,) = torch.autograd.grad(out.gather(1, y[:16, None]).sum(), xr)
    assert grad.abs().sum() > 0
    torch.manual_seed(4)
    counts = ensemble.vote_counts(x, 15)
    assert counts.dtype == torch.int64 and (counts.sum(dim=-1) == 15).all()
    torch.manual_seed(4)
    assert (ensemble.vote(x, 15) == counts.argmax(dim=-1)).all()
    assert accuracy(dropout_cnn.eval(), x, y) > 0.8 and float((ensemble.vote(x, 15) == y).float().mean()) > 0.8
    with pytest.raises(InputError, match="dropout"):
        MCDropoutEnsemble(TinyCNN())


def test_vote_disagreement_detects_adversarial_inputs(dropout_cnn, test_batch) -> None:
    """Near-boundary (FGSM, ε = 0.1) adversarial inputs split the dropout votes more than clean ones.

    Measured on this tiny CNN: AUC ≈ 0.75 against all clean images, but only ≈ 0.57 against the clean versions
    of the same (hard) images, so much of the signal is "hard input", not "adversarial input".
    """
    fgsm = importlib.import_module("advlab.attacks.fgsm")
    x, y = test_batch[0][:200], test_batch[1][:200]
    adversarial = fgsm.FGSM(eps=0.1)(dropout_cnn, x, y)
    fooled = adversarial.success
    assert fooled.float().mean() > 0.2
    torch.manual_seed(0)
    ensemble = MCDropoutEnsemble(dropout_cnn, passes=20)
    scores_clean = ensemble.detection_score(x)
    assert scores_clean.min() >= 0 and scores_clean.max() <= 1 - 1 / 20 + 1e-6
    auc = detection_auc(ensemble, x, adversarial.adv[fooled])
    auc_entropy = detection_auc(ensemble, x, adversarial.adv[fooled], score="entropy")
    print(f"fooled {float(fooled.float().mean()):.2f}; AUC disagreement {auc:.3f}, entropy {auc_entropy:.3f}")
    assert auc > 0.65 and auc_entropy > 0.65
