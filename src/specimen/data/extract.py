"""extract: unpack data/raw/<archive> into data/extracted/<name>/, refusing hostile entries.

Zip and tar (``.tar``, ``.tar.gz``, ``.tgz``, ``.tar.bz2``, ``.tar.xz``) are read with the standard
library, and every file is written by this module, through a byte counter, inside an atomic
temporary folder: the output appears complete or not at all, nothing is ever written outside it.

Refused, with a one-line error that names the archive and the entry:

- a name that would land outside the target: absolute (``/x``, ``\\x``, ``C:x``) or climbing out
  with ``..`` once normalised (a backslash counts as a separator, as Windows tools mean it);
- symbolic and hard links, device files, fifos (tar entries also pass ``tarfile.data_filter``);
- bombs: more than ``extract.max_files`` files, more than ``extract.max_total_mb`` in all (both
  levels of a nested archive together), a compression ratio above ``extract.max_ratio`` (a zip
  entry over 1 MB; a whole archive against its size on disk). Headers are checked first, then the
  bytes actually read are counted, since headers can lie.

Skipped without error, and counted in the result: macOS junk (``__MACOSX/``, ``._*``) and dotfiles
or dot-folders (``.DS_Store``, ``.git/``). Windows junk (``Thumbs.db``, ``desktop.ini``) is kept, so
that ingest rejects it with a reason.

An archive that unpacks to a single archive (Kaggle often zips a zip) is unpacked once more, in
place of that file, with the same checks; a third level is left as it is. An archive that holds no
file (empty, folders only, or junk only, at either level) is a one-line error too.
"""
from __future__ import annotations

import contextlib
import json
import lzma
import os
import posixpath
import re
import shutil
import stat
import tarfile
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from specimen import SpecimenError
from specimen.artefacts import ARCHIVE_SUFFIXES, atomic_dir

CHUNK = 1 << 20
RATIO_FLOOR = 1 << 20  # bytes: smaller entries may compress as well as they like
TAR_TAIL = 1 << 16  # bytes after a tar's last entry checked to be zeros (padding to a record is 10 KB)
_DRIVE = re.compile(r"^[A-Za-z]:")
_UNSAFE = "the archive is damaged or crafted: repack it without this entry, or get it from a trusted source"
_TRUST = "raise {key} in params.yaml if you trust this archive"
_DAMAGED = "check dataset.source, or download the archive again if it is damaged"


def extract(raw_dir: Path, out_dir: Path, max_total_mb: float, max_ratio: float = 200,
            max_files: int = 2_000_000) -> dict:
    """Unpack the archive named in raw_dir/source.json into out_dir/<name>/; see the module docstring."""
    meta = json.loads((Path(raw_dir) / "source.json").read_text())
    archive = Path(raw_dir) / meta["archive"]
    budget = _Budget(int(max_total_mb * 1e6), max_ratio, max_files)
    with atomic_dir(out_dir) as tmp:
        target = tmp / meta["name"]
        target.mkdir()
        where = archive.name
        _extract_archive(archive, target, where, budget)
        inner = _single_archive(target, budget)
        if inner is not None:  # Kaggle often zips a zip: unpack it once, where it lies
            parked = Path(tempfile.mkdtemp(dir=tmp)) / inner.name
            os.replace(inner, parked)
            budget.files -= 1
            where = f"{archive.name} > {inner.relative_to(target).as_posix()}"
            _extract_archive(parked, inner.parent, where, budget)
            shutil.rmtree(parked.parent)
        if budget.files == 0:
            junk = f" ({budget.skipped} macOS/dotfile entries skipped)" if budget.skipped else ""
            raise SpecimenError(f"{where}: the archive holds no files{junk}: check dataset.source "
                                "(is it the dataset's archive?)")
    return {"files": budget.files, "skipped": budget.skipped, "target": str(Path(out_dir) / meta["name"])}


def _refusal(where: str, entry: str, why: str) -> SpecimenError:
    return SpecimenError(f"{where}: refusing entry {entry!r}: {why}")


@dataclass
class _Budget:
    """The limits of one extract call and what has been spent, over both levels of a nested archive."""
    max_bytes: int
    max_ratio: float
    max_files: int
    bytes: int = 0    # actually written
    entries: int = 0  # file entries seen, kept or skipped
    files: int = 0    # files written
    skipped: int = 0  # file entries skipped as macOS junk or dotfiles

    def count_entry(self, where: str, entry: str) -> None:
        self.entries += 1
        if self.entries > self.max_files:
            raise _refusal(where, entry, f"the archive holds more than extract.max_files ({self.max_files}) files; "
                           + _TRUST.format(key="extract.max_files"))

    def check_total(self, total: int, where: str, entry: str) -> None:
        if total > self.max_bytes:
            raise _refusal(where, entry, f"the archive unpacks to more than extract.max_total_mb "
                           f"({self.max_bytes / 1e6:g} MB); " + _TRUST.format(key="extract.max_total_mb"))

    def check_ratio(self, unpacked: int, packed: int, where: str, entry: str, what: str) -> None:
        if unpacked > RATIO_FLOOR and unpacked > self.max_ratio * packed:
            raise _refusal(where, entry, f"{what} is compressed more than extract.max_ratio ({self.max_ratio:g}) "
                           "times, like a zip bomb; " + _TRUST.format(key="extract.max_ratio"))


@dataclass
class _Source:
    """One archive being unpacked: its name in messages, its size on disk, the bytes written from it."""
    label: str
    size: int
    budget: _Budget
    written: int = 0


# -- names --------------------------------------------------------------------------------------

def _check_name(where: str, name: str) -> str | None:
    """The entry's path below the target (posix, normalised), None for the root itself, or refuse it."""
    s = name.replace("\\", "/")
    if "\0" in s:
        raise _refusal(where, name, f"a NUL byte in its name; {_UNSAFE}")
    if s.startswith("/") or _DRIVE.match(s) or ":" in s.split("/")[0]:
        raise _refusal(where, name, f"an absolute path would be written outside the target folder; {_UNSAFE}")
    norm = posixpath.normpath(s) if s else "."
    if norm == ".." or norm.startswith("../"):
        raise _refusal(where, name, f"it would be written outside the target folder; {_UNSAFE}")
    return None if norm == "." else norm


def _is_junk(rel: str) -> bool:
    """macOS resource forks (``__MACOSX/``, ``._x``) and dotfiles or dot-folders (``.DS_Store``, ``.git/``)."""
    return any(part == "__MACOSX" or part.startswith(".") for part in rel.split("/"))


def _inside(dest: Path, rel: str, where: str, entry: str) -> Path:
    """dest/rel, after checking that it resolves inside dest (a second line of defence)."""
    path = dest / rel
    if not os.path.realpath(path).startswith(os.path.realpath(dest) + os.sep):
        raise _refusal(where, entry, f"it would be written outside the target folder; {_UNSAFE}")
    return path


# -- writing ------------------------------------------------------------------------------------

class _Counted:
    """A reader that counts the bytes it passes on and stops at the first one beyond a limit."""

    def __init__(self, stream, declared: int, source: _Source, entry: str):
        self.stream, self.declared, self.source, self.entry = stream, declared, source, entry
        self.count = 0

    def read(self, n: int = CHUNK) -> bytes:
        data = self.stream.read(CHUNK if n is None or n < 0 else min(n, CHUNK))
        self.count += len(data)
        src, budget = self.source, self.source.budget
        if self.count > self.declared:
            raise _refusal(src.label, self.entry, f"it holds more than the {self.declared} bytes its header declares; {_UNSAFE}")
        budget.check_total(budget.bytes + len(data), src.label, self.entry)
        budget.check_ratio(src.written + len(data), src.size, src.label, self.entry, "the archive as a whole")
        budget.bytes += len(data)
        src.written += len(data)
        return data


def _copy_limited(stream, out, declared: int, source: _Source, entry: str) -> int:
    """Copy `stream` into `out` in chunks; no byte past the declared size or the limits is written."""
    counted = _Counted(stream, declared, source, entry)
    shutil.copyfileobj(counted, out, CHUNK)
    return counted.count


def _write_file(stream, dest: Path, rel: str, declared: int, source: _Source, entry: str) -> None:
    path = _inside(dest, rel, source.label, entry)
    if "/" in rel:
        _make_dir(dest, posixpath.dirname(rel), source.label, entry)
    try:
        with open(path, "xb") as out:  # "x": never through an existing file or link
            _copy_limited(stream, out, declared, source, entry)
    except FileExistsError:
        raise _refusal(source.label, entry, f"a file or folder of that name was already extracted; {_UNSAFE}") from None
    source.budget.files += 1


def _make_dir(dest: Path, rel: str, where: str, entry: str) -> None:
    try:
        _inside(dest, rel, where, entry).mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise _refusal(where, entry, f"a file already extracted is in the way of its folder; {_UNSAFE}") from None


@contextlib.contextmanager
def _reading(where: str, entry: str):
    """Turn what a damaged or crafted archive raises while reading an entry into one line."""
    try:
        yield
    except SpecimenError:
        raise
    except (OSError, EOFError, RuntimeError, NotImplementedError, ValueError, zlib.error, lzma.LZMAError,
            zipfile.BadZipFile, tarfile.TarError) as e:
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise SpecimenError(f"{where}: cannot read entry {entry!r} ({why}); the archive is damaged, encrypted or "
                            "crafted: download it again, or repack it without a password") from None


# -- zip ----------------------------------------------------------------------------------------

def _zip_members(zf: zipfile.ZipFile, source: _Source) -> list[tuple[zipfile.ZipInfo, str]]:
    """Check every entry against the central directory before anything is written; (info, path) to extract."""
    where, budget = source.label, source.budget
    declared = budget.bytes
    todo = []
    for info in zf.infolist():
        rel = _check_name(where, info.filename)
        is_dir = info.filename.replace("\\", "/").endswith("/")
        if not is_dir:
            budget.count_entry(where, info.filename)
        if rel is None:
            if is_dir:
                continue
            raise _refusal(where, info.filename, f"a file with no name; {_UNSAFE}")
        if _is_junk(rel):
            budget.skipped += not is_dir
            continue
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise _refusal(where, info.filename, f"symbolic links are not allowed; {_UNSAFE}")
        if stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise _refusal(where, info.filename, f"device files and fifos are not allowed; {_UNSAFE}")
        if not is_dir:
            declared += info.file_size
            budget.check_total(declared, where, info.filename)
            budget.check_ratio(info.file_size, info.compress_size, where, info.filename, "it")
        todo.append((info, rel))
    return todo


def _extract_zip(archive: Path, dest: Path, source: _Source) -> None:
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise SpecimenError(f"{source.label}: not a readable zip archive ({e}): {_DAMAGED}") from None
    with zf:
        for info, rel in _zip_members(zf, source):
            if info.filename.replace("\\", "/").endswith("/"):
                _make_dir(dest, rel, source.label, info.filename)
                continue
            with _reading(source.label, info.filename), zf.open(info) as stream:
                _write_file(stream, dest, rel, info.file_size, source, info.filename)


# -- tar ----------------------------------------------------------------------------------------

def _tar_members(tf: tarfile.TarFile, dest: Path, source: _Source):
    """Yield (member, path) for each entry to extract, refusing hostile ones as the stream goes by."""
    where, budget = source.label, source.budget
    for m in tf:
        rel = _check_name(where, m.name)
        if not m.isdir():
            budget.count_entry(where, m.name)
        if rel is None:
            if m.isdir():
                continue
            raise _refusal(where, m.name, f"a file with no name; {_UNSAFE}")
        if _is_junk(rel):
            budget.skipped += not m.isdir()
            continue
        if m.issym() or m.islnk():
            raise _refusal(where, m.name, f"symbolic and hard links are not allowed; {_UNSAFE}")
        if m.ischr() or m.isblk() or m.isfifo():
            raise _refusal(where, m.name, f"device files and fifos are not allowed; {_UNSAFE}")
        if not (m.isfile() or m.isdir()):
            raise _refusal(where, m.name, f"unsupported tar entry type {m.type!r}; {_UNSAFE}")
        try:
            tarfile.data_filter(m, str(dest))
        except tarfile.FilterError as e:
            raise _refusal(where, m.name, f"{e}; {_UNSAFE}") from None
        if m.isfile():
            budget.check_total(budget.bytes + m.size, where, m.name)
        yield m, rel


def _extract_tar(archive: Path, dest: Path, source: _Source) -> None:
    try:
        tf = tarfile.open(archive)
    except (tarfile.TarError, OSError) as e:
        raise SpecimenError(f"{source.label}: not a readable tar archive ({e}): {_DAMAGED}") from None
    with tf, _reading(source.label, "(a tar header)"):
        for m, rel in _tar_members(tf, dest, source):
            if m.isdir():
                _make_dir(dest, rel, source.label, m.name)
                continue
            with _reading(source.label, m.name), tf.extractfile(m) as stream:
                _write_file(stream, dest, rel, m.size, source, m.name)
        _check_tar_end(tf, source.label)


def _check_tar_end(tf: tarfile.TarFile, where: str) -> None:
    """Only zeros may follow the last entry: tarfile stops silently at a damaged header, losing the rest."""
    tf.fileobj.seek(tf.offset)  # the block that ended the iteration
    if tf.fileobj.read(TAR_TAIL).strip(b"\0"):
        last = tf.members[-1].name if tf.members else "(none)"
        raise SpecimenError(f"{where}: unreadable data after entry {last!r} (a damaged header, or archives joined "
                            "together): the rest of the archive would be lost; repack it")


# -- archives -----------------------------------------------------------------------------------

def _kind(path: Path) -> str | None:
    """'zip', 'tar' or None, from the content (a tar whose last member is a zip looks like a zip at its end)."""
    with open(path, "rb") as f:
        head = f.read(4)
    if head in (b"PK\x03\x04", b"PK\x05\x06"):
        return "zip"
    if tarfile.is_tarfile(path):
        return "tar"
    return "zip" if zipfile.is_zipfile(path) else None


def _extract_archive(archive: Path, dest: Path, label: str, budget: _Budget) -> None:
    source = _Source(label, archive.stat().st_size, budget)
    kind = _kind(archive)
    if kind == "zip":
        _extract_zip(archive, dest, source)
    elif kind == "tar":
        _extract_tar(archive, dest, source)
    else:
        raise SpecimenError(f"{label}: neither a zip nor a tar archive: {_DAMAGED}")


def _single_archive(target: Path, budget: _Budget) -> Path | None:
    """The one file extracted, when it is itself a zip or tar (recognised by its suffix and its content)."""
    if budget.files != 1:
        return None
    (only,) = (p for p in target.rglob("*") if p.is_file())
    return only if only.name.lower().endswith(ARCHIVE_SUFFIXES) and _kind(only) else None


