"""Shared fixtures. Every cache and config a library might write goes under the test's temp folder."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def training_command(stage: str, params: Path, model: str, tiny: Path, out: Path, work: Path | None = None) -> list:
    """`specimen train` or `specimen tune` of `model` on a tiny dataset made by
    tests.test_train_evaluate.tiny_data (its processed/, clean/ and interim/ folders)."""
    return [
        str(BIN / "specimen"), stage, "--params", str(params), model,
        "--data", str(tiny / "processed"), "--index", str(tiny / "clean/index.csv"),
        "--classes", str(tiny / "interim/classes.json"), "--train", str(tiny / "clean/train.csv"),
        "--weights", str(tiny / "clean/class_weights.json"), "--out", str(out),
    ] + (["--work", str(work)] if work is not None else [])  # fmt: skip


def model_command(stage: str, params: Path, model_dir: Path, tiny: Path, out: Path) -> list:
    """The arguments of `specimen evaluate|explain|autoencoder` (after `specimen`): a trained model's
    folder and a tiny dataset made by tests.test_train_evaluate.tiny_data."""
    return [
        stage, "--params", str(params), str(model_dir),
        "--data", str(tiny / "processed"), "--index", str(tiny / "clean/index.csv"),
        "--classes", str(tiny / "interim/classes.json"), "--out", str(out),
    ]  # fmt: skip


class Killed(BaseException):
    """Stands for a SIGKILL at one exact point of a test (Keras and KerasTuner catch Exception, not this)."""


def pytest_xdist_auto_num_workers(config):
    """`-n auto`: one worker more than the cores (then --maxprocesses). Much of the suite waits on its
    subprocesses (snakemake, dvc, SLURM, sshd): on two cores, two workers kept 1.25 cores busy."""
    return (os.cpu_count() or 1) + 1


def isolated_env(home: Path) -> dict:
    """The environment that keeps Keras, matplotlib, DVC, Snakemake and XDG caches (and git's
    identity) under `home`, nothing in the real home; the benches use it too."""
    return {
        "HOME": str(home),
        "KERAS_HOME": str(home / "keras"),
        "MPLCONFIGDIR": str(home / "mpl"),
        "DVC_SITE_CACHE_DIR": str(home / "dvc-site"),
        "DVC_GLOBAL_CONFIG_DIR": str(home / "dvc-global"),
        "DVC_NO_ANALYTICS": "1",
        "XDG_CACHE_HOME": str(home / "cache"),
        "XDG_CONFIG_HOME": str(home / "config"),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "GIT_AUTHOR_NAME": "test",
        "GIT_AUTHOR_EMAIL": "test@example.org",
        "GIT_COMMITTER_NAME": "test",
        "GIT_COMMITTER_EMAIL": "test@example.org",
    }


@pytest.fixture(autouse=True, scope="session")
def isolated_home(tmp_path_factory):
    """Keras, matplotlib, DVC, Snakemake and XDG caches in a temp folder; nothing in the real home."""
    home = tmp_path_factory.mktemp("home")
    env = isolated_env(home)
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield home
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def run(cmd, cwd, check=True, **kw):
    """Run a command in `cwd`; on failure show its output."""
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


# Optional stages: rules no default target needs, whose DVC stages live in a dvc.yaml of their own
# (that `dvc repro` leaves alone); DVC names such a stage after its file.
OPTIONAL = {"tune": "tune/dvc.yaml", "autoencoder": "autoencoder/dvc.yaml"}


def snakemake_jobs(workdir: Path, targets=(), forceall=False) -> dict:
    """{job, named as DVC names its stage: {cmd, inputs, outputs}} of what `snakemake -n [targets]`
    would run (with --forceall: every job the targets need)."""
    out = run(
        ["snakemake", "-n", "-p", "--cores", "1", *(["--forceall"] if forceall else []), *targets], workdir
    ).stdout
    jobs = {}
    for block in re.split(r"\n(?:local)?rule ", out)[1:]:
        rule = block.split(":", 1)[0]
        if rule == "all":
            continue
        fields = dict(re.findall(r"^    (input|output|wildcards): (.*)$", block, re.M))
        cmd = re.search(r"^Shell command: (.*)$", block, re.M)
        name = rule
        if "wildcards" in fields:
            name += "@" + fields["wildcards"].split("=", 1)[1]
        if rule in OPTIONAL:
            name = f"{OPTIONAL[rule]}:{name}"
        jobs[name] = {
            # Snakemake adds its log redirect; the command itself is what DVC runs.
            "cmd": " ".join(re.sub(r"\s*> \S+ 2>&1$", "", cmd.group(1)).split()) if cmd else None,
            "inputs": set(fields.get("input", "").split(", ")) - {""},
            "outputs": set(fields["output"].split(", ")),
        }
    return jobs


def planned_jobs(project: Path) -> set:
    """The rules `snakemake -n all` would run in `project`."""
    out = run(["snakemake", "-n", "--cores", "2", "all"], project).stdout
    return set(re.findall(r"^rule (\w+):", out, re.M)) - {"all"}


def artefacts(project: Path) -> dict:
    """{path: bytes} of every file DVC versions in the main DAG (its outs, as dvc.lock lists them)."""
    lock = yaml.safe_load((project / "dvc.lock").read_text())["stages"]
    found = {}
    for stage in lock.values():
        for out in stage.get("outs", []):
            path = project / out["path"]
            files = [path] if path.is_file() else sorted(f for f in path.rglob("*") if f.is_file())
            found.update(
                {f.relative_to(project).as_posix(): f.read_bytes() for f in files if f.name != ".snakemake_timestamp"}
            )
    return found


def set_dotted(params: dict, changes: dict) -> dict:
    """Set {"train.epochs": 5, ...} in a nested params dict, in place; return it."""
    for dotted, value in changes.items():
        *path, key = dotted.split(".")
        node = params
        for p in path:
            node = node[p]
        node[key] = value
    return params


def make_project(dest: Path, params_update=None) -> Path:
    """A copy of the project (a git + DVC repo), with optional changes to params.yaml."""
    dest.mkdir(parents=True, exist_ok=True)
    listed = run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], ROOT).stdout
    for name in filter(None, listed.split("\0")):
        if name == "dvc.lock":  # a local run's record, never committed here
            continue
        if (ROOT / name).is_file():  # what a clone would hold (less files deleted but not yet committed)
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    if params_update:
        params = set_dotted(yaml.safe_load((dest / "params.yaml").read_text()), params_update)
        (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["git", "init", "-q"], dest)
    run(["git", "add", "-A"], dest)
    run(["git", "commit", "-q", "-m", "project"], dest)
    return dest


@pytest.fixture
def project(tmp_path):
    return make_project(tmp_path / "project")
