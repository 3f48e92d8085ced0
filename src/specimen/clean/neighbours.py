"""Nearest neighbours in the embedding, shared by the near-copy search and the kNN outlier rule:
features made comparable by cosine, and each row's k nearest other rows, in bounded memory."""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np

WORKING_BYTES = 64 * 2**20  # scratch memory for pairwise work (pHash XORs, scikit-learn's chunks)
THREADS = 4  # BLAS and OpenMP threads while clean searches neighbours and scores outliers (any machine)


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


def nearest(features: np.ndarray, k: int, dtype=np.float32):
    """(cosine distances, indices) of each row's k nearest other rows.

    Rows are normalised once (as `dtype`) and searched by squared euclidean distance (scikit-learn's fast
    path; for unit vectors it is twice the cosine distance), in chunks of WORKING_BYTES."""
    from sklearn import config_context
    from sklearn.neighbors import NearestNeighbors

    k = min(k, len(features) - 1)
    unit = np.array(features, dtype=dtype)  # the one copy, normalised in place (0.4 GB less at 100k float64 rows)
    norms = np.linalg.norm(unit, axis=1, keepdims=True)
    unit /= np.where(norms > 0, norms, 1.0)
    model = NearestNeighbors(n_neighbors=k + 1, metric="sqeuclidean", algorithm="brute").fit(unit)
    with config_context(working_memory=WORKING_BYTES // 2**20):
        dist, idx = model.kneighbors(unit)
    dist = np.clip(dist / 2.0, 0.0, 2.0)
    # drop each row itself (normally column 0; with exact twins it may sit elsewhere)
    is_self = idx == np.arange(len(features))[:, None]
    drop = np.where(is_self.any(axis=1), np.argmax(is_self, axis=1), k)
    mask = np.ones_like(idx, dtype=bool)
    mask[np.arange(len(idx)), drop] = False
    return dist[mask].reshape(len(idx), k), idx[mask].reshape(len(idx), k)
