"""Progress display for long loops: rich bars on a terminal, one line per epoch otherwise, nothing when quiet.

Everything goes to **stderr**, so a command's stdout stays clean for results. Modes:

* ``quiet=True``: no output at all;
* a terminal: an epoch bar and a batch bar (with the running loss and accuracy), plus one summary line per epoch
  printed above the bars;
* not a terminal (a log file, CI, a notebook cell capturing output): only the summary line per epoch, because
  redrawn bars turn into thousands of lines in a log.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class TrainProgress:
    """Context manager: ``start_epoch`` / ``update`` every few batches / ``end_epoch(summary)``.

    Example::

        with TrainProgress(total_epochs=10, quiet=False) as progress:
            for epoch in range(10):
                progress.start_epoch(epoch, total_batches=len(batches))
                for i, ...: progress.update(i + 1, loss=0.3, acc=0.9)
                progress.end_epoch("epoch 1/10  loss 0.30  val_acc 0.91")
    """

    def __init__(self, total_epochs: int, *, quiet: bool = False, console: Console | None = None) -> None:
        self.total_epochs = total_epochs
        self.quiet = quiet
        self.console = console or Console(stderr=True)
        self.bars = not quiet and self.console.is_terminal
        self._progress: Progress | None = None
        self._epoch_task: TaskID | None = None
        self._batch_task: TaskID | None = None

    def __enter__(self) -> TrainProgress:
        if self.bars:
            self._progress = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                TimeRemainingColumn(), TextColumn("{task.fields[stats]}"),
                console=self.console, transient=True,
            )
            self._progress.start()
            self._epoch_task = self._progress.add_task("epochs", total=self.total_epochs, stats="")
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def start_epoch(self, epoch: int, *, total_batches: int) -> None:
        """Begin epoch ``epoch`` (0-based) of ``total_batches`` batches."""
        if self._progress is None or self._epoch_task is None:  # both are set together in __enter__
            return
        self._progress.update(self._epoch_task, completed=epoch)
        if self._batch_task is not None:
            self._progress.remove_task(self._batch_task)
        self._batch_task = self._progress.add_task(
            f"epoch {epoch + 1}/{self.total_epochs}", total=total_batches, stats="")

    def update(self, batches_done: int, **stats: float) -> None:
        """Set the batch bar to ``batches_done``; ``stats`` (e.g. loss=0.31, acc=0.92) are shown beside it."""
        if self._progress is None or self._batch_task is None:
            return
        text = "  ".join(f"{key} {value:.4f}" for key, value in stats.items())
        self._progress.update(self._batch_task, completed=batches_done, stats=text)

    def end_epoch(self, summary: str) -> None:
        """Print the epoch's one-line summary (unless quiet) and advance the epoch bar."""
        if self.quiet:
            return
        if self._progress is not None and self._epoch_task is not None:  # both are set together in __enter__
            self._progress.advance(self._epoch_task)
            self._progress.console.print(summary, highlight=False)
        else:
            self.console.print(summary, highlight=False, soft_wrap=True)

    def note(self, message: str) -> None:
        """A one-off message (resume, device choice), shown unless quiet."""
        if not self.quiet:
            self.console.print(message, highlight=False, soft_wrap=True)


@contextmanager
def cli_progress(quiet: bool = False, console: Console | None = None) -> Iterator[Progress | None]:
    """A rich Progress for the evaluation library's ``progress=`` argument, or None when quiet or not a terminal."""
    console = console or Console(stderr=True)
    if quiet or not console.is_terminal:
        yield None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        yield progress
