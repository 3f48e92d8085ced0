"""Process pools for the stages whose work is per image (preprocess's decoding, clean's image
properties): forked workers, as many as Snakemake gave the job (``OMP_NUM_THREADS``) or else the
cores, all started before any other thread, and a worker's death (the out-of-memory killer, a
signal) seen at once as a one-line error instead of a wait for its lost work."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from specimen import SpecimenError


def workers() -> int:
    return max(1, int(os.environ.get("OMP_NUM_THREADS") or len(os.sched_getaffinity(0))))


@contextlib.contextmanager
def process_pool(n_workers: int, died: str, initializer=None, initargs=()):
    """A ProcessPoolExecutor of `n_workers` forked workers (not Python 3.14's default, forkserver,
    which imports everything again: a second more on the demo). Every worker is forked now, before
    the caller starts a progress bar's thread, so that no fork copies a lock another thread holds
    (with fork, the pool starts all its workers at its first task). A worker that dies, now or in
    the body, raises SpecimenError(died): multiprocessing.Pool would replace it and wait forever."""
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(n_workers, mp_context=context, initializer=initializer, initargs=initargs) as pool:
        try:
            pool.submit(os.getpid).result()
            yield pool
        except BrokenProcessPool:
            raise SpecimenError(died) from None
