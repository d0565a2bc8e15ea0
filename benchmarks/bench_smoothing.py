"""Randomized smoothing: advlab's CERTIFY against ART's ``PyTorchRandomizedSmoothing.certify``, and the stochastic
feedforward network against smoothing's PREDICT, on one Gaussian-noise-trained MNIST model, in one process.

Same model, σ, n0, n, α and images for both libraries; each certifies image by image (ART's loop is per image
too). Reported: seconds per image of each and their ratio, how often the two certified classes agree (both may
abstain), and the mean |radius difference| (Monte Carlo noise: the draws differ). Then the moment network
(σ_N² = σ²) against PREDICT: agreement and cost ratio. Writes a JSON result with the machine's facts.

    .venv/bin/python benchmarks/bench_smoothing.py --data-dir ../shared/data --out benchmarks/results_smoothing.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from advlab.certify import certify_dataset
from advlab.certify.moments import moment_network_agreement
from advlab.data.sources import load_dataset
from advlab.io import write_json
from advlab.models import create_model
from advlab.objectives import CrossEntropy
from advlab.train import TrainConfig, fit


def noise_trained_model(data_dir: str, sigma: float, n_train: int, epochs: int) -> torch.nn.Module:
    """``mnist_small`` trained on images plus N(0, σ²) noise (Cohen et al.'s training), seeded."""
    from advlab.defenses.noise import GaussianNoiseAugmentation

    torch.manual_seed(0)
    model = create_model("mnist_small")
    train = load_dataset("mnist", "train", data_dir=data_dir, n=n_train, seed=0)
    objective = GaussianNoiseAugmentation(scale=sigma, clean_weight=0.0)
    config = TrainConfig(epochs=epochs, batch_size=128, optimizer="adam", lr=1e-3, seed=0)
    fit(model, train, config=config, objective=objective or CrossEntropy(), quiet=True, device="cpu")
    return model.eval()


def art_certify(model: torch.nn.Module, x: torch.Tensor, *, sigma: float, n0: int, n: int, alpha: float,
                batch_size: int) -> tuple[np.ndarray, np.ndarray, float]:
    from art.estimators.certification.randomized_smoothing import PyTorchRandomizedSmoothing

    smoothed = PyTorchRandomizedSmoothing(model=model, loss=torch.nn.CrossEntropyLoss(), input_shape=tuple(x.shape[1:]),
                                          nb_classes=10, clip_values=(0.0, 1.0), device_type="cpu", sample_size=n0,
                                          scale=sigma, alpha=alpha)
    begin = time.perf_counter()
    prediction, radius = smoothed.certify(x.numpy(), n=n, batch_size=batch_size)
    return prediction, radius, time.perf_counter() - begin


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--sigma", type=float, default=0.25)
    parser.add_argument("--images", type=int, default=50)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--n0", type=int, default=100)
    parser.add_argument("--alpha", type=float, default=0.001)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--train-images", type=int, default=20000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results_smoothing.json")
    args = parser.parse_args()
    torch.set_num_threads(1)

    model = noise_trained_model(args.data_dir, args.sigma, args.train_images, args.epochs)
    test = load_dataset("mnist", "test", data_dir=args.data_dir, n=args.images, seed=0)
    x, y = next(test.batches(args.images))

    begin = time.perf_counter()
    ours = certify_dataset(model, (x, y), sigma=args.sigma, n0=args.n0, n=args.n, alpha=args.alpha,
                           batch_size=args.batch_size)
    ours_seconds = time.perf_counter() - begin
    begin = time.perf_counter()
    fast = certify_dataset(model, (x, y), sigma=args.sigma, n0=args.n0, n=args.n, alpha=args.alpha,
                           batch_size=args.batch_size, precision="bf16", channels_last=True)
    fast_seconds = time.perf_counter() - begin
    art_prediction, art_radius, art_seconds = art_certify(model, x, sigma=args.sigma, n0=args.n0, n=args.n,
                                                          alpha=args.alpha, batch_size=args.batch_size)
    our_prediction = np.array([r["prediction"] for r in ours.records])
    our_radius = np.array([r["radius"] for r in ours.records])
    labels = y.numpy()
    agreement = float((our_prediction == art_prediction).mean())
    radius_gap = float(np.abs(our_radius - art_radius).mean())
    moments = moment_network_agreement(model, (x, y), sigma=args.sigma, n=args.n, alpha=args.alpha,
                                       batch_size=args.batch_size)

    rows = {
        "advlab": {"seconds_per_image": ours_seconds / len(y), "certified_accuracy_at_0": ours.certified_accuracy(0),
                   "certified_accuracy_at_0.5": ours.certified_accuracy(0.5), "abstain_rate": ours.abstain_rate},
        "advlab bf16 + channels_last": {
            "seconds_per_image": fast_seconds / len(y), "certified_accuracy_at_0": fast.certified_accuracy(0),
            "certified_accuracy_at_0.5": fast.certified_accuracy(0.5), "abstain_rate": fast.abstain_rate},
        "art": {"seconds_per_image": art_seconds / len(y),
                "certified_accuracy_at_0": float(((art_prediction == labels) & (art_radius >= 0)).mean()),
                "certified_accuracy_at_0.5": float(((art_prediction == labels) & (art_radius >= 0.5)).mean()),
                "abstain_rate": float((art_prediction == -1).mean())},
    }
    console = Console()
    table = Table(title=f"CERTIFY on {len(y)} MNIST test images, σ = {args.sigma}, n0 = {args.n0}, n = {args.n}, "
                        f"α = {args.alpha} (one thread)")
    for column in ("library", "s / image", "certified acc. r=0", "r=0.5", "abstain"):
        table.add_column(column, justify="right")
    for name, row in rows.items():
        table.add_row(name, f"{row['seconds_per_image']:.3f}", f"{row['certified_accuracy_at_0']:.3f}",
                      f"{row['certified_accuracy_at_0.5']:.3f}", f"{row['abstain_rate']:.3f}")
    console.print(table)
    speedup = rows["art"]["seconds_per_image"] / rows["advlab"]["seconds_per_image"]
    fast_speedup = rows["art"]["seconds_per_image"] / rows["advlab bf16 + channels_last"]["seconds_per_image"]
    fast_agreement = float((np.array([r["prediction"] for r in fast.records]) == our_prediction).mean())
    console.print(f"bf16 + channels_last: {fast_speedup:.2f}x faster than ART per image; same class as advlab fp32 on "
                  f"{fast_agreement:.1%} of the images")
    console.print(f"advlab is {speedup:.2f}x faster per image; same certified class on {agreement:.1%} of the images; "
                  f"mean |radius difference| {radius_gap:.4f} (Monte Carlo noise)")
    console.print(f"moment network (σ_N² = σ²) vs PREDICT: agree on {moments.agreement:.1%} of the "
                  f"{moments.images - moments.abstained} decided images; accuracy {moments.moment_accuracy:.3f} vs "
                  f"{moments.smoothed_accuracy:.3f}; PREDICT costs {moments.cost_ratio:.0f}x the moment network")
    machine = {"platform": platform.platform(), "processor": platform.processor(), "cpu_count": os.cpu_count(),
               "torch": torch.__version__, "threads": torch.get_num_threads(),
               "load_average_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}
    write_json(Path(args.out), {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                                "settings": vars(args), "machine": machine, "libraries": rows,
                                "speedup_vs_art": speedup, "bf16_speedup_vs_art": fast_speedup,
                                "bf16_class_agreement_with_fp32": fast_agreement,
                                "class_agreement": agreement, "mean_radius_gap": radius_gap,
                                "moment_network": moments.to_dict()})


if __name__ == "__main__":
    main()
