"""The main job, ``advlab demo``: train a CNN on the bundled MNIST sample and measure how FGSM breaks it.

Runs with no data directory and no network: the MNIST sample (10,000 train / 2,000 test images drawn with a
fixed seed from the official files) ships inside the package. Writes the checkpoint (safetensors + card) and a
JSON summary under ``out_dir``; budget about 3 minutes on a 2-core CPU.
"""

from __future__ import annotations

import platform
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

import advlab
from advlab.attacks.fgsm import FGSM
from advlab.data.dataset import ImageDataset
from advlab.data.sources import load_dataset
from advlab.io import write_json
from advlab.models import create_model
from advlab.train import TrainConfig, fit

DEMO_EPSILONS = (0.05, 0.1, 0.2, 0.3)  # L∞ radii in [0, 1] pixel units, the usual MNIST range


def fgsm_accuracy(model: torch.nn.Module, dataset: ImageDataset, eps: float, batch_size: int = 500) -> float:
    """Robust accuracy of ``model`` on ``dataset`` under FGSM with L∞ radius ``eps`` (0 gives clean accuracy)."""
    attack = FGSM(eps=eps)
    correct = 0
    for x, y in dataset.batches(batch_size):
        if eps == 0:
            with torch.no_grad():
                correct += int((model(x).argmax(1) == y).sum())
        else:
            correct += int((attack(model, x, y).adv_pred == y).sum())
    return correct / len(dataset)


def run_demo(out_dir: Path, *, console: Console | None = None, quiet: bool = False, epochs: int = 2) -> dict:
    """Train ``mnist_cnn`` for ``epochs`` on the bundled sample, attack it with FGSM, write a summary."""
    console = console or Console()
    out_dir = Path(out_dir)
    started = time.perf_counter()
    train_set = load_dataset("mnist-sample", "train")
    test_set = load_dataset("mnist-sample", "test")
    console.print(f"[bold]advlab demo[/]: mnist_cnn on the bundled MNIST sample "
                  f"({len(train_set):,} train / {len(test_set):,} test images)")

    model = create_model("mnist_cnn")
    config = TrainConfig(epochs=epochs, batch_size=64, optimizer="adam", lr=1e-3, seed=0)
    result = fit(model, train_set, config=config, val_set=test_set, out_dir=out_dir / "mnist_cnn", quiet=quiet,
                 device="cpu")
    model = result.model

    rows = [{"eps": eps, "accuracy": fgsm_accuracy(model, test_set, eps)} for eps in (0.0, *DEMO_EPSILONS)]
    table = Table(title="mnist_cnn under FGSM (bundled MNIST test sample)")
    table.add_column("attack")
    table.add_column("ε (L∞, [0,1] units)", justify="right")
    table.add_column("accuracy", justify="right")
    for row in rows:
        table.add_row("clean" if row["eps"] == 0 else "FGSM", f"{row['eps']:.2f}", f"{100 * row['accuracy']:.2f} %")
    console.print(table)

    summary = {
        "schema_version": 1,
        "model": "mnist_cnn",
        "dataset": {"name": test_set.name, "train_examples": len(train_set), "test_examples": len(test_set)},
        "train": {"config": config.to_dict(), "history": result.history},
        "checkpoint": str(result.last_checkpoint),
        "clean_accuracy": rows[0]["accuracy"],
        "fgsm": [{"eps": row["eps"], "robust_accuracy": row["accuracy"]} for row in rows[1:]],
        "duration_s": time.perf_counter() - started,
        "versions": {"advlab": advlab.__version__, "torch": torch.__version__, "python": platform.python_version()},
    }
    write_json(out_dir / "summary.json", summary)
    console.print(f"checkpoint: {result.last_checkpoint}")
    console.print(f"summary: {out_dir / 'summary.json'}  ({summary['duration_s']:.0f} s)")
    return summary
