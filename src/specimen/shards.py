"""Image shards: `shards/shard-NNNNN.npy`, each a uint8 array (n, height, width, channels): the
kept images of one chunk of ``preprocess.shard_size`` manifest rows.

Few files for DVC, deterministic bytes (plain .npy), and random access through memory maps, so
readers hold only the batch they ask for. The index CSV beside the shards maps each image id to
(shard, offset).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def shard_name(number: int) -> str:
    return f"shard-{number:05d}.npy"


def write_shard(path: Path, pixels: np.ndarray, slots: list[int]) -> None:
    """Write pixels[slots] as one .npy file without an intermediate copy (a standard header, then
    each image's bytes straight from `pixels`, e.g. a memory-mapped buffer)."""
    header = {
        "descr": np.lib.format.dtype_to_descr(pixels.dtype),
        "fortran_order": False,
        "shape": (len(slots), *pixels.shape[1:]),
    }
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        if slots == list(range(len(slots))):
            f.write(memoryview(np.ascontiguousarray(pixels[: len(slots)])).cast("B"))
        else:
            for slot in slots:
                f.write(memoryview(np.ascontiguousarray(pixels[slot])).cast("B"))


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

    def release(self) -> None:
        """Unmap every shard: the pages read so far stop counting in this process's RSS."""
        self._maps.clear()

    def batches(self, index, batch_size: int):
        """Yield (rows of `index`, images) in index order, `batch_size` at a time. Shards a batch
        does not use are unmapped, so a pass over the data holds one shard's pages, not all."""
        for start in range(0, len(index), batch_size):
            rows = index.iloc[start : start + batch_size]
            for name in set(self._maps) - set(rows["shard"]):
                del self._maps[name]
            yield rows, self.get(rows["shard"], rows["offset"])


def pixel_vectors(processed: Path, rows, size, batch_size: int = 512) -> np.ndarray:
    """(n, h*w) float32 in 0..1: each of `rows` (an index with shard and offset) resized (INTER_AREA) to
    `size` [h, w], grey, flattened: the pixel thumbnails the baselines and the label check use."""
    import cv2

    h, w = size
    out = np.empty((len(rows), h * w), np.float32)
    shards, n = Shards(Path(processed) / "shards"), 0
    for _, images in shards.batches(rows, batch_size):
        for image in images:
            small = cv2.resize(np.ascontiguousarray(image), (w, h), interpolation=cv2.INTER_AREA)
            if small.ndim == 3:  # rgb (a one-channel image comes back 2-D from cv2.resize)
                small = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
            out[n] = small.reshape(-1) / np.float32(255)
            n += 1
    return out
