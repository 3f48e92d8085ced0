"""Labels files: a CSV or JSON-lines file (or several) listing path, label and optionally split.

Found at the dataset root or named by dataset.labels_file (globs); columns guessed from common names
or named by dataset.columns; each listed path resolved to the file it means (relative to the labels
file's folder or the root, a wrapper folder added or left out). An ambiguous guess is a one-line
error that says which key to set.
"""

from __future__ import annotations

import io
import json
import math
import posixpath
import re
from collections import defaultdict
from pathlib import PurePosixPath

import pandas as pd

from specimen import SpecimenError
from specimen.data.ingest.tree import SPLIT_ALIASES, Tree, nfc

TABLE_SUFFIXES = (".csv", ".json", ".jsonl")


def _norm(name) -> str:
    """A column name compared loosely: ``Data Set``, ``data_set`` and ``dataset`` are one name."""
    return re.sub(r"[\s_\-]+", "", str(name)).lower()


COMMON_NAMES = {
    "path": {_norm(n) for n in ("filepaths", "filepath", "path", "image_path", "image", "filename", "file", "img")},
    "label": {_norm(n) for n in ("labels", "label", "class", "class_label", "category", "species")},
    "split": {_norm(n) for n in ("data set", "dataset", "split", "subset")},
}


def read_table(rel: str, data: bytes) -> pd.DataFrame:
    """A CSV or JSON-lines file (its path and bytes) as a frame of strings (empty string where a
    value is missing)."""
    path = PurePosixPath(rel)
    try:
        text = io.StringIO(data.decode("utf-8-sig"))
        if path.suffix.lower() == ".csv":
            return pd.read_csv(text, dtype=str, keep_default_na=False)
        array = text.read(4096).lstrip().startswith("[")  # a JSON array of records, not JSON lines
        text.seek(0)
        table = pd.read_json(text, lines=not array, dtype=False)
    except UnicodeDecodeError as e:
        raise SpecimenError(f"{path.name}: not UTF-8 text ({str(e)[:120]}): save it as UTF-8") from None
    except (ValueError, pd.errors.ParserError) as e:
        kind, rule = (
            ("CSV", "quote a value that holds a comma")
            if path.suffix.lower() == ".csv"
            else ("JSON lines", "one JSON object per line")
        )
        raise SpecimenError(
            f"{path.name}: cannot read it as {kind} ({str(e).splitlines()[0][:120]}): fix the file ({rule})"
        ) from None
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
        raise SpecimenError(
            f"{name}: several columns could be the {role} ({', '.join(hits)}): set dataset.columns.{role} to one of them"
        )
    return hits[0] if hits else None


def table_columns(name: str, table: pd.DataFrame, columns: dict) -> dict:
    """{path, label, split} column names of one labels file (split may be None)."""
    cols = list(table.columns)
    path = _pick(name, cols, columns.get("path"), "path")
    if path is None:
        raise SpecimenError(
            f"{name}: no path column (columns: {', '.join(cols)}): set dataset.columns.path to one of them"
        )
    split = _pick(name, cols, columns.get("split"), "split", taken=(path,))
    label = _pick(name, cols, columns.get("label"), "label", taken=(path, split))
    if label is None:
        others = [c for c in cols if c not in (path, split)]
        if not others:
            raise SpecimenError(
                f"{name}: no label column (columns: {', '.join(cols)}): add one (label, class, ...) "
                f"or name it in dataset.columns.label"
            )
        raise SpecimenError(
            f"{name}: cannot tell which column holds the labels (candidates: {', '.join(others)}): "
            f"set dataset.columns.label to one of them"
        )
    return {"path": path, "label": label, "split": split}


def _looks_like_labels(rel: str, data: bytes, columns: dict) -> pd.DataFrame | None:
    """The file as a table if it reads as one and has a path column and another column."""
    try:
        table = read_table(rel, data)
    except SpecimenError:
        if len(cols := _header(rel, data)) >= 2 and _matches(cols, columns.get("path"), "path"):
            raise  # it is meant as one: say why it cannot be read, rather than fall back to folders
        return None
    cols = list(table.columns)
    return table if len(cols) >= 2 and _matches(cols, columns.get("path"), "path") else None


def _header(rel: str, data: bytes) -> list[str]:
    """The column names a table file's first line gives, read leniently (any encoding), or []."""
    try:
        first = data.decode("latin-1").split("\n", 1)[0].lstrip("\ufeff\xef\xbb\xbf").strip()
        if PurePosixPath(rel).suffix.lower() == ".csv":
            return [str(c) for c in pd.read_csv(io.StringIO(first), nrows=0).columns]
        record = json.loads(first.lstrip("[").rstrip(","))
        return [str(k) for k in record] if isinstance(record, dict) else []
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError, OSError):
        return []


def _pattern(pattern: str) -> re.Pattern:
    """A glob pattern as Path.glob means it, relative to the root: ``*`` and ``?`` within one
    folder name, ``[...]`` a set, ``**/`` any number of folders."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[" and (end := pattern.find("]", i + 2)) > 0:
            body = pattern[i + 1 : end]
            out, i = out + "[" + ("^" + body[1:] if body.startswith("!") else body) + "]", end + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def _glob(tree: Tree, patterns: list[str]) -> list[str]:
    found = []
    for pattern in patterns:
        if PurePosixPath(pattern).is_absolute() or ".." in PurePosixPath(pattern).parts:
            raise SpecimenError(
                f"dataset.labels_file: {pattern!r} must be a path inside the dataset root, like labels.csv"
            )
        regex = _pattern(posixpath.normpath(pattern))
        hits = [f for f in tree.files if regex.fullmatch(f)]
        if not hits:
            top = ", ".join(tree.top()[:10])
            raise SpecimenError(f"dataset.labels_file: {pattern!r} matches no file in {tree.name}/ (at its top: {top})")
        found += [f for f in hits if f not in found]
    return found


def labels_tables(tree: Tree, labels_file, columns: dict) -> dict:
    """{id of the labels file: (table, its columns)}: named in params, else detected at the root."""
    if labels_file:
        patterns = [labels_file] if isinstance(labels_file, str) else list(labels_file)
        tables = {rel: read_table(rel, tree.read(rel)) for rel in _glob(tree, patterns)}
    else:
        candidates = [f for f in tree.files if "/" not in f and PurePosixPath(f).suffix.lower() in TABLE_SUFFIXES]
        tables = {f: t for f in candidates if (t := _looks_like_labels(f, tree.read(f), columns)) is not None}
        csvs = [n for n in tables if n.lower().endswith(".csv")]
        if len(csvs) > 1 or (csvs and len(tables) > 1):
            raise SpecimenError(
                f"{tree.name}/: several possible labels files ({', '.join(tables)}): "
                f"set dataset.labels_file to the one(s) to use"
            )
        if not tables and any(columns.values()):
            raise SpecimenError(
                f"{tree.name}/: dataset.columns is set but no CSV or JSON-lines labels file was found "
                f"at the dataset root: set dataset.labels_file"
            )
    return {name: (table, table_columns(name, table, columns)) for name, table in tables.items()}


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
        splits = (
            table[cols["split"]]
            if cols["split"]
            else pd.Series(by_name[name] if names_split else "", index=table.index)
        )
        for row, (listed, label, raw) in enumerate(zip(table[cols["path"]], table[cols["label"]], splits), start=1):
            split, problem = SPLIT_ALIASES.get(raw.strip().lower(), ""), ""
            if cols["split"] and not split:
                problem = f"unknown split {raw!r} in column {cols['split']!r} of {name} (expected train, valid or test)"
            if not label.strip():
                problem = f"no label in {name}"
            entries.append(
                {
                    "source": name,
                    "base": base,
                    "listed": listed.strip(),
                    "label": nfc(label.strip()),
                    "split": split,
                    "problem": problem,
                    "row": row,
                }
            )
    return entries, provided


class Resolver:
    """The file a listed path means: relative to the labels file's folder, else to the root, else
    the one file whose path ends with it, or that it ends with (a wrapper folder left out or added)."""

    def __init__(self, ids: list[str]):
        self.ids = {nfc(i): i for i in ids}
        self.by_name = defaultdict(list)
        for key in self.ids:
            self.by_name[key.rsplit("/", 1)[-1]].append(key)

    def __call__(self, listed: str, base: str) -> tuple[str | None, str]:
        """(id, "") or (None, why not: the end of a rejection reason)."""
        text = nfc(listed.replace("\\", "/")).lstrip("/")
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
        place = {
            "label": entry["label"],
            "split": entry["split"],
            "status": "rejected" if entry["problem"] else None,
            "reason": entry["problem"],
        }
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
