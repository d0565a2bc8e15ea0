"""Fixtures of this folder live in pipeline_helpers.py (importable by the tests under a unique module name)."""
from pipeline_helpers import *  # noqa: F403
