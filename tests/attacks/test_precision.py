"""bf16 attacks (issue 19): same predictions as fp32 within tolerance, recorded settings, fp32 fallback."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from advlab.attacks import PGD
from advlab.errors import InputError
from advlab.evaluate.describe import describe_attack
from advlab.precision import autocast, has_native_bf16, resolve_precision


def small_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(8 * 14 * 14, 10)).eval()


def test_bf16_autocast_predicts_like_fp32_on_a_fixed_model() -> None:
    model, x = small_cnn(), torch.rand(64, 1, 28, 28)
    with torch.no_grad():
        full = model(x)
        with autocast("bf16", "cpu"):
            half = model(x)
    assert half.dtype == torch.bfloat16
    agree = (full.argmax(1) == half.float().argmax(1)).float().mean()
    assert agree >= 0.95 and (full - half.float()).abs().max() < 0.05 * (1 + full.abs().max())


def test_a_bf16_attack_returns_fp32_images_in_the_ball_and_decides_success_in_fp32() -> None:
    model, x = small_cnn(), torch.rand(32, 1, 28, 28)
    y = model(x).argmax(1)
    fp32 = PGD(eps=0.1, steps=5, seed=0)(model, x, y)
    bf16 = PGD(eps=0.1, steps=5, seed=0, precision="bf16")(model, x, y)
    assert bf16.adv.dtype == torch.float32 and float(bf16.norms["linf"].max()) <= 0.1 + 1e-6
    with torch.no_grad():
        assert torch.equal(bf16.adv_pred, model(bf16.adv).argmax(1))  # the verdict is an fp32 pass
    assert abs(bf16.robust_accuracy - fp32.robust_accuracy) <= 0.1


def test_the_precision_is_recorded_with_the_attack_settings() -> None:
    described = describe_attack(PGD(eps=0.1, precision="bf16"))
    assert "bf16" in str(described)


def test_auto_falls_back_to_fp32_without_native_bf16() -> None:
    assert resolve_precision("auto", "cpu", flags=frozenset({"avx2", "fma"})) == "fp32"
    assert resolve_precision("auto", "cpu", flags=frozenset({"avx512f", "amx_bf16"})) == "bf16"
    assert resolve_precision("auto", "cpu", flags=frozenset({"avx512_bf16"})) == "bf16"
    assert resolve_precision("bf16", "cpu", flags=frozenset()) == "bf16"  # an explicit choice is kept
    assert not has_native_bf16(torch.device("cpu"), frozenset({"avx2"}))
    with pytest.raises(InputError, match="precision"):
        resolve_precision("fp16", "cpu")


def test_early_stop_under_bf16_freezes_only_what_fp32_confirms() -> None:
    from advlab.attacks.pgd import confirmed_fooled, is_fooled

    model = nn.Linear(4, 2)
    with torch.no_grad():  # fp32 logits (1.0, 1.0002): class 1; in bf16 both round to 1.0 and argmax says 0
        model.weight.zero_()
        model.bias.copy_(torch.tensor([1.0, 1.0002]))
    x, y = torch.rand(3, 4), torch.ones(3, dtype=torch.long)
    with autocast("bf16", "cpu"):
        logits = model(x)
        fooled = is_fooled(logits, y, None)
        assert fooled.all(), "bf16 rounding alone flips these samples"
        assert not confirmed_fooled(model, x, fooled, y, None).any()
    assert torch.equal(confirmed_fooled(model, x, fooled, y, None), fooled)  # fp32 run: nothing re-judged
