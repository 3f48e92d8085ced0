"""ingest: walk data/extracted/<name>/ and account for every file in data/interim/manifest.csv.

Layouts: one folder per class (``<class>/<file>``), or split folders holding class folders
(``train|valid|test/<class>/<file>``; ``val``, ``validation``, ``training``, ``testing`` too).
Provided splits are kept; otherwise a stratified split with ``dataset.split`` and ``seed``.
Each file is kept (status ``ok``) or rejected with a reason; ``classes.json`` maps class names to
ids (their sorted order).
"""
from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd
from PIL import Image
from sklearn.model_selection import train_test_split
from tqdm import tqdm

from specimen import SpecimenError
from specimen.files import sha256_file, write_csv, write_json

SPLIT_ALIASES = {"train": "train", "training": "train", "valid": "valid", "val": "valid",
                 "validation": "valid", "test": "test", "testing": "test"}
COLUMNS = ["id", "path", "label", "split", "sha256", "bytes", "format", "mode", "width", "height", "status", "reason"]


def dataset_root(extracted: Path) -> Path:
    """The dataset folder, below any single wrapper folder (``data/extracted/x/x/train/...``)."""
    roots = [p for p in extracted.iterdir() if p.is_dir()]
    if len(roots) != 1:
        raise SpecimenError(f"{extracted}: expected one dataset folder, found {len(roots)}")
    root = roots[0]
    while True:
        entries = list(root.iterdir())
        if len(entries) == 1 and entries[0].is_dir() and entries[0].name.lower() not in SPLIT_ALIASES:
            root = entries[0]
        else:
            return root


def has_split_folders(root: Path) -> bool:
    return any(p.is_dir() and p.name.lower() in SPLIT_ALIASES for p in root.iterdir())


def probe(path: Path) -> dict:
    """What the file is, from its bytes: format, mode and size if Pillow can read its header."""
    if path.stat().st_size == 0:
        return {"status": "rejected", "reason": "empty file"}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as im:
                info = {"format": im.format, "mode": im.mode, "width": im.width, "height": im.height}
                im.verify()
    except Image.DecompressionBombError as e:
        return {"status": "rejected", "reason": f"decompression bomb: {e}"}
    except Exception as e:  # Pillow raises many types for bad bytes; the reason says which
        if path.suffix.lower() in Image.registered_extensions():
            message = str(e).replace(str(path), path.name).splitlines()[0][:120]
            return {"status": "rejected", "reason": f"corrupt image: {message}"}
        return {"status": "rejected", "reason": "not an image"}
    return {**info, "status": "ok", "reason": ""}


def _place(rel: Path, split_layout: bool) -> tuple[str, str, str]:
    """(split, label, reason) from a path relative to the dataset root."""
    parts = rel.parts
    if split_layout:
        if len(parts) != 3 or parts[0].lower() not in SPLIT_ALIASES:
            return "", "", "not in a <split>/<class>/ folder"
        return SPLIT_ALIASES[parts[0].lower()], parts[1], ""
    if len(parts) != 2:
        return "", "", "not in a <class>/ folder"
    return "", parts[0], ""


def assign_splits(frame: pd.DataFrame, proportions: dict, seed: int) -> pd.Series:
    """A stratified train/valid/test split of the kept rows, reproducible from the seed."""
    ok = frame[frame.status == "ok"]
    split = pd.Series("", index=frame.index)
    counts = ok.label.value_counts()
    stratify_ok = counts.min() >= 3 if len(counts) else False
    rest_frac = proportions["valid"] + proportions["test"]
    if len(ok) < 3 or rest_frac == 0:
        split[ok.index] = "train"
        return split
    train_idx, rest_idx = train_test_split(ok.index, test_size=rest_frac, random_state=seed,
                                           stratify=ok.label if stratify_ok else None)
    split[train_idx] = "train"
    if proportions["test"] == 0:
        split[rest_idx] = "valid"
    elif proportions["valid"] == 0:
        split[rest_idx] = "test"
    else:
        rest = ok.loc[rest_idx]
        strat = rest.label if stratify_ok and rest.label.value_counts().min() >= 2 else None
        valid_idx, test_idx = train_test_split(rest_idx, test_size=proportions["test"] / rest_frac,
                                               random_state=seed, stratify=strat)
        split[valid_idx] = "valid"
        split[test_idx] = "test"
    return split


def ingest(extracted: Path, out_dir: Path, split: dict, seed: int) -> pd.DataFrame:
    root = dataset_root(extracted)
    split_layout = has_split_folders(root)
    files = sorted((p for p in root.rglob("*") if p.is_file()), key=lambda p: p.relative_to(root).as_posix())
    if not files:
        raise SpecimenError(f"{root}: the dataset holds no files")
    rows = []
    for path in tqdm(files, desc="ingest", unit="file", mininterval=1):
        rel = path.relative_to(root)
        row = {"id": rel.as_posix(), "path": path.relative_to(extracted).as_posix(),
               "bytes": path.stat().st_size, "sha256": sha256_file(path)}
        row["split"], row["label"], reason = _place(rel, split_layout)
        row.update(probe(path) if not reason else {"status": "rejected", "reason": reason})
        rows.append(row)
    frame = pd.DataFrame(rows).reindex(columns=COLUMNS)
    if not split_layout:
        frame["split"] = assign_splits(frame, split, seed)
    for col in ("width", "height"):
        frame[col] = frame[col].astype("Int64")
    kept = frame[frame.status == "ok"]
    if kept.empty:
        reasons = frame.reason.value_counts()
        raise SpecimenError(f"{root}: no readable image in {len(frame)} files (most common reason: {reasons.index[0]}, {reasons.iloc[0]} files)")
    write_csv(out_dir / "manifest.csv", frame)
    write_json(out_dir / "classes.json", {"classes": sorted(kept.label.unique())})
    return frame
