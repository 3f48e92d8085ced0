"""Feeding the shards to Keras: a tf.data pipeline over (images, label ids), batch by batch.

Shuffling is a seeded ``Dataset.shuffle`` over row numbers, then each batch of rows is gathered
from the memory-mapped shards, so only one batch of images is in memory at a time and the order
is the same on every run.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from specimen.shards import Shards


def load_classes(path: Path) -> list[str]:
    return json.loads(Path(path).read_text())["classes"]


def split_rows(index_path: Path, split: str) -> pd.DataFrame:
    index = pd.read_csv(index_path, keep_default_na=False, dtype={"label": str, "split": str})
    return index[index.split == split].reset_index(drop=True)


def dataset(rows: pd.DataFrame, processed: Path, classes: list[str], batch_size: int,
            shuffle: bool = False, seed: int = 0):
    import tensorflow as tf

    shards = Shards(Path(processed) / "shards")
    ids = {c: i for i, c in enumerate(classes)}
    labels = rows.label.map(ids).to_numpy(dtype=np.int32)
    shard_names, offsets = rows.shard.to_numpy(), rows.offset.to_numpy()
    sample = shards.get(shard_names[:1], offsets[:1])
    shape = sample.shape[1:]

    def gather(positions):
        return shards.get(shard_names[positions], offsets[positions]), labels[positions]

    def load(positions):
        images, y = tf.numpy_function(gather, [positions], (tf.uint8, tf.int32), stateful=False)
        images.set_shape((None, *shape))
        y.set_shape((None,))
        return images, y

    ds = tf.data.Dataset.range(len(rows))
    if shuffle:
        ds = ds.shuffle(len(rows), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).prefetch(2)
