"""``run_preset``: run a paper's experiment at a scale and print/save our numbers beside the paper's.

Output (under ``out_dir``): ``results.json`` (numbers as numbers), ``results.md`` (the same table in markdown)
and any figures the experiment draws. Both record the command, the machine (platform, cores, torch threads,
device), the date, the duration and the scale; every row carries the scale it was measured at, so a reduced run
is never mistaken for the paper's setting.

Example::

    from advlab.experiments import run_preset
    results = run_preset("fooling-noise", scale="quick", data_dir="../shared/data", out_dir="runs/fooling")
    for row in results.rows:
        print(row.label, row.paper, row.ours, row.delta)
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.console import Console, JustifyMethod
from rich.table import Table

from advlab.errors import InputError
from advlab.experiments.presets import SCALES, Preset, load_preset
from advlab.io import write_json, write_text
from advlab.precision import NATIVE_BF16_FLAGS, cpu_flags, cpu_model
from advlab.registry import Registry


@dataclass(frozen=True)
class Measurement:
    """One number an experiment measured, under the key a preset's ``[[reported]]`` entry may share.

    ``table`` names the paper item the number belongs to ("Table 2", "Fig. 3", "§5 text") or starts with
    "extension" for advlab's rows beyond the paper (see :func:`advlab.experiments.presets.names_paper_item`).
    """

    key: str
    table: str
    label: str
    value: float
    unit: str = "accuracy"
    std: float | None = None  # spread over repeated trials (sample std), when the value is their mean


@dataclass
class ExperimentContext:
    """What an experiment function receives: the preset, the scale's settings and where to put things."""

    preset: Preset
    scale: str
    settings: dict[str, Any]
    data_dir: str | None
    out_dir: Path
    device: torch.device
    console: Console
    quiet: bool = False
    extras: dict[str, Any] = field(default_factory=dict)

    def log(self, message: str) -> None:
        if not self.quiet:
            self.console.log(message)


ExperimentFn = Callable[[ExperimentContext], list[Measurement]]
EXPERIMENTS: Registry[list[Measurement]] = Registry("experiment")


def register_experiment(name: str, **info: Any) -> Callable[[ExperimentFn], ExperimentFn]:
    """``@register_experiment("fooling_noise")`` on a function ``(ExperimentContext) -> list[Measurement]``."""
    return EXPERIMENTS.register(name, **info)


@dataclass(frozen=True)
class ResultRow:
    """One line of the comparison table. ``paper``/``delta`` are None where the paper gives no number;
    ``ours`` is None where this scale did not measure it, and ``not_measured`` then says why when advlab never
    measures it (an ImageNet column, a number the paper cites from other work). ``*_std`` are the ± of each side.
    """

    key: str
    table: str
    label: str
    paper: float | None
    ours: float | None
    unit: str
    scale: str
    paper_std: float | None = None
    ours_std: float | None = None
    note: str = ""
    not_measured: str = ""
    measured_as: str = ""  # the measurement's own label where it says more than the paper's (images, trials)

    @property
    def delta(self) -> float | None:
        return None if self.paper is None or self.ours is None else self.ours - self.paper

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "table": self.table, "label": self.label, "paper": self.paper,
                "paper_std": self.paper_std, "ours": self.ours, "ours_std": self.ours_std, "delta": self.delta,
                "unit": self.unit, "scale": self.scale, "note": self.note, "not_measured": self.not_measured,
                "measured_as": self.measured_as}


@dataclass
class ReproductionResult:
    """What :func:`run_preset` returns (and writes as ``results.json``)."""

    preset: Preset
    scale: str
    scale_description: str
    rows: list[ResultRow]
    settings: dict[str, Any]
    command: str
    machine: dict[str, Any]
    started: str
    duration_s: float
    extras: dict[str, Any]
    out_dir: Path

    @property
    def json_path(self) -> Path:
        return self.out_dir / "results.json"

    @property
    def markdown_path(self) -> Path:
        return self.out_dir / "results.md"

    def row(self, key: str) -> ResultRow:
        for row in self.rows:
            if row.key == key:
                return row
        raise KeyError(key)

    def to_dict(self) -> dict[str, Any]:
        return {
            "preset": self.preset.name, "paper": self.preset.paper, "citation": self.preset.citation(),
            "summary": self.preset.summary, "scale": self.scale, "scale_description": self.scale_description,
            "command": self.command, "machine": self.machine, "started": self.started,
            "duration_s": self.duration_s, "settings": self.settings, "notes": list(self.preset.notes),
            "rows": [row.to_dict() for row in self.rows], "extras": self.extras,
        }


def machine_info(device: torch.device) -> dict[str, Any]:
    """Platform, CPU model and its native-bf16 flags, Python/torch versions, CPU cores, torch threads and the
    compute device."""
    info: dict[str, Any] = {
        "platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
        "cpu": cpu_model(), "cpu_bf16_flags": sorted(NATIVE_BF16_FLAGS & cpu_flags()),
        "cpu_cores": os.cpu_count(), "torch_threads": torch.get_num_threads(), "device": str(device),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    if hasattr(os, "getloadavg"):
        # Durations on a shared machine mean little without the load the run competed with.
        info["load_average_1m"] = round(os.getloadavg()[0], 2)
    return info


def _default_command(name: str, scale: str, data_dir: str | None, out: Path) -> str:
    """This process's command line when it is the advlab CLI, else the equivalent library call."""
    if Path(sys.argv[0]).name in ("advlab", "__main__.py"):
        return " ".join(shlex.quote(a) for a in ["advlab", *sys.argv[1:]])
    return f"run_preset({name!r}, scale={scale!r}, data_dir={data_dir!r}, out_dir={str(out)!r})"


def _merge_rows(preset: Preset, measured: list[Measurement], scale: str) -> list[ResultRow]:
    """Reported numbers first, in the preset's order, then measurements the paper gives no number for."""
    by_key = {m.key: m for m in measured}
    rows = []
    for reported in preset.reported:
        m = by_key.pop(reported.key, None)
        rows.append(ResultRow(reported.key, reported.table, reported.label, reported.value,
                              None if m is None else m.value, reported.unit, scale, paper_std=reported.std,
                              ours_std=None if m is None else m.std, note=reported.note,
                              not_measured=reported.not_measured,
                              measured_as="" if m is None or m.label == reported.label else m.label))
    for m in measured:
        if m.key in by_key:
            rows.append(ResultRow(m.key, m.table, m.label, None, m.value, m.unit, scale, ours_std=m.std))
    return rows


def format_cell(value: float | None, signed: bool = False, unit: str = "", std: float | None = None) -> str:
    """A cell: 4 decimals (counts as integers), ``± std`` when given, "—" for no number."""
    if value is None:
        return "—"
    if unit == "params":
        text = f"{value:+,.0f}" if signed else f"{value:,.0f}"
    elif value != 0 and abs(value) < 1e-3:  # e.g. a numerical floor of 1e-20: 4 decimals would print 0.0000
        text = f"{value:+.3g}" if signed else f"{value:.3g}"
    else:
        text = f"{value:+.4f}" if signed else f"{value:.4f}"
    return text if std is None else f"{text} ± {std:.4f}"


def _ours_cell(row: ResultRow) -> str:
    if row.ours is None and row.not_measured:
        return f"— (not measured: {row.not_measured})"
    return format_cell(row.ours, unit=row.unit, std=row.ours_std)


def _load_note(machine: dict[str, Any]) -> str:
    return f"; load average {machine['load_average_1m']} at the end" if "load_average_1m" in machine else ""


def render_markdown(result: ReproductionResult) -> str:
    """The comparison table and the run's provenance as markdown."""
    preset, machine = result.preset, result.machine
    lines = [
        f"# {preset.name}: {preset.paper.get('title', '')}", "",
        f"Paper: {preset.citation()}", "", preset.summary, "",
        f"- **Scale: `{result.scale}`** — {result.scale_description}",
        f"- Command: `{result.command}`",
        (f"- Machine: {_cpu_text(machine)}, {machine['platform']}, {machine['cpu_cores']} cores, "
        f"{machine['torch_threads']} torch threads, "
        f"device {machine['device']}{', ' + machine['gpu'] if 'gpu' in machine else ''}"
        f"{_load_note(machine)}; "
        f"Python {machine['python']}, torch {machine['torch']}"),
        f"- Date: {result.started}; duration {_duration(result)}", "",
        "| table | quantity | unit | paper | ours | Δ (ours − paper) | scale |",
        "|---|---|---|---:|---:|---:|---|",
    ]
    for row in result.rows:
        label = f"{row.label} ({row.note})" if row.note else row.label
        if row.measured_as:
            label += f"; ours: {row.measured_as}"
        paper = format_cell(row.paper, unit=row.unit, std=row.paper_std)
        lines.append(f"| {row.table} | {label} | {row.unit} | {paper} | {_ours_cell(row)} | "
                     f"{format_cell(row.delta, signed=True, unit=row.unit)} | {row.scale} |")
    measured = sum(row.ours is not None for row in result.rows if row.paper is not None)
    recorded = sum(row.paper is not None for row in result.rows)
    lines += ["", (f"{recorded} numbers of the paper are recorded; {measured} of them measured here. Accuracies "
              "are fractions in [0, 1]; ε and σ are in [0, 1] pixel units unless a label says otherwise; "
              "\"± \" is a standard deviation (the paper's, or ours over repeated trials). \"—\" in *paper*: the "
              "paper gives no number for this row (advlab's own measurement); in *ours*: not measured at this "
              "scale, or never (the reason is given)."), ""]
    lines += _training_lines(result.extras.get("training", {}))
    if preset.notes:
        lines += ["## Notes", ""] + [f"- {note}" for note in preset.notes] + [""]
    figures = result.extras.get("figures", [])
    if figures:
        lines += ["## Figures", ""] + [f"![{Path(f).stem}]({f})" for f in figures] + [""]
    return "\n".join(lines)


def earlier_training_s(training: dict[str, Any]) -> float:
    """Seconds of training that earlier, killed processes did for the networks this run resumed (``training``: the
    results' ``extras["training"]``, one entry per network)."""
    return sum(float(entry.get("earlier_processes_s") or 0.0) for entry in training.values())


def _cpu_text(machine: dict[str, Any]) -> str:
    """The CPU and its native bf16 support (results written before these were recorded say so)."""
    if "cpu" not in machine:
        return "CPU not recorded"
    flags = machine.get("cpu_bf16_flags") or []
    return f"{machine['cpu']} ({'native bf16: ' + ', '.join(flags) if flags else 'no native bf16'})"


def earlier_evaluation_s(extras: dict[str, Any]) -> float:
    """Seconds earlier processes spent measuring the rows this run reused (``extras["reused_rows"]``)."""
    return sum(float(seconds) for seconds in extras.get("reused_rows", {}).values())


def _duration(result: ReproductionResult) -> str:
    """The run's duration; a run that resumed networks from checkpoints, or reused rows an earlier process measured,
    also counts that earlier work (the earlier processes' other work, killed before it finished, is not)."""
    this = f"{result.duration_s / 60:.1f} min"
    training = earlier_training_s(result.extras.get("training", {}))
    evaluation = earlier_evaluation_s(result.extras)
    if training + evaluation <= 0:
        return this
    parts = [f"{seconds / 60:.1f} min of {what}" for seconds, what in
             ((training, "training"), (evaluation, "evaluation")) if seconds > 0]
    return (f"{(result.duration_s + training + evaluation) / 60:.1f} min in all: {this} in the last process, and "
            f"{' and '.join(parts)} in earlier processes whose networks or rows it reused")


def _training_lines(training: dict[str, Any]) -> list[str]:
    """The networks the run trained: images, epochs, precision and time per epoch; a network resumed from its
    checkpoints counts the epochs of every process that trained it (the run's own duration counts only the last)."""
    if not training:
        return []
    lines = ["## Networks trained", "",
             "| network | images | epochs | precision | median s / epoch | training time | resumed |",
             "|---|---:|---:|---|---:|---:|---|"]
    for name, entry in training.items():
        median = entry.get("median_epoch_s")
        total = entry.get("training_s", entry.get("wall_time_s"))
        resumed = f"after epoch {entry['resumed_after_epoch']}" if entry.get("resumed_after_epoch") else "no"
        lines.append(f"| {name} | {entry['images']:,} | {entry['epochs']} | {entry.get('precision', '—')}"
                     f"{' + channels_last' if entry.get('channels_last') else ''} | "
                     f"{'—' if median is None else f'{median:.1f}'} | "
                     f"{'—' if total is None else f'{total / 60:.1f} min'} | {resumed} |")
    return [*lines, ""]


def print_table(result: ReproductionResult, console: Console) -> None:
    """The comparison table on the console (rich)."""
    table = Table(title=f"{result.preset.name} — scale {result.scale}", caption=result.scale_description)
    columns: tuple[tuple[str, JustifyMethod], ...] = (("table", "left"), ("quantity", "left"), ("paper", "right"),
                                                      ("ours", "right"), ("Δ", "right"), ("scale", "left"))
    for column, justify in columns:
        table.add_column(column, justify=justify)
    for row in result.rows:
        table.add_row(row.table, row.label, format_cell(row.paper, unit=row.unit, std=row.paper_std), _ours_cell(row),
                      format_cell(row.delta, signed=True, unit=row.unit), row.scale)
    console.print(table)


def run_preset(
    name: str,
    *,
    scale: str = "quick",
    data_dir: str | os.PathLike[str] | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    console: Console | None = None,
    quiet: bool = False,
    device: str | None = None,
    command: str | None = None,
) -> ReproductionResult:
    """Run preset ``name`` at ``scale`` and write ``results.json`` + ``results.md`` under ``out_dir``.

    Args:
        name: a shipped preset (``list_presets()``) or the path of a ``.toml`` preset file.
        scale: ``"quick"`` (minutes on a CPU), ``"full"`` (the paper's recipe where it runs here) or ``"tiny"``
            (seconds, for tests).
        data_dir: the data root holding ``mnist/``, ``cifar-10-batches-py/``, ``pretrained/`` (else
            ``$ADVLAB_DATA``).
        out_dir: where results and figures go (created); default ``runs/reproduce/<preset name>``.
        console: rich console for progress and the table (default: stderr for progress, the table too).
        quiet: no progress and no table (results are still written).
        device: ``"cpu"``/``"cuda"``; None picks CUDA when available.
        command: the command line to record (default: this process's argv).
    """
    # Register the experiments (importing the modules fills EXPERIMENTS).
    from advlab.experiments import steps  # noqa: F401

    if scale not in SCALES:
        raise InputError(f"scale must be one of {', '.join(SCALES)}, got {scale!r}")
    preset = load_preset(str(name))
    settings = preset.scale_settings(scale)
    if settings.get("runs_here") is False:
        raise InputError(f"preset {preset.name!r} at scale {scale!r} cannot run on this kind of machine: "
                         f"{settings.get('limitation', 'see the preset notes')}. Use --scale quick.")
    chosen = device or ("cuda" if torch.cuda.is_available() else "cpu")
    console = console or Console(stderr=True)
    out = Path(out_dir) if out_dir is not None else Path("runs") / "reproduce" / preset.name
    out.mkdir(parents=True, exist_ok=True)
    context = ExperimentContext(preset=preset, scale=scale, settings=settings,
                                data_dir=None if data_dir is None else str(data_dir), out_dir=out,
                                device=torch.device(chosen), console=console, quiet=quiet)
    started = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    context.log(f"[bold]{preset.name}[/] at scale [bold]{scale}[/]: {settings['description']}")
    begin = time.perf_counter()
    measured = EXPERIMENTS.entry(preset.experiment).factory(context)
    duration = time.perf_counter() - begin
    result = ReproductionResult(
        preset=preset, scale=scale, scale_description=settings["description"],
        rows=_merge_rows(preset, measured, scale), settings=settings,
        command=command or _default_command(str(name), scale, context.data_dir, out),
        machine=machine_info(context.device), started=started, duration_s=duration, extras=context.extras,
        out_dir=out,
    )
    write_json(result.json_path, result.to_dict())
    write_text(result.markdown_path, render_markdown(result))
    if not quiet:
        print_table(result, console)
        console.print(f"results: {result.markdown_path} and {result.json_path}")
    return result
