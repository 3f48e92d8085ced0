"""Keeping DVC and Snakemake in step: ``specimen dvc-commit`` and ``specimen pull``.

dvc-commit: after Snakemake has built artefacts, record them in dvc.lock and the DVC cache.
Snakemake runs the stages; DVC versions what they wrote. Committing every DVC stage whose
outputs all exist makes ``dvc status`` clean and ``dvc push`` share them, without running
anything again. Stages not yet run (outputs missing) are left alone and listed.

pull: ``dvc pull`` (of TARGETS and what they depend on, or of everything), then mark what was
pulled current for Snakemake. DVC does not keep file times, and Snakemake decides by them: after a
plain ``dvc pull`` in a fresh clone, ``snakemake -n`` would plan the whole DAG again. So every
stage whose outputs are all there and match dvc.lock (``dvc status``) has its outputs touched in
the DAG's order (``snakemake --touch``); then ``snakemake -n results/all`` plans only what was not
pulled. A stage whose files differ from dvc.lock is left alone, and listed.

hold_lock: DVC's own repository lock, which Snakemake takes for its whole run (the Snakefile's
onstart) and hands to dvc-commit at the end. A ``dvc repro`` started during the run then stops at
DVC's lock, as it would beside another DVC command, instead of writing the same outputs as
Snakemake's jobs; and a Snakemake run started while DVC works stops before it runs anything.
"""
from __future__ import annotations

from pathlib import Path


def commit_finished(root: Path) -> tuple[list[str], list[str]]:
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    from specimen import SpecimenError

    try:
        return _commit(Repo, root)
    except DvcException as e:
        raise SpecimenError(f"dvc commit: {str(e).splitlines()[0]}") from None


def hold_lock(root: Path):
    """Take DVC's lock of the project at `root` (as ``dvc repro`` does, with DVC's own retries) and
    return it; ``.unlock()`` gives it back. A SpecimenError while DVC works there.

    DVC gives its repository lock back while a stage's command runs (so that the command may call
    dvc), and marks the stage's paths in its read-write lock instead: a project is free only when
    the first can be taken and the second names no live process."""
    import os
    import re

    from dvc.lock import LockError, make_lock
    from dvc.repo import Repo
    from dvc.rwlock import rwlock

    from specimen import SpecimenError

    busy = ("DVC is running in this project (dvc repro, dvc exp run, dvc pull...) and holds its lock{}: "
            "wait for it to finish, then run snakemake again")
    with Repo(str(root)) as repo:  # DVC's own place and kind of lock (core.hardlink_lock)
        hardlink = repo.config["core"].get("hardlink_lock", False)
        lock = make_lock(repo.fs.join(repo.tmp_dir, "lock"), tmp_dir=repo.tmp_dir, hardlink_lock=hardlink)
        try:
            lock.lock()
        except LockError:
            raise SpecimenError(busy.format("")) from None
        try:
            with rwlock(repo.tmp_dir, repo.fs, "snakemake", [], [os.path.abspath(root)], hardlink):
                pass
        except LockError as e:
            lock.unlock()
            held = dict.fromkeys(re.findall(r"\(PID (\d+)\): (\S+)(.*)", str(e)))  # "(PID 7): /venv/bin/dvc repro"
            who = "; ".join(f"PID {pid}: {os.path.basename(program)}{rest}" for pid, program, rest in held)
            raise SpecimenError(busy.format(f" ({who})" if who else "")) from None
    return lock


def _by_outputs(repo) -> tuple[list, list]:
    """The stages that run a command, split into (every output there, some output missing)."""
    done, missing = [], []
    for s in repo.index.stages:
        if s.cmd:
            (done if all(out.exists for out in s.outs) else missing).append(s)
    return done, missing


def _commit(Repo, root: Path) -> tuple[list[str], list[str]]:
    with Repo(str(root)) as repo:
        done, missing = ([s.addressing for s in group] for group in _by_outputs(repo))
        for name in done:
            # relink=False: copy into the cache but leave the workspace files (and their mtimes,
            # which Snakemake compares with its logs) as Snakemake wrote them.
            repo.commit(name, force=True, relink=False)
    return done, missing


def pull(root: Path, targets: list[str], remote: str | None = None) -> dict:
    """Pull, then touch the outputs of every complete, up-to-date stage for Snakemake. Returns
    {"fetched": files, "current": [stages], "stale": [stages], "missing": [stages]}."""
    import subprocess

    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    from specimen import SpecimenError

    try:
        with Repo(str(root)) as repo:
            result = repo.pull(targets=targets or None, remote=remote, with_deps=bool(targets))
            changed = set(repo.status())
            complete, incomplete = _by_outputs(repo)
            current = [s for s in complete if s.addressing not in changed]
            outs = [str(out.def_path) for s in current for out in s.outs]
    except DvcException as e:
        raise SpecimenError(f"dvc pull: {str(e).splitlines()[0]}") from None
    if outs:
        done = subprocess.run(["snakemake", "--touch", "--cores", "1", *outs], cwd=root, capture_output=True,
                              text=True)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no message"])[-1]
            raise SpecimenError(f"snakemake --touch failed: {last}")
    return {"fetched": result["stats"]["fetched"], "current": [s.addressing for s in current],
            "stale": sorted({s.addressing for s in complete} - {s.addressing for s in current}),
            "missing": sorted(s.addressing for s in incomplete)}
