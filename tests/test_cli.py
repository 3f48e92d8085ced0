"""The `specimen` command: help that answers, and bad params as one line naming the key."""

import pytest
import yaml

from tests.conftest import ROOT, make_project, run

STAGES = [
    "download",
    "extract",
    "ingest",
    "preprocess",
    "embed",
    "clean",
    "balance",
    "train",
    "evaluate",
    "explain",
    "baselines",
    "tune",
    "report",
    "predict",
    "autoencoder",
    "search",
    "pull",
]


def test_help_lists_every_stage_and_each_stage_says_what_it_reads_and_writes(tmp_path):
    top = run(["specimen", "--help"], tmp_path).stdout
    for stage in STAGES:
        assert f"    {stage}" in top
    train = run(["specimen", "train", "--help"], tmp_path).stdout
    assert "--weights" in train and "class weights" in train.lower() and "early stopping" in train.lower()


def params_with(tmp_path, change):
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    change(params)
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    (tmp_path / "workflow/schemas").mkdir(parents=True)
    (tmp_path / "workflow/schemas/params.schema.yaml").write_bytes(
        (ROOT / "workflow/schemas/params.schema.yaml").read_bytes()
    )
    return path


@pytest.mark.parametrize(
    "change, words",
    [
        (lambda p: p["train"].update(epoch=3), ["train", "unknown key 'epoch'", "epochs"]),
        (lambda p: p["train"].update(epochs=0), ["train.epochs", "minimum of 1"]),
        (lambda p: p["train"].update(models=["resnet"]), ["train.models[0]", "'resnet'", "small_cnn"]),
        (lambda p: p["image"].update(size=[48]), ["image.size"]),
        (lambda p: p["dataset"].update(source="kaggle:no-slash"), ["dataset.source", "kaggle:OWNER/SLUG"]),
        (
            lambda p: p["dataset"].update(split={"train": 0.5, "valid": 0.2, "test": 0.2}),
            ["dataset.split", "add up to 0.9"],
        ),
        (lambda p: p.update(sed=1), ["unknown key 'sed'", "seed"]),
    ],
)
def test_bad_params_are_one_line_naming_the_key(tmp_path, change, words):
    params = params_with(tmp_path, change)
    proc = run(["specimen", "balance", "--params", str(params), "in.csv", "out.json"], tmp_path, check=False)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    for w in words:
        assert w in lines[0]


def test_missing_input_is_an_error_not_a_traceback(tmp_path):
    params = params_with(tmp_path, lambda p: None)
    proc = run(["specimen", "download", "--params", str(params), str(tmp_path / "raw")], tmp_path, check=False)
    assert proc.returncode == 0  # the demo needs nothing
    bad = params_with(tmp_path / "x", lambda p: p["dataset"].update(source="local:/nope.zip"))
    proc = run(["specimen", "download", "--params", str(bad), str(tmp_path / "raw2")], tmp_path, check=False)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "no such file" in proc.stderr


def test_snakemake_validates_params_before_running(tmp_path):
    project = make_project(tmp_path / "p", {"train.epochs": 0})
    proc = run(["snakemake", "-n", "--cores", "1"], project, check=False)
    assert proc.returncode != 0 and "epochs" in proc.stdout + proc.stderr
