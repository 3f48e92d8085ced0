"""The demo's planted faults, each a function of the builder: copies, corrupt and non-image files,
foreign, blank and noise images, and the format variants a decoder has to convert."""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

from specimen.data.demo.render import (
    CLASSES,
    FOREIGN_MIN_STD,
    KEEP_FRACTIONS,
    LUMA,
    NEAR_JPEG_QUALITY,
    PNG_FRACTION,
    SPLIT_FRACTIONS,
    SPLITS,
    Builder,
    encode,
    extension,
    render_digit,
)


def subsample(b: Builder) -> tuple[dict[int, list[int]], list[int]]:
    """Per class, the kept source indices (shuffled) and the spare pool."""
    kept: dict[int, list[int]] = {}
    spare: list[int] = []
    for c, frac in enumerate(KEEP_FRACTIONS):
        idx = b.rng.permutation(np.flatnonzero(b.targets == c))
        n_keep = int(round(frac * len(idx)))
        kept[c] = [int(i) for i in idx[:n_keep]]
        spare.extend(int(i) for i in idx[n_keep:])
    return kept, sorted(spare)


def plant_clean(b: Builder, kept: dict[int, list[int]]) -> None:
    """Render the kept digits and split them 70/15/15 per class."""
    for c, indices in kept.items():
        n = len(indices)
        n_train = int(round(SPLIT_FRACTIONS[0] * n))
        n_valid = int(round(SPLIT_FRACTIONS[1] * n))
        for pos, i in enumerate(indices):
            split = "train" if pos < n_train else "valid" if pos < n_train + n_valid else "test"
            rgb, _ = render_digit(b.rng, b.digits[i])
            fmt = "PNG" if b.rng.random() < PNG_FRACTION else "JPEG"
            path = f"{split}/{c}/img_{i:05d}.{extension(fmt)}"
            b.add(path, encode(rgb, fmt), "clean", source_index=i)
            b.pixels[path] = rgb


def plant_duplicates(b: Builder) -> None:
    """Exact, cross-split, near and near-leak copies of distinct train images."""
    plan = [("exact_duplicate", 8), ("cross_split_duplicate", 8), ("near_duplicate", 8), ("near_duplicate_leak", 6)]
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
                b.add(f"{split}/{label}/{stem}_copy.{ext}", b.entries[twin], kind, twin=twin, source_index=src)
            elif kind == "cross_split_duplicate":
                b.add(f"{split}/{label}/{name}", b.entries[twin], kind, twin=twin, source_index=src)
            else:
                data = _near_copy(b.rng, b.pixels[twin], variant=j % 2)
                b.add(f"{split}/{label}/{stem}_edit.jpg", data, kind, twin=twin, source_index=src)


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


def plant_corrupt(b: Builder, spare: list[int]) -> None:
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


def plant_non_images(b: Builder) -> None:
    """Stray non-image files inside class folders."""
    b.add("train/3/notes.txt", b"TODO: re-check the scans in this folder, some look odd.\n", "non_image")
    b.add("valid/7/labels.csv", b"file,label\nimg_00007.jpg,7\nimg_00017.jpg,7\n", "non_image")
    b.add(
        "test/1/desktop.ini",
        b"[.ShellClassInfo]\r\nIconResource=C:\\Windows\\System32\\imageres.dll,-3\r\n",
        "non_image",
    )


def _photo_crop(rng: np.random.Generator, photos: list[np.ndarray]) -> np.ndarray:
    """A random 40..120 px crop with visible texture (no flat sky patches,
    which would look like a ``blank`` image rather than a foreign photo)."""
    while True:
        photo = photos[int(rng.integers(0, len(photos)))]
        h, w = int(rng.integers(40, 121)), int(rng.integers(40, 121))
        y = int(rng.integers(0, photo.shape[0] - h + 1))
        x = int(rng.integers(0, photo.shape[1] - w + 1))
        crop = np.ascontiguousarray(photo[y : y + h, x : x + w])
        if (crop.astype(np.float64) @ LUMA).std() >= FOREIGN_MIN_STD:
            return crop


def plant_foreign(b: Builder, n: int = 12) -> None:
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


def plant_blank(b: Builder, n: int = 8, n_almost: int = 2) -> None:
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
        b.add(f"{split}/{label}/{b.extra_name(extension(fmt))}", encode(img, fmt), "blank")


def plant_noise(b: Builder, n: int = 8) -> None:
    """Images of uniform random RGB noise."""
    for j in range(n):
        h, w = int(b.rng.integers(20, 97)), int(b.rng.integers(20, 97))
        img = b.rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        fmt = "PNG" if j % 2 else "JPEG"
        split, label = b.random_folder()
        b.add(f"{split}/{label}/{b.extra_name(extension(fmt))}", encode(img, fmt), "noise")


def plant_mislabelled(b: Builder, spare: list[int], n: int = 16) -> None:
    """Clean training digits (from source digits not kept) filed under another digit's folder; the
    truth records the digit drawn as ``true_label``. Named like any other image: only the truth file
    tells them apart, as with a wrong label in a real dataset."""
    for _ in range(n):
        i = spare.pop()
        true = int(b.targets[i])
        label = CLASSES[(true + int(b.rng.integers(1, len(CLASSES)))) % len(CLASSES)]
        rgb, _ = render_digit(b.rng, b.digits[i])
        fmt = "PNG" if b.rng.random() < PNG_FRACTION else "JPEG"
        b.add(
            f"train/{label}/img_{i:05d}.{extension(fmt)}",
            encode(rgb, fmt),
            "mislabelled",
            true_label=str(true),
            source_index=i,
        )


def _exif_orientation_6() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6
    return exif.tobytes()


def _variant(b: Builder, kind: str, rgb: np.ndarray, mask: np.ndarray, fmt: str) -> tuple[bytes, dict]:
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


def plant_format_variants(b: Builder, spare: list[int]) -> None:
    """Valid digits in awkward encodings, from source digits not kept."""
    plan = [
        ("cmyk", "JPEG"),
        ("cmyk", "JPEG"),
        ("greyscale", "PNG"),
        ("greyscale", "PNG"),
        ("greyscale", "JPEG"),
        ("rgba", "PNG"),
        ("rgba", "PNG"),
        ("palette", "PNG"),
        ("palette", "PNG"),
        ("exif_rotated", "JPEG"),
        ("exif_rotated", "JPEG"),
        ("exif_rotated", "JPEG"),
        ("sixteen_bit", "PNG"),
    ]
    for kind, fmt in plan:
        i = spare.pop()
        pad = None
        if kind == "exif_rotated":
            pad = (0, 24)  # clearly wider than tall: canvas s x (s + 24)
        rgb, mask = render_digit(b.rng, b.digits[i], pad=pad)
        data, extra = _variant(b, kind, rgb, mask, fmt)
        split = SPLITS[int(b.rng.choice(3, p=list(SPLIT_FRACTIONS)))]
        label = str(int(b.targets[i]))
        b.add(f"{split}/{label}/img_{i:05d}.{extension(fmt)}", data, kind, source_index=i, **extra)
