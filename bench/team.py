"""Benchmark: a teammate's pull against recomputing, on the demo scaled up, and the cost of asking
"anything to do?" on the up-to-date project.

    python bench/team.py [--images 20000] [--epochs 10] [--keep DIR]

Renders N demo-style digit scans (the demo's own `render_digit`, each of sklearn's 1797 digits
several times with its own size, placement, paper and ink) into a train/valid/test zip, points a
copy of the project at it (`dataset.source: local:...`), and in the same run measures:

- recompute: `snakemake --cores 2 all` from nothing (the baseline);
- `dvc push` of every artefact to a local folder remote;
- in a fresh clone, `dvc pull` of everything (plain), and in another fresh clone `specimen pull`
  (dvc pull, then the outputs marked current for Snakemake); both checked byte-identical;
- in the pulled clone: `snakemake -n all` (must plan nothing) and `dvc status`, medians of
  three, beside each tool's bare start-up (`--version`).

Prints seconds and the ratios pull / recompute (goal <= 0.10). `--epochs` caps train.epochs
(default 10, against params.yaml's 40 with early stopping): a shorter training makes recompute
cheaper, so the ratio is on the conservative side.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))
from specimen.data.demo.render import CLASSES, encode, render_digit  # noqa: E402
from tests.conftest import artefacts, make_project  # noqa: E402  (the same copy and listing the tests use)


def scaled_demo(path: Path, n: int, seed: int = 0) -> None:
    """n clean digit scans, 70/15/15 train/valid/test, as a stored zip with sorted entries."""
    rng = np.random.default_rng(seed)
    digits = load_digits()
    entries = {}
    for i in range(n):
        src = i % len(digits.images)
        rgb, _ = render_digit(rng, digits.images[src])
        split = ("train", "valid", "test")[int(rng.choice(3, p=[0.7, 0.15, 0.15]))]
        entries[f"{split}/{CLASSES[int(digits.target[src])]}/img_{i:06d}.jpg"] = encode(rgb, "JPEG")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for name in sorted(entries):
            z.writestr(zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0)), entries[name])


def sh(cmd, cwd) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    took = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed in {cwd}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return took, proc.stdout + proc.stderr


def median_time(cmd, cwd, repeat=3) -> float:
    return statistics.median(sh(cmd, cwd)[0] for _ in range(repeat))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=20000)
    ap.add_argument("--epochs", type=int, default=10, help="train.epochs (default 10)")
    ap.add_argument("--keep", type=Path, help="work in this folder and keep it")
    args = ap.parse_args()
    base = args.keep or Path(tempfile.mkdtemp(prefix="specimen-bench-team-"))
    base.mkdir(parents=True, exist_ok=True)

    start = time.perf_counter()
    scaled_demo(base / "digits.zip", args.images)
    print(
        f"{args.images} images rendered into digits.zip ({(base / 'digits.zip').stat().st_size / 2**20:.0f} MiB) "
        f"in {time.perf_counter() - start:.0f} s"
    )

    origin = make_project(
        base / "origin", {"dataset.source": f"local:{base / 'digits.zip'}", "train.epochs": args.epochs}
    )
    sh(["dvc", "remote", "add", "-d", "shared", str(base / "remote")], origin)
    t_make, _ = sh(["snakemake", "--cores", "2", "all"], origin)
    sh(["git", "add", "-A"], origin)
    sh(["git", "commit", "-q", "-m", "a run, and its remote"], origin)
    t_push, _ = sh(["dvc", "push"], origin)
    files = artefacts(origin)
    size = sum(map(len, files.values()))

    plain = base / "plain"
    sh(["git", "clone", "-q", str(origin), str(plain)], base)
    t_dvc_pull, _ = sh(["dvc", "pull"], plain)
    mate = base / "teammate"
    sh(["git", "clone", "-q", str(origin), str(mate)], base)
    t_pull, _ = sh(["specimen", "pull"], mate)
    for clone in (plain, mate):
        if artefacts(clone) != files:
            raise SystemExit(f"{clone}: the pulled files differ from the original's")

    _, dry = sh(["snakemake", "-n", "all"], mate)
    if "Nothing to be done" not in dry:
        raise SystemExit(f"after specimen pull, snakemake still plans jobs:\n{dry[-2000:]}")
    t_dry = median_time(["snakemake", "-n", "all"], mate)
    t_snake_v = median_time(["snakemake", "--version"], mate)
    t_status = median_time(["dvc", "status"], mate)
    t_status_main = median_time(["dvc", "status", "dvc.yaml"], mate)
    t_dvc_v = median_time(["dvc", "--version"], mate)

    print(f"artefacts: {len(files)} files, {size / 2**20:.0f} MiB (the outputs dvc.lock lists)")
    print(f"{'recompute: snakemake --cores 2 all':<48}{t_make:8.1f} s   (baseline)")
    print(f"{'dvc push to a folder remote':<48}{t_push:8.1f} s")
    print(
        f"{'fresh clone: dvc pull':<48}{t_dvc_pull:8.1f} s   ratio to recompute {t_dvc_pull / t_make:.3f} (goal <= 0.10)"
    )
    print(
        f"{'fresh clone: specimen pull':<48}{t_pull:8.1f} s   ratio to recompute {t_pull / t_make:.3f} (goal <= 0.10)"
    )
    print(
        f"{'snakemake -n all (nothing to do)':<48}{t_dry:8.2f} s   (goal <= 3; snakemake --version {t_snake_v:.2f} s)"
    )
    print(f"{'dvc status':<48}{t_status:8.2f} s   (goal <= 2; dvc --version {t_dvc_v:.2f} s)")
    print(f"{'dvc status dvc.yaml':<48}{t_status_main:8.2f} s")
    if not args.keep:
        print(f"(left in {base}; remove it when done)")


if __name__ == "__main__":
    main()
