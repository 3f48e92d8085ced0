"""embed: one feature vector per processed image, into data/features/<extractor>.npz (ids, features).

The npz holds ``ids`` (index order), ``features`` (float32, one row per id) and ``extractor``; the
network extractors add ``weights`` (embed.weights, or the CLIP preset). Shards are read one batch of
``embed.batch_size`` images at a time, and each batch's features are written as they come: the
stage's memory does not grow with the number of images. The extractors (a colour
histogram, CLIP, any keras.applications backbone) are specimen.clean.features'.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from specimen import SpecimenError
from specimen.artefacts import Streamed, write_npz
from specimen.clean.features import EXTRACTORS, THREADS, histograms, network
from specimen.shards import Shards


def embed(
    processed: Path,
    out_path: Path,
    extractor: str = "histogram",
    *,
    batch_size: int = 64,
    weights: str = "imagenet",
    clip_preset: str = "clip_vit_base_patch32",
    input_size=None,
) -> tuple[int, int]:
    """Embed every image of processed/index.csv in index order into `out_path`; return (N, D)."""
    if extractor not in EXTRACTORS:
        raise SpecimenError(f"embed.extractor {extractor!r}: choose one of {', '.join(EXTRACTORS)}")
    index = pd.read_csv(processed / "index.csv", keep_default_na=False)
    shards = Shards(processed / "shards")
    extra = {}
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", str(THREADS))  # read when TensorFlow starts
    if extractor == "histogram":
        features_of, dim = histograms, 512
    elif index.empty:
        raise SpecimenError(f"{processed / 'index.csv'} lists no images: nothing to embed")
    elif extractor == "clip":
        (features_of, dim), extra["weights"] = network("clip", None, clip_preset=clip_preset), np.array(clip_preset)
    else:
        size = input_size or shards.get(index.shard[:1], index.offset[:1]).shape[1:3]
        (features_of, dim), extra["weights"] = network(extractor, size, weights=weights), np.array(weights)

    def blocks():
        with tqdm(total=len(index), desc=f"embed {extractor}", unit="img", mininterval=1) as bar:
            for rows, images in shards.batches(index, batch_size):
                yield features_of(rows, images)
                bar.update(len(rows))

    write_npz(
        out_path,
        ids=np.array(index["id"].tolist(), dtype=str),
        features=Streamed((len(index), dim), np.float32, blocks()),  # written a batch at a time
        extractor=np.array(extractor),
        **extra,
    )
    return len(index), dim
