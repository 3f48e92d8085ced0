"""The extracted dataset: ``data/extracted/files.csv``, one row per file the archive holds, and
where its bytes lie, read in place by ingest, preprocess and search.

``files.csv`` has the columns ``path`` (``<name>/<path in the archive>``, the manifest's ``path``),
``archive`` (a zip, relative to the folder: ``../raw/<name>.zip`` for a zip download, which is read
where it lies; ``pack.zip`` beside the listing for a tar, repacked; ``nested.zip`` for a zip found
inside the archive), ``member`` (the entry's name in that zip) and ``bytes``. extract has checked
every entry (names, links, sizes, the bytes themselves), so reading one is reading a checked file.

A zip is opened once per process (its central directory read once): a forked worker opens its own.
"""

from __future__ import annotations

import contextlib
import os
import zipfile
from pathlib import Path

import pandas as pd

from specimen import SpecimenError

LISTING = "files.csv"
COLUMNS = ["path", "archive", "member", "bytes"]

_ZIPS: dict[str, tuple[tuple, zipfile.ZipFile]] = {}


def _zip(archive: str) -> zipfile.ZipFile:
    """The zip, opened once in this process and kept open for its next call (opened again when
    the file was replaced, or in a forked child, which must not share the parent's file offset)."""
    st = os.stat(archive)
    key = (os.getpid(), st.st_ino, st.st_mtime_ns, st.st_size)
    known = _ZIPS.get(archive)
    if known is None or known[0] != key:
        if known is not None and known[0][0] == key[0]:
            known[1].close()
        known = _ZIPS[archive] = (key, zipfile.ZipFile(archive))
    return known[1]


def read_member(archive: str, member: str) -> bytes:
    """The bytes of one member of a zip."""
    return _zip(archive).read(member)


class Extracted:
    """The listing of an extract output folder: its files' paths, sizes and bytes."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        listing = self.folder / LISTING
        if not listing.is_file():
            raise SpecimenError(
                f"{self.folder}: no {LISTING} in it: it is not the output of specimen extract (or an old one); "
                f"run specimen extract again"
            )
        table = pd.read_csv(listing, dtype={"path": str, "archive": str, "member": str}, keep_default_na=False)
        self.paths: list[str] = list(table.path)
        self._where = {
            p: (os.path.normpath(self.folder / a), m, int(b))
            for p, a, m, b in zip(table.path, table.archive, table.member, table.bytes)
        }

    def where(self, path: str) -> tuple[str, str]:
        """(zip file, member) holding `path`."""
        archive, member, _ = self._where[path]
        return archive, member

    def size(self, path: str) -> int:
        return self._where[path][2]

    def read(self, path: str) -> bytes:
        with self._reading(path) as (archive, member):
            return read_member(archive, member)

    def open(self, path: str):
        """A seekable binary stream of the file's bytes (not held in memory at once)."""
        with self._reading(path) as (archive, member):
            return _zip(archive).open(member)

    @contextlib.contextmanager
    def _reading(self, path: str):
        archive, member, _ = self._where[path]
        try:
            yield archive, member
        except (OSError, KeyError, zipfile.BadZipFile) as e:
            raise SpecimenError(
                f"{archive}: cannot read {member!r} ({e}): the archive changed after extract; run specimen extract again"
            ) from None
