"""Speed and agreement of advlab's attacks against torchattacks, ART and foolbox, in one run.

Every library attacks the same model, the same images and labels, with the same settings (ε, step, steps, one
random start, C&W's c/lr/κ, JSMA's γ/θ and targets), seeds fixed. Timing: one warm-up call (on the first
``--warmup-images`` images: imports, lazy initialisation, allocator), then ``--repeats`` timed calls on the whole
batch; the median is reported. torch's default thread count, float32, CPU. Robust accuracy is judged here, by one
forward pass of the same model over every library's adversarial images, not by the libraries' own counters.

Tasks (``--quick`` shrinks the image counts and repeats for development runs):

* MNIST, ``mnist_cnn`` trained once (1 epoch Adam, lr 1e-3, batch 128, seed 0) and cached as safetensors under
  ``benchmarks/.cache/``: PGD-40 (ε 0.3, step 0.01), FGSM (ε 0.3), C&W-L2, JSMA (γ 0.1, θ +1).
* CIFAR-10, the pretrained ResNet-20 (akamaster, 91.73 %): PGD-10 (ε 8/255, step 2/255), FGSM (ε 8/255), C&W-L2.

Usage::

    python benchmarks/bench_attacks.py --data-dir ../shared/data --out benchmarks/results.json [--quick]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as a script: the adapters sit beside it
from _peers import (
    ADVLAB,
    ALGORITHM_NOTES,
    PEERS,
    AttackSpec,
    Library,
    NotAvailable,
    jsma_targets,
    library_version,
)

from advlab.data.sources import load_dataset
from advlab.io import write_json
from advlab.models import create_model, load_foreign_weights
from advlab.models.checkpoint import load_tensors, save_tensors, state_tensors
from advlab.precision import cpu_model
from advlab.seed import seed_everything
from advlab.train import TrainConfig, fit

BENCH_DIR = Path(__file__).resolve().parent
# ART's C&W line search (up to 5 halvings and 5 doublings of the learning rate, one forward pass each) costs ART
# 20-130x advlab's time per iteration here; advlab at 10x the iterations still costs less than ART's run.
CW_ITERATION_FACTOR = 10
RESNET20_FILE = Path("pretrained") / "resnet20-12fca82f.th"
SEED = 0


@dataclass(frozen=True)
class Task:
    """One block of the table: a dataset/model pair, an attack setting and how many images it runs on."""

    name: str
    dataset: str  # "mnist" or "cifar10"
    spec: AttackSpec
    n_images: int
    quick_images: int


TASKS: tuple[Task, ...] = (
    Task("PGD-40 MNIST", "mnist", AttackSpec("pgd", eps=0.3, step_size=0.01, steps=40, random_start=True), 1000, 100),
    Task("PGD-10 CIFAR-10", "cifar10",
         AttackSpec("pgd", eps=8 / 255, step_size=2 / 255, steps=10, random_start=True, channels_last=True), 500, 50),
    Task("FGSM MNIST", "mnist", AttackSpec("fgsm", eps=0.3), 1000, 100),
    Task("FGSM CIFAR-10", "cifar10", AttackSpec("fgsm", eps=8 / 255, channels_last=True), 500, 50),
    Task("C&W-L2 MNIST", "mnist", AttackSpec("cw", c=1.0, lr=0.01, kappa=0.0, cw_steps=100), 200, 20),
    Task("C&W-L2 CIFAR-10", "cifar10",
         AttackSpec("cw", c=1.0, lr=0.01, kappa=0.0, cw_steps=100, channels_last=True), 100, 10),
    Task("JSMA MNIST", "mnist", AttackSpec("jsma", gamma=0.1, theta=1.0), 100, 10),
)


@dataclass
class Row:
    """One library's result on one task (numbers are None where the library is n/a or failed)."""

    task: str
    library: str
    status: str  # "ok", "n/a" or "error"
    n_images: int
    reason: str | None = None
    times_s: list[float] = field(default_factory=list)
    median_s: float | None = None
    images_per_s: float | None = None
    # Time per image of this row / advlab's (early stop for PGD): > 1 means advlab is faster. Per image, so that
    # a row cut to a subset by the time budget stays comparable.
    ratio_vs_advlab: float | None = None
    ratio_vs_advlab_fixed: float | None = None  # PGD only: the same against advlab's fixed-step mode
    clean_accuracy: float | None = None
    robust_accuracy: float | None = None
    robust_gap_points: float | None = None  # 100 · (robust accuracy − advlab's), on the images both attacked
    metrics: dict[str, float | None] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------------ models/data
def trained_mnist_cnn(data_dir: Path, cache_dir: Path, console: Console) -> nn.Module:
    """``mnist_cnn`` after 1 epoch of Adam on the full MNIST training set; trained once, then read from the cache."""
    model = create_model("mnist_cnn")
    weights = cache_dir / "mnist_cnn_adam1_seed0.safetensors"
    if weights.exists():
        model.load_state_dict(load_tensors(weights))
    else:
        console.print(f"training mnist_cnn (1 epoch, Adam) -> {weights}")
        seed_everything(SEED)
        model = create_model("mnist_cnn")
        train_set = load_dataset("mnist", "train", data_dir=data_dir)
        fit(model, train_set, config=TrainConfig(epochs=1, optimizer="adam", lr=1e-3, batch_size=128, seed=SEED,
                                                 device="cpu"), quiet=True)
        cache_dir.mkdir(parents=True, exist_ok=True)
        save_tensors(weights, state_tensors(model))
    return model.eval()


def pretrained_resnet20(data_dir: Path) -> nn.Module:
    model = create_model("resnet20", normalization="imagenet")
    return load_foreign_weights(model, data_dir / RESNET20_FILE).eval()


def test_images(dataset: str, data_dir: Path, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` test images (float32 in [0, 1]) and labels, drawn without replacement with seed 0."""
    data = load_dataset(dataset, "test", data_dir=data_dir, n=n, seed=SEED)
    return data.float_images().contiguous(), data.labels.clone()


# ----------------------------------------------------------------------------------------------- measuring
@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch: int = 500) -> torch.Tensor:
    model.eval()
    return torch.cat([model(x[i:i + batch]).argmax(1) for i in range(0, x.shape[0], batch)])


def judge(model: nn.Module, spec: AttackSpec, x: torch.Tensor, y: torch.Tensor, adv: torch.Tensor,
          num_classes: int) -> tuple[float, dict[str, float | None]]:
    """Robust accuracy of ``adv`` under one common forward pass, plus the perturbation checks for the attack kind."""
    adv = adv.detach().to(torch.float32).reshape(x.shape)
    pred = predict(model, adv)
    delta = (adv - x).flatten(1)
    metrics: dict[str, float | None] = {
        "outside_box": float(((adv < -1e-6) | (adv > 1 + 1e-6)).any()),
        "max_linf": float(delta.abs().amax()),
    }
    fooled = pred != y
    if spec.kind == "cw":
        l2 = delta.norm(dim=1)
        metrics["success_rate"] = float(fooled.float().mean())
        metrics["median_l2_of_successes"] = float(l2[fooled].median()) if bool(fooled.any()) else None
    if spec.kind == "jsma":
        target = jsma_targets(y, spec, num_classes)
        changed = (delta.abs() > 1e-6).sum(dim=1).float()
        reached = pred == target
        metrics["target_success_rate"] = float(reached.float().mean())
        metrics["mean_l0_of_successes"] = float(changed[reached].mean()) if bool(reached.any()) else None
        metrics["max_l0_fraction"] = float(changed.max() / delta.shape[1])
    return float((pred == y).float().mean()), metrics


def time_attack(run: Any, x: torch.Tensor, y: torch.Tensor, *, repeats: int, warmup_images: int,
                budget_s: float) -> tuple[list[float], torch.Tensor, int]:
    """One warm-up call on the first ``warmup_images`` images, then up to ``repeats`` timed calls.

    Time budget, so that a peer taking minutes per call cannot hold the run for hours: the warm-up is timed to
    estimate the cost per image. It over-states it (one-time costs, small-batch inefficiency), so a row runs on
    the first m images only when the estimate for one call on all of them exceeds twice ``budget_s``; further
    repeats run only while the timed calls so far stay within ``budget_s``. Every call starts from the same
    seeds (torch, NumPy, random): the random starts repeat across calls, and libraries that draw from the
    global generators draw the same numbers. Returns (seconds per timed call, adversarial images of the last
    call, number of images attacked).
    """
    seed_everything(SEED)
    start = time.perf_counter()
    run(x[:warmup_images], y[:warmup_images])
    per_image = (time.perf_counter() - start) / warmup_images
    n = x.shape[0]
    budget_s = budget_s if budget_s > 0 else float("inf")  # 0: no budget, every image and every repeat
    if per_image * n > 2 * budget_s:
        n = max(warmup_images, int(2 * budget_s / per_image))
    times: list[float] = []
    adv = x[:n]
    while len(times) < repeats and (not times or sum(times) + times[-1] <= budget_s):
        seed_everything(SEED)
        start = time.perf_counter()
        adv = run(x[:n], y[:n])
        times.append(time.perf_counter() - start)
    return times, adv, n


def art_jsma_gamma(gamma: float, features: int) -> float:
    """The γ at which advlab's JSMA changes as many features as ART's does at ``gamma``.

    advlab stops at ⌊γD⌋ changed features (⌊γD⌋/2 two-feature steps); ART keeps stepping while the changed
    fraction is ≤ γ, so its last step can take it past γ: D = 784, γ = 0.1 gives 80 features (10.2 %) where
    advlab allows 78. Same saliency at ART's effective budget isolates that difference.
    """
    steps = int(gamma * features) // 2 + 1  # ART's steps: while 2·k ≤ γ·D
    return (2 * steps + 0.5) / features  # + 0.5 feature: ⌊γ'D⌋ = 2·steps despite rounding


def variants(task: Task, libraries: list[str], features: int) -> list[tuple[str, Library, AttackSpec]]:
    """(row name, library, spec) for a task: advlab first (and advlab fixed-step for PGD), then the peers."""
    rows = [("advlab", ADVLAB, task.spec)]
    if task.spec.kind == "pgd":
        rows.append(("advlab fixed", ADVLAB, replace(task.spec, early_stop=False)))
    if task.spec.kind == "jsma":  # ART's simplified saliency, for a like-for-like comparison with ART's row
        rows.append(("advlab target saliency", ADVLAB, replace(task.spec, jsma_saliency="target")))
        rows.append(("advlab target saliency, ART's L0", ADVLAB,
                     replace(task.spec, jsma_saliency="target", gamma=art_jsma_gamma(task.spec.gamma, features))))
    if task.spec.kind == "cw":  # ART's line search spends up to 11 forward passes an iteration: compare at its cost
        rows.append((f"advlab, {CW_ITERATION_FACTOR}x iterations", ADVLAB,
                     replace(task.spec, cw_steps=CW_ITERATION_FACTOR * task.spec.cw_steps)))
    rows += [(lib.name, lib, task.spec) for lib in PEERS if lib.name in libraries]
    return rows


def run_task(task: Task, model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, libraries: list[str],
             repeats: int, warmup_images: int, budget_s: float, console: Console) -> list[Row]:
    num_classes = 10
    clean = float((predict(model, x) == y).float().mean())
    rows: list[Row] = []
    advs: dict[str, torch.Tensor] = {}
    for name, library, spec in variants(task, libraries, x[0].numel()):
        row = Row(task=task.name, library=name, status="ok", n_images=int(x.shape[0]), clean_accuracy=clean)
        try:
            run = library.build(model, spec, num_classes, tuple(x.shape[1:]))
            model.eval()
            row.times_s, advs[name], n = time_attack(run, x, y, repeats=repeats,
                                                     warmup_images=min(warmup_images, len(x)), budget_s=budget_s)
            row.n_images = n
            row.median_s = statistics.median(row.times_s)
            row.images_per_s = n / row.median_s
            row.robust_accuracy, row.metrics = judge(model, spec, x[:n], y[:n], advs[name], num_classes)
            row.clean_accuracy = float((predict(model, x[:n]) == y[:n]).float().mean())
        except NotAvailable as exc:
            row.status, row.reason = "n/a", str(exc)
        except Exception as exc:  # noqa: BLE001  (a peer failing must not end a long run: record it and go on)
            row.status, row.reason = "error", f"{type(exc).__name__}: {exc}"
            console.print(f"[red]{task.name} / {name} failed[/red]\n{traceback.format_exc(limit=4)}")
        model.eval()
        console.print(f"  {task.name:18s} {name:13s} {row.status:5s} "
                      + (f"{row.median_s:8.2f} s ×{len(row.times_s)} on {row.n_images}, clean {row.clean_accuracy:.3f}"
                         f" robust {row.robust_accuracy:.3f}" if row.status == "ok"
                         else (row.reason or "")))
        rows.append(row)
    add_ratios(rows)
    add_gaps(rows, advs, model, x, y)
    return rows


def add_gaps(rows: list[Row], advs: dict[str, torch.Tensor], model: nn.Module, x: torch.Tensor,
             y: torch.Tensor) -> None:
    """Robust-accuracy gap to advlab in points, on the images both rows attacked (a budget-cut row has fewer)."""
    if "advlab" not in advs:
        return
    for row in rows:
        if row.status != "ok":
            continue
        m = min(row.n_images, advs["advlab"].shape[0])
        with torch.no_grad():
            mine = float((predict(model, advs[row.library][:m]) == y[:m]).float().mean())
            advlab = float((predict(model, advs["advlab"][:m]) == y[:m]).float().mean())
        row.robust_gap_points = 100 * (mine - advlab)
        row.metrics["gap_on_images"] = float(m)


def add_ratios(rows: list[Row]) -> None:
    """Fill the time-ratio columns of one task's rows against its advlab (and advlab fixed) rows."""
    reference = {row.library: row for row in rows if row.library.startswith("advlab") and row.status == "ok"}
    for row in rows:
        if row.status != "ok":
            continue
        if "advlab" in reference:
            row.ratio_vs_advlab = row.median_s / row.n_images / (reference["advlab"].median_s
                                                                  / reference["advlab"].n_images)
        if "advlab fixed" in reference:
            row.ratio_vs_advlab_fixed = row.median_s / row.n_images / (reference["advlab fixed"].median_s
                                                                        / reference["advlab fixed"].n_images)


# ----------------------------------------------------------------------------------------------- reporting
def environment() -> dict[str, Any]:
    return {
        "date_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "versions": {name: library_version(dist) for name, dist in
                     [("advlab", "advlab")] + [(lib.name, lib.distribution) for lib in PEERS]
                     + [("eagerpy", "eagerpy"), ("numpy", "numpy")]},
    }


def fmt(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def render(rows: list[Row], console: Console, title: str) -> None:
    table = Table(title=title, show_lines=False)
    for column, justify in [("task", "left"), ("library", "left"), ("n", "right"), ("reps", "right"), ("median s", "right"),
                            ("img/s", "right"), ("÷ advlab", "right"), ("÷ adv. fixed", "right"),
                            ("robust acc", "right"), ("Δ pts", "right"), ("check", "left")]:
        table.add_column(column, justify=justify)
    previous = None
    for row in rows:
        if previous is not None and row.task != previous:
            table.add_section()
        previous = row.task
        if row.status != "ok":
            table.add_row(row.task, row.library, str(row.n_images), "", row.status, "", "", "", "", "",
                          (row.reason or "")[:60])
            continue
        table.add_row(row.task, row.library, str(row.n_images), str(len(row.times_s)), fmt(row.median_s, ".2f"),
                      fmt(row.images_per_s, ".1f"), fmt(row.ratio_vs_advlab, ".2f"),
                      fmt(row.ratio_vs_advlab_fixed, ".2f"), fmt(row.robust_accuracy, ".3f"),
                      fmt(row.robust_gap_points, "+.1f"), check_text(row))
    console.print(table)


def check_text(row: Row) -> str:
    m = row.metrics
    if "median_l2_of_successes" in m:
        return f"succ {m['success_rate']:.2f}, med L2 {fmt(m['median_l2_of_successes'], '.2f')}"
    if "target_success_rate" in m:
        return f"tgt {m['target_success_rate']:.2f}, L0 {fmt(m['mean_l0_of_successes'], '.1f')}"
    return f"L∞ {m['max_linf']:.4f}"


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The result rows (as stored in the JSON) as a GitHub markdown table, for benchmarks/README.md."""
    lines = [("| task | library | images | repeats | median s | images/s | time per image ÷ advlab | "
             "÷ advlab fixed | robust acc | Δ vs advlab (pts) | check |"),
             "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|---|"]
    for row in rows:
        if row["status"] != "ok":
            lines.append(f"| {row['task']} | {row['library']} | | | {row['status']} | | | | | | {row['reason']} |")
            continue
        lines.append(" | ".join([
            f"| {row['task']}", row["library"], str(row["n_images"]), str(len(row["times_s"])),
            fmt(row["median_s"], ".2f"), fmt(row["images_per_s"], ".1f"), fmt(row["ratio_vs_advlab"], ".2f"),
            fmt(row["ratio_vs_advlab_fixed"], ".2f"), fmt(row["robust_accuracy"], ".3f"),
            fmt(row["robust_gap_points"], "+.1f"), check_text(Row(**row)) + " |"]))
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("ADVLAB_DATA", "../shared/data")),
                        help="folder with mnist/, cifar-10-batches-py/ and pretrained/ (default ../shared/data)")
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "results.json", help="JSON file to write")
    parser.add_argument("--quick", action="store_true", help="few images, one repeat: a smoke run")
    parser.add_argument("--repeats", type=int, default=None, help="timed calls per row (default 3; 1 with --quick)")
    parser.add_argument("--warmup-images", type=int, default=32, help="images in the untimed warm-up call")
    parser.add_argument("--row-budget", type=float, default=120.0,
                        help="seconds of timed calls per row; slower rows get fewer repeats or an image subset (0: no limit)")
    parser.add_argument("--tasks", nargs="*", default=None,
                        help="substrings selecting tasks, e.g. PGD 'JSMA MNIST' (default: all)")
    parser.add_argument("--libraries", nargs="*", default=[lib.name for lib in PEERS],
                        help="peers to compare (default: torchattacks ART foolbox)")
    parser.add_argument("--markdown-from", type=Path, default=None,
                        help="print the markdown table of an existing results JSON and exit (runs nothing)")
    parser.add_argument("--cache-dir", type=Path, default=BENCH_DIR / ".cache",
                        help="where the trained MNIST CNN is cached (gitignored)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console(width=None if sys.stdout.isatty() else 170)  # a log file gets the whole table
    if args.markdown_from is not None:
        print(markdown_table(json.loads(args.markdown_from.read_text())["rows"]))
        return 0
    repeats = args.repeats or (1 if args.quick else 3)
    if repeats < 1:
        console.print("[red]--repeats must be at least 1[/red]")
        return 2
    tasks = [task for task in TASKS if args.tasks is None or any(s.lower() in task.name.lower() for s in args.tasks)]
    if not (args.data_dir / "mnist").is_dir() or not (args.data_dir / RESNET20_FILE).is_file():
        console.print(f"[red]{args.data_dir} lacks mnist/ or {RESNET20_FILE}; pass --data-dir ../shared/data[/red]")
        return 2
    env = environment()
    env["load_average_start"] = list(os.getloadavg())
    console.print(f"{env['cpu_model']}, {env['cpu_count']} CPUs, torch {env['torch']} ({env['torch_threads']} "
                  f"threads), load average {env['load_average_start'][0]:.2f}; versions {env['versions']}")

    models: dict[str, nn.Module] = {}
    rows: list[Row] = []
    started = time.perf_counter()
    settings = {"repeats": repeats, "warmup_images": args.warmup_images, "row_budget_s": args.row_budget,
                "quick": args.quick, "seed": SEED,
                "tasks": [{"name": t.name, "dataset": t.dataset, "spec": asdict(t.spec),
                           "n_images": t.quick_images if args.quick else t.n_images} for t in tasks]}
    for task in tasks:
        if task.dataset not in models:
            models[task.dataset] = (trained_mnist_cnn(args.data_dir, args.cache_dir, console)
                                    if task.dataset == "mnist" else pretrained_resnet20(args.data_dir))
        n = task.quick_images if args.quick else task.n_images
        x, y = test_images(task.dataset, args.data_dir, n)
        rows += run_task(task, models[task.dataset], x, y, libraries=args.libraries, repeats=repeats,
                         warmup_images=args.warmup_images, budget_s=args.row_budget, console=console)
        env["load_average_end"] = list(os.getloadavg())
        env["wall_s"] = time.perf_counter() - started
        # Written after every task, so an interrupted long run keeps what it measured.
        write_json(args.out, {"environment": env, "settings": settings, "rows": [asdict(row) for row in rows],
                              "notes": list(ALGORITHM_NOTES), "complete": task is tasks[-1]})

    render(rows, console, f"advlab vs peers — median of up to {repeats} warm call(s), torch {env['torch']}, "
                          f"load avg {env['load_average_start'][0]:.1f}→{env['load_average_end'][0]:.1f}")
    for note in ALGORITHM_NOTES:
        console.print(f"• {note}")
    console.print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
