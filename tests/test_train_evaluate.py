"""train and evaluate on a tiny two-class dataset built here (random-init CNN, a few epochs)."""
import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from specimen.clean.balance import balance
from specimen.clean.clean import clean
from specimen.clean.embed import embed
from specimen.report.evaluate import evaluate
from specimen.train.models import augmentation, build
from specimen.data.preprocess import preprocess
from specimen.train.train import train
from tests.test_clean import clean_params
from tests.test_stages import prepared

TRAIN = {"epochs": 4, "batch_size": 8, "learning_rate": 0.003, "patience": 10, "deterministic": True,
         "mixed_precision": "off", "augment": {"flip": "none", "rotation": 5, "contrast": 0.1}}


def tiny_data(tmp, side=24):
    """Two classes (discs and squares), side x side, processed, cleaned and balanced under `tmp`."""
    manifest, extracted = prepared(tmp, per_class=20)
    processed = tmp / "processed"
    preprocess(manifest, extracted, processed, {"size": [side, side], "resize": "pad", "color": "rgb"}, 16)
    embed(processed, tmp / "features.npz", "histogram")
    # the shapes differ only by noise: near-copy detection would take them for copies of one another
    clean(processed, tmp / "features.npz", tmp / "clean",
          clean_params(**{"outliers.method": "none", "duplicates.phash_bits": None}), 0)
    balance(tmp / "clean/index.csv", tmp / "clean",
            {"class_weight": "balanced", "oversample": {"target": 14, "transforms": ["flip_h", "flip_v"]}}, [side, side])
    return tmp


def train_tiny(tmp, model="small_cnn", params=TRAIN, seed=3, **kw):
    return train(model, tmp / "processed", tmp / "clean/index.csv", tmp / "clean/class_weights.json",
                 tmp / "interim/classes.json", tmp / f"models/{model}", params, seed=seed,
                 train_path=tmp / "clean/train.csv", **kw)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tiny_data(tmp_path_factory.mktemp("tiny"))
    return tmp, train_tiny(tmp)


def test_train_writes_a_loadable_model_history_and_meta(trained):
    import keras

    tmp, history = trained
    out = tmp / "models/small_cnn"
    assert sorted(p.name for p in out.iterdir()) == ["dvclive", "history.csv", "meta.json", "model.keras", "tensorboard"]
    assert not (tmp / "models/small_cnn.work").exists()  # the resumable state goes once the model is written
    frame = pd.read_csv(out / "history.csv")
    assert frame.epoch.tolist() == [1, 2, 3, 4] and set(frame.phase) == {"train"}
    assert {"accuracy", "loss", "val_accuracy", "val_loss", "learning_rate", "seconds"} <= set(frame.columns)
    assert frame.loss.iloc[-1] < frame.loss.iloc[0]  # it learns
    meta = json.loads((out / "meta.json").read_text())
    assert meta["classes"] == ["disc", "square"] and meta["input_shape"] == [24, 24, 3]
    assert meta["train_images"] == 28  # 12 per class in the train split, oversampled to 14 each
    model = keras.saving.load_model(out / "model.keras", safe_mode=True)
    assert model.output_shape == (None, 2) and model.input.dtype == "uint8"


def test_evaluate_reports_match_the_test_split(trained):
    tmp, _ = trained
    out = tmp / "reports/small_cnn"
    metrics = evaluate(tmp / "models/small_cnn", tmp / "processed", tmp / "clean/index.csv",
                       tmp / "interim/classes.json", out, batch_size=16, settings={"top_k": [2, 5]},
                       curves_csv=tmp / "curves/small_cnn.csv")
    n_test = (pd.read_csv(tmp / "clean/index.csv").split == "test").sum()
    assert metrics["test_images"] == n_test == 8
    assert json.loads((out / "metrics.json").read_text()) == metrics
    # two classes: top-2 is 1 by definition and not reported, nor top-5
    assert set(metrics) == {"accuracy", "macro_f1", "weighted_f1", "expected_calibration_error", "test_images"}
    assert 0 <= metrics["accuracy"] <= 1
    report = json.loads((out / "classification_report.json").read_text())
    assert report["macro avg"]["support"] == n_test
    table = pd.read_csv(out / "classification_report.csv")
    assert table["class"].tolist() == ["disc", "square", "macro avg", "weighted avg"]
    assert table.set_index("class").loc["disc", "f1-score"] == pytest.approx(report["disc"]["f1-score"])
    predictions = pd.read_csv(out / "predictions.csv")
    assert len(predictions) == n_test and (predictions.label == predictions.predicted).mean() == pytest.approx(metrics["accuracy"])
    # the confusion matrix sums to the test count, its rows are the true labels and its diagonal the hits
    matrix = pd.read_csv(out / "confusion_matrix.csv").set_index("true")
    assert matrix.to_numpy().sum() == n_test and list(matrix.columns) == list(matrix.index) == ["disc", "square"]
    assert (matrix.sum(axis=1) == predictions.label.value_counts().reindex(matrix.index, fill_value=0)).all()
    assert sum(matrix.loc[c, c] for c in matrix.index) == (predictions.label == predictions.predicted).sum()
    # the calibration bins hold every test image, and the error is their weighted gap
    bins = pd.read_csv(out / "calibration.csv")
    assert bins["count"].sum() == n_test and len(bins) == 10
    filled = bins[bins["count"] > 0]
    ece = ((filled.confidence - filled.accuracy).abs() * filled["count"]).sum() / n_test
    assert metrics["expected_calibration_error"] == pytest.approx(ece, abs=1e-5)
    assert pd.read_csv(tmp / "curves/small_cnn.csv").equals(pd.read_csv(tmp / "models/small_cnn/history.csv"))
    for png in ("confusion_matrix.png", "confusion_matrix_normalized.png", "f1_per_class.png", "curves.png",
                "mistakes.png", "predictions.png", "calibration.png"):
        with Image.open(out / png) as im:
            assert im.width > 300 and im.height > 200, png
            assert len(np.unique(np.asarray(im.convert("L")))) > 20, f"{png} is blank"


def test_oversampled_rows_reach_the_model_transformed(trained):
    from specimen.train.inputs import dataset, split_rows

    tmp, _ = trained
    rows = split_rows(tmp / "clean/train.csv")
    copies = rows[rows["transform"] != ""].head(3)
    sources = rows.set_index("id").loc[copies.source_id]
    got = next(iter(dataset(copies.reset_index(drop=True), tmp / "processed", ["disc", "square"], 8)))[0].numpy()
    plain = next(iter(dataset(sources.reset_index().assign(transform=""), tmp / "processed", ["disc", "square"], 8)))[0].numpy()
    for g, p, t in zip(got, plain, copies["transform"]):
        assert (g == (p[:, ::-1] if t == "flip_h" else p[::-1])).all()


def test_model_has_augmentation_layers_inside(trained):
    layers = augmentation({"flip": "horizontal", "rotation": 15, "translate": 0.1, "zoom": 0.2}, seed=0).layers
    assert [type(l).__name__ for l in layers] == ["RandomFlip", "RandomRotation", "RandomTranslation", "RandomZoom"]
    model = build("small_cnn", (24, 24, 3), 3, {"augment": {"flip": "none", "rotation": 0}}, 0)
    assert "augmentation" not in [l.name for l in model.layers]
