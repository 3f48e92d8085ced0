"""The whole DAG on the embedded demo, through the real `snakemake` and the real `dvc repro`.

One project runs under Snakemake and another under DVC, in two folders: both must produce
byte-identical data artefacts, each tool must then see the other's work as up to date, and a
change to train.* must re-run only train, evaluate, explain and report. The optional tune stage runs only
when asked for, and `dvc exp run -S` sweeps (in the workspace and queued) re-run only what they touch.
"""

import json
import re
import shutil
import subprocess
import zipfile
from html import unescape as html_unescape
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from tests.conftest import artefacts, make_project, planned_jobs, run
from tests.test_figures import png_title
from tests.test_train_evaluate import FIGURES

pytestmark = pytest.mark.slow
FAST = {"train.epochs": 3, "tune.trials": 2, "tune.epochs": 1}
DATA_STAGES = {"download", "extract", "ingest", "preprocess", "embed", "clean", "balance"}


def data_files(project: Path) -> dict:
    """Every file under data/, less Snakemake's empty completion markers (which .dvcignore hides)."""
    return {
        p.relative_to(project).as_posix(): p.read_bytes()
        for p in sorted((project / "data").rglob("*"))
        if p.is_file() and p.name != ".snakemake_timestamp"
    }


def dvc_would_run(project: Path) -> set:
    out = run(["dvc", "repro", "--dry"], project).stdout
    return set(re.findall(r"Running stage '([^']+)'", out))


@pytest.fixture(scope="module")
def snakemade(tmp_path_factory):
    project = make_project(tmp_path_factory.mktemp("a") / "specimen", FAST)
    run(["snakemake", "--cores", "2", "all"], project, timeout=900)
    return project


@pytest.fixture(scope="module")
def dvc_made(tmp_path_factory):
    project = make_project(tmp_path_factory.mktemp("b") / "elsewhere", FAST)
    run(["dvc", "repro"], project, timeout=900)
    return project


def test_snakemake_builds_every_artefact_and_accounts_for_every_file(snakemade):
    p = snakemade
    summary = json.loads((p / "results/report/summary.json").read_text())
    with zipfile.ZipFile(p / "data/raw/demo.zip") as zf:
        n_files = len([n for n in zf.namelist() if not n.endswith("/")])
    manifest = pd.read_csv(p / "data/interim/manifest.csv")
    index = pd.read_csv(p / "data/processed/index.csv")
    rejects = pd.read_csv(p / "data/processed/rejects.csv")
    kept = pd.read_csv(p / "data/clean/index.csv")
    removed = pd.read_csv(p / "data/clean/removed.csv")
    assert len(manifest) == n_files == summary["images"]["source_files"]
    assert len(index) + len(rejects) == n_files
    assert len(kept) + len(removed) == len(index)
    assert set(rejects.reason.str.split(":").str[0]) >= {"not an image", "empty file"}
    assert {"duplicate", "leak", "low_information"} <= set(removed.reason)
    assert (kept["flags"].fillna("").str.contains("outlier")).sum() >= 20  # histograms flag outliers, keep them
    metrics = json.loads((p / "results/evaluation/small_cnn/metrics.json").read_text())
    assert summary["models"]["small_cnn"]["accuracy"] == metrics["accuracy"]
    # the headline: chosen on valid, scored on test, beside the best baseline chosen the same way
    head, clean_summary = summary["headline"], json.loads((p / "data/clean/summary.json").read_text())
    baselines = pd.read_csv(p / "results/baselines/summary.csv")
    top = baselines.sort_values("valid_macro_f1", ascending=False, kind="stable").iloc[0]
    assert head["chosen"] == summary["best_model"] == "small_cnn" and head["chosen_on"] == "valid macro_f1"
    assert head["valid"] == metrics["valid"]["macro_f1"] and head["test_macro_f1"] == metrics["macro_f1"]
    assert head["best_baseline"]["valid"] == top.valid_macro_f1
    assert head["best_baseline"]["test_accuracy"] == top.accuracy
    assert head["images"]["kept"] == len(kept) and head["images"]["removed"] == len(removed)
    assert head["images"]["flagged_by_kind"] == clean_summary["flagged_by_kind"]
    assert set(head["images"]["galleries"]) == {x.stem for x in (p / "data/clean/gallery").glob("*.png")}
    assert metrics["test_flagged"]["images"] + metrics["test_unflagged"]["images"] == metrics["test_images"]
    assert json.loads((p / "results/all").read_text()) == summary
    assert metrics["test_images"] == (kept.split == "test").sum()
    # what a reader of the model's report relies on: every class named, the counts adding up, figures that say what they show
    out, n_test = p / "results/evaluation/small_cnn", metrics["test_images"]
    classes = json.loads((p / "data/interim/classes.json").read_text())["classes"]
    assert len(classes) == 10 and {"top_3_accuracy", "top_5_accuracy", "expected_calibration_error"} <= set(metrics)
    text = (out / "classification_report.txt").read_text()
    assert all(re.search(rf"^\s*{re.escape(c)}\s", text, re.M) for c in classes), text
    assert pd.read_csv(out / "classification_report.csv")["class"].tolist() == classes + ["macro avg", "weighted avg"]
    # the demo's classes are digits: read as names, not numbers
    matrix = pd.read_csv(out / "confusion_matrix.csv", dtype={"true": str}).set_index("true")
    assert matrix.index.tolist() == classes and matrix.to_numpy().sum() == n_test
    predictions = pd.read_csv(out / "predictions.csv")
    wrong = (predictions.label != predictions.predicted).sum()
    assert len(predictions) == n_test and wrong == n_test - np.trace(matrix.to_numpy())
    calibration = pd.read_csv(out / "calibration.csv")
    assert len(calibration) == 10 and calibration["count"].sum() == n_test
    assert {f: png_title(out / f) for f in FIGURES} == {
        "confusion_matrix.png": f"Confusion matrix, counts (test, n={n_test})",
        "confusion_matrix_normalized.png": f"Confusion matrix, normalised by true class (recall on the diagonal) (test, n={n_test})",
        "f1_per_class.png": "F1 per class, worst first",
        "curves.png": f"Accuracy and loss per epoch, {len(pd.read_csv(p / 'results/models/small_cnn/history.csv'))} epochs",
        "mistakes.png": f"The {min(16, wrong)} most confident mistakes of {wrong} (predicted, confidence; true)",
        "predictions.png": f"{min(24, n_test)} test images: predicted / true (red: wrong)",
        "calibration.png": f"Reliability diagram (expected calibration error {metrics['expected_calibration_error']:.3f})",
    }
    assert (
        png_title(p / "results/report/comparison.png")
        == "Test split: trained models and baselines | Accuracy against train time"
    )
    assert len(list((p / "data/processed/shards").iterdir())) == -(-len(manifest) // 1024)  # a shard per 1024 rows
    assert {x.name for x in (p / "logs/benchmarks").iterdir()} >= {"clean.tsv", "download.tsv", "train", "evaluate"}
    truth = json.loads((p / "data/raw/demo.truth.json").read_text())
    assert len(truth["files"]) == n_files


def test_after_snakemake_dvc_is_clean_and_nothing_reruns(snakemade):
    assert "up to date" in run(["dvc", "status", "dvc.yaml"], snakemade).stdout
    # the whole repository: only the optional stages (tune/dvc.yaml, autoencoder/dvc.yaml), which the default target, all, does not run
    assert set(json.loads(run(["dvc", "status", "--json"], snakemade).stdout)) == {
        "tune/dvc.yaml:tune@small_cnn",
        "autoencoder/dvc.yaml:autoencoder",
    }
    assert not (snakemade / "results/tune").exists()
    assert (snakemade / "dvc.lock").is_file()
    # the optional autoencoder never ran, and `dvc metrics show` does not warn of its metrics.json
    shown = run(["dvc", "metrics", "show"], snakemade)
    assert (
        "failed to load" not in shown.stdout + shown.stderr
        and "results/evaluation/small_cnn/metrics.json" in shown.stdout
    )
    assert planned_jobs(snakemade) == set()
    assert dvc_would_run(snakemade) == set()


def chromium(*args) -> subprocess.CompletedProcess:
    """Debian's chromium, headless (as root it needs --no-sandbox), with time for the page's scripts."""
    assert shutil.which("chromium"), "the report test needs Debian's chromium: apt-get install chromium"
    return subprocess.run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--virtual-time-budget=20000",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )


# Clicks a link of the report as a reader would, and keeps the text the page then shows.
CLICK = """<script>
setTimeout(() => {
  const link = [...document.querySelectorAll("a")].find(a => a.textContent.trim() === %s);
  if (link) link.click();
  setTimeout(() => { document.body.dataset.seen = link ? document.getElementById("app").textContent : "no link"; }, 1500);
}, 3000);
</script>"""


def report_section(html: str, name: str, folder: Path) -> str:
    """The text of the report's page after a click on `name`, as headless Chromium rendered it."""
    page = folder / f"report-{name}.html"
    head, tail = html.rsplit("</body>", 1)  # the page's own end (its scripts hold the string too)
    page.write_text(head + CLICK % json.dumps(name) + "</body>" + tail)
    dom = chromium("--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    return html_unescape(re.search(r'data-seen="([^"]*)"', dom.stdout).group(1))


def test_the_html_report_renders_every_section_in_chromium(snakemade, tmp_path):
    """`snakemake --report` on the finished run, opened in headless Chromium: its scripts draw the
    sections, and clicking each one (as a reader would) lists its figures and tables; a screenshot
    of the front page is not blank."""
    run(["snakemake", "--report", "results/workflow-report.html"], snakemade, timeout=600)
    html = (snakemade / "results/workflow-report.html").read_text()
    expected = {
        "Models": [
            "small_cnn",
            "confusion matrix",
            "confusion matrix, normalised",
            "F1 per class",
            "training curves",
            "confident mistakes",
            "predictions",
            "calibration",
            "metrics",
            "classification report",
            "Grad-CAM",
            "feature maps",
            "activation maximisation",
        ],
        "Comparison": ["models and baselines", "baselines"],
        "Data": [
            "images per class",
            "removed images",
            "gallery: duplicate",
            "gallery: low_information",
            "label issues",
        ],
        "Workflow": ["chosen on the validation split and scored on the test split", "was chosen on its valid macro_f1"],
    }  # results/report/headline.rst, then workflow/report/workflow.rst
    for section, labels in expected.items():
        seen = report_section(html, section, tmp_path)
        for label in labels:
            assert label in seen, f"{section}: {label} not shown"
    shot = tmp_path / "report.png"
    assert (
        chromium(
            f"--screenshot={shot}", "--window-size=1400,1000", (snakemade / "results/workflow-report.html").as_uri()
        ).returncode
        == 0
    )
    with Image.open(shot) as im:
        grey = np.asarray(im.convert("L"))
    assert grey.shape == (1000, 1400) and grey.std() > 10  # drawn, not a blank page


def test_the_tune_stage_runs_when_asked_for_and_dvc_records_it(snakemade):
    target = "results/tune/small_cnn/best_params.yaml"
    out = run(["snakemake", "-n", "--cores", "2", target], snakemade).stdout
    assert set(re.findall(r"^rule (\w+):", out, re.M)) == {"tune"}  # the data and the models are up to date
    run(["snakemake", "--cores", "2", target], snakemade, timeout=600)
    trials = pd.read_csv(snakemade / "results/tune/small_cnn/trials.csv")
    assert len(trials) == 2 and set(trials.status) == {"COMPLETED"}
    assert set(yaml.safe_load((snakemade / target).read_text())) == {
        "learning_rate",
        "small_cnn",
    }  # small_cnn: its dense units and dropout
    assert not (snakemade / "logs/tune/small_cnn").exists()  # the search's state, once the outputs are written
    # Snakemake's dvc-commit recorded it in tune/dvc.lock: DVC has nothing of it to run
    assert set(json.loads(run(["dvc", "status", "--json"], snakemade).stdout)) == {"autoencoder/dvc.yaml:autoencoder"}
    assert "tune@small_cnn" in yaml.safe_load((snakemade / "tune/dvc.lock").read_text())["stages"]
    assert "Running stage" not in run(["dvc", "repro", "--dry", "tune/dvc.yaml"], snakemade).stdout


def test_changing_train_epochs_reruns_only_train_evaluate_explain_report(snakemade):
    params = snakemade / "params.yaml"
    params.write_text(params.read_text().replace("epochs: 3", "epochs: 4"))
    assert planned_jobs(snakemade) == {"train", "evaluate", "explain", "report"}
    # DVC decides as it goes (a dry run only lists the stage whose params changed): run it.
    out = run(["dvc", "repro"], snakemade, timeout=600).stdout
    assert set(re.findall(r"Running stage '([^']+)'", out)) == {
        "train@small_cnn",
        "evaluate@small_cnn",
        "explain@small_cnn",
        "report",
    }
    assert set(re.findall(r"Stage '([^']+)' didn't change, skipping", out)) == DATA_STAGES | {"baselines"}
    assert len(pd.read_csv(snakemade / "results/models/small_cnn/history.csv")) <= 4
    # Snakemake's own records still hold the epochs of its last run of what DVC rebuilt, so it would
    # run them again; `specimen pull` (nothing to fetch) marks what DVC built current for it
    assert planned_jobs(snakemade) == {"train", "evaluate", "explain", "report"}
    assert "12 stages current for Snakemake" in run(["specimen", "pull"], snakemade, timeout=600).stdout
    assert planned_jobs(snakemade) == set() and "up to date" in run(["dvc", "status", "dvc.yaml"], snakemade).stdout


def test_every_artefact_goes_to_a_folder_remote_and_an_ssh_remote_and_comes_back_byte_identical(
    snakemade, tmp_path, isolated_home
):
    """`dvc push` to the remote named in .dvc/config (a local folder, as a shared drive would be), and
    to an SSH remote on a real sshd; a teammate's fresh clone pulls from each and gets every
    artefact of the main DAG, byte for byte, and `dvc status dvc.yaml` is clean there. With
    `specimen pull`, Snakemake too has nothing to do; pulling one model leaves it only the rest."""
    from tests.sshd import sshd

    p = snakemade
    built = artefacts(p)
    # every stage's artefacts, from the listing (the images stay in data/raw's zip) to the model
    assert {"data/raw/demo.zip", "data/extracted/files.csv", "data/processed/index.csv"} <= set(built)
    assert "results/models/small_cnn/model.keras" in built
    run(["dvc", "remote", "add", "--default", "storage", str(tmp_path / "storage")], p)
    run(["git", "add", "-A", ".dvc/config", "dvc.lock", "params.yaml"], p)
    run(["git", "commit", "-q", "-m", "run and remote"], p)
    assert re.search(r"\d+ files? pushed", run(["dvc", "push"], p, timeout=600).stdout)

    def teammate(name: str, *pull) -> Path:
        clone = tmp_path / name
        run(["git", "clone", "-q", str(p), str(clone)], tmp_path)
        run(["dvc", "pull", *pull], clone, timeout=600)
        assert artefacts(clone) == built  # every artefact, byte-identical
        assert "up to date" in run(["dvc", "status", "dvc.yaml"], clone).stdout
        return clone

    plain = teammate("from-folder")
    # DVC keeps no file times: after a plain `dvc pull`, Snakemake's times call stages stale (which
    # ones depends on the order DVC wrote the files in)...
    assert planned_jobs(plain)
    # ...`specimen pull` pulls, then marks what it pulled current (snakemake --touch, in the DAG's order)
    clone = tmp_path / "specimen-pull"
    run(["git", "clone", "-q", str(p), str(clone)], tmp_path)
    out = run(["specimen", "pull"], clone, timeout=600).stdout
    assert "12 stages current for Snakemake" in out
    assert artefacts(clone) == built and planned_jobs(clone) == set()
    assert "up to date" in run(["dvc", "status", "dvc.yaml"], clone).stdout
    # pulling the model (and what it was trained from) leaves Snakemake only what was not pulled
    clone = tmp_path / "models-only"
    run(["git", "clone", "-q", str(p), str(clone)], tmp_path)
    run(["specimen", "pull", "train@small_cnn"], clone, timeout=600)
    assert (clone / "results/models/small_cnn/model.keras").read_bytes() == built[
        "results/models/small_cnn/model.keras"
    ]
    assert not (clone / "results/evaluation").exists()
    assert planned_jobs(clone) == {"evaluate", "explain", "baselines", "report"}
    with sshd(tmp_path / "sshd", isolated_home) as server:
        url = f"ssh://{server.user}@{server.host}:{server.port}{tmp_path / 'ssh-storage'}"
        run(["dvc", "remote", "add", "ssh", url], p)
        run(["dvc", "remote", "modify", "--local", "ssh", "keyfile", str(server.key)], p)  # a key is personal
        assert re.search(r"\d+ files? pushed", run(["dvc", "push", "-r", "ssh"], p, timeout=600).stdout)
        run(["git", "commit", "-q", "-am", "ssh remote"], p)
        clone = tmp_path / "from-ssh"
        run(["git", "clone", "-q", str(p), str(clone)], tmp_path)
        run(["dvc", "remote", "modify", "--local", "ssh", "keyfile", str(server.key)], clone)
        run(["dvc", "pull", "-r", "ssh"], clone, timeout=600)
        assert artefacts(clone) == built
        assert "up to date" in run(["dvc", "status", "dvc.yaml"], clone).stdout


def test_dvc_repro_gives_byte_identical_data_in_another_folder(snakemade, dvc_made):
    a, b = data_files(snakemade), data_files(dvc_made)
    assert sorted(a) == sorted(b)
    assert {"data/extracted/files.csv", "data/processed/index.csv", "data/clean/index.csv"} <= set(a)
    different = [name for name in a if a[name] != b[name]]
    assert different == []
    # and DVC agrees: the same hashes in both dvc.lock files for every data stage
    lock_a, lock_b = (yaml.safe_load((p / "dvc.lock").read_text())["stages"] for p in (snakemade, dvc_made))
    for stage in ("download", "extract", "ingest", "preprocess", "embed", "clean", "balance"):
        assert lock_a[stage]["outs"] == lock_b[stage]["outs"], stage


def test_after_dvc_repro_snakemake_has_nothing_to_do(dvc_made):
    assert planned_jobs(dvc_made) == set()
    assert not (dvc_made / "results/tune").exists()  # `dvc repro` leaves the optional tune/dvc.yaml alone
    assert json.loads((dvc_made / "results/report/summary.json").read_text())["best_model"] == "small_cnn"


def test_a_configfile_override_reaches_the_stages_and_dvc_records_only_what_it_left_as_params_yaml(tmp_path):
    project = make_project(tmp_path / "p")
    preset = yaml.safe_load((project / "params.yaml").read_text())
    preset["image"]["size"] = [32, 40]
    (project / "preset.yaml").write_text(yaml.safe_dump(preset))
    out = run(["snakemake", "data/processed", "--cores", "2", "--configfile", "preset.yaml"], project, timeout=600)
    assert json.loads((project / "data/processed/meta.json").read_text())["size"] == [32, 40]
    assert "records only the stages they did not change" in out.stdout + out.stderr
    # download, extract and ingest do not read image.size: recorded; preprocess was built with [32, 40]
    assert set(yaml.safe_load((project / "dvc.lock").read_text())["stages"]) == {"download", "extract", "ingest"}
    assert "preprocess" in json.loads(run(["dvc", "status", "--json", "preprocess"], project).stdout)


def experiments(project: Path) -> dict:
    """{name: (train.epochs, metrics of results/evaluation/small_cnn/metrics.json)} from `dvc exp show --json`."""
    shown = json.loads(run(["dvc", "exp", "show", "--json"], project).stdout)
    found = {}
    for baseline in shown:
        for exp in baseline.get("experiments") or []:
            for rev in exp["revs"]:
                data = rev["data"]
                found[rev["name"]] = (
                    data["params"]["params.yaml"]["data"]["train"]["epochs"],
                    data["metrics"]["results/evaluation/small_cnn/metrics.json"]["data"],
                )
    return found


def reran(log: str) -> tuple:
    return (
        set(re.findall(r"Running stage '([^']+)'", log)),
        set(re.findall(r"Stage '([^']+)' didn't change, skipping", log)),
    )


METRICS = {
    "accuracy",
    "macro_f1",
    "weighted_f1",
    "top_3_accuracy",
    "top_5_accuracy",
    "expected_calibration_error",
    "test_images",
    "valid",
    "test_unflagged",
    "test_flagged",
}


def flat(metrics: dict, prefix: str = "") -> dict:
    """Nested metrics as DVC's diff names them: valid.accuracy, test_flagged.images, ..."""
    out = {}
    for key, value in metrics.items():
        if isinstance(value, dict):
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def check_dvc_metrics_and_plots(p: Path, committed: dict):
    """After a workspace experiment: `dvc metrics show` and `diff` against the commit, and `dvc plots
    show` with DVC's templates (the curves of every model, the confusion matrix, evaluate's images)."""
    now = json.loads((p / "results/evaluation/small_cnn/metrics.json").read_text())
    shown = json.loads(run(["dvc", "metrics", "show", "--json"], p).stdout)
    assert shown[""]["data"]["results/evaluation/small_cnn/metrics.json"]["data"] == now
    diff = json.loads(run(["dvc", "metrics", "diff", "--all", "--json"], p).stdout)[
        "results/evaluation/small_cnn/metrics.json"
    ]
    assert set(now) == METRICS and set(diff) == set(flat(now))
    assert all(diff[k]["old"] == flat(committed)[k] and diff[k]["new"] == flat(now)[k] for k in diff)

    plots = json.loads(run(["dvc", "plots", "show", "--json"], p).stdout)["data"]
    curves = plots["results/curves/small_cnn.csv"][0]["content"]
    history = pd.read_csv(p / "results/models/small_cnn/history.csv")
    values = curves["data"]["values"]
    assert {v["field"] for v in values} == {"accuracy", "val_accuracy"} and len(values) == 2 * len(history)
    assert curves["encoding"]["x"]["field"] == "epoch"
    confusion = plots["results/evaluation/small_cnn/predictions.csv"][0]["content"]
    assert len(confusion["data"]["values"]) == now["test_images"]
    encoding = confusion["spec"]["encoding"]  # DVC's confusion template: counts of (label, predicted) pairs
    assert (encoding["x"]["field"], encoding["y"]["field"]) == ("predicted", "label")
    for png in ("confusion_matrix.png", "curves.png", "calibration.png", "mistakes.png"):
        assert plots[f"results/evaluation/small_cnn/{png}"][0]["type"] == "image", png
    run(["dvc", "plots", "show", "--out", str(p.parent / "plots-html")], p)
    page = (p.parent / "plots-html/index.html").read_text()
    assert "vega" in page and "small_cnn/curves.png" in page


def test_dvc_exp_run_sweeps_train_epochs_in_the_workspace_and_queued(dvc_made):
    """Last in this file: it leaves the DVC project with an experiment applied."""
    p = dvc_made
    run(["git", "add", "dvc.lock"], p)  # as a user commits what `dvc repro` recorded
    run(["git", "commit", "-q", "-m", "dvc repro"], p)
    # the model is a DVC model artifact: a version registered as a git tag (as GTO and DVC Studio write
    # them), then fetched by name from the cache as `dvc artifacts get` does in a teammate's clone
    run(["git", "tag", "-a", "small-cnn@v0.1.0", "-m", "small-cnn v0.1.0"], p)
    run(["dvc", "artifacts", "get", ".", "small-cnn", "-o", str(p.parent / "fetched.keras")], p)
    assert (p.parent / "fetched.keras").read_bytes() == (p / "results/models/small_cnn/model.keras").read_bytes()
    touched = {"train@small_cnn", "evaluate@small_cnn", "explain@small_cnn", "report"}
    committed = json.loads((p / "results/evaluation/small_cnn/metrics.json").read_text())
    out = run(["dvc", "exp", "run", "-S", "train.epochs=2"], p, timeout=600).stdout
    assert reran(out) == (touched, DATA_STAGES | {"baselines"})
    check_dvc_metrics_and_plots(p, committed)
    ran_with_two = json.loads((p / "results/evaluation/small_cnn/metrics.json").read_text())
    # queued, then run in a temporary copy of the project (one here: each costs a run of train to report)
    run(["dvc", "exp", "run", "--queue", "-S", "train.epochs=choice(4)"], p)  # README's sweep syntax
    run(["dvc", "exp", "run", "--run-all"], p, timeout=900)

    exps = experiments(p)
    assert sorted(epochs for epochs, _ in exps.values()) == [2, 4]
    for name, (epochs, metrics) in exps.items():
        assert set(metrics) == METRICS
        if epochs == 2:  # the one run in the workspace: what it wrote is what DVC lists
            assert metrics == ran_with_two
        else:  # the queued ones: each log says what ran
            assert reran(run(["dvc", "queue", "logs", name], p).stdout) == (touched, DATA_STAGES | {"baselines"}), name
    name = next(n for n, (epochs, _) in exps.items() if epochs == 4)
    run(["dvc", "exp", "apply", name], p)
    assert yaml.safe_load((p / "params.yaml").read_text())["train"]["epochs"] == 4
    assert json.loads((p / "results/evaluation/small_cnn/metrics.json").read_text()) == exps[name][1]
    assert len(pd.read_csv(p / "results/models/small_cnn/history.csv")) <= 4
