"""Attacks in fp32 and bf16 on this machine: PGD time and robust accuracy side by side, and the machine's peak.

Runs fixed-step PGD-10 (L∞, ε = 8/255, step ε/4, no early stop: every image pays every step) on the pretrained
CIFAR-10 ResNet-20 over the same images and random starts in fp32, bf16 autocast, and bf16 + channels_last, and
prints seconds, images per second, robust accuracy and the fraction of the matmul peak (GFLOP/s of a 2048³ matmul
in the same precision, measured in the same run) that the attack's FLOPs reach. The CPU's bf16 flags are printed.

    .venv/bin/python benchmarks/bench_precision.py --data-dir ../shared/data --out benchmarks/results_precision.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from advlab.attacks import PGD
from advlab.data.sources import load_dataset
from advlab.io import write_json
from advlab.loading import load_model
from advlab.precision import NATIVE_BF16_FLAGS, cpu_flags

SETTINGS = {"fp32": {}, "bf16": {"precision": "bf16"}, "bf16 + channels_last": {"precision": "bf16",
                                                                                 "channels_last": True}}


def matmul_gflops(dtype: torch.dtype, size: int = 2048, repeats: int = 5) -> float:
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b  # warm-up
    begin = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size**3 * repeats / (time.perf_counter() - begin) / 1e9


def forward_backward_flops(model: torch.nn.Module, x: torch.Tensor) -> float:
    """FLOPs of one forward + input-gradient backward (about 3x the forward's multiply-adds x 2)."""
    from torch.utils.flop_counter import FlopCounterMode

    x = x[:1].clone().requires_grad_(True)
    with FlopCounterMode(display=False) as counter:
        model(x).sum().backward()
    return float(counter.get_total_flops())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--out", default="benchmarks/results_precision.json")
    args = parser.parse_args()
    weights = next(Path(args.data_dir, "pretrained").glob("resnet20-*.th"))
    model = load_model("resnet20", weights).model.eval()
    x, y = next(load_dataset("cifar10", "test", data_dir=args.data_dir, n=args.images, seed=0).batches(args.images))
    flops_per_image = forward_backward_flops(model, x)
    peaks = {"fp32": matmul_gflops(torch.float32), "bf16": matmul_gflops(torch.bfloat16)}
    rows = []
    for name, options in SETTINGS.items():
        attack = PGD(eps=8 / 255, steps=10, step_fraction=0.25, early_stop=False, seed=0, **options)
        attack(model, x[:8], y[:8])  # warm-up (oneDNN primitive creation)
        begin = time.perf_counter()
        robust = []
        for start in range(0, len(y), args.batch_size):
            result = attack(model, x[start:start + args.batch_size], y[start:start + args.batch_size])
            robust.append(result.adv_pred == result.labels)
        seconds = time.perf_counter() - begin
        gflops = flops_per_image * 10 * len(y) / seconds / 1e9
        peak = peaks["bf16" if "bf16" in name else "fp32"]
        rows.append({"setting": name, "seconds": seconds, "images_per_s": len(y) / seconds,
                     "robust_accuracy": float(torch.cat(robust).float().mean()), "gflops": gflops,
                     "fraction_of_peak": gflops / peak})
    console = Console()
    flags = sorted(cpu_flags() & NATIVE_BF16_FLAGS)
    console.print(f"CPU: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads; native bf16 "
                  f"flags {flags or 'none'}; matmul peak fp32 {peaks['fp32']:.0f}, bf16 {peaks['bf16']:.0f} GFLOP/s")
    table = Table(title=f"PGD-10 (no early stop) on the pretrained ResNet-20, {len(y)} CIFAR-10 test images")
    for column in ("setting", "seconds", "images/s", "ratio", "robust acc.", "GFLOP/s", "of peak"):
        table.add_column(column, justify="right")
    base = rows[0]["seconds"]
    for row in rows:
        table.add_row(row["setting"], f"{row['seconds']:.2f}", f"{row['images_per_s']:.1f}",
                      f"{base / row['seconds']:.2f}x", f"{row['robust_accuracy']:.3f}", f"{row['gflops']:.0f}",
                      f"{row['fraction_of_peak']:.1%}")
    console.print(table)
    write_json(Path(args.out), {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                                "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                                            "threads": torch.get_num_threads(), "torch": torch.__version__,
                                            "native_bf16_flags": flags, "matmul_gflops": peaks},
                                "settings": vars(args), "flops_per_image_step": flops_per_image, "rows": rows})


if __name__ == "__main__":
    main()
