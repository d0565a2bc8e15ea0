"""The ``advlab`` command line: thin wrappers that parse options, call library functions and print.

User mistakes (an :class:`~advlab.errors.AdvlabError`) print one line and exit with code 2, without a traceback.
Heavy imports happen inside the commands so that ``advlab --help`` stays instant.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from advlab.errors import AdvlabError

app = typer.Typer(
    name="advlab",
    help="Attack, defend and evaluate image classifiers against adversarial examples.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Inspect and verify datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")

console = Console()
err_console = Console(stderr=True)

DataDirOption = typer.Option(None, "--data-dir", help="Dataset folder (else $ADVLAB_DATA, else the user cache).")


@app.command("models")
def models_command() -> None:
    """List the registered models with their dataset, input shape and trainable parameter count."""
    from advlab.models import MODELS, count_parameters, create_model

    table = Table(title="advlab models")
    for column in ("name", "dataset", "input", "parameters", "paper"):
        table.add_column(column, justify="right" if column == "parameters" else "left")
    for entry in MODELS:
        model = create_model(entry.name)
        shape = "x".join(str(s) for s in entry.info["input_shape"])
        table.add_row(entry.name, entry.info["dataset"], shape, f"{count_parameters(model):,}", entry.info["paper"])
    console.print(table)


@data_app.command("verify")
def data_verify_command(data_dir: Optional[Path] = DataDirOption) -> None:
    """Check every known dataset file under the data folder against its official checksum."""
    from advlab.data.sources import resolve_data_dir, verify_data_dir

    root = resolve_data_dir(data_dir)
    results = verify_data_dir(root)
    table = Table(title=f"checksums under {root}")
    for column in ("file", "status"):
        table.add_column(column)
    failures = 0
    for result in results:
        if result.missing:
            status = "[yellow]missing[/]"
        elif result.ok:
            status = "[green]ok[/]"
        else:
            status = f"[red]MISMATCH[/] (expected {result.expected[:12]}…, got {result.actual[:12]}…)"
            failures += 1
        table.add_row(str(result.path.relative_to(root)), status)
    console.print(table)
    if failures:
        raise AdvlabError(f"{failures} file(s) under {root} fail their checksum: download them again")


@app.command("demo")
def demo_command(
    out: Path = typer.Option(Path("runs/demo"), "--out", help="Where the checkpoint and summary go."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
) -> None:
    """The main job: train mnist_cnn on the bundled MNIST sample and measure its FGSM robustness."""
    from advlab.demo import run_demo

    run_demo(out, console=console, quiet=quiet)


def main() -> None:
    """Console-script entry point: turn an AdvlabError into one red line and exit code 2 (no traceback).

    Usage errors (unknown command, bad option) are click's and already exit with code 2 and a short message.
    """
    try:
        app()
    except AdvlabError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
