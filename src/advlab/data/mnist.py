"""MNIST from the four official idx ``.gz`` files (LeCun, Cortes & Burges, 1998).

The idx format: a big-endian header (magic number ``0x0000080D``, where ``08`` = unsigned byte and ``D`` = number of
dimensions, then one uint32 per dimension) followed by the raw uint8 values. Images are (N, 28, 28), labels (N,).
Files live in ``<data_dir>/mnist/``; :func:`load_mnist` returns images (N, 1, 28, 28) uint8 and labels int64.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np
import torch

from advlab.data.dataset import ImageDataset
from advlab.data.download import ExpectedFile, Opener, ensure_files, missing_files_message, open_url
from advlab.errors import DataError, InputError

MNIST_FOLDER = "mnist"
MNIST_CLASSES = tuple(str(digit) for digit in range(10))
IMAGE_SIDE = 28

# Official md5s, as published with the files (and in shared/data/README.md).
MNIST_FILES: dict[str, dict[str, tuple[str, str]]] = {
    "train": {
        "images": ("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
        "labels": ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
    },
    "test": {
        "images": ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
        "labels": ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
    },
}

# yann.lecun.com often refuses automated downloads, so the PyTorch-hosted S3 copy (same bytes, same md5) comes first.
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)

_IMAGES_MAGIC = 0x00000803  # unsigned byte, 3 dimensions
_LABELS_MAGIC = 0x00000801  # unsigned byte, 1 dimension


def mnist_expected_files(data_dir: Path, splits: tuple[str, ...] = ("train", "test")) -> list[ExpectedFile]:
    """The official files of the given splits under ``data_dir/mnist`` with their md5s."""
    return [ExpectedFile(data_dir / MNIST_FOLDER / name, md5)
            for split in splits for name, md5 in MNIST_FILES[split].values()]


def _check_split(split: str) -> None:
    if split not in MNIST_FILES:
        raise InputError(f"MNIST has the splits 'train' and 'test', not {split!r}")


def _decompress(path: Path) -> bytes:
    try:
        return gzip.decompress(path.read_bytes())
    except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError; a cut-off stream is an EOFError
        raise DataError(f"{path} is truncated or not a valid gzip file ({exc}). Delete it and download it again "
                        "(--download, or the official file); `advlab data verify` checks every file") from exc


def read_idx(path: Path, magic: int, item_shape: tuple[int, ...]) -> np.ndarray:
    """Read one gzipped idx file into a uint8 array of shape (N, *item_shape), validating its header.

    Raises DataError naming the file when the gzip stream is corrupt, the magic number or dimensions are not
    MNIST's, or the payload length differs from what the header announces.
    """
    raw = _decompress(path)
    ndim = 1 + len(item_shape)
    header_size = 4 * (1 + ndim)
    found_magic = struct.unpack(">I", raw[:4])[0] if len(raw) >= 4 else None
    if found_magic is not None and found_magic != magic:
        raise DataError(f"{path} has magic number 0x{found_magic:08X}, expected 0x{magic:08X}: it is not the "
                        "MNIST file its name says (images and labels swapped, or another format). Replace it with "
                        "the official file")
    if len(raw) < header_size:
        raise DataError(f"{path} is too short to be an idx file ({len(raw)} bytes after decompression); "
                        "replace it with the official file")
    dims = struct.unpack(f">{ndim}I", raw[4:header_size])
    if tuple(dims[1:]) != item_shape:
        raise DataError(f"{path} holds items of shape {tuple(dims[1:])}, expected {item_shape}; "
                        "replace it with the official MNIST file")
    count = dims[0]
    expected_bytes = count * int(np.prod(item_shape, dtype=np.int64))
    payload = len(raw) - header_size
    if payload != expected_bytes:
        raise DataError(f"{path} announces {count} items ({expected_bytes} bytes) but holds {payload} bytes: the "
                        "file is truncated or padded. Delete it and download it again")
    if count == 0:
        raise DataError(f"{path} holds no items; replace it with the official MNIST file")
    # frombuffer is zero-copy; the reshape keeps it a view, and torch gets a writable copy later.
    return np.frombuffer(raw, dtype=np.uint8, offset=header_size).reshape((count, *item_shape))


def load_mnist(data_dir: Path, split: str = "test", *, download: bool = False,
               mirrors: tuple[str, ...] = MNIST_MIRRORS, opener: Opener = open_url) -> ImageDataset:
    """MNIST ``split`` ("train": 60,000 images, "test": 10,000) as uint8 (N, 1, 28, 28) + int64 labels.

    ``data_dir`` is the data root (the files are in ``data_dir/mnist``). With ``download=True`` missing or
    damaged files are fetched from ``mirrors`` (md5-checked); otherwise missing files raise a DataError that
    says where to put them.
    """
    _check_split(split)
    folder = data_dir / MNIST_FOLDER
    expected = mnist_expected_files(data_dir, (split,))
    if download:
        ensure_files(expected, lambda item: [base + item.path.name for base in mirrors], opener=opener)
    missing = [item.path.name for item in expected if not item.path.is_file()]
    if missing:
        raise DataError(missing_files_message("MNIST", folder, missing))
    images_name, _ = MNIST_FILES[split]["images"]
    labels_name, _ = MNIST_FILES[split]["labels"]
    images = read_idx(folder / images_name, _IMAGES_MAGIC, (IMAGE_SIDE, IMAGE_SIDE))
    labels = read_idx(folder / labels_name, _LABELS_MAGIC, ())
    if len(images) != len(labels):
        raise DataError(f"{folder}: {images_name} has {len(images)} images but {labels_name} has {len(labels)} "
                        "labels; the two files come from different sources. Replace both with the official files")
    if labels.max() >= len(MNIST_CLASSES):
        raise DataError(f"{folder / labels_name} holds label {int(labels.max())}, MNIST labels are 0..9; replace "
                        "it with the official file")
    return ImageDataset(
        images=torch.from_numpy(images.copy()).unsqueeze(1),
        labels=torch.from_numpy(labels.astype(np.int64)),
        classes=MNIST_CLASSES,
        name=f"mnist/{split}",
        info={"source": str(folder)},
    )
