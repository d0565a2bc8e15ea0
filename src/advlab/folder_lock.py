"""One writer per output folder: a lock file that a second advlab process finds and refuses to share.

Two evaluations writing into the same ``--out`` would read each other's per-batch state and report a worst case
that belongs to neither. The lock is a file created with ``O_EXCL`` (atomic on POSIX and Windows) holding the
owner's host and pid; a lock whose process is gone (killed with -9, machine rebooted) is stale and taken over,
so resuming after a kill needs no manual cleanup.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from advlab.errors import AdvlabError, InputError

LOCK_NAME = ".advlab.lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def _owner(lock: Path) -> dict | None:
    """The lock's owner record, or None when the file is unreadable (half-written by a killed process)."""
    try:
        owner = json.loads(lock.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return owner if isinstance(owner, dict) and isinstance(owner.get("pid"), int) else None


def _is_stale(owner: dict | None) -> bool:
    if owner is None:
        return True
    if owner.get("host") != socket.gethostname():
        return False  # another machine's process (shared file system): cannot tell, so never steal it
    return owner["pid"] != os.getpid() and not _alive(owner["pid"])


@contextmanager
def exclusive_folder(folder: str | os.PathLike[str], what: str) -> Iterator[Path]:
    """Hold ``folder``'s lock for the block; :class:`InputError` when another live process holds it.

    ``what`` names the work in the error (e.g. ``"evaluation"``). The folder is created if needed.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AdvlabError(f"cannot create the output folder {folder}: {exc.strerror or exc}; pass a writable "
                          "--out") from exc
    lock = folder / LOCK_NAME
    record = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "what": what})
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            owner = _owner(lock)
            if not _is_stale(owner):
                assert owner is not None
                raise InputError(
                    f"{folder} is in use by another advlab {owner.get('what', 'run')} (pid {owner['pid']} on "
                    f"{owner.get('host')}); wait for it to finish or pass another --out") from None
            lock.unlink(missing_ok=True)  # stale: its process is gone
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(record)
        break
    else:
        raise InputError(f"could not take the lock {lock}; another process keeps recreating it")
    try:
        yield folder
    finally:
        lock.unlink(missing_ok=True)
