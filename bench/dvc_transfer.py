"""Benchmark: data/processed for N images, its file count, and dvc push / dvc pull to a local remote.

    python bench/dvc_transfer.py [--images 20000] [--side 320] [--target 96]

Builds N generated JPEGs, runs preprocess into data/processed of a fresh git + DVC project,
`dvc add`s it, then times `dvc push` to a folder remote and, after deleting the folder and the
cache, `dvc pull` back (checked byte-identical). Baseline, measured in the same run: `cp -r` of
the same folder, so the ratios say what DVC adds over copying the bytes.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from preprocess import make_dataset  # noqa: E402  (bench/preprocess.py)

from specimen.data.preprocess import preprocess  # noqa: E402


def sh(cmd, cwd) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=20000)
    ap.add_argument("--side", type=int, default=320)
    ap.add_argument("--target", type=int, default=96)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        manifest = make_dataset(tmp / "source", args.images, args.side)
        project = tmp / "project"
        project.mkdir()
        for cmd in (
            ["git", "init", "-q"],
            ["dvc", "init", "-q"],
            ["dvc", "config", "core.analytics", "false"],
            ["dvc", "remote", "add", "-d", "shared", str(tmp / "remote")],
        ):
            sh(cmd, project)
        start = time.perf_counter()
        preprocess(
            manifest,
            tmp / "source",
            project / "data/processed",
            {"size": [args.target, args.target], "resize": "pad", "color": "rgb", "max_pixels": None},
            1024,
        )
        t_pre = time.perf_counter() - start
        files = [p for p in (project / "data/processed").rglob("*") if p.is_file()]
        size = sum(p.stat().st_size for p in files)
        t_add = sh(["dvc", "add", "-q", "data/processed"], project)
        t_cp = sh(["cp", "-r", str(project / "data/processed"), str(tmp / "copy")], project)
        t_push = sh(["dvc", "push", "-q"], project)
        shutil.move(project / "data/processed", tmp / "original")
        shutil.rmtree(project / ".dvc/cache")
        t_pull = sh(["dvc", "pull", "-q"], project)
        same = not filecmp.dircmp(tmp / "original", project / "data/processed").diff_files
    print(
        f"{args.images} images {args.target}x{args.target}: data/processed has {len(files)} files, {size / 2**20:.0f} MiB "
        f"(preprocess {t_pre:.1f} s, dvc add {t_add:.1f} s)"
    )
    print(f"  cp -r (baseline)  {t_cp:6.2f} s")
    print(f"  dvc push          {t_push:6.2f} s   ratio to cp {t_push / t_cp:5.1f}")
    print(f"  dvc pull          {t_pull:6.2f} s   ratio to cp {t_pull / t_cp:5.1f}   identical after pull: {same}")


if __name__ == "__main__":
    main()
