"""The scores every scored model gets, a trained CNN (evaluate) and a baseline alike: scikit-learn's
classification report (txt, json, csv), the confusion matrix (csv, and the pictures for a CNN) and
metrics.json."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from specimen import figures
from specimen.artefacts import atomic_file, write_csv, write_json


def _rounded(obj):
    if isinstance(obj, dict):
        return {k: _rounded(v) for k, v in obj.items()}
    return round(float(obj), 6) if isinstance(obj, (float, np.floating)) else obj


def write_scores(
    y_true, y_pred, classes: list[str], out_dir: Path, extra: dict | None = None, pictures: bool = True
) -> dict:
    """classification_report.txt, .json and .csv (scikit-learn), confusion_matrix.csv, metrics.json
    (accuracy, macro and weighted F1, `extra`, test count) and, with `pictures`, confusion_matrix.png
    (counts) and _normalized.png and f1_per_class.png, for class ids `y_pred` against `y_true`: the
    same for a trained model and for a baseline (whose pictures are left out: eight per run would
    only repeat summary.png). Returns the metrics."""
    from sklearn.metrics import classification_report, confusion_matrix

    labels = list(range(len(classes)))
    report_kw = dict(labels=labels, target_names=classes, zero_division=0)
    with atomic_file(out_dir / "classification_report.txt") as tmp:
        tmp.write_text(classification_report(y_true, y_pred, digits=4, **report_kw))
    report = _rounded(classification_report(y_true, y_pred, output_dict=True, **report_kw))
    write_json(out_dir / "classification_report.json", report)
    write_csv(
        out_dir / "classification_report.csv",
        pd.DataFrame([{"class": name, **scores} for name, scores in report.items() if isinstance(scores, dict)]),
    )
    matrix = confusion_matrix(y_true, y_pred, labels=labels)
    frame = pd.DataFrame(matrix, columns=classes)
    frame.insert(0, "true", classes)  # rows: true classes; columns: predicted
    write_csv(out_dir / "confusion_matrix.csv", frame)
    if pictures:
        figures.save(figures.confusion(matrix, classes), out_dir / "confusion_matrix.png")
        figures.save(figures.confusion(matrix, classes, normalized=True), out_dir / "confusion_matrix_normalized.png")
        figures.save(figures.f1_bars(report, classes), out_dir / "f1_per_class.png")
    metrics = {
        **{k: v for k, v in headline(y_true, y_pred, len(classes)).items() if k != "images"},
        **(extra or {}),
        "test_images": int(len(y_true)),
    }
    write_json(out_dir / "metrics.json", metrics)
    return metrics


def headline(y_true, y_pred, n_classes: int) -> dict:
    """Accuracy, macro and weighted F1 (over every class, absent ones scoring 0) and the image count."""
    from sklearn.metrics import accuracy_score, f1_score

    if len(y_true) == 0:
        return {"accuracy": None, "macro_f1": None, "weighted_f1": None, "images": 0}
    f1 = dict(labels=list(range(n_classes)), zero_division=0)
    return {
        "accuracy": round(float(accuracy_score(y_true, y_pred)), 6),
        "macro_f1": round(float(f1_score(y_true, y_pred, average="macro", **f1)), 6),
        "weighted_f1": round(float(f1_score(y_true, y_pred, average="weighted", **f1)), 6),
        "images": int(len(y_true)),
    }
