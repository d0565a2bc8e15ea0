"""How long the papers' full training schedules would take here, measured from short runs of the real training loop.

For every network family that the ``medium`` scales leave out (PNI's 160-epoch PGD-7 adversarial training of 33
networks, 000's 100-epoch NIN-BN pair, 004's 50-epoch networks), this times two short epochs of ``advlab.train.fit``
with the recipe's objective and the fast path (``precision="auto"``, channels_last), keeps the second (steady
state), and extrapolates to the full schedule: seconds per image x 50,000 images x epochs x networks. It also counts
the FLOPs of one training step (``torch.utils.flop_counter``) so that a GPU's time can be bounded: a GPU was not lent
to this task, so that column is a FLOP count divided by an ASSUMED sustained rate (``--gpu-tflops``, stated in the
output), not a measurement.

    .venv/bin/python experiments/scale_estimates.py --out experiments/results/scale_estimates.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from advlab.data.dataset import ImageDataset
from advlab.defenses.adversarial_training import FGSMMixedLoss, PGDAdversarialTraining
from advlab.defenses.pni import inject_pni
from advlab.io import write_text
from advlab.models import create_model
from advlab.objectives import CrossEntropy
from advlab.precision import NATIVE_BF16_FLAGS, cpu_flags, resolve_precision
from advlab.train import TrainConfig, fit

TRAIN_IMAGES = 50_000  # CIFAR-10's training set


@dataclass(frozen=True)
class Family:
    """Networks of one architecture and recipe in a paper's full schedule."""

    preset: str
    label: str
    arch: str
    model_kwargs: dict[str, Any]
    objective: str  # "ce", "pgd7" (PNI's PGD-7 adversarial training) or "fgsm_mixed"
    networks: int
    epochs: int
    pni: bool = False
    note: str = ""


# The full scales' schedules. PNI (002): 160 epochs each (Fig. 2's caption drops the lr at 80 and 120); its 33
# networks: ResNet-20 x 9 adversarially trained (Table 2's vanilla and six PNI schemes, Table 1's two other
# schemes, one of which is trained with cross-entropy only) + 1 undefended; six Table 3 networks x (undefended,
# vanilla, PNI-W); ResNet-18 x (undefended, vanilla, PNI-W, PNI-A-a, PNI-W+A-a).
FAMILIES = (
    Family("pni", "ResNet-20, PGD-7 adversarial training (Tables 1-2)", "resnet20", {}, "pgd7", 8, 160, pni=True),
    Family("pni", "ResNet-20, cross-entropy (Table 1 (i), Table 3 no defense)", "resnet20", {}, "ce", 2, 160,
           pni=True),
    *(Family("pni", f"{name}, PGD-7 adversarial training (Table 3)", arch, kwargs, "pgd7", 2, 160, pni=True)
      for name, arch, kwargs in (("ResNet-32", "resnet32", {}), ("ResNet-44", "resnet44", {}),
                                 ("ResNet-56", "resnet56", {}), ("ResNet-20 (1.5x)", "resnet20", {"width": 1.5}),
                                 ("ResNet-20 (2x)", "resnet20", {"width": 2.0}),
                                 ("ResNet-20 (4x)", "resnet20", {"width": 4.0}))),
    *(Family("pni", f"{name}, cross-entropy (Table 3 no defense)", arch, kwargs, "ce", 1, 160)
      for name, arch, kwargs in (("ResNet-32", "resnet32", {}), ("ResNet-44", "resnet44", {}),
                                 ("ResNet-56", "resnet56", {}), ("ResNet-20 (1.5x)", "resnet20", {"width": 1.5}),
                                 ("ResNet-20 (2x)", "resnet20", {"width": 2.0}),
                                 ("ResNet-20 (4x)", "resnet20", {"width": 4.0}))),
    Family("pni", "ResNet-18, PGD-7 adversarial training (Tables 4-5, Fig. 3)", "resnet18", {}, "pgd7", 4, 160,
           pni=True),
    Family("pni", "ResNet-18, cross-entropy (Table 4 no defense)", "resnet18", {}, "ce", 1, 160),
    Family("stochastic-feedforward", "NIN-BN, cross-entropy (Table 1 standard)", "nin_bn", {}, "ce", 1, 100),
    Family("stochastic-feedforward", "NIN-BN, FGSM mixed loss (Table 1 adversarial)", "nin_bn", {}, "fgsm_mixed",
           1, 100),
)


def random_images(n: int, seed: int = 0) -> ImageDataset:
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, 10, (n,), generator=generator)
    return ImageDataset(images, labels, classes=tuple(str(i) for i in range(10)), name="random")


def objective_of(family: Family) -> Any:
    if family.objective == "pgd7":
        return PGDAdversarialTraining.pni(eps=8 / 255, step_size=2 / 255, steps=7)
    if family.objective == "fgsm_mixed":
        return FGSMMixedLoss(eps=2 / 255)
    return CrossEntropy()


def build(family: Family) -> torch.nn.Module:
    model = create_model(family.arch, **family.model_kwargs)
    return inject_pni(model, locations="W") if family.pni and family.objective == "pgd7" else model


def seconds_per_image(family: Family, *, steps: int, batch_size: int, repeats: int) -> float:
    """Steady-state training seconds per image: the second of two epochs of ``steps`` steps each, the fastest of
    ``repeats`` runs (on this machine single short epochs of the same network varied up to 2x between runs; the
    fastest is the least disturbed)."""
    config = TrainConfig(epochs=2, batch_size=batch_size, optimizer="sgd", lr=0.01, momentum=0.9, device="cpu",
                         precision="auto", channels_last=True)
    data = random_images(batch_size * steps)
    times = []
    for _ in range(repeats):
        history = fit(build(family), data, config=config, objective=objective_of(family), quiet=True,
                      device="cpu").history
        times.append(history[1]["time_s"] / len(data))
    return min(times)


def flops_per_image(family: Family) -> float:
    """FLOPs of one training step per image: forward and backward of the model, times the passes the recipe makes
    (PGD-7: 7 attack gradients plus the clean and adversarial halves; FGSM mixed: one attack gradient plus two)."""
    model = build(family).train()
    x = torch.rand(2, 3, 32, 32, requires_grad=True)
    with FlopCounterMode(display=False) as counter:
        model(x).sum().backward()
    per_pass = counter.get_total_flops() / 2
    passes = {"pgd7": 7 + 2, "fgsm_mixed": 1 + 2, "ce": 1}[family.objective]
    return per_pass * passes


def hours(seconds: float) -> str:
    return f"{seconds / 3600:,.1f} h" if seconds < 72 * 3600 else f"{seconds / 86400:,.1f} days"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3, help="training steps per timed epoch")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per family (the fastest is kept)")
    parser.add_argument("--gpu-tflops", type=float, default=100.0,
                        help="ASSUMED sustained GPU throughput for the GPU column (not measured here)")
    parser.add_argument("--out", type=Path, default=Path("experiments/results/scale_estimates.md"))
    args = parser.parse_args()
    started = time.perf_counter()
    precision = resolve_precision("auto", "cpu")
    rows = []
    for family in FAMILIES:
        per_image = seconds_per_image(family, steps=args.steps, batch_size=args.batch_size, repeats=args.repeats)
        flops = flops_per_image(family)
        total_images = TRAIN_IMAGES * family.epochs * family.networks
        rows.append((family, per_image, flops, per_image * total_images,
                     flops * total_images / (args.gpu_tflops * 1e12)))
        print(f"{family.label}: {1 / per_image:.1f} img/s, {flops / 1e9:.2f} GFLOP/img, "
              f"{hours(per_image * total_images)} here", flush=True)
    flags = sorted(cpu_flags() & NATIVE_BF16_FLAGS)
    lines = [
        "# The full schedules that do not fit a 2-core CPU: time here, measured from short runs",
        "",
        f"Generated by `experiments/scale_estimates.py` on {dt.date.today().isoformat()} "
        f"({platform.processor() or platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch "
        f"threads, native bf16 flags: {', '.join(flags) or 'none'}; training precision `auto` = {precision}, "
        f"channels_last; torch {torch.__version__}) in {time.perf_counter() - started:.0f} s. Each row times the "
        f"second of two {args.steps}-step epochs (batch {args.batch_size}; the fastest of {args.repeats} runs) of "
        "`advlab.train.fit` with the recipe's "
        "objective on random CIFAR-sized images (the time does not depend on the pixels), and multiplies by "
        f"{TRAIN_IMAGES:,} images x epochs x networks. Augmentation, evaluation and the attacks of the evaluation are "
        "not counted, so the real runs take longer. The adversarially trained PNI rows are timed with PNI-W, the "
        "slower of their networks (a vanilla network draws no noise), so their totals lean high.",
        "",
        f"**GPU column: not measured.** No GPU was lent to this task; the column is the recipe's FLOP count divided "
        f"by an assumed sustained {args.gpu_tflops:g} TFLOP/s (a large current GPU in bf16 reaches several hundred "
        "at peak; small CIFAR networks use a fraction of it), so read it as an order of magnitude.",
        "",
        "| preset | networks | epochs | here, img/s | GFLOP per image-step | here, total | GPU at the assumed rate |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    totals: dict[str, list[float]] = {}
    for family, per_image, flops, here, gpu in rows:
        lines.append(f"| {family.preset}: {family.label} | {family.networks} | {family.epochs} | {1 / per_image:,.0f} "
                     f"| {flops / 1e9:.2f} | {hours(here)} | {hours(gpu)} |")
        totals.setdefault(family.preset, [0.0, 0.0])
        totals[family.preset][0] += here
        totals[family.preset][1] += gpu
    lines.append("")
    for preset, (here, gpu) in totals.items():
        lines.append(f"- **{preset}, full schedule**: {hours(here)} of training here, {hours(gpu)} on a GPU at the "
                     "assumed rate.")
    lines.append("")
    write_text(args.out, "\n".join(lines))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
