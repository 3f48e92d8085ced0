"""Nearest neighbours in the embedding, shared by the near-copy search and the kNN outlier rule:
features made comparable by cosine, and each row's k nearest other rows, in bounded memory.

Up to EXACT_ROWS rows the search is exact: every pair is compared (scikit-learn's brute force), N^2
dot products, 3 s at 10,000 histogram rows and 111 s at 100,000 on two cores. Beyond, faiss's
inverted-file index (IndexIVFFlat) finds the candidates: k-means sorts the rows into about sqrt(N)
lists, and each row is compared with the rows of its NPROBE nearest lists only, so the work grows
as N^1.5 instead of N^2. The distances to the neighbours found are computed again exactly, so the
index can miss a neighbour (and report the next one) but never misstates a distance (to 1e-15);
bench/neighbours.py measures how often it misses, and what that changes in the outlier flags
(the knn rule scores the images over its cut again with nearest_of, every pair compared).
Both are deterministic: the k-means is seeded and its sample fixed, and each row's candidates do
not depend on the number of threads."""

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

    Rows are normalised (as `dtype`). Up to `exact_rows` rows every pair is compared, by squared
    euclidean distance (scikit-learn's fast path; for unit vectors it is twice the cosine distance),
    in chunks of WORKING_BYTES; beyond, faiss's inverted-file index finds the candidates (see the
    module's docstring); `exact_rows` None is EXACT_ROWS."""
    k = min(k, len(features) - 1)
    if len(features) <= (EXACT_ROWS if exact_rows is None else exact_rows):
        unit = _unit(features, dtype)  # the one copy (0.4 GB at 100k float64 rows)
        dist, idx = _exact(unit, unit, k + 1)
    else:
        dist, idx = _indexed(features, k + 1, dtype)
    return _without_self(dist, idx, np.arange(len(features)), k)


def _unit(features: np.ndarray, dtype) -> np.ndarray:
    """A copy of `features` as `dtype`, each row scaled to length 1 (a row of zeros left as it is)."""
    unit = np.array(features, dtype=dtype)
    norms = np.linalg.norm(unit, axis=1, keepdims=True)
    unit /= np.where(norms > 0, norms, 1.0)
    return unit


def _exact(unit: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(squared euclidean distances, indices) of the k rows of `unit` nearest each query, every pair compared."""
    from sklearn import config_context
    from sklearn.neighbors import NearestNeighbors

    model = NearestNeighbors(n_neighbors=k, metric="sqeuclidean", algorithm="brute").fit(unit)
    with config_context(working_memory=WORKING_BYTES // 2**20):
        return model.kneighbors(queries)


def _indexed(features: np.ndarray, k: int, dtype) -> tuple[np.ndarray, np.ndarray]:
    """(squared euclidean distances, indices) of the k rows nearest each row: the candidates from faiss's
    IndexIVFFlat over float32 unit rows, their distances computed again, a block at a time, between
    the rows normalised as `dtype` (float64 at most: what the exact search gives). A row whose
    probed lists hold fewer than k rows is searched exactly. Memory: the float32 rows and the
    index's copy of them (0.4 GB at 100,000 rows of 512), no copy in `dtype`."""
    import faiss

    n, d = features.shape
    vectors = _unit(features, np.float32)
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
        idx[short] = _exact(vectors, vectors[short], k)[1]
    del vectors
    return _exact_distances(features, np.arange(n), idx, dtype)


def nearest_of(features: np.ndarray, rows: np.ndarray, k: int, dtype=np.float32):
    """As nearest, for `rows` only, every pair compared: (cosine distances, indices) of each of those
    rows' k nearest other rows, in float32 to choose them and `dtype` for their distances."""
    k = min(k, len(features) - 1)
    unit = _unit(features, np.float32)
    _, idx = _exact(unit, unit[rows], k + 1)
    del unit
    dist, idx = _exact_distances(features, rows, idx, dtype)
    return _without_self(dist, idx, np.asarray(rows), k)


def _without_self(dist: np.ndarray, idx: np.ndarray, rows: np.ndarray, k: int):
    """The k + 1 squared distances and indices found for each of `rows`, less the row itself (normally
    column 0; with exact twins it may sit elsewhere; absent, the farthest goes), as cosine distances."""
    dist = np.clip(dist / 2.0, 0.0, 2.0)
    is_self = idx == rows[:, None]
    drop = np.where(is_self.any(axis=1), np.argmax(is_self, axis=1), k)
    mask = np.ones_like(idx, dtype=bool)
    mask[np.arange(len(idx)), drop] = False
    return dist[mask].reshape(len(idx), k), idx[mask].reshape(len(idx), k)


def _exact_distances(features: np.ndarray, rows: np.ndarray, idx: np.ndarray, dtype):
    """(squared euclidean distances, indices) between each of `rows` and its candidates `idx`, the rows
    normalised as `dtype` a block at a time, computed in float64 (as scikit-learn gives them); each
    row's candidates ordered by them, then by index."""
    d = features.shape[1]
    block = max(1, WORKING_BYTES // (3 * idx.shape[1] * d * 8))
    dist = np.empty(idx.shape)
    for s in range(0, len(rows), block):
        near = _unit(features[idx[s : s + block].ravel()], dtype).reshape(*idx[s : s + block].shape, d)
        diff = _unit(features[rows[s : s + block]], dtype)[:, None, :].astype(np.float64) - near
        dist[s : s + block] = np.einsum("ikj,ikj->ik", diff, diff)
    by_index = np.argsort(idx, axis=1, kind="stable")
    dist, idx = np.take_along_axis(dist, by_index, axis=1), np.take_along_axis(idx, by_index, axis=1)
    order = np.argsort(dist, axis=1, kind="stable")
    return np.take_along_axis(dist, order, axis=1), np.take_along_axis(idx, order, axis=1)
