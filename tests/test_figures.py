"""The report's figures stay readable at many classes: labels that do not overlap, a size that
grows with the classes but stays bounded, cells that carry the counts when there is room."""

import numpy as np
import pandas as pd
import pytest

from specimen import figures


def png_title(path) -> str:
    """What a figure says it shows: the Title of the PNG that figures.save wrote (its title text)."""
    from PIL import Image

    with Image.open(path) as im:
        assert im.format == "PNG" and im.width > 300 and im.height > 200, (path, im.size)
        return im.text.get("Title", "")


def _labels_overlap(fig, labels) -> bool:
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in labels if t.get_text()]
    return any(a.overlaps(b) for a, b in zip(boxes, boxes[1:]))


def _matrix(n, seed=0):
    rng = np.random.default_rng(seed)
    matrix = rng.integers(0, 3, (n, n))
    matrix[np.diag_indices(n)] += rng.integers(5, 20, n)
    return matrix


@pytest.mark.parametrize("n", [10, 200])
@pytest.mark.parametrize("normalized", [False, True])
def test_the_confusion_matrix_is_readable_at_n_classes(tmp_path, n, normalized):
    classes = [f"species_{i:03d}_long_name" for i in range(n)]
    fig = figures.confusion(_matrix(n), classes, normalized=normalized)
    ax = fig.axes[0]
    fig.canvas.draw()
    for labels in (ax.get_xticklabels(), ax.get_yticklabels()):
        assert [t.get_text() for t in labels] == classes  # every class named, in order
        assert min(t.get_fontsize() for t in labels) >= 5
        assert not _labels_overlap(fig, labels)
    width, height = fig.get_size_inches()
    assert 5 < width < 40 and 5 < height < 40
    cells = [t for t in ax.texts]
    assert len(cells) == (np.count_nonzero(_matrix(n)) if n <= figures.ANNOTATE_UP_TO else 0)
    figures.save(fig, tmp_path / "confusion.png")
    assert (
        png_title(tmp_path / "confusion.png")
        == f"Confusion matrix, {'normalised by true class (recall on the diagonal)' if normalized else 'counts'} (test, n={_matrix(n).sum()})"
    )


def test_normalised_rows_are_recall():
    matrix = np.array([[8, 2], [0, 0]])
    fig = figures.confusion(matrix, ["a", "b"], normalized=True)
    shown = fig.axes[0].images[0].get_array()
    assert shown[0].tolist() == [0.8, 0.2] and shown[1].tolist() == [0, 0]  # an empty class is a row of zeros
    assert [t.get_text() for t in fig.axes[0].texts] == ["0.80", "0.20"]


@pytest.mark.parametrize("n", [5, 200])
def test_f1_bars_are_sorted_worst_first_and_readable(n):
    rng = np.random.default_rng(1)
    classes = [f"class {i}" for i in range(n)]
    f1 = rng.random(n).round(3)
    report = {c: {"f1-score": f, "support": 3} for c, f in zip(classes, f1)} | {"macro avg": {"f1-score": f1.mean()}}
    fig = figures.f1_bars(report, classes)
    ax = fig.axes[0]
    fig.canvas.draw()
    widths = [bar.get_width() for bar in ax.patches]
    ticks = [t.get_text() for t in ax.get_yticklabels()]
    assert widths == sorted(f1) and ticks[0] == f"{classes[int(np.argmin(f1))]} (n=3)"
    assert ax.get_ylim()[0] > ax.get_ylim()[1]  # the first bar at the top
    assert min(t.get_fontsize() for t in ax.get_yticklabels()) >= 5 and not _labels_overlap(fig, ax.get_yticklabels())


def test_the_curves_mark_where_fine_tuning_took_over():
    history = pd.DataFrame(
        {
            "epoch": [1, 2, 3, 4, 5],
            "phase": ["head"] * 2 + ["fine_tune"] * 3,
            "accuracy": [0.5, 0.6, 0.7, 0.8, 0.9],
            "val_accuracy": [0.4, 0.5, 0.6, 0.7, 0.8],
            "loss": [1, 0.8, 0.6, 0.4, 0.2],
            "val_loss": [1.1, 0.9, 0.7, 0.5, 0.3],
        }
    )
    fig = figures.curves(history)
    for ax in fig.axes:
        assert [line.get_xdata()[0] for line in ax.lines if line.get_linestyle() == "--"] == [2.5]
        assert [t.get_text() for t in ax.texts] == ["fine_tune"]
