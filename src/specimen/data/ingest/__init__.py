"""ingest: account for every file extract listed (data/extracted/files.csv) in data/interim/manifest.csv.

The files are read from the archive in place. The dataset root is ``<name>/``, below any single
wrapper folder. Layouts:

- class folders, ``<class>/<file>`` (Oxford 17 flowers, iNat subsets, EOL families), also below
  the one folder that holds them all (Animals-10's ``raw-img/<class>/`` beside a ``translate.py``);
- split folders holding class folders, ``train|valid|test/<class>/<file>`` (``val``,
  ``validation``, ``training``, ``testing`` too);
- a labels file: one CSV, or a set of JSON-lines files, with a path column, a label column and
  optionally a split column: Kaggle's ``filepaths,labels,data set`` beside split folders,
  Indo Fashion's ``train_data.json``/``val_data.json``/``test_data.json`` (``image_path``,
  ``class_label``), ``filename,coarse,fine`` beside a folder of images.

``dataset.labels_file`` names the labels file(s): glob patterns relative to the root. Left null,
a CSV or JSON(-lines) file at the root with a path column is taken as one. ``dataset.columns``
names the path, label and split columns; each left null is guessed from common names (``path``,
``filename``, ``label``, ``class``, ``data set`` ...). Where the guess is ambiguous (two CSVs,
two possible label columns) ingest stops with a one-line error that says which key to set.

A listed path is relative to the labels file's folder or to the root, may add or leave out a
wrapper folder, and never leaves the root. The split is the split column's value, else the one in
the labels files' names (``val_data.json``), else the listed files' split folders; with none of
these, a stratified split with ``dataset.split`` and ``seed``; the one image of a class that has
only one goes to train, with a note in its ``reason``. Provided splits are kept, unless
``dataset.merge_train_valid`` pools train and valid and re-splits them (test is kept; without one,
the pool gives the test split too). Labels are compared in Unicode NFC form, so a label written in two normal forms is one class.

Every file under the root is a row: kept (status ``ok``), rejected with a reason (not an image,
corrupt, more pixels than ``image.max_pixels``, outside the class folders, not listed in the
labels file, listed with an unknown split or two different labels) or, for the labels files
themselves, status ``labels``. A listed file that does not exist is a rejected row too.
``classes.json`` maps class names to ids (their sorted order).

A dataset that no run could use stops here with a one-line error that says what to do: no file, no
readable image (with the commonest reasons), only one class, or a labels file that cannot be read
or has no label column (one that reads as a labels file by its header is never silently ignored).
"""

from __future__ import annotations

import hashlib
from pathlib import Path, PurePosixPath

import pandas as pd
from PIL import Image
from tqdm import tqdm

from specimen import SpecimenError
from specimen.artefacts import write_csv, write_json
from specimen.data.ingest.labels_file import labels_tables, places_from_labels
from specimen.data.ingest.layouts import places_from_folders
from specimen.data.ingest.splits import ALONE, alone_in_class, assign_splits, resplit_train_valid
from specimen.data.ingest.tree import Tree, pixel_limit, probe

COLUMNS = ["id", "path", "label", "split", "sha256", "bytes", "format", "mode", "width", "height", "status", "reason"]


def ingest(
    extracted: Path,
    out_dir: Path,
    split: dict,
    seed: int,
    labels_file: str | list[str] | None = None,
    columns: dict | None = None,
    merge_train_valid: bool = False,
    max_pixels: int | None = None,
) -> pd.DataFrame:
    """Write out_dir/manifest.csv (one row per file, sorted by id) and classes.json; return the manifest.

    ``split`` and ``seed`` are dataset.split and seed; the keywords are dataset.labels_file,
    dataset.columns, dataset.merge_train_valid and image.max_pixels (see the module docstring)."""
    tree = Tree(extracted)
    files = tree.files
    tables = labels_tables(tree, labels_file, columns or {})
    if tables:
        places, missing, provided = places_from_labels(files, tables)
    else:
        (places, provided), missing = places_from_folders(files), []
    frame = manifest_rows(tree, places, missing, max_pixels)
    if not provided:
        frame["split"] = assign_splits(frame, split, seed)
        frame.loc[alone_in_class(frame) & (frame.reason == ""), "reason"] = ALONE
    elif merge_train_valid:
        frame["split"] = resplit_train_valid(frame, split, seed)
    check_kept(tree.where, files, frame)
    kept = frame[frame.status == "ok"]
    write_csv(out_dir / "manifest.csv", frame)
    write_json(out_dir / "classes.json", {"classes": sorted(kept.label.unique())})
    return frame


def manifest_rows(tree: Tree, places: dict, missing: list[dict], max_pixels: int | None) -> pd.DataFrame:
    """One row per file (probed unless its place already rejects it) plus the missing listed files."""
    rows = []
    with pixel_limit(max_pixels):
        for rel in tqdm(tree.files, desc="ingest", unit="file", mininterval=1):
            place = places[rel]
            with tree.open(rel) as stream:
                row = {
                    "id": rel,
                    "path": tree.path(rel),
                    "bytes": tree.size(rel),
                    "sha256": hashlib.file_digest(stream, "sha256").hexdigest(),
                    "label": place["label"],
                    "split": place["split"],
                }
                if place["status"] is None:
                    stream.seek(0)
                    row.update(probe(stream, rel, max_pixels))
                    row["reason"] = row["reason"] or place["reason"]  # keep a note such as "listed twice"
                else:
                    row.update(status=place["status"], reason=place["reason"])
            rows.append(row)
    frame = pd.DataFrame(rows + missing).reindex(columns=COLUMNS)
    frame = frame.sort_values("id", kind="stable").reset_index(drop=True)
    for col in ("bytes", "width", "height"):
        frame[col] = frame[col].astype("Int64")
    return frame


def check_kept(root: Path, files: list[str], frame: pd.DataFrame) -> None:
    """Refuse, in one line that says what to do, a dataset with no usable image or only one class."""
    kept = frame[frame.status == "ok"]
    if kept.empty:
        counts = frame.reason.value_counts()
        reasons = ", ".join(f"{reason} {n}" for reason, n in counts.head(3).items())
        what = f"no readable image in {len(frame)} files ({reasons})"
        if not any(PurePosixPath(f).suffix.lower() in Image.registered_extensions() for f in files):
            todo = (
                "none has an image suffix (.jpg, .png, ...): check that dataset.source is the image dataset you meant"
            )
        elif counts.index[0].startswith("not listed in"):
            what = f"not one of its {len(frame)} files is listed in the labels file ({reasons})"
            todo = "list the images in it, or name the right one in dataset.labels_file"
        elif counts.index[0].startswith("not in "):
            what = f"not one of its {len(frame)} files is in a class folder ({reasons})"
            todo = (
                "put each class's images in a folder of its own, two classes at least (<class>/<image>), "
                "or list path and label in a labels file (dataset.labels_file)"
            )
        else:
            todo = "check that dataset.source is the image dataset you meant"
        raise SpecimenError(f"{root}: {what}: {todo}")
    if kept.label.nunique() == 1:
        raise SpecimenError(
            f"{root}: all {len(kept)} images are of one class, {kept.label.iloc[0]!r}: a classifier "
            "needs two at least; put each class's images in a folder of its own (<class>/<image>), "
            "or list path and label in a labels file (dataset.labels_file, dataset.columns.label)"
        )
