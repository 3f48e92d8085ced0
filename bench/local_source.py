"""Benchmark: what watching a `local:` dataset folder costs each tool, at N files (default 20,000).

    python bench/local_source.py [--files N] [--keep DIR]

In a temporary copy of the project, with download run by Snakemake (and so recorded in dvc.lock),
it times against the
same project with `dataset.source: demo` (measured in the same run, so the difference is the
check's own cost):
- `snakemake -n all`: the Snakefile digests the folder (every file's path and bytes; a file
  whose size, mtime and inode are unchanged is not read again). Cold (no digest cache) and warm.
- `dvc status download`: DVC hashes the folder behind the `local-source` link (its own state
  database skips unchanged files).
- the same two after one file of the folder changed (both must then plan download).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.conftest import make_project, set_dotted  # noqa: E402  (the same copy the tests use)


def timed(cmd, cwd, repeat=3) -> tuple[float, str]:
    times, out = [], ""
    for _ in range(repeat):
        start = time.perf_counter()
        out = subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, text=True).stdout
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def use_source(project: Path, source: str) -> None:
    import yaml

    path = project / "params.yaml"
    path.write_text(
        yaml.safe_dump(set_dotted(yaml.safe_load(path.read_text()), {"dataset.source": source}), sort_keys=False)
    )
    subprocess.run(["snakemake", "--cores", "1", "data/raw"], cwd=project, check=True, capture_output=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=20000)
    ap.add_argument("--keep", type=Path, help="run in this folder and keep it")
    args = ap.parse_args()
    base = args.keep or Path(tempfile.mkdtemp(prefix="specimen-bench-"))
    project = make_project(base / "project")
    folder = base / "dataset"
    rng = __import__("random").Random(0)
    for i in range(args.files):  # 200 class folders of small files (their bytes are all that is hashed)
        f = folder / f"class_{i % 200:03d}" / f"img_{i:06d}.jpg"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(rng.randbytes(rng.randint(1000, 3000)))
    smk = ["snakemake", "-n", "--cores", "1", "all"]
    dvc = ["dvc", "status", "download"]

    use_source(project, "demo")
    demo_smk, _ = timed(smk, project)
    demo_dvc, _ = timed(dvc, project)

    use_source(project, f"local:{folder}")
    cache = project / ".snakemake/specimen/local-source.json"
    cache.unlink(missing_ok=True)
    cold_smk, _ = timed(smk, project, repeat=1)
    warm_smk, _ = timed(smk, project)
    warm_dvc, said = timed(dvc, project)
    assert "up to date" in said, said
    victim = folder / "class_007" / "img_000007.jpg"
    victim.write_bytes(victim.read_bytes() + b"\0")
    changed_smk, plan = timed(smk, project, repeat=1)
    changed_dvc, status = timed(dvc, project, repeat=1)
    assert "rule download:" in plan and "local-source" in status, (plan[-500:], status)

    print(f"local: folder of {args.files:,} files; medians of 3 runs unless said (2 cores)\n")
    print(f"{'check':<44}{'demo source':>12}{'local folder':>14}{'extra':>9}{'ratio':>7}")
    rows = [
        ("snakemake -n all, digest cache cold", demo_smk, cold_smk),
        ("snakemake -n all, warm", demo_smk, warm_smk),
        ("snakemake -n all, one file changed", demo_smk, changed_smk),
        ("dvc status download, warm", demo_dvc, warm_dvc),
        ("dvc status download, one file changed", demo_dvc, changed_dvc),
    ]
    for label, before, after in rows:
        print(f"{label:<44}{before:>10.2f} s{after:>12.2f} s{after - before:>7.2f} s{after / before:>7.2f}")
    if not args.keep:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
