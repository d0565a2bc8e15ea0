"""The dataset registry and load_dataset: names, splits, subsets, the bundled sample, folder sources."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from advlab.data import DATASETS, dataset_info, load_dataset, load_mnist, load_mnist_sample
from advlab.data.bundled import SAMPLE_FILE
from advlab.errors import DataError, InputError, UnknownNameError

BUNDLED = Path(__file__).resolve().parents[2] / "src" / "advlab" / "data" / "bundled" / SAMPLE_FILE


def test_registry_lists_every_source() -> None:
    assert DATASETS.names() == ["cifar10", "imagefolder", "imagenet-sample", "mnist", "mnist-sample"]
    with pytest.raises(UnknownNameError, match="Did you mean 'mnist'"):
        load_dataset("mnsit")


def test_dataset_info() -> None:
    assert dataset_info("cifar10").image_shape == (3, 32, 32) and dataset_info("cifar10").num_classes == 10
    assert dataset_info("imagenet-sample", image_size=128).image_shape == (3, 128, 128)
    assert dataset_info("imagenet-sample").num_classes == 1000
    assert dataset_info("mnist-sample").splits == ("train", "test")


def test_bundled_sample_sizes_and_file() -> None:
    train, test = load_dataset("mnist-sample", "train"), load_dataset("mnist-sample", "test")
    assert train.images.shape == (10_000, 1, 28, 28) and test.images.shape == (2_000, 1, 28, 28)
    assert train.images.dtype == torch.uint8 and train.labels.dtype == torch.int64
    assert set(torch.bincount(test.labels, minlength=10).tolist()) != {0}  # every digit appears
    assert min(torch.bincount(train.labels, minlength=10).tolist()) > 800
    assert BUNDLED.stat().st_size < 4_000_000  # "a few MB at most"
    with np.load(BUNDLED, allow_pickle=False) as archive:
        assert sorted(archive.files) == ["test_images", "test_index", "test_labels",
                                         "train_images", "train_index", "train_labels"]


def test_bundled_sample_is_drawn_from_the_official_files(shared_data: Path) -> None:
    official = load_mnist(shared_data, "test")
    with np.load(BUNDLED, allow_pickle=False) as archive:
        index = torch.from_numpy(archive["test_index"].astype(np.int64))
    sample = load_mnist_sample("test")
    assert len(set(index.tolist())) == 2_000
    assert torch.equal(official.images[index], sample.images) and torch.equal(official.labels[index], sample.labels)


def test_unknown_split_and_bad_n() -> None:
    with pytest.raises(InputError, match="splits train, test; got 'val'"):
        load_dataset("mnist-sample", "val")
    with pytest.raises(InputError, match="splits test, val"):
        load_dataset("imagenet-sample", "train")
    with pytest.raises(InputError, match="positive"):
        load_dataset("mnist-sample", n=0)


def test_subset_is_seeded_and_split_is_disjoint() -> None:
    a = load_dataset("mnist-sample", "test", n=100, seed=1)
    b = load_dataset("mnist-sample", "test", n=100, seed=1)
    c = load_dataset("mnist-sample", "test", n=100, seed=2)
    assert len(a) == 100 and torch.equal(a.images, b.images) and not torch.equal(a.images, c.images)
    train, val = load_dataset("mnist-sample", "train", n=1000).split(0.2, seed=0)
    assert len(train) == 800 and len(val) == 200
    flat = lambda d: {bytes(img.numpy().tobytes()) for img in d.images}  # noqa: E731
    assert not flat(train) & flat(val)


def test_missing_data_dir_message(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"put t10k-images-idx3-ubyte\.gz, t10k-labels-idx1-ubyte\.gz into"):
        load_dataset("mnist", "test", data_dir=tmp_path)
    with pytest.raises(DataError, match="does not download it"):
        load_dataset("imagenet-sample", data_dir=tmp_path)


def test_data_dir_from_environment(shared_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADVLAB_DATA", str(shared_data))
    expected = load_mnist(shared_data, "test").subset(10).labels
    assert torch.equal(load_dataset("mnist", "test", n=10).labels, expected)


def test_real_sources_through_the_registry(shared_data: Path) -> None:
    cifar = load_dataset("cifar10", "test", data_dir=shared_data, n=50)
    assert cifar.images.shape == (50, 3, 32, 32) and cifar.name == "cifar10/test[50]"
    imagenet = load_dataset("imagenet-sample", "val", data_dir=shared_data, image_size=32)
    assert imagenet.images.shape == (100, 3, 32, 32) and imagenet.num_classes == 1000


def test_imagefolder_uses_split_subfolders(tmp_path: Path) -> None:
    for split, colour in (("train", 0), ("test", 255)):
        for class_name in ("a", "b"):
            (tmp_path / split / class_name).mkdir(parents=True)
            Image.fromarray(np.full((20, 20, 3), colour, np.uint8)).save(tmp_path / split / class_name / "x.png")
    test = load_dataset("imagefolder", "test", data_dir=tmp_path, image_size=16)
    assert test.images.shape == (2, 3, 16, 16) and int(test.images.min()) == 255 and test.classes == ("a", "b")
    assert int(load_dataset("imagefolder", "train", data_dir=tmp_path, image_size=16).images.max()) == 0
    with pytest.raises(InputError, match="needs data_dir"):
        load_dataset("imagefolder")


def test_empty_image_folder(tmp_path: Path) -> None:
    (tmp_path / "cat").mkdir()
    with pytest.raises(DataError, match="no images found"):
        load_dataset("imagefolder", data_dir=tmp_path)
