"""The dataset's tree, from extract's listing: its root below any wrapper folder, its files, the
split folders' names, and what one file is, from its bytes (format, mode, size; rejected when
empty, corrupt or a bomb)."""

from __future__ import annotations

import contextlib
import io
import re
import unicodedata
import warnings
from pathlib import Path, PurePosixPath

from PIL import Image

from specimen import SpecimenError
from specimen.data.extracted import Extracted

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


def dataset_root(paths: list[str]) -> str:
    """The dataset folder, ``<name>`` below any single wrapper folder (``<name>/x/train/...``)."""
    root, rels = paths[0].split("/")[0], [p.split("/")[1:] for p in paths]
    while True:
        tops = {r[0] for r in rels}
        if len(tops) == 1 and all(len(r) > 1 for r in rels) and next(iter(tops)).lower() not in SPLIT_ALIASES:
            root, rels = f"{root}/{tops.pop()}", [r[1:] for r in rels]
        else:
            return root


class Tree:
    """The dataset's files below its root (sorted POSIX paths relative to it: the manifest's ids),
    their sizes and their bytes, read from the archive in place."""

    def __init__(self, extracted: Path):
        self.extracted = Extracted(extracted)
        paths = self.extracted.paths
        if not paths:
            raise SpecimenError(f"{extracted}: the dataset holds no files: check dataset.source")
        self.root = dataset_root(paths)
        self.where = Path(extracted) / self.root  # for messages
        self.name = PurePosixPath(self.root).name
        self.files = [p[len(self.root) + 1 :] for p in paths]

    def path(self, rel: str) -> str:
        """The file's path in the listing (the manifest's ``path``)."""
        return f"{self.root}/{rel}"

    def read(self, rel: str) -> bytes:
        return self.extracted.read(self.path(rel))

    def open(self, rel: str):
        return self.extracted.open(self.path(rel))

    def size(self, rel: str) -> int:
        return self.extracted.size(self.path(rel))

    def top(self) -> list[str]:
        """The names at the root, folders with a trailing slash."""
        return sorted({f.split("/")[0] + ("/" if "/" in f else "") for f in self.files})


def has_split_folders(files: list[str], base: str = "") -> bool:
    """Whether the folder `base` holds a split folder (train/, val/, ...)."""
    start = len(base) + 1 if base else 0
    return any(
        "/" in f[start:] and f[start:].split("/")[0].lower() in SPLIT_ALIASES
        for f in files
        if not base or f.startswith(base + "/")
    )


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


def probe(stream, name: str, max_pixels: int | None = None) -> dict:
    """What the file `name` is, from its bytes (a seekable stream, or bytes): format, mode and size
    if Pillow can read its header."""
    limit = max_pixels or DEFAULT_MAX_PIXELS
    stream = io.BytesIO(stream) if isinstance(stream, bytes) else stream
    if not stream.read(1):
        return {"status": "rejected", "reason": "empty file"}
    stream.seek(0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(stream) as im:
                info = {"format": im.format, "mode": im.mode, "width": im.width, "height": im.height}
                if im.width * im.height > limit:
                    return _bomb(im.width * im.height)
                im.verify()
    except Image.DecompressionBombError as e:
        pixels = re.search(r"\((\d+) pixels\)", str(e))
        return _bomb(pixels.group(1) if pixels else "too many")
    except Exception as e:  # Pillow raises many types for bad bytes; the reason says which
        if PurePosixPath(name).suffix.lower() in Image.registered_extensions():
            message = str(e).replace(repr(stream), repr(PurePosixPath(name).name))  # not the stream's repr
            message = message.splitlines()[0][:120] if message else type(e).__name__
            return {"status": "rejected", "reason": f"corrupt image: {message}"}
        return {"status": "rejected", "reason": "not an image"}
    return {**info, "status": "ok", "reason": ""}
