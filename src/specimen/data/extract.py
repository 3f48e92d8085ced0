"""extract: check data/raw/<archive> entry by entry and list its files in data/extracted/files.csv,
refusing hostile entries; the images stay in the archive, read in place (specimen.data.extracted).

Zip and tar (``.tar``, ``.tar.gz``, ``.tgz``, ``.tar.bz2``, ``.tar.xz``) are read with the standard
library, and every file's bytes are read through a byte counter. A zip is listed where it lies
(``archive`` = ``../raw/<name>.zip``): no second copy of the images. A tar cannot be read at an
entry's offset, so its files are repacked into ``pack.zip`` (stored, fixed times: the same bytes on
every machine). The output folder appears complete or not at all.

Refused, with a one-line error that names the archive and the entry:

- a name that would land outside the target: absolute (``/x``, ``\\x``, ``C:x``) or climbing out
  with ``..`` once normalised (a backslash counts as a separator, as Windows tools mean it);
- two files of one name (once normalised), or a file where a folder is;
- symbolic and hard links, device files, fifos (tar entries also pass ``tarfile.data_filter``);
- bombs: more than ``extract.max_files`` files, more than ``extract.max_total_mb`` in all (both
  levels of a nested archive together), a compression ratio above ``extract.max_ratio`` (a zip
  entry over 1 MB; a whole archive against its size on disk). Headers are checked first, then the
  bytes actually read are counted, since headers can lie.

Skipped without error, and counted in the result: macOS junk (``__MACOSX/``, ``._*``) and dotfiles
or dot-folders (``.DS_Store``, ``.git/``). Windows junk (``Thumbs.db``, ``desktop.ini``) is kept, so
that ingest rejects it with a reason.

An archive that holds a single archive (Kaggle often zips a zip) is opened once more, in place of
that file, with the same checks: the inner zip is kept as ``nested.zip`` (an inner tar is repacked
into ``pack.zip``); a third level is left as it is. An archive that holds no file (empty, folders
only, or junk only, at either level) is a one-line error too.
"""

from __future__ import annotations

import json
import os
import posixpath
import shutil
import stat
import tarfile
import zipfile
from pathlib import Path

import pandas as pd

from specimen import SpecimenError
from specimen.artefacts import ARCHIVE_SUFFIXES, atomic_dir, write_csv, zip_entry
from specimen.data.entries import (
    CHUNK,
    DAMAGED,
    UNSAFE,
    Budget,
    Discard,
    Listing,
    Source,
    check_name,
    copy_limited,
    is_junk,
    reading,
    refusal,
)
from specimen.data.extracted import COLUMNS, LISTING

PACK, NESTED = "pack.zip", "nested.zip"  # beside the listing: a tar's files repacked, a zip inside the zip

TAR_TAIL = 1 << 16  # bytes after a tar's last entry checked to be zeros (padding to a record is 10 KB)


def extract(
    raw_dir: Path, out_dir: Path, max_total_mb: float, max_ratio: float = 200, max_files: int = 2_000_000
) -> dict:
    """List the archive named in raw_dir/source.json in out_dir/files.csv; see the module docstring."""
    meta = json.loads((Path(raw_dir) / "source.json").read_text())
    archive = Path(raw_dir) / meta["archive"]
    budget = Budget(int(max_total_mb * 1e6), max_ratio, max_files)
    with atomic_dir(out_dir) as tmp:
        listing = Listing()
        where = archive.name
        _list_archive(archive, os.path.relpath(archive, out_dir), "", tmp, where, listing, budget)
        inner = _single_archive(listing, archive, tmp, budget)
        if inner is not None:  # Kaggle often zips a zip: open it, in place of that file
            rel, path = inner
            where = f"{archive.name} > {rel}"
            listing = Listing()
            budget.files -= 1
            (tmp / PACK).unlink(missing_ok=True)  # a tar's pack held only the inner archive
            _list_archive(path, path.name, posixpath.dirname(rel), tmp, where, listing, budget)
            if path.name != NESTED:  # a tar, repacked: the copy is not needed
                path.unlink()
        if budget.files == 0:
            junk = f" ({budget.skipped} macOS/dotfile entries skipped)" if budget.skipped else ""
            raise SpecimenError(
                f"{where}: the archive holds no files{junk}: check dataset.source (is it the dataset's archive?)"
            )
        rows = [
            {"path": f"{meta['name']}/{rel}", "archive": a, "member": m, "bytes": n}
            for rel, (a, m, n) in sorted(listing.files.items())
        ]
        write_csv(tmp / LISTING, pd.DataFrame(rows, columns=COLUMNS))
    return {"files": budget.files, "skipped": budget.skipped, "listing": str(Path(out_dir) / LISTING)}


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


def _list_zip(archive: Path, ref: str, prefix: str, source: Source, listing: Listing) -> None:
    """Read every entry's bytes through the counter (they are checked, not kept) and list it."""
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise SpecimenError(f"{source.label}: not a readable zip archive ({e}): {DAMAGED}") from None
    with zf:
        for info, rel in _zip_members(zf, source):
            rel = posixpath.join(prefix, rel)
            if info.filename.replace("\\", "/").endswith("/"):
                listing.add_dir(rel, source.label, info.filename)
                continue
            with reading(source.label, info.filename), zf.open(info) as stream:
                copy_limited(stream, Discard(), info.file_size, source, info.filename)
            listing.add(rel, (ref, info.filename, info.file_size), source, info.filename)


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


def _pack_tar(archive: Path, dest: Path, prefix: str, source: Source, listing: Listing) -> None:
    """Copy every file entry, through the counter, into dest/pack.zip, and list it there."""
    try:
        tf = tarfile.open(archive)
    except (tarfile.TarError, OSError) as e:
        raise SpecimenError(f"{source.label}: not a readable tar archive ({e}): {DAMAGED}") from None
    with tf, zipfile.ZipFile(dest / PACK, "w", zipfile.ZIP_STORED) as pack, reading(source.label, "(a tar header)"):
        for m, rel in _tar_members(tf, dest, source):
            rel = posixpath.join(prefix, rel)
            if m.isdir():
                listing.add_dir(rel, source.label, m.name)
                continue
            listing.add(rel, (PACK, rel, m.size), source, m.name)
            entry = zip_entry(rel)
            entry.file_size = m.size  # tells zipfile whether the entry needs zip64
            with reading(source.label, m.name), tf.extractfile(m) as stream, pack.open(entry, "w") as out:
                copy_limited(stream, out, m.size, source, m.name)
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


def _list_archive(
    archive: Path, ref: str, prefix: str, dest: Path, label: str, listing: Listing, budget: Budget
) -> None:
    """List a zip where it lies (as `ref`), or repack a tar into dest/pack.zip; names below `prefix`."""
    source = Source(label, archive.stat().st_size, budget)
    kind = _kind(archive)
    if kind == "zip":
        _list_zip(archive, ref, prefix, source, listing)
    elif kind == "tar":
        _pack_tar(archive, dest, prefix, source, listing)
    else:
        raise SpecimenError(f"{label}: neither a zip nor a tar archive: {DAMAGED}")


def _single_archive(listing: Listing, archive: Path, dest: Path, budget: Budget) -> tuple[str, Path] | None:
    """The one file listed, copied out to dest/nested.zip (or nested.tar), when it is itself a zip
    or tar (by its suffix and its content): (its path, the copy)."""
    if budget.files != 1:
        return None
    ((rel, (ref, member, _)),) = listing.files.items()
    if not rel.lower().endswith(ARCHIVE_SUFFIXES):
        return None
    copy = dest / (NESTED if rel.lower().endswith(".zip") else "nested.tar")
    with zipfile.ZipFile(dest / PACK if ref == PACK else archive) as zf:
        with zf.open(member) as stream, open(copy, "wb") as out:
            shutil.copyfileobj(stream, out, CHUNK)
    if _kind(copy) is None:
        copy.unlink()
        return None
    return rel, copy
