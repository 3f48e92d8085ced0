"""What specimen needs of DVC that neither its commands nor ``dvc.api`` offer, each in one function:

- ``repo_lock``: DVC's repository lock, to hold for a whole Snakemake run, made as DVC makes its own
  (``dvc.lock.make_lock``, at DVC's place and of its kind, ``core.hardlink_lock``);
- ``stage_running``: who, if anyone, runs a DVC stage here: DVC gives its repository lock back while
  a stage's command runs and marks the stage's paths in its read-write lock (``dvc.rwlock``);
- ``forget``: remove one stage's record from dvc.lock (``dvc.dvcfile.Lockfile``; DVC's command line
  has only ``dvc remove``, which also deletes the stage from dvc.yaml);
- ``link_into_cache``: make a stage's large output files DVC's cache objects themselves, as hard
  links (``Stage.save``, each output's ``obj`` and ``cache.oid_to_path``/``protect``). DVC's own hard-link
  cache (``cache.type hardlink``) links the other way round: it replaces the workspace file with a
  link to the cache's object, which gives a rebuilt file the mtime of the object it equals (older
  than its inputs, for Snakemake) and rewrites the folders' entries.

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
    import inspect

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
    save = getattr(importlib.import_module("dvc.stage").Stage, "save", None)
    if save is None or "run_cache" not in inspect.signature(save).parameters:
        missing.append("dvc.stage.Stage.save(run_cache=)")
    for name in ("oid_to_path", "protect"):
        if not hasattr(importlib.import_module("dvc_data.hashfile.db.local").LocalHashFileDB, name):
            missing.append(f"dvc_data.hashfile.db.local.LocalHashFileDB.{name}")
    if not hasattr(importlib.import_module("dvc_data.hashfile.tree").Tree, "iteritems"):
        missing.append("dvc_data.hashfile.tree.Tree.iteritems")
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


LINK_BYTES = 2**20  # output files this large or larger are linked into the cache; smaller ones copied


def link_into_cache(stage, min_bytes: int = LINK_BYTES) -> int:
    """Make each output file of `stage` of at least `min_bytes` its own object in DVC's cache: a hard
    link to the workspace file (the same inode), read-only as DVC keeps its objects. The file's
    bytes are then on disk once; its mtime, which Snakemake compares, and its folder's entries stay
    as they are; an object the cache held already (the same bytes, built before) is replaced by the
    link. ``dvc commit`` afterwards finds the objects in place and copies only the small files.
    Where a link cannot be made (the cache on another file system), the file is left to DVC to
    copy. Returns the bytes linked."""
    stage.save(run_cache=False)  # the outputs' hashes (from DVC's state where the files did not change)
    linked = 0
    for out in stage.outs:
        if not out.use_cache or out.obj is None:
            continue
        if out.hash_info.isdir:
            files = [
                (os.path.join(out.fs_path, *key), hash_info.value)
                for key, (_, hash_info) in out.obj.iteritems()
                if hash_info is not None and not hash_info.isdir
            ]
        else:
            files = [(out.fs_path, out.hash_info.value)]
        for path, oid in files:
            size = os.stat(path).st_size
            target = out.cache.oid_to_path(oid)
            if size < min_bytes or (os.path.exists(target) and os.path.samefile(path, target)):
                continue
            part = f"{target}.{os.getpid()}.link"
            try:
                os.makedirs(os.path.dirname(target), exist_ok=True)
                os.link(path, part)
                os.replace(part, target)
            except OSError:
                if os.path.lexists(part):
                    os.unlink(part)
                continue
            out.cache.protect(target)
            linked += size
    return linked
