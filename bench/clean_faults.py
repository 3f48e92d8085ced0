"""Benchmark: how well clean finds the demo's planted faults, per fault kind, against its truth file.

    python bench/clean_faults.py [--seeds 0 1 2 3] [--keep DIR] [-S clean.outliers.min_ratio=2 ...]

For each demo seed, the demo is built and run through download -> ... -> embed (histogram) ->
clean with the real CLI, twice on the same features:
- specimen: params.yaml as it is (copies, cleanvision quality checks, knn outliers);
- baseline: what the spine did, exact copies and an IsolationForest at contamination 0.02, no
  quality checks, no near copies.
Then clean once more on a stand-in for a learnt embedding (each image's source 8x8 digit scan,
tests/cleaning.py's source_scan_features: what clip or vgg16 would be to a photo set), run
``scan``. Prints precision and recall per planted kind. Anomalies (foreign, blank, noise) count as
found when removed for any reason but a copy, or flagged as outliers (``removed`` says how many
were removed), at the precision of all such removals and flags; a copy counts as found when
removed with the right reason beside the right twin, and any other pair is false; a wrong label
(``mislabelled``) when label_issues.csv names it (``suggested``: with the digit drawn as its
suggestion). Goals: foreign, blank and noise recall >= 0.9 at precision >= 0.9; every exact copy,
near copy and cross-split leak found with no false pair.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.cleaning import (  # noqa: E402  (the same runner the tests use)
    clean_on,
    demo_through_clean,
    score_cleaning,
    source_scan_features,
)

BASELINE = {
    "clean.quality.low_information.action": "off",
    "clean.quality.dark.action": "off",
    "clean.quality.light.action": "off",
    "clean.quality.blurry.action": "off",
    "clean.quality.odd_aspect_ratio.action": "off",
    "clean.duplicates.phash_bits": None,
    "clean.outliers.method": "isolation_forest",
    "clean.outliers.action": "remove",
    "clean.outliers.contamination": 0.02,
    "clean.holdout": "same",
    "clean.labels.action": "off",
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0], help="demo seeds (0 is the default demo)")
    ap.add_argument("--keep", type=Path, help="work in this folder and keep it")
    ap.add_argument(
        "-S", dest="changes", action="append", default=[], help="a param change for run specimen, key=value"
    )
    args = ap.parse_args()
    import yaml

    mine = {k: yaml.safe_load(v) for k, v in (c.split("=", 1) for c in args.changes)}
    base = args.keep or Path(tempfile.mkdtemp(prefix="specimen-clean-bench-"))
    print(
        f"{'seed':>4} {'run':<9} {'kind':<22} {'planted':>7} {'found':>5} {'removed':>7} {'false':>5} "
        f"{'recall':>7} {'precision':>9}"
    )
    totals: dict[tuple[str, str], list[int]] = {}
    try:
        for seed in args.seeds:
            work = base / f"seed-{seed}"
            runs = [("specimen", mine, "download"), ("baseline", BASELINE, "clean")]
            for name, changes, start in [*runs, ("scan", {}, None)]:
                if start is None:
                    truth = json.loads((work / "demo-source/demo.truth.json").read_text())
                    scores = score_cleaning(truth, clean_on(work, source_scan_features(work), out="data/clean-scan"))
                else:
                    scores = demo_through_clean(work, seed, changes, start=start)
                for kind, s in scores.items():
                    removed = s.get("removed", s.get("suggested"))
                    print(
                        f"{seed:>4} {name:<9} {kind:<22} {s['planted']:>7} {s['found']:>5} {removed:>7} "
                        f"{s['false']:>5} {s['recall']:>7.3f} {s['precision']:>9.3f}"
                    )
                    t = totals.setdefault((name, kind), [0, 0])
                    t[0] += s["planted"]
                    t[1] += s["found"]
        if len(args.seeds) > 1:
            print("\nrecall over all seeds (specimen vs baseline):")
            for (name, kind), (planted, found) in totals.items():
                if name == "specimen" and planted:
                    other = totals[("baseline", kind)]
                    print(
                        f"  {kind:<22} {found}/{planted} = {found / planted:.3f}   baseline "
                        f"{other[1]}/{other[0]} = {other[1] / other[0]:.3f}"
                    )
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
