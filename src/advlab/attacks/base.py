"""The attack contract: settings in a frozen dataclass, model and data per call, invariants in the base class.

Every attack subclasses :class:`Attack` and implements one method, :meth:`Attack.run`. The base class's
``__call__`` (final: subclasses never override it) owns what subclasses could get wrong (DESIGN.md §3.2,
following Foolbox 3's ``attacks/base.py``):

* input validation (shape, dtype, values in [0, 1], finite, labels in range, a target when targeted);
* the model in eval mode and its parameters frozen (``requires_grad=False``) during the attack, both
  **restored in ``finally``** even when the attack raises;
* projection of the result onto [0, 1] and onto the ε-ball of the attack's norm (when it has a budget);
* one final forward pass that decides success, and the per-sample perturbation norms.

Example::

    result = PGD(eps=8 / 255, steps=10)(model, x, y)
    print(result.robust_accuracy, result.norms["linf"].max())
"""

from __future__ import annotations

import dataclasses
import math
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, ClassVar, final

import torch
from torch import nn

from advlab.attacks.folding import fold_batch_norm
from advlab.compiling import compiled_once
from advlab.errors import InputError, looks_like_shape_mismatch
from advlab.modes import restored_modes
from advlab.precision import autocast

# The key under which run() may hand back the clean logits it computed anyway (see Attack.run).
CLEAN_LOGITS = "clean_logits"
# Attack settings that change how fast an attack runs, not what it computes (up to float rounding).
EXECUTION_ONLY = frozenset({"fold_batch_norm", "compile"})


class Norm(str, Enum):
    """Threat-model norms. Budgets are in [0, 1] pixel units (8/255 for L∞ on CIFAR-10, 0.3 on MNIST)."""

    LINF = "linf"
    L2 = "l2"
    L1 = "l1"
    L0 = "l0"


class ForwardCounter(nn.Module):
    """Wraps a model and counts single-image forward evaluations (``queries``), for black-box budgets."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.queries = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.queries += int(x.shape[0])
        return self.model(x)


class ChannelsLastInput(nn.Module):
    """Wraps a model so that every input reaches it in channels_last memory format (values unchanged)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.contiguous(memory_format=torch.channels_last))


@dataclass
class AttackResult:
    """What an attack produced for a batch of N images.

    Attributes:
        adv: adversarial images, float32 (N, C, H, W) in [0, 1], inside the attack's ε-ball.
        labels: true labels (N,).
        clean_pred: model predictions on the clean images (N,).
        adv_pred: model predictions on ``adv`` (N,), from one final forward pass.
        success: bool (N,): ``adv_pred != labels`` (untargeted) or ``adv_pred == target`` (targeted).
        norms: per-sample perturbation norms ``{"l0", "l1", "l2", "linf"}``, each (N,), in [0, 1] pixel units
            (L0 counts changed scalar entries, changes below 1e-8 ignored).
        queries: model evaluations on single images spent by the attack (its own passes, not the final one).
        target: target classes (N,) for targeted attacks, else None.
        extras: attack-specific per-sample tensors returned by ``run`` (e.g. ``best_l2`` for C&W).
    """

    adv: torch.Tensor
    labels: torch.Tensor
    clean_pred: torch.Tensor
    adv_pred: torch.Tensor
    success: torch.Tensor
    norms: dict[str, torch.Tensor]
    queries: int = 0
    target: torch.Tensor | None = None
    extras: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def clean_accuracy(self) -> float:
        return float((self.clean_pred == self.labels).float().mean())

    @property
    def robust_accuracy(self) -> float:
        """Share of images still classified correctly after the attack."""
        return float((self.adv_pred == self.labels).float().mean())

    @property
    def success_rate(self) -> float:
        return float(self.success.float().mean())

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def perturbation_norms(delta: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-sample L0/L1/L2/L∞ norms of ``delta`` (N, ...), as float32 tensors of shape (N,)."""
    flat = delta.detach().flatten(1).float()
    return {
        "l0": (flat.abs() > 1e-8).sum(dim=1).float(),
        "l1": flat.abs().sum(dim=1),
        "l2": flat.norm(p=2, dim=1),
        "linf": flat.abs().amax(dim=1) if flat.shape[1] else flat.new_zeros(flat.shape[0]),
    }


def project(x: torch.Tensor, adv: torch.Tensor, eps: float | None, norm: Norm) -> torch.Tensor:
    """Project ``adv`` onto the ``norm`` ball of radius ``eps`` around ``x``, then onto the box [0, 1].

    L∞ and the box commute (both are per-coordinate clamps), so the result lies in both sets. For L2 the ball
    projection comes first and the box clamp can only shrink the perturbation, so it stays inside the ball.
    L1 and L0 budgets are enforced by the attacks that use them; here they only clip to the box.
    """
    if eps is not None and math.isfinite(eps):
        delta = adv - x
        if norm is Norm.LINF:
            delta = delta.clamp(-eps, eps)
        elif norm is Norm.L2:
            norms = delta.flatten(1).norm(p=2, dim=1).clamp_min(1e-12)
            factor = (eps / norms).clamp(max=1.0).view(-1, *([1] * (x.dim() - 1)))
            delta = delta * factor
        adv = x + delta
    return adv.clamp(0.0, 1.0)


def probe_logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``model(x)`` without gradients, as the first contact with a model: a shape the model cannot take, or
    logits that are NaN or infinite for finite images, become an :class:`InputError` that says what to fix."""
    with torch.no_grad():
        try:
            logits = model(x)
        except RuntimeError as exc:  # e.g. 3-channel 32x32 images given to an MNIST model
            if not looks_like_shape_mismatch(exc):
                raise
            raise InputError(f"the model cannot process images of shape {tuple(x.shape[1:])} ({exc}); "
                             "pass images of the shape it was built for (see `advlab models`)") from exc
    return require_finite_logits(logits)


def require_finite_logits(logits: torch.Tensor) -> torch.Tensor:
    """``logits`` unchanged, or an :class:`InputError` when any is NaN or infinite (the argmax would be noise)."""
    if not torch.isfinite(logits).all():
        raise InputError("the model returned NaN or infinite logits for finite images in [0, 1]; its weights or "
                         "its forward pass are broken (a diverged training run?), so no accuracy can be measured")
    return logits


def _probe_num_classes(model: nn.Module, x: torch.Tensor) -> int:
    """The model's number of classes, from one image (see :func:`probe_logits` for the errors)."""
    return int(probe_logits(model, x[:1]).shape[-1])


@contextmanager
def frozen_eval(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode and ``requires_grad=False`` on every parameter for the duration; both restored in ``finally``.

    Freezing the parameters means ``torch.autograd.grad(loss, x)`` builds no weight gradients: attacks are
    faster and never touch the model's ``.grad`` fields.
    """
    flags = [(param, param.requires_grad) for param in model.parameters()]
    with restored_modes(model):
        try:
            model.eval()
            for param, _ in flags:
                param.requires_grad_(False)
            yield model
        finally:
            for param, requires_grad in flags:
                param.requires_grad_(requires_grad)


def validate_inputs(
    x: torch.Tensor, y: torch.Tensor | None, target: torch.Tensor | None, num_classes: int | None = None
) -> None:
    """Raise :class:`InputError` for anything that breaks the input contract (DESIGN.md §3.1)."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise InputError("images must be a floating-point torch tensor (N, C, H, W) with values in [0, 1]")
    if x.dim() != 4:
        raise InputError(f"images must have shape (N, C, H, W), got {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise InputError("the batch is empty: pass at least one image")
    if not torch.isfinite(x).all():
        raise InputError("images contain NaN or inf values; clean the input first")
    if x.min() < 0 or x.max() > 1:
        raise InputError(
            f"images must lie in [0, 1] (got min {float(x.min()):.3g}, max {float(x.max()):.3g}); "
            "divide uint8 images by 255 and keep mean/std normalization inside the model"
        )
    for name, labels in (("labels", y), ("target", target)):
        if labels is None:
            continue
        if labels.dtype not in (torch.int64, torch.int32) or labels.shape != (x.shape[0],):
            raise InputError(f"{name} must be an integer tensor of shape ({x.shape[0]},), got "
                             f"{labels.dtype} {tuple(labels.shape)}")
        if labels.min() < 0 or (num_classes is not None and labels.max() >= num_classes):
            allowed = f"lie in 0..{num_classes - 1}" if num_classes is not None else "be class indices >= 0"
            raise InputError(f"{name} must {allowed}, got values {int(labels.min())}..{int(labels.max())}")


def check_eps(eps: float | None, norm: Norm) -> None:
    if eps is None:
        return
    if not isinstance(eps, (int, float)) or math.isnan(eps) or eps < 0:
        raise InputError(f"eps must be a number >= 0, got {eps!r}")
    if norm is Norm.LINF and eps > 1:
        raise InputError(f"an L∞ eps of {eps} exceeds the [0, 1] pixel range; write e.g. 8/255, not 8")


def attack_network(model: nn.Module, x: torch.Tensor, *, fold: bool = True, compile: bool = False,
                   channels_last: bool = False) -> nn.Module:
    """The network an attack's own passes run through: ``model`` with its batch norm folded
    (:mod:`advlab.attacks.folding`), compiled once (:mod:`advlab.compiling`), fed NHWC images; ``model`` itself when
    none applies. ``x``: the images about to be attacked (N, C, H, W), on which a folded copy proves itself."""
    network = fold_batch_norm(model, x) if fold else model
    if compile:
        network = compiled_once(network, x.device, option="an attack's compile=True (--compile)")
    return ChannelsLastInput(network).eval() if channels_last else network


@dataclass
class _Generated:
    """What :meth:`Attack._generate` hands back: the (int64) labels and target it used, the projected images, the
    attack's extras and queries, the model as the attack saw it (channels_last wrapper included, not counting)
    and the clean logits if a pass at ``x`` already produced them."""

    x: torch.Tensor
    y: torch.Tensor
    target: torch.Tensor | None
    adv: torch.Tensor
    extras: dict[str, torch.Tensor]
    queries: int
    model: nn.Module
    clean_logits: torch.Tensor | None


@dataclass(frozen=True, kw_only=True)
class Attack(ABC):
    """Base class of every attack. Subclasses are frozen dataclasses of keyword-only settings.

    Class attributes a subclass sets:
        norm: the threat model's norm; ``eps`` (if the subclass has that field) is the radius in [0, 1] units.
        supports_targeted / supports_untargeted: which modes ``run`` implements.
    """

    norm: ClassVar[Norm] = Norm.LINF
    supports_targeted: ClassVar[bool] = True
    supports_untargeted: ClassVar[bool] = True

    # Feed the model channels_last images (NHWC in memory). Measured on a 2-core CPU (fp32, oneDNN): forward +
    # backward of ResNet-20 and the CIFAR CNN 1.2-1.5x faster, the 1-channel MNIST CNN unchanged; an option,
    # not a default, because models that call .view() on conv outputs need contiguous tensors.
    channels_last: bool = False
    # "fp32", "bf16" or "auto" (bf16 where the hardware runs it natively: advlab.precision). bf16 autocast covers
    # the attack's own forward and backward passes; projection, the clean pass and the final pass that decides
    # success stay fp32, so a bf16 attack can only be weaker, never report a success fp32 would not see.
    precision: str = "fp32"
    # The attack's own passes run through a copy of the model with each eval-mode conv -> BN pair folded into one
    # convolution (advlab.attacks.folding): the same function, one memory-bound pass per layer fewer each way.
    # The clean and final passes that report and judge success use the model itself.
    fold_batch_norm: bool = True
    # Run the attack's own passes through torch.compile (advlab.compiling), compiled once per model and reused by
    # every later batch. The first batch pays the compilation (seconds to minutes on a small CPU), so it pays off
    # only for long runs; needs a C++ compiler on CPU. Off by default.
    compile: bool = False

    @property
    def budget(self) -> float | None:
        """The ε-ball radius the base class projects onto (None: unbounded, e.g. C&W, DeepFool)."""
        eps = getattr(self, "eps", None)
        return None if eps is None else float(eps)

    @classmethod
    def is_bounded(cls) -> bool:
        """True for attacks with an ε budget (an ``eps`` setting): they have curves over ε and join cascades."""
        return dataclasses.is_dataclass(cls) and any(f.name == "eps" for f in dataclasses.fields(cls))

    def at(self, eps: float) -> Attack:
        """The same attack at budget ``eps`` (settings relative to ε, such as PGD's ``step_fraction``, follow)."""
        if not self.is_bounded():
            raise InputError(f"{type(self).__name__} has no ε budget (it minimizes the perturbation), so it has "
                             "no version at another ε")
        # Not every Attack declares ``eps`` (is_bounded checked that this one does), so the change goes by name.
        changes: dict[str, Any] = {"eps": float(eps)}
        return dataclasses.replace(self, **changes)

    @final
    def __call__(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor | None = None, *, target: torch.Tensor | None = None
    ) -> AttackResult:
        """Attack ``model`` on images ``x`` (N, C, H, W) in [0, 1] with labels ``y`` (N,); targeted if ``target``."""
        with frozen_eval(model):
            run = self._generate(model, x, y, target, report=True)
            with torch.no_grad():
                # An attack whose first gradient pass ran at x reports those logits: no second clean pass.
                clean_logits = run.clean_logits if run.clean_logits is not None else run.model(run.x)
                adv_pred = run.model(run.adv).argmax(dim=-1)
        clean_pred = require_finite_logits(clean_logits).argmax(dim=-1)
        success = adv_pred == run.target if run.target is not None else adv_pred != run.y
        return AttackResult(
            adv=run.adv,
            labels=run.y,
            clean_pred=clean_pred,
            adv_pred=adv_pred,
            success=success,
            norms=perturbation_norms(run.adv - run.x),
            queries=run.queries,
            target=run.target,
            extras=run.extras,
        )

    @final
    def perturb(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor | None = None, *, target: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Only the adversarial images: ``self(model, x, y, target=target).adv`` without the passes that report.

        For adversarial training (and purifier training), which use nothing else: ``__call__`` also probes the
        number of classes, predicts the clean and the adversarial images and measures the norms, which for a
        one-step attack is as much model work as the attack itself. Same validation, eval mode, frozen
        parameters, projection and random stream as ``__call__``.
        """
        with frozen_eval(model):
            return self._generate(model, x, y, target, report=False).adv

    def _generate(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor | None, target: torch.Tensor | None,
                  *, report: bool) -> _Generated:
        """Validate, run the attack and project; called inside ``frozen_eval(model)``.

        ``report`` adds the one-image probe that checks the labels against the model's number of classes (a shape
        error becomes a clear InputError there); without it the attack's own first pass raises any such error.
        """
        check_eps(self.budget, self.norm)
        if target is None and not self.supports_untargeted:
            raise InputError(f"{type(self).__name__} is a targeted attack: pass target=... (class per image)")
        if target is not None and not self.supports_targeted:
            raise InputError(f"{type(self).__name__} does not support targeted attacks; drop target=...")
        validate_inputs(x, y, target)
        weights = next((p for p in model.parameters() if p.is_floating_point()), None)
        if weights is not None and weights.dtype != x.dtype:
            casts = {torch.float32: "x.float()", torch.float64: "x.double()"}
            cast = casts.get(weights.dtype, f"x.to({weights.dtype})")
            raise InputError(f"the images are {x.dtype} but the model's weights are {weights.dtype}: pass {cast}")
        x = x.detach()
        # The attack's own passes go through ``attacked`` (folded, compiled); reporting and judging through the model.
        attacked = attack_network(model, x, fold=self._may_fold(), compile=self.compile,
                                  channels_last=self.channels_last)
        if self.channels_last:
            model = ChannelsLastInput(model).eval()
        counter = ForwardCounter(attacked)
        if report:
            validate_inputs(x, y, target, _probe_num_classes(model, x))
        clean_logits = None
        if y is None:
            with torch.no_grad():
                clean_logits = model(x)
            y = clean_logits.argmax(dim=-1)
        y = y.to(torch.int64)
        target = None if target is None else target.to(torch.int64)
        with autocast(self.precision, x.device):
            output = self.run(counter, x, y, target)
        # run() may return (adv, extras) to report per-sample information (C&W's best L2, queries per image).
        adv, extras = output if isinstance(output, tuple) else (output, {})
        extras = dict(extras)
        reported = extras.pop(CLEAN_LOGITS, None)
        adv = project(x, adv.detach().to(x.dtype), self.budget, self.norm)
        return _Generated(x=x, y=y, target=target, adv=adv, extras=extras, queries=counter.queries, model=model,
                          clean_logits=clean_logits if clean_logits is not None else reported)

    def _may_fold(self) -> bool:
        """Fold batch norm unless switched off or a gradient estimator stands in for autograd (it may look inside
        the model: BPDA's preprocessor, a defense's own layers)."""
        return self.fold_batch_norm and getattr(self, "gradient", None) is None

    @abstractmethod
    def run(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None
    ) -> torch.Tensor | tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Return adversarial images for ``x`` (or ``(adv, extras)``); the base projects them and judges success.

        ``extras`` maps names to per-sample tensors (N, ...) and lands in :attr:`AttackResult.extras`.

        ``model`` is already in eval mode with frozen parameters and counts its forward passes. ``y`` holds the
        true labels (or the clean predictions when the caller gave none); ``target`` is None when untargeted.
        An attack that evaluated the model at ``x`` itself anyway (the first gradient pass of FGSM or BIM) may
        put those logits (N, K) under ``extras[CLEAN_LOGITS]``; the base class then skips its own clean pass.
        """
