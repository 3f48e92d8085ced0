"""Deterministic demo dataset: scanned digits with planted faults.

``make_demo`` builds a small Kaggle-style image-classification zip out of
scikit-learn's bundled handwritten digits (``sklearn.datasets.load_digits``:
1797 greyscale 8x8 scans, values 0..16) and writes, *beside* the zip, a truth
JSON describing every entry.  Nothing is downloaded.

Layout of the zip (no wrapper folder)::

    train/<digit>/<file>   ~70 % of the clean images of each class
    valid/<digit>/<file>   ~15 %
    test/<digit>/<file>    ~15 %

Clean images
    Each source digit is used at most once.  Classes 0..4 keep every source
    digit, classes 5..9 keep a decreasing fraction (``KEEP_FRACTIONS``), so the
    classes are imbalanced.  A digit is upscaled to a random square of 20..48
    px, placed at a random offset on a canvas padded by up to its own size in
    each direction (aspect ratios roughly 0.5..2), in a random dark ink on a
    random tinted light paper (as a scan would be), plus a little gaussian
    noise.  About 80 % are JPEG, 20 % PNG.  Names are
    ``img_<source index>.<ext>``.

Planted faults (``kind`` in the truth file)
    corrupt                 truncated JPEGs, random bytes, empty PNG, PNG
                            with a broken header
    non_image               a .txt, a .csv and a desktop.ini in class folders
    exact_duplicate         byte copy of a train image in the same folder
    cross_split_duplicate   byte copy of a train image in valid/test
    near_duplicate          downscaled or brightened JPEG re-save, same folder
    near_duplicate_leak     same, placed in valid/test
    foreign                 crops of sklearn's sample photos
    blank                   (almost) uniform colour images
    noise                   uniform random RGB noise
    mislabelled             a clean digit in train under another digit's folder;
                            ``true_label`` is the digit drawn (never in the zip)

Format variants (valid digit images a decoder has to convert correctly,
each from a source digit dropped by the subsampling): ``cmyk``,
``greyscale``, ``rgba``, ``palette``, ``exif_rotated`` (stored rotated with an
EXIF Orientation of 6; truth carries the upright ``width``/``height``) and
``sixteen_bit``.

Output is byte-identical for a given seed: a single ``numpy`` generator drives
every random choice, zip entries are sorted, stored uncompressed and carry a
fixed timestamp, and image encoder settings are fixed.
"""

from __future__ import annotations

import argparse
import io
import json
import zipfile
from pathlib import Path

import numpy as np

from specimen.artefacts import atomic_file, write_json, zip_entry
from specimen.data.demo.faults import (
    plant_blank,
    plant_clean,
    plant_corrupt,
    plant_duplicates,
    plant_foreign,
    plant_format_variants,
    plant_mislabelled,
    plant_noise,
    plant_non_images,
    subsample,
)
from specimen.data.demo.render import CLASSES, KINDS, Builder

__all__ = ["make_demo"]


def _zip_bytes(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for name in sorted(entries):
            zf.writestr(zip_entry(name), entries[name])
    return buf.getvalue()


def build_entries(seed: int = 0) -> tuple[dict[str, bytes], dict]:
    """Generate the zip entries and the truth dict in memory."""
    from sklearn.datasets import load_digits

    data = load_digits()
    b = Builder(
        rng=np.random.default_rng(seed),
        digits=np.asarray(data.images, dtype=np.float64),
        targets=np.asarray(data.target),
    )
    kept, spare = subsample(b)
    spare = [int(i) for i in b.rng.permutation(spare)]  # popped from the end
    plant_clean(b, kept)
    plant_duplicates(b)
    plant_format_variants(b, spare)
    plant_corrupt(b, spare)
    plant_non_images(b)
    plant_foreign(b)
    plant_blank(b)
    plant_noise(b)
    plant_mislabelled(b, spare)  # last: the files planted before are those of earlier demos

    files = [b.records[p] for p in sorted(b.records)]
    counts = {kind: 0 for kind in KINDS}
    for rec in files:
        counts[rec["kind"]] += 1
    counts["files"] = len(files)
    truth = {
        "seed": seed,
        "source": "sklearn.datasets.load_digits",
        "classes": list(CLASSES),
        "counts": counts,
        "files": files,
    }
    return b.entries, truth


def make_demo(zip_path: Path, truth_path: Path, seed: int = 0) -> dict:
    """Write the demo zip and its truth JSON; return the truth dict."""
    zip_path, truth_path = Path(zip_path), Path(truth_path)
    entries, truth = build_entries(seed)
    with atomic_file(zip_path) as tmp:
        tmp.write_bytes(_zip_bytes(entries))
    write_json(truth_path, truth)
    return truth


def _main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write the specimen demo dataset.")
    parser.add_argument("zip_path", type=Path)
    parser.add_argument("truth_path", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    truth = make_demo(args.zip_path, args.truth_path, seed=args.seed)
    print(json.dumps(truth["counts"], indent=2, sort_keys=True))


if __name__ == "__main__":
    _main()
