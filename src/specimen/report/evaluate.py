"""evaluate: score one trained model on the clean test split, and on the validation split it is chosen by.

Writes into results/evaluation/<model>/:

- ``metrics.json``: accuracy, macro and weighted F1, top-k accuracy (``evaluate.top_k``), the
  expected calibration error, and the test count (DVC's metrics); ``valid``: accuracy, macro and
  weighted F1 and the count on the validation split (what report chooses the best model by: the
  test split only reports); ``test_unflagged`` and ``test_flagged``: the same on the test images
  clean kept without and with a flag (quality, outlier: valid and test flag what they do not
  remove), so that one sees whether the flagged ones matter;
- ``flags.csv``: per flag kind (and ``none``), the test images carrying it and the accuracy on them;
- ``classification_report.txt``, ``.json`` and ``.csv`` (scikit-learn's, per class);
- ``confusion_matrix.csv`` (counts, true classes down) and its pictures, ``confusion_matrix.png``
  (counts) and ``confusion_matrix_normalized.png`` (each row divided by its count);
- ``f1_per_class.png``: F1 per class, worst first;
- ``curves.png``: accuracy and loss per epoch over both training phases, the switch marked;
- ``mistakes.png``: the most confident mistakes (``evaluate.gallery`` of them);
- ``predictions.png``: a seeded sample of test images titled predicted / true (``evaluate.grid``);
- ``calibration.png`` and ``calibration.csv``: the reliability diagram over ``evaluate.bins`` bins;
- ``predictions.csv``: each test image's true label, prediction and confidence (DVC's confusion
  plot reads it).

And ``results/curves/<model>.csv``, the training history in the folder DVC's curves plot reads.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from specimen import SpecimenError, figures
from specimen.artefacts import write_csv
from specimen.report.scores import headline, write_scores
from specimen.shards import Shards
from specimen.train.inputs import dataset, load_classes, split_rows
from specimen.train.models import load as load_model

DEFAULTS = {"batch_size": 256, "top_k": [3, 5], "gallery": 16, "grid": 24, "bins": 10}


def evaluate(
    model_dir: Path,
    processed: Path,
    index_path: Path,
    classes_path: Path,
    out_dir: Path,
    batch_size: int = 256,
    settings: dict | None = None,
    seed: int = 0,
    curves_csv: Path | None = None,
) -> dict:
    s = {**DEFAULTS, "batch_size": batch_size, **(settings or {})}
    classes = load_classes(classes_path)
    rows = split_rows(index_path, "test")
    if rows.empty:
        raise SpecimenError(
            f"{index_path}: the test split is empty; give the dataset a test folder or a dataset.split.test above 0"
        )
    model = load_model(model_dir / "model.keras")
    probs = model.predict(dataset(rows, processed, classes, s["batch_size"]), verbose=0).astype(np.float64)
    class_id = {c: i for i, c in enumerate(classes)}
    y_true = rows.label.map(class_id).to_numpy()
    y_pred = probs.argmax(axis=1)
    confidence = probs.max(axis=1)
    predicted = [classes[i] for i in y_pred]

    write_csv(
        out_dir / "predictions.csv",
        pd.DataFrame({"id": rows.id, "label": rows.label, "predicted": predicted, "confidence": confidence.round(6)}),
    )
    history = pd.read_csv(model_dir / "history.csv")
    figures.save(figures.curves(history), out_dir / "curves.png")
    if curves_csv is not None:
        write_csv(curves_csv, history)
    table, ece = calibration(y_true, probs, s["bins"])
    write_csv(out_dir / "calibration.csv", table)
    figures.save(figures.reliability(table, ece), out_dir / "calibration.png")

    wrong = np.flatnonzero(y_pred != y_true)
    worst = wrong[np.argsort(-confidence[wrong], kind="stable")][: s["gallery"]]
    figures.save(
        figures.gallery(
            _images(rows.iloc[worst], processed),
            [f"{predicted[i]} {confidence[i]:.2f}\ntrue {rows.label[i]}" for i in worst],
            ["tab:red"] * len(worst),
            f"The {len(worst)} most confident mistakes of {len(wrong)} (predicted, confidence; true)",
        ),
        out_dir / "mistakes.png",
    )
    sample = np.sort(np.random.default_rng(seed).permutation(len(rows))[: s["grid"]])
    figures.save(
        figures.gallery(
            _images(rows.iloc[sample], processed),
            [f"{predicted[i]} / {rows.label[i]}" for i in sample],
            ["tab:green" if y_pred[i] == y_true[i] else "tab:red" for i in sample],
            f"{len(sample)} test images: predicted / true (red: wrong)",
        ),
        out_dir / "predictions.png",
    )

    flags = rows["flags"] if "flags" in rows else pd.Series("", index=rows.index)
    flagged = (flags != "").to_numpy()
    write_csv(out_dir / "flags.csv", flag_table(flags, y_true, y_pred))
    valid = split_rows(index_path, "valid")
    if len(valid):
        v_probs = model.predict(dataset(valid, processed, classes, s["batch_size"]), verbose=0)
        v_true = valid.label.map(class_id).to_numpy()
        valid_scores = headline(v_true, v_probs.argmax(axis=1), len(classes))
    else:
        valid_scores = headline([], [], len(classes))
    return write_scores(
        y_true,
        y_pred,
        classes,
        out_dir,
        extra={
            **top_k(y_true, probs, s["top_k"]),
            "expected_calibration_error": round(ece, 6),
            "valid": valid_scores,
            "test_unflagged": headline(y_true[~flagged], y_pred[~flagged], len(classes)),
            "test_flagged": headline(y_true[flagged], y_pred[flagged], len(classes)),
        },
    )


def flag_table(flags: pd.Series, y_true: np.ndarray, y_pred: np.ndarray) -> pd.DataFrame:
    """Per flag kind (``none``: no flag), the test images carrying it and the accuracy on them."""
    kinds = flags.replace("", "none").str.split(";")
    rows = []
    for kind in sorted({k for ks in kinds for k in ks}, key=lambda k: (k != "none", k)):
        on = kinds.apply(lambda ks, kind=kind: kind in ks).to_numpy()
        rows.append(
            {"flag": kind, "images": int(on.sum()), "accuracy": round(float((y_true[on] == y_pred[on]).mean()), 6)}
        )
    return pd.DataFrame(rows, columns=["flag", "images", "accuracy"])


def calibration(y_true, probs: np.ndarray, bins: int) -> tuple[pd.DataFrame, float]:
    """Per confidence bin: its bounds, count, mean confidence and accuracy; and the expected
    calibration error (the count-weighted mean gap between confidence and accuracy)."""
    confidence, correct = probs.max(axis=1), probs.argmax(axis=1) == y_true
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    rows = []
    for b in range(bins):
        inside = which == b
        rows.append(
            {
                "bin": b + 1,
                "lower": edges[b],
                "upper": edges[b + 1],
                "count": int(inside.sum()),
                "confidence": float(confidence[inside].mean()) if inside.any() else np.nan,
                "accuracy": float(correct[inside].mean()) if inside.any() else np.nan,
            }
        )
    table = pd.DataFrame(rows)
    gaps = (table.confidence - table.accuracy).abs().fillna(0)
    return table, float((gaps * table["count"]).sum() / max(1, len(y_true)))


def top_k(y_true, probs: np.ndarray, ks) -> dict:
    """top_K_accuracy for each K below the number of classes (at or above it, it is 1 by definition)."""
    from sklearn.metrics import top_k_accuracy_score

    n = probs.shape[1]
    return {
        f"top_{k}_accuracy": round(float(top_k_accuracy_score(y_true, probs, k=k, labels=range(n))), 6)
        for k in sorted(set(ks))
        if 1 < k < n
    }


def _images(rows: pd.DataFrame, processed: Path) -> np.ndarray:
    if rows.empty:
        return np.zeros((0, 1, 1, 3), np.uint8)
    return Shards(Path(processed) / "shards").get(rows.shard, rows.offset)
