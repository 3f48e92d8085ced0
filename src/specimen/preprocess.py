"""preprocess: decode every kept image, EXIF-rotate, convert, resize + pad; write shards + an index.

Each image is decoded with Pillow (EXIF orientation applied; CMYK, greyscale, 16-bit, palette and
alpha converted to RGB, transparency over black), resized proportionally to fit ``image.size``
and centred on a zero canvas. Workers decode in parallel (``OMP_NUM_THREADS`` when Snakemake runs
the job, else all cores) and results are written in manifest order, so the shards do not depend
on the number of cores. An image that fails to decode becomes a row of ``rejects.csv``.
"""
from __future__ import annotations

import os
import warnings
from multiprocessing import Pool
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from PIL import Image, ImageOps
from tqdm import tqdm

from specimen.files import atomic_dir, write_csv, write_json
from specimen.shards import ShardWriter

INDEX_COLUMNS = ["id", "label", "split", "sha256", "shard", "offset", "y0", "x0", "y1", "x1"]
REJECT_COLUMNS = ["id", "path", "label", "split", "stage", "reason"]


def workers() -> int:
    return max(1, int(os.environ.get("OMP_NUM_THREADS") or len(os.sched_getaffinity(0))))


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


def fit_pad(rgb: np.ndarray, height: int, width: int) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Resize keeping the aspect ratio to fit (height, width); centre on zeros. Returns the box."""
    h, w = rgb.shape[:2]
    scale = min(height / h, width / w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    resized = cv2.resize(rgb, (nw, nh), interpolation=interp)
    canvas = np.zeros((height, width, rgb.shape[2]), dtype=np.uint8)
    y0, x0 = (height - nh) // 2, (width - nw) // 2
    canvas[y0:y0 + nh, x0:x0 + nw] = resized
    return canvas, (y0, x0, y0 + nh, x0 + nw)


def load_image(path: str, height: int, width: int, color: str):
    """(array, box, "") or (None, None, reason)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as im:
                im = ImageOps.exif_transpose(im)
                rgb = to_rgb(im)
    except Exception as e:  # corrupt or truncated bytes: Pillow raises several types
        message = str(e).replace(path, Path(path).name).splitlines()[0][:120]
        return None, None, f"cannot decode: {message}"
    image, box = fit_pad(rgb, height, width)
    if color == "grey":
        image = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)[..., None]
    return image, box, ""


def _work(job):
    return load_image(*job)


def preprocess(manifest_path: Path, extracted: Path, out_dir: Path, image: dict, shard_size: int) -> pd.DataFrame:
    """Paths in the manifest are relative to `extracted` (data/extracted)."""
    manifest = pd.read_csv(manifest_path, keep_default_na=False, dtype=str)
    height, width = image["size"]
    ok = manifest[manifest.status == "ok"]
    rejects = [{**r, "stage": "ingest"} for r in manifest[manifest.status != "ok"].to_dict("records")]
    jobs = [(str(extracted / p), height, width, image["color"]) for p in ok.path]
    rows = []
    with atomic_dir(out_dir) as tmp, Pool(workers()) as pool:
        writer = ShardWriter(tmp / "shards", shard_size)
        results = pool.imap(_work, jobs, chunksize=16)
        for rec, (img, box, reason) in tqdm(zip(ok.to_dict("records"), results), total=len(jobs),
                                            desc="preprocess", unit="img", mininterval=1):
            if img is None:
                rejects.append({**rec, "stage": "preprocess", "reason": reason})
                continue
            shard, offset = writer.add(img)
            rows.append({**rec, "shard": shard, "offset": offset, **dict(zip(("y0", "x0", "y1", "x1"), box))})
        writer.flush()
        index = pd.DataFrame(rows, columns=INDEX_COLUMNS)
        write_csv(tmp / "index.csv", index)
        write_csv(tmp / "rejects.csv", pd.DataFrame(rejects).reindex(columns=REJECT_COLUMNS))
        write_json(tmp / "meta.json", {"size": [height, width], "resize": image["resize"], "color": image["color"],
                                       "channels": 1 if image["color"] == "grey" else 3,
                                       "images": len(index), "rejected": len(rejects)})
    return index
