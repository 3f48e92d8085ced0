"""Benchmark: what clean removes and flags on real photos with no planted faults (harm).

    python bench/clean_real.py [--data ../shared/data] [--keep DIR] [--set hymenoptera] [-S key=value ...]

Each shared photo set (../shared/data/, see its README) goes through download -> ... -> embed
(histogram, the offline features) -> clean with the real CLI and params.yaml as it is (plus any
``-S`` changes). Printed per set: images, removed by reason and split, and the harm: images
removed for a reason that is neither a copy (duplicate, near_duplicate, leak, near_leak) nor
unusable (low_information), as a share of all images. Goal: harm <= 1 % with the defaults. Also
printed: what is flagged, by kind and split (flags keep the image). With ``--keep`` the
galleries stay in DIR/<set>/data/clean/gallery/ to be looked at.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.cleaning import through_clean  # noqa: E402  (the same runner the tests use)

SETS = {  # zip, and its params: image size (hymenoptera's photos are large, natural images ~30 px);
    # hymenoptera has train and val folders and no test, so the two are pooled and split again
    "hymenoptera": ("hymenoptera.zip", {"image.size": [128, 128], "dataset.merge_train_valid": True}),
    "natural-images-30px": ("natural-images-30px.zip", {"image.size": [32, 32]}),
}
COPIES = {"duplicate", "near_duplicate", "leak", "near_leak", "label_conflict"}
UNUSABLE = {"low_information"}


def value(text: str):
    import yaml

    return yaml.safe_load(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--keep", type=Path, help="work in this folder and keep it (galleries to look at)")
    ap.add_argument("--set", choices=sorted(SETS), action="append", help="only these sets (default: both)")
    ap.add_argument("-S", dest="changes", action="append", default=[], help="a param change, key=value (YAML)")
    args = ap.parse_args()
    changes = dict(c.split("=", 1) for c in args.changes)
    changes = {k: value(v) for k, v in changes.items()}
    base = args.keep or Path(tempfile.mkdtemp(prefix="specimen-clean-real-"))
    try:
        for name in args.set or sorted(SETS):
            zip_name, own = SETS[name]
            work = base / name
            start = "download" if not (work / "data/features/histogram.npz").exists() else "clean"
            through_clean(work, args.data / zip_name, {**own, **changes}, start=start)
            show(name, work / "data/clean")
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


def show(name: str, clean: Path) -> None:
    summary = json.loads((clean / "summary.json").read_text())
    removed = pd.read_csv(clean / "removed.csv", keep_default_na=False)
    kept = pd.read_csv(clean / "index.csv", keep_default_na=False)
    n = summary["images"]
    harm = removed[~removed.reason.isin(COPIES | UNUSABLE)]
    print(f"\n{name}: {n} images, kept {summary['kept']}, removed {summary['removed']}")
    for reason, group in removed.groupby("reason"):
        splits = ", ".join(f"{s} {k}" for s, k in group.split.value_counts().sort_index().items())
        print(f"  removed {reason:<18} {len(group):>5}  ({splits})")
    print(
        f"  harm: {len(harm)} of {n} = {100 * len(harm) / n:.2f} %  (removed, neither copies nor unusable; goal <= 1 %)"
    )
    flags = kept.assign(flag=kept["flags"].str.split(";")).explode("flag")
    flags = flags[flags.flag != ""]
    for kind, group in flags.groupby("flag"):
        splits = ", ".join(f"{s} {k}" for s, k in group.split.value_counts().sort_index().items())
        print(f"  flagged {kind:<18} {len(group):>5}  ({splits})")
    labels = summary["label_issues"]
    if labels["checked"]:
        print(f"  label issues: {labels['found']} of {labels['images']} training images")
    else:
        print(f"  label issues: not looked for ({labels['why']})")


if __name__ == "__main__":
    main()
