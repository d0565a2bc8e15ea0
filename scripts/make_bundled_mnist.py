"""Build ``src/advlab/data/bundled/mnist_sample.npz``: a seeded MNIST sample shipped inside the package.

Usage (from the repository root):  python scripts/make_bundled_mnist.py --data-dir ../shared/data

It checks the official md5s first, draws 10,000 training and 2,000 test images without replacement with a
fixed seed (kept in the official order), and writes a compressed npz atomically. Rerunning it with the same
files and seed gives the same arrays.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np

from advlab.data.bundled import SAMPLE_FILE, SAMPLE_SEED, SAMPLE_SIZES
from advlab.data.download import resolve_data_dir, verify_files
from advlab.data.mnist import load_mnist, mnist_expected_files
from advlab.io import write_bytes

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "src" / "advlab" / "data" / "bundled" / SAMPLE_FILE


def build_sample(data_dir: Path, seed: int = SAMPLE_SEED) -> dict[str, np.ndarray]:
    """The arrays of the sample: ``{split}_images`` (N, 28, 28) uint8, ``{split}_labels`` uint8, ``{split}_index``."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, size in SAMPLE_SIZES.items():
        full = load_mnist(data_dir, split)
        index = np.sort(rng.choice(len(full), size=size, replace=False))
        arrays[f"{split}_images"] = full.images[index, 0].numpy()
        arrays[f"{split}_labels"] = full.labels[index].numpy().astype(np.uint8)
        arrays[f"{split}_index"] = index.astype(np.int32)
    return arrays


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None, help="data root holding mnist/*.gz (else $ADVLAB_DATA/cache)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--seed", type=int, default=SAMPLE_SEED)
    args = parser.parse_args(argv)

    data_dir = resolve_data_dir(args.data_dir)
    bad = [check for check in verify_files(mnist_expected_files(data_dir)) if not check.ok]
    if bad:
        print("official MNIST files missing or modified: " + ", ".join(str(c.path) for c in bad), file=sys.stderr)
        return 1
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **build_sample(data_dir, args.seed))
    write_bytes(args.out, buffer.getvalue())
    args.out.chmod(0o644)  # atomic_write's temporary file is private (0600); a package file must be readable
    print(f"wrote {args.out} ({len(buffer.getvalue()) / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
