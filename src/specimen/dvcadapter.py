"""What specimen needs of DVC that neither its commands nor ``dvc.api`` offer, each in one function:

- ``repo_lock``: DVC's repository lock, to hold for a whole Snakemake run, made as DVC makes its own
  (``dvc.lock.make_lock``, at DVC's place and of its kind, ``core.hardlink_lock``);
- ``stage_running``: who, if anyone, runs a DVC stage here: DVC gives its repository lock back while
  a stage's command runs and marks the stage's paths in its read-write lock (``dvc.rwlock``);
- ``forget``: remove one stage's record from dvc.lock (``dvc.dvcfile.Lockfile``; DVC's command line
  has only ``dvc remove``, which also deletes the stage from dvc.yaml).

``check`` says in one line which of them a DVC upgrade moved (tests/test_provenance.py runs it).
"""

from __future__ import annotations

import os
import re

from specimen import SpecimenError

USED = {"dvc.lock": ("make_lock", "LockError"), "dvc.rwlock": ("rwlock",), "dvc.dvcfile": ("Lockfile",)}


def check() -> None:
    """A SpecimenError naming what of USED this DVC lacks."""
    import importlib

    import dvc

    missing = []
    for module, names in USED.items():
        try:
            found = importlib.import_module(module)
        except ImportError:
            missing.append(module)
            continue
        missing += [f"{module}.{n}" for n in names if not hasattr(found, n)]
    if not hasattr(importlib.import_module("dvc.dvcfile").Lockfile, "remove_stage"):
        missing.append("dvc.dvcfile.Lockfile.remove_stage")
    if missing:
        raise SpecimenError(
            f"dvc {dvc.__version__} has no {', '.join(missing)}, which specimen.dvcadapter uses: "
            "pin dvc<3.68 or adapt specimen/dvcadapter.py"
        )


def repo_lock(repo):
    """DVC's repository lock of `repo` (not taken yet: ``.lock()``, ``.unlock()``); taking it raises
    ``LockError`` while a DVC command holds it."""
    from dvc.lock import make_lock

    hardlink = repo.config["core"].get("hardlink_lock", False)
    return make_lock(repo.fs.join(repo.tmp_dir, "lock"), tmp_dir=repo.tmp_dir, hardlink_lock=hardlink)


def stage_running(repo, root) -> str | None:
    """None when no DVC command runs a stage in the project at `root`; else who does, in words
    ("PID 7: dvc repro"), or "" when DVC does not say."""
    from dvc.lock import LockError
    from dvc.rwlock import rwlock

    hardlink = repo.config["core"].get("hardlink_lock", False)
    try:
        with rwlock(repo.tmp_dir, repo.fs, "snakemake", [], [os.path.abspath(root)], hardlink):
            return None
    except LockError as e:
        held = dict.fromkeys(re.findall(r"\(PID (\d+)\): (\S+)(.*)", str(e)))  # "(PID 7): /venv/bin/dvc repro"
        return "; ".join(f"PID {pid}: {os.path.basename(program)}{rest}" for pid, program, rest in held)


def forget(repo, stage) -> bool:
    """Remove `stage`'s record from the dvc.lock beside its dvc.yaml; whether it had one."""
    from dvc.dvcfile import Lockfile

    lockfile = Lockfile(repo, os.path.splitext(stage.dvcfile.path)[0] + ".lock")
    had = lockfile.exists() and stage.name in lockfile.load().get("stages", {})
    lockfile.remove_stage(stage)
    return had
