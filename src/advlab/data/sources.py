"""The dataset registry: one name per source, one ``load_dataset`` for the library, the CLI and the presets.

    >>> test = load_dataset("mnist-sample", "test", n=500)         # bundled, no data folder needed
    >>> cifar = load_dataset("cifar10", "test", data_dir="../shared/data")

Names: ``mnist``, ``cifar10`` (official files under the data folder, optionally downloaded), ``mnist-sample``
(bundled in the package), ``imagenet-sample`` (``<data_dir>/imagenet-sample``: images + labels.csv, 1000-class
label space) and ``imagefolder`` (``data_dir`` itself is a ``root/<class>/*.JPEG`` tree).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from advlab.data.bundled import load_mnist_sample
from advlab.data.cifar10 import cifar10_expected_files, load_cifar10
from advlab.data.dataset import ImageDataset
from advlab.data.download import FileCheck, missing_files_message, resolve_data_dir, verify_files
from advlab.data.folders import labelled_folder_expected_files, load_image_folder, load_labelled_folder
from advlab.data.mnist import load_mnist, mnist_expected_files
from advlab.errors import DataError, InputError
from advlab.registry import Registry

__all__ = ["DATASETS", "DatasetInfo", "LoadRequest", "dataset_info", "load_dataset", "resolve_data_dir",
           "verify_data_dir"]

DATASETS: Registry[ImageDataset] = Registry("dataset")

IMAGENET_SAMPLE_FOLDER = "imagenet-sample"
IMAGENET_CLASSES = 1000


@dataclass(frozen=True)
class LoadRequest:
    """What every registered dataset factory receives (a factory uses the fields its source needs)."""

    split: str
    data_dir: str | os.PathLike[str] | None
    download: bool
    image_size: int


@dataclass(frozen=True)
class DatasetInfo:
    """Static facts about a registered dataset. ``image_shape`` (C, H, W) follows ``image_size`` for folders;
    ``num_classes`` is None where the folder decides it."""

    name: str
    image_shape: tuple[int, int, int]
    num_classes: int | None
    splits: tuple[str, ...]
    description: str


def _register(name: str, *, image_shape: tuple[int, int, int] | None, num_classes: int | None,
              splits: tuple[str, ...], description: str) -> Callable[[Callable[..., ImageDataset]],
                                                                       Callable[..., ImageDataset]]:
    return DATASETS.register(name, image_shape=image_shape, num_classes=num_classes, splits=splits,
                             description=description)


@_register("mnist", image_shape=(1, 28, 28), num_classes=10, splits=("train", "test"),
           description="MNIST handwritten digits, official idx files under <data_dir>/mnist")
def _mnist(request: LoadRequest) -> ImageDataset:
    return load_mnist(resolve_data_dir(request.data_dir), request.split, download=request.download)


@_register("cifar10", image_shape=(3, 32, 32), num_classes=10, splits=("train", "test"),
           description="CIFAR-10, official python batches under <data_dir>/cifar-10-batches-py")
def _cifar10(request: LoadRequest) -> ImageDataset:
    return load_cifar10(resolve_data_dir(request.data_dir), request.split, download=request.download)


@_register("mnist-sample", image_shape=(1, 28, 28), num_classes=10, splits=("train", "test"),
           description="10,000 train / 2,000 test MNIST images bundled with advlab (no data folder needed)")
def _mnist_sample(request: LoadRequest) -> ImageDataset:
    return load_mnist_sample(request.split)


@_register("imagenet-sample", image_shape=None, num_classes=IMAGENET_CLASSES, splits=("test", "val"),
           description="100 ILSVRC-2012 images (one per 10th class) under <data_dir>/imagenet-sample")
def _imagenet_sample(request: LoadRequest) -> ImageDataset:
    root = resolve_data_dir(request.data_dir) / IMAGENET_SAMPLE_FOLDER
    if not root.is_dir():
        raise DataError(missing_files_message("imagenet-sample", root, ["images/", "labels.csv"],
                                              downloadable=False)
                        + " (advlab does not download it: it comes from github.com/EliSchwartz/imagenet-sample-images)")
    return load_labelled_folder(root, request.image_size, num_classes=IMAGENET_CLASSES,
                                name=f"imagenet-sample/{request.split}")


@_register("imagefolder", image_shape=None, num_classes=None, splits=("train", "val", "test"),
           description="any root/<class>/*.JPEG tree; data_dir is the root (root/<split>/ is used if present)")
def _imagefolder(request: LoadRequest) -> ImageDataset:
    if request.data_dir is None:
        raise InputError("the imagefolder dataset needs data_dir (--data-dir): the folder holding one sub-folder "
                         "per class")
    root = Path(request.data_dir).expanduser()
    # A root with train/ val/ test/ sub-trees serves each split from its own tree; a single tree serves any split.
    split_root = root / request.split
    chosen = split_root if split_root.is_dir() else root
    return load_image_folder(chosen, request.image_size, name=f"imagefolder:{root.name}/{request.split}")


def dataset_info(name: str, image_size: int = 224) -> DatasetInfo:
    """Image shape (C, H, W), number of classes and splits of a registered dataset (no files are read)."""
    entry = DATASETS.entry(name)
    shape = entry.info["image_shape"] or (3, image_size, image_size)
    return DatasetInfo(name, shape, entry.info["num_classes"], entry.info["splits"], entry.info["description"])


def load_dataset(name: str, split: str = "test", *, data_dir: str | os.PathLike[str] | None = None,
                 n: int | None = None, seed: int = 0, download: bool = False,
                 image_size: int = 224) -> ImageDataset:
    """Load a registered dataset split as uint8 images (N, C, H, W) + int64 labels.

    Args:
        name: a name in ``DATASETS.names()`` (mnist, cifar10, mnist-sample, imagenet-sample, imagefolder).
        split: "train" or "test" ("test"/"val" for imagenet-sample).
        data_dir: data root (else ``$ADVLAB_DATA``, else ``~/.cache/advlab``); for imagefolder the tree's root.
        n: keep ``n`` examples drawn without replacement with ``seed`` (all when None).
        download: fetch missing MNIST / CIFAR-10 files from the official mirrors (md5-checked).
        image_size: crop side in pixels for image folders (resized to ``round(size / 0.875)`` first).
    """
    entry = DATASETS.entry(name)
    splits: tuple[str, ...] = entry.info["splits"]
    if split not in splits:
        raise InputError(f"dataset {name!r} has the splits {', '.join(splits)}; got {split!r}")
    if image_size <= 0:
        raise InputError(f"image_size must be a positive number of pixels, got {image_size}")
    dataset = entry.factory(request=LoadRequest(split, data_dir, download, image_size))
    if len(dataset) == 0:
        raise DataError(f"dataset {dataset.name} is empty; check the files under its data folder")
    return dataset.subset(n, seed)


def verify_data_dir(data_dir: str | os.PathLike[str] | None) -> list[FileCheck]:
    """Checksum every known dataset file under the data root (``advlab data verify``).

    MNIST and CIFAR-10 files are compared with their official md5s (absent ones are reported ``missing``); the
    ImageNet sample's images with the sha256 column of its labels.csv, when that folder is present.
    """
    root = resolve_data_dir(data_dir)
    expected = [*mnist_expected_files(root), *cifar10_expected_files(root),
                *labelled_folder_expected_files(root / IMAGENET_SAMPLE_FOLDER)]
    return verify_files(expected)
