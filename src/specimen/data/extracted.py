"""The extracted dataset: ``data/extracted/files.csv``, one row per file the archive holds, and
where its bytes lie, read in place by ingest, preprocess and search.

``files.csv`` has the columns ``path`` (``<name>/<path in the archive>``, the manifest's ``path``),
``archive`` (a zip, relative to the folder: ``../raw/<name>.zip`` for a zip download, which is read
where it lies; ``pack.zip`` beside the listing for a tar, repacked; ``nested.zip`` for a zip found
inside the archive), ``member`` (the entry's name in that zip) and ``bytes``. extract has checked
every entry (names, links, sizes, the bytes themselves), so reading one is reading a checked file.

A zip is opened once per process (its central directory read once): a forked worker opens its own.
Where a process reads many members (preprocess's workers), it reads them by their place instead
(``Extracted.located``, ``read_located``): the listing's process reads each zip's central directory
once, keeps four numbers per file (the member's offset, packed size, CRC and method), and the
workers read the member's bytes at that offset with ``os.pread``, checking the CRC, without opening
the zip: at 100,000 files a ZipFile holds 61 MB of entries, in every process that opens it.
"""

from __future__ import annotations

import contextlib
import os
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from specimen import SpecimenError

LISTING = "files.csv"
COLUMNS = ["path", "archive", "member", "bytes"]

_ZIPS: dict[str, tuple[tuple, zipfile.ZipFile]] = {}
_FILES: dict[str, tuple[tuple, int]] = {}  # archive: (its identity, a file descriptor), for read_located
LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")  # a zip entry's local file header (APPNOTE.TXT 4.3.7)


def _opened(cache: dict, archive: str, open_, close):
    """`open_(archive)`, opened once in this process and kept in `cache` for its next call (opened
    again when the file was replaced, or in a forked child, which must not share the parent's)."""
    st = os.stat(archive)
    key = (os.getpid(), st.st_ino, st.st_mtime_ns, st.st_size)
    known = cache.get(archive)
    if known is None or known[0] != key:
        if known is not None and known[0][0] == key[0]:
            close(known[1])
        known = cache[archive] = (key, open_(archive))
    return known[1]


def _zip(archive: str) -> zipfile.ZipFile:
    """The zip, opened once per process (a forked child must not share the parent's file offset)."""
    return _opened(_ZIPS, archive, zipfile.ZipFile, lambda zf: zf.close())


def read_member(archive: str, member: str) -> bytes:
    """The bytes of one member of a zip."""
    return _zip(archive).read(member)


def read_located(located: tuple) -> bytes:
    """The bytes of one member of a zip, from ``Extracted.located``'s (archive, member, offset, packed
    size, CRC, method): read at its offset (``os.pread``), the CRC checked. A method other than stored and deflated is read through zipfile."""
    archive, member, offset, packed, crc, method = located
    if method not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        return read_member(archive, member)
    fd = _fd(archive)
    head = os.pread(fd, LOCAL_HEADER.size, offset)
    if len(head) < LOCAL_HEADER.size or head[:4] != b"PK\x03\x04":
        raise zipfile.BadZipFile(f"no entry header at offset {offset}")
    name_len, extra_len = LOCAL_HEADER.unpack(head)[-2:]
    data = os.pread(fd, packed, offset + LOCAL_HEADER.size + name_len + extra_len)
    if len(data) < packed:
        raise zipfile.BadZipFile("the archive ends inside the entry")
    if method == zipfile.ZIP_DEFLATED:
        data = zlib.decompress(data, -15)
    if zlib.crc32(data) != crc:
        raise zipfile.BadZipFile(f"bad CRC-32 for file {member!r}")
    return data


def _fd(archive: str) -> int:
    """A read-only descriptor of `archive`, opened once per process."""
    return _opened(_FILES, archive, lambda path: os.open(path, os.O_RDONLY), os.close)


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
        # a few numbers and two strings per file (100,000 files: about 20 MB)
        self.paths: list[str] = list(table.path)
        self._row = {p: i for i, p in enumerate(self.paths)}
        codes, names = pd.factorize(table.archive)
        self._archives = [os.path.normpath(self.folder / a) for a in names]
        self._archive = codes.astype(np.int32)
        self._members: list[str] = list(table.member)
        self._bytes = table.bytes.to_numpy(dtype=np.int64)
        self._places = None  # (offset, packed size, CRC, method) per file, read on the first located()

    def where(self, path: str) -> tuple[str, str]:
        """(zip file, member) holding `path`."""
        i = self._row[path]
        return self._archives[self._archive[i]], self._members[i]

    def size(self, path: str) -> int:
        return int(self._bytes[self._row[path]])

    def located(self, path: str) -> tuple:
        """(zip file, member, offset, packed size, CRC, method) of `path`, for read_located. The first call
        reads each zip's central directory once (then closes it), keeping four numbers per file."""
        if self._places is None:
            places = np.zeros((len(self.paths), 4), dtype=np.int64)
            for code, archive in enumerate(self._archives):
                member = "its list of files"
                try:
                    with zipfile.ZipFile(archive) as zf:
                        for i in np.flatnonzero(self._archive == code):
                            info = zf.getinfo(member := self._members[i])
                            places[i] = info.header_offset, info.compress_size, info.CRC, info.compress_type
                except (OSError, KeyError, zipfile.BadZipFile) as e:
                    raise _changed(archive, member, e) from None
            self._places = places
        i = self._row[path]
        return (self._archives[self._archive[i]], self._members[i], *map(int, self._places[i]))

    def read(self, path: str) -> bytes:
        with self._reading(path) as (archive, member):
            return read_member(archive, member)

    def open(self, path: str):
        """A seekable binary stream of the file's bytes (not held in memory at once)."""
        with self._reading(path) as (archive, member):
            return _zip(archive).open(member)

    @contextlib.contextmanager
    def _reading(self, path: str):
        archive, member = self.where(path)
        try:
            yield archive, member
        except (OSError, KeyError, zipfile.BadZipFile) as e:
            raise _changed(archive, member, e) from None


def _changed(archive: str, member: str, e: Exception) -> SpecimenError:
    return SpecimenError(
        f"{archive}: cannot read {member!r} ({e}): the archive changed after extract; run specimen extract again"
    )
