"""The demo's images: a source digit drawn like a scan (random size, placement, ink and paper), and
the encoders with fixed settings; the builder that collects entries and the truth about each."""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import cv2
import numpy as np
from PIL import Image

CLASSES = [str(d) for d in range(10)]
SPLITS = ("train", "valid", "test")
SPLIT_FRACTIONS = (0.70, 0.15, 0.15)
# Fraction of the source digits kept per class (classes 0..9).
KEEP_FRACTIONS = (1.0, 1.0, 1.0, 1.0, 1.0, 0.85, 0.7, 0.6, 0.5, 0.4)
PNG_FRACTION = 0.2
JPEG_QUALITY = 90
NEAR_JPEG_QUALITY = 70
MIN_CONTRAST = 100.0
# Ink colours of a pen or pencil: black, blue, dark blue, pencil grey, brown.
INKS = np.array([[25, 25, 30], [35, 50, 140], [20, 30, 80], [95, 95, 100], [80, 55, 35]], dtype=np.float64)
NOISE_SIGMA = 4.0
FOREIGN_MIN_STD = 20.0  # grey-level spread of a foreign photo crop
LUMA = np.array([0.299, 0.587, 0.114])
# Planted files that are not clean digits are numbered from here on, so their
# names look like any other image but never collide with a source index.
EXTRA_ID_START = 2000

KINDS = (
    "clean",
    "corrupt",
    "non_image",
    "exact_duplicate",
    "cross_split_duplicate",
    "near_duplicate",
    "near_duplicate_leak",
    "foreign",
    "blank",
    "noise",
    "mislabelled",
    "cmyk",
    "greyscale",
    "rgba",
    "palette",
    "exif_rotated",
    "sixteen_bit",
)


def _luminance(rgb: np.ndarray) -> float:
    return float(0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2])


def _random_colours(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Paper and ink colours, like a scan: off-white paper with a slight tint (white, cream,
    grey, faintly blue), ink from a pen or pencil (black, blue, grey, brown), each jittered."""
    while True:
        bg = rng.uniform(185, 250) + rng.uniform(-15, 10, size=3)
        fg = INKS[int(rng.integers(0, len(INKS)))] + rng.uniform(-20, 20, size=3)
        bg, fg = np.clip(bg, 0, 255), np.clip(fg, 0, 255)
        if _luminance(bg) - _luminance(fg) >= MIN_CONTRAST:
            return bg, fg


def render_digit(
    rng: np.random.Generator,
    digit: np.ndarray,
    pad: tuple[int, int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Render an 8x8 digit (0..16) as a colour image.

    Returns ``(rgb, mask)``: an ``(H, W, 3)`` uint8 image and the ``(H, W)``
    float mask in [0, 1] of the digit strokes on the canvas.  ``pad`` forces
    the ``(pad_height, pad_width)`` instead of drawing them.
    """
    s = int(rng.integers(20, 49))
    m = cv2.resize((digit / 16.0).astype(np.float32), (s, s), interpolation=cv2.INTER_CUBIC)
    m = np.clip(m, 0.0, 1.0).astype(np.float64)
    if pad is None:
        ph, pw = int(rng.integers(0, s + 1)), int(rng.integers(0, s + 1))
    else:
        ph, pw = pad
    oy, ox = int(rng.integers(0, ph + 1)), int(rng.integers(0, pw + 1))
    mask = np.zeros((s + ph, s + pw), dtype=np.float64)
    mask[oy : oy + s, ox : ox + s] = m
    bg, fg = _random_colours(rng)
    img = bg * (1.0 - mask[..., None]) + fg * mask[..., None]
    img = img + rng.normal(0.0, NOISE_SIGMA, size=img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8), mask


def encode(img: Image.Image | np.ndarray, fmt: str, quality: int = JPEG_QUALITY, **kwargs) -> bytes:
    """Encode an image (PIL or uint8 array) as ``"JPEG"`` or ``"PNG"`` bytes."""
    if isinstance(img, np.ndarray):
        img = Image.fromarray(img)
    buf = io.BytesIO()
    if fmt == "JPEG":
        img.save(buf, format="JPEG", quality=quality, **kwargs)
    else:
        img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def extension(fmt: str) -> str:
    return {"JPEG": "jpg", "PNG": "png"}[fmt]


@dataclass
class Builder:
    """Collects zip entries and their truth records."""

    rng: np.random.Generator
    digits: np.ndarray  # (1797, 8, 8)
    targets: np.ndarray  # (1797,)
    entries: dict[str, bytes] = field(default_factory=dict)
    records: dict[str, dict] = field(default_factory=dict)
    pixels: dict[str, np.ndarray] = field(default_factory=dict)  # clean RGB
    next_extra: int = EXTRA_ID_START

    def add(self, path: str, data: bytes, kind: str, **extra) -> None:
        if path in self.entries:
            raise RuntimeError(f"duplicate zip entry {path}")
        split, label, _ = path.split("/")
        self.entries[path] = data
        self.records[path] = {"path": path, "split": split, "label": label, "kind": kind, **extra}

    def extra_name(self, ext: str) -> str:
        name = f"img_{self.next_extra:05d}.{ext}"
        self.next_extra += 1
        return name

    def random_folder(self) -> tuple[str, str]:
        split = SPLITS[int(self.rng.choice(3, p=[0.6, 0.2, 0.2]))]
        return split, CLASSES[int(self.rng.integers(0, 10))]

    def clean_train(self) -> list[str]:
        return sorted(p for p, r in self.records.items() if r["kind"] == "clean" and r["split"] == "train")
