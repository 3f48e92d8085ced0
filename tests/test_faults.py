"""Faults a running pipeline meets. A stage SIGKILLed part-way (download, preprocess, embed), as a
scheduler kills a job (its whole process group), runs again to the very bytes of an uninterrupted
run and leaves nothing behind; a disk that fills up while shards are written is a one-line error
with nothing half-written. (Training killed after an epoch resumes at the next one:
tests/test_training.py::test_a_sigkilled_training_resumes_after_its_last_finished_epoch.)"""

import os
import random
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import BIN, run
from tests.fake_kaggle import FakeKaggle
from tests.test_cli import params_with
from tests.test_download_remote import SECRET, kaggle_env

SHM = Path("/dev/shm")


def files(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def specimen(project: Path, *args, env=None):
    return run([str(BIN / "specimen"), *args], project, env=env, timeout=600)


def kill_when(cmd, project: Path, ready, env=None, timeout=180) -> int:
    """Start `cmd` in its own process group and SIGKILL the whole group once ready() holds;
    the process must not have ended first. Returns the killed process's id."""
    with open(project / "killed.log", "w") as log:
        proc = subprocess.Popen(cmd, cwd=project, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    end = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, (
            f"it ended before it could be killed:\n{(project / 'killed.log').read_text()[-2000:]}"
        )
        assert time.monotonic() < end, "not ready in time"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return proc.pid


def data_project(path: Path) -> Path:
    """A project folder whose params.yaml makes small shards and a slow enough embedding to kill."""
    params_with(
        path,
        lambda p: (
            p["preprocess"].update(shard_size=64),
            p["embed"].update(extractor="mobilenetv2", weights="none", input_size=[96, 96], batch_size=32),
        ),
    )
    return path


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The demo's data stages up to embed, once, uninterrupted."""
    p = data_project(tmp_path_factory.mktemp("reference") / "p")
    specimen(p, "download", "data/raw")
    specimen(p, "extract", "data/raw", "data/extracted")
    specimen(p, "ingest", "data/extracted", "data/interim")
    specimen(p, "preprocess", "data/interim/manifest.csv", "data/extracted", "data/processed")
    specimen(p, "embed", "data/processed", "data/features/mobilenetv2.npz")
    return p


def upstream_of(reference: Path, dest: Path, *folders) -> Path:
    p = data_project(dest)
    for folder in folders:
        shutil.copytree(reference / "data" / folder, p / "data" / folder)
    return p


def test_a_download_killed_mid_stream_runs_again_to_the_same_bytes(tmp_path):
    payload = random.Random(0).randbytes(3_000_000)
    source = lambda p: p["dataset"].update(source="kaggle:owner/tiny-shapes")  # noqa: E731
    with FakeKaggle(payload, "stall_once") as server:
        env = kaggle_env(tmp_path, server, KAGGLE_USERNAME="me", KAGGLE_KEY=SECRET)
        p = tmp_path / "killed"
        params_with(p, source)
        kill_when([str(BIN / "specimen"), "download", "data/raw"], p, server.half_sent.is_set, env)
        assert [x.name for x in (p / "data").iterdir()] == [next((p / "data").glob(".raw.tmp-*")).name]  # no data/raw
        specimen(p, "download", "data/raw", env=env)  # the server now sends the whole body
    with FakeKaggle(payload, "ok") as server:
        q = tmp_path / "uninterrupted"
        params_with(q, source)
        specimen(q, "download", "data/raw", env=kaggle_env(tmp_path, server, KAGGLE_USERNAME="me", KAGGLE_KEY=SECRET))
    assert files(p / "data/raw") == files(q / "data/raw")
    assert (p / "data/raw/tiny-shapes.zip").read_bytes() == payload
    assert [x.name for x in (p / "data").iterdir()] == ["raw"]  # the killed run's temporary folder is gone


def test_a_preprocess_killed_between_shards_runs_again_to_the_same_bytes(reference, tmp_path):
    p = upstream_of(reference, tmp_path / "p", "raw", "extracted", "interim")
    cmd = [str(BIN / "specimen"), "preprocess", "data/interim/manifest.csv", "data/extracted", "data/processed"]
    pid = kill_when(cmd, p, lambda: any(p.glob("data/.processed.tmp-*/shards/*")))
    assert not (p / "data/processed").exists()  # what it wrote is in its temporary folder only
    assert list(SHM.glob(f"specimen-preprocess-{pid}-*")) or not SHM.is_dir()  # and its scratch memory
    specimen(p, *cmd[1:])
    assert files(p / "data/processed") == files(reference / "data/processed")
    assert not list(p.glob("data/.processed.tmp-*")) and not list(SHM.glob(f"specimen-preprocess-{pid}-*"))


def test_an_embed_killed_mid_way_runs_again_to_the_same_bytes(reference, tmp_path):
    p = upstream_of(reference, tmp_path / "p", "processed")
    cmd = [str(BIN / "specimen"), "embed", "data/processed", "data/features/mobilenetv2.npz"]
    progress = re.compile(r"embed mobilenetv2:\s+\d+%\|[^|]*\| *[1-9]\d*/")  # tqdm: some images embedded

    kill_when(cmd, p, lambda: bool(progress.search((p / "killed.log").read_text(errors="replace"))))
    # embed writes its features as they come, into a temporary file: nothing under the output's name
    left = [x.name for x in (p / "data/features").iterdir()]
    assert len(left) == 1 and left[0].startswith(".mobilenetv2.tmp-"), left
    specimen(p, *cmd[1:])
    assert files(p / "data/features") == files(reference / "data/features")  # the killed run's file is gone


def test_a_disk_that_fills_up_while_shards_are_written_is_one_line_and_keeps_nothing(reference, tmp_path):
    """preprocess writes its shards to a 1 MiB tmpfs (a mount namespace of its own, so no root is
    needed): the third shard does not fit."""
    assert shutil.which("unshare"), "this test needs util-linux's unshare"
    p = upstream_of(reference, tmp_path / "p", "raw", "extracted", "interim")
    disk = p / "small-disk"
    disk.mkdir()
    script = (
        'mount -t tmpfs -o size=1m specimen-full "$1" || exit 99; '
        f'"{BIN / "specimen"}" preprocess data/interim/manifest.csv data/extracted "$1/processed"; '
        'echo "exit=$?"; echo "left:"; ls -A "$1"'
    )
    proc = subprocess.run(
        ["unshare", "--mount", "--map-root-user", "sh", "-c", script, "sh", str(disk)],
        cwd=p,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "exit=2" in proc.stdout, proc.stdout + proc.stderr
    assert proc.stdout.split("left:")[1].split() == []  # no processed/, no temporary folder: nothing half-written
    said = [line for line in proc.stderr.splitlines() if line.startswith("specimen preprocess:")]
    assert "Traceback" not in proc.stderr and len(said) == 1, proc.stderr[-3000:]
    assert re.fullmatch(
        r"specimen preprocess: error: no space left on device writing \S*small-disk/processed: "
        r"nothing was kept; free some space \(or move the project to a larger disk\) and run it again",
        said[0],
    )


def test_a_dev_shm_too_small_for_the_image_buffers_falls_back_to_disk_with_the_same_bytes(reference, tmp_path):
    """A container's /dev/shm (64 MB in Docker) can be smaller than preprocess's two chunk buffers:
    here a 256 KiB tmpfs on /dev/shm (a mount namespace of its own) against two 432 KiB buffers.
    preprocess says so in a line, puts them on disk, and writes the very shards of a normal run."""
    assert shutil.which("unshare"), "this test needs util-linux's unshare"
    p = upstream_of(reference, tmp_path / "p", "raw", "extracted", "interim")
    script = (
        "mount -t tmpfs -o size=256k specimen-small-shm /dev/shm || exit 99; "
        f'"{BIN / "specimen"}" preprocess data/interim/manifest.csv data/extracted data/processed; echo "exit=$?"'
    )
    proc = subprocess.run(
        ["unshare", "--mount", "--map-root-user", "sh", "-c", script],
        cwd=p,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "exit=0" in proc.stdout, proc.stdout + proc.stderr
    note = [line for line in proc.stderr.splitlines() if line.startswith("preprocess: /dev/shm")]
    assert len(note) == 1 and re.fullmatch(
        r"preprocess: /dev/shm has no room for two 0 MiB image buffers \(a container's default /dev/shm is 64 MB\): "
        r"using \S+ on disk instead",
        note[0],
    ), proc.stderr[-2000:]
    assert files(p / "data/processed") == files(reference / "data/processed")


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def kill_worker(proc: subprocess.Popen, worker: int, stage: str) -> tuple[str, list[str]]:
    """SIGKILL one worker of `proc` (a `specimen <stage>`) as the out-of-memory killer would; the stage
    must end within 30 s with exit status 2 and no traceback. Returns (its stderr, its own lines)."""
    os.kill(worker, signal.SIGKILL)
    killed = time.monotonic()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and time.monotonic() - killed < 30, err[-2000:]
    assert "Traceback" not in err, err[-2000:]
    return err, [line for line in err.splitlines() if line.startswith(f"specimen {stage}:")]


def test_a_killed_decoding_worker_stops_preprocess_in_one_line_within_seconds(reference, tmp_path):
    """As the out-of-memory killer would: one of preprocess's decoding workers is SIGKILLed part-way.
    The stage ends within seconds (multiprocessing.Pool waited forever for the dead worker's images)
    with a one-line error that says what to do, and keeps nothing."""
    p = upstream_of(reference, tmp_path / "p", "raw", "extracted", "interim")
    cmd = [str(BIN / "specimen"), "preprocess", "data/interim/manifest.csv", "data/extracted", "data/processed"]
    proc = subprocess.Popen(cmd, cwd=p, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    end = time.monotonic() + 60
    while not list(p.glob("data/.processed*/shards/*.npy")):  # the first of 24 shards written: part-way
        assert proc.poll() is None and time.monotonic() < end, "preprocess ended before a worker could be killed"
        time.sleep(0.002)
    workers = children(proc.pid)
    assert workers and proc.poll() is None
    err, said = kill_worker(proc, workers[0], "preprocess")
    assert said == [
        "specimen preprocess: error: a decoding worker died part-way (killed by the out-of-memory killer or a "
        "signal, see dmesg): nothing was kept; give the job more memory (Snakemake: --resources mem_mb), or lower "
        "preprocess.shard_size or the number of workers (OMP_NUM_THREADS), and run it again"
    ], err[-2000:]
    assert not (p / "data/processed").exists() and not list((p / "data").glob(".processed*"))


def test_a_killed_properties_worker_stops_clean_in_one_line_within_seconds(reference, tmp_path):
    """The same for clean's image-property workers: a SIGKILLed worker ends the stage within seconds
    in one line that says what to do, and nothing of data/clean is written."""
    p = upstream_of(reference, tmp_path / "p", "processed", "features")
    cmd = [str(BIN / "specimen"), "clean", "data/processed", "data/features/mobilenetv2.npz", "data/clean"]
    env = {**os.environ, "OMP_NUM_THREADS": "2"}  # two workers, whatever the machine
    proc = subprocess.Popen(cmd, cwd=p, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    end = time.monotonic() + 60
    while not (workers := children(proc.pid)):
        assert proc.poll() is None and time.monotonic() < end, "clean ended before a worker could be killed"
        time.sleep(0.002)
    err, said = kill_worker(proc, workers[0], "clean")
    assert said == [
        "specimen clean: error: a worker computing image properties died part-way (killed by the out-of-memory "
        "killer or a signal, see dmesg): nothing was written; give the job more memory (Snakemake: --resources "
        "mem_mb) or fewer threads (OMP_NUM_THREADS), and run it again"
    ], err[-2000:]
    assert not (p / "data/clean").exists()
