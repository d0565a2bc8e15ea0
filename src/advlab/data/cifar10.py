"""CIFAR-10 from the official "python version" batches (Krizhevsky, 2009), loaded without running pickle code.

The batches are Python 2 pickles of dicts: ``b"data"`` a uint8 numpy array (10000, 3072) whose rows hold the
1024 red, then 1024 green, then 1024 blue values of a 32x32 image in row-major order (so a plain reshape gives
NCHW), and ``b"labels"`` a list of ints 0..9. ``batches.meta`` holds ``b"label_names"``.

A pickle can call any importable function while it loads (``os.system`` included), and a dataset file is input
from the internet. :class:`_BatchUnpickler` therefore resolves only the three numpy names an array needs; any
other global makes loading fail *before* anything is called.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from advlab.data.dataset import ImageDataset
from advlab.data.download import (
    ExpectedFile,
    Opener,
    download_file,
    extract_tar_members,
    file_digest,
    missing_files_message,
    open_url,
    verify_files,
)
from advlab.errors import DataError, InputError

try:  # numpy >= 2 keeps the implementation in numpy._core; numpy.core is a deprecated alias there
    from numpy._core.multiarray import _reconstruct
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import _reconstruct  # type: ignore[no-redef]  # same name, numpy 1.x location

CIFAR10_FOLDER = "cifar-10-batches-py"
IMAGE_SHAPE = (3, 32, 32)
CIFAR10_ARCHIVE_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_ARCHIVE_MD5 = "c58f30108f718f92721af3b95e74349a"

# Official md5s of the extracted files (shared/data/README.md).
CIFAR10_FILES: dict[str, str] = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
    "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
}
CIFAR10_SPLITS: dict[str, tuple[str, ...]] = {
    "train": tuple(f"data_batch_{i}" for i in range(1, 6)),
    "test": ("test_batch",),
}
META_FILE = "batches.meta"

# Exactly what unpickling a numpy array needs (the official files name numpy.core.multiarray, pickles written by
# numpy 2 name numpy._core.multiarray). np.ndarray and np.dtype only build arrays and dtypes; _reconstruct only
# builds an empty ndarray of the given subtype, and the subtype itself must come through this table.
_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class _RefusedGlobal(pickle.UnpicklingError):
    """The pickle names a global outside the allow-list (a sign of a crafted or foreign file, not truncation)."""


class _BatchUnpickler(pickle.Unpickler):
    """An unpickler whose globals are limited to :data:`_ALLOWED_GLOBALS`; everything else is refused."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise _RefusedGlobal(f"it references {module}.{name}, which a CIFAR-10 batch never does "
                                         "(refused without calling it)") from None


def load_batch_file(path: Path) -> dict[bytes, Any]:
    """Unpickle one CIFAR-10 batch with :class:`_BatchUnpickler`; DataError names the file on any failure."""
    try:
        with open(path, "rb") as handle:
            # encoding="bytes": the files are Python 2 pickles whose str keys/values become bytes (b"data").
            content = _BatchUnpickler(handle, encoding="bytes").load()
    except _RefusedGlobal as exc:
        raise DataError(f"{path} is not a CIFAR-10 batch that can be loaded safely: {exc}. Delete it and use the "
                        "official file (`advlab data verify` checks it)") from exc
    # What a truncated or garbled pickle raises while being parsed:
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            OverflowError, MemoryError, OSError) as exc:
        raise DataError(f"{path} is truncated or corrupt ({type(exc).__name__}: {exc}). Delete it and download "
                        "it again (--download, or the official archive)") from exc
    if not isinstance(content, dict):
        raise DataError(f"{path} holds a {type(content).__name__}, not a CIFAR-10 batch dict; replace it with "
                        "the official file")
    return content


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    content = load_batch_file(path)
    data, labels = content.get(b"data"), content.get(b"labels")
    pixels = int(np.prod(IMAGE_SHAPE))
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != pixels:
        found = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(f"{path}: b'data' must be a uint8 array (N, {pixels}), found {found}; replace it with the "
                        "official file")
    if not isinstance(labels, list) or len(labels) != len(data) or not all(isinstance(v, int) for v in labels):
        raise DataError(f"{path}: b'labels' must be a list of {len(data)} ints; replace it with the official file")
    label_array = np.asarray(labels, dtype=np.int64)
    if len(label_array) and (label_array.min() < 0 or label_array.max() > 9):
        raise DataError(f"{path}: labels outside 0..9; replace it with the official file")
    return data.reshape((len(data), *IMAGE_SHAPE)), label_array


def read_class_names(path: Path) -> tuple[str, ...]:
    """The 10 class names from ``batches.meta`` (airplane, automobile, ..., truck)."""
    names = load_batch_file(path).get(b"label_names")
    if not isinstance(names, list) or len(names) != 10 or not all(isinstance(n, bytes) for n in names):
        raise DataError(f"{path}: b'label_names' must list 10 names; replace it with the official file")
    return tuple(n.decode("ascii") for n in names)


def cifar10_expected_files(data_dir: Path) -> list[ExpectedFile]:
    """The seven official files under ``data_dir/cifar-10-batches-py`` with their md5s."""
    return [ExpectedFile(data_dir / CIFAR10_FOLDER / name, md5) for name, md5 in CIFAR10_FILES.items()]


def download_cifar10(data_dir: Path, *, url: str = CIFAR10_ARCHIVE_URL, archive_md5: str = CIFAR10_ARCHIVE_MD5,
                     members: dict[str, str] | None = None, opener: Opener = open_url) -> None:
    """Fetch the official archive (md5-checked), extract the batches (each md5-checked), delete the archive.

    ``members`` maps names inside the archive to md5s (default: the seven official files); tests pass a
    small archive of their own.
    """
    archive = data_dir / "cifar-10-python.tar.gz"
    if not (archive.is_file() and file_digest(archive, "md5") == archive_md5):
        download_file([url], archive, archive_md5, opener=opener)
    wanted = members if members is not None else {f"{CIFAR10_FOLDER}/{n}": m for n, m in CIFAR10_FILES.items()}
    extract_tar_members(archive, data_dir, wanted)
    archive.unlink()  # 170 MB that the extracted, verified batches make redundant


def load_cifar10(data_dir: Path, split: str = "test", *, download: bool = False,
                 opener: Opener = open_url) -> ImageDataset:
    """CIFAR-10 ``split`` ("train": 50,000 images, "test": 10,000) as uint8 (N, 3, 32, 32) + int64 labels.

    ``data_dir`` is the data root (the batches are in ``data_dir/cifar-10-batches-py``). With ``download=True``
    missing or damaged files are replaced from the official archive; otherwise missing files raise a DataError
    that says where to put them.
    """
    if split not in CIFAR10_SPLITS:
        raise InputError(f"CIFAR-10 has the splits 'train' and 'test', not {split!r}")
    folder = data_dir / CIFAR10_FOLDER
    if download:
        needed = [item for item in cifar10_expected_files(data_dir)
                  if item.path.name in (*CIFAR10_SPLITS[split], META_FILE)]
        # The files only come as one archive, so any missing or damaged file means fetching the archive.
        if not all(check.ok for check in verify_files(needed)):
            download_cifar10(data_dir, opener=opener)
    names = (*CIFAR10_SPLITS[split], META_FILE)
    missing = [name for name in names if not (folder / name).is_file()]
    if missing:
        raise DataError(missing_files_message("CIFAR-10", folder, missing))
    classes = read_class_names(folder / META_FILE)
    batches = [_read_batch(folder / name) for name in CIFAR10_SPLITS[split]]
    images = batches[0][0] if len(batches) == 1 else np.concatenate([b[0] for b in batches])
    labels = batches[0][1] if len(batches) == 1 else np.concatenate([b[1] for b in batches])
    return ImageDataset(
        images=torch.from_numpy(np.ascontiguousarray(images)),
        labels=torch.from_numpy(labels),
        classes=classes,
        name=f"cifar10/{split}",
        info={"source": str(folder)},
    )
