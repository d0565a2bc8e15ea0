"""``advlab evaluate --suite standard`` against the official AutoAttack on the same model and images.

Croce & Hein's AutoAttack (fra31/auto-attack, the authors' code as packaged on PyPI as ``pyautoattack``; else
torchattacks' port) runs its standard version: APGD-CE, APGD-T (9 targets), FAB-T (9 targets) and Square (5,000
queries), each only on the points still robust. advlab's standard suite is APGD-CE, APGD-T (9 targets) and Square
(5,000 queries) in the same cascade; :func:`advlab.evaluate.pipeline.evaluate_model` runs it (checks and analyses
off) and everything it adds: randomness detection, the clean pass, the card. Robust accuracy sits beside time.

Second table: three radii. AutoAttack has one ε per run, so three runs; advlab evaluates the three radii in one
call and never attacks a point again at a larger ε once a smaller one fooled it.

Model: the CIFAR-10 ResNet-20 fine-tuned with FGSM-RS (``benchmarks/bench_precision.py`` trains and caches it), an
adversarially trained network where the later attacks of the cascade have points left to work on.

    .venv/bin/python benchmarks/bench_standard_suite.py --data-dir ../shared/data --n 200 \\
        --out benchmarks/results_standard_suite.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from advlab.data.sources import load_dataset
from advlab.evaluate.pipeline import evaluate_model
from advlab.io import write_json
from advlab.loading import load_model
from advlab.precision import NATIVE_BF16_FLAGS, cpu_flags, cpu_model


def autoattack_runner(model: torch.nn.Module, eps: float, seed: int):
    """``(name, run(x, y) -> robust accuracy)`` of the official AutoAttack, else torchattacks' port."""
    try:
        from pyautoattack import AutoAttack

        def run(x: torch.Tensor, y: torch.Tensor, batch_size: int) -> float:
            adversary = AutoAttack(model, norm="Linf", eps=eps, version="standard", device="cpu", seed=seed)
            adversary.logger.setLevel(logging.WARNING)
            _, y_adv = adversary.run_standard_evaluation(x, y, batch_size=batch_size)  # labels on its examples
            return float((y_adv == y).double().mean())

        return "AutoAttack (pyautoattack 0.2.0, the authors' code)", run
    except ImportError:
        import torchattacks

        def run(x: torch.Tensor, y: torch.Tensor, batch_size: int) -> float:
            attack = torchattacks.AutoAttack(model, norm="Linf", eps=eps, version="standard", n_classes=10,
                                             seed=seed)
            correct = 0
            for start in range(0, len(x), batch_size):
                xb, yb = x[start:start + batch_size], y[start:start + batch_size]
                with torch.no_grad():
                    correct += int((model(attack(xb, yb)).argmax(1) == yb).sum())
            return correct / len(x)

        return "torchattacks AutoAttack (port)", run


def advlab_run(model: torch.nn.Module, data, epsilons: list[float], batch_size: int, seed: int) -> list[float]:
    """Worst-case robust accuracy per ε of ``advlab evaluate --suite standard`` (checks and analyses off)."""
    with tempfile.TemporaryDirectory() as out:
        card = evaluate_model(model, {"label": "resnet20 fgsm-rs"}, data, suite="standard", epsilons=epsilons,
                              checks=False, batch_size=batch_size, seed=seed, out_dir=Path(out))
    return [row["robust_accuracy"] for row in card.cascade["worst_case"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--n", type=int, default=200, help="CIFAR-10 test images (seeded subset)")
    parser.add_argument("--batch-size", type=int, default=200)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--weights", default="runs/bench/resnet20_fgsm_rs.safetensors",
                        help="the FGSM-RS fine-tuned ResNet-20 of bench_precision.py")
    parser.add_argument("--out", default="benchmarks/results_standard_suite.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    console = Console()
    if not Path(args.weights).exists():
        raise SystemExit(f"{args.weights} is missing: run benchmarks/bench_precision.py once, it trains and caches it")
    from safetensors.torch import load_file

    model = load_model("resnet20").model
    model.load_state_dict(load_file(args.weights))
    model.eval()
    data = load_dataset("cifar10", "test", data_dir=args.data_dir, n=args.n, seed=0)
    x, y = data.float_images(), data.labels
    cpu = cpu_model()
    flags = sorted(set(cpu_flags()) & set(NATIVE_BF16_FLAGS))
    console.print(f"CPU: {cpu} ({args.threads} threads; bf16 flags: {', '.join(flags) or 'none'}); "
                  f"torch {torch.__version__}; {args.n} CIFAR-10 test images; nothing else running")

    rows = []
    single, several = [8 / 255], [2 / 255, 4 / 255, 8 / 255]
    name, autoattack = None, None
    for label, epsilons in (("one ε (8/255)", single), ("three ε (2, 4, 8 /255)", several)):
        seconds_aa, accuracy_aa = 0.0, []
        for eps in epsilons:
            name, autoattack = autoattack_runner(model, eps, seed=0)
            start = time.perf_counter()
            accuracy_aa.append(autoattack(x, y, args.batch_size))
            seconds_aa += time.perf_counter() - start
        start = time.perf_counter()
        accuracy_advlab = advlab_run(model, data, epsilons, args.batch_size, seed=0)
        seconds_advlab = time.perf_counter() - start
        rows.append({"setting": label, "epsilons": epsilons, "autoattack": name, "autoattack_s": seconds_aa,
                     "autoattack_robust_accuracy": accuracy_aa, "advlab_s": seconds_advlab,
                     "advlab_robust_accuracy": accuracy_advlab, "speedup": seconds_aa / seconds_advlab})

    table = Table(title="advlab evaluate --suite standard vs AutoAttack (standard), same model and images")
    for column in ("setting", "AutoAttack s", "AutoAttack robust acc.", "advlab s", "advlab robust acc.", "ratio"):
        table.add_column(column, justify="right" if column != "setting" else "left")
    for row in rows:
        table.add_row(row["setting"], f"{row['autoattack_s']:.1f}",
                      " / ".join(f"{a:.3f}" for a in row["autoattack_robust_accuracy"]), f"{row['advlab_s']:.1f}",
                      " / ".join(f"{a:.3f}" for a in row["advlab_robust_accuracy"]), f"{row['speedup']:.2f}x")
    console.print(table)
    write_json(args.out, {"date": dt.date.today().isoformat(), "cpu": cpu, "bf16_flags": flags,
                          "threads": args.threads, "torch": torch.__version__, "n": args.n,
                          "batch_size": args.batch_size, "model": "resnet20 fine-tuned with FGSM-RS (bench_precision)",
                          "rows": rows})


if __name__ == "__main__":
    main()
