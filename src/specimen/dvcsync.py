"""Keeping DVC and Snakemake in step: ``specimen dvc-commit`` and ``specimen pull``.

dvc-commit: after a Snakemake run (the Snakefile runs it when a run ends, failed or not), make
dvc.lock say what Snakemake knows. Snakemake is asked which jobs it would run now for every output
DVC versions (``snakemake -n``, with the params of params.yaml, which is all DVC reads). A stage
whose outputs it would not rebuild was built from the params, code and inputs it has now: it is
recorded (``dvc commit``: dvc.lock and the DVC cache, so ``dvc push`` shares it; files of a MiB or
more enter the cache as hard links to the workspace's, so the cache costs no second copy of them). A stage it would
run keeps the record it has when DVC calls it changed (``dvc status`` then says why); if DVC would
call it current (its inputs rebuilt to the same bytes, say), its record is removed from dvc.lock,
so that DVC too calls it out of date. After any run, whole or partial (``--until``, one target,
``--forcerun``, a failed run, ``--configfile`` overrides), ``dvc status`` lists exactly the stages
``snakemake -n`` would run.

pull: ``dvc pull`` (of TARGETS and what they depend on, or of everything), then mark what was
pulled current for Snakemake. DVC does not keep file times, and Snakemake decides by them: after a
plain ``dvc pull`` in a fresh clone, ``snakemake -n`` would plan the whole DAG again. So every
stage whose outputs are all there and match dvc.lock (``dvc status``) has its outputs touched in
the DAG's order (``snakemake --touch``); then ``snakemake -n all`` plans only what was not
pulled. A stage whose files differ from dvc.lock is left alone, and listed.

hold_lock: DVC's own repository lock, which Snakemake takes for its whole run (the Snakefile's
onstart) and hands to dvc-commit at the end. A ``dvc repro`` started during the run then stops at
DVC's lock, as it would beside another DVC command, instead of writing the same outputs as
Snakemake's jobs; and a Snakemake run started while DVC works stops before it runs anything.

What DVC offers no public way to do (its locks, removing one stage's record) is in
specimen.dvcadapter, one function each.
"""

from __future__ import annotations

import os
from pathlib import Path


def commit_finished(root: Path) -> dict:
    """Record in dvc.lock every DVC stage Snakemake calls current; forget the record of every stage it
    would run. Returns {"committed": [...], "forgotten": [...], "out_of_date": [...], "not_run": [...]}
    (stage names: forgotten ones had a record; out_of_date ones have outputs that Snakemake would
    rebuild; not_run ones lack outputs)."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo, lock_repo

    from specimen import SpecimenError
    from specimen.dvcadapter import forget, link_into_cache

    try:
        with Repo(str(root)) as repo, lock_repo(repo):
            stages = [s for s in repo.index.stages if s.cmd]
            outputs = {s.addressing: [os.path.relpath(o.fs_path, repo.root_dir) for o in s.outs] for s in stages}
            planned = snakemake_would_build(root, sorted({o for outs in outputs.values() for o in outs}))
            rerun = [s for s in stages if set(outputs[s.addressing]) & planned]
            current = [s for s in stages if s not in rerun and all(o.exists for o in s.outs)]
            # a stage DVC already calls changed keeps its record (`dvc status` then says why); one it
            # would call current (its inputs rebuilt to the same bytes, say) has its record removed
            forgotten = [s.addressing for s in rerun if not s.changed() and forget(repo, s)]
            for stage in current:
                # the large files become the cache's objects as hard links (one copy on disk); then
                # relink=False: the small ones are copied into the cache, and the workspace files
                # (and their mtimes, which Snakemake compares) stay as Snakemake wrote them.
                link_into_cache(stage)
                repo.commit(stage.addressing, force=True, relink=False)
            not_run = [s.addressing for s in stages if not all(o.exists for o in s.outs)]
            return {
                "committed": [s.addressing for s in current],
                "forgotten": forgotten,
                "out_of_date": [s.addressing for s in rerun if s.addressing not in not_run],
                "not_run": not_run,
            }
    except DvcException as e:
        raise SpecimenError(f"dvc commit: {str(e).splitlines()[0]}") from None


def snakemake_would_build(root: Path, targets: list[str]) -> set[str]:
    """Which of `targets`, and of the files they are made from, `snakemake -n` would (re)build now in
    the project at `root` (with its params.yaml; files a killed job left count as to rebuild)."""
    import re
    import subprocess
    import sys

    from specimen import SpecimenError

    env = {k: v for k, v in os.environ.items() if k != "SPECIMEN_PARAMS"}
    done = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--rerun-incomplete", "--cores", "1", "--", *targets],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        said = [line for line in (done.stderr + done.stdout).strip().splitlines() if line.strip()]
        raise SpecimenError(f"snakemake -n failed, so nothing was recorded: {said[-1] if said else 'no message'}")
    # Each job the dry run plans is a block "rule NAME:" (or "localrule") with an "output: a, b" line.
    lines = re.findall(r"^    output: (.*)$", done.stdout, re.M)
    listed = ", " + ", ".join(lines) + ","
    return {t for t in targets if f", {t}," in listed}


def hold_lock(root: Path):
    """Take DVC's lock of the project at `root` (as ``dvc repro`` does, with DVC's own retries) and
    return it; ``.unlock()`` gives it back. A SpecimenError while DVC works there.

    DVC gives its repository lock back while a stage's command runs (so that the command may call
    dvc), and marks the stage's paths in its read-write lock instead: a project is free only when
    the first can be taken and the second names no live process."""
    from dvc.lock import LockError
    from dvc.repo import Repo

    from specimen import SpecimenError
    from specimen.dvcadapter import check, repo_lock, stage_running

    check()
    busy = (
        "DVC is running in this project (dvc repro, dvc exp run, dvc pull...) and holds its lock{}: "
        "wait for it to finish, then run snakemake again"
    )
    with Repo(str(root)) as repo:
        lock = repo_lock(repo)
        try:
            lock.lock()
        except LockError:
            raise SpecimenError(busy.format("")) from None
        who = stage_running(repo, root)
        if who is not None:
            lock.unlock()
            raise SpecimenError(busy.format(f" ({who})" if who else ""))
    return lock


def _by_outputs(repo) -> tuple[list, list]:
    """The stages that run a command, split into (every output there, some output missing)."""
    done, missing = [], []
    for s in repo.index.stages:
        if s.cmd:
            (done if all(out.exists for out in s.outs) else missing).append(s)
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
        done = subprocess.run(["snakemake", "--touch", "--cores", "1", *outs], cwd=root, capture_output=True, text=True)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no message"])[-1]
            raise SpecimenError(f"snakemake --touch failed: {last}")
    return {
        "fetched": result["stats"]["fetched"],
        "current": [s.addressing for s in current],
        "stale": sorted({s.addressing for s in complete} - {s.addressing for s in current}),
        "missing": sorted(s.addressing for s in incomplete),
    }
