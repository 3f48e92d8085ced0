"""The demo (any seed) through download -> ... -> clean with the real CLI, scored against its
truth file. Shared by tests/test_clean_faults.py and bench/clean_faults.py; the scorer lives here,
not in specimen.data.demo, because no stage runs it."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pandas as pd
import yaml

from specimen.data.demo import make_demo
from tests.conftest import set_dotted

ROOT = Path(__file__).resolve().parents[1]
STAGES = [
    ("download", ["data/raw"]),
    ("extract", ["data/raw", "data/extracted"]),
    ("ingest", ["data/extracted", "data/interim"]),
    ("preprocess", ["data/interim/manifest.csv", "data/extracted", "data/processed"]),
    ("embed", ["data/processed", "data/features/histogram.npz"]),
    ("clean", ["data/processed", "data/features/histogram.npz", "data/clean"]),
]


def write_params(path: Path, changes: dict) -> Path:
    params = set_dotted(yaml.safe_load((ROOT / "params.yaml").read_text()), changes)
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def through_clean(work: Path, source: Path, changes: dict | None = None, start: str = "download") -> Path:
    """Run the stages from `start` to clean on the dataset at `source` in `work`; return `work`."""
    work.mkdir(parents=True, exist_ok=True)
    params = write_params(work / "params.yaml", {"dataset.source": f"local:{source}", **(changes or {})})
    names = [name for name, _ in STAGES]
    env = {**os.environ, "SPECIMEN_PARAMS": str(params)}
    for name, args in STAGES[names.index(start) :]:
        proc = subprocess.run(["specimen", name, *args], cwd=work, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise AssertionError(f"specimen {name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return work


def demo_through_clean(work: Path, seed: int = 0, changes: dict | None = None, start: str = "download") -> dict:
    """Build the demo with `seed` in `work`, run the stages from `start` on, return the scores."""
    zip_path, truth_path = work / "demo-source" / "demo.zip", work / "demo-source" / "demo.truth.json"
    if not zip_path.exists():
        make_demo(zip_path, truth_path, seed=seed)
    through_clean(work, zip_path, changes, start)
    return score_cleaning(json.loads(truth_path.read_text()), work / "data/clean")


# What clean should find, per planted kind: the reasons that count as finding it.
ANOMALY_KINDS = ("foreign", "blank", "noise")
COPY_KINDS = {
    "exact_duplicate": "duplicate",
    "cross_split_duplicate": "leak",
    "near_duplicate": "near_duplicate",
    "near_duplicate_leak": "near_leak",
}


def score_cleaning(truth: dict, clean: Path) -> dict:
    """Precision and recall of a cleaning run (its output folder) against the truth file, per kind.

    Only images clean saw count (planted files that never reached it, such as corrupt ones, do not).
    Anomalies (foreign, blank, noise) count as found when removed for any reason that is not a copy,
    or kept and flagged an outlier (valid and test flag what they do not remove; so does train with
    colour histograms); their precision is that of all such removals and flags, and ``removed``
    says how many of the found were removed. A copy counts as found when it is removed with the
    expected reason and twin; any other (id, twin) pair is a false pair. A mislabelled training
    image counts as found when label_issues.csv names it; ``suggested`` counts those whose
    suggested label is the digit drawn.
    """
    removed = pd.read_csv(clean / "removed.csv", keep_default_na=False)
    kept = pd.read_csv(clean / "index.csv", keep_default_na=False, dtype={"id": str})
    seen = set(pd.read_csv(clean / "scores.csv", keep_default_na=False).id)
    issues = pd.read_csv(clean / "label_issues.csv", keep_default_na=False, dtype=str)
    files = {r["path"]: r for r in truth["files"]}
    copy_reasons = set(COPY_KINDS.values()) | {"label_conflict"}
    anomaly_rows = removed[~removed.reason.isin(copy_reasons | {"label_issue"})]
    flagged = set(kept.id[kept["flags"].str.split(";").apply(lambda f: "outlier" in f)])
    anomalous = {p for p, r in files.items() if r["kind"] in ANOMALY_KINDS}
    hits = set(anomaly_rows.id) | flagged
    precision = len(hits & anomalous) / len(hits) if hits else 1.0
    result = {}
    for kind in ANOMALY_KINDS:
        planted = {p for p, r in files.items() if r["kind"] == kind and p in seen}
        found = planted & hits
        result[kind] = {
            "planted": len(planted),
            "found": len(found),
            "removed": len(found & set(anomaly_rows.id)),
            "false": len(hits - anomalous),
            "recall": len(found) / len(planted) if planted else 1.0,
            "precision": precision,
        }
    for kind, reason in COPY_KINDS.items():
        planted = {(p, r["twin"]) for p, r in files.items() if r["kind"] == kind and p in seen and r["twin"] in seen}
        rows = removed[removed.reason == reason]
        detected = set(zip(rows.id, rows.twin))
        true_pairs = detected & planted
        result[kind] = {
            "planted": len(planted),
            "found": len(true_pairs),
            "removed": len(true_pairs),
            "false": len(detected - planted),
            "recall": len(true_pairs) / len(planted) if planted else 1.0,
            "precision": len(true_pairs) / len(detected) if detected else 1.0,
        }
    planted = {p for p, r in files.items() if r["kind"] == "mislabelled" and p in seen}
    named = dict(zip(issues.id, issues.suggested_label))
    found = planted & set(named)
    result["mislabelled"] = {
        "planted": len(planted),
        "found": len(found),
        "suggested": sum(named[p] == files[p]["true_label"] for p in found),
        "false": len(set(named) - planted),
        "recall": len(found) / len(planted) if planted else 1.0,
        "precision": len(found) / len(named) if named else 1.0,
    }
    return result


def source_scan_features(work: Path, seed: int = 0) -> Path:
    """A stand-in for a learnt embedding (what clip or vgg16 would give a photo set): each demo
    image's vector is the 8x8 scan its digit was drawn from (sklearn's digits, 64 numbers), so
    that it tells digits apart as the offline colour histograms cannot; images drawn from no digit
    (foreign, blank, noise) get seeded random vectors. Written in embed's format, beside its own."""
    import numpy as np
    from sklearn.datasets import load_digits

    truth = json.loads((work / "demo-source" / "demo.truth.json").read_text())
    source = {r["path"]: r.get("source_index") for r in truth["files"]}
    with np.load(work / "data/features/histogram.npz") as npz:
        ids = npz["ids"]
    scans = load_digits().data
    rng = np.random.default_rng(seed)
    vectors = np.stack([scans[source[i]] if source.get(i) is not None else rng.uniform(0, 16, 64) for i in ids])
    path = work / "data/features/source-scan.npz"
    np.savez(path, ids=ids, features=vectors.astype(np.float32), extractor=np.array("source-scan"))
    return path


def clean_on(work: Path, features: Path, changes: dict | None = None, out: str = "data/clean") -> Path:
    """Run `specimen clean` again in `work` on other features (and params changes); return its folder."""
    params = yaml.safe_load((work / "params.yaml").read_text())
    path = write_params(work / "params-clean.yaml", {"dataset.source": params["dataset"]["source"], **(changes or {})})
    env = {**os.environ, "SPECIMEN_PARAMS": str(path)}
    cmd = ["specimen", "clean", "data/processed", str(features), out]
    proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise AssertionError(f"specimen clean failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return work / out
