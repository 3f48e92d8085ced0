"""Benchmark: small_cnn (trained from scratch) against the scikit-learn baselines, on real photos
and on the demo, in one run.

    python bench/training.py [--data ../shared/data] [--set demo ...] [--work DIR] [-S key=value ...]
    python bench/training.py --against 37d4c12     # also run the demo with the code of that commit

Each set runs in a fresh copy of the project (git + DVC) through the real DAG: `snakemake --cores 2
results/evaluation/small_cnn/metrics.json results/baselines/summary.csv` (download ... clean,
balance, train, evaluate, and the baselines), params.yaml's defaults plus the set's own:

- ``demo``: the embedded demo (48 px digits, no flips);
- ``natural-images-30px``: 6,899 photos in 8 classes at their 30 px, horizontal flips;
- ``hymenoptera``: 397 photos of ants and bees at 128 px (train and val pooled and split again),
  horizontal flips.

Printed per set: small_cnn's test macro F1 and accuracy (results/evaluation/small_cnn/metrics.json),
the best baseline's (the one with the best *validation* macro F1, as report chooses; the best test
figure of any baseline beside it), the margin (goal >= 0.10 on the real sets), the epoch of the best
validation score and the epochs run (history.csv), and train's wall time (Snakemake's benchmark
file). With ``--against REV`` the sets of ``--against-set`` (default: the demo, where the time goal
is) also run with the code of git revision REV (its own params.yaml and package, on PYTHONPATH),
and the time ratio new/old is printed (goal on the demo: <= 2). Results go to WORK/training.json.
Nothing is asserted; the figures are for README.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.conftest import isolated_env, set_dotted  # noqa: E402  (as the tests make and run projects)

SETS = {  # name -> (zip under --data or None for the demo, the set's params)
    "demo": (None, {}),
    "natural-images-30px": ("natural-images-30px.zip", {"image.size": [30, 30], "train.augment.flip": "horizontal"}),
    "hymenoptera": (
        "hymenoptera.zip",
        {"image.size": [128, 128], "dataset.merge_train_valid": True, "train.augment.flip": "horizontal"},
    ),
}
TARGETS = ["results/evaluation/small_cnn/metrics.json", "results/baselines/summary.csv"]


def value(text: str):
    import yaml

    return yaml.safe_load(text)


def sh(cmd, cwd, env=None) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed in {cwd}:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return proc


def project_at(dest: Path, revision: str | None, changes: dict) -> Path:
    """The project's files (the working tree's, or those of git `revision`) in `dest`, as a fresh
    git repository with params.yaml changed."""
    import yaml

    dest.mkdir(parents=True)
    if revision is None:
        listed = sh(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], ROOT).stdout
        for name in filter(None, listed.split("\0")):
            if name != "dvc.lock" and (ROOT / name).is_file():
                (dest / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / name, dest / name)
    else:
        archive = subprocess.run(["git", "archive", revision], cwd=ROOT, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    params = set_dotted(yaml.safe_load((dest / "params.yaml").read_text()), changes)
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-q", "-m", "project"]):
        sh(cmd, dest)
    return dest


def run_set(name: str, data: Path, work: Path, revision: str | None, changes: dict) -> dict:
    zip_name, own = SETS[name]
    params = {**own, **changes}
    if zip_name:
        params["dataset.source"] = f"local:{data / zip_name}"
    base = work / f"{name}@{revision or 'working-tree'}"
    shutil.rmtree(base, ignore_errors=True)
    env = {**os.environ, **isolated_env(base / "home")}
    if revision:  # that revision's package, not the installed one
        env["PYTHONPATH"] = str(base / "project" / "src")
    project = project_at(base / "project", revision, params)
    print(f"{name} ({revision or 'working tree'}): snakemake in {project}", flush=True)
    start = time.perf_counter()
    sh(["snakemake", "--cores", "2", *TARGETS], project, env)
    dag = time.perf_counter() - start
    metrics = json.loads((project / TARGETS[0]).read_text())
    baselines = pd.read_csv(project / TARGETS[1])
    chosen = baselines.loc[baselines.valid_macro_f1.idxmax()]
    history = pd.read_csv(project / "results/models/small_cnn/history.csv")
    monitor = json.loads((project / "results/models/small_cnn/meta.json").read_text())["monitor"]
    best = history[monitor].idxmin() if monitor.endswith("loss") else history[monitor].idxmax()
    bench = next(csv.DictReader((project / "logs/benchmarks/train/small_cnn.tsv").open(), delimiter="\t"))
    return {
        "set": name,
        "revision": revision or "working tree",
        "test_images": metrics["test_images"],
        "macro_f1": metrics["macro_f1"],
        "accuracy": metrics["accuracy"],
        "baseline": f"{chosen['model']} on {chosen['input']}",
        "baseline_macro_f1": float(chosen["macro_f1"]),
        "baseline_accuracy": float(chosen["accuracy"]),
        "best_baseline_test_macro_f1": float(baselines.macro_f1.max()),
        "best_epoch": int(history.epoch[best]),
        "epochs_run": len(history),
        "train_s": float(bench["s"]),
        "dag_s": round(dag, 1),
    }


def table(results: list[dict]) -> str:
    lines = [
        "| set | code | small_cnn test macro F1 (accuracy) | best baseline (on valid): test macro F1 | margin "
        "| best epoch / run | train s | DAG s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['set']} | {r['revision']} | {r['macro_f1']:.3f} ({r['accuracy']:.3f}) "
            f"| {r['baseline']}: {r['baseline_macro_f1']:.3f} (any: {r['best_baseline_test_macro_f1']:.3f}) "
            f"| {r['macro_f1'] - r['baseline_macro_f1']:+.3f} | {r['best_epoch']} / {r['epochs_run']} "
            f"| {r['train_s']:.0f} | {r['dag_s']:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--set", choices=sorted(SETS), action="append", help="only these sets (default: all three)")
    ap.add_argument("--work", type=Path, help="work in this folder and keep it (default: a temporary one)")
    ap.add_argument("--against", metavar="REV", help="also run the code of this git revision")
    ap.add_argument("--against-set", choices=sorted(SETS), action="append", help="the sets it runs (default: demo)")
    ap.add_argument("-S", dest="changes", action="append", default=[], help="a param change, key=value (YAML)")
    args = ap.parse_args()
    changes = {k: value(v) for k, v in (c.split("=", 1) for c in args.changes)}
    work = args.work or Path(tempfile.mkdtemp(prefix="specimen-training-"))
    work.mkdir(parents=True, exist_ok=True)
    results, pairs = [], []
    for name in args.set or list(SETS):
        results.append(run_set(name, args.data, work, None, changes))
        if args.against and name in (args.against_set or ["demo"]):
            results.append(run_set(name, args.data, work, args.against, changes))
            pairs.append((results[-2], results[-1]))
        (work / "training.json").write_text(json.dumps(results, indent=1) + "\n")
        print(table([r for r in results if r["set"] == name]), flush=True)
    print()
    print(table(results))
    for new, old in pairs:
        print(
            f"{new['set']}: train time {new['train_s']:.0f} s, {new['train_s'] / old['train_s']:.2f}x the "
            f"{old['train_s']:.0f} s of {args.against}; DAG {new['dag_s'] / old['dag_s']:.2f}x"
        )
    if not args.work:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
