"""Training-step throughput of advlab's ``fit`` options on this machine: layout, precision and ``torch.compile``.

For each registry model (mnist_cnn, cifar_cnn, resnet20) and each option, times ``--steps`` optimizer steps of
clean cross-entropy training (Adam, batch 128, random images of the model's input shape: throughput does not
depend on pixel values) after ``--warmup`` untimed steps, through ``advlab.train.fit`` itself, and prints
images per second and the ratio to the default layout. Writes a JSON result with the machine's facts.

    .venv/bin/python benchmarks/bench_training.py --out benchmarks/results_training.json

``precision="bf16"`` is bf16 autocast of the forward and backward passes (fast where the CPU has AMX or
AVX512-BF16; the CPU's flags are printed). ``compile`` rows are the steady state after compilation, with the
compilation's own seconds in their last column. ``--amp`` only acts on CUDA and is not measured here.

``--adversarial`` times PGD-7 adversarial training instead, as the pni preset trains (Eq. 11 of Rakin et al.:
clean + PGD-7 from x at ε 8/255, step 2/255, 0.5 each), bf16 + channels_last, with the inner attack in fp32 (the
default) or bf16 (``attack_precision``), on the plain network and with PNI-W (layer-wise weight noise):

    .venv/bin/python benchmarks/bench_training.py --adversarial --models resnet20 \
        --out benchmarks/results_training_at.json

Each adversarial row's ratio is against the same network with the attack in fp32.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

# A cold compilation in every compiled run, as a fresh machine pays it: no FX-graph or kernel cache (read at import).
os.environ.setdefault("TORCHINDUCTOR_FORCE_DISABLE_CACHES", "1")

import torch
from rich.console import Console
from rich.table import Table

from advlab.data.dataset import ImageDataset
from advlab.defenses.adversarial_training import PGDAdversarialTraining
from advlab.defenses.pni import inject_pni
from advlab.io import write_json
from advlab.models import create_model
from advlab.models.registry import MODELS
from advlab.train import TrainConfig, fit

MODEL_NAMES = ("mnist_cnn", "cifar_cnn", "resnet20")
OPTIONS = {"default": {}, "channels_last": {"channels_last": True}, "bf16": {"precision": "bf16"},
           "bf16 + channels_last": {"precision": "bf16", "channels_last": True},
           "bf16 + channels_last + compile": {"precision": "bf16", "channels_last": True, "compile": True}}

# --adversarial: the objective's inner-attack precision and, for "pni", where PNI goes (fit's options as above).
ADVERSARIAL_OPTIONS = {"PGD-7 AT, attack fp32": {"attack_precision": "fp32"},
                       "PGD-7 AT, attack bf16": {"attack_precision": "bf16"},
                       "PNI-W + PGD-7 AT, attack fp32": {"attack_precision": "fp32", "pni": "W"},
                       "PNI-W + PGD-7 AT, attack bf16": {"attack_precision": "bf16", "pni": "W"}}
FAST_PATH = {"precision": "bf16", "channels_last": True}


def random_images(shape: tuple[int, ...], n: int, seed: int = 0) -> ImageDataset:
    """``n`` uint8 images of ``shape`` with random labels in 10 classes."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, *shape), dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, 10, (n,), generator=generator)
    return ImageDataset(images, labels, classes=tuple(str(i) for i in range(10)), name="random")


def images_per_second(model_name: str, option: dict, *, steps: int, warmup: int, batch_size: int,
                     repeats: int) -> tuple[list[float], float | None]:
    """Images per second of ``repeats`` timed ``fit`` runs of ``steps`` steps each (one warm-up run first), and
    None; for a compiled option see :func:`compiled_images_per_second`."""
    if option.get("compile"):
        return compiled_images_per_second(model_name, option, steps=steps, batch_size=batch_size, repeats=repeats)
    shape = tuple(MODELS.entry(model_name).info["input_shape"])
    rates = []
    for run in range(repeats + 1):
        n = batch_size * (warmup if run == 0 else steps)
        data = random_images(shape, n, seed=run)
        model, objective, config_options = training_setup(model_name, option)
        config = TrainConfig(epochs=1, batch_size=batch_size, optimizer="adam", lr=1e-3, device="cpu",
                             **config_options)
        started = time.perf_counter()
        fit(model, data, config=config, objective=objective, quiet=True, device="cpu")
        elapsed = time.perf_counter() - started
        if run:
            rates.append(n / elapsed)
    return rates, None


def training_setup(model_name: str, option: dict) -> tuple[torch.nn.Module, Any, dict]:
    """The model, the objective (None: cross-entropy) and fit's options for one row of OPTIONS or
    ADVERSARIAL_OPTIONS."""
    model = create_model(model_name)
    if "attack_precision" not in option:
        return model, None, option
    if option.get("pni"):
        model = inject_pni(model, locations=option["pni"])
    objective = PGDAdversarialTraining.pni(eps=8 / 255, step_size=2 / 255, steps=7,
                                           attack_precision=option["attack_precision"])
    return model, objective, FAST_PATH


def compiled_images_per_second(model_name: str, option: dict, *, steps: int, batch_size: int,
                               repeats: int) -> tuple[list[float], float]:
    """Steady-state images per second under ``torch.compile`` and the seconds the compilation cost.

    Each run is one ``fit`` of two epochs of ``steps`` steps on a fresh model: the second epoch is the steady
    state, the first minus the second is what compiling cost (a fresh model compiles again; the median over
    ``repeats`` runs is reported)."""
    shape = tuple(MODELS.entry(model_name).info["input_shape"])
    rates, overheads = [], []
    for run in range(repeats):
        data = random_images(shape, batch_size * steps, seed=run + 1)
        config = TrainConfig(epochs=2, batch_size=batch_size, optimizer="adam", lr=1e-3, device="cpu", **option)
        history = fit(create_model(model_name), data, config=config, quiet=True, device="cpu").history
        rates.append(len(data) / history[1]["time_s"])
        overheads.append(history[0]["time_s"] - history[1]["time_s"])
    return rates, statistics.median(overheads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=list(MODEL_NAMES))
    parser.add_argument("--steps", type=int, default=20, help="timed optimizer steps per run")
    parser.add_argument("--warmup", type=int, default=3, help="steps of the untimed warm-up run")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help="JSON file to write")
    parser.add_argument("--adversarial", action="store_true",
                        help="time PGD-7 adversarial training with the inner attack in fp32 and bf16 instead")
    args = parser.parse_args()
    options = ADVERSARIAL_OPTIONS if args.adversarial else OPTIONS

    console = Console()
    from advlab.precision import NATIVE_BF16_FLAGS, cpu_flags, cpu_model

    console.print(f"CPU: {cpu_model()}; native bf16 flags: "
                  f"{sorted(cpu_flags() & NATIVE_BF16_FLAGS) or 'none'}")
    table = Table(title=f"fit() training throughput, batch {args.batch_size}, {torch.get_num_threads()} threads")
    ratio = "ratio vs attack fp32" if args.adversarial else "ratio vs default"
    for column in ("model", "option", "images/s (median)", ratio, "compile s"):
        table.add_column(column, justify="right")
    rows = []
    for model_name in args.models:
        baseline = None
        for option_name, option in options.items():
            rates, compile_s = images_per_second(model_name, option, steps=args.steps, warmup=args.warmup,
                                                 batch_size=args.batch_size, repeats=args.repeats)
            median = statistics.median(rates)
            if baseline is None or option.get("attack_precision") == "fp32":
                baseline = median
            rows.append({"model": model_name, "option": option_name, "images_per_s": rates,
                         "median_images_per_s": median, "ratio_vs_default": median / baseline,
                         "compile_s": compile_s})
            table.add_row(model_name, option_name, f"{median:.1f}", f"{median / baseline:.2f}x",
                          "—" if compile_s is None else f"{compile_s:.1f}")
    console.print(table)
    if args.out is not None:
        environment = {
            "date_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "cpu": cpu_model(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "python": platform.python_version(), "load_average": list(os.getloadavg()),
            "native_bf16_flags": sorted(cpu_flags() & NATIVE_BF16_FLAGS),
        }
        write_json(args.out, {"environment": environment, "settings": vars(args) | {"out": str(args.out)},
                              "rows": rows})
        console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
