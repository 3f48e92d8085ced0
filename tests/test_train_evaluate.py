"""train and evaluate on a tiny two-class dataset built here (random-init CNN, a few epochs)."""

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from specimen.clean.balance import balance
from specimen.clean.clean import clean
from specimen.clean.embed import embed
from specimen.data.preprocess import preprocess
from specimen.report.evaluate import calibration, evaluate
from specimen.train.models import augmentation, build
from specimen.train.train import train
from tests.test_clean import clean_params
from tests.test_stages import prepared

FIGURES = (  # what evaluate draws, in results/evaluation/<model>/
    "confusion_matrix.png",
    "confusion_matrix_normalized.png",
    "f1_per_class.png",
    "curves.png",
    "mistakes.png",
    "predictions.png",
    "calibration.png",
)
TRAIN = {
    "epochs": 4,
    "batch_size": 8,
    "learning_rate": 0.003,
    "patience": 10,
    "deterministic": True,
    "mixed_precision": "off",
    "augment": {"flip": "none", "rotation": 5, "contrast": 0.1},
}


def tiny_data(tmp, side=24):
    """Two classes (discs and squares), side x side, processed, cleaned and balanced under `tmp`."""
    manifest, extracted = prepared(tmp, per_class=20)
    processed = tmp / "processed"
    preprocess(manifest, extracted, processed, {"size": [side, side], "resize": "pad", "color": "rgb"}, 16)
    embed(processed, tmp / "features.npz", "histogram")
    # the shapes differ only by noise: near-copy detection would take them for copies of one another
    clean(
        processed,
        tmp / "features.npz",
        tmp / "clean",
        clean_params(**{"outliers.method": "none", "duplicates.phash_bits": None}),
        0,
    )
    balance(
        tmp / "clean/index.csv",
        tmp / "clean",
        {"class_weight": "balanced", "oversample": {"target": 14, "transforms": ["flip_h", "flip_v"]}},
        [side, side],
    )
    return tmp


def train_tiny(tmp, model="small_cnn", params=TRAIN, seed=3, **kw):
    return train(
        model,
        tmp / "processed",
        tmp / "clean/index.csv",
        tmp / "clean/class_weights.json",
        tmp / "interim/classes.json",
        tmp / f"models/{model}",
        params,
        seed=seed,
        train_path=tmp / "clean/train.csv",
        **kw,
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tiny_data(tmp_path_factory.mktemp("tiny"))
    return tmp, train_tiny(tmp)


def test_train_writes_a_loadable_model_history_and_meta(trained):
    import keras

    tmp, history = trained
    out = tmp / "models/small_cnn"
    assert sorted(p.name for p in out.iterdir()) == [
        "dvclive",
        "history.csv",
        "meta.json",
        "model.keras",
        "tensorboard",
    ]
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
    metrics = evaluate(
        tmp / "models/small_cnn",
        tmp / "processed",
        tmp / "clean/index.csv",
        tmp / "interim/classes.json",
        out,
        batch_size=16,
        settings={"top_k": [2, 5]},
        curves_csv=tmp / "curves/small_cnn.csv",
    )
    n_test = (pd.read_csv(tmp / "clean/index.csv").split == "test").sum()
    assert metrics["test_images"] == n_test == 8
    assert json.loads((out / "metrics.json").read_text()) == metrics
    # two classes: top-2 is 1 by definition and not reported, nor top-5
    assert set(metrics) == {
        "accuracy",
        "macro_f1",
        "weighted_f1",
        "expected_calibration_error",
        "test_images",
        "valid",
        "test_unflagged",
        "test_flagged",
    }
    report = json.loads((out / "classification_report.json").read_text())
    assert report["macro avg"]["support"] == n_test
    table = pd.read_csv(out / "classification_report.csv")
    assert table["class"].tolist() == ["disc", "square", "macro avg", "weighted avg"]
    assert table.set_index("class").loc["disc", "f1-score"] == pytest.approx(report["disc"]["f1-score"])
    predictions = pd.read_csv(out / "predictions.csv")
    assert len(predictions) == n_test and (predictions.label == predictions.predicted).mean() == pytest.approx(
        metrics["accuracy"]
    )
    # the predictions are the model's own on the test images, read here straight from the shards
    import keras

    model = keras.saving.load_model(tmp / "models/small_cnn/model.keras", safe_mode=True)
    test_rows = pd.read_csv(tmp / "clean/index.csv").set_index("id").loc[predictions.id]
    pixels = np.stack([np.load(tmp / "processed/shards" / r.shard)[int(r.offset)] for r in test_rows.itertuples()])
    probs = model.predict(pixels, verbose=0)
    assert [["disc", "square"][i] for i in probs.argmax(1)] == predictions.predicted.tolist()
    assert np.allclose(probs.max(1), predictions.confidence, atol=1e-5)
    # the confusion matrix sums to the test count, its rows are the true labels and its diagonal the hits
    matrix = pd.read_csv(out / "confusion_matrix.csv").set_index("true")
    assert matrix.to_numpy().sum() == n_test and list(matrix.columns) == list(matrix.index) == ["disc", "square"]
    assert (matrix.sum(axis=1) == predictions.label.value_counts().reindex(matrix.index, fill_value=0)).all()
    assert sum(matrix.loc[c, c] for c in matrix.index) == (predictions.label == predictions.predicted).sum()
    # the calibration bins hold every test image, and the error is their weighted gap
    bins = pd.read_csv(out / "calibration.csv")
    assert bins["count"].sum() == n_test and len(bins) == 10
    assert metrics["expected_calibration_error"] == pytest.approx(
        reference_ece(predictions.label == predictions.predicted, predictions.confidence, 10), abs=1e-5
    )
    assert pd.read_csv(tmp / "curves/small_cnn.csv").equals(pd.read_csv(tmp / "models/small_cnn/history.csv"))
    for png in FIGURES:
        with Image.open(out / png) as im:
            assert im.width > 300 and im.height > 200, png
            assert len(np.unique(np.asarray(im.convert("L")))) > 20, f"{png} is blank"


def test_evaluate_scores_valid_and_flagged_test_images_apart(trained):
    """The validation scores (what report chooses by) and the test scores on flagged and unflagged
    images are the model's own on those images, scored here by scikit-learn."""
    import keras
    from sklearn.metrics import accuracy_score, f1_score

    tmp, _ = trained
    index = pd.read_csv(tmp / "clean/index.csv", keep_default_na=False)
    test_ids = index.id[index.split == "test"].tolist()
    index.loc[index.id.isin(test_ids[:3]), "flags"] = "dark;outlier"  # as clean flags in test
    index.loc[index.id == test_ids[3], "flags"] = "outlier"
    index.to_csv(tmp / "flagged-index.csv", index=False)
    out = tmp / "reports/flagged"
    metrics = evaluate(
        tmp / "models/small_cnn", tmp / "processed", tmp / "flagged-index.csv", tmp / "interim/classes.json", out
    )
    model = keras.saving.load_model(tmp / "models/small_cnn/model.keras", safe_mode=True)

    def scored(rows):
        pixels = np.stack([np.load(tmp / "processed/shards" / r.shard)[int(r.offset)] for r in rows.itertuples()])
        y_pred = model.predict(pixels, verbose=0).argmax(1)
        y_true = rows.label.map({"disc": 0, "square": 1}).to_numpy()
        return {
            "accuracy": pytest.approx(accuracy_score(y_true, y_pred), abs=1e-6),
            "macro_f1": pytest.approx(
                f1_score(y_true, y_pred, average="macro", labels=[0, 1], zero_division=0), abs=1e-6
            ),
            "weighted_f1": pytest.approx(
                f1_score(y_true, y_pred, average="weighted", labels=[0, 1], zero_division=0), abs=1e-6
            ),
            "images": len(rows),
        }

    valid = index[index.split == "valid"]
    assert len(valid) == 8 and metrics["valid"] == scored(valid)
    test = index[index.split == "test"]
    assert metrics["test_flagged"] == scored(test[test["flags"] != ""]) and metrics["test_flagged"]["images"] == 4
    assert metrics["test_unflagged"] == scored(test[test["flags"] == ""])
    table = pd.read_csv(out / "flags.csv").set_index("flag")
    predictions = pd.read_csv(out / "predictions.csv").set_index("id")
    hit = predictions.label == predictions.predicted
    assert table["images"].to_dict() == {"none": 4, "dark": 3, "outlier": 4}
    assert table.accuracy["dark"] == pytest.approx(hit[test_ids[:3]].mean())
    assert table.accuracy["none"] == pytest.approx(hit[test_ids[4:]].mean())


def reference_ece(correct, confidence, bins):
    """The expected calibration error from scikit-learn's reliability curve, bins counted by pandas."""
    from sklearn.calibration import calibration_curve

    accuracy, mean_confidence = calibration_curve(np.asarray(correct), np.asarray(confidence), n_bins=bins)
    counts = np.bincount(
        pd.cut(np.asarray(confidence), np.linspace(0, 1, bins + 1), include_lowest=True).codes, minlength=bins
    )
    counts = counts[counts > 0]
    return float((np.abs(accuracy - mean_confidence) * counts).sum() / counts.sum())


def test_calibration_bins_and_error_agree_with_scikit_learn():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.full(4, 0.4), size=500)
    probs[:20] = [0.7, 0.1, 0.1, 0.1]  # a confidence on a bin edge goes to the lower bin, as in scikit-learn
    y = np.where(rng.random(500) < 0.6, probs.argmax(1), rng.integers(0, 4, 500))
    table, ece = calibration(y, probs, 10)
    from sklearn.calibration import calibration_curve

    correct, confidence = probs.argmax(1) == y, probs.max(1)
    accuracy, mean_confidence = calibration_curve(correct, confidence, n_bins=10)
    filled = table[table["count"] > 0]
    assert np.allclose(filled.accuracy, accuracy) and np.allclose(filled.confidence, mean_confidence)
    assert table["count"].sum() == 500 and table.loc[6, "count"] >= 20  # bin 7 is (0.6, 0.7]
    assert ece == pytest.approx(reference_ece(correct, confidence, 10), abs=1e-12)


def test_oversampled_rows_reach_the_model_transformed(trained):
    from specimen.train.inputs import dataset, split_rows

    tmp, _ = trained
    rows = split_rows(tmp / "clean/train.csv")
    copies = rows[rows["transform"] != ""].head(3)
    sources = rows.set_index("id").loc[copies.source_id]
    got = next(iter(dataset(copies.reset_index(drop=True), tmp / "processed", ["disc", "square"], 8)))[0].numpy()
    plain = next(iter(dataset(sources.reset_index().assign(transform=""), tmp / "processed", ["disc", "square"], 8)))[
        0
    ].numpy()
    for g, p, t in zip(got, plain, copies["transform"]):
        assert (g == (p[:, ::-1] if t == "flip_h" else p[::-1])).all()


def test_model_has_augmentation_layers_inside(trained):
    import keras

    augment = {"flip": "horizontal", "rotation": 15, "translate": 0.1, "zoom": 0.2}
    kinds = ["RandomFlip", "RandomRotation", "RandomTranslation", "RandomZoom"]
    assert [type(layer).__name__ for layer in augmentation(augment, seed=0).layers] == kinds
    model = build("small_cnn", (24, 24, 3), 3, {"augment": augment}, 0)
    inside = model.get_layer("augmentation")
    assert [type(layer).__name__ for layer in inside.layers] == kinds
    # it moves pixels while training and leaves them be at inference
    x = np.random.default_rng(0).integers(0, 256, (4, 24, 24, 3)).astype("float32")
    assert np.array_equal(keras.ops.convert_to_numpy(inside(x, training=False)), x)
    assert not np.allclose(keras.ops.convert_to_numpy(inside(x, training=True)), x)
    # the model trained above (rotation and contrast in TRAIN) was saved with its augmentation inside
    tmp, _ = trained
    saved = keras.saving.load_model(tmp / "models/small_cnn/model.keras", safe_mode=True)
    assert [type(layer).__name__ for layer in saved.get_layer("augmentation").layers] == [
        "RandomRotation",
        "RandomContrast",
    ]
    plain = build("small_cnn", (24, 24, 3), 3, {"augment": {"flip": "none", "rotation": 0}}, 0)
    assert "augmentation" not in [layer.name for layer in plain.layers]
