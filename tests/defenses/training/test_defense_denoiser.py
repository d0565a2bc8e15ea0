"""Denoising autoencoder: trained with fit() on FGSM pairs, it moves held-out adversarial images back to clean."""

from __future__ import annotations

import importlib

import torch
import torch.nn.functional as F

from advlab.defenses.denoiser import (
    ConvDenoiser,
    DenoiserDefense,
    DenoisingObjective,
    Purified,
    purification_report,
)
from advlab.training.two_stage import train_denoiser

fgsm_module = importlib.import_module("advlab.attacks.fgsm")
train_module = importlib.import_module("advlab.train")


def test_untrained_denoiser_is_the_identity_and_keeps_odd_sizes() -> None:
    x = torch.rand(2, 3, 15, 17)
    torch.testing.assert_close(ConvDenoiser(channels=3, width=8)(x), x)


def test_denoising_objective_is_mse_to_clean(trained_cnn, test_batch) -> None:
    x, y = test_batch[0][:16], test_batch[1][:16]
    attack = fgsm_module.FGSM(eps=0.1)
    denoiser = ConvDenoiser(width=8)
    with torch.no_grad():
        denoiser.decoder[-1].bias.fill_(0.1)  # not the identity, so the clean term is non-zero
    objective = DenoisingObjective(classifier=trained_cnn, attack=attack, clean_weight=0.5)
    adversarial = attack(trained_cnn, x, y).adv
    expected = F.mse_loss(denoiser(adversarial), x) + 0.5 * F.mse_loss(denoiser(x), x)
    torch.testing.assert_close(objective(denoiser, x, y), expected)
    card = objective.describe()
    assert card["attack"] == "FGSM" and card["attack_settings"]["eps"] == 0.1 and card["clean_weight"] == 0.5


def test_trained_denoiser_reduces_the_distance_to_clean_on_held_out_adversarial_images(mnist, trained_cnn) -> None:
    """Measured: MSE to clean 0.019 -> 0.005, accuracy 5 % -> 67 %, 65 % of the fooled labels fixed."""
    train, test = mnist
    attack = fgsm_module.FGSM(eps=0.2)
    config = train_module.TrainConfig(epochs=3, batch_size=64, optimizer="adam", lr=2e-3, best_metric="purify_loss")
    denoiser = ConvDenoiser(channels=1, width=8)
    run = train_denoiser(denoiser, trained_cnn, train.subset(1500), attack=attack, config=config,
                         val_set=test.subset(100), quiet=True, device="cpu")
    assert run.history[-1]["train_loss"] < run.history[0]["train_loss"]
    assert run.best is not None and run.best["metric"] == "purify_loss"
    assert run.card["objective"]["name"] == "denoiser"
    x, y = test.float_images(), test.labels
    adversarial = attack(trained_cnn, x, y).adv
    report = purification_report(denoiser, trained_cnn, x, adversarial, y)
    print({key: round(value, 4) for key, value in report.items()})
    assert report["mse_purified"] < 0.5 * report["mse_adversarial"]
    assert report["accuracy_purified"] > report["accuracy_adversarial"] + 0.2
    assert report["fixed_share"] > 0.4 and report["accuracy_clean_purified"] > 0.85
    protected = DenoiserDefense().purified(trained_cnn, denoiser)
    assert isinstance(protected, Purified)
    torch.testing.assert_close(protected(x[:8]), trained_cnn(denoiser(x[:8])))
