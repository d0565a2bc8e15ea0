"""Adversarial-training objectives: the training loss mixes clean inputs with perturbed (attacked) inputs.

Every objective here is one small dataclass run by the one ``advlab.train.fit`` (DESIGN.md §3.5)::

    loss = clean_weight · CE(model(x), y) + (1 − clean_weight) · CE(model(x̃), y)

where ``x̃`` is produced by :meth:`PerturbedInputObjective.perturb`: an attack (FGSM, PGD, fast FGSM with a random
start, FGSM against a per-epoch snapshot of the model) or random noise (``advlab.defenses.noise``). They differ only
in ``perturb`` and their settings, so the mixing, the warm-up and the card description live once, in the base.

How the adversarial inputs are generated (one rule for all objectives):
    * The attack's ``__call__`` puts the model in **eval mode with frozen parameters** and restores both in
      ``finally``; the training loss is then computed in train mode with parameter gradients. So batch-norm uses
      its running statistics during generation and dropout is off, as in evaluation.
    * Noise a defense *builds into the model* (PNI's weight/activation noise, an :class:`~advlab.defenses.noise.
      InputNoise` wrapper) is **on** during generation by default: those layers draw noise in eval mode too. The
      adversary of a noisy model therefore attacks the noisy model, as in PNI (Rakin et al. 2019, Eq. 12) — a
      deterministic surrogate would be a weaker adversary and overstate robustness. ``pni_in_generation=False``
      switches PNI layers (and only those) off while x̃ is generated, the ablation of the PNI paper's Table 1
      ("without PNI in x̂ generation", Eq. 2 instead of Eq. 12); the training loss still sees the noise.
    * ``labels="predicted"`` attacks the model's own clean predictions instead of the true labels (PNI; Kurakin
      et al. 2017's remedy for *label leaking*, where the true label makes the one-step adversarial example easier
      to fit than the clean one). The training loss always uses the true labels.

Settings use [0, 1] pixel units (DESIGN.md §3.1): ε = 0.3 on MNIST, 8/255 on CIFAR-10.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from advlab.data.dataset import ImageDataset
from advlab.defenses.registry import register_defense
from advlab.errors import InputError
from advlab.modes import restored_modes
from advlab.objectives import ObjectiveBase
from advlab.precision import PRECISIONS

if TYPE_CHECKING:
    from advlab.attacks.base import Attack

LabelMode = Literal["true", "predicted"]


@dataclass(kw_only=True)
class PerturbedInputObjective(ObjectiveBase):
    """Base: ``clean_weight · CE(x) + (1 − clean_weight) · CE(perturb(x))``, with optional clean warm-up epochs.

    Args:
        clean_weight: weight w_c of the clean loss in [0, 1]; the perturbed loss gets ``1 − w_c``.
            0 trains on perturbed inputs only (Madry et al.), 0.5 weighs both equally (PNI, Goodfellow's α = 0.5).
        warmup_epochs: the first ``warmup_epochs`` epochs (0-based epoch index < warmup_epochs, as passed to
            :meth:`on_epoch_start` by ``fit``) use the clean loss only; attacks on an untrained model are noise.

    Subclasses set ``name`` (the registry name written to the checkpoint card) and implement :meth:`perturb`.
    """

    name: ClassVar[str] = ""
    #: True when the objective itself makes the *model* random (none here: randomness in training only).
    stochastic: ClassVar[bool] = False

    clean_weight: float = 0.0
    warmup_epochs: int = 0
    _epoch: int = field(default=0, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not 0.0 <= self.clean_weight <= 1.0:
            raise InputError(f"clean_weight must lie in [0, 1], got {self.clean_weight}")
        if self.warmup_epochs < 0:
            raise InputError(f"warmup_epochs must be >= 0, got {self.warmup_epochs}")

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Return the perturbed inputs x̃ (same shape as ``x``, in [0, 1], detached)."""
        raise NotImplementedError

    def on_epoch_start(self, model: nn.Module, epoch: int) -> None:
        """Hook called by ``fit`` before each epoch (0-based): tracks the epoch for the warm-up."""
        self._epoch = int(epoch)

    @property
    def in_warmup(self) -> bool:
        return self._epoch < self.warmup_epochs

    @property
    def clean_only(self) -> bool:
        """True while the loss is the clean one alone (warm-up, or ``clean_weight`` 1): nothing is perturbed."""
        return self.in_warmup or self.clean_weight == 1.0

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Scalar training loss for a batch ``x`` (N, C, H, W) in [0, 1] with labels ``y`` (N,)."""
        if self.clean_only:
            return F.cross_entropy(model(x), y)
        # Generate first: the attack toggles eval mode and restores the caller's train mode afterwards. Attacks
        # run in float32 (DESIGN.md §4) even inside fit's bf16 autocast, unless their own precision asks for bf16.
        with torch.autocast(x.device.type, enabled=False):
            perturbed = self.perturb(model, x, y).detach()
        return self.mixed_loss(model, x, y, perturbed)

    def mixed_loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, perturbed: torch.Tensor
                   ) -> torch.Tensor:
        """``(1 − clean_weight)·CE(model(perturbed), y) + clean_weight·CE(model(x), y)`` (clean term only if > 0)."""
        loss = (1.0 - self.clean_weight) * F.cross_entropy(model(perturbed), y)
        if self.clean_weight > 0.0:
            loss = loss + self.clean_weight * F.cross_entropy(model(x), y)
        return loss

    def describe(self) -> dict[str, Any]:
        """``{"name": registry name, **settings}``; ``create_defense(**describe())`` rebuilds the objective."""
        settings = {f.name: getattr(self, f.name) for f in fields(self) if f.init}
        return {"name": self.name, **settings}


@dataclass(kw_only=True)
class _AttackObjective(PerturbedInputObjective):
    """Shared by the attack-based objectives: the label mode, the ε ramp-up and the call into an
    :class:`~advlab.attacks.base.Attack` (built lazily so importing this module does not import every attack).

    Args:
        labels: "true" or "predicted" (see the module docstring).
        pni_in_generation: keep PNI noise on while x̃ is generated (default; the PNI paper's Eq. 12). False
            generates x̃ with every PNI layer switched off (Eq. 2, the paper's Table 1 ablation); the loss on x̃
            is still computed with the noise on.
        eps_ramp_epochs: grow ε (and every step size with it, so their ratio stays) linearly from 0 to its full
            value over the first ``eps_ramp_epochs`` epochs, batch by batch: at progress p epochs (after the
            batch, as ``fit`` reports through :meth:`on_batch_start`) the attack uses ``ε·min(1, p / ramp)``.
            0 (default) attacks at full ε from the first batch. The model first fits small perturbations, for
            which one gradient step is a good inner maximizer (interval-bound training ramps ε likewise, Gowal
            et al. 2018). Outside ``fit`` (no progress reported) the full ε is used. Measured effects: see
            ``experiments/results/README.md``.
    """

    labels: LabelMode = "true"
    pni_in_generation: bool = True
    eps_ramp_epochs: float = 0.0
    _epochs_done: float = field(default=math.inf, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.labels not in ("true", "predicted"):
            raise InputError(f"labels must be 'true' or 'predicted', got {self.labels!r}")
        if not self.eps_ramp_epochs >= 0:
            raise InputError(f"eps_ramp_epochs must be >= 0, got {self.eps_ramp_epochs}")

    def on_batch_start(self, epochs_done: float) -> None:
        """Hook called by ``fit`` before each batch with the training progress after it, in epochs (> 0)."""
        self._epochs_done = float(epochs_done)

    @property
    def eps_scale(self) -> float:
        """The ramp's factor in (0, 1] for the current batch (1 without a ramp or after it)."""
        if self.eps_ramp_epochs == 0:
            return 1.0
        return min(1.0, self._epochs_done / self.eps_ramp_epochs)

    def build_attack(self) -> Attack:
        """The attack for the current batch (its ε and step sizes already multiplied by :attr:`eps_scale`)."""
        raise NotImplementedError

    def attacked_model(self, model: nn.Module) -> nn.Module:
        """The model the attack differentiates (the trained model itself, unless a subclass snapshots it)."""
        return model

    def generation_noise(self, model: nn.Module) -> AbstractContextManager[Any]:
        """The context x̃ is generated in: as is, or with ``model``'s PNI layers off (``pni_in_generation``)."""
        if self.pni_in_generation:
            return nullcontext(model)
        from advlab.defenses.pni import pni_disabled

        return pni_disabled(model)

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        attack = self.build_attack()
        # y=None makes the attack base use the model's clean (eval-mode) predictions as labels.
        attack_labels = y if self.labels == "true" else None
        attacked = self.attacked_model(model)
        with self.generation_noise(attacked):
            return attack.perturb(attacked, x, attack_labels)


@register_defense("fgsm_mixed", stochastic=False,
                  paper="Goodfellow et al. 2015 (arXiv:1412.6572); Hao, Chen, Huang, Fooling networks by adding "
                        "noises", summary="alpha*CE(x) + (1-alpha)*CE(x_FGSM), alpha = 0.5")
@dataclass(kw_only=True)
class FGSMMixedLoss(_AttackObjective):
    """α·CE(x, y) + (1 − α)·CE(x + ε·sign(∇ₓCE), y): FGSM adversarial training with a mixed loss.

    Papers: Goodfellow, Shlens, Szegedy, "Explaining and harnessing adversarial examples" (2015,
    arXiv:1412.6572), used with α = 0.5 by Hao, Chen, Huang, "Fooling networks by adding noises".
    Threat model: L∞, ε in [0, 1] pixel units (0.1 … 0.3 on MNIST).

    Args:
        eps: FGSM step ε. alpha: weight of the clean loss (the base's ``clean_weight``), default 0.5.
        labels / warmup_epochs: see the module docstring and :class:`PerturbedInputObjective`.

    Example::

        objective = FGSMMixedLoss(eps=0.1)            # α = 0.5
        fit(model, train_set, config=config, objective=objective)
    """

    name: ClassVar[str] = "fgsm_mixed"
    eps: float = 0.1
    clean_weight: float = 0.5

    def build_attack(self) -> Attack:
        from advlab.attacks.fgsm import FGSM

        return FGSM(eps=self.eps * self.eps_scale)


@register_defense("pgd_at", stochastic=False, paper="Madry et al. 2018 (arXiv:1706.06083)",
                  summary="L-inf PGD adversarial training; clean/adversarial weights, true or predicted labels")
@dataclass(kw_only=True)
class PGDAdversarialTraining(_AttackObjective):
    """Adversarial training with an L∞ PGD inner maximization (Madry et al. 2018, arXiv:1706.06083).

    ``min_θ E[ w_c·CE(x) + (1 − w_c)·max_{‖δ‖∞ ≤ ε} CE(x + δ) ]`` with the inner max approximated by ``steps``
    steps of PGD from a uniform random start (``random_start=False``: from x itself). Defaults follow Madry's
    CIFAR-10 setting (ε = 8/255, 7 steps of 2/255, adversarial loss only, true labels); the step follows ε
    (α = ε/4 unless given), so ``eps=0.3`` alone trains with 7 steps of 0.075, not of 2/255. Madry's MNIST setting
    is ε = 0.3, 40 steps of 0.01. PNI (Rakin et al. 2019, arXiv:1811.09310) uses ``clean_weight=0.5,
    labels="predicted"`` and starts PGD at x: see :meth:`pni`.

    Args:
        eps, step_size, steps, random_start, restarts: the PGD attack ([0, 1] units); ``step_size=None`` is ε/4.
            ``early_stop`` is always off in training: every sample gets the full number of steps.
        attack_precision: "fp32" (default: the inner attack runs in float32 even inside ``fit``'s bf16 autocast),
            "bf16" or "auto" (bf16 where the hardware runs it natively). The attack's forward and backward passes
            are most of a PGD-AT step, so on a CPU with AMX a bf16 attack makes the step much faster; only the
            gradient is computed in bf16, the steps and the projection stay float32 (the Attack base's
            ``precision``). Measured speed and strength: ``benchmarks/README.md``.
        clean_weight, labels, warmup_epochs: see :class:`PerturbedInputObjective` and the module docstring.

    Shapes: x (N, C, H, W) in [0, 1], y (N,) -> scalar loss.

    Example::

        objective = PGDAdversarialTraining(eps=0.3, step_size=0.01, steps=40)
        fit(model, mnist_train, config=config, objective=objective)
    """

    name: ClassVar[str] = "pgd_at"
    eps: float = 8 / 255
    step_size: float | None = None
    steps: int = 7
    random_start: bool = True
    restarts: int = 1
    attack_precision: str = "fp32"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.attack_precision not in PRECISIONS:
            raise InputError(f"attack_precision must be one of {', '.join(PRECISIONS)}, got {self.attack_precision!r}")

    @property
    def alpha(self) -> float:
        """The PGD step at the full ε: ``step_size``, or ε/4 (2/255 at Madry's 8/255)."""
        return self.eps / 4 if self.step_size is None else float(self.step_size)

    def describe(self) -> dict[str, Any]:
        """As the base; ``attack_precision`` only when it is not fp32, so that runs saved before the setting
        existed (all fp32) still resume: ``fit`` compares the saved description with this one."""
        settings = super().describe()
        if self.attack_precision == "fp32":
            del settings["attack_precision"]
        return settings

    @classmethod
    def pni(cls, **settings: Any) -> PGDAdversarialTraining:
        """PNI's setting (Rakin et al. 2019): the ensemble loss of Eq. 11 with w_c = w_a = 0.5, x̂ generated on the
        model's predicted labels (§3.1) by PGD started at x̂¹ = x (Eq. 2 and 12); any PGD setting can be given."""
        return cls(**{"clean_weight": 0.5, "labels": "predicted", "random_start": False, **settings})

    def build_attack(self) -> Attack:
        from advlab.attacks.pgd import PGD

        scale = self.eps_scale
        return PGD(eps=self.eps * scale, step_size=self.alpha * scale, steps=self.steps,
                   random_start=self.random_start, restarts=self.restarts, early_stop=False,
                   precision=self.attack_precision)


@register_defense("fast_fgsm", stochastic=False, paper="Wong, Rice, Kolter 2020 (arXiv:2001.03994)",
                  summary="FGSM from a uniform random start, step 1.25*eps; guard with pgd_accuracy_hook; "
                          "start_in_box=False (gradient at the unclipped start) is Wong et al.'s MNIST recipe")
@dataclass(kw_only=True)
class FastFGSMTraining(_AttackObjective):
    """"Fast is better than free": FGSM from a uniform random start (Wong, Rice, Kolter 2020, arXiv:2001.03994).

    δ₀ ~ U(−ε, ε), one signed-gradient step of size α = 1.25·ε, projected back onto the ε-ball and [0, 1];
    trained on the adversarial loss only. This is PGD with one step and a random start, so it reuses
    :class:`~advlab.attacks.pgd.PGD`. Guard against *catastrophic overfitting* (robustness to PGD collapsing
    within an epoch while FGSM accuracy soars): check PGD accuracy every epoch on a fixed validation subset
    with :func:`pgd_accuracy_hook` and keep the best checkpoint by it (``TrainConfig(eval_hook=...,
    best_metric="pgd_acc")``).

    Args:
        eps: ε in [0, 1] units (8/255 CIFAR-10, 0.3 MNIST). step_size: α, default ``1.25 * eps``.
        start_in_box: clip the random start to the image box [0, 1] before taking the gradient (default True, as
            Wong et al.'s CIFAR-10 code). False takes it at the unclipped start, as their MNIST code does
            (locuslab/fast_adversarial issue 21); the trained-on image is projected either way. Unclipped,
            background pixels at 0 start at −ε … ε, outside what the model is ever trained on, much like
            N-FGSM's unprojected noise. Measured effects: see ``experiments/results/README.md``.

    Example::

        objective = FastFGSMTraining(eps=8 / 255)
        hook = pgd_accuracy_hook(val_set, eps=8 / 255)
    """

    name: ClassVar[str] = "fast_fgsm"
    eps: float = 8 / 255
    step_size: float | None = None
    start_in_box: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.step_size is None:
            self.step_size = 1.25 * self.eps

    @property
    def alpha(self) -> float:
        """The step at the full ε: ``step_size`` (1.25·ε unless given)."""
        return 1.25 * self.eps if self.step_size is None else float(self.step_size)

    def build_attack(self) -> Attack:
        from advlab.attacks.pgd import PGD

        scale = self.eps_scale
        return PGD(eps=self.eps * scale, step_size=self.alpha * scale, steps=1, random_start=True, restarts=1,
                   early_stop=False, start_in_box=self.start_in_box)


@register_defense("n_fgsm", stochastic=False, paper="de Jorge et al. 2022 (arXiv:2202.01181)",
                  summary="FGSM (step eps) from U(-2eps, 2eps) noise, not projected: fast training without "
                          "catastrophic overfitting")
@dataclass(kw_only=True)
class NoiseFGSMTraining(_AttackObjective):
    """N-FGSM: one FGSM step from a *larger* noise, not projected back (de Jorge et al. 2022, arXiv:2202.01181).

    ``x̃ = clip_[0,1](x + η + α·sign(∇ₓ CE(x + η, y)))`` with ``η ~ U(−k·ε, k·ε)``, k = 2 and α = ε by default:
    the cost of fast FGSM (one forward/backward per image), but the perturbation may reach (k + 1)·ε in L∞.
    The authors show that this stronger noise, without the projection, avoids the *catastrophic overfitting*
    of FGSM with a random start at large ε, where FGSM-RS's robustness collapses within an epoch. At MNIST's
    ε = 0.3 its U(−0.6, 0.6) noise also covers much of the digits. Measured results: see
    ``experiments/results/README.md``.

    Generation follows the module's rule (model in eval mode, parameters frozen); trained on the perturbed loss
    only unless ``clean_weight`` > 0.

    Args:
        eps: ε in [0, 1] units (0.3 MNIST, 8/255 CIFAR-10). noise_scale: k (the noise is U(−kε, kε)).
        step_size: α, default ε. labels, eps_ramp_epochs (scales the noise and α): see :class:`_AttackObjective`.

    Example::

        fit(model, mnist_train, config=config, objective=NoiseFGSMTraining(eps=0.3))
    """

    name: ClassVar[str] = "n_fgsm"
    eps: float = 8 / 255
    noise_scale: float = 2.0
    step_size: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.eps > 0 or self.noise_scale < 0:
            raise InputError(f"n_fgsm needs eps > 0 and noise_scale >= 0, got {self.eps}, {self.noise_scale}")
        if self.step_size is None:
            self.step_size = self.eps

    @property
    def alpha(self) -> float:
        """The FGSM step at the full ε: ``step_size`` (ε unless given)."""
        return self.eps if self.step_size is None else float(self.step_size)

    def build_attack(self) -> Attack:
        from advlab.attacks.fgsm import FGSM

        return FGSM(eps=self.alpha * self.eps_scale)

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        bound = self.noise_scale * self.eps * self.eps_scale
        start = (x + torch.empty_like(x).uniform_(-bound, bound)).clamp_(0.0, 1.0)
        # FGSM of size α *from the noisy start*: its ball is centred there, so nothing pulls x̃ back into x's ε-ball.
        return super().perturb(model, start, y)


@register_defense("grad_align", stochastic=False, paper="Andriushchenko & Flammarion 2020 (arXiv:2007.02617)",
                  summary="FGSM training plus a penalty on misaligned input gradients at x and x + U(-eps, eps) "
                          "noise: the authors' remedy for catastrophic overfitting")
@dataclass(kw_only=True)
class GradAlignTraining(_AttackObjective):
    """FGSM training with the GradAlign regularizer (Andriushchenko & Flammarion 2020, arXiv:2007.02617).

    ``loss = CE(model(x̃), y) + λ · (1 − mean_i cos(∇ₓCE(x_i, y_i), ∇ₓCE(x_i + η_i, y_i)))``, with
    ``x̃ = clip_[0,1](x + α·sign(∇ₓCE(x, y)))`` (FGSM from the clean point, α = ε by default) and η ~ U(−ε, ε)^d.

    Catastrophic overfitting is the loss surface turning so curved inside the ε-ball that one gradient step no
    longer finds its maximum; the regularizer keeps the input gradients at x and at a random point of the ball
    aligned, i.e. the loss locally linear, which is what single-step training needs. Samples whose gradient is
    exactly zero at either point are left out of the mean, as in the authors' code.

    Cost: FGSM training (one forward/backward for the attack, one for the loss) plus one forward/backward at
    x + η with ``create_graph`` and the second-order backward through it: about twice FGSM-RS's cost a step, about
    half of PGD-10 training's. Measured results: see ``experiments/results/README.md``.
    The FGSM gradient at x is computed once per call and used for both the step and the alignment (one call
    computes both; nothing is kept between calls). Both input gradients are taken in eval mode, as every attack
    here (dropout off, batch-norm running statistics), the parameters differentiable only for the second one (the
    regularizer's gradient flows through it).

    Args:
        eps: ε in [0, 1] units (0.3 MNIST, 8/255 CIFAR-10). step_size: α, default ε.
        align_weight: λ ≥ 0 (authors: 0.2 at ε = 8/255 and 2.0 at 16/255 on CIFAR-10; larger for larger ε).
        labels, eps_ramp_epochs, clean_weight, warmup_epochs: see :class:`_AttackObjective`.

    Example::

        fit(model, mnist_train, config=config, objective=GradAlignTraining(eps=0.3, align_weight=1.0))
    """

    name: ClassVar[str] = "grad_align"
    eps: float = 8 / 255
    step_size: float | None = None
    align_weight: float = 0.2

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.eps > 0 or not self.align_weight >= 0:
            raise InputError(f"grad_align needs eps > 0 and align_weight >= 0, got {self.eps}, {self.align_weight}")
        if self.step_size is None:
            self.step_size = self.eps
        if not 0 < self.step_size <= self.eps:  # one step from x: a larger α only leaves the ε-ball
            raise InputError(f"grad_align's step_size must lie in (0, eps = {self.eps}], got {self.step_size}")

    @property
    def alpha(self) -> float:
        """The FGSM step at the full ε: ``step_size`` (ε unless given)."""
        return self.eps if self.step_size is None else float(self.step_size)

    def input_gradient(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(∇ₓCE(model(x), labels), labels)`` in eval mode with frozen parameters, for the attacked labels
        (``y``, or the model's clean predictions with ``labels="predicted"``)."""
        from advlab.attacks import losses
        from advlab.attacks.base import frozen_eval
        from advlab.attacks.gradients import AutogradGradient

        with frozen_eval(model), self.generation_noise(model):
            if self.labels == "true":
                labels = y
            else:
                with torch.no_grad():
                    labels = model(x).argmax(dim=1)
            _, grad = AutogradGradient()(model, x, lambda logits: losses.cross_entropy(logits, labels))
        return grad, labels

    def build_attack(self) -> Attack:
        """The FGSM step this objective takes (for display: :meth:`perturb` computes it itself)."""
        from advlab.attacks.fgsm import FGSM

        return FGSM(eps=self.alpha * self.eps_scale)

    def step(self, x: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        """The FGSM image ``clip_[0,1](x + α·sign(grad))`` (α scaled by the ε ramp)."""
        return (x + self.alpha * self.eps_scale * grad.sign()).clamp(0.0, 1.0)

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        grad, _ = self.input_gradient(model, x, y)
        return self.step(x, grad)

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.clean_only:
            return F.cross_entropy(model(x), y)
        with torch.autocast(x.device.type, enabled=False):  # as the base: the attack part runs in float32
            grad, labels = self.input_gradient(model, x, y)
            perturbed = self.step(x, grad).detach()
        loss = self.mixed_loss(model, x, y, perturbed)
        if self.align_weight == 0.0:
            return loss
        return loss + self.align_weight * (1.0 - self.gradient_alignment(model, x, grad, labels))

    def gradient_alignment(self, model: nn.Module, x: torch.Tensor, clean_grad: torch.Tensor,
                           labels: torch.Tensor) -> torch.Tensor:
        """Mean cosine between ``clean_grad`` (∇ₓCE at x, from :meth:`input_gradient`) and ∇ₓCE at x + η for the
        same ``labels``, differentiable in the parameters; η ~ U(−ε, ε) (ε scaled by the ramp)."""
        if clean_grad.shape != x.shape or labels.shape != x.shape[:1]:
            raise InputError(f"gradient_alignment needs the input gradient of this batch ({tuple(x.shape)}) and its "
                             f"labels; got {tuple(clean_grad.shape)} and {tuple(labels.shape)} (see input_gradient)")
        bound = self.eps * self.eps_scale
        noisy = (x + torch.empty_like(x).uniform_(-bound, bound)).clamp(0.0, 1.0)
        with restored_modes(model), torch.autocast(x.device.type, enabled=False):
            model.eval()
            noisy = noisy.detach().requires_grad_(True)
            loss = F.cross_entropy(model(noisy), labels, reduction="sum")  # sum: per-sample gradients
            (noisy_grad,) = torch.autograd.grad(loss, noisy, create_graph=True)
        first, second = clean_grad.flatten(1), noisy_grad.flatten(1)
        nonzero = (first.norm(dim=1) > 0) & (second.norm(dim=1) > 0)
        if not bool(nonzero.any()):
            return torch.ones((), device=x.device)
        return F.cosine_similarity(first[nonzero], second[nonzero], dim=1).mean()


@register_defense("per_epoch_adversarial", stochastic=False, paper="van Everdingen, CNNs and adversarial examples",
                  summary="FGSM set regenerated once an epoch against a snapshot of the model")
@dataclass(kw_only=True)
class PerEpochAdversarialTraining(_AttackObjective):
    """Adversarial set regenerated once per epoch with FGSM on the current model ("CNNs and adversarial
    examples", van Everdingen).

    The thesis regenerates an FGSM copy of the whole training set at the start of each epoch and trains on the
    original plus that copy. This objective does the equivalent without storing the copy: at
    :meth:`on_epoch_start` it takes a frozen **snapshot** of the model, and every batch of that epoch is attacked
    with FGSM against the snapshot. FGSM is deterministic, so each image gets exactly the adversarial example
    the cached set would hold (and augmented images get theirs), for the same compute (one forward/backward per
    image per epoch) and the memory of one model instead of one dataset. With ``clean_weight=0.5`` each batch
    contributes its clean and adversarial copies equally, as training on the union does.

    Args:
        eps: FGSM ε in [0, 1] units. clean_weight: default 0.5 (original + adversarial set).

    Example::

        fit(model, train_set, config=config, objective=PerEpochAdversarialTraining(eps=0.1))
    """

    name: ClassVar[str] = "per_epoch_adversarial"
    eps: float = 0.1
    clean_weight: float = 0.5
    _snapshot: nn.Module | None = field(default=None, init=False, repr=False, compare=False)

    def on_epoch_start(self, model: nn.Module, epoch: int) -> None:
        super().on_epoch_start(model, epoch)
        self._snapshot = self._take_snapshot(model)

    @staticmethod
    def _take_snapshot(model: nn.Module) -> nn.Module:
        snapshot = copy.deepcopy(model).eval()
        for param in snapshot.parameters():
            param.requires_grad_(False)
        return snapshot

    def attacked_model(self, model: nn.Module) -> nn.Module:
        if self._snapshot is None:  # used outside fit(): snapshot on first use, as an epoch start would
            self._snapshot = self._take_snapshot(model)
        return self._snapshot

    def build_attack(self) -> Attack:
        from advlab.attacks.fgsm import FGSM

        return FGSM(eps=self.eps * self.eps_scale)


def pgd_accuracy_hook(
    val_set: ImageDataset,
    *,
    eps: float,
    steps: int = 10,
    step_size: float | None = None,
    n: int | None = 512,
    batch_size: int = 256,
    seed: int = 0,
    key: str = "pgd_acc",
) -> Callable[[nn.Module, int], dict[str, float]]:
    """Build ``eval_hook(model, epoch) -> {key: PGD robust accuracy, key + "_clean": clean accuracy}``.

    The guard against catastrophic overfitting of fast FGSM training (Wong et al. 2020, §5): a small L∞ PGD
    attack (``steps`` steps of ``step_size`` = ε/4 by default, one random start) on a fixed subset of ``n``
    validation images (drawn once with ``seed``). The random start is seeded too (the attack's own generator),
    so every epoch is measured against the same draw and the training RNG stream is untouched (a resumed run
    stays reproducible). Use with ``fit(..., eval_hook=hook)`` and ``TrainConfig(best_metric="pgd_acc")``.

    Example::

        hook = pgd_accuracy_hook(val_set, eps=8 / 255, n=1000)
        fit(model, train, config=TrainConfig(best_metric="pgd_acc"), objective=FastFGSMTraining(eps=8 / 255),
            eval_hook=hook, out_dir="runs/fast")
    """
    from advlab.attacks.pgd import PGD

    if len(val_set) == 0:
        raise InputError("the PGD check needs a non-empty validation set; pass val_set or a split of train")
    subset = val_set.subset(n, seed=seed)
    attack = PGD(eps=eps, step_size=eps / 4 if step_size is None else step_size, steps=steps,
                 random_start=True, restarts=1, early_stop=False, seed=seed)

    def eval_hook(model: nn.Module, epoch: int) -> dict[str, float]:
        device = next(iter(model.parameters()), torch.empty(0)).device
        robust = clean = 0
        for x, y in subset.batches(batch_size, device=device):
            result = attack(model, x, y)
            robust += int((result.adv_pred == y).sum())
            clean += int((result.clean_pred == y).sum())
        return {key: robust / len(subset), f"{key}_clean": clean / len(subset)}

    return eval_hook
