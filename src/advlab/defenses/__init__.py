"""Defenses of the five papers: training objectives and model transforms, behind one registry.

``create_defense(name, **settings)`` builds one; each entry's info says whether it is an ``objective``, a
``transform`` or ``both``, and whether it makes the model ``stochastic`` (evaluation then uses EOT and trials).
"""

from advlab.defenses.registry import DEFENSES, create_defense, defense_from_card, list_defenses, register_defense

__all__ = ["DEFENSES", "create_defense", "defense_from_card", "list_defenses", "register_defense"]
