"""Benchmark: the DAG's data side, clean and one training epoch at N = 10k and 100k realistic JPEGs.

    python bench/scale.py [--sizes 10000 100000] [--side 128] [--work DIR] [--no-transfer]
    python bench/scale.py --table [--work DIR]      # the table of every size measured in DIR

The dataset (built once per N in WORK/datasets/, then reused): N JPEGs re-made from the real
photos of ../shared/data/hymenoptera.zip: each a random crop (40-100 % of the photo's area) of one
photo, flipped or not, re-coloured (a gain per channel and a brightness), resized to a long side
of 300-800 px and re-encoded at JPEG quality 65-90 (about 40 KB each), filed under one of 40
synthetic classes of Zipf-like sizes (the largest about 13 times the smallest), in one zip
(`scale/<class>/<n>.jpg`, no split folders: ingest splits 70/15/15).

Each size runs in a fresh copy of the project (git + DVC), with dataset.source local:<the zip>,
image.size side x side, train.epochs 1 and params.yaml's defaults otherwise:

- `snakemake --cores 2` up to the small_cnn model (download, extract, ingest, preprocess, embed,
  clean, balance, train), then per stage: wall time and peak RSS (Snakemake's benchmark files,
  logs/benchmarks/: the job's whole process tree) and the size of what it wrote;
- per run: the size of data/ and .dvc/cache (a file hard-linked in both counted once), against
  the archive plus the shards (what any pipeline must hold); `dvc status` and `snakemake -n`
  when up to date, beside `dvc --version` and `snakemake --version` (bare start-up), medians
  of three; the time of `specimen dvc-commit` once more with nothing changed;
- with transfer (the default): `dvc push` to a folder remote, then in a `git clone` of the project
  `specimen pull train@small_cnn` and `snakemake -n` (which must plan nothing), against the DAG's own wall time.

Results go to WORK/scale-N.json; `--table` prints every size found there side by side with the
ratios time(largest)/time(smallest) and RSS(largest)/RSS(smallest), the issue's goals being
<= 12 and <= 1.3 for 10x the images. Nothing is asserted; the figures are for README.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import zipfile
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.conftest import isolated_env, make_project  # noqa: E402  (as the tests make and run projects)

PHOTOS = ROOT.parent / "shared" / "data" / "hymenoptera.zip"
CLASSES = 40
STAGES = {  # stage -> what it writes (relative to the project)
    "download": ["data/raw"],
    "extract": ["data/extracted"],
    "ingest": ["data/interim"],
    "preprocess": ["data/processed"],
    "embed": ["data/features"],
    "clean": ["data/clean/index.csv", "data/clean/removed.csv", "data/clean/scores.csv", "data/clean/gallery"],
    "balance": ["data/clean/train.csv", "data/clean/class_weights.json"],
    "train/small_cnn": ["results/models/small_cnn"],
}
TARGET = "results/models/small_cnn/model.keras"

# -- the dataset --------------------------------------------------------------------------------

_SOURCES: list[Image.Image] = []


def _load_sources() -> None:
    """The real photos, each decoded once and shrunk to a long side of at most 1000 px."""
    with zipfile.ZipFile(PHOTOS) as zf:
        for name in sorted(zf.namelist()):
            if name.lower().endswith((".jpg", ".jpeg")):
                im = Image.open(io.BytesIO(zf.read(name))).convert("RGB")
                im.thumbnail((1000, 1000))
                _SOURCES.append(im)


def _class_sizes(n: int) -> np.ndarray:
    """Zipf-like class sizes (exponent 0.7) that sum to n."""
    weights = 1.0 / np.arange(1, CLASSES + 1) ** 0.7
    sizes = np.floor(weights / weights.sum() * n).astype(int)
    sizes[: n - sizes.sum()] += 1
    return sizes


def _one(args) -> tuple[str, bytes]:
    i, label, seed = args
    rng = np.random.default_rng([seed, i])
    src = _SOURCES[int(rng.integers(len(_SOURCES)))]
    w, h = src.size
    area, aspect = rng.uniform(0.4, 1.0), np.exp(rng.uniform(-0.4, 0.4))
    cw, ch = min(w, int(w * np.sqrt(area * aspect))), min(h, int(h * np.sqrt(area / aspect)))
    x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    im = src.crop((x, y, x + cw, y + ch))
    if rng.random() < 0.5:
        im = ImageOps.mirror(im)
    side = int(rng.integers(300, 801))
    scale = side / max(cw, ch)
    im = im.resize((max(1, round(cw * scale)), max(1, round(ch * scale))), Image.Resampling.BILINEAR)
    gains = rng.uniform(0.8, 1.2, 3) * rng.uniform(0.85, 1.15)
    arr = np.clip(np.asarray(im, dtype=np.float32) * gains, 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(arr).save(out, "JPEG", quality=int(rng.integers(65, 91)))
    return f"scale/class_{label:02d}/{i:06d}.jpg", out.getvalue()


def build_dataset(path: Path, n: int, seed: int = 0) -> Path:
    """The zip of n JPEGs (see the module's docstring); made once, then reused."""
    if path.exists():
        return path
    if not PHOTOS.exists():
        sys.exit(f"bench/scale.py needs {PHOTOS} (the shared photo sets; see ../shared/data/README.md)")
    path.parent.mkdir(parents=True, exist_ok=True)
    labels = np.repeat(np.arange(CLASSES), _class_sizes(n))
    jobs = [(i, int(label), seed) for i, label in enumerate(labels)]
    _load_sources()
    tmp = path.with_suffix(".part")
    start = time.perf_counter()
    with get_context("fork").Pool(os.cpu_count()) as pool, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:
        for k, (name, data) in enumerate(pool.imap(_one, jobs, chunksize=64)):
            zf.writestr(zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0)), data)
            if (k + 1) % 10000 == 0:
                print(f"  dataset: {k + 1}/{n} JPEGs, {time.perf_counter() - start:.0f} s", flush=True)
    os.replace(tmp, path)
    return path


# -- measuring ----------------------------------------------------------------------------------


def disk(*paths: Path) -> int:
    """Bytes of the files under `paths`, each inode once (a hard link in both data/ and the cache)."""
    seen, total = set(), 0
    for top in paths:
        if top.is_file():
            files = [top]
        elif top.is_dir():
            files = (Path(d) / f for d, _, names in os.walk(top) for f in names)
        else:
            continue
        for f in files:
            st = f.lstat()
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
    return total


def timed(cmd, cwd, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
        times.append(time.perf_counter() - start)
        if done.returncode not in (0, 1):  # dvc status exits 1 when something changed
            sys.exit(f"{' '.join(cmd)} failed in {cwd}:\n{done.stderr[-2000:]}")
    return statistics.median(times)


def sh(cmd, cwd, **kw) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, **kw)
    if done.returncode != 0:
        sys.exit(f"{' '.join(map(str, cmd))} failed in {cwd}:\n{(done.stdout + done.stderr)[-3000:]}")
    return time.perf_counter() - start


def planned_jobs(cwd: Path) -> int:
    done = subprocess.run(["snakemake", "-n", "--cores", "2", TARGET], cwd=cwd, capture_output=True, text=True)
    if "Nothing to be done" in done.stdout + done.stderr:
        return 0
    return sum(1 for line in done.stdout.splitlines() if line.startswith(("rule ", "localrule ")))


def run_size(work: Path, n: int, side: int, transfer: bool) -> dict:
    archive = build_dataset(work / "datasets" / f"scale-{n}.zip", n)
    base = work / f"run-{n}"
    shutil.rmtree(base, ignore_errors=True)
    home = base / "home"
    os.environ.update(isolated_env(home))
    params = {
        "dataset.source": f"local:{archive}",
        "image.size": [side, side],
        "train.epochs": 1,
        "train.models": ["small_cnn"],
    }
    project = make_project(base / "project", params)
    print(f"N={n}: running the DAG up to {TARGET} in {project}", flush=True)
    wall = sh(["snakemake", "--cores", "2", TARGET], project)
    result: dict = {"n": n, "side": side, "archive_bytes": archive.stat().st_size, "dag_s": wall, "stages": {}}
    for stage, outs in STAGES.items():
        row = next(csv.DictReader((project / f"logs/benchmarks/{stage}.tsv").open(), delimiter="\t"))
        result["stages"][stage] = {
            "s": float(row["s"]),
            "max_rss_mb": float(row["max_rss"]),
            "out_bytes": disk(*(project / o for o in outs)),
        }
    data, cache = project / "data", project / ".dvc" / "cache"
    result["data_bytes"], result["cache_bytes"] = disk(data), disk(cache)
    result["data_and_cache_bytes"] = disk(data, cache)
    result["archive_and_shards_bytes"] = disk(project / "data/raw", project / "data/processed")
    result["dvc_status_s"] = timed(["dvc", "status"], project)
    result["dvc_version_s"] = timed(["dvc", "--version"], project)
    result["snakemake_n_s"] = timed(["snakemake", "-n", "--cores", "2", TARGET], project)
    result["snakemake_version_s"] = timed(["snakemake", "--version"], project)
    result["dvc_commit_again_s"] = sh(["specimen", "dvc-commit"], project)
    if transfer:
        remote = base / "remote"
        sh(["dvc", "remote", "add", "-d", "bench", str(remote)], project)
        sh(["git", "add", "-A"], project)
        sh(["git", "commit", "-q", "-m", "run"], project)
        result["dvc_push_s"] = sh(["dvc", "push"], project)
        clone = base / "clone"
        sh(["git", "clone", "-q", str(project), str(clone)], base)
        result["specimen_pull_s"] = sh(["specimen", "pull", "train@small_cnn"], clone)  # and what it needs
        result["clone_planned_jobs"] = planned_jobs(clone)
        result["remote_bytes"] = disk(remote)
        shutil.rmtree(clone)
        shutil.rmtree(remote)
    (work / f"scale-{n}.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


# -- the table ----------------------------------------------------------------------------------


def gb(b: float) -> str:
    return f"{b / 1e9:.2f} GB" if b >= 1e8 else f"{b / 1e6:.1f} MB"


def table(results: list[dict]) -> str:
    results = sorted(results, key=lambda r: r["n"])
    lo, hi = results[0], results[-1]
    head = ["stage"] + [f"N={r['n']:,}: s / peak MiB / out" for r in results]
    if len(results) > 1:
        head += [f"time x{hi['n'] // lo['n']}", "RSS x"]
    rows = [head]
    for stage in STAGES:
        row = [stage]
        for r in results:
            s = r["stages"][stage]
            row.append(f"{s['s']:.1f} / {s['max_rss_mb']:.0f} / {gb(s['out_bytes'])}")
        if len(results) > 1:
            a, b = lo["stages"][stage], hi["stages"][stage]
            row += [f"{b['s'] / a['s']:.1f}", f"{b['max_rss_mb'] / a['max_rss_mb']:.2f}"]
        rows.append(row)

    def line(label, fmt):
        return [label] + [fmt(r) for r in results] + ([""] * 2 if len(results) > 1 else [])

    rows += [
        line("DAG wall (snakemake)", lambda r: f"{r['dag_s']:.0f} s"),
        line("archive + shards", lambda r: gb(r["archive_and_shards_bytes"])),
        line("data/ + .dvc/cache", lambda r: gb(r["data_and_cache_bytes"])),
        line("  ratio (goal <= 1.3)", lambda r: f"{r['data_and_cache_bytes'] / r['archive_and_shards_bytes']:.2f}"),
        line("dvc status (start-up)", lambda r: f"{r['dvc_status_s']:.2f} s ({r['dvc_version_s']:.2f})"),
        line("snakemake -n (start-up)", lambda r: f"{r['snakemake_n_s']:.2f} s ({r['snakemake_version_s']:.2f})"),
        line("dvc-commit, nothing new", lambda r: f"{r['dvc_commit_again_s']:.1f} s"),
    ]
    if all("dvc_push_s" in r for r in results):
        rows += [
            line("dvc push", lambda r: f"{r['dvc_push_s']:.0f} s"),
            line(
                "specimen pull (clone)", lambda r: f"{r['specimen_pull_s']:.0f} s, {r['clone_planned_jobs']} jobs left"
            ),
            line("  pull / recompute", lambda r: f"{r['specimen_pull_s'] / r['dag_s']:.2f}"),
        ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    fmt = lambda row: "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |"  # noqa: E731
    out = [fmt(rows[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    return "\n".join(out + [fmt(r) for r in rows[1:]])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10000, 100000])
    ap.add_argument("--side", type=int, default=128, help="image.size: side x side (default 128)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/specimen-scale"), help="datasets, runs, results")
    ap.add_argument("--no-transfer", action="store_true", help="skip dvc push and specimen pull")
    ap.add_argument("--table", action="store_true", help="only print the table of the sizes in --work")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    if not args.table:
        for n in args.sizes:
            run_size(args.work, n, args.side, not args.no_transfer)
    found = [json.loads(p.read_text()) for p in sorted(args.work.glob("scale-*.json"))]
    print(table(found) if found else f"nothing measured in {args.work} yet")


if __name__ == "__main__":
    main()
