"""dvc-commit: after Snakemake has built artefacts, record them in dvc.lock and the DVC cache.

Snakemake runs the stages; DVC versions what they wrote. Committing every DVC stage whose
outputs all exist makes ``dvc status`` clean and ``dvc push`` share them, without running
anything again. Stages not yet run (outputs missing) are left alone and listed.
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


def _commit(Repo, root: Path) -> tuple[list[str], list[str]]:
    done, missing = [], []
    with Repo(str(root)) as repo:
        stages = [s for s in repo.index.stages if s.cmd]
        for s in stages:
            (done if all(out.exists for out in s.outs) else missing).append(s.addressing)
        for name in done:
            # relink=False: copy into the cache but leave the workspace files (and their mtimes,
            # which Snakemake compares with its logs) as Snakemake wrote them.
            repo.commit(name, force=True, relink=False)
    return done, missing
