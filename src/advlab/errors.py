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


_SHAPE_WORDS = ("shape", "size", "channels", "dimension")


def looks_like_shape_mismatch(exc: BaseException) -> bool:
    """True for torch's RuntimeErrors about an input that does not fit a layer ("mat1 and mat2 shapes cannot be
    multiplied", "expected input ... to have 3 channels", "size of tensor a (3) must match ...").

    Used where a model first sees user data, to turn that one kind of RuntimeError into an :class:`InputError`
    while any other failure inside the model propagates unchanged.
    """
    message = str(exc).lower()
    return isinstance(exc, RuntimeError) and not isinstance(exc, MemoryError) \
        and "out of memory" not in message and any(word in message for word in _SHAPE_WORDS)
