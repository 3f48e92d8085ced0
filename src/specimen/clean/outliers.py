"""Outliers among the embed features: ``knn``, cleanlab's rule (the mean cosine distance to the k
nearest images, above Q3 + iqr_factor * IQR of those scores), or scikit-learn's ``lof`` and
``isolation_forest`` with ``contamination``; against every image (``scope: all``), its own class
(``class``) or either (``both``)."""

from __future__ import annotations

import numpy as np

from specimen.clean.neighbours import WORKING_BYTES, nearest


def iqr_threshold(scores: np.ndarray, factor: float) -> float:
    q1, q3 = np.percentile(scores, [25, 75])
    return float(q3 + factor * (q3 - q1))


def outliers(features: np.ndarray, params: dict, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(score, is_outlier) for each row: higher scores are more anomalous."""
    method, k = params["method"], params["k"]
    n = len(features)
    if n < 3:
        return np.zeros(n), np.zeros(n, dtype=bool)
    if method == "knn":
        score = nearest(features, k)[0].mean(axis=1)
        return score, score > iqr_threshold(score, params["iqr_factor"])
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
