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

import json
import os
import shutil
import stat
import tarfile
import tempfile
import zipfile
from pathlib import Path

from specimen import SpecimenError
from specimen.artefacts import ARCHIVE_SUFFIXES, atomic_dir
from specimen.data.entries import (
    DAMAGED,
    UNSAFE,
    Budget,
    Source,
    check_name,
    is_junk,
    make_dir,
    reading,
    refusal,
    write_file,
)

TAR_TAIL = 1 << 16  # bytes after a tar's last entry checked to be zeros (padding to a record is 10 KB)


def extract(
    raw_dir: Path, out_dir: Path, max_total_mb: float, max_ratio: float = 200, max_files: int = 2_000_000
) -> dict:
    """Unpack the archive named in raw_dir/source.json into out_dir/<name>/; see the module docstring."""
    meta = json.loads((Path(raw_dir) / "source.json").read_text())
    archive = Path(raw_dir) / meta["archive"]
    budget = Budget(int(max_total_mb * 1e6), max_ratio, max_files)
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
            raise SpecimenError(
                f"{where}: the archive holds no files{junk}: check dataset.source (is it the dataset's archive?)"
            )
    return {"files": budget.files, "skipped": budget.skipped, "target": str(Path(out_dir) / meta["name"])}


# -- names --------------------------------------------------------------------------------------


# -- writing ------------------------------------------------------------------------------------


# -- zip ----------------------------------------------------------------------------------------


def _zip_members(zf: zipfile.ZipFile, source: Source) -> list[tuple[zipfile.ZipInfo, str]]:
    """Check every entry against the central directory before anything is written; (info, path) to extract."""
    where, budget = source.label, source.budget
    declared = budget.bytes
    todo = []
    for info in zf.infolist():
        rel = check_name(where, info.filename)
        is_dir = info.filename.replace("\\", "/").endswith("/")
        if not is_dir:
            budget.count_entry(where, info.filename)
        if rel is None:
            if is_dir:
                continue
            raise refusal(where, info.filename, f"a file with no name; {UNSAFE}")
        if is_junk(rel):
            budget.skipped += not is_dir
            continue
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise refusal(where, info.filename, f"symbolic links are not allowed; {UNSAFE}")
        if stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise refusal(where, info.filename, f"device files and fifos are not allowed; {UNSAFE}")
        if not is_dir:
            declared += info.file_size
            budget.check_total(declared, where, info.filename)
            budget.check_ratio(info.file_size, info.compress_size, where, info.filename, "it")
        todo.append((info, rel))
    return todo


def _extract_zip(archive: Path, dest: Path, source: Source) -> None:
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise SpecimenError(f"{source.label}: not a readable zip archive ({e}): {DAMAGED}") from None
    with zf:
        for info, rel in _zip_members(zf, source):
            if info.filename.replace("\\", "/").endswith("/"):
                make_dir(dest, rel, source.label, info.filename)
                continue
            with reading(source.label, info.filename), zf.open(info) as stream:
                write_file(stream, dest, rel, info.file_size, source, info.filename)


# -- tar ----------------------------------------------------------------------------------------


def _tar_members(tf: tarfile.TarFile, dest: Path, source: Source):
    """Yield (member, path) for each entry to extract, refusing hostile ones as the stream goes by."""
    where, budget = source.label, source.budget
    for m in tf:
        rel = check_name(where, m.name)
        if not m.isdir():
            budget.count_entry(where, m.name)
        if rel is None:
            if m.isdir():
                continue
            raise refusal(where, m.name, f"a file with no name; {UNSAFE}")
        if is_junk(rel):
            budget.skipped += not m.isdir()
            continue
        if m.issym() or m.islnk():
            raise refusal(where, m.name, f"symbolic and hard links are not allowed; {UNSAFE}")
        if m.ischr() or m.isblk() or m.isfifo():
            raise refusal(where, m.name, f"device files and fifos are not allowed; {UNSAFE}")
        if not (m.isfile() or m.isdir()):
            raise refusal(where, m.name, f"unsupported tar entry type {m.type!r}; {UNSAFE}")
        try:
            tarfile.data_filter(m, str(dest))
        except tarfile.FilterError as e:
            raise refusal(where, m.name, f"{e}; {UNSAFE}") from None
        if m.isfile():
            budget.check_total(budget.bytes + m.size, where, m.name)
        yield m, rel


def _extract_tar(archive: Path, dest: Path, source: Source) -> None:
    try:
        tf = tarfile.open(archive)
    except (tarfile.TarError, OSError) as e:
        raise SpecimenError(f"{source.label}: not a readable tar archive ({e}): {DAMAGED}") from None
    with tf, reading(source.label, "(a tar header)"):
        for m, rel in _tar_members(tf, dest, source):
            if m.isdir():
                make_dir(dest, rel, source.label, m.name)
                continue
            with reading(source.label, m.name), tf.extractfile(m) as stream:
                write_file(stream, dest, rel, m.size, source, m.name)
        _check_tar_end(tf, source.label)


def _check_tar_end(tf: tarfile.TarFile, where: str) -> None:
    """Only zeros may follow the last entry: tarfile stops silently at a damaged header, losing the rest."""
    tf.fileobj.seek(tf.offset)  # the block that ended the iteration
    if tf.fileobj.read(TAR_TAIL).strip(b"\0"):
        last = tf.members[-1].name if tf.members else "(none)"
        raise SpecimenError(
            f"{where}: unreadable data after entry {last!r} (a damaged header, or archives joined "
            "together): the rest of the archive would be lost; repack it"
        )


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


def _extract_archive(archive: Path, dest: Path, label: str, budget: Budget) -> None:
    source = Source(label, archive.stat().st_size, budget)
    kind = _kind(archive)
    if kind == "zip":
        _extract_zip(archive, dest, source)
    elif kind == "tar":
        _extract_tar(archive, dest, source)
    else:
        raise SpecimenError(f"{label}: neither a zip nor a tar archive: {DAMAGED}")


def _single_archive(target: Path, budget: Budget) -> Path | None:
    """The one file extracted, when it is itself a zip or tar (recognised by its suffix and its content)."""
    if budget.files != 1:
        return None
    (only,) = (p for p in target.rglob("*") if p.is_file())
    return only if only.name.lower().endswith(ARCHIVE_SUFFIXES) and _kind(only) else None
