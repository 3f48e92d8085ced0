"""Decoding one image as the shards hold it: EXIF-rotated, converted to RGB (16-bit scaled down,
alpha over black), brought to image.size by pad, crop or stretch, grey if asked; JPEGs much larger
than the target decoded at a reduced scale by libjpeg itself. preprocess, predict and search share it.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps


def to_rgb(im: Image.Image) -> np.ndarray:
    """Any Pillow image as an RGB uint8 array: 16-bit scaled down, alpha composited over black."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        a = np.asarray(im, dtype=np.float64)
        top = 65535.0 if a.max() > 255 else 255.0
        grey = np.clip(a / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = np.asarray(im.convert("RGBA"), dtype=np.float32)
        rgb = rgba[..., :3] * (rgba[..., 3:] / 255.0)
        return np.clip(rgb + 0.5, 0, 255).astype(np.uint8)
    return np.asarray(im.convert("RGB"))


def scaled_size(h: int, w: int, height: int, width: int, mode: str) -> tuple[int, int]:
    """The (h, w) an image of size (h, w) is resized to before padding or cropping."""
    if mode == "stretch":
        return height, width
    scale = (min if mode == "pad" else max)(height / h, width / w)
    return max(1, round(h * scale)), max(1, round(w * scale))


def _resize(rgb: np.ndarray, nh: int, nw: int) -> np.ndarray:
    """Area averaging for a strong reduction; bilinear for the last <= 2x after libjpeg's own
    scaling (as good there, and four times faster); bicubic to enlarge."""
    scale = min(nh / rgb.shape[0], nw / rgb.shape[1])
    interp = cv2.INTER_AREA if scale < 0.5 else cv2.INTER_LINEAR if scale < 1 else cv2.INTER_CUBIC
    out = cv2.resize(rgb, (nw, nh), interpolation=interp)
    return out if out.ndim == 3 else out[..., None]


def fit(rgb: np.ndarray, height: int, width: int, mode: str = "pad") -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Bring an image to (height, width) by `mode`. Returns it and the box its pixels occupy."""
    nh, nw = scaled_size(*rgb.shape[:2], height, width, mode)
    resized = _resize(rgb, nh, nw)
    if mode == "stretch":
        return resized, (0, 0, height, width)
    if mode == "crop":
        y0, x0 = (nh - height) // 2, (nw - width) // 2
        return np.ascontiguousarray(resized[y0 : y0 + height, x0 : x0 + width]), (0, 0, height, width)
    canvas = np.zeros((height, width, rgb.shape[2]), dtype=np.uint8)
    y0, x0 = (height - nh) // 2, (width - nw) // 2
    canvas[y0 : y0 + nh, x0 : x0 + nw] = resized
    return canvas, (y0, x0, y0 + nh, x0 + nw)


def shape(rgb: np.ndarray, height: int, width: int, color: str, mode: str = "pad"):
    """A decoded RGB image as the shards hold it: fitted to (height, width) by `mode`, grey if
    `color` says so. Returns it and the box its pixels occupy."""
    image, box = fit(rgb, height, width, mode)
    if color == "grey":
        image = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)[..., None]
    return image, box


def _draft(im: Image.Image, height: int, width: int, mode: str, orientation: int) -> None:
    """Ask libjpeg to decode at the smallest 1/2^k scale still at least as large as needed."""
    if im.format != "JPEG":
        return
    w, h = im.size
    if orientation in (5, 6, 7, 8):  # stored rotated by 90 degrees
        height, width = width, height
    nh, nw = scaled_size(h, w, height, width, mode)
    im.draft(im.mode, (nw, nh))


def load_image(
    path: str | bytes,
    height: int,
    width: int,
    color: str,
    mode: str = "pad",
    max_pixels: int | None = None,
    name: str = "",
):
    """(array, box, "") or (None, None, reason); `path` is a file's path, or its bytes (then `name`
    is the file's name in the reason)."""
    stream = io.BytesIO(path) if isinstance(path, bytes) else path
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(stream) as im:
                if max_pixels and im.width * im.height > max_pixels:
                    return None, None, f"decompression bomb: {im.width * im.height} pixels > image.max_pixels"
                orientation = im.getexif().get(0x0112, 1)
                _draft(im, height, width, mode, orientation)
                if orientation != 1:
                    im = ImageOps.exif_transpose(im)
                rgb = np.asarray(im) if im.mode == "RGB" else to_rgb(im)
    except Exception as e:  # corrupt or truncated bytes: Pillow raises several types
        message = (
            str(e).replace(repr(stream), repr(name))
            if isinstance(path, bytes)
            else str(e).replace(path, Path(path).name)
        )
        message = message.splitlines()[0][:120] if message else type(e).__name__
        return None, None, f"cannot decode: {message}"
    image, box = shape(rgb, height, width, color, mode)
    return image, box, ""
