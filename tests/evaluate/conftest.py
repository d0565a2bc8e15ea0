"""Fixtures of this folder live in evaluate_helpers.py (importable by the tests under a unique module name)."""
from evaluate_helpers import *  # noqa: F403
