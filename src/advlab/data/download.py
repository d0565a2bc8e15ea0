"""Where datasets live, and how files get there intact: the data folder, checksums, downloads, tar extraction.

Every dataset file advlab knows has an official checksum (md5 for MNIST and CIFAR-10, as published by their
authors; sha256 for the ImageNet sample, from its ``labels.csv``). Loading a dataset only checks sizes and
structure (cheap); :func:`verify_files` hashes the files (``advlab data verify``), and every download is hashed
while it streams and renamed into place only when the hash matches, so a failed or tampered download never
leaves a file behind.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
import urllib.request
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from advlab.errors import AdvlabError, DataError
from advlab.io import atomic_write

DATA_ENV_VAR = "ADVLAB_DATA"
_CHUNK = 1 << 20  # 1 MiB: large enough for throughput, small enough to keep memory flat on big archives
_TIMEOUT_S = 60.0

Opener = Callable[[str], BinaryIO]


def resolve_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The dataset folder: ``data_dir`` if given, else ``$ADVLAB_DATA``, else the user cache.

    The cache is ``$XDG_CACHE_HOME/advlab`` (``~/.cache/advlab`` when that variable is unset). Under the folder the
    layout matches the official archives: ``mnist/*-ubyte.gz``, ``cifar-10-batches-py/*``, ``imagenet-sample/``.
    Nothing is created here; downloads create what they need.
    """
    if data_dir is not None and str(data_dir) != "":
        return Path(data_dir).expanduser()
    from_env = os.environ.get(DATA_ENV_VAR)
    if from_env:
        return Path(from_env).expanduser()
    cache_home = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache_home).expanduser() / "advlab"


def file_digest(path: Path, algorithm: str) -> str:
    """Hex digest of a file, read in chunks (``algorithm`` is a hashlib name: ``"md5"``, ``"sha256"``)."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class ExpectedFile:
    """A file a dataset needs: where it goes and the checksum its publisher gives for it."""

    path: Path
    digest: str
    algorithm: str = "md5"


@dataclass(frozen=True)
class FileCheck:
    """The outcome of checking one file: ``ok`` is True only when it exists and its digest matches."""

    path: Path
    expected: str
    actual: str | None
    ok: bool
    missing: bool
    algorithm: str = "md5"


def verify_files(expected_files: Iterable[ExpectedFile]) -> list[FileCheck]:
    """Hash every file and compare with its official checksum (missing files are reported, not raised)."""
    results = []
    for item in expected_files:
        if not item.path.is_file():
            results.append(FileCheck(item.path, item.digest, None, ok=False, missing=True, algorithm=item.algorithm))
            continue
        actual = file_digest(item.path, item.algorithm)
        results.append(FileCheck(item.path, item.digest, actual, ok=actual == item.digest.lower(), missing=False,
                                 algorithm=item.algorithm))
    return results


def missing_files_message(dataset: str, folder: Path, names: Sequence[str], *, downloadable: bool = True) -> str:
    """The one message every loader gives when files are absent: which files, where to put them, what to pass."""
    listing = ", ".join(names)
    how = ("pass --download (Python: download=True) to fetch them, " if downloadable else "")
    return (f"{dataset} files not found: put {listing} into {folder}/, or {how}or point --data-dir "
            f"(or ${DATA_ENV_VAR}) at a folder that holds {folder.name}/")


def open_url(url: str) -> BinaryIO:
    """The default opener: urllib with a timeout (http, https, and file:// for local mirrors)."""
    return urllib.request.urlopen(url, timeout=_TIMEOUT_S)


class _ChecksumMismatch(Exception):
    """Raised inside the atomic write so the temporary file is deleted; turned into a DataError by the caller."""


class _ReadFailed(Exception):
    """A network read failed mid-stream; kept apart from OSError so atomic_write does not call it a disk error."""


def _read_chunk(response: BinaryIO) -> bytes:
    try:
        return response.read(_CHUNK)
    except OSError as exc:
        raise _ReadFailed(f"connection failed while reading: {exc}") from exc


def download_file(urls: Sequence[str], dest: Path, md5: str, *, opener: Opener = open_url) -> Path:
    """Fetch ``dest`` from the first of ``urls`` that answers with the right md5; return ``dest``.

    The bytes stream into a temporary file beside ``dest`` while being hashed; only a matching file is renamed to
    ``dest`` (atomic), so an interrupted or corrupted download leaves nothing. Raises DataError listing every
    mirror tried and what went wrong with each.
    """
    failures = []
    for url in urls:
        try:
            _stream_to(url, dest, md5, opener)
            return dest
        except (OSError, ValueError, _ChecksumMismatch, _ReadFailed) as exc:
            failures.append(f"{url}: {exc}")
        except AdvlabError as exc:  # atomic_write could not create or rename the file: the folder is the problem
            raise DataError(f"cannot save {dest.name}: {exc}") from exc
    tried = "; ".join(failures)
    raise DataError(f"could not download {dest.name} ({tried}). If this machine is offline, download it "
                    f"elsewhere and put it into {dest.parent}/, or pass --data-dir to a folder that has it")


def _stream_to(url: str, dest: Path, md5: str, opener: Opener) -> None:
    digest = hashlib.md5()
    with opener(url) as response, atomic_write(dest) as out:
        while chunk := _read_chunk(response):
            digest.update(chunk)
            out.write(chunk)
        if digest.hexdigest() != md5.lower():
            raise _ChecksumMismatch(f"md5 {digest.hexdigest()} differs from the official {md5}")


def ensure_files(expected_files: Sequence[ExpectedFile], urls_for: Callable[[ExpectedFile], Sequence[str]],
                 *, opener: Opener = open_url) -> None:
    """Download each file that is missing or fails its md5 (a wrong file is replaced atomically, never patched)."""
    for item in expected_files:
        if item.path.is_file() and file_digest(item.path, item.algorithm) == item.digest.lower():
            continue
        download_file(urls_for(item), item.path, item.digest, opener=opener)


def extract_tar_members(archive: Path, dest_root: Path, members: Mapping[str, str]) -> list[Path]:
    """Extract exactly the named regular files of a tar archive, each checked against its md5.

    ``members`` maps a member name (``"cifar-10-batches-py/test_batch"``) to its official md5. Only those names
    are extracted, only if they are regular files (no links, devices, or absolute/``..`` paths can be written,
    whatever the archive holds), each through an atomic write. Returns the extracted paths.
    """
    written = []
    try:
        with tarfile.open(archive, "r:*") as tar:
            found = {}
            for member in tar.getmembers():
                if member.name in members:
                    found[member.name] = member
            absent = sorted(set(members) - set(found))
            if absent:
                raise DataError(f"{archive} lacks {', '.join(absent)}: it is not the official archive; delete it "
                                "and download it again")
            for name, member in sorted(found.items()):
                if not member.isfile():
                    raise DataError(f"{archive}: member {name} is not a regular file (a link or device); refusing "
                                    "to extract it. Delete the archive and download the official one")
                target = (dest_root / name).resolve()
                if not target.is_relative_to(dest_root.resolve()):
                    raise DataError(f"{archive}: member {name} points outside {dest_root}; refusing to extract it")
                source = tar.extractfile(member)
                if source is None:
                    raise DataError(f"{archive}: cannot read member {name}; delete the archive and download it again")
                try:
                    with source, atomic_write(target) as out:
                        digest = hashlib.md5()
                        while chunk := source.read(_CHUNK):
                            digest.update(chunk)
                            out.write(chunk)
                        if digest.hexdigest() != members[name].lower():
                            raise _ChecksumMismatch(f"md5 {digest.hexdigest()} differs from the official "
                                                    f"{members[name]}")
                except _ChecksumMismatch as exc:
                    raise DataError(f"{archive}: {name} has the wrong checksum ({exc}); delete the archive and "
                                    "download it again") from exc
                written.append(target)
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise DataError(f"{archive} is not a readable tar archive ({exc}); delete it and download it again") from exc
    return written
