"""download: put the dataset's archive into data/raw/ with its source metadata.

Sources: ``demo`` (generated), ``local:PATH`` (a zip, a tar or a folder), ``kaggle:OWNER/SLUG``
and ``url:URL#sha256=HEX`` (parsed; fetched in a later release).
"""
from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

from specimen import SpecimenError
from specimen.files import ZIP_EPOCH, atomic_dir, sha256_file, write_json

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")


def parse_source(source: str) -> tuple[str, str]:
    """'kaggle:owner/slug' -> ('kaggle', 'owner/slug'); 'demo' -> ('demo', '')."""
    if source == "demo":
        return "demo", ""
    kind, sep, rest = source.partition(":")
    if not sep or kind not in ("local", "kaggle", "url") or not rest:
        raise SpecimenError(f"dataset.source {source!r}: expected demo, local:PATH, kaggle:OWNER/SLUG or url:URL#sha256=HEX")
    if kind == "kaggle" and (rest.count("/") != 1 or not all(rest.split("/"))):
        raise SpecimenError(f"dataset.source {source!r}: a Kaggle dataset is kaggle:OWNER/SLUG, e.g. kaggle:gpiosenka/yikes-spiders-15-species")
    return kind, rest


def archive_suffix(path: Path) -> str | None:
    name = path.name.lower()
    return next((s for s in ARCHIVE_SUFFIXES if name.endswith(s)), None)


def zip_folder(folder: Path, zip_path: Path) -> None:
    """A folder as a zip that depends only on the files' names and bytes (sorted, fixed times)."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink())
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_STORED) as zf:
        for path in files:
            info = zipfile.ZipInfo(path.relative_to(folder).as_posix(), date_time=ZIP_EPOCH)
            info.external_attr = 0o100644 << 16
            zf.writestr(info, path.read_bytes())


def download(source: str, out_dir: Path) -> dict:
    kind, rest = parse_source(source)
    with atomic_dir(out_dir) as tmp:
        if kind == "demo":
            from specimen.demo import make_demo

            archive = tmp / "demo.zip"
            make_demo(archive, tmp / "demo.truth.json")
            meta = {"source": "demo", "name": "demo"}
        elif kind == "local":
            path = Path(rest).expanduser()
            if not path.exists():
                raise SpecimenError(f"dataset.source local:{rest}: no such file or folder")
            if path.is_dir():
                archive = tmp / f"{path.name}.zip"
                zip_folder(path, archive)
            elif suffix := archive_suffix(path):
                archive = tmp / (path.name[: -len(suffix)] + suffix)
                shutil.copyfile(path, archive)
            else:
                raise SpecimenError(f"dataset.source local:{rest}: not a folder or a {'/'.join(ARCHIVE_SUFFIXES)} archive")
            meta = {"source": f"local:{rest}", "name": archive.name[: -len(archive_suffix(archive))]}
        elif kind == "kaggle":
            raise SpecimenError(
                f"dataset.source kaggle:{rest}: Kaggle downloads are not available in this version yet; "
                f"download the zip from kaggle.com/datasets/{rest} and set dataset.source to local:PATH/TO.zip")
        else:
            raise SpecimenError(
                "dataset.source url:...: URL downloads are not available in this version yet; "
                "download the file and set dataset.source to local:PATH")
        meta.update(archive=archive.name, sha256=sha256_file(archive), bytes=archive.stat().st_size)
        write_json(tmp / "source.json", meta)
    return meta
