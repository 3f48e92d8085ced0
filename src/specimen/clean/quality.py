"""Image quality as cleanvision defines it: its properties (brightness, entropy, blurriness) computed
by its own code on each processed image's unpadded pixels, and its scores (lower is worse) with its
default normalisation; plus, in the same pass, each image's pHash and a grey 32x32 thumbnail for the
near-copy search. cleanvision's property classes have no public import path (its Imagelab works
on files on disk, not on the shards' pixels): they are reached in one place, cleanvision_properties,
which fails in one line naming the version if an upgrade moves them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from specimen import SpecimenError
from specimen.shards import Shards

QUALITY = ("dark", "light", "blurry", "low_information", "odd_aspect_ratio", "grayscale", "odd_size")
THUMB = 32
CLEANVISION_PROPERTIES = "cleanvision.issue_managers.image_property"


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
    """(raw cleanvision properties as a DataFrame, pHashes as uint64, grey 32x32 thumbnails)."""
    import imagehash
    from PIL import Image

    BrightnessProperty, EntropyProperty, BlurrinessProperty, _, _ = cleanvision_properties()

    props = [BrightnessProperty("dark"), EntropyProperty(), BlurrinessProperty()]
    raws, hashes = [], np.zeros(len(index), dtype=np.uint64)
    thumbs = np.zeros((len(index), THUMB * THUMB), dtype=np.uint8)
    row = 0
    shards = Shards(processed / "shards")
    with tqdm(total=len(index), desc="clean: image properties", unit="img", mininterval=1) as bar:
        for rows, images in shards.batches(index, batch_size):
            for (y0, x0, y1, x1), img in zip(rows[["y0", "x0", "y1", "x1"]].to_numpy(), images):
                pixels = np.ascontiguousarray(img[y0:y1, x0:x1])
                pil = Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels)
                # cleanvision's grayscale is a file of mode L: here, pixels with one channel or three equal
                grey = pixels.shape[2] == 1 or bool((pixels[..., 1:] == pixels[..., :1]).all())
                raw = {"color_space": "L" if grey else "RGB"}
                for prop in props:
                    raw.update(prop.calculate(pil))
                raws.append(raw)
                bits = imagehash.phash(pil).hash.flatten()
                hashes[row] = np.packbits(bits).view(">u8")[0]
                grey = pil.convert("L").resize((THUMB, THUMB), Image.Resampling.BILINEAR)
                thumbs[row] = np.asarray(grey).ravel()
                row += 1
            bar.update(len(rows))
    raw = pd.DataFrame(raws, index=index.index)
    w, h = index["width"].astype(float), index["height"].astype(float)
    raw["aspect_ratio"] = np.minimum(w / h, h / w)
    raw["size"] = np.sqrt(w) * np.sqrt(h)  # cleanvision's size: the square root of the source's area
    return raw, hashes, thumbs


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
