"""Outliers among the embed features: ``knn``, cleanlab's score (the mean cosine distance to the k
nearest images) flagged above Q3 + iqr_factor * IQR of those scores (Datalab's rule) *and* above
min_ratio times their median; or scikit-learn's ``lof`` and ``isolation_forest`` with
``contamination``; against every image (``scope: all``), its own class (``class``) or either
(``both``).

The IQR fence alone always cuts the tail of the scores, whatever the data: on 6,899 real photos
with no planted fault it flagged 3 %. The median ratio is what lets the rule say "none": a set
whose most distant image is under min_ratio times as far from its neighbours as the typical image
is has no outlier (hymenoptera's 398 photos: at most 2.8 times; the demo's planted photo crops and
noise: 3.5 to 12.6 times, colour histograms). ``min_ratio: 0`` is the IQR rule alone."""

from __future__ import annotations

import numpy as np

from specimen.clean import neighbours
from specimen.clean.neighbours import WORKING_BYTES, nearest, nearest_of


def iqr_threshold(scores: np.ndarray, factor: float) -> float:
    q1, q3 = np.percentile(scores, [25, 75])
    return float(q3 + factor * (q3 - q1))


def knn_cut(score: np.ndarray, params: dict) -> float:
    """The knn rule's threshold: Q3 + iqr_factor * IQR of the scores, and min_ratio times their median."""
    return max(iqr_threshold(score, params["iqr_factor"]), params["min_ratio"] * float(np.median(score)))


def knn_distance(features: np.ndarray, k: int) -> np.ndarray:
    """The kNN outlier score of cleanlab's ``OutOfDistribution`` (its ``exp(-d / median d)`` of d, the
    mean cosine distance to the k nearest others; beyond 3 dimensions, each image's own row left
    out), as d itself: higher is more anomalous, and the median ratio is d's.

    d comes from specimen.clean.neighbours.nearest, scikit-learn's fast path (squared euclidean
    distances of unit vectors, in float64 here; beyond neighbours.EXACT_ROWS rows, the neighbours
    that faiss's index finds), not from OutOfDistribution's own search: its cosine
    metric takes scikit-learn's generic path, 7 times slower on 10,000 images (20.4 s against 2.9 s,
    the same d to 1e-15), which at 100,000 is half an hour. tests/test_clean.py checks d against
    cleanlab's score and scipy's distances."""
    dist, _ = nearest(features, k, dtype=np.float64)  # k is capped at the other rows there
    return dist.mean(axis=1)


def outliers(features: np.ndarray, params: dict, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(score, is_outlier) for each row: higher scores are more anomalous."""
    method, k = params["method"], params["k"]
    n = len(features)
    if n < 3:
        return np.zeros(n), np.zeros(n, dtype=bool)
    if method == "knn":
        score = knn_distance(features, k)
        cut = knn_cut(score, params)
        if n > neighbours.EXACT_ROWS:
            # the index may miss a neighbour, which only raises a score: the images over the cut are
            # scored again comparing every pair (and the cut, which can only fall, is taken again,
            # until no new image is over it), so that none is flagged for a neighbour it missed
            exact = np.zeros(n, dtype=bool)
            while (over := np.flatnonzero((score > cut) & ~exact)).size:
                score[over] = nearest_of(features, over, k, dtype=np.float64)[0].mean(axis=1)
                exact[over] = True
                cut = knn_cut(score, params)
        return score, score > cut
    if method == "lof":
        from sklearn import config_context
        from sklearn.neighbors import LocalOutlierFactor

        lof = LocalOutlierFactor(n_neighbors=min(k, n - 1), metric="cosine", contamination=params["contamination"])
        with config_context(working_memory=WORKING_BYTES // 2**20):
            flags = lof.fit_predict(features) == -1
        return -lof.negative_outlier_factor_, flags
    from sklearn.ensemble import IsolationForest

    forest = IsolationForest(n_estimators=200, contamination=params["contamination"], random_state=seed)
    flags = forest.fit_predict(features) == -1
    return -forest.score_samples(features), flags


def outlier_scores(features, labels, params, seed):
    """(overall score, class score, flagged) under params['scope']; NaN where not scored."""
    n = len(features)
    overall, by_class = np.full(n, np.nan), np.full(n, np.nan)
    flagged = np.zeros(n, dtype=bool)
    if params["scope"] in ("all", "both"):
        overall, flags = outliers(features, params, seed)
        flagged |= flags
    if params["scope"] in ("class", "both"):
        for label in np.unique(labels):
            rows = np.flatnonzero(labels == label)
            score, flags = outliers(features[rows], params, seed)
            by_class[rows] = score
            flagged[rows] |= flags
    return overall, by_class, flagged
