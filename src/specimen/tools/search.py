"""search: the images of a dataset nearest to one image, by colour histogram (or a network's features).

    specimen search TARGET --images DIR_OR_ZIP [-n 5] [--features histogram|clip|vgg16|...] [--out CSV]

TARGET is a path to an image file, or a file name or path inside the data (``roses/12.jpg``, or
just ``12.jpg`` when one file has that name). The data is a folder (every file below it) or a zip
(every member). Without --out the table is printed; with it, written as CSV (``filename,distance``):
the target first at 0.0 (its distance to itself, whether or not it is one of the data's files),
then the N nearest other images, by ascending distance (ties by filename). ``filename`` is the path
relative to the folder, or the zip member's name.

``histogram`` (default): each image read with OpenCV (``cv2.imread``, ``cv2.imdecode`` for zip
members) and converted to RGB; ``cv2.calcHist`` over the 3 channels with 8x8x8 bins over [0, 256),
normalised by ``cv2.normalize`` with its defaults, flattened; compared with the target's by
``cv2.compareHist(target, image, cv2.HISTCMP_CHISQR)``.

``clip`` or a keras.applications backbone (``vgg16``...): embed's extractors, with embed's
settings (``embed.weights``, ``embed.clip_preset``, ``embed.input_size``, ``embed.batch_size``), on
images brought to ``image.size`` the way preprocess does (``image.resize``, ``image.color``);
distance = 1 - cosine similarity.

-n and --features default to ``search.n`` and ``search.features`` in params.yaml. The
Snakemake rule and DVC stage search every name in ``search.targets`` in data/extracted, into
results/search/<target>.csv. Images are read one at a time (networks: one batch at a time) and
only the N nearest are kept. Files OpenCV cannot read are skipped and counted; dotfiles and
dot-folders (``.snakemake_timestamp``, ``.DS_Store``) are left out. Given data/extracted, extract's
listing, the files are read from the archive in place; their names start with ``<name>/`` and a
target ``train/3/img_0001.png`` is found as ``<name>/train/3/img_0001.png``.
"""

from __future__ import annotations

import contextlib
import heapq
import os
import zipfile
from pathlib import Path, PurePosixPath

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from specimen import SpecimenError
from specimen.artefacts import write_csv
from specimen.clean.features import EXTRACTORS, THREADS, colour_histogram, network
from specimen.data.extracted import LISTING, Extracted
from specimen.data.images import shape

MANY = 100  # files: a progress bar from this many on


def search(
    target: str,
    data: Path,
    out: Path | None = None,
    n: int = 5,
    features: str = "histogram",
    image: dict | None = None,
    embed: dict | None = None,
) -> dict:
    """Rank the images of `data` (folder or zip) by distance to `target`; write the table to `out`
    (CSV, atomically) if given. Returns {table, images, skipped, target}; see the module docstring."""
    if features not in EXTRACTORS:
        raise SpecimenError(f"--features {features!r}: choose one of {', '.join(EXTRACTORS)}")
    if n < 1:
        raise SpecimenError(f"-n {n}: ask for at least 1 image")
    data = Path(data)
    with dataset(data) as (names, read):
        if not names:
            raise SpecimenError(
                f"{data}: no files in it, nothing to search: give --images a folder or zip that holds images"
            )
        name, rgb = _target(target, data, names, read)
        measure = _histogram_measure(rgb) if features == "histogram" else _network_measure(rgb, features, image, embed)
        counts = {"images": 0, "skipped": 0}
        others = [x for x in names if x != name]
        nearest = heapq.nsmallest(n, _distances(others, read, *measure, counts))
    if not counts["images"] and name is None:
        raise SpecimenError(f"{data}: none of its {len(names)} files is an image OpenCV can read: nothing to search")
    label = name if name is not None else target
    table = pd.DataFrame([(label, 0.0)] + [(x, float(d)) for d, x in nearest], columns=["filename", "distance"])
    if out is not None:
        write_csv(out, table)
    return {
        "table": table,
        "images": counts["images"] + (name is not None),
        "skipped": counts["skipped"],
        "target": label,
    }


def _rgb(bgr: np.ndarray | None) -> np.ndarray | None:
    return None if bgr is None else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def read_file(path: str | Path) -> np.ndarray | None:
    """An image file as RGB uint8 (cv2.imread), or None when OpenCV cannot read it."""
    try:
        return _rgb(cv2.imread(str(path)))
    except cv2.error:
        return None


def decode(data: bytes) -> np.ndarray | None:
    """Encoded image bytes as RGB uint8 (cv2.imdecode), or None when OpenCV cannot read them."""
    try:
        return _rgb(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR))
    except cv2.error:
        return None


def _hidden(name: str) -> bool:
    """A dotfile or a file in a dot-folder (.snakemake_timestamp, .DS_Store, .git/), as extract skips them."""
    return any(part.startswith(".") for part in name.split("/"))


def _folder_names(folder: Path) -> list[str]:
    """Every file below `folder` but the hidden ones, as sorted posix paths relative to it."""
    names = []
    for parent, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        names += [(Path(parent) / f).relative_to(folder).as_posix() for f in files if not f.startswith(".")]
    return sorted(names)


@contextlib.contextmanager
def dataset(data: Path):
    """Yield (names, read) for extract's output, a folder or a zip: every file's name (sorted; its
    path in the listing, relative to the folder, or the member's name) and a function that reads
    one of them as RGB (None if it cannot)."""
    data = Path(data)
    if (data / LISTING).is_file():  # data/extracted: the files are read from the archive in place
        listing = Extracted(data)
        yield listing.paths, lambda name: decode(listing.read(name))
    elif data.is_dir():
        yield _folder_names(data), lambda name: read_file(data / name)
    elif not data.exists():
        raise SpecimenError(f"{data}: no such folder or zip file: give --images a folder of images or a .zip of them")
    elif not zipfile.is_zipfile(data):
        raise SpecimenError(
            f"{data}: neither a folder nor a zip file: give --images a folder of images or a .zip of them"
        )
    else:
        with zipfile.ZipFile(data) as zf:
            names = sorted(i.filename for i in zf.infolist() if not i.is_dir() and not _hidden(i.filename))
            yield names, lambda name: decode(zf.read(name))


def _inside(target: str, data: Path, names: list[str], known: set[str]) -> str | None:
    """The target's name among the data's files, or None when it is a file outside them."""
    name = PurePosixPath(target.replace("\\", "/")).as_posix()
    if name in known:
        return name
    if Path(target).is_file():
        if data.is_dir():
            with contextlib.suppress(ValueError):
                inside = Path(target).resolve().relative_to(data.resolve()).as_posix()
                if inside in known:
                    return inside
        return None
    found = [n for n in names if n.endswith("/" + name)]
    if len(found) > 1:
        raise SpecimenError(
            f"{target}: {len(found)} files of that name in {data} ({', '.join(found[:3])}"
            f"{', ...' if len(found) > 3 else ''}): give its path inside {data}"
        )
    if not found:
        raise SpecimenError(
            f"{target}: no such image file, and no file of that name in {data}: give a path to "
            f"an image, or a file name or path inside {data} (e.g. {names[0]})"
        )
    return found[0]


def _target(target: str, data: Path, names: list[str], read) -> tuple[str | None, np.ndarray]:
    """(its name among the data's files or None, its pixels as RGB)."""
    name = _inside(target, data, names, set(names))
    rgb = read(name) if name is not None else read_file(target)
    if rgb is None:
        where = target if name is None else data / name if data.is_dir() else f"{data}: {name}"
        raise SpecimenError(f"{where}: not an image OpenCV can read: give a PNG, JPEG, BMP, TIFF or WebP image")
    return name, rgb


def _histogram_measure(target_rgb: np.ndarray):
    """(prepare, distances, batch): chi-square distance between colour histograms."""
    target = colour_histogram(target_rgb)

    def distances(hists):
        return [cv2.compareHist(target, h, cv2.HISTCMP_CHISQR) for h in hists]

    return colour_histogram, distances, 1


def _network_measure(target_rgb: np.ndarray, features: str, image: dict, embed: dict):
    """(prepare, distances, batch): 1 - cosine similarity of embed's features for `features`."""
    height, width = image["size"]
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", str(THREADS))  # read when TensorFlow starts
    features_of, _ = network(
        features, embed.get("input_size") or image["size"], weights=embed["weights"], clip_preset=embed["clip_preset"]
    )

    def prepare(rgb):
        return shape(rgb, height, width, image["color"], image["resize"])[0]

    def unit(images):
        f = np.asarray(features_of(None, np.stack(images)), dtype=np.float64)
        norms = np.linalg.norm(f, axis=1, keepdims=True)
        return np.divide(f, norms, out=np.zeros_like(f), where=norms > 0)  # a zero vector: similarity 0

    target = unit([prepare(target_rgb)])[0]

    def distances(images):
        return np.maximum(0.0, 1.0 - unit(images) @ target).tolist()  # not -4e-16 for a copy

    return prepare, distances, embed["batch_size"]


def _distances(names: list[str], read, prepare, distances, batch: int, counts: dict):
    """Yield (distance, name) for every file that reads as an image, `batch` images at a time;
    count the images and the files skipped in `counts`."""
    pending, pending_names = [], []
    with tqdm(total=len(names), desc="search", unit="file", mininterval=1, disable=len(names) < MANY) as bar:
        for name in names:
            rgb = read(name)
            bar.update(1)
            if rgb is None:
                counts["skipped"] += 1
                continue
            counts["images"] += 1
            pending.append(prepare(rgb))
            pending_names.append(name)
            if len(pending) >= batch:
                yield from zip(distances(pending), pending_names)
                pending, pending_names = [], []
    if pending:
        yield from zip(distances(pending), pending_names)
