"""extract: unpack data/raw/<archive> into data/extracted/<name>/, refusing hostile entries.

An entry that would land outside the target (absolute path, ``..``), a link or a device file, or
an archive that would unpack to more than ``extract.max_total_mb``, stops the stage with an error
that names the entry; nothing is left half-extracted.
"""
from __future__ import annotations

import json
import posixpath
import stat
import tarfile
import zipfile
from pathlib import Path

from specimen import SpecimenError
from specimen.files import atomic_dir


def _check_name(archive: Path, name: str) -> None:
    norm = posixpath.normpath(name.replace("\\", "/"))
    if name.startswith(("/", "\\")) or norm == ".." or norm.startswith("../") or ":" in name.split("/")[0]:
        raise SpecimenError(f"{archive.name}: refusing entry {name!r}: it would be written outside the target folder")


def _extract_zip(archive: Path, target: Path, max_bytes: int) -> int:
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        for info in infos:
            _check_name(archive, info.filename)
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise SpecimenError(f"{archive.name}: refusing entry {info.filename!r}: symbolic links are not allowed")
        total = sum(i.file_size for i in infos)
        if total > max_bytes:
            raise SpecimenError(f"{archive.name}: unpacks to {total / 1e6:.0f} MB, over extract.max_total_mb ({max_bytes / 1e6:.0f}); raise it in params.yaml if you trust this archive")
        zf.extractall(target)
        return sum(1 for i in infos if not i.is_dir())


def _extract_tar(archive: Path, target: Path, max_bytes: int) -> int:
    try:
        tf = tarfile.open(archive)
    except tarfile.TarError as e:
        raise SpecimenError(f"{archive.name}: not a readable tar archive ({e})") from None
    with tf:
        members = tf.getmembers()
        for m in members:
            _check_name(archive, m.name)
            if not (m.isfile() or m.isdir()):
                raise SpecimenError(f"{archive.name}: refusing entry {m.name!r}: links and device files are not allowed")
        total = sum(m.size for m in members)
        if total > max_bytes:
            raise SpecimenError(f"{archive.name}: unpacks to {total / 1e6:.0f} MB, over extract.max_total_mb ({max_bytes / 1e6:.0f}); raise it in params.yaml if you trust this archive")
        tf.extractall(target, filter="data")
        return sum(1 for m in members if m.isfile())


def extract(raw_dir: Path, out_dir: Path, max_total_mb: float) -> dict:
    meta = json.loads((raw_dir / "source.json").read_text())
    archive = raw_dir / meta["archive"]
    max_bytes = int(max_total_mb * 1e6)
    with atomic_dir(out_dir) as tmp:
        target = tmp / meta["name"]
        target.mkdir()
        if zipfile.is_zipfile(archive):
            n = _extract_zip(archive, target, max_bytes)
        elif tarfile.is_tarfile(archive):
            n = _extract_tar(archive, target, max_bytes)
        else:
            raise SpecimenError(f"{archive.name}: neither a zip nor a tar archive")
    return {"files": n, "target": str(out_dir / meta["name"])}
