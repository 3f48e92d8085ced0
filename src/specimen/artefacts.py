"""Writing artefacts: atomically (complete or absent) and byte-for-byte deterministically."""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import hashlib
import json
import os
import shutil
import zipfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
# The archives download keeps and extract unpacks.
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")


def _tmp_sibling(path: Path) -> Path:
    """A hidden name in the same folder (so os.replace is atomic) that keeps the suffix. What a
    killed writer left under such a name (its process is gone) is removed first."""
    remove_left_by_dead(
        path.parent.glob(f".{glob.escape(path.stem)}.tmp-*{glob.escape(path.suffix)}"),
        lambda left: left.name[len(path.stem) + 6 : len(left.name) - len(path.suffix) or None],
    )
    return path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")


def remove_left_by_dead(paths, pid_of) -> None:
    """Remove each of `paths` (files or folders) whose name holds, as pid_of(path) reads it, the id
    of a process that is gone: what a killed run left behind."""
    for left in paths:
        pid = pid_of(left)
        if pid.isdigit() and not process_alive(int(pid)):
            shutil.rmtree(left, ignore_errors=True) if left.is_dir() and not left.is_symlink() else left.unlink(
                missing_ok=True
            )


def process_alive(pid: int) -> bool:
    """Whether a process with this id runs (on this machine)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


@contextlib.contextmanager
def atomic_file(path: str | Path):
    """Yield a temporary path beside `path`; move it into place only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_sibling(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | Path):
    """Yield an empty temporary folder beside `path`; it replaces `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_sibling(path)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def json_text(obj) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_json(path: str | Path, obj) -> None:
    with atomic_file(path) as tmp:
        tmp.write_text(json_text(obj), encoding="utf-8")


# Every CSV artefact is written with these options: same data, same bytes.
CSV_OPTIONS = {"index": False, "lineterminator": "\n", "float_format": "%.6g"}


def write_csv(path: str | Path, frame) -> None:
    """A pandas frame as a CSV artefact, atomically."""
    with atomic_file(path) as tmp:
        frame.to_csv(tmp, **CSV_OPTIONS)


def zip_entry(name: str) -> zipfile.ZipInfo:
    """A zip entry that depends on nothing but its name: fixed time, permissions and system."""
    info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
    info.external_attr = 0o100644 << 16
    info.create_system = 3
    return info


@dataclasses.dataclass
class Streamed:
    """An array for write_npz that is written as it is made: `blocks` yields its consecutive row
    blocks (each of shape[1:] and dtype), so that no more than one block is ever held."""

    shape: tuple
    dtype: np.dtype
    blocks: Iterable[np.ndarray]


def write_npz(path: str | Path, **arrays: np.ndarray | Streamed) -> None:
    """Like numpy.savez, but with fixed entry timestamps so equal arrays give equal bytes; each array
    streamed into its entry (no copy of it in memory), a Streamed one block by block (the same bytes
    as the whole array's)."""
    with atomic_file(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:
        for name in sorted(arrays):
            value = arrays[name]
            with zf.open(zip_entry(f"{name}.npy"), "w", force_zip64=True) as entry:
                if not isinstance(value, Streamed):
                    np.lib.format.write_array(entry, np.asarray(value), allow_pickle=False)
                    continue
                dtype, rows = np.dtype(value.dtype), 0
                header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": value.shape}
                np.lib.format.write_array_header_1_0(entry, header)
                for block in value.blocks:
                    block = np.ascontiguousarray(block, dtype=dtype)
                    if block.shape[1:] != tuple(value.shape[1:]):
                        raise ValueError(f"{name}: a block of shape {block.shape} for an array of {value.shape}")
                    entry.write(block.data)
                    rows += len(block)
                if rows != value.shape[0]:
                    raise ValueError(f"{name}: {rows} rows written for an array of {value.shape[0]}")


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def working_folder(path: str | Path, settings: dict) -> bool:
    """Make `path` a working folder for a run with `settings` (JSON-able): a folder left by a run
    with other settings, or with none recorded, is emptied first. Returns whether it was."""
    path = Path(path)
    marker = path / "settings.json"
    stale = path.exists() and (
        not marker.is_file() or json.loads(marker.read_text()) != json.loads(json.dumps(settings))
    )
    if stale:
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    with atomic_file(marker) as tmp:
        tmp.write_text(json.dumps(settings))
    return stale
