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
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from specimen.artefacts import atomic_file, write_json, zip_entry

__all__ = ["make_demo"]

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
    "clean", "corrupt", "non_image", "exact_duplicate", "cross_split_duplicate",
    "near_duplicate", "near_duplicate_leak", "foreign", "blank", "noise",
    "cmyk", "greyscale", "rgba", "palette", "exif_rotated", "sixteen_bit",
)



# --------------------------------------------------------------------------
# Rendering and encoding
# --------------------------------------------------------------------------

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
    mask[oy:oy + s, ox:ox + s] = m
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


def _ext(fmt: str) -> str:
    return {"JPEG": "jpg", "PNG": "png"}[fmt]


# --------------------------------------------------------------------------
# Dataset assembly
# --------------------------------------------------------------------------

@dataclass
class _Builder:
    """Collects zip entries and their truth records."""

    rng: np.random.Generator
    digits: np.ndarray          # (1797, 8, 8)
    targets: np.ndarray         # (1797,)
    entries: dict[str, bytes] = field(default_factory=dict)
    records: dict[str, dict] = field(default_factory=dict)
    pixels: dict[str, np.ndarray] = field(default_factory=dict)   # clean RGB
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
        return sorted(p for p, r in self.records.items()
                      if r["kind"] == "clean" and r["split"] == "train")


def _subsample(b: _Builder) -> tuple[dict[int, list[int]], list[int]]:
    """Per class, the kept source indices (shuffled) and the spare pool."""
    kept: dict[int, list[int]] = {}
    spare: list[int] = []
    for c, frac in enumerate(KEEP_FRACTIONS):
        idx = b.rng.permutation(np.flatnonzero(b.targets == c))
        n_keep = int(round(frac * len(idx)))
        kept[c] = [int(i) for i in idx[:n_keep]]
        spare.extend(int(i) for i in idx[n_keep:])
    return kept, sorted(spare)


def plant_clean(b: _Builder, kept: dict[int, list[int]]) -> None:
    """Render the kept digits and split them 70/15/15 per class."""
    for c, indices in kept.items():
        n = len(indices)
        n_train = int(round(SPLIT_FRACTIONS[0] * n))
        n_valid = int(round(SPLIT_FRACTIONS[1] * n))
        for pos, i in enumerate(indices):
            split = "train" if pos < n_train else "valid" if pos < n_train + n_valid else "test"
            rgb, _ = render_digit(b.rng, b.digits[i])
            fmt = "PNG" if b.rng.random() < PNG_FRACTION else "JPEG"
            path = f"{split}/{c}/img_{i:05d}.{_ext(fmt)}"
            b.add(path, encode(rgb, fmt), "clean", source_index=i)
            b.pixels[path] = rgb


def plant_duplicates(b: _Builder) -> None:
    """Exact, cross-split, near and near-leak copies of distinct train images."""
    plan = [("exact_duplicate", 8), ("cross_split_duplicate", 8),
            ("near_duplicate", 8), ("near_duplicate_leak", 6)]
    pool = b.clean_train()
    chosen = b.rng.choice(len(pool), size=sum(n for _, n in plan), replace=False)
    twins = iter(pool[int(k)] for k in chosen)
    for kind, n in plan:
        for j in range(n):
            twin = next(twins)
            split, label, name = twin.split("/")
            stem, ext = name.rsplit(".", 1)
            src = b.records[twin]["source_index"]
            if kind in ("cross_split_duplicate", "near_duplicate_leak"):
                split = "valid" if b.rng.random() < 0.5 else "test"
            if kind == "exact_duplicate":
                b.add(f"{split}/{label}/{stem}_copy.{ext}", b.entries[twin], kind,
                      twin=twin, source_index=src)
            elif kind == "cross_split_duplicate":
                b.add(f"{split}/{label}/{name}", b.entries[twin], kind,
                      twin=twin, source_index=src)
            else:
                data = _near_copy(b.rng, b.pixels[twin], variant=j % 2)
                b.add(f"{split}/{label}/{stem}_edit.jpg", data, kind,
                      twin=twin, source_index=src)


def _near_copy(rng: np.random.Generator, rgb: np.ndarray, variant: int) -> bytes:
    """A slightly changed JPEG re-save of ``rgb``, as near copies are found on the web.

    variant 0: downscaled to 70-85 % and saved at lower quality (a thumbnail);
    variant 1: brightness +10 at the normal quality.
    """
    if variant == 0:
        scale = float(rng.uniform(0.70, 0.85))
        h, w = rgb.shape[:2]
        small = cv2.resize(rgb, (max(8, round(w * scale)), max(8, round(h * scale))), interpolation=cv2.INTER_AREA)
        return encode(small, "JPEG", quality=NEAR_JPEG_QUALITY)
    brighter = np.clip(rgb.astype(np.int16) + 10, 0, 255).astype(np.uint8)
    return encode(brighter, "JPEG")


def plant_corrupt(b: _Builder, spare: list[int]) -> None:
    """Broken files carrying image extensions."""
    for _ in range(2):  # truncated JPEGs
        rgb, _ = render_digit(b.rng, b.digits[spare.pop()])
        data = encode(rgb, "JPEG")
        split, label = b.random_folder()
        b.add(f"{split}/{label}/{b.extra_name('jpg')}", data[: int(len(data) * 0.6)], "corrupt")
    for _ in range(2):  # random bytes
        n = int(b.rng.integers(500, 3000))
        data = b.rng.integers(0, 256, size=n, dtype=np.uint8).tobytes()
        split, label = b.random_folder()
        b.add(f"{split}/{label}/{b.extra_name('jpg')}", data, "corrupt")
    split, label = b.random_folder()
    b.add(f"{split}/{label}/{b.extra_name('png')}", b"", "corrupt")
    # A PNG whose IHDR chunk was overwritten: the signature is fine, the CRC is not.
    rgb, _ = render_digit(b.rng, b.digits[spare.pop()])
    data = bytearray(encode(rgb, "PNG"))
    data[16:24] = b"\x00\x00\x00\x00\xff\xff\xff\xff"
    split, label = b.random_folder()
    b.add(f"{split}/{label}/{b.extra_name('png')}", bytes(data), "corrupt")


def plant_non_images(b: _Builder) -> None:
    """Stray non-image files inside class folders."""
    b.add("train/3/notes.txt", b"TODO: re-check the scans in this folder, some look odd.\n",
          "non_image")
    b.add("valid/7/labels.csv", b"file,label\nimg_00007.jpg,7\nimg_00017.jpg,7\n", "non_image")
    b.add("test/1/desktop.ini", b"[.ShellClassInfo]\r\nIconResource=C:\\Windows\\System32\\imageres.dll,-3\r\n",
          "non_image")


def _photo_crop(rng: np.random.Generator, photos: list[np.ndarray]) -> np.ndarray:
    """A random 40..120 px crop with visible texture (no flat sky patches,
    which would look like a ``blank`` image rather than a foreign photo)."""
    while True:
        photo = photos[int(rng.integers(0, len(photos)))]
        h, w = int(rng.integers(40, 121)), int(rng.integers(40, 121))
        y = int(rng.integers(0, photo.shape[0] - h + 1))
        x = int(rng.integers(0, photo.shape[1] - w + 1))
        crop = np.ascontiguousarray(photo[y:y + h, x:x + w])
        if (crop.astype(np.float64) @ LUMA).std() >= FOREIGN_MIN_STD:
            return crop


def plant_foreign(b: _Builder, n: int = 12) -> None:
    """Random crops of sklearn's sample photos (china.jpg, flower.jpg)."""
    from sklearn.datasets import load_sample_images

    photos = load_sample_images().images
    for _ in range(n):
        crop = _photo_crop(b.rng, photos)
        h, w = crop.shape[:2]
        scale = float(b.rng.uniform(0.7, 1.3))
        size = (max(16, int(round(w * scale))), max(16, int(round(h * scale))))
        crop = cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
        split, label = b.random_folder()
        b.add(f"{split}/{label}/{b.extra_name('jpg')}", encode(crop, "JPEG"), "foreign")


def plant_blank(b: _Builder, n: int = 8, n_almost: int = 2) -> None:
    """Uniform-colour images; the last ``n_almost`` carry a tiny noise."""
    for j in range(n):
        h, w = int(b.rng.integers(20, 97)), int(b.rng.integers(20, 97))
        colour = b.rng.integers(0, 256, size=3).astype(np.float64)
        img = np.broadcast_to(colour, (h, w, 3)).copy()
        if j >= n - n_almost:
            img = img + b.rng.normal(0.0, 1.0, size=img.shape)
        img = np.clip(np.rint(img), 0, 255).astype(np.uint8)
        fmt = "PNG" if j % 2 else "JPEG"
        split, label = b.random_folder()
        b.add(f"{split}/{label}/{b.extra_name(_ext(fmt))}", encode(img, fmt), "blank")


def plant_noise(b: _Builder, n: int = 8) -> None:
    """Images of uniform random RGB noise."""
    for j in range(n):
        h, w = int(b.rng.integers(20, 97)), int(b.rng.integers(20, 97))
        img = b.rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        fmt = "PNG" if j % 2 else "JPEG"
        split, label = b.random_folder()
        b.add(f"{split}/{label}/{b.extra_name(_ext(fmt))}", encode(img, fmt), "noise")


def _exif_orientation_6() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6
    return exif.tobytes()


def _variant(b: _Builder, kind: str, rgb: np.ndarray, mask: np.ndarray,
             fmt: str) -> tuple[bytes, dict]:
    """Encode one format variant; returns the bytes and extra truth fields."""
    img = Image.fromarray(rgb)
    if kind == "cmyk":
        return encode(img.convert("CMYK"), "JPEG"), {}
    if kind == "greyscale":
        return encode(img.convert("L"), fmt), {}
    if kind == "rgba":
        bg_alpha = int(b.rng.integers(40, 200))
        alpha = np.where(mask > 0.25, 255, bg_alpha).astype(np.uint8)
        return encode(np.dstack([rgb, alpha]), "PNG"), {}
    if kind == "palette":
        return encode(img.convert("P", palette=Image.ADAPTIVE, colors=64), "PNG"), {}
    if kind == "exif_rotated":
        stored = img.transpose(Image.Transpose.ROTATE_90)
        data = encode(stored, "JPEG", exif=_exif_orientation_6())
        return data, {"width": img.width, "height": img.height}
    if kind == "sixteen_bit":
        grey = rgb.astype(np.float64) @ LUMA
        grey16 = np.clip(np.rint(grey * 257.0), 0, 65535).astype(np.uint16)
        return encode(Image.fromarray(grey16), "PNG"), {}
    raise ValueError(kind)


def plant_format_variants(b: _Builder, spare: list[int]) -> None:
    """Valid digits in awkward encodings, from source digits not kept."""
    plan = [("cmyk", "JPEG"), ("cmyk", "JPEG"),
            ("greyscale", "PNG"), ("greyscale", "PNG"), ("greyscale", "JPEG"),
            ("rgba", "PNG"), ("rgba", "PNG"),
            ("palette", "PNG"), ("palette", "PNG"),
            ("exif_rotated", "JPEG"), ("exif_rotated", "JPEG"), ("exif_rotated", "JPEG"),
            ("sixteen_bit", "PNG")]
    for kind, fmt in plan:
        i = spare.pop()
        pad = None
        if kind == "exif_rotated":
            pad = (0, 24)   # clearly wider than tall: canvas s x (s + 24)
        rgb, mask = render_digit(b.rng, b.digits[i], pad=pad)
        data, extra = _variant(b, kind, rgb, mask, fmt)
        split = SPLITS[int(b.rng.choice(3, p=list(SPLIT_FRACTIONS)))]
        label = str(int(b.targets[i]))
        b.add(f"{split}/{label}/img_{i:05d}.{_ext(fmt)}", data, kind, source_index=i, **extra)


# --------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------

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
    b = _Builder(rng=np.random.default_rng(seed),
                 digits=np.asarray(data.images, dtype=np.float64),
                 targets=np.asarray(data.target))
    kept, spare = _subsample(b)
    spare = [int(i) for i in b.rng.permutation(spare)]   # popped from the end
    plant_clean(b, kept)
    plant_duplicates(b)
    plant_format_variants(b, spare)
    plant_corrupt(b, spare)
    plant_non_images(b)
    plant_foreign(b)
    plant_blank(b)
    plant_noise(b)

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
