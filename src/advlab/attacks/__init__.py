"""Attacks behind one interface: ``attack(model, x, y)`` or ``attack(model, x, target=t)`` -> AttackResult.

Importing this package imports every module in it, which registers every attack in
:data:`advlab.attacks.registry.ATTACKS`: a new attack is one new file with ``@register_attack`` on its class.
"""

import importlib
import pkgutil

from advlab.attacks.apgd import APGD, APGDDLR, APGDTargeted
from advlab.attacks.base import Attack, AttackResult, Norm
from advlab.attacks.cw import CarliniWagnerL2
from advlab.attacks.deepfool import DeepFool, DeepFoolLinf
from advlab.attacks.fgsm import FGM, FGSM, FGSMLeastLikely, GradientStep
from advlab.attacks.gradients import AutogradGradient, EOTGradient, FiniteDifferenceGradient
from advlab.attacks.jsma import JSMA
from advlab.attacks.mifgsm import MIFGSM
from advlab.attacks.noise import GaussianBlur, GaussianNoise, MatchedNoise, RandomSign
from advlab.attacks.pgd import BIM, PGD, PGDL2
from advlab.attacks.registry import ATTACKS, create_attack, register_attack
from advlab.attacks.square import SquareAttack
from advlab.attacks.substitute import SubstituteAttack
from advlab.attacks.transfer import TransferAttack
from advlab.attacks.zoo import ZOO

__all__ = [
    "APGD",
    "APGDDLR",
    "ATTACKS",
    "BIM",
    "FGM",
    "FGSM",
    "JSMA",
    "MIFGSM",
    "PGD",
    "PGDL2",
    "ZOO",
    "APGDTargeted",
    "Attack",
    "AttackResult",
    "AutogradGradient",
    "CarliniWagnerL2",
    "DeepFool",
    "DeepFoolLinf",
    "EOTGradient",
    "FGSMLeastLikely",
    "FiniteDifferenceGradient",
    "GaussianBlur",
    "GaussianNoise",
    "GradientStep",
    "MatchedNoise",
    "Norm",
    "RandomSign",
    "SquareAttack",
    "SubstituteAttack",
    "TransferAttack",
    "create_attack",
    "register_attack",
]

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
