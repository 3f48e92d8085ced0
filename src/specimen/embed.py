"""embed: one feature vector per processed image, into data/features/<extractor>.npz (ids, features).

``histogram``: OpenCV ``calcHist`` over the 3 channels, 8x8x8 bins over [0, 256), normalised by
``cv2.normalize`` with its defaults (L2), flattened to 512 floats. Only the image's own pixels
count: the zero padding added by preprocess is masked out. Shards are read one batch at a time.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from specimen import SpecimenError
from specimen.files import write_npz
from specimen.shards import Shards

EXTRACTORS = ("histogram",)


def colour_histogram(rgb: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    if rgb.shape[2] == 1:
        rgb = np.repeat(rgb, 3, axis=2)
    hist = cv2.calcHist([np.ascontiguousarray(rgb)], [0, 1, 2], mask, [8, 8, 8], [0, 256, 0, 256, 0, 256])
    cv2.normalize(hist, hist)
    return hist.flatten()


def embed(processed: Path, out_path: Path, extractor: str, batch_size: int = 256) -> np.ndarray:
    if extractor not in EXTRACTORS:
        raise SpecimenError(f"embed.extractor {extractor!r}: choose one of {', '.join(EXTRACTORS)}")
    index = pd.read_csv(processed / "index.csv", keep_default_na=False)
    shards = Shards(processed / "shards")
    features = np.zeros((len(index), 512), dtype=np.float32)
    row = 0
    with tqdm(total=len(index), desc=f"embed {extractor}", unit="img", mininterval=1) as bar:
        for rows, images in shards.batches(index, batch_size):
            for (y0, x0, y1, x1), img in zip(rows[["y0", "x0", "y1", "x1"]].to_numpy(), images):
                mask = np.zeros(img.shape[:2], dtype=np.uint8)
                mask[y0:y1, x0:x1] = 255
                features[row] = colour_histogram(img, mask)
                row += 1
            bar.update(len(rows))
    write_npz(out_path, ids=np.array(index["id"].tolist(), dtype=str), features=features,
              extractor=np.array(extractor))
    return features
