"""Data folder resolution, checksum verification and downloads (offline: file:// sources, no network)."""

from __future__ import annotations

import hashlib
import io
import shutil
import tarfile
from pathlib import Path

import pytest

from advlab.data.cifar10 import CIFAR10_FOLDER, download_cifar10
from advlab.data.download import download_file, resolve_data_dir
from advlab.data.mnist import load_mnist
from advlab.data.sources import verify_data_dir
from advlab.errors import DataError


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def test_resolve_data_dir_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADVLAB_DATA", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert resolve_data_dir(tmp_path / "explicit") == tmp_path / "explicit"
    assert resolve_data_dir(None) == tmp_path / "env"
    monkeypatch.delenv("ADVLAB_DATA")
    assert resolve_data_dir(None) == tmp_path / "xdg" / "advlab"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert resolve_data_dir(None) == tmp_path / "home" / ".cache" / "advlab"


def test_verify_detects_a_modified_copy(tmp_path: Path, shared_data: Path) -> None:
    folder = tmp_path / "mnist"
    folder.mkdir()
    shutil.copy(shared_data / "mnist" / "t10k-labels-idx1-ubyte.gz", folder)
    shutil.copy(shared_data / "mnist" / "train-labels-idx1-ubyte.gz", folder)
    data = bytearray((folder / "train-labels-idx1-ubyte.gz").read_bytes())
    data[1000] ^= 0x01
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(bytes(data))

    results = {r.path.name: r for r in verify_data_dir(tmp_path)}
    assert results["t10k-labels-idx1-ubyte.gz"].ok
    flipped = results["train-labels-idx1-ubyte.gz"]
    assert not flipped.ok and not flipped.missing and flipped.actual != flipped.expected
    assert flipped.expected == "d53e105ee54ea40749a09fcbcd1e9432"
    assert results["test_batch"].missing and not results["test_batch"].ok


def test_verify_real_folder_reports_every_file_ok(shared_data: Path) -> None:
    results = verify_data_dir(shared_data)
    assert len(results) == 4 + 7 + 100
    assert all(r.ok for r in results), [str(r.path) for r in results if not r.ok]
    assert {r.algorithm for r in results} == {"md5", "sha256"}


def test_download_file_from_local_source(tmp_path: Path) -> None:
    payload = b"official bytes" * 1000
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "file.gz").write_bytes(payload)
    dest = tmp_path / "cache" / "file.gz"
    missing_mirror = (tmp_path / "nowhere" / "file.gz").as_uri()
    download_file([missing_mirror, (tmp_path / "src" / "file.gz").as_uri()], dest, md5(payload))
    assert dest.read_bytes() == payload


def test_download_with_wrong_md5_leaves_nothing(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "file.gz").write_bytes(b"tampered")
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match=r"could not download file\.gz .*md5 .* differs.*put it into"):
        download_file([(tmp_path / "src" / "file.gz").as_uri()], cache / "file.gz", md5(b"official"))
    assert list(cache.iterdir()) == []  # neither the file nor a temporary file is left


def test_load_mnist_downloads_from_a_mirror(tmp_path: Path, shared_data: Path) -> None:
    mirror = (shared_data / "mnist").as_uri() + "/"
    dataset = load_mnist(tmp_path, "test", download=True, mirrors=(mirror,))
    assert len(dataset) == 10_000 and dataset.labels[:3].tolist() == [7, 2, 1]
    assert sorted(p.name for p in (tmp_path / "mnist").iterdir()) == ["t10k-images-idx3-ubyte.gz",
                                                                        "t10k-labels-idx1-ubyte.gz"]


def test_mnist_download_replaces_a_damaged_file(tmp_path: Path, shared_data: Path) -> None:
    folder = tmp_path / "mnist"
    folder.mkdir()
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(b"damaged")
    load_mnist(tmp_path, "test", download=True, mirrors=((shared_data / "mnist").as_uri() + "/",))
    assert (folder / "t10k-labels-idx1-ubyte.gz").read_bytes() == \
        (shared_data / "mnist" / "t10k-labels-idx1-ubyte.gz").read_bytes()


def test_offline_download_says_what_to_do(tmp_path: Path) -> None:
    offline = ((tmp_path / "no-mirror").as_uri() + "/",)
    with pytest.raises(DataError, match=r"could not download t10k-images-idx3-ubyte\.gz.*put it into .*mnist"):
        load_mnist(tmp_path, "test", download=True, mirrors=offline)
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


def make_tar(path: Path, members: dict[str, bytes], symlink: tuple[str, str] | None = None) -> bytes:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        if symlink:
            info = tarfile.TarInfo(symlink[0])
            info.type, info.linkname = tarfile.SYMTYPE, symlink[1]
            tar.addfile(info)
    return path.read_bytes()


def test_cifar_archive_is_extracted_checked_and_removed(tmp_path: Path) -> None:
    batch = b"pretend batch"
    source = tmp_path / "cifar.tar.gz"
    archive = make_tar(source, {f"{CIFAR10_FOLDER}/test_batch": batch, "../escape": b"x", "/abs": b"y"})
    cache = tmp_path / "cache"
    download_cifar10(cache, url=source.as_uri(), archive_md5=md5(archive),
                     members={f"{CIFAR10_FOLDER}/test_batch": md5(batch)})
    assert (cache / CIFAR10_FOLDER / "test_batch").read_bytes() == batch
    assert not (tmp_path / "escape").exists() and not (cache / "cifar-10-python.tar.gz").exists()
    assert sorted(p.name for p in cache.rglob("*")) == [CIFAR10_FOLDER, "test_batch"]


def test_cifar_archive_with_link_or_bad_member_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "cifar.tar.gz"
    archive = make_tar(source, {}, symlink=(f"{CIFAR10_FOLDER}/test_batch", "/etc/passwd"))
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match="not a regular file"):
        download_cifar10(cache, url=source.as_uri(), archive_md5=md5(archive),
                         members={f"{CIFAR10_FOLDER}/test_batch": md5(b"")})
    assert not (cache / CIFAR10_FOLDER / "test_batch").exists()

    archive = make_tar(source, {f"{CIFAR10_FOLDER}/test_batch": b"modified"})
    with pytest.raises(DataError, match="wrong checksum"):
        download_cifar10(cache, url=source.as_uri(), archive_md5=md5(archive),
                         members={f"{CIFAR10_FOLDER}/test_batch": md5(b"official")})
    assert not (cache / CIFAR10_FOLDER / "test_batch").exists()


def test_cifar_archive_with_wrong_md5_is_not_kept(tmp_path: Path) -> None:
    source = tmp_path / "cifar.tar.gz"
    make_tar(source, {f"{CIFAR10_FOLDER}/test_batch": b"x"})
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match="could not download cifar-10-python.tar.gz"):
        download_cifar10(cache, url=source.as_uri(), archive_md5=md5(b"the official archive"))
    assert list(cache.iterdir()) == []
