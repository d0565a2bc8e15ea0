"""``Attack(compile=True)`` / ``--compile``: torch.compile of the attack's passes, its measured estimate, and one
clear error without a C++ compiler."""

from __future__ import annotations

import shutil

import pytest
import torch

from advlab.attacks import PGD
from advlab.attacks.compile_estimate import CompileEstimate, estimate_compile
from advlab.errors import InputError
from advlab.evaluate.describe import describe_attack
from advlab.models.registry import create_model


def test_the_estimate_says_when_compiling_pays() -> None:
    faster = CompileEstimate(batch=128, eager_s=0.05, compiled_s=0.03, compile_s=10.0)
    assert faster.break_even_passes == pytest.approx(500)
    assert "saves about 10 s" in faster.describe(planned_passes=1000)
    assert "costs about 8 s more" in faster.describe(planned_passes=100)
    slower = CompileEstimate(batch=128, eager_s=0.03, compiled_s=0.03, compile_s=10.0)
    assert slower.break_even_passes is None and "never pays off" in slower.describe(planned_passes=10**6)


def test_execution_only_settings_stay_out_of_the_attack_description() -> None:
    described = describe_attack(PGD(eps=8 / 255, compile=True, fold_batch_norm=False))["settings"]
    assert "compile" not in described and "fold_batch_norm" not in described and described["eps"] == 8 / 255


def test_compile_without_a_cpp_compiler_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    model = create_model("mnist_small").eval()
    x, y = torch.rand(4, 1, 28, 28), torch.randint(0, 10, (4,))
    with pytest.raises(InputError, match="C\\+\\+ compiler"):
        PGD(eps=0.1, steps=2, compile=True)(model, x, y)


@pytest.mark.slow
def test_a_compiled_attack_finds_what_the_eager_one_finds() -> None:
    if not any(shutil.which(name) for name in ("c++", "g++", "clang++")):
        pytest.fail("this test needs a C++ compiler (torch.compile's CPU backend builds its kernels with it)")
    torch.manual_seed(0)
    model = create_model("resnet20").eval()
    generator = torch.Generator().manual_seed(0)
    x, y = torch.rand(16, 3, 32, 32, generator=generator), torch.randint(0, 10, (16,), generator=generator)
    estimate = estimate_compile(model, x, y)
    assert estimate.eager_s > 0 and estimate.compiled_s > 0 and estimate.compile_s >= 0
    eager = PGD(eps=8 / 255, steps=5, seed=0)(model, x, y)
    compiled = PGD(eps=8 / 255, steps=5, seed=0, compile=True)(model, x, y)
    assert torch.equal(compiled.adv_pred, eager.adv_pred)
    assert float(compiled.norms["linf"].max()) <= 8 / 255 + 1e-6
