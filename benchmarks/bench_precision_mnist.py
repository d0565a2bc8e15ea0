"""Is a bf16 attack as strong as fp32 on an adversarially trained MNIST network? Robust accuracy side by side.

Trains (and caches) ``mnist_cnn`` with PGD adversarial training (Madry et al. 2018: ε = 0.3, PGD-10 with step ε/4;
our choice of a short schedule: 20,000 training images, 5 epochs with ε ramped up over the first 2 (from scratch at
the full ε it stayed at chance), Adam 1e-3, bf16 autocast) and attacks 1,000
MNIST test images with PGD-40 (step 0.01, random start, same seeds) and APGD-CE (100 steps) in fp32 and in bf16
(forward/backward under autocast; projection and the final success pass fp32). The project's rule: bf16 may be a
default only where its robust accuracy is within +0.5 points of fp32 on adversarially trained networks.

    .venv/bin/python benchmarks/bench_precision_mnist.py --data-dir ../shared/data \\
        --out benchmarks/results_precision_mnist.json
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import platform
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from advlab.attacks import APGD, PGD
from advlab.data.sources import load_dataset
from advlab.io import write_json
from advlab.models import create_model
from advlab.precision import NATIVE_BF16_FLAGS, cpu_flags

EPS = 0.3


def pgd_trained_mnist_cnn(data_dir: str, *, images: int, epochs: int, cache: Path) -> torch.nn.Module:
    """``mnist_cnn`` after PGD adversarial training at ε = 0.3 (cached in ``cache``)."""
    from safetensors.torch import load_file, save_file

    from advlab.defenses.adversarial_training import PGDAdversarialTraining
    from advlab.seed import seed_everything
    from advlab.train import TrainConfig, fit

    seed_everything(0)
    model = create_model("mnist_cnn")
    if cache.exists():
        model.load_state_dict(load_file(str(cache)))
        return model.eval()
    train = load_dataset("mnist", "train", data_dir=data_dir, n=images, seed=0)
    config = TrainConfig(epochs=epochs, batch_size=128, optimizer="adam", lr=1e-3, schedule="constant",
                         precision="bf16", seed=0)
    fit(model, train, config=config, objective=PGDAdversarialTraining(eps=EPS, steps=10, eps_ramp_epochs=2), quiet=True, device="cpu")
    cache.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(cache))
    return model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--train-images", type=int, default=20000)
    parser.add_argument("--train-epochs", type=int, default=5)
    parser.add_argument("--cache", default="runs/bench/mnist_cnn_pgd_at.safetensors")
    parser.add_argument("--out", default="benchmarks/results_precision_mnist.json")
    args = parser.parse_args()
    started = time.perf_counter()
    model = pgd_trained_mnist_cnn(args.data_dir, images=args.train_images, epochs=args.train_epochs,
                                  cache=Path(args.cache))
    training_s = time.perf_counter() - started
    x, y = next(load_dataset("mnist", "test", data_dir=args.data_dir, n=args.images, seed=0).batches(args.images))
    attacks = {"PGD-40 (step 0.01)": PGD(eps=EPS, steps=40, step_size=0.01, seed=0, early_stop=False),
               "APGD-CE (100 steps)": APGD(eps=EPS, steps=100, seed=0)}
    rows = []
    for name, attack in attacks.items():
        for precision in ("fp32", "bf16"):
            run = dataclasses.replace(attack, precision=precision)
            begin = time.perf_counter()
            robust, clean = [], []
            for start in range(0, len(y), args.batch_size):
                result = run(model, x[start:start + args.batch_size], y[start:start + args.batch_size])
                robust.append(result.adv_pred == result.labels)
                clean.append(result.clean_pred == result.labels)
            rows.append({"attack": name, "precision": precision, "seconds": time.perf_counter() - begin,
                         "clean_accuracy": float(torch.cat(clean).float().mean()),
                         "robust_accuracy": float(torch.cat(robust).float().mean())})
    flags = sorted(cpu_flags() & NATIVE_BF16_FLAGS)
    console = Console()
    console.print(f"CPU: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads; native bf16 "
                  f"flags {flags or 'none'}; PGD-AT mnist_cnn ({'cached' if training_s < 5 else f'{training_s:.0f} s'})")
    table = Table(title=f"bf16 vs fp32 attacks on a PGD-trained mnist_cnn, {len(y)} MNIST test images, ε = {EPS}")
    for column in ("attack", "precision", "seconds", "clean acc.", "robust acc.", "Δ vs fp32 (points)"):
        table.add_column(column, justify="right")
    for row in rows:
        fp32 = next(r for r in rows if r["attack"] == row["attack"] and r["precision"] == "fp32")
        row["delta_points"] = 100 * (row["robust_accuracy"] - fp32["robust_accuracy"])
        table.add_row(row["attack"], row["precision"], f"{row['seconds']:.1f}", f"{row['clean_accuracy']:.3f}",
                      f"{row['robust_accuracy']:.3f}", f"{row['delta_points']:+.1f}")
    console.print(table)
    write_json(Path(args.out), {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                                "machine": {"platform": platform.platform(), "threads": torch.get_num_threads(),
                                            "torch": torch.__version__, "native_bf16_flags": flags},
                                "settings": vars(args), "training_s": training_s, "rows": rows})


if __name__ == "__main__":
    main()
