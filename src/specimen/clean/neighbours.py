"""Nearest neighbours in the embedding, shared by the near-copy search and the kNN outlier rule:
features made comparable by cosine, and each row's k nearest other rows, in bounded memory.

Up to EXACT_ROWS rows the search is exact (every pair, scikit-learn's brute force): N^2 dot products,
3 s at 10,000 histogram rows and 111 s at 100,000 on two cores. Beyond, faiss's inverted-file index
(IndexIVFFlat) finds the candidates: the rows are clustered by k-means into about sqrt(N) lists, and
each row is compared with the rows of its NPROBE nearest lists only, so the work grows as N^1.5
instead of N^2. The distances to the neighbours found are then computed again exactly, so an approximate search can only miss a neighbour (and report the next one), never
misstate a distance (to 1e-15); bench/clean_scale.py measures how often it misses. Both are deterministic: the
k-means is seeded and its sample fixed, and each row's candidates do not depend on the threads."""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np

WORKING_BYTES = 64 * 2**20  # scratch memory for pairwise work (pHash XORs, scikit-learn's chunks)
THREADS = 4  # BLAS and OpenMP threads while clean searches neighbours and scores outliers (any machine)
EXACT_ROWS = 20_000  # rows up to which the neighbour search is exact; beyond, faiss's inverted-file index
NPROBE = 16  # lists of the index each row is compared with (of about sqrt(N))
SEED = 1234  # the index's k-means


@contextmanager
def pinned_threads(threads: int = THREADS):
    """BLAS and OpenMP (numpy's and scikit-learn's) on `threads` threads, whatever the machine has:
    scikit-learn's brute-force neighbours reduce their chunks over its threads, so a distance near
    a threshold, and so removed.csv, could differ between machines with other core counts."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=threads):
        yield


def comparable(features: np.ndarray, extractor: str) -> np.ndarray:
    """Features as compared by cosine: histograms square-rooted (Hellinger), others as they are."""
    features = np.asarray(features, dtype=np.float32)
    if extractor == "histogram":
        sums = features.sum(axis=1, keepdims=True)
        return np.sqrt(features / np.where(sums > 0, sums, 1.0))
    return features


def nearest(features: np.ndarray, k: int, dtype=np.float32, exact_rows: int | None = None):
    """(cosine distances, indices) of each row's k nearest other rows, nearest first.

    Rows are normalised once (as `dtype`). Up to `exact_rows` rows every pair is compared, by squared
    euclidean distance (scikit-learn's fast path; for unit vectors it is twice the cosine distance),
    in chunks of WORKING_BYTES; beyond, faiss's inverted-file index finds the candidates (see the
    module's docstring); `exact_rows` None is EXACT_ROWS."""
    k = min(k, len(features) - 1)
    unit = np.array(features, dtype=dtype)  # the one copy, normalised in place (0.4 GB less at 100k float64 rows)
    norms = np.linalg.norm(unit, axis=1, keepdims=True)
    unit /= np.where(norms > 0, norms, 1.0)
    if len(unit) <= (EXACT_ROWS if exact_rows is None else exact_rows):
        dist, idx = _exact(unit, unit, k + 1)
    else:
        dist, idx = _indexed(unit, k + 1)
    dist = np.clip(dist / 2.0, 0.0, 2.0)
    # drop each row itself (normally column 0; with exact twins it may sit elsewhere)
    is_self = idx == np.arange(len(features))[:, None]
    drop = np.where(is_self.any(axis=1), np.argmax(is_self, axis=1), k)
    mask = np.ones_like(idx, dtype=bool)
    mask[np.arange(len(idx)), drop] = False
    return dist[mask].reshape(len(idx), k), idx[mask].reshape(len(idx), k)


def _exact(unit: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(squared euclidean distances, indices) of the k rows of `unit` nearest each query, every pair compared."""
    from sklearn import config_context
    from sklearn.neighbors import NearestNeighbors

    model = NearestNeighbors(n_neighbors=k, metric="sqeuclidean", algorithm="brute").fit(unit)
    with config_context(working_memory=WORKING_BYTES // 2**20):
        return model.kneighbors(queries)


def _indexed(unit: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(squared euclidean distances, indices) of the k rows nearest each row, the candidates from faiss's
    IndexIVFFlat and their distances computed again in float64; a row whose probed lists hold
    fewer than k rows is searched exactly."""
    import faiss

    n, d = unit.shape
    vectors = np.ascontiguousarray(unit, dtype=np.float32)
    lists = max(1, round(np.sqrt(n)))
    index = faiss.IndexIVFFlat(faiss.IndexFlatL2(d), d, lists, faiss.METRIC_L2)
    index.cp.seed = SEED
    index.train(vectors)
    index.add(vectors)
    index.nprobe = min(NPROBE, lists)
    _, idx = index.search(vectors, k)
    del index
    short = np.flatnonzero((idx < 0).any(axis=1))
    if short.size:
        idx[short] = _exact(unit, unit[short], k)[1]
    # the distances again, exactly, in float64 (as scikit-learn gives them); ordered by them, then by index
    block = max(1, WORKING_BYTES // (2 * k * d * 8))
    dist = np.empty(idx.shape)
    for s in range(0, n, block):
        diff = unit[s : s + block, None, :].astype(np.float64) - unit[idx[s : s + block]]
        dist[s : s + block] = np.einsum("ikj,ikj->ik", diff, diff)
    by_index = np.argsort(idx, axis=1, kind="stable")
    dist, idx = np.take_along_axis(dist, by_index, axis=1), np.take_along_axis(idx, by_index, axis=1)
    order = np.argsort(dist, axis=1, kind="stable")
    return np.take_along_axis(dist, order, axis=1), np.take_along_axis(idx, order, axis=1)
