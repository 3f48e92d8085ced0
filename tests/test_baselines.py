"""baselines on a tiny two-class dataset built here: files, summary, known answers, determinism."""

import json
import warnings

import cv2
import numpy as np
import pandas as pd
import pytest

from specimen import SpecimenError
from specimen.artefacts import write_npz
from specimen.clean.clean import clean
from specimen.clean.embed import embed
from specimen.data.preprocess import preprocess
from specimen.report.baselines import COLUMNS, baselines, stratified_subsample
from tests.conftest import run
from tests.test_clean import clean_params
from tests.test_cli import params_with
from tests.test_stages import prepared

# a baselines section as params.yaml has it, with an MLP and a forest small enough for 36 training images
FAST = {
    "models": ["logistic_regression", "mlp", "linear_svm", "random_forest"],
    "inputs": ["pixels", "features"],
    "pixels": {"size": [16, 16]},
    "max_train_images": 20000,
    "logistic_regression": {"C": 1.0, "max_iter": 1000},
    "mlp": {"hidden": [16], "max_iter": 50},
    "linear_svm": {"C": 1.0, "max_iter": 5000},
    "random_forest": {"trees": 10, "max_depth": None},
}
SEED = 5


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """30 discs and 30 squares (18 + 18 train, 6 + 6 test) processed, embedded (colour histograms:
    the two classes have different colours) and cleaned, as the pipeline does it."""
    tmp = tmp_path_factory.mktemp("baselines")
    manifest, extracted = prepared(tmp, per_class=30)
    preprocess(manifest, extracted, tmp / "processed", {"size": [24, 24], "resize": "pad", "color": "rgb"}, 16)
    embed(tmp / "processed", tmp / "features.npz", "histogram")
    clean(
        tmp / "processed",
        tmp / "features.npz",
        tmp / "clean",
        clean_params(**{"outliers.method": "none", "duplicates.phash_bits": None}),
        0,
    )
    return tmp


def run_baselines(data, out, **changes):
    return baselines(
        data / "processed",
        data / "clean/index.csv",
        data / "interim/classes.json",
        data / "features.npz",
        out,
        {**FAST, **changes},
        SEED,
    )


@pytest.fixture(scope="module")
def results(data):
    out = data / "results"
    return out, run_baselines(data, out)


def test_every_baseline_and_input_writes_its_files_and_one_summary_row(data, results):
    out, s = results
    summary = pd.read_csv(out / "summary.csv")
    assert (
        summary.columns.tolist()
        == COLUMNS
        == [
            "model",
            "input",
            "accuracy",
            "macro_f1",
            "weighted_f1",
            "valid_accuracy",
            "valid_macro_f1",
            "valid_weighted_f1",
            "parameters",
            "train_seconds",
            "images_per_second",
            "test_images",
        ]
    )
    pairs = [(m, i) for i in ("pixels", "features:histogram") for m in FAST["models"]]
    assert list(zip(summary.model, summary["input"])) == pairs and len(pairs) == 8
    assert sorted(p.name for p in (out / "runs").iterdir()) == sorted(
        f"{i}_{m}" for i in FAST["inputs"] for m in FAST["models"]
    )
    for run_dir in (out / "runs").iterdir():
        assert sorted(p.name for p in run_dir.iterdir()) == [
            "classification_report.csv",
            "classification_report.json",
            "classification_report.txt",
            "confusion_matrix.csv",
            "fit.json",
            "metrics.json",
        ]
        metrics = json.loads((run_dir / "metrics.json").read_text())
        assert set(metrics) == {"accuracy", "macro_f1", "weighted_f1", "test_images"}  # no timings
        row = summary[summary["input"].str.split(":").str[0] + "_" + summary.model == run_dir.name].iloc[0]
        assert row[list(metrics)].to_dict() == pytest.approx(metrics)
    n_test = (pd.read_csv(data / "clean/index.csv").split == "test").sum()
    assert n_test == 12 and (summary.test_images == n_test).all() and s["train_images"] == 36
    # train_seconds is rounded to 6 decimals: a fit of a few ms then carries ~1e-4 of relative error
    assert summary.images_per_second.to_numpy() == pytest.approx(36 / summary.train_seconds.to_numpy(), rel=2e-3)
    # learned numbers, two classes: one weight per input value and a bias (16x16 pixels, 512 histogram bins)
    params = dict(zip(zip(summary.model, summary["input"]), summary.parameters))
    assert params["logistic_regression", "pixels"] == params["linear_svm", "pixels"] == 256 + 1
    assert params["logistic_regression", "features:histogram"] == 512 + 1
    assert params["mlp", "pixels"] == 256 * 16 + 16 + 16 * 1 + 1
    assert params["random_forest", "pixels"] >= 10 * 3  # ten trees of at least a root and two leaves
    assert (out / "summary.png").stat().st_size > 5000


def flat(report: dict) -> dict:
    """A classification report as {"disc precision": ..., "accuracy": ...}: pytest.approx is not nested."""
    return {
        f"{k} {m}" if isinstance(v, dict) else k: x
        for k, v in report.items()
        for m, x in (v.items() if isinstance(v, dict) else [(None, v)])
    }


def test_linear_probe_on_separating_features_is_accurate(results):
    out, _ = results
    probe = json.loads((out / "runs/features_logistic_regression/metrics.json").read_text())
    assert probe["accuracy"] >= 0.9 and probe["macro_f1"] >= 0.9


def test_logistic_regression_matches_an_sklearn_fit_written_out_here(data, tmp_path):
    """With random labels (so that the scores depend on every detail of inputs and fit), each
    input's classification report is that of the same fit done here on arrays built here."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import classification_report
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    index = pd.read_csv(data / "clean/index.csv", dtype={"label": str}, keep_default_na=False)
    index["label"] = np.random.default_rng(0).choice(["disc", "square"], len(index))
    index.to_csv(tmp_path / "random.csv", index=False)
    baselines(
        data / "processed",
        tmp_path / "random.csv",
        data / "interim/classes.json",
        data / "features.npz",
        tmp_path / "out",
        {**FAST, "models": ["logistic_regression"]},
        SEED,
    )

    train, test = index[index.split == "train"], index[index.split == "test"]
    with np.load(data / "features.npz") as npz:
        position = {i: k for k, i in enumerate(npz["ids"])}
        features = npz["features"]

    def thumbnails(rows):  # the processed image, 16x16 by area, grey, over 255
        images = [np.load(data / "processed/shards" / s)[o] for s, o in zip(rows.shard, rows.offset)]
        return np.stack(
            [
                cv2.cvtColor(cv2.resize(im, (16, 16), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY)
                .ravel()
                .astype(np.float32)
                / 255
                for im in images
            ]
        )

    scores = []
    for source, vectors in {
        "features": lambda rows: features[[position[i] for i in rows.id]],
        "pixels": thumbnails,
    }.items():
        model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000, random_state=SEED))
        predicted = model.fit(vectors(train), train.label).predict(vectors(test))
        expected = classification_report(test.label, predicted, output_dict=True, zero_division=0)
        got = json.loads((tmp_path / f"out/runs/{source}_logistic_regression/classification_report.json").read_text())
        assert flat(got) == pytest.approx(flat(expected), abs=1e-6), source
        scores.append(expected["accuracy"])
    assert max(scores) < 1  # a test that could fail


def test_same_inputs_give_the_same_bytes(data, results):
    out, _ = results
    again = data / "again"
    run_baselines(data, again)
    files = sorted(p.relative_to(out / "runs") for p in (out / "runs").rglob("*") if p.is_file())
    assert len(files) == 8 * 6
    for f in files:
        assert (out / "runs" / f).read_bytes() == (again / "runs" / f).read_bytes(), f
    assert (out / "summary.png").read_bytes() == (again / "summary.png").read_bytes()
    deterministic = [c for c in COLUMNS if c not in ("train_seconds", "images_per_second")]
    assert pd.read_csv(out / "summary.csv")[deterministic].equals(pd.read_csv(again / "summary.csv")[deterministic])


def test_max_train_images_is_a_stratified_seeded_subsample(data):
    labels = np.array(["a"] * 30 + ["b"] * 10 + ["c"])
    picked = stratified_subsample(labels, 20, seed=1)
    assert len(picked) == 20 and (np.diff(picked) > 0).all()  # unique, in index order
    assert pd.Series(labels[picked]).value_counts().to_dict() == {"a": 15, "b": 5}  # 30:10:1 of 20, largest remainders
    assert (stratified_subsample(labels, 20, seed=1) == picked).all()
    assert (stratified_subsample(labels, 41, seed=1) == np.arange(41)).all()  # under the limit: all of them

    s = run_baselines(
        data, data / "subsampled", models=["logistic_regression"], inputs=["features"], max_train_images=10
    )
    fitted = json.loads((data / "subsampled/runs/features_logistic_regression/fit.json").read_text())
    assert (s["train_images"], s["train_images_available"]) == (10, 36)
    assert (fitted["train_images"], fitted["train_images_available"]) == (10, 36)
    row = s["summary"].iloc[0]
    # train_seconds is rounded to 1e-6 s: a fit of a few ms leaves 10 / train_seconds off by that much
    assert row.images_per_second == pytest.approx(10 / row.train_seconds, rel=1e-6 + 5e-7 / row.train_seconds)


def test_a_fit_that_does_not_converge_is_recorded_not_warned(data):
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        s = run_baselines(
            data,
            data / "short",
            models=["mlp", "logistic_regression"],
            inputs=["pixels"],
            mlp={"hidden": [8], "max_iter": 2},
        )
    assert not [w for w in caught if issubclass(w.category, ConvergenceWarning)]
    assert s["not_converged"] == ["pixels_mlp"]
    fits = {
        m: json.loads((data / f"short/runs/pixels_{m}/fit.json").read_text()) for m in ("mlp", "logistic_regression")
    }
    assert (fits["mlp"]["converged"], fits["mlp"]["iterations"]) == (False, 2)
    assert fits["logistic_regression"]["converged"] is True


def test_no_models_writes_an_empty_summary(data):
    s = run_baselines(data, data / "none", models=[])
    assert (data / "none/summary.csv").read_text() == ",".join(COLUMNS) + "\n"
    assert s["summary"].empty and list((data / "none/runs").iterdir()) == [] and (data / "none/summary.png").is_file()


def test_bad_inputs_are_one_line_errors(data, tmp_path):
    index = pd.read_csv(data / "clean/index.csv", dtype=str, keep_default_na=False)
    index[index.split != "test"].to_csv(tmp_path / "no_test.csv", index=False)
    with pytest.raises(SpecimenError, match="the test split is empty"):
        baselines(
            data / "processed",
            tmp_path / "no_test.csv",
            data / "interim/classes.json",
            data / "features.npz",
            tmp_path / "out",
            FAST,
            SEED,
        )

    with np.load(data / "features.npz") as npz:
        keep = npz["ids"] != index[index.split == "test"].id.iloc[0]
        write_npz(
            tmp_path / "short.npz", ids=npz["ids"][keep], features=npz["features"][keep], extractor=npz["extractor"]
        )
    params = params_with(tmp_path / "p", lambda p: None)
    proc = run(
        [
            "specimen",
            "baselines",
            "--params",
            str(params),
            "--data",
            str(data / "processed"),
            "--index",
            str(data / "clean/index.csv"),
            "--classes",
            str(data / "interim/classes.json"),
            "--features",
            str(tmp_path / "short.npz"),
            "--out",
            str(tmp_path / "out"),
        ],
        tmp_path,
        check=False,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and "has no vector for 1 of the clean index's test images" in proc.stderr
    assert not (tmp_path / "out/summary.csv").exists()
