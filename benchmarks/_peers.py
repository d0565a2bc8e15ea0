"""Adapters that run one attack setting through advlab and through each peer library on the same model.

Every adapter turns a library-neutral :class:`AttackSpec` into a ``run(x, y) -> adv`` callable: x float32
(N, C, H, W) in [0, 1] on the CPU, y int64 (N,) true labels, adv float32 (N, C, H, W) as a torch tensor. The
callable is built once (outside the timed region: building an ART classifier or a foolbox model wrapper is
set-up, not attack work); the benchmark then times calls of it. Conversions a library needs (ART works on NumPy
arrays) happen inside the callable, because a user of that library pays for them too.

Where a library has no implementation of a setting, ``build`` raises :class:`NotAvailable` with the reason; the
benchmark prints "n/a" for it. Differences between the libraries' algorithms that the settings cannot remove
are listed in ``ALGORITHM_NOTES`` and printed under the table.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

AttackFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class NotAvailable(Exception):
    """The library is not installed or has no implementation of this attack (shown as n/a, with the reason)."""


@dataclass(frozen=True)
class AttackSpec:
    """One attack setting, in advlab's units ([0, 1] pixels), shared by every library.

    kind: "pgd", "fgsm", "cw" or "jsma".
    eps / step_size / steps / random_start: L∞ budget, step α, iterations, uniform start in the ε-ball (PGD/FGSM).
    c / lr / kappa / cw_steps: C&W-L2 with one constant c (no binary search), Adam step size lr in tanh space,
        confidence κ, iterations.
    gamma / theta: JSMA's largest fraction of changed features and the per-feature change (+1: set to the max).
    jsma_target_shift: JSMA is targeted; every library gets the target ``(y + shift) % classes``.
    jsma_saliency: advlab's JSMA saliency rule ("pairs": the paper's; "target": ART's simplification).
    channels_last: advlab's option to feed the model NHWC tensors (measured faster for the 3-channel CIFAR
        models on the CPU, not for the 1-channel MNIST CNN); the peers have no such option.
    """

    kind: str
    eps: float = 0.0
    step_size: float = 0.0
    steps: int = 1
    random_start: bool = False
    early_stop: bool = True
    c: float = 1.0
    lr: float = 0.01
    kappa: float = 0.0
    cw_steps: int = 100
    gamma: float = 0.1
    theta: float = 1.0
    jsma_target_shift: int = 1
    channels_last: bool = False
    jsma_saliency: str = "pairs"


def jsma_targets(y: torch.Tensor, spec: AttackSpec, num_classes: int) -> torch.Tensor:
    """The target class every library's JSMA is asked to reach: ``(y + shift) mod classes``."""
    return (y + spec.jsma_target_shift) % num_classes


def library_version(distribution: str) -> str | None:
    """The installed version of a distribution, or None when it is not installed."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _require(module: str) -> object:
    try:
        return importlib.import_module(module)
    except ImportError as exc:  # not installed, or one of its imports fails: report it as n/a
        raise NotAvailable(f"{module} cannot be imported ({exc}); pip install the bench extra") from exc


# --------------------------------------------------------------------------------------------------- advlab
def build_advlab(model: nn.Module, spec: AttackSpec, num_classes: int, input_shape: tuple[int, ...]) -> AttackFn:
    """advlab's attack for ``spec``; ``spec.early_stop`` picks PGD's evaluation (True) or fixed-step mode."""
    from advlab.attacks.cw import CarliniWagnerL2
    from advlab.attacks.fgsm import FGSM
    from advlab.attacks.jsma import JSMA
    from advlab.attacks.pgd import PGD

    if spec.kind == "pgd":
        attack = PGD(eps=spec.eps, step_size=spec.step_size, steps=spec.steps, random_start=spec.random_start,
                     early_stop=spec.early_stop, seed=0, channels_last=spec.channels_last)
        return lambda x, y: attack(model, x, y).adv
    if spec.kind == "fgsm":
        fgsm = FGSM(eps=spec.eps, channels_last=spec.channels_last)
        return lambda x, y: fgsm(model, x, y).adv
    if spec.kind == "cw":
        # abort_early on: torchattacks and foolbox both stop a run whose loss stopped falling (same rule).
        cw = CarliniWagnerL2(confidence=spec.kappa, initial_const=spec.c, binary_steps=1, steps=spec.cw_steps,
                             lr=spec.lr, abort_early=True, channels_last=spec.channels_last)
        return lambda x, y: cw(model, x, y).adv
    if spec.kind == "jsma":
        if spec.theta != 1.0:
            raise NotAvailable("advlab's JSMA implements the increasing variant with θ = +1 only")
        jsma = JSMA(gamma=spec.gamma, saliency=spec.jsma_saliency)
        return lambda x, y: jsma(model, x, target=jsma_targets(y, spec, num_classes)).adv
    raise NotAvailable(f"no advlab adapter for {spec.kind!r}")


# ---------------------------------------------------------------------------------------------- torchattacks
def build_torchattacks(model: nn.Module, spec: AttackSpec, num_classes: int,
                       input_shape: tuple[int, ...]) -> AttackFn:
    """torchattacks 3.5: PGD, FGSM, CW (one c, Adam, no binary search) and JSMA (one image at a time)."""
    ta = _require("torchattacks")
    if spec.kind == "pgd":
        attack = ta.PGD(model, eps=spec.eps, alpha=spec.step_size, steps=spec.steps, random_start=spec.random_start)
    elif spec.kind == "fgsm":
        attack = ta.FGSM(model, eps=spec.eps)
    elif spec.kind == "cw":
        attack = ta.CW(model, c=spec.c, kappa=spec.kappa, steps=spec.cw_steps, lr=spec.lr)
    elif spec.kind == "jsma":
        attack = ta.JSMA(model, theta=spec.theta, gamma=spec.gamma)
        attack.set_mode_targeted_by_function(lambda images, labels: jsma_targets(labels, spec, num_classes),
                                             quiet=True)
    else:
        raise NotAvailable(f"torchattacks has no {spec.kind}")
    return lambda x, y: attack(x, y)


# ------------------------------------------------------------------------------------------------------ ART
def build_art(model: nn.Module, spec: AttackSpec, num_classes: int, input_shape: tuple[int, ...]) -> AttackFn:
    """ART (adversarial-robustness-toolbox): NumPy in and out; ``batch_size`` set to the whole batch."""
    _require("art")
    from art.attacks.evasion import CarliniL2Method, FastGradientMethod, ProjectedGradientDescent, SaliencyMapMethod
    from art.estimators.classification import PyTorchClassifier

    classifier = PyTorchClassifier(model=model, loss=nn.CrossEntropyLoss(), input_shape=input_shape,
                                   nb_classes=num_classes, clip_values=(0.0, 1.0), device_type="cpu")

    def runner(make: Callable[[int], object], labels: Callable[[torch.Tensor], np.ndarray]) -> AttackFn:
        def run(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            attack = make(x.shape[0])  # batch_size is a constructor argument: one batch = the whole input
            return torch.from_numpy(attack.generate(x.numpy(), y=labels(y)))
        return run

    def true_labels(y: torch.Tensor) -> np.ndarray:
        return y.numpy()

    if spec.kind == "pgd":
        # ProjectedGradientDescent dispatches to its PyTorch implementation for a PyTorchClassifier.
        return runner(lambda n: ProjectedGradientDescent(
            classifier, norm=np.inf, eps=spec.eps, eps_step=spec.step_size, max_iter=spec.steps,
            num_random_init=int(spec.random_start), batch_size=n, verbose=False), true_labels)
    if spec.kind == "fgsm":
        return runner(lambda n: FastGradientMethod(classifier, norm=np.inf, eps=spec.eps, batch_size=n),
                      true_labels)
    if spec.kind == "cw":
        # ART's C&W-L2 is not Adam: plain gradient steps with a line search (lr halved/doubled up to 5 times).
        return runner(lambda n: CarliniL2Method(
            classifier, confidence=spec.kappa, learning_rate=spec.lr, binary_search_steps=1,
            max_iter=spec.cw_steps, initial_const=spec.c, batch_size=n, verbose=False), true_labels)
    if spec.kind == "jsma":
        def one_hot_targets(y: torch.Tensor) -> np.ndarray:
            return np.eye(num_classes, dtype=np.float32)[jsma_targets(y, spec, num_classes).numpy()]
        return runner(lambda n: SaliencyMapMethod(classifier, theta=spec.theta, gamma=spec.gamma, batch_size=n,
                                                  verbose=False), one_hot_targets)
    raise NotAvailable(f"ART has no {spec.kind}")


# -------------------------------------------------------------------------------------------------- foolbox
def build_foolbox(model: nn.Module, spec: AttackSpec, num_classes: int,
                  input_shape: tuple[int, ...]) -> AttackFn:
    """Foolbox 3 (through eagerpy): LinfPGD, FGSM, L2CarliniWagnerAttack; it has no JSMA."""
    fb = _require("foolbox")
    if spec.kind == "jsma":
        raise NotAvailable("foolbox 3 has no JSMA / saliency-map attack")
    fmodel = fb.PyTorchModel(model.eval(), bounds=(0.0, 1.0))
    if spec.kind == "pgd":
        attack, epsilon = fb.attacks.LinfPGD(abs_stepsize=spec.step_size, steps=spec.steps,
                                             random_start=spec.random_start), spec.eps
    elif spec.kind == "fgsm":
        attack, epsilon = fb.attacks.FGSM(), spec.eps
    elif spec.kind == "cw":
        attack, epsilon = fb.attacks.L2CarliniWagnerAttack(
            binary_search_steps=1, steps=spec.cw_steps, stepsize=spec.lr, confidence=spec.kappa,
            initial_const=spec.c, abort_early=True), None
    else:
        raise NotAvailable(f"foolbox has no {spec.kind}")

    def run(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        _, clipped, _ = attack(fmodel, x, y, epsilons=epsilon)
        adv = clipped.detach()
        if spec.kind == "cw":
            # foolbox's C&W starts its best-so-far buffer at zeros and returns it unchanged for a sample it never
            # fooled: an all-black image, which the model then misclassifies (a "success" at L2 = ‖x‖). Give
            # such samples back their input, as torchattacks and ART do, so robust accuracy compares like with like.
            never_fooled = adv.flatten(1).eq(0).all(dim=1) & x.flatten(1).ne(0).any(dim=1)
            adv[never_fooled] = x[never_fooled]
        return adv
    return run


@dataclass(frozen=True)
class Library:
    """A row group of the table: display name, the distribution whose version is reported, the adapter."""

    name: str
    distribution: str
    build: Callable[[nn.Module, AttackSpec, int, tuple[int, ...]], AttackFn]


PEERS: tuple[Library, ...] = (
    Library("torchattacks", "torchattacks", build_torchattacks),
    Library("ART", "adversarial-robustness-toolbox", build_art),
    Library("foolbox", "foolbox", build_foolbox),
)
ADVLAB = Library("advlab", "advlab", build_advlab)

ALGORITHM_NOTES: tuple[str, ...] = (
    ("PGD/FGSM: same ε, step, steps and one uniform random start everywhere (FGSM: no start). Only advlab can "
     "stop a sample once it is misclassified ('advlab' rows); 'advlab fixed' runs every step like the peers."),
    ("C&W-L2: one c, no binary search, κ and lr equal. advlab, torchattacks and foolbox use Adam in tanh space "
     "with the same abort-early rule; ART's CarliniL2Method uses gradient steps with a line search on lr "
     "(halving/doubling), a different optimizer. torchattacks and ART return the input for samples never fooled; "
     "foolbox returns a black image, which the adapter replaces by the input."),
    ("JSMA: targeted at (y+1) mod 10 in every library, θ=+1, γ matched. advlab and torchattacks score pixel "
     "pairs (α_pq·|β_pq|, Papernot et al. Alg. 3); ART's SaliencyMapMethod takes the two largest target-class "
     "gradients (a simplification). Budgets: advlab ⌊γD⌋/2 pair steps, torchattacks ⌈γD/2⌉, ART runs while the "
     "changed fraction ≤ γ. torchattacks attacks one image at a time (10 backward passes for the full Jacobian)."),
    ("Peers receive the model with trainable parameters as a user has it after training (torchattacks' CW and "
     "ART call .backward(), which also computes weight gradients); advlab freezes them for the attack itself."),
)
