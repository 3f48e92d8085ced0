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


def demo_through_clean(work: Path, seed: int = 0, changes: dict | None = None, start: str = "download") -> dict:
    """Build the demo with `seed` in `work`, run the stages from `start` on, return the scores."""
    work.mkdir(parents=True, exist_ok=True)
    zip_path, truth_path = work / "demo-source" / "demo.zip", work / "demo-source" / "demo.truth.json"
    if not zip_path.exists():
        make_demo(zip_path, truth_path, seed=seed)
    params = write_params(work / "params.yaml", {"dataset.source": f"local:{zip_path}", **(changes or {})})
    names = [name for name, _ in STAGES]
    env = {**os.environ, "SPECIMEN_PARAMS": str(params)}
    for name, args in STAGES[names.index(start) :]:
        proc = subprocess.run(["specimen", name, *args], cwd=work, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise AssertionError(f"specimen {name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    truth = json.loads(truth_path.read_text())
    removed = pd.read_csv(work / "data/clean/removed.csv", keep_default_na=False)
    seen = pd.read_csv(work / "data/clean/scores.csv", keep_default_na=False).id
    return score_cleaning(truth, removed, seen)


# What clean should find, per planted kind: the reasons that count as finding it.
ANOMALY_KINDS = ("foreign", "blank", "noise")
COPY_KINDS = {
    "exact_duplicate": "duplicate",
    "cross_split_duplicate": "leak",
    "near_duplicate": "near_duplicate",
    "near_duplicate_leak": "near_leak",
}


def score_cleaning(truth: dict, removed, kept_or_removed_ids) -> dict:
    """Precision and recall of a cleaning run against the truth file, per planted kind.

    ``removed`` is clean's removed.csv as a DataFrame; ``kept_or_removed_ids`` every id clean saw
    (planted files that never reached it, such as corrupt ones, are not counted).
    Anomalies (foreign, blank, noise) count as found when removed for any reason that is not a
    duplicate; their precision is that of all such removals. A copy counts as found when it is
    removed with the expected reason and twin; any other (id, twin) pair is a false pair.
    """
    files = {r["path"]: r for r in truth["files"]}
    seen = set(kept_or_removed_ids)
    copy_reasons = set(COPY_KINDS.values())
    anomaly_rows = removed[~removed.reason.isin(copy_reasons)]
    anomalous = {p for p, r in files.items() if r["kind"] in ANOMALY_KINDS}
    hits = set(anomaly_rows.id)
    precision = len(hits & anomalous) / len(hits) if hits else 1.0
    result = {}
    for kind in ANOMALY_KINDS:
        planted = {p for p, r in files.items() if r["kind"] == kind and p in seen}
        found = planted & hits
        result[kind] = {
            "planted": len(planted),
            "found": len(found),
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
            "false": len(detected - planted),
            "recall": len(true_pairs) / len(planted) if planted else 1.0,
            "precision": len(true_pairs) / len(detected) if detected else 1.0,
        }
    return result
