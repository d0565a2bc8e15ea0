"""CIFAR-10 loader: the real batches, and pickles that are truncated, malformed or malicious (no code may run)."""

from __future__ import annotations

import os
import pickle
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from advlab.data.cifar10 import CIFAR10_FOLDER, load_batch_file, load_cifar10
from advlab.errors import DataError, InputError

CLASS_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def write_small_cifar(root: Path, n: int = 4) -> tuple[np.ndarray, list[int]]:
    """A tiny test_batch + batches.meta in the official layout: bytes keys, arrays via _reconstruct.

    Protocol 3 stores bytes natively, as the official Python 2 pickles do (protocol 2 from Python 3 would route
    bytes through _codecs.encode, which the loader rightly refuses).
    """
    folder = root / CIFAR10_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    data = np.random.default_rng(0).integers(0, 256, size=(n, 3072), dtype=np.uint8)
    labels = [i % 10 for i in range(n)]
    batch = {b"batch_label": b"testing batch 1 of 1", b"labels": labels, b"data": data,
             b"filenames": [f"{i}.png".encode() for i in range(n)]}
    (folder / "test_batch").write_bytes(pickle.dumps(batch, protocol=3))
    meta = {b"num_cases_per_batch": n, b"label_names": [c.encode() for c in CLASS_NAMES], b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=3))
    return data, labels


class _RunsShell:
    """Pickles to ``os.system(command)``: what a hostile "dataset file" would contain."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class _OpensFile:
    """Pickles to ``open(path, "w")``: creates a file, without needing a shell."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_real_cifar10_test_split_loads_fast(shared_data: Path) -> None:
    start = time.perf_counter()
    test = load_cifar10(shared_data, "test")
    seconds = time.perf_counter() - start
    assert test.images.shape == (10_000, 3, 32, 32) and test.images.dtype == torch.uint8
    assert test.labels[:5].tolist() == [3, 8, 8, 0, 6]
    assert torch.bincount(test.labels).tolist() == [1000] * 10
    assert list(test.classes) == CLASS_NAMES
    assert seconds < 5.0, f"loading the CIFAR-10 test batch took {seconds:.2f} s"  # ~0.2 s measured; loose for CI


@pytest.mark.slow
def test_real_cifar10_train_split(shared_data: Path) -> None:
    train = load_cifar10(shared_data, "train")
    assert train.images.shape == (50_000, 3, 32, 32)
    assert train.labels[:5].tolist() == [6, 9, 9, 4, 1]
    assert torch.bincount(train.labels).tolist() == [5000] * 10


def test_small_batch_round_trips_channel_layout(tmp_path: Path) -> None:
    data, labels = write_small_cifar(tmp_path)
    loaded = load_cifar10(tmp_path, "test")
    assert loaded.labels.tolist() == labels
    # rows are 1024 R, then 1024 G, then 1024 B, each row-major: pixel (c, y, x) = data[c*1024 + y*32 + x]
    assert int(loaded.images[1, 2, 3, 4]) == int(data[1, 2 * 1024 + 3 * 32 + 4])
    assert torch.equal(loaded.images.reshape(len(data), -1), torch.from_numpy(data))


@pytest.mark.parametrize("make_payload", [
    lambda marker: _RunsShell(f"touch {marker}"),
    lambda marker: _OpensFile(marker),
], ids=["os.system", "builtins.open"])
def test_malicious_pickle_is_refused_and_never_runs(tmp_path: Path, make_payload) -> None:
    write_small_cifar(tmp_path)
    # The payload is live: an ordinary unpickler runs it (so the assertion below can fail).
    witness = tmp_path / "witness"
    pickle.loads(pickle.dumps({b"data": make_payload(witness)}, protocol=3))
    assert witness.exists()

    marker = tmp_path / "marker"
    evil = {b"data": np.zeros((1, 3072), np.uint8), b"labels": [0], b"x": make_payload(marker)}
    (tmp_path / CIFAR10_FOLDER / "test_batch").write_bytes(pickle.dumps(evil, protocol=3))
    with pytest.raises(DataError, match=r"test_batch is not a CIFAR-10 batch that can be loaded safely.*refused"):
        load_cifar10(tmp_path, "test")
    assert not marker.exists()


def test_truncated_pickle(tmp_path: Path) -> None:
    write_small_cifar(tmp_path)
    path = tmp_path / CIFAR10_FOLDER / "test_batch"
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(DataError, match=r"test_batch is truncated or corrupt.*download"):
        load_cifar10(tmp_path, "test")


def test_truncated_real_batch(tmp_path: Path, shared_data: Path) -> None:
    folder = tmp_path / CIFAR10_FOLDER
    folder.mkdir()
    (folder / "batches.meta").write_bytes((shared_data / CIFAR10_FOLDER / "batches.meta").read_bytes())
    with open(shared_data / CIFAR10_FOLDER / "test_batch", "rb") as handle:
        (folder / "test_batch").write_bytes(handle.read(1_000_000))
    with pytest.raises(DataError, match="truncated or corrupt"):
        load_cifar10(tmp_path, "test")


def test_batch_with_wrong_structure(tmp_path: Path) -> None:
    write_small_cifar(tmp_path)
    path = tmp_path / CIFAR10_FOLDER / "test_batch"
    path.write_bytes(pickle.dumps({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, protocol=3))
    with pytest.raises(DataError, match=r"uint8 array \(N, 3072\)"):
        load_cifar10(tmp_path, "test")
    path.write_bytes(pickle.dumps([1, 2, 3], protocol=3))
    with pytest.raises(DataError, match="holds a list"):
        load_cifar10(tmp_path, "test")


def test_unpickler_admits_only_array_globals(tmp_path: Path) -> None:
    path = tmp_path / "batch"
    path.write_bytes(pickle.dumps({b"when": np.float64(1.0)}, protocol=3))  # numpy scalar: another global
    with pytest.raises(DataError, match="refused"):
        load_batch_file(path)


def test_missing_files_say_where_to_put_them(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        load_cifar10(tmp_path, "train")
    message = str(info.value)
    assert "data_batch_1" in message and "data_batch_5" in message and "batches.meta" in message
    assert str(tmp_path / CIFAR10_FOLDER) in message and "--data-dir" in message


def test_unknown_split(tmp_path: Path) -> None:
    with pytest.raises(InputError):
        load_cifar10(tmp_path, "val")
