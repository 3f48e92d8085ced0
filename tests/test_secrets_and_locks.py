"""A whole run as a user makes it, with a (fake) Kaggle token in the environment: the dataset comes
from Kaggle (the real client, against a fake Kaggle on loopback) and the token reaches no file the
run leaves (git, the DVC cache, data/, results/, logs/, .snakemake/, the caches in the home folder)
and no process's command line. While Snakemake runs, a second Snakemake and a `dvc repro` are
refused; while `dvc repro` runs, Snakemake is refused; and each run ends as if alone."""

import base64
import io
import os
import re
import secrets
import subprocess
import threading
import time
import zipfile
from pathlib import Path

import pytest
import yaml
from PIL import Image

from tests.conftest import make_project, planned_jobs, run
from tests.fake_kaggle import FakeKaggle

pytestmark = pytest.mark.slow
USER = "specimen-tester"
TOKEN = "fake" + secrets.token_hex(16)  # a Kaggle key's shape: 32 hex digits
PARAMS = {
    "dataset.source": "kaggle:owner/tiny-digits",
    "image.size": [24, 24],
    "train.epochs": 2,
    "baselines.models": ["logistic_regression"],
    "explain.steps": 4,
    "explain.classes": 3,
}


def tiny_digits() -> bytes:
    """sklearn's scans of 0, 1 and 2 as a Kaggle-style zip with train/valid/test folders."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    buf, seen = io.BytesIO(), {}
    with zipfile.ZipFile(buf, "w") as zf:
        for image, label in zip(digits.images, digits.target):
            if label > 2:
                continue
            n = seen[label] = seen.get(label, -1) + 1
            split = "train" if n < 30 else "valid" if n < 38 else "test" if n < 46 else None
            if split:
                png = io.BytesIO()
                Image.fromarray((255 - image * 15).astype("uint8")).resize((32, 32)).save(png, "PNG")
                zf.writestr(f"tiny-digits/{split}/{label}/{n}.png", png.getvalue())
    return buf.getvalue()


class CommandLines(threading.Thread):
    """Reads every process's command line, over and over, and keeps those that hold `needle`."""

    def __init__(self, needle: str):
        super().__init__(daemon=True)
        self.needle, self.hits, self.seen, self.stop = needle, [], 0, threading.Event()

    def run(self):
        while not self.stop.is_set():
            for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
                try:
                    text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
                except OSError:
                    continue
                self.seen += 1
                if self.needle in text:
                    self.hits.append(text)
            time.sleep(0.05)


def running(project: Path, *words) -> bool:
    """Whether a process working in `project` has a command line that holds all of `words` (e.g. specimen
    train). Only this project's: under pytest-xdist, another test trains at the same time in its own folder."""
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            args = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
            if Path(os.readlink(proc / "cwd")) != project.resolve():
                continue
        except OSError:
            continue
        if all(any(Path(a).name == w or a == w for a in args) for w in words):
            return True
    return False


def wait_for(what, timeout=300):
    end = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def user_run(tmp_path_factory, isolated_home):
    """The run: `snakemake --cores 2 all` with the token in the environment; while it trains,
    a second snakemake and a dvc repro. Then the user commits the project, as after any run."""
    project = make_project(tmp_path_factory.mktemp("secrets") / "project", PARAMS)
    watcher = CommandLines(TOKEN)
    watcher.start()
    with FakeKaggle(tiny_digits()) as server:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KAGGLE_") and k.lower() != "no_proxy"}
        env.update(KAGGLE_USERNAME=USER, KAGGLE_KEY=TOKEN, KAGGLE_API_ENVIRONMENT="LOCALHOST", HTTP_PROXY=server.proxy)
        main = subprocess.Popen(
            ["snakemake", "--cores", "2", "all"],
            cwd=project,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        wait_for(lambda: running(project, "specimen", "train") or main.poll() is not None)
        second = run(["snakemake", "--cores", "1", "all"], project, check=False, env=env)
        repro = run(["dvc", "repro"], project, check=False, env=env)
        training_meanwhile = running(project, "specimen", "train")
        log, _ = main.communicate(timeout=900)
        auth = [r["auth"] for r in server.requests if r.get("auth")]
    watcher.stop.set()
    watcher.join()
    assert main.returncode == 0, log[-4000:]
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-q", "-m", "a run, and its dvc.lock"], project)
    return {
        "project": project,
        "log": log,
        "second": second,
        "repro": repro,
        "watcher": watcher,
        "training_meanwhile": training_meanwhile,
        "auth": auth,
        "home": isolated_home,
    }


def test_the_token_was_used_and_is_in_no_file_and_no_command_line(user_run):
    project = user_run["project"]
    assert user_run["auth"] and all(a.startswith("Basic ") for a in user_run["auth"])  # the client sent it
    assert yaml.safe_load((project / "data/raw/source.json").read_text())["source"] == "kaggle:owner/tiny-digits"
    forms = [TOKEN.encode(), base64.b64encode(f"{USER}:{TOKEN}".encode()), base64.b64encode(TOKEN.encode())]
    searched, found, control = 0, [], []
    for root in (project, user_run["home"]):  # git, .dvc/cache, data, results, logs, .snakemake; caches
        for path in root.rglob("*"):
            if path.is_file() and not path.is_symlink():
                searched += 1
                data = path.read_bytes()
                found += [str(path) for form in forms if form in data]
                control += [path.relative_to(root).as_posix()] if b"Tiny shapes" in data else []
    # the same search does find what Kaggle's answer put in files: the dataset's title
    assert "data/raw/source.json" in control and any(c.startswith(".dvc/cache/") for c in control)
    # git's objects are compressed: read them through git
    objects = subprocess.run(
        ["git", "cat-file", "--batch-all-objects", "--batch"], cwd=project, capture_output=True, check=True
    ).stdout
    assert b"a run, and its dvc.lock" in objects and b"dvc.lock" in objects
    found += [f"git object ({form.decode()})" for form in forms if form in objects]
    assert searched > 500 and {"data", "results", "logs", ".snakemake", ".dvc", ".git"} <= {
        p.name for p in project.iterdir()
    }
    assert found == []
    assert (project / ".dvc/cache").is_dir() and any((project / ".dvc/cache").rglob("*"))
    watcher = user_run["watcher"]
    assert watcher.seen > 1000 and watcher.hits == []


def test_a_second_snakemake_and_a_dvc_repro_are_refused_while_snakemake_runs(user_run):
    assert user_run["training_meanwhile"]  # both were tried while the run was still training
    second, repro = user_run["second"], user_run["repro"]
    assert second.returncode != 0 and "Directory cannot be locked" in second.stdout + second.stderr
    assert repro.returncode != 0 and "Unable to acquire lock" in repro.stdout + repro.stderr
    assert "Running stage" not in repro.stdout
    # and the run ended as if alone: everything built, recorded by DVC, nothing to do for either tool
    project = user_run["project"]
    assert "up to date" in run(["dvc", "status", "dvc.yaml"], project).stdout
    assert planned_jobs(project) == set()


def test_snakemake_is_refused_while_dvc_repro_runs(user_run):
    project = user_run["project"]
    params = project / "params.yaml"
    params.write_text(params.read_text().replace("epochs: 2", "epochs: 3", 1))
    repro = subprocess.Popen(["dvc", "repro"], cwd=project, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wait_for(lambda: running(project, "specimen", "train") or repro.poll() is not None)
    refused = run(["snakemake", "--cores", "1", "all"], project, check=False)
    log, _ = repro.communicate(timeout=600)
    assert repro.returncode == 0, log[-3000:]
    said = [line for line in refused.stderr.splitlines() if line.startswith("specimen:")]
    assert refused.returncode == 1 and len(said) == 1, refused.stdout + refused.stderr
    assert re.fullmatch(
        r"specimen: DVC is running in this project \(dvc repro, dvc exp run, dvc pull\.\.\.\) and holds "
        r"its lock( \(PID \d+: dvc repro\))?: wait for it to finish, then run snakemake again",
        said[0],
    )
    assert "localrule" not in refused.stdout + refused.stderr  # it ran nothing
    assert set(re.findall(r"Running stage '([^']+)'", log)) == {
        "train@small_cnn",
        "evaluate@small_cnn",
        "explain@small_cnn",
        "report",
    }
    assert "up to date" in run(["dvc", "status", "dvc.yaml"], project).stdout
