"""balance: the training index and class weights, from the clean index (after cleaning, so
outliers and duplicates are never multiplied).

- ``train.csv``: the clean training images, plus, with ``balance.oversample.target``, extra
  copies of minority-class images up to the target count (``max``, ``mean`` or a number). Each
  copy is a row that names its source image (``source_id``) and an exact transform from
  ``balance.oversample.transforms`` (``flip_h``, ``flip_v``, ``rot180``, and for square images
  ``rot90``, ``rot270``), applied when training reads it: no pixels are stored twice. The copies
  cycle through the class's images, then through the transforms, so the result depends on
  nothing but the index.
- ``class_weights.json``: ``balanced`` is scikit-learn's ``compute_class_weight('balanced')``,
  n_samples / (n_classes * count), over the (oversampled) training index; ``none`` gives 1.0.

A class of the clean index with no training image (only in valid or test) is a one-line error: a
model cannot learn it, and evaluate would score it as always wrong.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.utils.class_weight import compute_class_weight

from specimen import SpecimenError
from specimen.artefacts import write_csv, write_json

TRANSFORMS = ("flip_h", "flip_v", "rot180", "rot90", "rot270")


def balance(clean_index: Path, out_dir: Path, params: dict, image_size=None) -> dict:
    """Write out_dir/train.csv and out_dir/class_weights.json; return the weights record."""
    index = pd.read_csv(clean_index, keep_default_na=False, dtype={"label": str, "split": str})
    train = index[index.split == "train"]
    if train.empty:
        raise SpecimenError(f"{clean_index}: no training images left after cleaning")
    untrained = sorted(set(index.label) - set(train.label))
    if untrained:
        where = index[index.label == untrained[0]].split.value_counts()
        raise SpecimenError(
            f"{clean_index}: class {untrained[0]!r} has no training image (it has "
            f"{', '.join(f'{n} {s}' for s, n in where.items())}"
            f"{f' and {len(untrained) - 1} more classes the same' if len(untrained) > 1 else ''}): "
            "a model cannot learn it; add training images of it, or take it out of the dataset"
        )
    over = params.get("oversample") or {}
    rows = train.assign(source_id=train.id, transform="")
    if over.get("target", "none") != "none":
        transforms = over.get("transforms", ["flip_h"])
        if image_size and image_size[0] != image_size[1] and {"rot90", "rot270"} & set(transforms):
            raise SpecimenError(
                "balance.oversample.transforms: rot90/rot270 need square images; "
                f"image.size is {image_size[0]}x{image_size[1]} (use flip_h, flip_v or rot180)"
            )
        rows = pd.concat([rows, oversample(train, over["target"], transforms)], ignore_index=True)
    labels = rows.label
    classes = np.array(sorted(labels.unique()))
    if params["class_weight"] == "balanced":
        weights = compute_class_weight("balanced", classes=classes, y=labels.to_numpy())
    else:
        weights = np.ones(len(classes))
    counts, before = labels.value_counts(), train.label.value_counts()
    result = {
        "method": params["class_weight"],
        "weights": {c: round(float(w), 6) for c, w in zip(classes, weights)},
        "counts": {c: int(counts[c]) for c in classes},
        "counts_before_oversampling": {c: int(before[c]) for c in classes},
    }
    write_csv(out_dir / "train.csv", rows)
    write_json(out_dir / "class_weights.json", result)
    return result


def apply_transform(image: np.ndarray, name: str) -> np.ndarray:
    """An exact (lossless) flip or rotation of an (h, w, c) image; "" leaves it as it is."""
    return {
        "": lambda a: a,
        "flip_h": lambda a: a[:, ::-1],
        "flip_v": lambda a: a[::-1],
        "rot180": lambda a: a[::-1, ::-1],
        "rot90": lambda a: np.rot90(a, 1),
        "rot270": lambda a: np.rot90(a, 3),
    }[name](image)


def target_count(counts: pd.Series, target) -> int:
    if target == "max":
        return int(counts.max())
    if target == "mean":
        return int(round(counts.mean()))
    return int(target)


def oversample(train: pd.DataFrame, target, transforms: list[str]) -> pd.DataFrame:
    """Extra rows bringing each class up to `target` images: (image i, transform t) pairs, cycling
    through the class's images (sorted by id) first, then through the transforms."""
    if not transforms:
        raise SpecimenError("balance.oversample.transforms is empty: name at least one of " + ", ".join(TRANSFORMS))
    goal = target_count(train.label.value_counts(), target)
    extra = []
    for _label, group in train.sort_values("id").groupby("label", sort=True):
        for j in range(max(0, goal - len(group))):
            src = group.iloc[j % len(group)]
            name = transforms[(j // len(group)) % len(transforms)]
            extra.append(
                {
                    **src.to_dict(),
                    "id": f"{src.id}#{name}#{j // (len(group) * len(transforms))}",
                    "source_id": src.id,
                    "transform": name,
                }
            )
    return pd.DataFrame(extra, columns=[*train.columns, "source_id", "transform"])
