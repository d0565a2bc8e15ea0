"""The exceptions advlab raises for user mistakes.

Every error a user can cause (missing data, a corrupt file, an unknown name, a tensor of the wrong shape or range)
is an :class:`AdvlabError` whose message says what was wrong *and what to do*. The CLI prints it as one line and
exits with code 2; library callers can catch the base class or a specific subclass.
"""

from __future__ import annotations


class AdvlabError(Exception):
    """Base class of every error caused by the user's input, files or environment."""


class DataError(AdvlabError):
    """A dataset is missing, truncated, corrupt, fails its checksum, or cannot be downloaded."""


class CheckpointError(AdvlabError):
    """A weights file or its card is missing, corrupt, untrusted or does not fit the model."""


class InputError(AdvlabError):
    """A tensor or argument has the wrong shape, dtype, range or value (images outside [0,1], eps < 0, ...)."""


class UnknownNameError(AdvlabError):
    """A registry lookup (model, attack, defense, dataset) named something that is not registered."""
