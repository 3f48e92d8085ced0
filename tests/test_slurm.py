"""A real SLURM cluster: Debian's slurm-wlm and munge, started on this machine by
scripts/slurm-local-cluster.sh. The demo DAG runs under workflow/profiles/slurm with every rule a
SLURM job, then scripts/sbatch-dvc.sh runs `dvc repro` as one GPU job after a params change."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.conftest import ROOT, make_project, planned_jobs, run

pytestmark = pytest.mark.slow

# the demo with fewer epochs, as in test_pipeline
FAST = {"train.epochs": 3}
# the local cluster has no accounting storage (no sacct): squeue answers, MinJobAge=3600 keeps
# finished jobs in view; short status intervals keep the test quick; two CPUs on this node
SLURM_ARGS = [
    "--workflow-profile",
    "workflow/profiles/slurm",
    "--slurm-status-command",
    "squeue",
    "--slurm-init-seconds-before-status-checks",
    "2",
    "--seconds-between-status-checks",
    "2",
    "--max-threads",
    "2",
]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    missing = [
        t
        for t in ("munged", "slurmctld", "slurmd", "sbatch")
        if not shutil.which(t) and not Path("/usr/sbin", t).exists()
    ]
    assert not missing, f"{missing} not installed: apt-get install slurm-wlm munge (.ci/run does)"
    folder = tmp_path_factory.mktemp("slurm")
    script = ROOT / "scripts/slurm-local-cluster.sh"
    started = run([str(script), "start", str(folder)], ROOT)
    conf = folder / "slurm.conf"
    assert f"export SLURM_CONF={conf}" in started.stdout
    os.environ["SLURM_CONF"] = str(conf)
    yield folder
    run([str(script), "stop", str(folder)], ROOT, check=False)
    os.environ.pop("SLURM_CONF", None)


def slurm_jobs() -> dict:
    """Every job the cluster still shows (MinJobAge=3600): id -> (comment, state)."""
    out = run(["squeue", "--states=all", "-h", "-o", "%i|%k|%T"], ROOT).stdout
    return {i: (comment, state) for i, comment, state in (line.split("|") for line in out.split())}


@pytest.fixture(scope="module")
def slurm_made(cluster, tmp_path_factory):
    project = make_project(tmp_path_factory.mktemp("c") / "specimen", FAST)
    rules = planned_jobs(project)
    before = set(slurm_jobs())
    # the train rule asks for train.gpus; the cluster's node has one (pretend) GPU, so ask for it
    made = run(["snakemake", "all", *SLURM_ARGS, "--set-resources", "train:gpu=1"], project)
    return project, rules, {i: j for i, j in slurm_jobs().items() if i not in before}, made.stderr


def test_the_demo_dag_completes_with_every_rule_a_slurm_job(slurm_made):
    project, rules, jobs, log = slurm_made
    assert rules >= {"download", "preprocess", "train", "evaluate", "report"}
    # the plugin names each job's rule in its comment: one completed job per rule, nothing else
    ran = sorted(comment.removeprefix("rule_").split("_wildcards_")[0] for comment, _ in jobs.values())
    assert ran == sorted(rules)
    assert {state for _, state in jobs.values()} == {"COMPLETED"}
    assert log.count("has been submitted with SLURM jobid") == len(rules)
    # the profile's mapping reached sbatch: threads -> CPUs, mem_mb, runtime, gpu
    train = next(i for i, (comment, _) in jobs.items() if comment == "rule_train_wildcards_small_cnn")
    shown = run(["scontrol", "show", "job", train], ROOT).stdout
    assert "TresPerJob=gres:gpu:1" in shown, shown
    assert "NumCPUs=2" in shown and "MinMemoryNode=4000M" in shown and "TimeLimit=02:00:00" in shown, shown
    # the model was scored on every clean test image
    metrics = json.loads((project / "results/evaluation/small_cnn/metrics.json").read_text())
    test_rows = pd.read_csv(project / "data/clean/index.csv").query("split == 'test'")
    assert metrics["test_images"] == len(test_rows) > 100
    assert (project / "results/report/summary.json").exists()
    # and it is a finished project like any other: nothing left to plan, DVC agrees
    assert planned_jobs(project) == set()
    assert "up to date" in run(["dvc", "status", "dvc.yaml"], project).stdout


def test_the_sbatch_wrapper_runs_dvc_repro_as_one_gpu_job(slurm_made):
    project = slurm_made[0]
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["train"]["epochs"] = 2
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    # the wrapper's defaults (8 CPUs, 32 GB) are more than this node has: sbatch's options win
    proc = subprocess.run(
        ["sbatch", "--wait", "--parsable", "--cpus-per-task=2", "--mem=8G", str(ROOT / "scripts/sbatch-dvc.sh")],
        cwd=project,
        capture_output=True,
        text=True,
    )
    job = proc.stdout.strip().split(";")[0]
    log = (project / f"specimen-dvc-{job}.log").read_text()
    assert proc.returncode == 0, log[-4000:]
    assert f"job {job} on" in log and "dvc repro (GPUs: 0, CPUs: 2)" in log
    # the params change re-ran training and what follows it, not the data stages
    for stage in ("train@small_cnn", "evaluate@small_cnn", "report"):
        assert f"Running stage '{stage}'" in log, log[-4000:]
    for stage in ("download", "preprocess", "embed", "clean"):
        assert f"Running stage '{stage}'" not in log
    assert "up to date" in run(["dvc", "status", "dvc.yaml"], project).stdout
    history = (project / "results/models/small_cnn/history.csv").read_text().splitlines()
    assert len(history) == 1 + 2
    assert "gres:gpu:1" in run(["scontrol", "show", "job", job], ROOT).stdout


def test_the_wrapper_says_what_to_do_when_submitted_from_elsewhere(cluster, tmp_path):
    proc = subprocess.run(
        ["sbatch", "--wait", "--parsable", "--cpus-per-task=1", "--mem=1G", str(ROOT / "scripts/sbatch-dvc.sh")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    job = proc.stdout.strip().split(";")[0]
    assert proc.returncode == 2
    log = (tmp_path / f"specimen-dvc-{job}.log").read_text().strip()
    assert log == f"sbatch-dvc: no dvc.yaml in {tmp_path}: submit from the project's root (cd to it, then sbatch)"
