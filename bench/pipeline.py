"""Benchmark: the whole demo DAG under Snakemake, per stage, and the cost of asking "anything to do?".

    python bench/pipeline.py [--epochs N] [--keep DIR]

Runs `snakemake --cores 2 all` in a temporary copy of the project and prints, per job,
wall time and peak memory (from Snakemake's own `benchmark:` files); then times `snakemake -n`
and `dvc status` on the up-to-date project against each tool's bare start-up (`--version`),
measured in the same run, so the ratio says what the check itself costs.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.conftest import make_project  # noqa: E402  (the same copy the tests use)


def timed(cmd, cwd, repeat=3) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(cmd, cwd=cwd, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, help="override train.epochs (default: params.yaml)")
    ap.add_argument("--keep", type=Path, help="run in this folder and keep it")
    args = ap.parse_args()
    base = args.keep or Path(tempfile.mkdtemp(prefix="specimen-bench-"))
    project = make_project(base / "project", {"train.epochs": args.epochs} if args.epochs else None)

    start = time.perf_counter()
    subprocess.run(["snakemake", "--cores", "2", "all"], cwd=project, check=True, capture_output=True)
    total = time.perf_counter() - start

    print(f"{'job':<22}{'seconds':>9}{'peak MiB':>10}")
    for tsv in sorted((project / "logs/benchmarks").rglob("*.tsv")):
        row = next(csv.DictReader(tsv.open(), delimiter="\t"))
        name = tsv.relative_to(project / "logs/benchmarks").with_suffix("").as_posix()
        print(f"{name:<22}{float(row['s']):>9.1f}{float(row['max_rss']):>10.0f}")
    print(f"{'whole DAG (wall)':<22}{total:>9.1f}")

    for label, check, baseline in [
        ("snakemake -n all", ["snakemake", "-n", "--cores", "2", "all"], ["snakemake", "--version"]),
        ("dvc status", ["dvc", "status"], ["dvc", "--version"]),
    ]:
        t, b = timed(check, project), timed(baseline, project)
        print(f"{label:<26} {t:6.2f} s   baseline {' '.join(baseline)} {b:5.2f} s   ratio {t / b:4.2f}")
    summary = (project / "results/report/summary.json").read_text()
    print("results/report/summary.json:", summary[:200].replace("\n", " "), "...")


if __name__ == "__main__":
    main()
