"""balance: class weights for training, from the training split of the clean index.

``balanced`` is scikit-learn's ``compute_class_weight('balanced')``: n_samples / (n_classes *
count). ``none`` gives every class 1.0. Written as JSON keyed by class name, with the counts.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.utils.class_weight import compute_class_weight

from specimen import SpecimenError
from specimen.files import write_json


def balance(clean_index: Path, out_path: Path, method: str) -> dict:
    labels = pd.read_csv(clean_index, keep_default_na=False, dtype=str).query("split == 'train'").label
    if labels.empty:
        raise SpecimenError(f"{clean_index}: no training images left after cleaning")
    classes = np.array(sorted(labels.unique()))
    if method == "balanced":
        weights = compute_class_weight("balanced", classes=classes, y=labels.to_numpy())
    else:
        weights = np.ones(len(classes))
    counts = labels.value_counts()
    result = {"method": method,
              "weights": {c: round(float(w), 6) for c, w in zip(classes, weights)},
              "counts": {c: int(counts[c]) for c in classes}}
    write_json(out_path, result)
    return result
