"""Benchmark: preprocess throughput against a naive loop and the decode floor, and its memory.

    python bench/preprocess.py [--images 2000] [--side 800] [--target 224]
    python bench/preprocess.py --photos ../shared/data/hymenoptera.zip [--repeat 8] [--target 224]
    python bench/preprocess.py --rss 5000 50000 [--side 320]

Throughput: N generated photo-like JPEGs (side x 3/4 side) to target x target, measured in one run:
- naive: one process, Pillow: open, convert, resize, pad, save a PNG per file (the notebook way);
- specimen: `specimen.data.preprocess.preprocess` on all cores (reduced-scale decode, shards);
- floor: decoding alone at the reduced scale (libjpeg DCT scaling), on the same cores.
The JPEGs lie in one stored zip with extract's listing beside it (files.csv), as `specimen extract`
leaves a downloaded zip: all three read each image's bytes from the zip.
Prints images/s and the ratios specimen/naive (goal >= 3 on 2 cores) and specimen/floor time
(goal <= 1.5). With --photos, the images are the real JPEGs of a zip (../shared/data/), each listed
--repeat times in the manifest (the page cache holds them after the first pass, for all three).

Memory (--rss): peak RSS of the stage (main process and largest worker, each its own VmHWM) at
each dataset size; the ratio largest/smallest says whether memory grows with the number of images
(goal <= 1.2).
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tempfile
import time
import zipfile
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from specimen.data.extracted import COLUMNS, LISTING, read_member  # noqa: E402
from specimen.data.images import scaled_size  # noqa: E402
from specimen.data.preprocess import preprocess  # noqa: E402
from specimen.workers import workers  # noqa: E402

SPLITS = ["train"] * 7 + ["valid"] * 2 + ["test"]  # preprocess refuses a split with no image


def photo(rng, side: int) -> Image.Image:
    """Smooth gradients, blobs and noise: compresses and decodes like a photo, not like flat art."""
    h, w = side * 3 // 4, side
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack(
        [(x / w) * rng.uniform(80, 200), (y / h) * rng.uniform(80, 200), np.full((h, w), rng.uniform(40, 160))], axis=2
    )
    for _ in range(6):
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(side / 20, side / 5)
        img[(y - cy) ** 2 + (x - cx) ** 2 < r * r] = rng.uniform(0, 255, 3)
    img += rng.normal(0, 8, img.shape)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def listed(root: Path, files: dict[str, bytes]) -> None:
    """`files` (path: bytes) in root/images.zip, stored, and extract's listing of it (root/files.csv)."""
    root.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(root / "images.zip", "w", zipfile.ZIP_STORED) as zf:
        for path, data in files.items():
            zf.writestr(path, data)
    rows = [(path, "images.zip", path, len(data)) for path, data in files.items()]
    pd.DataFrame(rows, columns=COLUMNS).to_csv(root / LISTING, index=False)


def make_dataset(root: Path, n: int, side: int) -> Path:
    """n JPEGs listed as extract lists a zip (see listed), and a manifest as ingest writes it."""
    rng = np.random.default_rng(0)
    rows, files = [], {}
    base = [photo(rng, side) for _ in range(50)]  # vary 50 photos by cheap flips: generation stays fast
    for i in range(n):
        rel = f"set/c{i % 10}/{i:06d}.jpg"
        im = (
            base[i % 50]
            .rotate(180 * ((i // 50) % 2))
            .transpose(Image.Transpose.FLIP_LEFT_RIGHT if (i // 100) % 2 else Image.Transpose.FLIP_TOP_BOTTOM)
        )
        out = io.BytesIO()
        im.save(out, "JPEG", quality=90)
        files[rel] = out.getvalue()
        rows.append(
            {
                "id": rel[4:],
                "path": rel,
                "label": f"c{i % 10}",
                "split": SPLITS[i % 10],
                "sha256": str(i),
                "status": "ok",
                "reason": "",
            }
        )
    listed(root, files)
    manifest = root / "manifest.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    return manifest


def photos_dataset(root: Path, archive: Path, repeat: int) -> Path:
    """The zip's JPEGs listed as extract lists a zip (see listed), and a manifest listing each `repeat` times."""
    rows, files = [], {}
    with zipfile.ZipFile(archive) as zf:
        names = sorted(n for n in zf.namelist() if n.lower().endswith((".jpg", ".jpeg")))
        for k, name in enumerate(names):
            rel = f"set/{k:05d}.jpg"
            files[rel] = zf.read(name)
            for r in range(repeat):
                split = SPLITS[(k * repeat + r) % 10]
                rows.append({"id": f"{r}/{rel}", "path": rel, "label": "c", "split": split, "sha256": f"{r}-{k}"})
    listed(root, files)
    manifest = root / "manifest.csv"
    pd.DataFrame(rows).assign(status="ok", reason="").to_csv(manifest, index=False)
    return manifest


def naive(members, out: Path, target: int) -> None:
    out.mkdir()
    for i, (archive, member) in enumerate(members):
        im = Image.open(io.BytesIO(read_member(archive, member))).convert("RGB")
        h, w = scaled_size(im.height, im.width, target, target, "pad")
        im = im.resize((w, h), Image.BILINEAR)
        canvas = Image.new("RGB", (target, target))
        canvas.paste(im, ((target - w) // 2, (target - h) // 2))
        canvas.save(out / f"{i}.png")


def decode_reduced(job) -> int:
    archive, member, target = job
    with Image.open(io.BytesIO(read_member(archive, member))) as im:
        h, w = scaled_size(im.height, im.width, target, target, "pad")
        im.draft(im.mode, (w, h))
        im.load()
        return im.width


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def throughput(args) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.photos:
            t_gen = timed(lambda: photos_dataset(tmp / "data", args.photos, args.repeat))
        else:
            t_gen = timed(lambda: make_dataset(tmp / "data", args.images, args.side))
        manifest = tmp / "data/manifest.csv"
        members = [(str(tmp / "data/images.zip"), p) for p in pd.read_csv(manifest).path]
        image = {"size": [args.target, args.target], "resize": "pad", "color": "rgb", "max_pixels": None}
        n_workers = workers()
        t_naive = timed(lambda: naive(members, tmp / "naive", args.target))
        t_ours = timed(lambda: preprocess(manifest, tmp / "data", tmp / "processed", image, 1024))
        with Pool(n_workers) as pool:
            t_floor = timed(lambda: pool.map(decode_reduced, [(*m, args.target) for m in members], chunksize=16))
    n = len(members)
    what = f"{args.photos.name} photos x{args.repeat}" if args.photos else f"JPEGs {args.side}x{args.side * 3 // 4}"
    print(f"{n} {what} -> {args.target}x{args.target}, {n_workers} workers (made in {t_gen:.0f} s)")
    for label, t in (
        ("naive Pillow loop, 1 process", t_naive),
        ("specimen preprocess", t_ours),
        ("floor: reduced-scale decode only", t_floor),
    ):
        print(f"  {label:<34} {t:7.2f} s  {n / t:8.1f} images/s")
    print(f"  speed-up over naive: {t_naive / t_ours:.2f}x   time over floor: {t_ours / t_floor:.2f}x")


RSS_CHILD = """
import json, os, sys, threading, time
from pathlib import Path
sys.path.insert(0, sys.argv[4])
from specimen.data.preprocess import preprocess

def hwm(pid="self"):
    # VmHWM, the process's own peak RSS; getrusage's ru_maxrss would start at the parent's (kept across fork and exec)
    try:
        with open(f"/proc/{pid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration):
        return 0.0

workers, done = {}, threading.Event()
def watch():  # the pool's workers exit with the stage: poll their high-water marks while they live
    me = str(os.getpid())
    while not done.is_set():
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/stat") as f:
                    ppid = f.read().rsplit(")", 1)[1].split()[1]
            except OSError:
                continue
            if ppid == me:
                workers[pid] = max(workers.get(pid, 0.0), hwm(pid))
        time.sleep(0.1)
threading.Thread(target=watch, daemon=True).start()
root = Path(sys.argv[1])
preprocess(root / "manifest.csv", root, Path(sys.argv[2]),
           {"size": [int(sys.argv[3])] * 2, "resize": "pad", "color": "rgb", "max_pixels": None}, 1024)
done.set()
print(json.dumps({"main_mib": hwm(), "worker_mib": max(workers.values(), default=0.0)}))
"""


def memory(args) -> None:
    results = {}
    for n in args.rss:
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            make_dataset(tmp / "data", n, args.side)
            start = time.perf_counter()
            out = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    RSS_CHILD,
                    str(tmp / "data"),
                    str(tmp / "processed"),
                    str(args.target),
                    str(Path(__file__).resolve().parents[1] / "src"),
                ],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            results[n] = json.loads(out.strip().splitlines()[-1])
            print(
                f"{n:>7} images: peak RSS main {results[n]['main_mib']:.0f} MiB, largest worker "
                f"{results[n]['worker_mib']:.0f} MiB, {time.perf_counter() - start:.0f} s"
            )
    small, large = min(results), max(results)
    print(
        f"ratio {large}/{small}: main {results[large]['main_mib'] / results[small]['main_mib']:.2f}, "
        f"worker {results[large]['worker_mib'] / results[small]['worker_mib']:.2f}"
    )


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--side", type=int, default=800)
    ap.add_argument("--target", type=int, default=224)
    ap.add_argument("--photos", type=Path, help="real JPEGs: a zip of them (../shared/data/hymenoptera.zip)")
    ap.add_argument("--repeat", type=int, default=8, help="with --photos: times each photo is listed")
    ap.add_argument("--rss", type=int, nargs="+", help="measure peak memory at these dataset sizes instead")
    args = ap.parse_args()
    memory(args) if args.rss else throughput(args)
