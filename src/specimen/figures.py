"""Every figure specimen draws, with matplotlib (the Agg backend, set here and nowhere else).

Each function draws one figure and returns it; ``save`` writes it atomically and closes it. A
model's report (evaluate), what it looks at (explain), the images per class before and after
cleaning (clean), the baselines, the comparison of models and baselines (report), a search's
trials (tune).
They are made to be read at any number of classes: the confusion matrices and the per-class bars
grow with the classes up to a cap, shrink their labels to fit, and drop cell numbers that would
not fit (200 classes give a 28-inch matrix with 6-point labels).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from specimen.artefacts import atomic_file

ANNOTATE_UP_TO = 30  # classes: above this, the matrix cells carry colour only


def plt():
    """matplotlib's pyplot on the Agg backend (no screen needed): the one place that chooses it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot

    return matplotlib.pyplot


def save(fig, path: Path) -> None:
    """The figure as a PNG artefact, atomically, its title (what it shows) in the PNG's Title field."""
    with atomic_file(path) as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png", metadata={"Title": title(fig)})
    plt().close(fig)


def title(fig) -> str:
    """The figure's own title, else its panels' titles joined by " | "."""
    return fig.get_suptitle() or " | ".join(t for ax in fig.axes if (t := ax.get_title()))


def _side(n: int) -> tuple[float, float]:
    """(inches per class, label font size in points) for a matrix or bar chart of n classes."""
    cell = 0.45 if n <= ANNOTATE_UP_TO else max(0.12, 12 / n)
    return cell, float(np.clip(cell * 72 * 0.6, 5, 10))


def confusion(matrix: np.ndarray, classes: list[str], normalized: bool = False):
    """The confusion matrix, true classes down, predicted across; `normalized` divides each row by
    its count (the diagonal is then each class's recall)."""
    pyplot = plt()
    n = len(classes)
    counts = matrix.sum(axis=1, keepdims=True)
    values = np.divide(matrix, counts, out=np.zeros(matrix.shape), where=counts > 0) if normalized else matrix
    cell, font = _side(n)
    side = 2.5 + cell * n
    fig, ax = pyplot.subplots(figsize=(side + 1.2, side))
    image = ax.imshow(
        values, cmap="Blues", vmin=0, vmax=1 if normalized else max(1, values.max()), interpolation="nearest"
    )
    fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02, label="share of the true class" if normalized else "images")
    ax.set_xticks(range(n), classes, rotation=90, fontsize=font)
    ax.set_yticks(range(n), classes, fontsize=font)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= ANNOTATE_UP_TO:
        for i, j in zip(*np.nonzero(matrix)):
            text = f"{values[i, j]:.2f}" if normalized else str(matrix[i, j])
            ax.text(
                j,
                i,
                text,
                ha="center",
                va="center",
                fontsize=font - 1,
                color="white" if values[i, j] > 0.6 * (1 if normalized else values.max()) else "black",
            )
    kind = "normalised by true class (recall on the diagonal)" if normalized else "counts"
    ax.set_title(f"Confusion matrix, {kind} (test, n={int(matrix.sum())})")
    return fig


def f1_bars(report: dict, classes: list[str]):
    """Each class's F1, sorted from worst (top) to best, with its support and the macro mean."""
    pyplot = plt()
    frame = pd.DataFrame(
        {
            "class": classes,
            "f1": [report[c]["f1-score"] for c in classes],
            "support": [int(report[c]["support"]) for c in classes],
        }
    )
    frame = frame.sort_values(["f1", "class"], ascending=[True, True], kind="stable")
    cell, font = _side(len(classes))
    fig, ax = pyplot.subplots(figsize=(8, 1.5 + cell * len(classes)))
    bars = ax.barh(range(len(frame)), frame.f1, color=pyplot.cm.RdYlGn(frame.f1.to_numpy()))
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
    pyplot = plt()
    fig, axes = pyplot.subplots(1, 2, figsize=(10, 4))
    fig.suptitle(f"Accuracy and loss per epoch, {len(history)} epochs")
    starts = history.epoch[history.phase.ne(history.phase.shift()) & (history.index > 0)] if "phase" in history else []
    for ax, metric in zip(axes, ("accuracy", "loss")):
        ax.plot(history.epoch, history[metric], marker="o", label="train")
        if f"val_{metric}" in history:
            ax.plot(history.epoch, history[f"val_{metric}"], marker="o", label="valid")
        for epoch in starts:
            ax.axvline(epoch - 0.5, color="grey", linestyle="--", linewidth=1)
            ax.annotate(
                history.phase[history.epoch == epoch].iloc[0],
                (epoch - 0.5, 1),
                xycoords=("data", "axes fraction"),
                xytext=(3, -12),
                textcoords="offset points",
                fontsize=8,
                color="grey",
            )
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
    pyplot = plt()
    n = len(images)
    cols = max(1, min(columns, n))
    rows = max(1, -(-n // cols))
    fig, axes = pyplot.subplots(rows, cols, figsize=(1.9 * cols, 2.2 * rows + 0.4), squeeze=False)
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
    pyplot = plt()
    fig, (top, bottom) = pyplot.subplots(2, 1, figsize=(5.5, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    width = table.upper - table.lower
    top.bar(
        table.lower,
        table.accuracy,
        width=width,
        align="edge",
        edgecolor="black",
        color="tab:blue",
        label="accuracy in the bin",
    )
    top.bar(
        table.lower,
        table.confidence - table.accuracy,
        bottom=table.accuracy,
        width=width,
        align="edge",
        color="tab:red",
        alpha=0.3,
        label="gap to the mean confidence",
    )
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


# -- clean, baselines, report, tune ------------------------------------------------------------


def class_counts(index: pd.DataFrame, kept: pd.DataFrame, split_order: list[str]):
    """Images per class before and after cleaning, one panel per split."""
    classes = sorted(index.label.unique(), key=str)
    splits = [s for s in split_order if (index.split == s).any()]
    fig, axes = plt().subplots(
        1, len(splits), figsize=(max(6, 0.35 * len(classes) * len(splits) + 2), 4), squeeze=False, sharey=False
    )
    x = np.arange(len(classes))
    for ax, split in zip(axes[0], splits):
        before = index[index.split == split].label.value_counts().reindex(classes, fill_value=0)
        after = kept[kept.split == split].label.value_counts().reindex(classes, fill_value=0)
        ax.bar(x - 0.2, before.to_numpy(), 0.4, label="before", color="#bbbbbb")
        ax.bar(x + 0.2, after.to_numpy(), 0.4, label="after cleaning", color="#3b75af")
        ax.set_title(f"{split}: {int(before.sum())} -> {int(after.sum())} images")
        ax.set_xticks(x, [str(c) for c in classes], rotation=90 if len(classes) > 12 else 0)
        ax.set_xlabel("class")
    axes[0][0].set_ylabel("images")
    axes[0][0].legend()
    fig.tight_layout()
    return fig


def baselines(summary: pd.DataFrame):
    """Accuracy and macro F1 per baseline: horizontal bars, in summary order from the top."""
    fig, ax = plt().subplots(figsize=(8, 1.5 + 0.55 * max(len(summary), 2)))
    positions = np.arange(len(summary))
    for shift, column, name in ((-0.2, "accuracy", "accuracy"), (0.2, "macro_f1", "macro F1")):
        bars = ax.barh(positions + shift, summary[column], height=0.4, label=name)
        ax.bar_label(bars, fmt="%.3f", fontsize=7, padding=2)
    ax.set_yticks(positions, [f"{m} on {i}" for m, i in zip(summary.model, summary["input"])], fontsize=8)
    ax.set_ylim(len(summary) - 0.5 if len(summary) else 1, -0.5)  # the first row at the top
    ax.set_xlim(0, 1.1)
    ax.set_xlabel("test score")
    ax.grid(axis="x", alpha=0.3)
    if summary.empty:
        ax.text(0.5, 0.5, "no baselines (baselines.models is empty)", ha="center", va="center", transform=ax.transAxes)
    else:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    ax.set_title("Baselines on the test split" + (f" (n={int(summary.test_images.max())})" if len(summary) else ""))
    return fig


def comparison(table: pd.DataFrame):
    """Models and baselines: accuracy and macro F1 (best at the top), and accuracy against train time."""
    table = table.iloc[::-1]  # best at the top
    fig, (scores, speed) = plt().subplots(
        1, 2, figsize=(13, max(3.5, 0.42 * len(table) + 1.5)), gridspec_kw={"width_ratios": [3, 2]}
    )
    table.set_index("name")[["accuracy", "macro_f1"]].plot.barh(
        ax=scores, xlim=(0, 1), width=0.8, color=["#4c72b0", "#dd8452"]
    )
    scores.set_title("Test split: trained models and baselines")
    scores.set_ylabel("")
    scores.grid(axis="x", alpha=0.3)
    scores.legend(["accuracy", "macro F1"], loc="lower right")
    for kind, marker in (("keras", "o"), ("baseline", "s")):
        part = table[table.kind == kind]
        speed.scatter(part.train_seconds, part.accuracy, marker=marker, s=60, label=kind)
        for _, row in part.iterrows():
            speed.annotate(
                row["name"], (row.train_seconds, row.accuracy), fontsize=7, xytext=(4, 2), textcoords="offset points"
            )
    speed.set_xscale("log")
    speed.set_xlabel("train time (s, log scale)")
    speed.set_ylabel("accuracy")
    speed.set_ylim(0, 1.05)
    speed.grid(alpha=0.3)
    speed.legend(loc="lower right")
    speed.set_title("Accuracy against train time")
    return fig


def trials(table: pd.DataFrame, model_name: str, monitor: str, mode: str):
    """A search's score per trial, the best so far as a step, the best trial starred."""
    done = table.dropna(subset=[monitor])
    best_so_far = done[monitor].cummin() if mode == "min" else done[monitor].cummax()
    best = done.loc[done[monitor].idxmin() if mode == "min" else done[monitor].idxmax()]
    fig, ax = plt().subplots(figsize=(7, 4))
    ax.plot(done.trial, done[monitor], "o", color="tab:blue", label=f"{monitor} of the trial")
    ax.step(done.trial, best_so_far, where="post", color="tab:orange", label="best so far")
    ax.plot([best.trial], [best[monitor]], "*", color="tab:red", markersize=16, label=f"best: trial {int(best.trial)}")
    ax.set_xlabel("trial")
    ax.set_ylabel(monitor)
    ax.set_title(f"tune {model_name}: {monitor} per trial ({'lower' if mode == 'min' else 'higher'} is better)")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend()
    return fig


# -- explain ---------------------------------------------------------------------------------

EXPLAIN_PER_ROW = 4  # Grad-CAM images per row of the grid (two panels each)
MAX_CHANNELS = 16  # feature maps shown per layer


def _grid(rows: int, cols: int, tile: float = 1.6):
    """A figure of rows x cols square tiles (`tile` inches, plus room for their titles), axes off."""
    fig, axes = plt().subplots(rows, cols, figsize=(tile * cols, (tile + 0.35) * rows + 0.4), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    return fig, axes


def _titled(fig, title: str):
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def gradcam(images, heatmaps, true, predicted, probs, layer: str):
    """Pairs (image, heatmap over it), EXPLAIN_PER_ROW pairs to a row."""
    cols = min(len(images), EXPLAIN_PER_ROW)
    fig, axes = _grid(-(-len(images) // EXPLAIN_PER_ROW), 2 * cols)
    for k, (image, heat) in enumerate(zip(images, heatmaps)):
        left, right = axes.flat[2 * k], axes.flat[2 * k + 1]
        show(left, image, f"true {true[k]}")
        show(right, image, f"pred {predicted[k]} ({probs[k]:.2f})", "black" if predicted[k] == true[k] else "red")
        right.imshow(heat, cmap="jet", alpha=0.45, vmin=0, vmax=1, interpolation="bilinear")
    return _titled(fig, f"Grad-CAM on {layer}: where the evidence for the predicted class is")


def feature_maps(image, maps: list[tuple[str, np.ndarray]]):
    """One row per layer: the image, then its most active channels (by mean activation)."""
    fig, axes = _grid(len(maps), 1 + MAX_CHANNELS, tile=1.1)
    for row, (name, m) in zip(axes, maps):
        show(row[0], image, "input")
        row[0].text(-0.15, 0.5, name, transform=row[0].transAxes, rotation=90, ha="right", va="center", fontsize=8)
        top = np.sort(np.argsort(-m.mean(axis=(0, 1)), kind="stable")[:MAX_CHANNELS])
        for ax, c in zip(row[1:], top):
            ax.imshow(m[..., c], cmap="viridis")
            ax.set_title(f"#{c}", fontsize=7)
    return _titled(fig, f"Feature maps of the first {len(maps)} convolution layers (most active channels)")


def activation_max(images, classes: list[str], probs, steps: int):
    """One tile per class, five to a row, titled with the class and its probability."""
    cols = min(len(images), 5)
    fig, axes = _grid(-(-len(images) // cols), cols, tile=2.0)
    for ax, image, name, p in zip(axes.flat, images, classes, probs):
        show(ax, image, f"{name} (p={p:.2f})")
    return _titled(fig, f"Activation maximisation: {steps} steps of gradient ascent per class")
