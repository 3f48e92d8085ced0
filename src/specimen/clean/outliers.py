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

from specimen.clean.neighbours import WORKING_BYTES


def iqr_threshold(scores: np.ndarray, factor: float) -> float:
    q1, q3 = np.percentile(scores, [25, 75])
    return float(q3 + factor * (q3 - q1))


T = 0.01  # cleanlab's t, small enough that no distance up to 70,000 times the median underflows


def knn_distance(features: np.ndarray, k: int) -> np.ndarray:
    """cleanlab's kNN outlier score (``OutOfDistribution.fit_score`` on the features, cosine beyond 3
    dimensions, each image's own row left out), read back as the mean distance to the k nearest
    others that it is exp(-d / median d) of: higher is more anomalous, and the median ratio is d's."""
    from cleanlab.outlier import OutOfDistribution
    from sklearn import config_context

    # t scales the exponent: at cleanlab's t = 1 an image 700 times the median distance away (a
    # tight set, cosine distances reach 2) scores exp(-700), which float64 holds and float32 does not
    ood = OutOfDistribution(params={"k": min(k, len(features) - 1), "t": T})
    with config_context(working_memory=WORKING_BYTES // 2**20):  # scikit-learn's search, in chunks
        scores = ood.fit_score(features=np.asarray(features, np.float64), verbose=False)
    return -np.log(np.maximum(scores, np.finfo(np.float64).tiny)) * ood.params["scaling_factor"] / T


def outliers(features: np.ndarray, params: dict, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(score, is_outlier) for each row: higher scores are more anomalous."""
    method, k = params["method"], params["k"]
    n = len(features)
    if n < 3:
        return np.zeros(n), np.zeros(n, dtype=bool)
    if method == "knn":
        score = knn_distance(features, k)
        cut = max(iqr_threshold(score, params["iqr_factor"]), params["min_ratio"] * float(np.median(score)))
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
