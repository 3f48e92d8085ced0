"""evaluate: score one trained model on the clean test split.

Writes into results/reports/<model>/: ``classification_report.txt`` and ``.json``
(scikit-learn), ``confusion_matrix.png``, ``curves.png`` (accuracy and loss per epoch, train and
valid), ``predictions.csv`` and ``metrics.json`` (accuracy, macro F1, weighted F1, test count).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from specimen import SpecimenError
from specimen.data import dataset, load_classes, split_rows
from specimen.files import atomic_file, save_figure, write_csv, write_json
from specimen.models import load as load_model


def plot_confusion(y_true, y_pred, classes: list[str], path: Path) -> np.ndarray:
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay, confusion_matrix

    matrix = confusion_matrix(y_true, y_pred, labels=range(len(classes)))
    size = max(5, 0.45 * len(classes) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ConfusionMatrixDisplay(matrix, display_labels=classes).plot(ax=ax, cmap="Blues", colorbar=False,
                                                               xticks_rotation="vertical")
    ax.set_title(f"Confusion matrix (test, n={matrix.sum()})")
    save_figure(fig, path)
    plt.close(fig)
    return matrix


def plot_curves(history: pd.DataFrame, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric in zip(axes, ("accuracy", "loss")):
        ax.plot(history.epoch, history[metric], marker="o", label="train")
        if f"val_{metric}" in history:
            ax.plot(history.epoch, history[f"val_{metric}"], marker="o", label="valid")
        if "phase" in history:  # where fine-tuning took over from the head
            for epoch in history.epoch[history.phase.ne(history.phase.shift()) & history.index.to_series().gt(0)]:
                ax.axvline(epoch - 0.5, color="grey", linestyle="--", linewidth=1)
                ax.annotate(history.phase[history.epoch == epoch].iloc[0], (epoch - 0.5, 1), xycoords=("data", "axes fraction"),
                            xytext=(3, -12), textcoords="offset points", fontsize=8, color="grey")
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.set_title(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    save_figure(fig, path)
    plt.close(fig)


def evaluate(model_dir: Path, processed: Path, index_path: Path, classes_path: Path, out_dir: Path,
             batch_size: int) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    classes = load_classes(classes_path)
    rows = split_rows(index_path, "test")
    if rows.empty:
        raise SpecimenError(f"{index_path}: the test split is empty; give the dataset a test folder or a dataset.split.test above 0")
    model = load_model(model_dir / "model.keras")
    probs = model.predict(dataset(rows, processed, classes, batch_size), verbose=0)
    y_true = rows.label.map({c: i for i, c in enumerate(classes)}).to_numpy()
    y_pred = probs.argmax(axis=1)

    plot_confusion(y_true, y_pred, classes, out_dir / "confusion_matrix.png")
    plot_curves(pd.read_csv(model_dir / "history.csv"), out_dir / "curves.png")
    write_csv(out_dir / "predictions.csv", pd.DataFrame({
        "id": rows.id, "label": rows.label, "predicted": [classes[i] for i in y_pred],
        "confidence": probs.max(axis=1).round(6)}))
    return write_scores(y_true, y_pred, classes, out_dir)


def _rounded(obj):
    if isinstance(obj, dict):
        return {k: _rounded(v) for k, v in obj.items()}
    return round(float(obj), 6) if isinstance(obj, (float, np.floating)) else obj


def write_scores(y_true, y_pred, classes: list[str], out_dir: Path) -> dict:
    """classification_report.txt and .json (scikit-learn) and metrics.json (accuracy, macro and
    weighted F1, test count) for class ids `y_pred` against `y_true`; the same for a trained model
    and for a baseline. Returns the metrics."""
    from sklearn.metrics import accuracy_score, classification_report, f1_score

    labels = list(range(len(classes)))
    report_kw = dict(labels=labels, target_names=classes, zero_division=0)
    with atomic_file(out_dir / "classification_report.txt") as tmp:
        tmp.write_text(classification_report(y_true, y_pred, digits=4, **report_kw))
    write_json(out_dir / "classification_report.json",
               _rounded(classification_report(y_true, y_pred, output_dict=True, **report_kw)))
    metrics = {"accuracy": round(float(accuracy_score(y_true, y_pred)), 6),
               "macro_f1": round(float(f1_score(y_true, y_pred, average="macro", labels=labels, zero_division=0)), 6),
               "weighted_f1": round(float(f1_score(y_true, y_pred, average="weighted", labels=labels, zero_division=0)), 6),
               "test_images": int(len(y_true))}
    write_json(out_dir / "metrics.json", metrics)
    return metrics
