"""Image folders: ImageNet-style ``root/<class>/*.JPEG`` and CSV-labelled folders (``labels.csv`` + images).

Every image is decoded with Pillow, converted to RGB, its shorter side resized to ``round(size / 0.875)`` (the
usual ImageNet evaluation convention: 256 for a 224 crop) with bilinear, antialiased filtering, and center-cropped
to ``size x size``. The result is a uint8 (N, 3, size, size) dataset like every other source.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from advlab.data.dataset import ImageDataset
from advlab.data.download import ExpectedFile
from advlab.errors import DataError, InputError

IMAGE_SUFFIXES = frozenset({".jpeg", ".jpg", ".png", ".bmp", ".webp", ".ppm", ".tif", ".tiff"})
CENTER_CROP_FRACTION = 0.875  # 224 / 256
LABELS_FILE = "labels.csv"
_REQUIRED_COLUMNS = ("filename", "class_index")


def resize_size(size: int) -> int:
    """Shorter-side length before the center crop: ``round(size / 0.875)`` (224 -> 256)."""
    return int(round(size / CENTER_CROP_FRACTION))


def load_image(path: Path, size: int) -> np.ndarray:
    """Decode one image to RGB, resize its shorter side to :func:`resize_size`, center-crop; uint8 (3, size, size).

    Raises DataError naming the file when Pillow cannot decode it (corrupt, truncated, not an image).
    """
    try:
        with Image.open(path) as image:
            rgb = image.convert("RGB")  # convert() forces the full decode, so truncation surfaces here
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"cannot decode image {path} ({exc}); the file is corrupt or not an image. "
                        "Replace or remove it") from exc
    width, height = rgb.size
    short = resize_size(size)
    # Same arithmetic as torchvision's Resize(int) + CenterCrop, so crops match models trained with it.
    if width <= height:
        new_size = (short, int(short * height / width))
    else:
        new_size = (int(short * width / height), short)
    resized = rgb.resize(new_size, Image.Resampling.BILINEAR)
    left = int(round((new_size[0] - size) / 2.0))
    top = int(round((new_size[1] - size) / 2.0))
    cropped = resized.crop((left, top, left + size, top + size))
    return np.asarray(cropped, dtype=np.uint8).transpose(2, 0, 1)


def _decode_all(paths: Sequence[Path], size: int) -> torch.Tensor:
    images = np.empty((len(paths), 3, size, size), dtype=np.uint8)
    for i, path in enumerate(paths):
        images[i] = load_image(path, size)
    return torch.from_numpy(images)


def _check_size(size: int) -> None:
    if size <= 0:
        raise InputError(f"image size must be a positive number of pixels, got {size}")


def load_image_folder(root: Path, size: int = 224, *, name: str | None = None) -> ImageDataset:
    """An ImageNet-style folder: one sub-folder per class (sorted names = class indices), images inside.

    Files whose suffix is not an image format (README, .DS_Store) are skipped; a folder without images raises.
    """
    _check_size(size)
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist; pass --data-dir pointing at a folder of class "
                        "sub-folders (root/<class>/*.JPEG)")
    classes = sorted(entry.name for entry in root.iterdir() if entry.is_dir() and not entry.name.startswith("."))
    paths, labels = [], []
    for index, class_name in enumerate(classes):
        for path in sorted((root / class_name).iterdir()):
            if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
                paths.append(path)
                labels.append(index)
    if not paths:
        raise DataError(f"no images found in {root}: expected class sub-folders holding "
                        f"{'/'.join(sorted(IMAGE_SUFFIXES))} files (root/<class>/image.JPEG)")
    return ImageDataset(
        images=_decode_all(paths, size),
        labels=torch.tensor(labels, dtype=torch.int64),
        classes=tuple(classes),
        name=name or f"imagefolder:{root.name}",
        info={"source": str(root), "image_size": size},
    )


def _read_labels_csv(root: Path) -> list[dict[str, str]]:
    csv_path = root / LABELS_FILE
    if not csv_path.is_file():
        raise DataError(f"{csv_path} not found: a labelled image folder needs {LABELS_FILE} with the columns "
                        f"{', '.join(_REQUIRED_COLUMNS)} (and optionally name, synset, sha256) beside its images")
    with open(csv_path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        absent = [c for c in _REQUIRED_COLUMNS if c not in columns]
        if absent:
            raise DataError(f"{csv_path} lacks the column(s) {', '.join(absent)}; found {', '.join(columns)}")
        rows = list(reader)
    if not rows:
        raise DataError(f"{csv_path} lists no images; add one row per image")
    return rows


def _images_dir(root: Path) -> Path:
    # The imagenet-sample layout keeps images in root/images/; a flat folder keeps them beside labels.csv.
    return root / "images" if (root / "images").is_dir() else root


def _row_image_path(root: Path, images_dir: Path, row: dict[str, str]) -> Path:
    filename = row["filename"]
    path = images_dir / filename
    # A CSV is input too: a filename must not climb out of the folder ("../../etc/passwd").
    if Path(filename).name != filename or not path.resolve().is_relative_to(images_dir.resolve()):
        raise DataError(f"{root / LABELS_FILE}: filename {filename!r} must be a plain file name inside {images_dir}")
    return path


def load_labelled_folder(root: Path, size: int = 224, *, num_classes: int | None = None,
                         name: str | None = None) -> ImageDataset:
    """A folder of images labelled by ``root/labels.csv`` (columns filename, class_index, optional name/sha256).

    Images are in ``root/images/`` when that folder exists, else beside the CSV. ``num_classes`` fixes the label
    space (1000 for ImageNet even when a sample covers fewer classes); by default it is the largest index + 1.
    Class names come from the ``name`` column; classes that no row names are called ``class_<index>``.
    """
    _check_size(size)
    if not root.is_dir():
        raise DataError(f"labelled image folder {root} does not exist; put the images and {LABELS_FILE} there or "
                        "pass --data-dir")
    rows = _read_labels_csv(root)
    images_dir = _images_dir(root)
    paths, labels, names_by_index = [], [], {}
    for line, row in enumerate(rows, start=2):
        try:
            label = int(row["class_index"])
        except (TypeError, ValueError):
            raise DataError(f"{root / LABELS_FILE} line {line}: class_index {row['class_index']!r} is not an "
                            "integer") from None
        if label < 0 or (num_classes is not None and label >= num_classes):
            raise DataError(f"{root / LABELS_FILE} line {line}: class_index {label} is outside "
                            f"0..{(num_classes or 1) - 1}")
        path = _row_image_path(root, images_dir, row)
        if not path.is_file():
            raise DataError(f"{path} is listed in {root / LABELS_FILE} (line {line}) but missing; restore it or "
                            "remove its row")
        paths.append(path)
        labels.append(label)
        if row.get("name"):
            names_by_index[label] = row["name"]
    total = num_classes if num_classes is not None else max(labels) + 1
    classes = tuple(names_by_index.get(i, f"class_{i}") for i in range(total))
    return ImageDataset(
        images=_decode_all(paths, size),
        labels=torch.tensor(labels, dtype=torch.int64),
        classes=classes,
        name=name or f"labelled:{root.name}",
        info={"source": str(root), "image_size": size},
    )


def labelled_folder_expected_files(root: Path) -> list[ExpectedFile]:
    """The images of a labelled folder with the sha256 given in ``labels.csv`` (rows without one are skipped)."""
    if not (root / LABELS_FILE).is_file():
        return []
    rows = _read_labels_csv(root)
    images_dir = _images_dir(root)
    return [ExpectedFile(_row_image_path(root, images_dir, row), row["sha256"].strip().lower(), "sha256")
            for row in rows if row.get("sha256")]
