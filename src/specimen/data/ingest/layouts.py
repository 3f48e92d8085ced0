"""Folder layouts: class folders (<class>/<file>, below the one folder that holds them all) and
split folders holding class folders (train|valid|test/<class>/<file>): each file's label and split."""

from __future__ import annotations

import posixpath
from pathlib import Path, PurePosixPath

from PIL import Image

from specimen.data.ingest.tree import SPLIT_ALIASES, has_split_folders, nfc


def _place(rel: Path, split_layout: bool) -> tuple[str, str, str]:
    """(split, label, reason) from a path relative to the dataset root."""
    parts = rel.parts
    if split_layout:
        if len(parts) != 3 or parts[0].lower() not in SPLIT_ALIASES:
            return "", "", "not in a <split>/<class>/ folder"
        return SPLIT_ALIASES[parts[0].lower()], nfc(parts[1]), ""
    if len(parts) != 2:
        return "", "", "not in a <class>/ folder"
    return "", nfc(parts[0]), ""


def layout_base(files: list[str]) -> str:
    """The folder that holds the class (or split) folders: the deepest one every image sits two
    levels below (``raw-img/`` in ``raw-img/<class>/<file>`` beside a ``translate.py``), else the root."""
    images = [PurePosixPath(f) for f in files if PurePosixPath(f).suffix.lower() in Image.registered_extensions()]
    grandparents = [p.parent.parent.parts for p in images if len(p.parts) >= 2]
    common = posixpath.commonprefix(grandparents) if grandparents else ()
    return "/".join(common)


def places_from_folders(files: list[str]) -> tuple[dict, bool]:
    """{id: place} from the folder names, and whether the folders give the split."""
    base = layout_base(files)
    split_layout = has_split_folders(files, base)
    places = {}
    for rel in files:
        if base and not rel.startswith(base + "/"):
            split, label, reason = "", "", f"not in {base}/, the folder of the class folders"
        else:
            split, label, reason = _place(PurePosixPath(rel).relative_to(base), split_layout)
        places[rel] = {"label": label, "split": split, "reason": reason, "status": "rejected" if reason else None}
    return places, split_layout
