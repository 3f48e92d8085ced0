"""Image shards: `shards/shard-NNNNN.npy`, each a uint8 array (n, height, width, channels).

Few files for DVC, deterministic bytes (plain .npy), and random access through memory maps, so
readers hold only the batch they ask for. The index CSV beside the shards maps each image id to
(shard, offset).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np


def shard_name(number: int) -> str:
    return f"shard-{number:05d}.npy"


class ShardWriter:
    """Collect images in order; write a shard each `shard_size` images. Returns (shard, offset)."""

    def __init__(self, folder: Path, shard_size: int):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.shard_size = shard_size
        self.buffer: list[np.ndarray] = []
        self.number = 0

    def add(self, image: np.ndarray) -> tuple[str, int]:
        self.buffer.append(image)
        where = (shard_name(self.number), len(self.buffer) - 1)
        if len(self.buffer) == self.shard_size:
            self.flush()
        return where

    def flush(self) -> None:
        if self.buffer:
            np.save(self.folder / shard_name(self.number), np.stack(self.buffer), allow_pickle=False)
            self.buffer = []
            self.number += 1


class Shards:
    """Read images by (shard, offset) from memory-mapped shards."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self._maps: dict[str, np.ndarray] = {}

    def _map(self, shard: str) -> np.ndarray:
        if shard not in self._maps:
            self._maps[shard] = np.load(self.folder / shard, mmap_mode="r")
        return self._maps[shard]

    def get(self, shards, offsets) -> np.ndarray:
        """The images at these positions, in this order, as one array."""
        return np.stack([self._map(s)[o] for s, o in zip(shards, offsets)])

    def batches(self, index, batch_size: int):
        """Yield (rows of `index`, images) in index order, `batch_size` at a time."""
        for start in range(0, len(index), batch_size):
            rows = index.iloc[start:start + batch_size]
            yield rows, self.get(rows["shard"], rows["offset"])
