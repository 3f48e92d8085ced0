"""The figures of a model's report (evaluate writes them into results/reports/<model>/).

Each function draws one figure with matplotlib and returns it; ``save`` writes it atomically.
They are made to be read at any number of classes: the confusion matrices and the per-class bars
grow with the classes up to a cap, shrink their labels to fit, and drop cell numbers that would
not fit (200 classes give a 28-inch matrix with 6-point labels).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from specimen.files import save_figure

ANNOTATE_UP_TO = 30  # classes: above this, the matrix cells carry colour only


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save(fig, path: Path) -> None:
    save_figure(fig, path)
    _plt().close(fig)


def _side(n: int) -> tuple[float, float]:
    """(inches per class, label font size in points) for a matrix or bar chart of n classes."""
    cell = 0.45 if n <= ANNOTATE_UP_TO else max(0.12, 12 / n)
    return cell, float(np.clip(cell * 72 * 0.6, 5, 10))


def confusion(matrix: np.ndarray, classes: list[str], normalized: bool = False):
    """The confusion matrix, true classes down, predicted across; `normalized` divides each row by
    its count (the diagonal is then each class's recall)."""
    plt = _plt()
    n = len(classes)
    counts = matrix.sum(axis=1, keepdims=True)
    values = np.divide(matrix, counts, out=np.zeros(matrix.shape), where=counts > 0) if normalized else matrix
    cell, font = _side(n)
    side = 2.5 + cell * n
    fig, ax = plt.subplots(figsize=(side + 1.2, side))
    image = ax.imshow(values, cmap="Blues", vmin=0, vmax=1 if normalized else max(1, values.max()),
                      interpolation="nearest")
    fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02, label="share of the true class" if normalized else "images")
    ax.set_xticks(range(n), classes, rotation=90, fontsize=font)
    ax.set_yticks(range(n), classes, fontsize=font)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= ANNOTATE_UP_TO:
        for i, j in zip(*np.nonzero(matrix)):
            text = f"{values[i, j]:.2f}" if normalized else str(matrix[i, j])
            ax.text(j, i, text, ha="center", va="center", fontsize=font - 1,
                    color="white" if values[i, j] > 0.6 * (1 if normalized else values.max()) else "black")
    kind = "normalised by true class (recall on the diagonal)" if normalized else "counts"
    ax.set_title(f"Confusion matrix, {kind} (test, n={int(matrix.sum())})")
    return fig


def f1_bars(report: dict, classes: list[str]):
    """Each class's F1, sorted from worst (top) to best, with its support and the macro mean."""
    plt = _plt()
    frame = pd.DataFrame({"class": classes, "f1": [report[c]["f1-score"] for c in classes],
                          "support": [int(report[c]["support"]) for c in classes]})
    frame = frame.sort_values(["f1", "class"], ascending=[True, True], kind="stable")
    cell, font = _side(len(classes))
    fig, ax = plt.subplots(figsize=(8, 1.5 + cell * len(classes)))
    bars = ax.barh(range(len(frame)), frame.f1, color=plt.cm.RdYlGn(frame.f1.to_numpy()))
    ax.set_yticks(range(len(frame)), [f"{c} (n={s})" for c, s in zip(frame["class"], frame.support)], fontsize=font)
    if len(classes) <= ANNOTATE_UP_TO:
        ax.bar_label(bars, fmt="%.2f", padding=2, fontsize=font)
    macro = report["macro avg"]["f1-score"]
    ax.axvline(macro, color="grey", linestyle="--", linewidth=1, label=f"macro F1 {macro:.3f}")
    ax.set_xlim(0, 1.08)
    ax.set_ylim(len(frame) - 0.5, -0.5)  # the worst class first, at the top
    ax.set_xlabel("F1 on the test split")
    ax.set_title("F1 per class, worst first")
    ax.legend(loc="lower right")
    return fig


def curves(history: pd.DataFrame):
    """Accuracy and loss per epoch, train and valid, with a line where fine-tuning took over."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    starts = history.epoch[history.phase.ne(history.phase.shift()) & (history.index > 0)] if "phase" in history else []
    for ax, metric in zip(axes, ("accuracy", "loss")):
        ax.plot(history.epoch, history[metric], marker="o", label="train")
        if f"val_{metric}" in history:
            ax.plot(history.epoch, history[f"val_{metric}"], marker="o", label="valid")
        for epoch in starts:
            ax.axvline(epoch - 0.5, color="grey", linestyle="--", linewidth=1)
            ax.annotate(history.phase[history.epoch == epoch].iloc[0], (epoch - 0.5, 1),
                        xycoords=("data", "axes fraction"), xytext=(3, -12), textcoords="offset points",
                        fontsize=8, color="grey")
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.set_title(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    return fig


def show(ax, image: np.ndarray, title: str = "", colour: str = "black", fontsize: int = 8) -> None:
    """A uint8 (h, w, 1 or 3) image on `ax`, grey when it has one channel, titled, axes off."""
    grey = image.shape[-1] == 1
    ax.imshow(image[..., 0] if grey else image, cmap="gray" if grey else None, vmin=0, vmax=255)
    ax.set_title(title, fontsize=fontsize, color=colour)
    ax.axis("off")


def gallery(images: np.ndarray, titles: list[str], colours: list[str], title: str, columns: int = 8):
    """Images in a grid, each with its title in its colour; an empty grid says so."""
    plt = _plt()
    n = len(images)
    cols = max(1, min(columns, n))
    rows = max(1, -(-n // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(1.9 * cols, 2.2 * rows + 0.4), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, text, colour in zip(axes.flat, images, titles, colours):
        show(ax, image, text, colour)
    if n == 0:
        axes[0, 0].text(0.5, 0.5, "none", ha="center", va="center", fontsize=14)
    fig.suptitle(title)
    return fig


def reliability(table: pd.DataFrame, ece: float):
    """The reliability diagram: accuracy against confidence per bin (a calibrated model sits on the
    diagonal), and below it how many test images fall in each bin."""
    plt = _plt()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(5.5, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    width = table.upper - table.lower
    top.bar(table.lower, table.accuracy, width=width, align="edge", edgecolor="black", color="tab:blue",
            label="accuracy in the bin")
    top.bar(table.lower, table.confidence - table.accuracy, bottom=table.accuracy, width=width, align="edge",
            color="tab:red", alpha=0.3, label="gap to the mean confidence")
    top.plot([0, 1], [0, 1], "--", color="grey", label="perfectly calibrated")
    top.set_ylim(0, 1)
    top.set_ylabel("accuracy")
    top.set_title(f"Reliability diagram (expected calibration error {ece:.3f})")
    top.legend(loc="upper left", fontsize=8)
    bottom.bar(table.lower, table["count"], width=width, align="edge", edgecolor="black", color="tab:grey")
    bottom.set_xlabel("confidence of the top prediction")
    bottom.set_ylabel("images")
    bottom.set_xlim(0, 1)
    return fig
