"""Attacks in fp32 and bf16 on this machine: PGD time and robust accuracy side by side, and the machine's peak.

Runs PGD-10 (L∞, ε = 8/255, step ε/4) over the same images and random starts in fp32, bf16 autocast, and bf16 +
channels_last (batch norm folded into the convolutions, the attacks' default, and once not folded), on the
pretrained CIFAR-10 ResNet-20 (fixed-step) and on the same network fine-tuned with FGSM-RS (adversarially trained,
where strength shows; fixed-step and with early stop, beside torchattacks' PGD when it is installed), and prints
seconds, images per second, robust accuracy and the fraction of the matmul peak (GFLOP/s of a 2048³ matmul in the
same precision, measured in the same run) that the attack's FLOPs reach. The CPU's bf16 flags are printed. Last,
one gradient step is timed eager and under ``torch.compile``, with the compile's cost and its break-even point.

    .venv/bin/python benchmarks/bench_precision.py --data-dir ../shared/data --out benchmarks/results_precision.json
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import platform
import time
from pathlib import Path

# A cold compilation, as a fresh machine pays it: no FX-graph or kernel cache from an earlier run (read at import).
os.environ.setdefault("TORCHINDUCTOR_FORCE_DISABLE_CACHES", "1")

import torch
from rich.console import Console
from rich.table import Table

from advlab.attacks import PGD
from advlab.attacks.compile_estimate import estimate_compile
from advlab.data.sources import load_dataset
from advlab.io import write_json
from advlab.loading import load_model
from advlab.precision import NATIVE_BF16_FLAGS, cpu_flags

# Every row folds batch norm into the convolutions (the attacks' default); the last row shows what that adds.
SETTINGS = {"fp32": {}, "bf16": {"precision": "bf16"}, "bf16 + channels_last": {"precision": "bf16",
                                                                                 "channels_last": True},
            "bf16 + channels_last, BN not folded": {"precision": "bf16", "channels_last": True,
                                                    "fold_batch_norm": False},
            "bf16 + channels_last + compile": {"precision": "bf16", "channels_last": True, "compile": True}}


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


def fast_fgsm_resnet20(model: torch.nn.Module, data_dir: str, *, images: int, epochs: int,
                       cache: Path) -> torch.nn.Module:
    """The pretrained ResNet-20 fine-tuned with FGSM-RS (Wong et al. 2020) at ε = 8/255 (cached in ``cache``):
    an adversarially trained network, on which an attack's strength shows (early stop does little there)."""
    from safetensors.torch import load_file, save_file

    from advlab.defenses.adversarial_training import FastFGSMTraining
    from advlab.train import TrainConfig, fit

    if cache.exists():
        model.load_state_dict(load_file(str(cache)))
        return model.eval()
    torch.manual_seed(0)
    train = load_dataset("cifar10", "train", data_dir=data_dir, n=images, seed=0)
    config = TrainConfig(epochs=epochs, batch_size=128, optimizer="sgd", lr=0.02, momentum=0.9, weight_decay=5e-4,
                         schedule="cosine", augmentation="cifar", precision="bf16", channels_last=True, seed=0)
    fit(model, train, config=config, objective=FastFGSMTraining(eps=8 / 255), quiet=True, device="cpu")
    model = model.eval().to(memory_format=torch.contiguous_format)
    cache.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(cache))
    return model


def attack_rows(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int, early_stop: bool,
                flops_per_image: float, peaks: dict[str, float]) -> list[dict]:
    """PGD-10 in each precision setting over the same images and random starts: time, accuracy, peak share."""
    rows = []
    for name, options in SETTINGS.items():
        attack = PGD(eps=8 / 255, steps=10, step_fraction=0.25, early_stop=early_stop, seed=0, **options)
        # Warm-up on a whole batch: oneDNN primitive creation, and for the compiled row its compilations (a fixed
        # batch, then, with early stop, the shrinking one): the timed runs are the steady state, the compilation's
        # cost is measured apart (estimate_compile).
        attack(model, x[:batch_size], y[:batch_size])
        begin = time.perf_counter()
        robust, passes = [], 0
        for start in range(0, len(y), batch_size):
            result = attack(model, x[start:start + batch_size], y[start:start + batch_size])
            robust.append(result.adv_pred == result.labels)
            passes += result.queries  # gradient passes actually run (early stop skips some)
        seconds = time.perf_counter() - begin
        gflops = flops_per_image * passes / seconds / 1e9
        rows.append({"setting": name, "early_stop": early_stop, "seconds": seconds, "images_per_s": len(y) / seconds,
                     "robust_accuracy": float(torch.cat(robust).float().mean()), "gflops": gflops,
                     "fraction_of_peak": gflops / peaks["bf16" if "bf16" in name else "fp32"]})
    return rows


def torchattacks_row(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int) -> dict | None:
    """torchattacks' PGD (fp32, every step on every image) with the same ε, step and steps, if it is installed."""
    try:
        import torchattacks
    except ImportError:
        return None
    attack = torchattacks.PGD(model, eps=8 / 255, alpha=2 / 255, steps=10, random_start=True)
    attack(x[:8], y[:8])  # warm-up
    torch.manual_seed(0)
    begin = time.perf_counter()
    robust = []
    for start in range(0, len(y), batch_size):
        xb, yb = x[start:start + batch_size], y[start:start + batch_size]
        adv = attack(xb, yb)
        with torch.no_grad():
            robust.append(model(adv).argmax(dim=-1) == yb)
    seconds = time.perf_counter() - begin
    return {"setting": f"torchattacks {torchattacks.__version__} PGD (fp32)", "early_stop": False, "seconds": seconds,
            "images_per_s": len(y) / seconds, "robust_accuracy": float(torch.cat(robust).float().mean()),
            "gflops": None, "fraction_of_peak": None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--out", default="benchmarks/results_precision.json")
    parser.add_argument("--robust-images", type=int, default=20000,
                        help="FGSM-RS fine-tuning images for the adversarially trained rows (0: skip them)")
    parser.add_argument("--robust-epochs", type=int, default=2)
    parser.add_argument("--robust-cache", default="runs/bench/resnet20_fgsm_rs.safetensors")
    args = parser.parse_args()
    weights = next(Path(args.data_dir, "pretrained").glob("resnet20-*.th"))
    model = load_model("resnet20", weights).model.eval()
    x, y = next(load_dataset("cifar10", "test", data_dir=args.data_dir, n=args.images, seed=0).batches(args.images))
    flops_per_image = forward_backward_flops(model, x)
    peaks = {"fp32": matmul_gflops(torch.float32), "bf16": matmul_gflops(torch.bfloat16)}
    # First, before any row compiles: what compiling one gradient pass costs and saves, on a model not yet compiled
    # (torch.compile's on-disk caches are off for this process, so the compilation is a cold one).
    probe = estimate_compile(load_model("resnet20", weights).model.eval(), x[:args.batch_size], y[:args.batch_size],
                             precision="bf16", channels_last=True)
    rows = [dict(row, model="pretrained (undefended)") for row in attack_rows(
        model, x, y, batch_size=args.batch_size, early_stop=False, flops_per_image=flops_per_image, peaks=peaks)]
    if args.robust_images:
        robust = fast_fgsm_resnet20(load_model("resnet20", weights).model, args.data_dir, images=args.robust_images,
                                    epochs=args.robust_epochs, cache=Path(args.robust_cache))
        peer = torchattacks_row(robust, x, y, batch_size=args.batch_size)
        if peer is not None:
            rows.append(dict(peer, model="FGSM-RS fine-tuned"))
        for early_stop in (False, True):
            rows += [dict(row, model="FGSM-RS fine-tuned") for row in attack_rows(
                robust, x, y, batch_size=args.batch_size, early_stop=early_stop, flops_per_image=flops_per_image,
                peaks=peaks)]
    console = Console()
    flags = sorted(cpu_flags() & NATIVE_BF16_FLAGS)
    console.print(f"CPU: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads; native bf16 "
                  f"flags {flags or 'none'}; matmul peak fp32 {peaks['fp32']:.0f}, bf16 {peaks['bf16']:.0f} GFLOP/s")
    table = Table(title=f"PGD-10 (ε 8/255, step ε/4) on ResNet-20, {len(y)} CIFAR-10 test images")
    for column in ("model", "early stop", "setting", "seconds", "images/s", "ratio", "robust acc.", "GFLOP/s",
                   "of peak"):
        table.add_column(column, justify="right")
    for row in rows:
        # ratios against the first row of the model: torchattacks' PGD where it ran, else advlab's fp32
        base = next(r["seconds"] for r in rows if r["model"] == row["model"])
        table.add_row(row["model"], "yes" if row["early_stop"] else "no", row["setting"], f"{row['seconds']:.2f}",
                      f"{row['images_per_s']:.1f}", f"{base / row['seconds']:.2f}x", f"{row['robust_accuracy']:.3f}",
                      "—" if row["gflops"] is None else f"{row['gflops']:.0f}",
                      "—" if row["fraction_of_peak"] is None else f"{row['fraction_of_peak']:.1%}")
    console.print(table)
    console.print(f"{probe.describe()} (bf16, channels_last, batch norm folded)")
    write_json(Path(args.out), {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                                "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                                            "threads": torch.get_num_threads(), "torch": torch.__version__,
                                            "native_bf16_flags": flags, "matmul_gflops": peaks},
                                "settings": vars(args), "flops_per_image_step": flops_per_image, "rows": rows,
                                "compile_estimate": dataclasses.asdict(probe)
                                | {"break_even_passes": probe.break_even_passes}})


if __name__ == "__main__":
    main()
