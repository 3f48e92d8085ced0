"""The demo (any seed) through download -> ... -> clean with the real CLI, scored against its
truth file. Shared by tests/test_clean_faults.py and bench/clean_faults.py."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pandas as pd
import yaml

from specimen.demo import make_demo, score_cleaning
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
    for name, args in STAGES[names.index(start):]:
        proc = subprocess.run(["specimen", name, *args], cwd=work, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise AssertionError(f"specimen {name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    truth = json.loads(truth_path.read_text())
    removed = pd.read_csv(work / "data/clean/removed.csv", keep_default_na=False)
    seen = pd.read_csv(work / "data/clean/scores.csv", keep_default_na=False).id
    return score_cleaning(truth, removed, seen)
