"""The dataset's tree: its root below any wrapper folder, its files, the split folders' names, and
what one file is, from its header (format, mode, size; rejected when empty, corrupt or a bomb)."""

from __future__ import annotations

import contextlib
import re
import unicodedata
import warnings
from pathlib import Path

from PIL import Image

from specimen import SpecimenError

SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "valid": "valid",
    "val": "valid",
    "validation": "valid",
    "test": "test",
    "testing": "test",
}
DEFAULT_MAX_PIXELS = 178_956_970  # image.max_pixels' default (twice Pillow's warning threshold)


def nfc(text: str) -> str:
    """Labels are compared in Unicode NFC: one class, not two that print alike."""
    return unicodedata.normalize("NFC", text)


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
