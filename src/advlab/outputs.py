"""Output paths are checked before any work starts: a run must not train for an hour and then fail to write.

Nothing is created here: the nearest existing folder on the path must be a writable directory, a file's suffix
must be one the writer knows, and a folder that holds a finished training run is not overwritten silently.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from advlab.errors import InputError

# The files whose presence means a folder holds a training run (advlab.training.loop writes them).
TRAINING_RUN_FILES = ("train_state.json", "last.safetensors")


def check_writable(path: str | os.PathLike[str], option: str, *, folder: bool = True) -> Path:
    """``path`` (a folder, or with ``folder=False`` a file; existing or not) can be written: the nearest existing
    folder on the way is a writable directory, and nothing on the way is a file (an existing file may be
    replaced)."""
    path = Path(path)
    if folder and path.exists() and not path.is_dir():
        raise InputError(f"{option} {path} is a file, not a folder; pass a folder")
    ancestor = path if folder and path.exists() else path.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise InputError(f"{option} {path}: {ancestor} is a file, so nothing can be written below it; "
                         "pass another path")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise InputError(f"{option} {path}: {ancestor} is not writable; pass a path you can write to")
    return path


def check_output_file(path: str | os.PathLike[str], option: str, suffixes: Iterable[str]) -> Path:
    """A file to write later: a known suffix and a writable place (see :func:`check_writable`)."""
    path = Path(path)
    allowed = tuple(suffixes)
    if path.suffix not in allowed:
        raise InputError(f"{option} must end in {' or '.join(allowed)}, got {path.name}")
    if path.is_dir():
        raise InputError(f"{option} {path} is a folder; name a file ending in {' or '.join(allowed)}")
    return check_writable(path, option, folder=False)


def check_training_folder(path: str | os.PathLike[str], *, resume: bool, overwrite: bool) -> Path:
    """``--out`` of ``advlab train``: writable, and holding no earlier run unless resumed or overwritten."""
    path = check_writable(path, "--out")
    if resume and overwrite:
        raise InputError("--resume continues the run in --out and --overwrite replaces it: pass one of them")
    held = [name for name in TRAINING_RUN_FILES if (path / name).exists()]
    if held and not (resume or overwrite):
        raise InputError(f"{path} already holds a training run ({', '.join(held)}); pass --resume to continue "
                         "it, --overwrite to replace it, or another --out")
    return path
