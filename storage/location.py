"""The place ``KASSA_DATA_DIR`` names, opened: a folder on this machine or an object store.

:func:`open_store` gives a :class:`Store`: :class:`LocalStore` keeps the local behaviour
(files written under a hidden temporary name, fsynced and renamed over the final name);
:class:`ObjectStore` reaches ``s3://``, ``gs://`` and ``abfs://`` locations through
``pyarrow.fs.FileSystem.from_uri`` (credentials from each cloud's standard chain, e.g.
``AWS_ACCESS_KEY_ID`` or ``~/.aws``; kassa never reads or logs them). Object stores have no
rename: an object is replaced whole by one upload, and several objects are published together
only through a manifest (:mod:`storage.parquet`). Paths are relative to the location, with
``/`` separators.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import pyarrow as pa
import pyarrow.fs as pafs

from common.errors import SettingsError
from common.settings.location import DataLocation, DataUrl, shown_location
from storage.exceptions import DataStoreError


class Store(Protocol):
    """A data location: read, list and write files by their paths relative to it."""

    @property
    def location(self) -> DataLocation:
        """What ``KASSA_DATA_DIR`` says."""

    @property
    def filesystem(self) -> pafs.FileSystem:
        """The pyarrow filesystem that reaches it (for readers and writers of Parquet)."""

    def path(self, relative: str) -> str:
        """``relative`` as a path of :attr:`filesystem`."""

    def shown(self, relative: str = "") -> str:
        """``relative`` (or the location) as a message shows it: no password."""

    def read_bytes(self, relative: str) -> bytes | None:
        """The content of the file ``relative`` (``None``: there is none)."""

    def write_bytes(self, relative: str, content: bytes) -> None:
        """Replace the file ``relative`` with ``content`` whole: a reader sees the old
        content or the new, never a part."""

    def files(self, relative: str) -> list[str]:
        """Every file under the folder ``relative`` (recursively), relative to the location;
        an empty list when there is no such folder."""

    def exists(self, relative: str) -> bool:
        """Whether the file ``relative`` exists."""


@dataclass(frozen=True)
class LocalStore:
    """A folder on this machine's disks (``KASSA_DATA_DIR`` a path)."""

    location: Path

    @property
    def filesystem(self) -> pafs.FileSystem:
        """The local filesystem."""
        return pafs.LocalFileSystem()

    def path(self, relative: str) -> str:
        """The absolute path of ``relative``."""
        return str((self.location / relative).absolute())

    def shown(self, relative: str = "") -> str:
        """``relative`` under the folder, as given (``data/_manifests/...``)."""
        return str(self.location / relative) if relative else str(self.location)

    def read_bytes(self, relative: str) -> bytes | None:
        """The file's content, or ``None`` when it is missing."""
        try:
            return (self.location / relative).read_bytes()
        except FileNotFoundError:
            return None

    def write_bytes(self, relative: str, content: bytes) -> None:
        """Write a hidden temporary file, fsync it, rename it over ``relative``, fsync the
        folder."""
        final = self.location / relative
        final.parent.mkdir(parents=True, exist_ok=True)
        temporary = temporary_path(final)
        temporary.write_bytes(content)
        commit(temporary, final)

    def files(self, relative: str) -> list[str]:
        """Every file under ``relative`` (temporary files included)."""
        folder = self.location / relative
        if not folder.is_dir():
            return []
        return sorted(
            path.relative_to(self.location).as_posix()
            for path in folder.rglob("*")
            if path.is_file()
        )

    def exists(self, relative: str) -> bool:
        """Whether ``relative`` is a file."""
        return (self.location / relative).is_file()


@dataclass(frozen=True)
class ObjectStore:
    """A prefix of an object store bucket (``KASSA_DATA_DIR`` a URI)."""

    location: DataUrl
    filesystem: pafs.FileSystem
    root: str
    """``bucket/prefix``."""

    def path(self, relative: str) -> str:
        """``bucket/prefix/relative``."""
        return f"{self.root}/{relative}" if relative else self.root

    def shown(self, relative: str = "") -> str:
        """``scheme://bucket/prefix/relative`` (no password, no query)."""
        scheme = self.location.partition("://")[0]
        return f"{scheme}://{self.path(relative)}"

    def read_bytes(self, relative: str) -> bytes | None:
        """The object's content, or ``None`` when there is no such object."""
        with self.failures(f"read {self.shown(relative)}"):
            try:
                with self.filesystem.open_input_stream(self.path(relative)) as stream:
                    content: bytes = stream.readall()
            except FileNotFoundError:
                return None
        return content

    def write_bytes(self, relative: str, content: bytes) -> None:
        """Upload ``content`` as the object ``relative`` (one upload: readers see the old
        object or the new)."""
        with (
            self.failures(f"write {self.shown(relative)}"),
            self.filesystem.open_output_stream(self.path(relative)) as stream,
        ):
            stream.write(content)

    def files(self, relative: str) -> list[str]:
        """Every object under ``relative/``."""
        selector = pafs.FileSelector(self.path(relative), recursive=True, allow_not_found=True)
        with self.failures(f"list {self.shown(relative)}"):
            found = self.filesystem.get_file_info(selector)
        prefix = f"{self.root}/"
        return sorted(
            info.path.removeprefix(prefix) for info in found if info.type == pafs.FileType.File
        )

    def exists(self, relative: str) -> bool:
        """Whether the object ``relative`` exists."""
        with self.failures(f"look up {self.shown(relative)}"):
            info = self.filesystem.get_file_info(self.path(relative))
        return bool(info.type == pafs.FileType.File)

    def copy(self, source: str, target: str) -> None:
        """Copy the object ``source`` over ``target`` inside the store (no download)."""
        with self.failures(f"copy {self.shown(source)} to {self.shown(target)}"):
            self.filesystem.copy_file(self.path(source), self.path(target))

    def delete(self, relatives: list[str]) -> None:
        """Delete the objects ``relatives`` (one already gone is fine)."""
        with self.failures(f"delete objects under {self.shown()}"):
            for relative in relatives:
                try:
                    self.filesystem.delete_file(self.path(relative))
                except FileNotFoundError:
                    continue

    @contextmanager
    def failures(self, doing: str) -> Iterator[None]:
        """Turn a refusal of the store (credentials, a missing bucket, no connection) in the
        block into :class:`DataStoreError` (``doing``: what was being done)."""
        try:
            yield
        except FileNotFoundError:
            raise
        except (OSError, pa.ArrowException) as exc:
            raise DataStoreError(shown_location(self.location), doing, exc) from None


def open_store(location: DataLocation) -> Store:
    """The :class:`Store` of ``location``; an object store's filesystem is made once per
    process (and location)."""
    if isinstance(location, Path):
        return LocalStore(location)
    return _object_store(location)


@lru_cache(maxsize=8)
def _object_store(location: DataUrl) -> ObjectStore:
    try:
        filesystem, root = pafs.FileSystem.from_uri(location)
    except (pa.ArrowException, ValueError) as exc:
        msg = (
            f"KASSA_DATA_DIR={shown_location(location)!r} cannot be opened ({exc}); see "
            "docs/daily.md, 'Object storage', for its forms and options"
        )
        raise SettingsError(msg) from None
    return ObjectStore(location, filesystem, root.rstrip("/"))


def temporary_path(final: Path) -> Path:
    """A hidden name beside ``final`` for a file being written (readers skip it)."""
    return final.with_name(f".{final.name}.{uuid.uuid4().hex}.tmp")


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def commit(temporary: Path, final: Path) -> None:
    """fsync ``temporary``, rename it over ``final`` and fsync the folder."""
    with temporary.open("rb+") as handle:
        os.fsync(handle.fileno())
    temporary.replace(final)
    _fsync_dir(final.parent)
