"""clean: drop exact duplicates, cross-split leaks and outliers; keep a score for every image.

- duplicates (``clean.duplicates: exact``): images with the same content hash. The copy in the
  earliest split (train, then valid, then test; then by id) is kept. A copy in the same split is
  removed as ``duplicate``; a copy in another split is ``leak`` (it would inflate evaluation).
- outliers (``clean.outliers``): scikit-learn IsolationForest over the features; the score is
  ``-score_samples`` (higher is more anomalous), kept in the index for every image.

Writes ``index.csv`` (the kept images, with ``outlier_score``) and ``removed.csv``
(id, split, label, reason, score, twin) into data/clean/.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.ensemble import IsolationForest

from specimen import SpecimenError
from specimen.files import write_csv

SPLIT_ORDER = {"train": 0, "valid": 1, "test": 2}
REMOVED_COLUMNS = ["id", "split", "label", "reason", "score", "twin"]


def exact_duplicates(index: pd.DataFrame) -> pd.DataFrame:
    """One row per removed copy: id, reason (duplicate | leak), score 1.0, twin (the kept copy)."""
    order = index.assign(_rank=index.split.map(SPLIT_ORDER)).sort_values(["sha256", "_rank", "id"])
    keeper = order.groupby("sha256").id.transform("first")
    keeper_split = order.groupby("sha256").split.transform("first")
    copies = order[order.id != keeper]
    return pd.DataFrame({
        "id": copies.id,
        "reason": np.where(copies.split == keeper_split[copies.index], "duplicate", "leak"),
        "score": 1.0,
        "twin": keeper[copies.index],
    })


def outlier_scores(features: np.ndarray, contamination, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(scores, is_outlier) from an IsolationForest fitted on these features."""
    forest = IsolationForest(n_estimators=200, contamination=contamination, random_state=seed)
    flags = forest.fit_predict(features) == -1
    return -forest.score_samples(features), flags


def clean(processed: Path, features_path: Path, out_dir: Path, params: dict, seed: int) -> pd.DataFrame:
    index = pd.read_csv(processed / "index.csv", keep_default_na=False)
    with np.load(features_path) as npz:
        ids, features = npz["ids"], npz["features"]
    if list(ids) != index.id.tolist():
        raise SpecimenError(f"{features_path} does not match {processed / 'index.csv'}: re-run embed")
    index["outlier_score"] = 0.0
    removed = [exact_duplicates(index)] if params["duplicates"] == "exact" else []
    gone = set(removed[0].id) if removed else set()
    if params["outliers"]["method"] == "isolation_forest":
        remaining = ~index.id.isin(gone).to_numpy()
        if remaining.sum() >= 2:
            scores, flags = outlier_scores(features[remaining], params["outliers"]["contamination"], seed)
            index.loc[remaining, "outlier_score"] = scores
            out = index[remaining][flags]
            removed.append(pd.DataFrame({"id": out.id, "reason": "outlier", "score": out.outlier_score, "twin": ""}))
    removed = pd.concat(removed) if removed else pd.DataFrame(columns=["id", "reason", "score", "twin"])
    removed = removed.merge(index[["id", "split", "label"]], on="id").reindex(columns=REMOVED_COLUMNS)
    kept = index[~index.id.isin(removed.id)]
    write_csv(out_dir / "removed.csv", removed.sort_values("id"))
    write_csv(out_dir / "index.csv", kept)
    return kept
