"""Benchmark: what clean's pinned threads cost: the neighbour search on the machine's default BLAS
and OpenMP threads (the baseline) against specimen.clean.neighbours.pinned_threads.

    python bench/pinned_threads.py [--n 20000] [--dims 512] [--k 10]

Seeded random float32 vectors (the size of CLIP features); prints both times, their ratio, and
whether the two give the same neighbours and distances.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from threadpoolctl import threadpool_info

from specimen.clean.neighbours import THREADS, nearest, pinned_threads


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--dims", type=int, default=512)
    ap.add_argument("--k", type=int, default=10)
    args = ap.parse_args()
    x = np.random.default_rng(0).normal(size=(args.n, args.dims)).astype(np.float32)
    nearest(x[:100], args.k)  # load the libraries, so that their threads are listed
    default = sorted({(p["internal_api"], p["num_threads"]) for p in threadpool_info()})
    start = time.perf_counter()
    free = nearest(x, args.k)
    t_free = time.perf_counter() - start
    with pinned_threads():
        start = time.perf_counter()
        pinned = nearest(x, args.k)
        t_pinned = time.perf_counter() - start
    same = np.array_equal(free[1], pinned[1]) and np.array_equal(free[0], pinned[0])
    print(f"nearest, {args.n} x {args.dims} float32, k={args.k}")
    print(f"  default threads {default}: {t_free:8.2f} s   (baseline)")
    print(f"  pinned to {THREADS}:{'':22}{t_pinned:8.2f} s   ratio {t_pinned / t_free:.2f}")
    print(f"  same neighbours and distances: {same}")


if __name__ == "__main__":
    main()
