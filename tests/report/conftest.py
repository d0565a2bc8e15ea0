"""Fixtures of this folder live in report_helpers.py (importable by the tests under a unique module name)."""
from report_helpers import *  # noqa: F403
