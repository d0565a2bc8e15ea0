"""Image folders (root/<class>/*.JPEG) and CSV-labelled folders: decoding, resize + center crop, bad files."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from advlab.data.folders import load_image, load_image_folder, load_labelled_folder, resize_size
from advlab.errors import DataError, InputError


def save_image(path: Path, array: np.ndarray, fmt: str = "JPEG") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format=fmt, quality=95)


def solid(height: int, width: int, rgb: tuple[int, int, int]) -> np.ndarray:
    return np.broadcast_to(np.array(rgb, np.uint8), (height, width, 3)).copy()


def test_resize_size_follows_the_256_for_224_convention() -> None:
    assert resize_size(224) == 256 and resize_size(32) == 37 and resize_size(299) == 342


def test_load_image_shapes_and_centre(tmp_path: Path) -> None:
    tall = np.concatenate([solid(32, 64, (255, 0, 0)), solid(64, 64, (0, 255, 0)), solid(32, 64, (0, 0, 255))])
    save_image(tmp_path / "tall.png", tall, "PNG")
    crop = load_image(tmp_path / "tall.png", 32)
    assert crop.shape == (3, 32, 32) and crop.dtype == np.uint8
    assert crop[1].min() > 200 and crop[0].max() < 30 and crop[2].max() < 30  # all green: the centre was kept
    wide = np.concatenate([solid(50, 100, (255, 255, 255)), solid(50, 100, (0, 0, 0))], axis=0)  # white top
    save_image(tmp_path / "wide.png", wide, "PNG")
    crop = load_image(tmp_path / "wide.png", 32)
    assert crop[:, 0].min() > 200 and crop[:, -1].max() < 50  # rows are rows: top stays white, bottom black


def test_grayscale_and_rgba_become_rgb(tmp_path: Path) -> None:
    Image.fromarray(np.full((40, 40), 128, np.uint8), mode="L").save(tmp_path / "gray.png")
    Image.fromarray(np.full((40, 40, 4), 200, np.uint8), mode="RGBA").save(tmp_path / "rgba.png")
    assert load_image(tmp_path / "gray.png", 16).shape == (3, 16, 16)
    assert load_image(tmp_path / "rgba.png", 16).shape == (3, 16, 16)


def test_class_folders_become_sorted_labels(tmp_path: Path) -> None:
    for class_name, colour in (("zebra", (0, 0, 255)), ("ant", (255, 0, 0))):
        for i in range(2):
            save_image(tmp_path / class_name / f"{i}.JPEG", solid(48, 60, colour))
    (tmp_path / "ant" / "notes.txt").write_text("not an image")
    dataset = load_image_folder(tmp_path, size=24)
    assert dataset.images.shape == (4, 3, 24, 24) and dataset.images.dtype == torch.uint8
    assert dataset.classes == ("ant", "zebra") and dataset.labels.tolist() == [0, 0, 1, 1]
    assert dataset.images[0, 0].float().mean() > 200 and dataset.images[3, 2].float().mean() > 200


def test_corrupt_and_truncated_jpeg_name_the_file(tmp_path: Path) -> None:
    save_image(tmp_path / "cat" / "good.JPEG", solid(64, 64, (10, 20, 30)))
    (tmp_path / "cat" / "garbage.JPEG").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(DataError, match=r"cannot decode image .*garbage\.JPEG"):
        load_image_folder(tmp_path, 32)
    (tmp_path / "cat" / "garbage.JPEG").unlink()
    noisy = np.random.default_rng(0).integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    save_image(tmp_path / "cat" / "cut.JPEG", noisy)
    data = (tmp_path / "cat" / "cut.JPEG").read_bytes()
    (tmp_path / "cat" / "cut.JPEG").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"cut\.JPEG.*corrupt"):
        load_image_folder(tmp_path, 32)


def test_empty_or_missing_folder(tmp_path: Path) -> None:
    (tmp_path / "cat").mkdir()
    with pytest.raises(DataError, match="no images found"):
        load_image_folder(tmp_path, 32)
    with pytest.raises(DataError, match="does not exist"):
        load_image_folder(tmp_path / "nowhere", 32)
    with pytest.raises(InputError):
        load_image_folder(tmp_path, 0)


def write_labels(root: Path, rows: list[dict[str, str]]) -> None:
    with open(root / "labels.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_labelled_folder(tmp_path: Path) -> None:
    save_image(tmp_path / "images" / "a.JPEG", solid(30, 40, (255, 0, 0)))
    save_image(tmp_path / "images" / "b.JPEG", solid(30, 40, (0, 0, 255)))
    write_labels(tmp_path, [{"filename": "a.JPEG", "class_index": "3", "name": "three"},
                            {"filename": "b.JPEG", "class_index": "1", "name": "one"}])
    dataset = load_labelled_folder(tmp_path, 16, num_classes=5)
    assert dataset.labels.tolist() == [3, 1] and len(dataset.classes) == 5
    assert dataset.classes[3] == "three" and dataset.classes[1] == "one" and dataset.classes[0] == "class_0"


@pytest.mark.parametrize("filename", ["../outside.JPEG", "/etc/hostname", "sub/a.JPEG"])
def test_labelled_folder_refuses_paths_outside(tmp_path: Path, filename: str) -> None:
    (tmp_path / "images").mkdir()
    write_labels(tmp_path, [{"filename": filename, "class_index": "0"}])
    with pytest.raises(DataError, match="plain file name"):
        load_labelled_folder(tmp_path, 16)


def test_labelled_folder_bad_rows(tmp_path: Path) -> None:
    save_image(tmp_path / "a.JPEG", solid(30, 40, (255, 0, 0)))
    write_labels(tmp_path, [{"filename": "missing.JPEG", "class_index": "0"}])
    with pytest.raises(DataError, match=r"missing\.JPEG is listed .* but missing"):
        load_labelled_folder(tmp_path, 16)
    write_labels(tmp_path, [{"filename": "a.JPEG", "class_index": "dog"}])
    with pytest.raises(DataError, match="line 2: class_index 'dog' is not an integer"):
        load_labelled_folder(tmp_path, 16)
    write_labels(tmp_path, [{"filename": "a.JPEG", "label": "0"}])
    with pytest.raises(DataError, match="lacks the column"):
        load_labelled_folder(tmp_path, 16)


def test_real_imagenet_sample(shared_data: Path) -> None:
    root = shared_data / "imagenet-sample"
    with open(root / "labels.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    dataset = load_labelled_folder(root, 64, num_classes=1000)
    assert dataset.images.shape == (100, 3, 64, 64) and dataset.images.dtype == torch.uint8
    assert dataset.labels.tolist() == [int(r["class_index"]) for r in rows]
    assert dataset.classes[0] == "tench" and len(dataset.classes) == 1000
    assert 40 < dataset.images.float().mean() < 200  # decoded pictures, not blank arrays
