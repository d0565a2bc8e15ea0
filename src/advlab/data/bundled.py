"""A small MNIST sample shipped inside the package, so demos and tests run with no data folder and no network.

``bundled/mnist_sample.npz`` holds 10,000 training and 2,000 test images drawn without replacement, with a fixed
seed, from the official MNIST files (see ``scripts/make_bundled_mnist.py``), stored uint8 in a compressed npz
(about 2 MB). Arrays: ``train_images`` (10000, 28, 28), ``train_labels`` (10000,), ``test_images`` (2000, 28, 28),
``test_labels`` (2000,), and ``train_index`` / ``test_index``: the rows of the official files they came from
(kept for provenance; the loader does not need them).
"""

from __future__ import annotations

from importlib import resources

import numpy as np
import torch

from advlab.data.dataset import ImageDataset
from advlab.data.mnist import MNIST_CLASSES
from advlab.errors import DataError, InputError

SAMPLE_FILE = "mnist_sample.npz"
SAMPLE_SIZES = {"train": 10_000, "test": 2_000}
SAMPLE_SEED = 0


def load_mnist_sample(split: str = "test") -> ImageDataset:
    """The bundled MNIST sample: "train" 10,000 or "test" 2,000 images, uint8 (N, 1, 28, 28) + int64 labels."""
    if split not in SAMPLE_SIZES:
        raise InputError(f"the bundled MNIST sample has the splits 'train' and 'test', not {split!r}")
    resource = resources.files("advlab.data").joinpath("bundled").joinpath(SAMPLE_FILE)
    try:
        with resource.open("rb") as handle, np.load(handle, allow_pickle=False) as archive:
            images = archive[f"{split}_images"]
            labels = archive[f"{split}_labels"]
    except (OSError, KeyError, ValueError) as exc:
        raise DataError(f"the bundled MNIST sample {resource} is missing or damaged ({exc}); reinstall advlab or "
                        "rebuild it with scripts/make_bundled_mnist.py") from exc
    if images.dtype != np.uint8 or images.shape != (SAMPLE_SIZES[split], 28, 28) or labels.shape != (len(images),):
        raise DataError(f"the bundled MNIST sample {resource} has {split} images {images.dtype} {images.shape}; "
                        "rebuild it with scripts/make_bundled_mnist.py")
    return ImageDataset(
        images=torch.from_numpy(images).unsqueeze(1),
        labels=torch.from_numpy(labels.astype(np.int64)),
        classes=MNIST_CLASSES,
        name=f"mnist-sample/{split}",
        info={"source": "bundled", "official_split": split, "seed": SAMPLE_SEED},
    )
