"""Optional progress reporting: the library is quiet unless the caller asks for progress.

Every long-running evaluation function takes ``progress=`` which may be

* ``None`` (default): nothing is reported;
* a callable ``progress(done, total, description)`` called after each finished batch (``done`` counts units of
  work, ``total`` is fixed for the call);
* a ``rich.progress.Progress`` (anything with ``add_task`` and ``update``): one task per call, advanced per
  batch, so the CLI can show bars without the library printing anything itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

ProgressCallback = Callable[[int, int, str], None]
ProgressLike = ProgressCallback | Any | None


class ProgressReporter:
    """Counts units of work and forwards them to a callback or a rich Progress."""

    def __init__(self, progress: ProgressLike, total: int, description: str) -> None:
        self.total, self.description, self.done = int(total), description, 0
        self._callback: ProgressCallback | None = None
        self._rich: Any = None
        self._task: Any = None
        if progress is None:
            return
        if hasattr(progress, "add_task") and hasattr(progress, "update"):
            self._rich = progress
            self._task = progress.add_task(description, total=self.total)
        elif callable(progress):
            self._callback = progress
        else:
            raise TypeError("progress must be None, a callable (done, total, description) or a rich Progress")

    def advance(self, units: int = 1) -> None:
        self.done += units
        if self._rich is not None:
            self._rich.update(self._task, completed=self.done)
        elif self._callback is not None:
            self._callback(self.done, self.total, self.description)
