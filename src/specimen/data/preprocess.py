"""preprocess: decode every kept image, EXIF-rotate, convert, resize; write shards + an index.

Each image is decoded with Pillow (EXIF orientation applied; CMYK, greyscale, 16-bit, palette and
alpha converted to RGB, transparency over black) and brought to ``image.size`` (height, width):

- ``pad``: resized proportionally to fit, centred on a zero canvas (nothing lost, nothing bent);
- ``crop``: resized proportionally to cover, centre-cropped (fills the frame, loses the edges);
- ``stretch``: resized to the size, aspect ratio ignored.

JPEGs much larger than the target are decoded at 1/2, 1/4 or 1/8 scale by libjpeg itself
(Pillow's ``draft``), which is most of the speed. Workers decode in parallel (``OMP_NUM_THREADS``
when Snakemake runs the job, else all cores) one chunk of the manifest ahead of the writer,
straight into a memory-mapped buffer in /dev/shm (no pixels through pipes), and rows are written
in manifest order as they come: memory holds two chunks (``preprocess.shard_size``
rows each), whatever the number of images, and the shards do not depend on the number of
cores. The two buffers are reserved before the first image is decoded: where /dev/shm has no room
for them (Docker gives it 64 MB), they go to the temporary folder on disk instead, with a note. A
worker killed part-way (by the out-of-memory killer, or a signal) stops the stage within seconds
with a one-line error, rather than leaving it waiting for that worker's images. An image that fails to decode, or is over ``image.max_pixels``, becomes a row of
``rejects.csv``. A manifest with no train or no test image, or whose train or test images all fail
to decode, is a one-line error: training or evaluate would have nothing to work on.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
import tempfile
import zipfile
import zlib
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

from specimen import SpecimenError
from specimen.artefacts import CSV_OPTIONS, atomic_dir, remove_left_by_dead, write_json
from specimen.data.extracted import Extracted, read_located
from specimen.data.images import load_image
from specimen.shards import shard_name, write_shard
from specimen.workers import process_pool, workers

INDEX_COLUMNS = ["id", "label", "split", "sha256", "width", "height", "shard", "offset", "y0", "x0", "y1", "x1"]
REJECT_COLUMNS = ["id", "path", "label", "split", "stage", "reason"]
WORKER_DIED = (
    "a decoding worker died part-way (killed by the out-of-memory killer or a signal, see dmesg): "
    "nothing was kept; give the job more memory (Snakemake: --resources mem_mb), or lower "
    "preprocess.shard_size or the number of workers (OMP_NUM_THREADS), and run it again"
)


def preprocess(manifest_path: Path, extracted: Path, out_dir: Path, image: dict, shard_size: int) -> int:
    """Stream the manifest a shard's worth of rows at a time; return the number of images kept.
    The manifest's paths are those of extract's listing (data/extracted/files.csv): each image is
    read from its archive in place."""
    height, width = image["size"]
    job = (height, width, image["color"], image["resize"], image.get("max_pixels"))
    total, counts = split_counts(manifest_path, shard_size)  # one read of the manifest before decoding
    check_splits(manifest_path, counts)
    kept = rejected = 0
    kept_in = {}  # kept images per split
    first_reject = {}  # split: (id, reason) of its first image that failed to decode
    n_workers = workers()
    shape = (shard_size, height, width, 1 if image["color"] == "grey" else 3)
    # workers whose deaths are seen (specimen.workers), forked before the listing is read and the
    # progress bar starts: they stay small, and read each image at its place in the zip
    with (
        atomic_dir(out_dir) as tmp,
        _buffers(shape) as buffers,  # two chunks in flight
        process_pool(n_workers, WORKER_DIED, _init_worker, (image.get("max_pixels"),)) as pool,
        tqdm(total=total, desc="preprocess", unit="img", mininterval=1) as bar,
    ):
        listing = Extracted(extracted)
        (tmp / "shards").mkdir()
        shards_written = 0
        index_csv, rejects_csv = (
            _open_csv(tmp / "index.csv", INDEX_COLUMNS),
            _open_csv(tmp / "rejects.csv", REJECT_COLUMNS),
        )
        submitted_chunks = 0

        def submit(chunk: pd.DataFrame):
            nonlocal submitted_chunks
            buffer = buffers[submitted_chunks % 2]
            submitted_chunks += 1
            ok = chunk[chunk.status == "ok"]
            jobs = [(listing.located(p), i, buffer, shape, *job) for i, p in enumerate(ok.path)]
            return chunk, buffer, pool.map(_work, jobs, chunksize=max(1, min(16, len(jobs) // (4 * n_workers))))

        def write(chunk: pd.DataFrame, buffer: str, pending) -> None:
            """This chunk's kept images become one shard, its rows the index's and rejects' next rows."""
            nonlocal kept, rejected, shards_written
            results = enumerate(list(pending))
            shard = shard_name(shards_written)
            rows, rejects, slots = [], [], []
            for rec in chunk.to_dict("records"):  # manifest order, whatever the chunking
                if rec["status"] != "ok":
                    rejects.append({**rec, "stage": "ingest"})
                    continue
                slot, (box, reason) = next(results)
                if box is None:
                    rejects.append({**rec, "stage": "preprocess", "reason": reason})
                    continue
                rows.append({**rec, "shard": shard, "offset": len(slots), **dict(zip(("y0", "x0", "y1", "x1"), box))})
                slots.append(slot)
            if slots:
                write_shard(tmp / "shards" / shard, np.memmap(buffer, dtype=np.uint8, mode="r", shape=shape), slots)
                shards_written += 1
            _append(index_csv, rows, INDEX_COLUMNS)
            _append(rejects_csv, rejects, REJECT_COLUMNS)
            kept, rejected = kept + len(rows), rejected + len(rejects)
            for row in rows:
                kept_in[row["split"]] = kept_in.get(row["split"], 0) + 1
            for row in rejects:
                if row["stage"] == "preprocess":
                    first_reject.setdefault(row["split"], (row["id"], row["reason"]))
            bar.update(len(chunk))

        # Two chunks in flight at most: workers decode the next while this one is written.
        in_flight = None
        for chunk in pd.read_csv(manifest_path, keep_default_na=False, dtype=str, chunksize=shard_size):
            submitted = submit(chunk)
            if in_flight:
                write(*in_flight)
            in_flight = submitted
        if in_flight:
            write(*in_flight)
        index_csv.close()
        rejects_csv.close()
        for split in SPLIT_USERS:
            if split in first_reject and not kept_in.get(split):
                image_id, reason = first_reject[split]
                raise SpecimenError(
                    f"{manifest_path}: none of the {split} images could be decoded ({image_id}: {reason}), "
                    f"so {SPLIT_USERS[split]} would have nothing: replace them with readable images"
                )
        write_json(
            tmp / "meta.json",
            {
                "size": [height, width],
                "resize": image["resize"],
                "color": image["color"],
                "channels": 1 if image["color"] == "grey" else 3,
                "images": kept,
                "rejected": rejected,
            },
        )
    return kept


_BUFFERS: dict[str, np.ndarray] = {}


def _buffer(path: str, shape) -> np.ndarray:
    """A chunk's pixel buffer: a memory-mapped scratch file that workers and writer share."""
    if path not in _BUFFERS:
        _BUFFERS[path] = np.memmap(path, dtype=np.uint8, mode="r+", shape=shape)
    return _BUFFERS[path]


def _work(job):
    """Decode one image into its slot of the chunk's shared buffer; return only (box, reason),
    so no pixels travel through the pool's pipes (that copy was half the cost)."""
    located, slot, buffer, shape, *args = job
    archive, member = located[:2]
    try:
        data = read_located(located)
    except (OSError, KeyError, zipfile.BadZipFile, zlib.error) as e:  # the archive changed after extract
        return None, f"cannot read it from {Path(archive).name} ({e}): run specimen extract again"
    img, box, reason = load_image(data, *args, name=member.replace("\\", "/").rsplit("/", 1)[-1])
    if img is not None:
        _buffer(buffer, shape)[slot] = img
    return box, reason


def _init_worker(max_pixels: int | None) -> None:
    cv2.setNumThreads(1)  # one process per core already: OpenCV's own threads would oversubscribe
    if max_pixels:  # Pillow's own bomb guard follows image.max_pixels, as in ingest
        Image.MAX_IMAGE_PIXELS = max_pixels


@contextlib.contextmanager
def _buffers(shape):
    """The two chunk buffers' paths, their bytes reserved (posix_fallocate) so that a full file
    system is an error now, not a SIGBUS in a worker later: in shared memory (/dev/shm) where it has
    room, else in the system's temporary folder. The folder's name holds the process id, so what a
    killed run left there (memory, in /dev/shm) is removed by the next run."""
    size = int(np.prod(shape))
    shm = Path("/dev/shm")
    roots = [shm] if shm.is_dir() and os.access(shm, os.W_OK) else []
    roots.append(Path(tempfile.gettempdir()))
    for n, root in enumerate(roots):
        remove_left_by_dead(root.glob("specimen-preprocess-*-*"), lambda left: left.name.split("-")[2])
        with tempfile.TemporaryDirectory(prefix=f"specimen-preprocess-{os.getpid()}-", dir=root) as folder:
            paths = [str(Path(folder) / f"chunk-{i}.u8") for i in (0, 1)]
            try:
                for path in paths:
                    with open(path, "wb") as f:
                        os.posix_fallocate(f.fileno(), 0, size)
            except OSError as e:
                if e.errno not in (errno.ENOSPC, errno.EFBIG) or n == len(roots) - 1:
                    raise SpecimenError(
                        f"no room for two {size / 2**20:.0f} MiB image buffers in {root}: free some space there, "
                        "or lower preprocess.shard_size or image.size"
                    ) from None
                print(
                    f"preprocess: {root} has no room for two {size / 2**20:.0f} MiB image buffers "
                    f"(a container's default /dev/shm is 64 MB): using {roots[n + 1]} on disk instead",
                    file=sys.stderr,
                )
                continue
            yield paths
            return


def _open_csv(path: Path, columns: list[str]):
    """A CSV written a chunk at a time, with the same CSV_OPTIONS as files.write_csv."""
    f = open(path, "w", encoding="utf-8", newline="")
    f.write(",".join(columns) + "\n")
    return f


def _append(f, rows: list[dict], columns: list[str]) -> None:
    if rows:
        pd.DataFrame(rows, columns=columns).to_csv(f, header=False, **CSV_OPTIONS)


SPLIT_USERS = {"train": "training", "test": "evaluate"}  # the splits a run cannot do without


def split_counts(manifest_path: Path, chunk: int) -> tuple[int, dict]:
    """(rows, {split: images ingest kept in it}), reading the manifest a chunk at a time."""
    rows, counts = 0, {}
    for part in pd.read_csv(
        manifest_path, usecols=["split", "status"], dtype=str, keep_default_na=False, chunksize=max(chunk, 10_000)
    ):
        rows += len(part)
        for split, n in part[part.status == "ok"].split.value_counts().items():
            counts[split] = counts.get(split, 0) + int(n)
    return rows, counts


def check_splits(manifest_path: Path, counts: dict) -> None:
    """Refuse, before decoding anything, a manifest with no train or no test image."""
    have = ", ".join(f"{s} {counts[s]}" for s in ("train", "valid", "test") if counts.get(s)) or "none"
    todo = {
        "train": "give the dataset training images (a train/ folder, or train rows in its labels file)",
        "test": "give the dataset test images (a test/ folder, or test rows in its labels file), or, without "
        "split folders, a dataset.split.test above 0 and more images per class (with train and valid folders only: "
        "dataset.merge_train_valid: true splits the test images off them)",
    }
    for split, stage in SPLIT_USERS.items():
        if not counts.get(split):
            raise SpecimenError(
                f"{manifest_path}: no image in the {split} split (kept images per split: {have}), "
                f"so {stage} would have nothing: {todo[split]}"
            )
