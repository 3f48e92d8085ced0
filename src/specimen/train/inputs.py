"""Feeding the shards to Keras: a tf.data pipeline over (images, label ids), batch by batch.

Shuffling is a seeded ``Dataset.shuffle`` over row numbers (reshuffled each epoch, the same
sequence on every run), then each batch of rows is gathered from the memory-mapped shards
(applying a row's ``transform``, for the copies that balance's oversampling adds) in parallel
calls whose order is kept, and prefetched while the model trains. Only a few batches of images are
in memory at a time. There is no decoding to parallelise or cache: preprocess decoded every image
once into the shards, and the OS page cache keeps the memory-mapped shards warm from one epoch
to the next, so a ``Dataset.cache()`` would only hold a second copy
(``bench/input_pipeline.py`` measures this feed against in-memory tensors).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from specimen.clean.balance import apply_transform
from specimen.shards import Shards


def load_classes(path: Path) -> list[str]:
    return json.loads(Path(path).read_text())["classes"]


def split_rows(index_path: Path, split: str | None = None) -> pd.DataFrame:
    """The rows of an index CSV (of one split, if given), renumbered from 0."""
    index = pd.read_csv(index_path, keep_default_na=False, dtype={"label": str, "split": str, "transform": str})
    return (index if split is None else index[index.split == split]).reset_index(drop=True)


def dataset(
    rows: pd.DataFrame,
    processed: Path,
    classes: list[str],
    batch_size: int,
    shuffle: bool = False,
    seed: int = 0,
    one_hot: bool = False,
):
    """Batches of (uint8 images, label ids), or one-hot float labels with `one_hot` (what
    training's loss takes: label smoothing and MixUp/CutMix need them)."""
    import tensorflow as tf

    shards = Shards(Path(processed) / "shards")
    ids = {c: i for i, c in enumerate(classes)}
    labels = rows.label.map(ids).to_numpy(dtype=np.int32)
    shard_names, offsets = rows.shard.to_numpy(), rows.offset.to_numpy()
    transforms = rows["transform"].to_numpy() if "transform" in rows else np.full(len(rows), "")
    sample = shards.get(shard_names[:1], offsets[:1])
    shape = sample.shape[1:]

    def gather(positions):
        images = shards.get(shard_names[positions], offsets[positions])
        for k, t in enumerate(transforms[positions]):
            if t:
                images[k] = apply_transform(images[k], t)
        return images, labels[positions]

    def load(positions):
        images, y = tf.numpy_function(gather, [positions], (tf.uint8, tf.int32), stateful=False)
        images.set_shape((None, *shape))
        y.set_shape((None,))
        return images, (tf.one_hot(y, len(classes)) if one_hot else y)

    ds = tf.data.Dataset.range(len(rows))
    if shuffle:
        ds = ds.shuffle(len(rows), seed=seed, reshuffle_each_iteration=True)
    return (
        ds.batch(batch_size)
        .map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .prefetch(tf.data.AUTOTUNE)
    )


def mixed(ds, augment: dict, seed: int):
    """Training batches (uint8 images, one-hot labels) through Keras' MixUp and/or CutMix, from
    ``train.augment.mixup`` and ``cutmix`` (each its alpha; 0: off): pairs of images blended, or a
    patch of one pasted into the other, their labels mixed in the same proportion. Images stay
    uint8, rounded (the model's input). Seeded: the same mixing on every run."""
    import keras
    import tensorflow as tf

    layers = []
    if augment.get("mixup", 0):
        layers.append(keras.layers.MixUp(alpha=augment["mixup"], seed=seed))
    if augment.get("cutmix", 0):
        layers.append(keras.layers.CutMix(factor=augment["cutmix"], seed=seed + 1))
    if not layers:
        return ds

    def mix(images, labels):
        data = {"images": tf.cast(images, tf.float32), "labels": labels}
        for layer in layers:
            data = layer(data, training=True)
        return tf.cast(tf.round(tf.clip_by_value(data["images"], 0, 255)), tf.uint8), data["labels"]

    return ds.map(mix, num_parallel_calls=1, deterministic=True).prefetch(tf.data.AUTOTUNE)
