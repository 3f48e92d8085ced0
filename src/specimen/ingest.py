"""ingest: walk data/extracted/<name>/ and account for every file in data/interim/manifest.csv.

The dataset root is ``data/extracted/<name>/``, below any single wrapper folder. Layouts:

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
``dataset.merge_train_valid`` pools train and valid and re-splits them (test is kept). Labels are
compared in Unicode NFC form, so a label written in two normal forms is one class.

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

import contextlib
import io
import json
import math
import posixpath
import re
import unicodedata
import warnings
from collections import defaultdict
from pathlib import Path, PurePosixPath

import pandas as pd
from PIL import Image
from sklearn.model_selection import train_test_split
from tqdm import tqdm

from specimen import SpecimenError
from specimen.files import sha256_file, write_csv, write_json

SPLIT_ALIASES = {"train": "train", "training": "train", "valid": "valid", "val": "valid",
                 "validation": "valid", "test": "test", "testing": "test"}
COLUMNS = ["id", "path", "label", "split", "sha256", "bytes", "format", "mode", "width", "height", "status", "reason"]
TABLE_SUFFIXES = (".csv", ".json", ".jsonl")
DEFAULT_MAX_PIXELS = 178_956_970  # image.max_pixels' default (twice Pillow's warning threshold)


def _norm(name) -> str:
    """A column name compared loosely: ``Data Set``, ``data_set`` and ``dataset`` are one name."""
    return re.sub(r"[\s_\-]+", "", str(name)).lower()


COMMON_NAMES = {
    "path": {_norm(n) for n in ("filepaths", "filepath", "path", "image_path", "image", "filename", "file", "img")},
    "label": {_norm(n) for n in ("labels", "label", "class", "class_label", "category", "species")},
    "split": {_norm(n) for n in ("data set", "dataset", "split", "subset")},
}


# -- the tree ------------------------------------------------------------------------------------

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


def list_files(root: Path) -> list[str]:
    """Every file below the root, as sorted POSIX paths relative to it (the manifest's ids)."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def has_split_folders(root: Path) -> bool:
    return any(p.is_dir() and p.name.lower() in SPLIT_ALIASES for p in root.iterdir())


# -- reading one image's header ------------------------------------------------------------------

def _bomb(pixels) -> dict:
    return {"status": "rejected", "reason": f"decompression bomb: {pixels} pixels > image.max_pixels"}


@contextlib.contextmanager
def pixel_limit(max_pixels: int | None):
    """Pillow's own bomb limit set to image.max_pixels while probing (it raises above twice that)."""
    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = max_pixels or DEFAULT_MAX_PIXELS
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def probe(path: Path, max_pixels: int | None = None) -> dict:
    """What the file is, from its bytes: format, mode and size if Pillow can read its header."""
    limit = max_pixels or DEFAULT_MAX_PIXELS
    if path.stat().st_size == 0:
        return {"status": "rejected", "reason": "empty file"}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as im:
                info = {"format": im.format, "mode": im.mode, "width": im.width, "height": im.height}
                if im.width * im.height > limit:
                    return _bomb(im.width * im.height)
                im.verify()
    except Image.DecompressionBombError as e:
        pixels = re.search(r"\((\d+) pixels\)", str(e))
        return _bomb(pixels.group(1) if pixels else "too many")
    except Exception as e:  # Pillow raises many types for bad bytes; the reason says which
        if path.suffix.lower() in Image.registered_extensions():
            message = str(e).replace(str(path), path.name).splitlines()[0][:120]
            return {"status": "rejected", "reason": f"corrupt image: {message}"}
        return {"status": "rejected", "reason": "not an image"}
    return {**info, "status": "ok", "reason": ""}


# -- folder layouts ------------------------------------------------------------------------------

def _place(rel: Path, split_layout: bool) -> tuple[str, str, str]:
    """(split, label, reason) from a path relative to the dataset root."""
    parts = rel.parts
    if split_layout:
        if len(parts) != 3 or parts[0].lower() not in SPLIT_ALIASES:
            return "", "", "not in a <split>/<class>/ folder"
        return SPLIT_ALIASES[parts[0].lower()], _nfc(parts[1]), ""
    if len(parts) != 2:
        return "", "", "not in a <class>/ folder"
    return "", _nfc(parts[0]), ""


def layout_base(files: list[str]) -> str:
    """The folder that holds the class (or split) folders: the deepest one every image sits two
    levels below (``raw-img/`` in ``raw-img/<class>/<file>`` beside a ``translate.py``), else the root."""
    images = [PurePosixPath(f) for f in files if PurePosixPath(f).suffix.lower() in Image.registered_extensions()]
    grandparents = [p.parent.parent.parts for p in images if len(p.parts) >= 2]
    common = posixpath.commonprefix(grandparents) if grandparents else ()
    return "/".join(common)


def places_from_folders(root: Path, files: list[str]) -> tuple[dict, bool]:
    """{id: place} from the folder names, and whether the folders give the split."""
    base = layout_base(files)
    split_layout = has_split_folders(root / base)
    places = {}
    for rel in files:
        if base and not rel.startswith(base + "/"):
            split, label, reason = "", "", f"not in {base}/, the folder of the class folders"
        else:
            split, label, reason = _place(PurePosixPath(rel).relative_to(base), split_layout)
        places[rel] = {"label": label, "split": split, "reason": reason, "status": "rejected" if reason else None}
    return places, split_layout


# -- labels files: finding and reading them ------------------------------------------------------

def read_table(path: Path) -> pd.DataFrame:
    """A CSV or JSON-lines file as a frame of strings (empty string where a value is missing)."""
    try:
        if path.suffix.lower() == ".csv":
            return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
        with open(path, encoding="utf-8-sig") as f:
            array = f.read(4096).lstrip().startswith("[")  # a JSON array of records, not JSON lines
        table = pd.read_json(path, lines=not array, dtype=False, encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise SpecimenError(f"{path.name}: not UTF-8 text ({str(e)[:120]}): save it as UTF-8") from None
    except (ValueError, pd.errors.ParserError) as e:
        kind, rule = (("CSV", "quote a value that holds a comma") if path.suffix.lower() == ".csv"
                      else ("JSON lines", "one JSON object per line"))
        raise SpecimenError(f"{path.name}: cannot read it as {kind} ({str(e).splitlines()[0][:120]}): "
                            f"fix the file ({rule})") from None
    table.columns = [str(c) for c in table.columns]
    return table.apply(lambda col: col.map(_text))


def _text(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _matches(columns: list[str], given: str | None, role: str) -> list[str]:
    """The columns that may play `role`: the one named in params, else those with a common name."""
    if given:
        return [c for c in columns if c == given] or [c for c in columns if _norm(c) == _norm(given)]
    return [c for c in columns if _norm(c) in COMMON_NAMES[role]]


def _pick(name: str, columns: list[str], given: str | None, role: str, taken=()) -> str | None:
    hits = [c for c in _matches(columns, given, role) if c not in taken]
    if given and not hits:
        what = "already the path or split column" if _matches(columns, given, role) else "not a column"
        raise SpecimenError(f"dataset.columns.{role}: {given!r} is {what} of {name} (columns: {', '.join(columns)})")
    if len(hits) > 1:
        raise SpecimenError(f"{name}: several columns could be the {role} ({', '.join(hits)}): set dataset.columns.{role} to one of them")
    return hits[0] if hits else None


def table_columns(name: str, table: pd.DataFrame, columns: dict) -> dict:
    """{path, label, split} column names of one labels file (split may be None)."""
    cols = list(table.columns)
    path = _pick(name, cols, columns.get("path"), "path")
    if path is None:
        raise SpecimenError(f"{name}: no path column (columns: {', '.join(cols)}): set dataset.columns.path to one of them")
    split = _pick(name, cols, columns.get("split"), "split", taken=(path,))
    label = _pick(name, cols, columns.get("label"), "label", taken=(path, split))
    if label is None:
        others = [c for c in cols if c not in (path, split)]
        if not others:
            raise SpecimenError(f"{name}: no label column (columns: {', '.join(cols)}): add one (label, class, ...) "
                                f"or name it in dataset.columns.label")
        raise SpecimenError(f"{name}: cannot tell which column holds the labels (candidates: {', '.join(others)}): "
                            f"set dataset.columns.label to one of them")
    return {"path": path, "label": label, "split": split}


def _looks_like_labels(path: Path, columns: dict) -> pd.DataFrame | None:
    """The file as a table if it reads as one and has a path column and another column."""
    try:
        table = read_table(path)
    except SpecimenError:
        if len(cols := _header(path)) >= 2 and _matches(cols, columns.get("path"), "path"):
            raise  # it is meant as one: say why it cannot be read, rather than fall back to folders
        return None
    cols = list(table.columns)
    return table if len(cols) >= 2 and _matches(cols, columns.get("path"), "path") else None


def _header(path: Path) -> list[str]:
    """The column names a table file's first line gives, read leniently (any encoding), or []."""
    try:
        with open(path, encoding="latin-1") as f:
            first = f.readline().lstrip("\ufeff\xef\xbb\xbf").strip()
        if path.suffix.lower() == ".csv":
            return [str(c) for c in pd.read_csv(io.StringIO(first), nrows=0).columns]
        record = json.loads(first.lstrip("[").rstrip(","))
        return [str(k) for k in record] if isinstance(record, dict) else []
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError, OSError):
        return []


def _glob(root: Path, patterns: list[str]) -> list[Path]:
    found = []
    for pattern in patterns:
        if PurePosixPath(pattern).is_absolute() or ".." in PurePosixPath(pattern).parts:
            raise SpecimenError(f"dataset.labels_file: {pattern!r} must be a path inside the dataset root, like labels.csv")
        hits = sorted((p for p in root.glob(pattern) if p.is_file()), key=lambda p: p.relative_to(root).as_posix())
        if not hits:
            top = ", ".join(sorted(p.name + ("/" if p.is_dir() else "") for p in root.iterdir())[:10])
            raise SpecimenError(f"dataset.labels_file: {pattern!r} matches no file in {root.name}/ (at its top: {top})")
        found += [p for p in hits if p not in found]
    return found


def labels_tables(root: Path, labels_file, columns: dict) -> dict:
    """{id of the labels file: (table, its columns)}: named in params, else detected at the root."""
    if labels_file:
        patterns = [labels_file] if isinstance(labels_file, str) else list(labels_file)
        tables = {p.relative_to(root).as_posix(): read_table(p) for p in _glob(root, patterns)}
    else:
        candidates = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in TABLE_SUFFIXES)
        tables = {p.name: t for p in candidates if (t := _looks_like_labels(p, columns)) is not None}
        csvs = [n for n in tables if n.lower().endswith(".csv")]
        if len(csvs) > 1 or (csvs and len(tables) > 1):
            raise SpecimenError(f"{root.name}/: several possible labels files ({', '.join(tables)}): "
                                f"set dataset.labels_file to the one(s) to use")
        if not tables and any(columns.values()):
            raise SpecimenError(f"{root.name}/: dataset.columns is set but no CSV or JSON-lines labels file was found "
                                f"at the dataset root: set dataset.labels_file")
    return {name: (table, table_columns(name, table, columns)) for name, table in tables.items()}


# -- labels files: what each listed row says -----------------------------------------------------

def _split_from_name(name: str) -> str:
    """The split a labels file's name gives (``val_data.json`` -> valid), or ""."""
    words = {SPLIT_ALIASES[w] for w in re.split(r"[^a-z]+", PurePosixPath(name).stem.lower()) if w in SPLIT_ALIASES}
    return words.pop() if len(words) == 1 else ""


def listed_rows(tables: dict) -> tuple[list[dict], bool]:
    """One entry per listed row (source, base, listed, label, split, problem); whether splits are given."""
    by_name = {name: _split_from_name(name) for name in tables}
    names_split = len(set(by_name.values()) - {""}) >= 2 and all(by_name.values())
    provided = all(cols["split"] or names_split for _, cols in tables.values())
    entries = []
    for name, (table, cols) in tables.items():
        base = posixpath.dirname(name)
        splits = table[cols["split"]] if cols["split"] else pd.Series(by_name[name] if names_split else "", index=table.index)
        for row, (listed, label, raw) in enumerate(zip(table[cols["path"]], table[cols["label"]], splits), start=1):
            split, problem = SPLIT_ALIASES.get(raw.strip().lower(), ""), ""
            if cols["split"] and not split:
                problem = f"unknown split {raw!r} in column {cols['split']!r} of {name} (expected train, valid or test)"
            if not label.strip():
                problem = f"no label in {name}"
            entries.append({"source": name, "base": base, "listed": listed.strip(), "label": _nfc(label.strip()),
                            "split": split, "problem": problem, "row": row})
    return entries, provided


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


class Resolver:
    """The file a listed path means: relative to the labels file's folder, else to the root, else
    the one file whose path ends with it, or that it ends with (a wrapper folder left out or added)."""

    def __init__(self, ids: list[str]):
        self.ids = {_nfc(i): i for i in ids}
        self.by_name = defaultdict(list)
        for key in self.ids:
            self.by_name[key.rsplit("/", 1)[-1]].append(key)

    def __call__(self, listed: str, base: str) -> tuple[str | None, str]:
        """(id, "") or (None, why not: the end of a rejection reason)."""
        text = _nfc(listed.replace("\\", "/")).lstrip("/")
        if not text:
            return None, "with an empty path"
        tries = [posixpath.normpath(posixpath.join(base, text)), posixpath.normpath(text)]
        inside = [t for t in tries if t != ".." and not t.startswith("../")]
        if not inside:
            return None, "with a path that leaves the dataset root"
        for t in inside:
            if t in self.ids:
                return self.ids[t], ""
        parts = inside[-1].split("/")
        found = [k for k in self.by_name.get(parts[-1], []) if _ends_alike(k.split("/"), parts)]
        if len(found) > 1:
            return None, f"but matches {len(found)} files ({', '.join(self.ids[k] for k in found[:3])})"
        return (self.ids[found[0]], "") if found else (None, "but missing")


def _ends_alike(a: list[str], b: list[str]) -> bool:
    n = min(len(a), len(b))
    return a[-n:] == b[-n:]


def _listed_twice(first: dict, entry: dict) -> None:
    """Keep the first listing of a file; two different labels or splits reject it."""
    for key in ("label", "split"):
        if first[key] != entry[key]:
            first.update(status="rejected", reason=f"listed twice with different {key}s")
            return
    if first["status"] is None:
        first["reason"] = f"listed twice in {entry['source']}"


def places_from_labels(files: list[str], tables: dict) -> tuple[dict, list[dict], bool]:
    """{id: place} for every file, rows for listed paths with no file, and whether splits are given."""
    names = ", ".join(PurePosixPath(n).name for n in tables)
    places = {f: {"label": "", "split": "", "status": "rejected", "reason": f"not listed in {names}"} for f in files}
    places.update({n: {"label": "", "split": "", "status": "labels", "reason": "labels file"} for n in tables})
    entries, provided = listed_rows(tables)
    resolve = Resolver(files)
    seen, missing = {}, []
    for entry in entries:
        target, why = resolve(entry["listed"], entry["base"])
        if target in tables:  # a labels file listing itself: its own row accounts for it
            continue
        key = target or entry["listed"] or f"{entry['source']} row {entry['row']}"
        place = {"label": entry["label"], "split": entry["split"], "status": "rejected" if entry["problem"] else None,
                 "reason": entry["problem"]}
        if key in seen:
            _listed_twice(seen[key], entry)
            continue
        if target is None:
            place.update(id=key, status="rejected", reason=f"listed in {entry['source']} {why}")
            missing.append(place)
        else:
            places[target] = place
        seen[key] = place
    if not provided:
        provided = _splits_from_folders([f for f, p in places.items() if p["status"] is None], places)
    return places, missing, provided


def _splits_from_folders(listed: list[str], places: dict) -> bool:
    """When every listed file sits in a split folder, that folder gives its split."""
    if not listed or any(f.split("/", 1)[0].lower() not in SPLIT_ALIASES for f in listed):
        return False
    for f in listed:
        places[f]["split"] = SPLIT_ALIASES[f.split("/", 1)[0].lower()]
    return True


# -- splits --------------------------------------------------------------------------------------

ALONE = "the only image of its class: train split"


def alone_in_class(frame: pd.DataFrame) -> pd.Series:
    """The kept rows whose class has no other kept image, when there are two classes at least."""
    ok = frame.status == "ok"
    counts = frame[ok].label.value_counts()
    return ok & (frame.label.map(counts) == 1) & (len(counts) > 1)


def assign_splits(frame: pd.DataFrame, proportions: dict, seed: int) -> pd.Series:
    """A stratified train/valid/test split of the kept rows, reproducible from the seed. The one
    image of a class that has only one goes to train (a model cannot learn a class it never sees),
    and the other classes are split as if it were not there."""
    split = pd.Series("", index=frame.index)
    alone = alone_in_class(frame)
    split[alone] = "train"
    ok = frame[(frame.status == "ok") & ~alone]
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


def resplit_train_valid(frame: pd.DataFrame, proportions: dict, seed: int) -> pd.Series:
    """Pool the kept train and valid rows and re-split them with dataset.split's train:valid ratio."""
    pool = frame[(frame.status == "ok") & frame.split.isin(["train", "valid"])]
    total = proportions["train"] + proportions["valid"]
    ratio = {"train": proportions["train"] / total, "valid": proportions["valid"] / total, "test": 0}
    split = frame.split.copy()
    split[pool.index] = assign_splits(pool, ratio, seed)
    return split


# -- the stage -----------------------------------------------------------------------------------

def manifest_rows(root: Path, extracted: Path, files: list[str], places: dict, missing: list[dict],
                  max_pixels: int | None) -> pd.DataFrame:
    """One row per file (probed unless its place already rejects it) plus the missing listed files."""
    rows = []
    with pixel_limit(max_pixels):
        for rel in tqdm(files, desc="ingest", unit="file", mininterval=1):
            path, place = root / rel, places[rel]
            row = {"id": rel, "path": path.relative_to(extracted).as_posix(), "bytes": path.stat().st_size,
                   "sha256": sha256_file(path), "label": place["label"], "split": place["split"]}
            if place["status"] is None:
                row.update(probe(path, max_pixels))
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
            todo = "none has an image suffix (.jpg, .png, ...): check that dataset.source is the image dataset you meant"
        elif counts.index[0].startswith("not listed in"):
            what = f"not one of its {len(frame)} files is listed in the labels file ({reasons})"
            todo = "list the images in it, or name the right one in dataset.labels_file"
        elif counts.index[0].startswith("not in "):
            what = f"not one of its {len(frame)} files is in a class folder ({reasons})"
            todo = ("put each class's images in a folder of its own, two classes at least (<class>/<image>), "
                    "or list path and label in a labels file (dataset.labels_file)")
        else:
            todo = "check that dataset.source is the image dataset you meant"
        raise SpecimenError(f"{root}: {what}: {todo}")
    if kept.label.nunique() == 1:
        raise SpecimenError(f"{root}: all {len(kept)} images are of one class, {kept.label.iloc[0]!r}: a classifier "
                            "needs two at least; put each class's images in a folder of its own (<class>/<image>), "
                            "or list path and label in a labels file (dataset.labels_file, dataset.columns.label)")


def ingest(extracted: Path, out_dir: Path, split: dict, seed: int, labels_file: str | list[str] | None = None,
           columns: dict | None = None, merge_train_valid: bool = False, max_pixels: int | None = None) -> pd.DataFrame:
    """Write out_dir/manifest.csv (one row per file, sorted by id) and classes.json; return the manifest.

    ``split`` and ``seed`` are dataset.split and seed; the keywords are dataset.labels_file,
    dataset.columns, dataset.merge_train_valid and image.max_pixels (see the module docstring)."""
    root = dataset_root(extracted)
    files = list_files(root)
    if not files:
        raise SpecimenError(f"{root}: the dataset holds no files: check dataset.source")
    tables = labels_tables(root, labels_file, columns or {})
    if tables:
        places, missing, provided = places_from_labels(files, tables)
    else:
        (places, provided), missing = places_from_folders(root, files), []
    frame = manifest_rows(root, extracted, files, places, missing, max_pixels)
    if not provided:
        frame["split"] = assign_splits(frame, split, seed)
        frame.loc[alone_in_class(frame) & (frame.reason == ""), "reason"] = ALONE
    elif merge_train_valid:
        frame["split"] = resplit_train_valid(frame, split, seed)
    check_kept(root, files, frame)
    kept = frame[frame.status == "ok"]
    write_csv(out_dir / "manifest.csv", frame)
    write_json(out_dir / "classes.json", {"classes": sorted(kept.label.unique())})
    return frame
