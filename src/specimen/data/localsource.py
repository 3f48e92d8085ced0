"""A ``local:`` dataset's content as a dependency of download, for Snakemake and DVC alike.

DVC: the download stage in dvc.yaml depends on ``local-source`` in the project's root. When
dataset.source is ``local:PATH``, ``specimen download`` run by DVC or Snakemake (which name the
project's root in $DVC_ROOT or $SPECIMEN_PROJECT), and the Snakefile when it is read, make it a
link to that folder or archive, so ``dvc status`` hashes the dataset's every file, as DVC
hashes any dependency (again only for files whose size or time changed). For the other sources it
is a short note, the same bytes on every machine, so that a fresh clone has it and a teammate's
``dvc status`` is clean.

Snakemake: the download rule's params hold ``digest(source)``: a sha256 over every file's path
and bytes (a folder), or the archive's bytes. A file whose size, mtime and inode are those of the
last call is not read again (the sums are kept in .snakemake/specimen/local-source.json).

Either way, changing, adding or removing a file plans download and what follows; touching a file
without changing it plans nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

LINK = "local-source"
NOTE = (
    "dataset.source (params.yaml) is not a local: path, so there is nothing here to follow.\n"
    "specimen download makes this file a link to the folder or archive when it is local:PATH,\n"
    "so that Snakemake and DVC see a change of that dataset's content (README: Your own data).\n"
)
CACHE = Path(".snakemake/specimen/local-source.json")


def local_path(source: str) -> Path | None:
    """The folder or archive a ``local:PATH`` source names, as an absolute path; None for the others."""
    if not source.startswith("local:"):
        return None
    return Path(os.path.abspath(Path(source.removeprefix("local:")).expanduser()))


def dataset_files(folder: Path) -> list[Path]:
    """The files of a local dataset folder, in the order download zips them (links are left out)."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def update_link(source: str, root: Path = Path(".")) -> None:
    """Make root/local-source the link to `source`'s folder or archive, or the note when it is not
    local: (unchanged when it already is)."""
    link, target = root / LINK, local_path(source)
    if target is None:
        if link.is_symlink() or not link.is_file() or link.read_text(encoding="utf-8", errors="replace") != NOTE:
            tmp = link.with_name(f".{LINK}.tmp-{os.getpid()}")
            tmp.write_text(NOTE, encoding="utf-8")
            os.replace(tmp, link)
    elif not link.is_symlink() or os.readlink(link) != str(target):
        tmp = link.with_name(f".{LINK}.tmp-{os.getpid()}")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(target)
        os.replace(tmp, link)


def digest(source: str, cache: Path = CACHE) -> str | None:
    """sha256 of a local: dataset's content (paths and bytes of its files, or the archive's bytes);
    None for the other sources, "missing" when the path does not exist (download then says so)."""
    path = local_path(source)
    if path is None:
        return None
    if not path.exists():
        return "missing"
    try:
        known = json.loads(cache.read_text())
    except (OSError, ValueError):
        known = {}
    seen = {}

    def file_sum(file: Path) -> str:
        st = file.stat()
        key, stamp = str(file), [st.st_size, st.st_mtime_ns, st.st_ino]
        entry = known.get(key)
        if entry and entry[:3] == stamp:
            seen[key] = entry
            return entry[3]
        h = hashlib.sha256()
        with open(file, "rb") as f:
            while block := f.read(1 << 20):
                h.update(block)
        seen[key] = [*stamp, h.hexdigest()]
        return h.hexdigest()

    if path.is_dir():
        whole = hashlib.sha256()
        for file in dataset_files(path):
            whole.update(f"{file.relative_to(path).as_posix()}\0{file_sum(file)}\n".encode())
        result = whole.hexdigest()
    else:
        result = file_sum(path)
    if seen != known:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(f".{cache.name}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps(seen))
        os.replace(tmp, cache)
    return result
