"""Image quality as cleanvision defines it: its properties (brightness, entropy, blurriness) computed
by its own code on each processed image's unpadded pixels, and its scores (lower is worse) with its
default normalisation; plus, in the same pass, each image's pHash and a grey 32x32 thumbnail for the
near-copy search. cleanvision's property classes have no public import path (its Imagelab works
on files on disk, not on the shards' pixels): they are reached in one place, cleanvision_properties,
which fails in one line naming the version if an upgrade moves them.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from specimen import SpecimenError
from specimen.shards import Shards
from specimen.workers import process_pool, workers

QUALITY = ("dark", "light", "blurry", "low_information", "odd_aspect_ratio", "grayscale", "odd_size")
THUMB = 32
CLEANVISION_PROPERTIES = "cleanvision.issue_managers.image_property"
CHUNK_ROWS = 1024  # images per task of the properties' workers (fewer where that leaves a worker idle)
WORKER_DIED = (
    "a worker computing image properties died part-way (killed by the out-of-memory killer or a signal, "
    "see dmesg): nothing was written; give the job more memory (Snakemake: --resources mem_mb) or fewer "
    "threads (OMP_NUM_THREADS), and run it again"
)


def cleanvision_properties():
    """(BrightnessProperty, EntropyProperty, BlurrinessProperty, ColorSpaceProperty, SizeProperty):
    cleanvision's own code for its properties and scores, which it exposes through its Imagelab
    only, over files on disk."""
    import importlib

    import cleanvision

    try:
        module = importlib.import_module(CLEANVISION_PROPERTIES)
        return (
            module.BrightnessProperty,
            module.EntropyProperty,
            module.BlurrinessProperty,
            module.ColorSpaceProperty,
            module.SizeProperty,
        )
    except (ImportError, AttributeError) as e:
        raise SpecimenError(
            f"cleanvision {cleanvision.__version__}: {e}; specimen.clean.quality reads its image "
            f"properties from {CLEANVISION_PROPERTIES}: pin cleanvision==0.3.7 or adapt it"
        ) from None


def image_properties(processed: Path, index: pd.DataFrame, batch_size: int = 256):
    """(raw cleanvision properties as a DataFrame, pHashes as uint64, grey 32x32 thumbnails).

    Chunks of the index go to forked workers (specimen.workers: as many as the job's threads); each
    image's figures depend on its pixels alone, so they are the same whatever the workers."""
    n_workers = workers()
    chunk = max(64, min(CHUNK_ROWS, -(-len(index) // (4 * n_workers))))
    chunks = [index.iloc[s : s + chunk] for s in range(0, len(index), chunk)]
    n_workers = min(n_workers, len(chunks))
    raws, hashes, thumbs = [], [], []  # per chunk: a table (not a dict per image: 0.1 GB at 100,000)
    with contextlib.ExitStack() as stack:
        if n_workers > 1:
            pool = stack.enter_context(process_pool(n_workers, WORKER_DIED))
            parts = pool.map(_properties, [processed] * len(chunks), chunks, [batch_size] * len(chunks))
        else:
            parts = map(_properties, [processed] * len(chunks), chunks, [batch_size] * len(chunks))
        bar = stack.enter_context(tqdm(total=len(index), desc="clean: image properties", unit="img", mininterval=1))
        for raw, h, t in parts:
            raws.append(raw)
            hashes.append(h)
            thumbs.append(t)
            bar.update(len(h))
    raw = pd.concat(raws, ignore_index=True) if raws else pd.DataFrame()
    raw.index = index.index
    w, h = index["width"].astype(float), index["height"].astype(float)
    raw["aspect_ratio"] = np.minimum(w / h, h / w)
    raw["size"] = np.sqrt(w) * np.sqrt(h)  # cleanvision's size: the square root of the source's area
    hashes = np.concatenate([np.zeros(0, np.uint64), *hashes])
    return raw, hashes, np.concatenate([np.zeros((0, THUMB * THUMB), np.uint8), *thumbs])


def _properties(processed: Path, rows: pd.DataFrame, batch_size: int):
    """(cleanvision's raw properties per image, pHashes, thumbnails) of `rows`, in their order."""
    import imagehash
    from PIL import Image

    BrightnessProperty, EntropyProperty, BlurrinessProperty, _, _ = cleanvision_properties()

    props = [BrightnessProperty("dark"), EntropyProperty(), BlurrinessProperty()]
    raws, hashes = [], np.zeros(len(rows), dtype=np.uint64)
    thumbs = np.zeros((len(rows), THUMB * THUMB), dtype=np.uint8)
    at = 0
    for batch, images in Shards(processed / "shards").batches(rows, batch_size):
        for (y0, x0, y1, x1), img in zip(batch[["y0", "x0", "y1", "x1"]].to_numpy(), images):
            pixels = np.ascontiguousarray(img[y0:y1, x0:x1])
            pil = Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels)
            # cleanvision's grayscale is a file of mode L: here, pixels with one channel or three equal
            grey = pixels.shape[2] == 1 or bool((pixels[..., 1:] == pixels[..., :1]).all())
            raw = {"color_space": "L" if grey else "RGB"}
            for prop in props:
                raw.update(prop.calculate(pil))
            raws.append(raw)
            bits = imagehash.phash(pil).hash.flatten()
            hashes[at] = np.packbits(bits).view(">u8")[0]
            grey = pil.convert("L").resize((THUMB, THUMB), Image.Resampling.BILINEAR)
            thumbs[at] = np.asarray(grey).ravel()
            at += 1
    return pd.DataFrame(raws), hashes, thumbs


def quality_scores(raw: pd.DataFrame) -> pd.DataFrame:
    """cleanvision's score per issue kind (lower is worse), from its own get_scores."""
    BrightnessProperty, EntropyProperty, BlurrinessProperty, ColorSpaceProperty, SizeProperty = cleanvision_properties()

    dark = BrightnessProperty("dark").get_scores(raw, "dark")["dark_score"]
    light = BrightnessProperty("light").get_scores(raw, "light")["light_score"]
    info = EntropyProperty().get_scores(raw, "low_information", normalizing_factor=0.1)["low_information_score"]
    blurry = BlurrinessProperty().get_scores(raw, "blurry", normalizing_factor=0.01, color_threshold=0.18)[
        "blurry_score"
    ]
    scores = pd.DataFrame(
        {
            "dark": dark,
            "light": light,
            "blurry": blurry,
            "low_information": info,
            "odd_aspect_ratio": raw["aspect_ratio"],
            "grayscale": ColorSpaceProperty().get_scores(raw, "grayscale")["grayscale_score"],
            "odd_size": SizeProperty().get_scores(raw, "odd_size")["odd_size_score"],
        },
        index=raw.index,
    )
    return scores.astype(float)
