"""MNIST idx loader: the real files, and files that are truncated, mislabelled or missing."""

from __future__ import annotations

import gzip
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from advlab.data.mnist import MNIST_FILES, load_mnist
from advlab.errors import DataError, InputError


def write_idx(path: Path, array: np.ndarray, magic: int) -> None:
    header = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


def write_small_mnist(root: Path, n: int = 5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    write_idx(root / "mnist" / MNIST_FILES["test"]["images"][0], images, 0x803)
    write_idx(root / "mnist" / MNIST_FILES["test"]["labels"][0], labels, 0x801)
    return images, labels


def test_real_mnist_test_split(shared_data: Path) -> None:
    test = load_mnist(shared_data, "test")
    assert test.images.shape == (10_000, 1, 28, 28) and test.images.dtype == torch.uint8
    assert test.labels.dtype == torch.int64
    assert test.labels[:5].tolist() == [7, 2, 1, 0, 4]
    assert int(test.labels.min()) == 0 and int(test.labels.max()) == 9
    assert test.classes == tuple("0123456789") and test.name == "mnist/test"
    assert int(test.images.max()) == 255 and int(test.images.min()) == 0


def test_real_mnist_train_split(shared_data: Path) -> None:
    train = load_mnist(shared_data, "train")
    assert train.images.shape == (60_000, 1, 28, 28)
    assert train.labels[:5].tolist() == [5, 0, 4, 1, 9]
    assert torch.bincount(train.labels).tolist()[:2] == [5923, 6742]  # published class counts of digits 0 and 1


def test_small_file_round_trips(tmp_path: Path) -> None:
    images, labels = write_small_mnist(tmp_path)
    loaded = load_mnist(tmp_path, "test")
    assert torch.equal(loaded.images[:, 0], torch.from_numpy(images))
    assert loaded.labels.tolist() == labels.tolist()


def test_truncated_gzip_names_the_file(tmp_path: Path) -> None:
    write_small_mnist(tmp_path)
    path = tmp_path / "mnist" / MNIST_FILES["test"]["images"][0]
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte\.gz is truncated.*download it again"):
        load_mnist(tmp_path, "test")


def test_not_gzip_at_all(tmp_path: Path) -> None:
    write_small_mnist(tmp_path)
    (tmp_path / "mnist" / MNIST_FILES["test"]["labels"][0]).write_bytes(b"<html>404 Not Found</html>")
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz"):
        load_mnist(tmp_path, "test")


def test_swapped_files_fail_on_magic(tmp_path: Path) -> None:
    write_small_mnist(tmp_path)
    folder = tmp_path / "mnist"
    images, labels = (folder / MNIST_FILES["test"][k][0] for k in ("images", "labels"))
    images.rename(folder / "tmp")
    labels.rename(images)
    (folder / "tmp").rename(labels)
    with pytest.raises(DataError, match=r"magic number 0x00000801, expected 0x00000803"):
        load_mnist(tmp_path, "test")


def test_payload_shorter_than_header_announces(tmp_path: Path) -> None:
    write_small_mnist(tmp_path)
    path = tmp_path / "mnist" / MNIST_FILES["test"]["images"][0]
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[:-28]))  # a valid gzip stream whose content lost one image row
    with pytest.raises(DataError, match="announces 5 items"):
        load_mnist(tmp_path, "test")


def test_wrong_image_dims(tmp_path: Path) -> None:
    write_small_mnist(tmp_path)
    write_idx(tmp_path / "mnist" / MNIST_FILES["test"]["images"][0], np.zeros((5, 32, 32)), 0x803)
    with pytest.raises(DataError, match=r"shape \(32, 32\), expected \(28, 28\)"):
        load_mnist(tmp_path, "test")


def test_count_mismatch_between_images_and_labels(tmp_path: Path) -> None:
    write_small_mnist(tmp_path)
    write_idx(tmp_path / "mnist" / MNIST_FILES["test"]["labels"][0], np.zeros(4), 0x801)
    with pytest.raises(DataError, match="5 images but .* 4 labels"):
        load_mnist(tmp_path, "test")


def test_label_out_of_range(tmp_path: Path) -> None:
    write_small_mnist(tmp_path)
    write_idx(tmp_path / "mnist" / MNIST_FILES["test"]["labels"][0], np.full(5, 12), 0x801)
    with pytest.raises(DataError, match="label 12"):
        load_mnist(tmp_path, "test")


def test_missing_files_say_where_to_put_them(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        load_mnist(tmp_path, "test")
    message = str(info.value)
    assert "t10k-images-idx3-ubyte.gz" in message and "t10k-labels-idx1-ubyte.gz" in message
    assert str(tmp_path / "mnist") in message and "--data-dir" in message and "download=True" in message


def test_one_missing_file_is_named_alone(tmp_path: Path, shared_data: Path) -> None:
    folder = tmp_path / "mnist"
    folder.mkdir()
    shutil.copy(shared_data / "mnist" / "t10k-labels-idx1-ubyte.gz", folder)
    with pytest.raises(DataError, match="put t10k-images-idx3-ubyte.gz into") as info:
        load_mnist(tmp_path, "test")
    assert "labels" not in str(info.value).split("into")[0]


def test_unknown_split(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="'train' and 'test'"):
        load_mnist(tmp_path, "validation")
