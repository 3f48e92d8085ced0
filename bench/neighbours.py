"""Benchmark: clean's neighbour search, every pair compared against faiss's inverted-file index.

    python bench/neighbours.py --features RUN/data/features/histogram.npz [--rows 10000 50000 100000]
    python bench/neighbours.py                  # synthetic CLIP-like features (20 classes) instead

For each row count (the first rows of the features; all of them by default), with clean's own
functions and threads (specimen.clean.neighbours.pinned_threads) and the kNN outlier rule of
params.yaml (clean.outliers: k, iqr_factor, min_ratio):

- the time of specimen.clean.neighbours.nearest comparing every pair (exact_rows above the rows)
  and through the index (exact_rows 0), and their ratio;
- recall: the fraction of each row's k true neighbours that the index finds (mean, and the
  lowest 1 % of rows), and the largest difference between the two outlier scores (the mean
  distance to the k neighbours found), absolute and relative;
- the outliers each flags under the rule, and how many both flag: through the index alone, and as
  clean flags them (specimen.clean.outliers.outliers: the images over the cut scored again
  comparing every pair), with that call's time.

The features of bench/scale.py's runs are the realistic input (colour histograms of re-made
photos, Hellinger-compared as clean compares them). Nothing is asserted; the figures are for
README and the notes.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from specimen.clean import neighbours  # noqa: E402
from specimen.clean.neighbours import comparable, nearest, pinned_threads  # noqa: E402
from specimen.clean.outliers import knn_cut, outliers  # noqa: E402


def synthetic(n: int, seed: int = 0) -> tuple[np.ndarray, str]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(20, 512))
    x = centres[rng.integers(0, 20, n)] + 1.2 * rng.normal(size=(n, 512))
    return x.astype(np.float32), "clip"


def flags(score: np.ndarray, rule: dict) -> np.ndarray:
    return score > knn_cut(score, rule)


def measure(x: np.ndarray, rule: dict) -> dict:
    k = rule["k"]
    with pinned_threads():
        start = time.perf_counter()
        d_exact, i_exact = nearest(x, k, np.float64, exact_rows=len(x))
        exact_s = time.perf_counter() - start
        start = time.perf_counter()
        d_index, i_index = nearest(x, k, np.float64, exact_rows=0)
        index_s = time.perf_counter() - start
        saved, neighbours.EXACT_ROWS = neighbours.EXACT_ROWS, 0
        try:
            start = time.perf_counter()
            _, f_clean = outliers(x, {**rule, "method": "knn"}, seed=0)
            clean_s = time.perf_counter() - start
        finally:
            neighbours.EXACT_ROWS = saved
    found = np.array([len(set(a) & set(b)) for a, b in zip(i_exact, i_index)]) / k
    s_exact, s_index = d_exact.mean(axis=1), d_index.mean(axis=1)
    f_exact, f_index = flags(s_exact, rule), flags(s_index, rule)
    return {
        "rows": len(x),
        "exact_s": exact_s,
        "index_s": index_s,
        "recall": found.mean(),
        "recall_p1": np.percentile(found, 1),
        "score_diff": np.abs(s_index - s_exact).max(),
        "score_rel": (np.abs(s_index - s_exact) / np.maximum(s_exact, 1e-12)).max(),
        "flagged_exact": int(f_exact.sum()),
        "flagged_index": int(f_index.sum()),
        "flagged_both": int((f_exact & f_index).sum()),
        "clean_s": clean_s,
        "flagged_clean": int(f_clean.sum()),
        "flagged_clean_both": int((f_exact & f_clean).sum()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--features", type=Path, help="an embed npz (default: synthetic CLIP-like features)")
    ap.add_argument("--rows", type=int, nargs="+", help="row counts to measure (default: all rows)")
    ap.add_argument("--synthetic-rows", type=int, default=20000, help="rows of the synthetic features")
    args = ap.parse_args()
    rule = yaml.safe_load((ROOT / "params.yaml").read_text())["clean"]["outliers"]
    if args.features:
        with np.load(args.features) as npz:
            features = npz["features"]
            extractor = str(npz["extractor"]) if "extractor" in npz else args.features.stem
    else:
        features, extractor = synthetic(args.synthetic_rows)
    features = comparable(features, extractor)
    print(f"{len(features):,} x {features.shape[1]} {extractor} features; k={rule['k']}")
    print(
        f"{'rows':>8} {'exact s':>8} {'index s':>8} {'ratio':>6} {'recall':>7} {'p1':>5} "
        f"{'max |dscore|':>12} {'rel':>8} {'flagged exact / index / both':>29} {'clean s':>8} "
        f"{'clean flags / both':>18}"
    )
    for rows in args.rows or [len(features)]:
        r = measure(features[:rows], rule)
        print(
            f"{r['rows']:>8,} {r['exact_s']:>8.1f} {r['index_s']:>8.1f} {r['exact_s'] / r['index_s']:>6.1f} "
            f"{r['recall']:>7.4f} {r['recall_p1']:>5.2f} {r['score_diff']:>12.2e} {r['score_rel']:>8.2e} "
            f"{r['flagged_exact']:>13,} / {r['flagged_index']:,} / {r['flagged_both']:,} {r['clean_s']:>8.1f} "
            f"{r['flagged_clean']:>10,} / {r['flagged_clean_both']:,}",
            flush=True,
        )


if __name__ == "__main__":
    main()
