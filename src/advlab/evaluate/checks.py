"""Sanity checks for an evaluation: signs that gradients are obfuscated and the robust accuracy is too high.

The checklist of Athalye, Carlini, Wagner (2018, "Obfuscated Gradients Give a False Sense of Security",
arXiv:1802.00420, §3.1) and Carlini et al. (2019, "On Evaluating Adversarial Robustness", arXiv:1902.06705),
written like AutoAttack's ``checks.py``: each check is a small function returning a :class:`CheckResult` whose
``doc_anchor`` points at a one-paragraph explanation in ``advlab/evaluate/checks.md``. A check never raises for a bad
model; it warns. It skips (with a reason) when what it needs is not available.

:func:`run_checks` runs them all with a small budget (the first ``max_points`` points, few steps).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from advlab.attacks.base import Attack, Norm, frozen_eval
from advlab.errors import AdvlabError, InputError
from advlab.evaluate.randomness import eot_samples_of, is_randomized, seeded
from advlab.evaluate.runner import run_attack

Status = Literal["pass", "warn", "skip"]
DOC = "advlab/evaluate/checks.md"


@dataclass(frozen=True)
class CheckResult:
    """Outcome of one check: ``status`` is "pass", "warn" or "skip"; ``values`` are the numbers it compared."""

    name: str
    status: Status
    values: dict[str, float | int | bool | None] = field(default_factory=dict)
    message: str = ""
    doc_anchor: str = ""

    @property
    def warned(self) -> bool:
        return self.status == "warn"

    @property
    def doc_link(self) -> str:
        return f"{DOC}#{self.doc_anchor}"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "values": dict(self.values), "message": self.message,
                "doc": self.doc_link}


def _result(name: str, anchor: str, warn: bool, values: dict[str, Any], warn_msg: str, pass_msg: str) -> CheckResult:
    return CheckResult(name, "warn" if warn else "pass", values, warn_msg if warn else pass_msg, anchor)


def _skip(name: str, anchor: str, reason: str) -> CheckResult:
    return CheckResult(name, "skip", {}, reason, anchor)


def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, attack: Attack, batch_size: int) -> float:
    return run_attack(model, (x, y), attack, batch_size=batch_size).metrics().robust_accuracy


def check_iterative_vs_single_step(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, single_step: Attack, iterative: Attack,
    tolerance: float = 0.02, batch_size: int = 256,
) -> CheckResult:
    """Warn if the iterative attack (PGD) leaves *more* points robust than the one-step attack (FGSM)."""
    single, multi = _accuracy(model, x, y, single_step, batch_size), _accuracy(model, x, y, iterative, batch_size)
    return _result(
        "iterative_vs_single_step", "iterative-vs-single-step", multi > single + tolerance,
        {"single_step_accuracy": single, "iterative_accuracy": multi},
        f"the iterative attack ({multi:.3f}) is weaker than one step ({single:.3f}): gradients may be masked",
        f"the iterative attack ({multi:.3f}) is at least as strong as one step ({single:.3f})")


def check_white_box_vs_black_box(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, white_box: Attack, black_box: Mapping[str, Attack],
    tolerance: float = 0.02, batch_size: int = 256,
) -> CheckResult:
    """Warn if a black-box or transfer attack leaves *fewer* points robust than the white-box attack."""
    if not black_box:
        return _skip("white_box_vs_black_box", "white-box-vs-black-box", "no black-box or transfer attack given")
    white = _accuracy(model, x, y, white_box, batch_size)
    others = {name: _accuracy(model, x, y, attack, batch_size) for name, attack in black_box.items()}
    best_name, best = min(others.items(), key=lambda item: item[1])
    values = {"white_box_accuracy": white} | {f"{name}_accuracy": acc for name, acc in others.items()}
    return _result(
        "white_box_vs_black_box", "white-box-vs-black-box", best < white - tolerance, values,
        f"{best_name} ({best:.3f}) beats the white-box attack ({white:.3f}): its gradients are not informative",
        f"the white-box attack ({white:.3f}) is at least as strong as {', '.join(others)}")


def check_unbounded_attack(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, attack: Attack, max_accuracy: float = 0.05,
    batch_size: int = 256,
) -> CheckResult:
    """Warn if the attack with an unlimited budget (L∞ ε = 1, or a huge L2 ε) does not reach ~0 accuracy.

    With ε = 1 every image can become any image, so a working attack must fool (almost) everything.
    """
    if not attack.is_bounded():
        return _skip("unbounded_attack", "unbounded-attack", f"{type(attack).__name__} has no eps setting")
    big = 1.0 if attack.norm is Norm.LINF else float(x[0].numel()) ** 0.5
    changes: dict[str, Any] = {"eps": big}
    if getattr(attack, "step_size", None) is not None:
        changes["step_size"] = big / 4
    accuracy = _accuracy(model, x, y, dataclasses.replace(attack, **changes), batch_size)
    return _result(
        "unbounded_attack", "unbounded-attack", accuracy > max_accuracy, {"eps": big, "accuracy": accuracy},
        f"with an unlimited budget (eps={big:g}) {accuracy:.1%} of points stay correct: the attack is not "
        "working on this model", f"an unlimited budget (eps={big:g}) brings accuracy to {accuracy:.1%}")


def check_more_iterations(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, attack: Attack, factor: int = 5,
    tolerance: float = 0.02, batch_size: int = 256,
) -> CheckResult:
    """Warn if ``factor`` times more steps (and restarts, when the attack has them) raises robust accuracy."""
    names = {f.name for f in dataclasses.fields(attack)}
    if "steps" not in names:
        return _skip("more_iterations", "more-iterations", f"{type(attack).__name__} has no steps setting")
    changes: dict[str, Any] = {"steps": int(attack.steps) * factor}  # type: ignore[attr-defined]
    if "restarts" in names:
        changes["restarts"] = max(1, int(attack.restarts)) * 2  # type: ignore[attr-defined]
    base = _accuracy(model, x, y, attack, batch_size)
    more = _accuracy(model, x, y, dataclasses.replace(attack, **changes), batch_size)
    return _result(
        "more_iterations", "more-iterations", more > base + tolerance,
        {"accuracy": base, "more_iterations_accuracy": more, "steps": changes["steps"]},
        f"more iterations made the model look *more* robust ({base:.3f} -> {more:.3f}): the attack is unstable",
        f"more iterations do not help the model ({base:.3f} -> {more:.3f})")


def sample_in_ball(
    x: torch.Tensor, eps: float, norm: Norm | str, generator: torch.Generator | None = None
) -> torch.Tensor:
    """One uniform sample from the ``norm`` ball of radius ``eps`` around each image, clipped to [0, 1].

    L∞: independent uniform coordinates. L2: a Gaussian direction scaled by ``eps · u^(1/d)`` (uniform in
    volume). Other norms: a random-sign vertex scaled to the L∞ box (not uniform; documented as such).
    """
    norm = Norm(norm)
    shape, dim = x.shape, x[0].numel()
    if norm is Norm.L2:
        direction = torch.randn(shape, generator=generator, device=x.device)
        direction = direction / direction.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
        radius = eps * torch.rand(shape[0], generator=generator, device=x.device) ** (1.0 / dim)
        delta = direction * radius.view(-1, 1, 1, 1)
    else:
        delta = (torch.rand(shape, generator=generator, device=x.device) * 2 - 1) * eps
    return (x + delta).clamp(0.0, 1.0)


def check_random_sampling(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, attack: Attack, draws: int = 20,
    tolerance: float = 0.02, batch_size: int = 256,
) -> CheckResult:
    """Warn if ``draws`` uniform samples in the ε-ball fool points that the gradient attack does not.

    A point counts as robust to random sampling only if every draw keeps it correct.
    """
    eps = attack.budget
    if eps is None:
        return _skip("random_sampling", "random-sampling", f"{type(attack).__name__} has no ε-ball to sample")
    gradient_accuracy = _accuracy(model, x, y, attack, batch_size)
    robust = torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
    with frozen_eval(model), torch.no_grad():
        robust &= model(x).argmax(dim=-1) == y
        for _ in range(draws):
            robust &= model(sample_in_ball(x, eps, attack.norm)).argmax(dim=-1) == y
    noise_accuracy = float(robust.double().mean())
    return _result(
        "random_sampling", "random-sampling", noise_accuracy < gradient_accuracy - tolerance,
        {"gradient_accuracy": gradient_accuracy, "random_sampling_accuracy": noise_accuracy, "draws": draws},
        f"random points in the ε-ball ({noise_accuracy:.3f}) beat the gradient attack ({gradient_accuracy:.3f})",
        f"the gradient attack ({gradient_accuracy:.3f}) beats {draws} random draws ({noise_accuracy:.3f})")


def input_gradients(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """∇ₓ of the per-sample cross-entropy, (N, C, H, W), in eval mode with frozen parameters."""
    with frozen_eval(model), torch.enable_grad():
        x = x.detach().clone().requires_grad_(True)
        loss = F.cross_entropy(model(x), y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, x)
    return grad


def check_zero_gradients(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, max_zero_fraction: float = 0.05,
) -> CheckResult:
    """Warn if more than ``max_zero_fraction`` of the points have an input gradient that is exactly zero.

    Exact zeros come from non-differentiable steps (rounding, quantization, thresholds) or from softmax
    saturation in float32; either way a gradient attack learns nothing there (AutoAttack's zero-gradient check).
    """
    grad = input_gradients(model, x, y).flatten(1)
    zero = grad.abs().amax(dim=1) == 0
    fraction, mean_abs = float(zero.double().mean()), float(grad.abs().mean())
    return _result(
        "zero_gradients", "zero-gradients", fraction > max_zero_fraction,
        {"zero_gradient_fraction": fraction, "mean_abs_gradient": mean_abs},
        f"{fraction:.1%} of the points have an exactly zero input gradient (mean |∇| = {mean_abs:.3g}): "
        "gradient-based attacks will fail there; use BPDA, EOT or a black-box attack",
        f"{fraction:.1%} zero input gradients (mean |∇| = {mean_abs:.3g})")


def check_saturated_softmax(
    model: nn.Module, x: torch.Tensor, *, max_saturated_fraction: float = 0.5,
) -> CheckResult:
    """Warn if for most points the float32 softmax is saturated (top probability rounds to exactly 1).

    That happens when the logit margin exceeds ~17 (e^-17 is below float32's resolution at 1): the
    cross-entropy gradient then vanishes, which is how defensive distillation evaluated at T = 1 "defeats"
    gradient attacks (Carlini & Wagner 2016, "Defensive Distillation is Not Robust", arXiv:1607.04311).
    """
    with frozen_eval(model), torch.no_grad():
        logits = model(x).float()
    probs = logits.softmax(dim=-1)
    saturated = probs.amax(dim=-1) >= 1.0
    top2 = logits.topk(2, dim=-1).values
    margin = (top2[:, 0] - top2[:, 1]).median() if logits.shape[-1] > 1 else logits.new_tensor(0.0)
    fraction = float(saturated.double().mean())
    values = {"saturated_fraction": fraction, "median_logit_margin": float(margin),
              "max_abs_logit": float(logits.abs().max())}
    return _result(
        "saturated_softmax", "saturated-softmax", fraction > max_saturated_fraction, values,
        f"the softmax is saturated (top probability exactly 1) for {fraction:.1%} of the points (median logit "
        f"margin {float(margin):.3g}): attack the logits (C&W margin loss) or divide them by a temperature",
        f"{fraction:.1%} saturated softmax outputs (median logit margin {float(margin):.3g})")


def check_randomness_without_eot(model: nn.Module, x: torch.Tensor, *, attack: Attack) -> CheckResult:
    """Warn if the model is randomized but the attack averages no gradients (``eot_samples`` = 1)."""
    randomized, samples = is_randomized(model, x), eot_samples_of(attack)
    return _result(
        "randomness_without_eot", "randomness-without-eot", randomized and samples <= 1,
        {"randomized": randomized, "eot_samples": samples},
        "the model is randomized but the attack uses one gradient sample: set eot_samples (e.g. 10) and report "
        "mean ± std over trials",
        "deterministic model" if not randomized else f"randomized model attacked with EOT ({samples} samples)")


def check_finite_outputs(model: nn.Module, x: torch.Tensor, eps: float, norm: Norm | str, *,
                         draws: int = 5) -> CheckResult:
    """Warn if the logits are NaN or infinite on the points or on random points of their ε-ball.

    A model whose outputs are not finite gives meaningless accuracies (the argmax of NaN is an arbitrary class)
    and gradients, so every other number of the evaluation is in doubt.
    """
    bad = 0
    with frozen_eval(model), torch.no_grad():
        bad += int((~torch.isfinite(model(x))).any(dim=-1).sum())
        for _ in range(draws):
            bad += int((~torch.isfinite(model(sample_in_ball(x, eps, norm)))).any(dim=-1).sum())
    total = x.shape[0] * (draws + 1)
    return _result("finite_outputs", "finite-outputs", bad > 0, {"non_finite": bad, "evaluated": total},
                   f"{bad} of {total} forward passes returned NaN or infinite logits; no accuracy is meaningful",
                   f"all {total} forward passes (points and {draws} random draws in the ε-ball) gave finite logits")


def _registered(name: str, **settings: Any) -> Attack | None:
    """A registered attack built with the settings it has, or None when ``name`` is not registered."""
    from advlab.attacks.registry import ATTACKS

    if name not in ATTACKS:
        try:
            import advlab.attacks  # noqa: F401 - importing the package registers every attack
        except ImportError:
            return None
        if name not in ATTACKS:
            return None
    return ATTACKS.create(name, **settings)


def default_check_attacks(eps: float, norm: Norm | str = Norm.LINF, steps: int = 10) -> dict[str, Attack | None]:
    """The registry's one-step, iterative and black-box attacks for ``eps``, with a small budget."""
    linf = Norm(norm) is Norm.LINF
    return {
        "single_step": _registered("fgsm" if linf else "fgm", eps=eps),
        "iterative": _registered("pgd" if linf else "pgd_l2", eps=eps, steps=steps, step_fraction=0.25),
        # Square is L∞ only for now; the L2 black-box check skips.
        "black_box": _registered("square", eps=eps, steps=500) if linf else None,
    }


def run_checks(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    *,
    norm: Norm | str = Norm.LINF,
    attacks: Mapping[str, Attack | None] | None = None,
    transfer: Mapping[str, Attack] | None = None,
    max_points: int = 200,
    tolerance: float = 0.02,
    seed: int = 0,
    batch_size: int = 256,
) -> list[CheckResult]:
    """Run every check on the first ``max_points`` points of ``(x, y)`` at radius ``eps``.

    Args:
        attacks: overrides ``{"single_step", "iterative", "black_box"}``; missing ones come from the attack
            registry (FGSM, PGD with 10 steps of ε/4, Square with 500 queries). The iterative attack is the one
            whose EOT setting the randomness check inspects.
        transfer: extra transfer attacks compared with the white-box attack (name -> attack).
        seed: the checks run under this seed; the caller's RNG is untouched.

    Returns:
        One :class:`CheckResult` per check, in the order of ``advlab/evaluate/checks.md``; skipped checks say why.
    """
    if eps is None or not isinstance(eps, (int, float)) or math.isnan(eps) or eps < 0:
        raise InputError(f"eps must be a number >= 0, got {eps!r}")
    x, y = x[:max_points], y[:max_points]
    chosen = default_check_attacks(eps, norm) | dict(attacks or {})
    single, iterative, black = chosen.get("single_step"), chosen.get("iterative"), chosen.get("black_box")
    missing = "attack is not registered (import advlab.attacks) and none was passed"
    kw: dict[str, Any] = {"tolerance": tolerance, "batch_size": batch_size}

    def given(attack: Attack | None) -> Attack:
        """The attack a check needs (its plan entry runs only when it is there)."""
        assert attack is not None
        return attack

    plan: list[tuple[str, str, Callable[[], CheckResult], bool]] = [
        ("iterative_vs_single_step", "iterative-vs-single-step",
         lambda: check_iterative_vs_single_step(model, x, y, single_step=given(single),
                                                iterative=given(iterative), **kw),
         single is not None and iterative is not None),
        ("white_box_vs_black_box", "white-box-vs-black-box",
         lambda: check_white_box_vs_black_box(
             model, x, y, white_box=given(iterative),
             black_box=({"black_box": black} if black is not None else {}) | dict(transfer or {}), **kw),
         iterative is not None),
        ("unbounded_attack", "unbounded-attack",
         lambda: check_unbounded_attack(model, x, y, attack=given(iterative), batch_size=batch_size),
         iterative is not None),
        ("more_iterations", "more-iterations",
         lambda: check_more_iterations(model, x, y, attack=given(iterative), **kw), iterative is not None),
        ("random_sampling", "random-sampling",
         lambda: check_random_sampling(model, x, y, attack=given(iterative), **kw), iterative is not None),
        ("zero_gradients", "zero-gradients", lambda: check_zero_gradients(model, x, y), True),
        ("saturated_softmax", "saturated-softmax", lambda: check_saturated_softmax(model, x), True),
        ("randomness_without_eot", "randomness-without-eot",
         lambda: check_randomness_without_eot(model, x, attack=given(iterative)), iterative is not None),
        ("finite_outputs", "finite-outputs", lambda: check_finite_outputs(model, x, eps, norm), True),
    ]
    results = []
    device = x.device
    for index, (name, anchor, check, possible) in enumerate(plan):
        if not possible:
            results.append(_skip(name, anchor, f"the needed {missing}"))
            continue
        with seeded(seed, "check", index, device=device):
            try:
                results.append(check())
            except AdvlabError as exc:  # e.g. an attack that refuses a setting the check needs
                results.append(_skip(name, anchor, f"could not run: {exc}"))
    return results
