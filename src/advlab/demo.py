"""The main job, ``advlab demo``: a standard and an adversarially trained CNN on MNIST, evaluated side by side.

On the MNIST sample bundled with the package (no data directory, no network) the demo

1. trains ``mnist_cnn`` with plain cross-entropy, and a second ``mnist_cnn`` with fast adversarial training
   (``fast_fgsm``: FGSM from a uniform random start, step 1.25·ε; Wong, Rice, Kolter 2020, arXiv:2001.03994)
   at ε = 0.2 (L∞, [0, 1] pixel units), each for one epoch on a seeded subset of the training images;
2. evaluates both with :func:`advlab.evaluate.pipeline.evaluate_model`: the quick suite (FGSM, PGD-20) over
   ε ∈ {0.05, 0.1, 0.15, 0.2}, the worst-case cascade and the sanity checks at ε = 0.2, and the analyses
   (perturbation statistics, the targeted average-adversarial grid, input-gradient norms, examples);
3. writes one report with both models side by side (``report.html``, ``report.md``); the last printed line is
   the report's path.

Why fast FGSM at ε = 0.2: on this sample (5,000 images, one epoch) it keeps the standard model's clean accuracy
and clearly raises PGD-20 accuracy at ε = 0.2 for twice the cost of standard training, where ε = 0.3 (Madry's MNIST
radius) needs more than one epoch and PGD training with several steps costs several times more; the report the demo
writes shows the numbers. The budget is a few minutes on a 2-core CPU; :class:`DemoSizes` shrinks everything for
tests.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from advlab.data.sources import load_dataset
from advlab.evaluate.card import EvaluationCard
from advlab.evaluate.pipeline import evaluate_model
from advlab.io import write_json
from advlab.models import create_model
from advlab.report import build_report
from advlab.report.console import print_summary
from advlab.seed import seed_everything
from advlab.train import TrainConfig, fit

DEMO_EPSILONS = (0.05, 0.1, 0.15, 0.2)  # L∞ radii in [0, 1] pixel units
TRAIN_EPS = 0.2  # the adversarial-training radius: the largest evaluated ε
DEFENSE = "fast_fgsm"
DEMO_ANALYSES = ("statistics", "grid", "gradients", "examples")


@dataclass(frozen=True)
class DemoSizes:
    """How much the demo trains and evaluates (defaults: the real demo; tests pass smaller ones).

    Attributes:
        train: training images (seeded subset of the 10,000 bundled ones). epochs: passes over them.
        test: evaluation images (seeded subset of the 2,000 bundled test images).
        analysis_points / grid_per_class / check_points: subsets for the analyses, the grid and the checks.
    """

    train: int = 5000
    epochs: int = 1
    test: int = 500
    analysis_points: int = 200
    grid_per_class: int = 5
    check_points: int = 100


def _progress(console: Console, quiet: bool) -> Progress | None:
    if quiet:
        return None
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, transient=True)


def _train(name: str, defense: str | None, train_set: Any, test_set: Any, sizes: DemoSizes, out_dir: Path,
           quiet: bool) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Train ``mnist_cnn`` (optionally with a registered defense); return the model and its checkpoint card."""
    from advlab.defenses.registry import create_defense

    seed_everything(0)  # the same initial weights for both models: the difference is the training objective
    model = create_model("mnist_cnn")
    objective = create_defense(defense, eps=TRAIN_EPS) if defense else None
    config = TrainConfig(epochs=sizes.epochs, batch_size=64, optimizer="adam", lr=1e-3, seed=0)
    result = fit(model, train_set, config=config, objective=objective, val_set=test_set, out_dir=out_dir / name,
                 quiet=quiet, device="cpu", card_extra={"defense": objective.describe()} if objective else None)
    card = dict(result.card) | {"label": name, "checkpoint": str(result.last_checkpoint)}
    return result.model.eval(), card


def _comparison(cards: dict[str, EvaluationCard]) -> Table:
    """Clean, PGD-20 per ε and the worst case, one row per model."""
    table = Table(title="Standard vs adversarially trained mnist_cnn (bundled MNIST test sample)")
    table.add_column("model")
    table.add_column("clean", justify="right")
    for eps in DEMO_EPSILONS:
        table.add_column(f"PGD-20 ε={eps:g}", justify="right")
    table.add_column(f"worst case ε={max(DEMO_EPSILONS):g}", justify="right")
    for name, card in cards.items():
        curve, worst = _attack_curve(card, "PGD-20"), _worst_case(card)
        table.add_row(name, f"{100 * worst['clean_accuracy']:.1f} %",
                      *[f"{100 * curve[eps]:.1f} %" for eps in DEMO_EPSILONS],
                      f"{100 * worst['robust_accuracy']:.1f} %")
    return table


def _attack_curve(card: EvaluationCard, label: str) -> dict[float, float]:
    """``{eps: robust accuracy}`` of the suite attack ``label`` (headline curve or a ``curve:`` analysis)."""
    from advlab.report.console import summary_rows

    for name, points in summary_rows(card):
        if name == label:
            return {eps: acc for eps, acc, _ in points}
    raise KeyError(f"the card has no curve of {label}")


def _worst_case(card: EvaluationCard) -> dict[str, Any]:
    """The card's worst case over every attack (clean and robust accuracy at the largest ε)."""
    if card.cascade is None:
        raise KeyError("the card has no worst case (was it written by evaluate_model?)")
    return card.cascade


def run_demo(out_dir: Path, *, console: Console | None = None, quiet: bool = False,
             sizes: DemoSizes | None = None) -> dict:
    """Train a standard and a ``fast_fgsm`` mnist_cnn, evaluate both, write one report; return a summary dict.

    Writes under ``out_dir``: ``standard/`` and ``fast_fgsm/`` (checkpoints), ``eval-standard/`` and
    ``eval-fast_fgsm/`` (``card.json`` and the resumable evaluation state), ``report.html``, ``report.md`` and
    ``summary.json``. The last line printed is the report's path.
    """
    console = console or Console()
    sizes = sizes or DemoSizes()
    out_dir = Path(out_dir)
    started = time.perf_counter()
    train_set = load_dataset("mnist-sample", "train").subset(sizes.train, seed=0)
    test_set = load_dataset("mnist-sample", "test").subset(sizes.test, seed=0)
    console.print(f"[bold]advlab demo[/]: mnist_cnn, standard vs {DEFENSE} (ε = {TRAIN_EPS:g}), on the bundled MNIST "
                  f"sample ({len(train_set):,} train / {len(test_set):,} test images)")

    cards: dict[str, EvaluationCard] = {}
    for name, defense in (("standard", None), (DEFENSE, DEFENSE)):
        console.print(f"training {name} ...")
        model, model_card = _train(name, defense, train_set, test_set, sizes, out_dir, quiet)
        console.print(f"evaluating {name} ...")
        progress = _progress(console, quiet)
        with progress if progress is not None else contextlib.nullcontext():
            cards[name] = evaluate_model(
                model, model_card, test_set, suite="quick", epsilons=list(DEMO_EPSILONS), norm="linf",
                analyses=set(DEMO_ANALYSES), checks=True, out_dir=out_dir / f"eval-{name}", progress=progress,
                analysis_points=sizes.analysis_points, grid_per_class=sizes.grid_per_class,
                check_points=sizes.check_points)
        if not quiet:
            print_summary(cards[name], console)

    paths = build_report(list(cards.values()), out_dir, title="advlab demo: standard vs adversarially trained "
                         "mnist_cnn", sources=[out_dir / f"eval-{name}" / "card.json" for name in cards])
    console.print(_comparison(cards))
    summary = {
        "schema_version": 2,
        "sizes": asdict(sizes),
        "epsilons": list(DEMO_EPSILONS),
        "defense": {"name": DEFENSE, "eps": TRAIN_EPS},
        "models": {name: {"clean_accuracy": _worst_case(card)["clean_accuracy"],
                          "pgd20": {str(eps): acc for eps, acc in _attack_curve(card, "PGD-20").items()},
                          "fgsm": {str(eps): acc for eps, acc in _attack_curve(card, "FGSM").items()},
                          "worst_case": _worst_case(card)["robust_accuracy"],
                          "checks_warned": [c["name"] for c in card.checks if c.get("status") == "warn"],
                          "card": str(out_dir / f"eval-{name}" / "card.json")}
                   for name, card in cards.items()},
        "report": str(paths.html),
        "duration_s": time.perf_counter() - started,
    }
    write_json(out_dir / "summary.json", summary)
    console.print(f"done in {summary['duration_s']:.0f} s; markdown {paths.markdown}")
    console.print(str(paths.html), soft_wrap=True, highlight=False)
    return summary

