"""Benchmark: the clean stage at growing dataset sizes: time and peak memory, against a baseline.

    python bench/clean_scale.py [--sizes 5000 50000] [--side 48] [--keep DIR]
    python bench/clean_scale.py --processed DIR/data/processed --features DIR/data/features/histogram.npz
                                       # one project's own data instead (bench/scale.py's runs)

For each size N it synthesises, deterministically (seeded numpy), what clean reads:
- a processed folder: index.csv (the columns preprocess writes) and shards of 1024 side x side
  RGB images (random gradients, discs, boxes and noise, zero-padded around a box as `pad` leaves
  them; source sizes with a few odd aspect ratios);
- data/features/clip.npz: N x 512 float32 unit vectors drawn around 20 class centres
  (cosine ~0.7 to their centre, CLIP-like), extractor "clip";
- planted faults, so every step has work: exact copies (same pixels, sha256 and features, often
  in another split: leaks), near copies (brightened + noise, features nudged), dark, light,
  flat (low information) and smoothed images, and feature vectors far from every class.

Then, each in a fresh child process (MPLCONFIGDIR in a temporary folder):
- baseline: import what clean imports, load the index and the features npz (what any clean must
  hold), peak RSS; then one plain pass over the shards (every image read once through
  specimen.shards, the reader clean uses), timed;
- clean: `specimen.clean.clean.clean(processed, features, out, params['clean'], seed)` with params.yaml's
  defaults, timed, with its peak RSS; each step (image_properties, phash_pairs, nearest, ...) is
  timed, and where /proc/self/clear_refs is writable (Linux) its own peak RSS is measured too
  (the high-water mark is reset at each step's start; the stage's peak is the max of all readings).

Peak RSS is the child's VmHWM (/proc/self/status), not getrusage's ru_maxrss: on Linux a child's
ru_maxrss starts at its parent's RSS (kept across exec), so it would count this script's memory
(ru_maxrss is the fallback where /proc is missing).

Prints per N: time, images/s, time over the plain pass, peak RSS, baseline RSS and RSS above the
baseline (what clean adds to holding its inputs); then the ratio of RSS above baseline at the
largest N to the smallest, beside the ratio of N and the features array's own size (N*512*4):
bounded memory means that only O(N) inputs and per-image outputs grow with N (no N x N matrix),
so the added RSS should grow far less than N. Figures are ratios within one run; nothing is
asserted on time.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
from specimen.artefacts import write_npz  # noqa: E402
from specimen.data.preprocess import INDEX_COLUMNS  # noqa: E402
from specimen.shards import shard_name, write_shard  # noqa: E402

SHARD = 1024
DIM = 512
CLASSES = 20
FAULTS = ("exact", "near", "dark", "light", "flat", "smooth")  # each planted in 0.2% of images
OUTLIERS = 0.002  # fraction of feature vectors drawn far from every class


# ----------------------------------------------------------------------------------------------
# Synthetic data
# ----------------------------------------------------------------------------------------------


def _images(rng, count: int, side: int) -> np.ndarray:
    """`count` varied RGB images: a gradient, three discs or boxes of random colours, noise."""
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32) / side
    col = lambda: rng.uniform(0, 255, (count, 1, 1, 3)).astype(np.float32)  # noqa: E731
    gy, gx = (rng.uniform(-120, 120, (count, 1, 1, 1)).astype(np.float32) for _ in range(2))
    img = col() + gy * (yy[None, :, :, None] - 0.5) + gx * (xx[None, :, :, None] - 0.5)
    for _ in range(3):
        cy, cx = (rng.uniform(0, 1, (count, 1, 1)).astype(np.float32) for _ in range(2))
        r = rng.uniform(0.08, 0.35, (count, 1, 1)).astype(np.float32)
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
        box = (np.abs(yy - cy) < r) & (np.abs(xx - cx) < r * 0.6)
        shape = np.where(rng.uniform(size=(count, 1, 1)) < 0.5, disc, box)
        img = np.where(shape[..., None], col(), img)
    img += rng.standard_normal(img.shape, dtype=np.float32) * rng.uniform(0, 12, (count, 1, 1, 1)).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def _boxes(width: np.ndarray, height: np.ndarray, side: int) -> np.ndarray:
    """(y0, x0, y1, x1) of each image inside its side x side canvas, as preprocess's `pad` does."""
    scale = np.minimum(side / height, side / width)
    nh = np.maximum(1, np.round(height * scale)).astype(int)
    nw = np.maximum(1, np.round(width * scale)).astype(int)
    y0, x0 = (side - nh) // 2, (side - nw) // 2
    return np.stack([y0, x0, y0 + nh, x0 + nw], axis=1)


def make_dataset(root: Path, n: int, side: int, seed: int = 0) -> tuple[Path, Path, dict]:
    """processed/ (index.csv + shards) and features/clip.npz for n images; returns them and the
    number of each planted fault."""
    rng = np.random.default_rng(seed)
    processed, shards = root / "processed", root / "processed" / "shards"
    shards.mkdir(parents=True)
    weights = 1 / np.sqrt(np.arange(1, CLASSES + 1))  # imbalanced classes
    labels = rng.choice(CLASSES, n, p=weights / weights.sum())
    splits = rng.choice(np.array(["train", "valid", "test"]), n, p=[0.7, 0.15, 0.15])
    width, height = rng.integers(160, 640, n), rng.integers(160, 640, n)
    odd = rng.uniform(size=n) < 0.01
    width[odd] = height[odd] * rng.integers(3, 6, odd.sum())  # panoramas: odd aspect ratio
    boxes = _boxes(width, height, side)
    centres = rng.standard_normal((CLASSES, DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    features = np.empty((n, DIM), dtype=np.float32)
    sha = np.empty(n, dtype=object)
    planted = dict.fromkeys(FAULTS, 0)
    yy, xx = np.mgrid[0:side, 0:side]
    for start in range(0, n, SHARD):
        count = min(SHARD, n - start)
        rows = np.arange(start, start + count)
        pix = _images(rng, count, side)
        noise = rng.standard_normal((count, DIM), dtype=np.float32) / np.sqrt(DIM)
        vec = centres[labels[rows]] + noise
        # faults, on disjoint images of this shard; copies copy an image of the same shard
        per = max(1, round(count * 0.002)) if count >= 2 * len(FAULTS) + 2 else 0
        pick = rng.permutation(count)
        sources, pick = pick[: per * 2], pick[per * 2 :]
        for k, fault in enumerate(FAULTS):
            dst = pick[k * per : (k + 1) * per]
            planted[fault] += len(dst)
            if fault in ("exact", "near"):
                src = sources[:per] if fault == "exact" else sources[per:]
                g_src, g_dst = rows[src], rows[dst]
                labels[g_dst], width[g_dst], height[g_dst] = labels[g_src], width[g_src], height[g_src]
                boxes[g_dst] = boxes[g_src]
                if fault == "exact":
                    pix[dst], vec[dst] = pix[src], vec[src]
                else:
                    bright = pix[src].astype(np.int16) + 6 + rng.integers(-2, 3, pix[src].shape)
                    pix[dst] = np.clip(bright, 0, 255).astype(np.uint8)
                    vec[dst] = vec[src] + 0.02 * rng.standard_normal((len(dst), DIM), dtype=np.float32) / np.sqrt(DIM)
            elif fault == "dark":
                pix[dst] //= 10
            elif fault == "light":
                pix[dst] = 255 - (255 - pix[dst]) // 12
            elif fault == "flat":
                pix[dst] = rng.integers(0, 256, (len(dst), 1, 1, 3), dtype=np.uint8)
            else:  # smooth: the gradient only, no edges
                ramp = (yy + xx)[None, :, :, None] * rng.uniform(0.5, 2, (len(dst), 1, 1, 1))
                pix[dst] = np.clip(ramp + rng.uniform(0, 120, (len(dst), 1, 1, 3)), 0, 255).astype(np.uint8)
        # zero padding outside each image's box, as preprocess leaves it
        b = boxes[rows]
        inside = (
            (yy >= b[:, 0, None, None])
            & (yy < b[:, 2, None, None])
            & (xx >= b[:, 1, None, None])
            & (xx < b[:, 3, None, None])
        )
        pix *= inside[..., None]
        far = rng.uniform(size=count) < OUTLIERS
        far[sources] = False
        far[pick[: len(FAULTS) * per]] = False  # far features on clean images only
        vec[far] = rng.standard_normal((far.sum(), DIM), dtype=np.float32)
        planted["far features"] = planted.get("far features", 0) + int(far.sum())
        features[rows] = vec / np.linalg.norm(vec, axis=1, keepdims=True)
        sha[rows] = [hashlib.sha256(p.tobytes()).hexdigest() for p in pix]
        write_shard(shards / shard_name(start // SHARD), pix, list(range(count)))
    ids = [f"img{i:07d}" for i in range(n)]
    shard = [shard_name(i // SHARD) for i in range(n)]
    index = pd.DataFrame(
        {
            "id": ids,
            "label": [f"c{c:02d}" for c in labels],
            "split": splits,
            "sha256": sha,
            "width": width,
            "height": height,
            "shard": shard,
            "offset": np.arange(n) % SHARD,
            "y0": boxes[:, 0],
            "x0": boxes[:, 1],
            "y1": boxes[:, 2],
            "x1": boxes[:, 3],
        }
    )
    index[INDEX_COLUMNS].to_csv(processed / "index.csv", index=False)
    feats = root / "features" / "clip.npz"
    feats.parent.mkdir()
    write_npz(feats, ids=np.array(ids, dtype=str), features=features, extractor=np.array("clip"))
    return processed, feats, planted


# ----------------------------------------------------------------------------------------------
# Children: the baseline and the stage, each in a fresh process
# ----------------------------------------------------------------------------------------------

COMMON = r"""
import json, resource, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
processed, features_path = Path(sys.argv[2]), Path(sys.argv[3])
import numpy as np, pandas as pd
import imagehash, matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot
import scipy.sparse.csgraph, sklearn.neighbors
from cleanvision.issue_managers import image_property
import specimen.clean.clean, specimen.params
from specimen.shards import Shards
MIB = 1024  # ru_maxrss and /proc are in KiB

def status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) / MIB

def maxrss():
    # ru_maxrss of a child started by fork/vfork + exec starts at the parent's RSS (Linux keeps the
    # larger in signal->maxrss across exec), so it would count this script's own memory; VmHWM
    # is the high-water mark of this process's own address space
    try:
        return status("VmHWM:")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / MIB
"""

BASELINE_CHILD = (
    COMMON
    + r"""
index = pd.read_csv(processed / "index.csv", keep_default_na=False)
with np.load(features_path) as npz:
    ids, features = npz["ids"], npz["features"]
rss_inputs = maxrss()
start = time.perf_counter()
total = 0
for rows, images in Shards(processed / "shards").batches(index, 256):
    total += int(images.sum(dtype=np.int64))
pass_s = time.perf_counter() - start
print(json.dumps({"rss": rss_inputs, "pass_s": pass_s, "rss_after_pass": maxrss(), "checksum": total}))
"""
)

CLEAN_CHILD = (
    COMMON
    + r"""
import functools
C = specimen.clean.clean
params = specimen.params.load(Path(sys.argv[5]))
import specimen.clean.duplicates, specimen.clean.neighbours, specimen.clean.outliers
STEPS = {  # module -> the functions timed there (each called through that module's globals)
    C: ["image_properties", "quality_scores", "exact_duplicates", "near_duplicates", "comparable",
        "outlier_scores", "label_issues", "pixel_vectors", "summarise", "write_galleries",
        "write_label_gallery", "write_csv", "write_json"],
    specimen.clean.duplicates: ["phash_pairs", "_components"],
    specimen.clean.neighbours: ["nearest"],
    specimen.clean.outliers: ["knn_distance"],
}

peak = maxrss()  # before any reset: start-up and imports
try:  # resetting the high-water mark gives each step its own peak
    open("/proc/self/clear_refs", "w").write("5")
    per_step_peak = True
except OSError:
    per_step_peak = False
stack, stats = [], {}

def reading():
    global peak
    hwm = status("VmHWM:")
    peak = max(peak, hwm)
    for frame in stack:
        frame["peak"] = max(frame["peak"], hwm)
    return hwm

def wrap(name, fn):
    @functools.wraps(fn)
    def timed(*args, **kwargs):
        if per_step_peak:
            reading()
            open("/proc/self/clear_refs", "w").write("5")
        frame = {"entry": status("VmRSS:") if per_step_peak else 0.0, "peak": 0.0}
        stack.append(frame)
        start = time.perf_counter()
        try:
            result = fn(*args, **kwargs)
        finally:
            seconds = time.perf_counter() - start
            if per_step_peak:
                reading()
            stack.pop()
            for outer in stack:
                outer["peak"] = max(outer["peak"], frame["peak"])
            s = stats.setdefault(name, {"calls": 0, "s": 0.0, "entry": frame["entry"], "added": 0.0})
            s["calls"] += 1
            s["s"] += seconds
            s["added"] = max(s["added"], frame["peak"] - frame["entry"])
        if name == "phash_pairs":
            s["pairs"] = s.get("pairs", 0) + len(result[0])
        return result
    return timed

for module, names in STEPS.items():
    for name in names:
        setattr(module, name, wrap(name, getattr(module, name)))
start = time.perf_counter()
summary = C.clean(processed, features_path, Path(sys.argv[4]), params["clean"], params["seed"])
seconds = time.perf_counter() - start
if per_step_peak:
    reading()
print(json.dumps({"s": seconds, "rss": max(peak, maxrss()), "per_step_peak": per_step_peak, "steps": stats,
                  "removed": summary["removed_by_reason"], "flagged": summary["flagged_by_kind"]}))
"""
)


def child(code: str, args: list, env: dict) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", code, str(ROOT / "src"), *map(str, args)], capture_output=True, text=True, env=env
    )
    if done.returncode != 0:
        sys.exit(f"child failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def report(n: int, baseline: dict, run: dict) -> None:
    print(
        f"N={n}: clean {run['s']:.1f} s, peak RSS {run['rss']:.0f} MiB; removed "
        f"{json.dumps(run['removed'])}; flagged {json.dumps(run['flagged'])}",
        flush=True,
    )
    print(
        f"  baseline child: {baseline['rss']:.0f} MiB holding the inputs, "
        f"{baseline['rss_after_pass']:.0f} MiB after one pass through specimen.shards "
        f"({baseline['pass_s']:.2f} s; its memory maps stay resident)"
    )
    print(f"  {'step':<18}{'calls':>6}{'time s':>9}{'share':>7}{'RSS at entry':>14}{'peak added MiB':>16}")
    for name, s in sorted(run["steps"].items(), key=lambda kv: -kv[1]["s"]):
        added = f"{s['added']:.1f}" if run["per_step_peak"] else "n/a"
        extra = f"  ({s['pairs']} pairs)" if "pairs" in s else ""
        print(
            f"  {name:<18}{s['calls']:>6}{s['s']:>9.2f}{s['s'] / run['s']:>7.0%}{s['entry']:>14.0f}{added:>16}{extra}"
        )


def main(args) -> None:
    with tempfile.TemporaryDirectory(prefix="clean_scale-") as tmp:
        tmp = Path(tmp)
        base = Path(args.keep) if args.keep else tmp / "data"
        env = {**os.environ, "MPLCONFIGDIR": str(tmp / "mpl"), "XDG_CACHE_HOME": str(tmp / "cache")}
        results = {}
        if args.processed:
            n = len(pd.read_csv(args.processed / "index.csv", usecols=["id"]))
            baseline = child(BASELINE_CHILD, [args.processed, args.features], env)
            run = child(CLEAN_CHILD, [args.processed, args.features, tmp / "clean", args.params], env)
            report(n, baseline, run)
            return
        for n in args.sizes:
            root = base / f"n{n}"
            if root.exists():
                shutil.rmtree(root)
            root.mkdir(parents=True)
            start = time.perf_counter()
            processed, feats, planted = make_dataset(root, n, args.side, args.seed)
            made = time.perf_counter() - start
            print(
                f"N={n}: generated in {made:.1f} s; planted per kind: "
                + ", ".join(f"{k} {v}" for k, v in planted.items()),
                flush=True,
            )
            baseline = child(BASELINE_CHILD, [processed, feats], env)
            run = child(CLEAN_CHILD, [processed, feats, root / "clean", args.params], env)
            results[n] = (baseline, run)
            report(n, baseline, run)
            if not args.keep:
                shutil.rmtree(root)
    print()
    print(
        f"clean stage, params.yaml defaults, {args.side}x{args.side} RGB images, {DIM}-d float32 features; "
        f"plain pass = every image read once through specimen.shards"
    )
    head = (
        f"{'N':>8}{'features MiB':>14}{'time s':>9}{'images/s':>10}{'pass s':>8}{'time/pass':>11}"
        f"{'peak RSS MiB':>14}{'baseline MiB':>14}{'above baseline':>16}"
    )
    print(head)
    for n, (baseline, run) in results.items():
        print(
            f"{n:>8}{n * DIM * 4 / 2**20:>14.1f}{run['s']:>9.1f}{n / run['s']:>10.0f}{baseline['pass_s']:>8.2f}"
            f"{run['s'] / baseline['pass_s']:>11.0f}{run['rss']:>14.0f}{baseline['rss']:>14.0f}"
            f"{run['rss'] - baseline['rss']:>16.0f}"
        )
    small, large = min(results), max(results)
    if large != small:
        above = {n: results[n][1]["rss"] - results[n][0]["rss"] for n in (small, large)}
        print(
            f"ratio {large}/{small}: N x{large / small:.1f}; features array x{large / small:.1f} "
            f"({small * DIM * 4 / 2**20:.1f} -> {large * DIM * 4 / 2**20:.1f} MiB); "
            f"RSS above baseline x{above[large] / above[small]:.2f} "
            f"({above[small]:.0f} -> {above[large]:.0f} MiB); "
            f"time x{results[large][1]['s'] / results[small][1]['s']:.1f}"
        )
        print(
            f"an N x N float32 matrix would be {small * small * 4 / 2**20:,.0f} -> {large * large * 4 / 2**20:,.0f} MiB"
        )


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[5000, 50000], help="dataset sizes (images)")
    ap.add_argument("--side", type=int, default=48, help="image side in pixels (params.yaml image.size: 48)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the synthetic data")
    ap.add_argument("--params", type=Path, default=ROOT / "params.yaml", help="params file (its clean: and seed)")
    ap.add_argument(
        "--keep", metavar="DIR", help="keep the synthetic data and clean's outputs in DIR/n<N>/ (replaced if there)"
    )
    ap.add_argument("--processed", type=Path, help="profile clean on this processed folder (with --features) instead")
    ap.add_argument("--features", type=Path, help="with --processed: the embed npz")
    main(ap.parse_args())
