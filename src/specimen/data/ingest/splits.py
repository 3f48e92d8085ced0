"""Splits, when the dataset gives none: stratified train/valid/test from dataset.split and seed (the
one image of a class goes to train; files with the same content go to one split together, so that
clean finds no leak between splits that specimen made); or provided train and valid pooled and
split again."""

from __future__ import annotations

import pandas as pd
from sklearn.model_selection import train_test_split

ALONE = "the only image of its class: train split"


def alone_in_class(frame: pd.DataFrame) -> pd.Series:
    """The kept rows whose class has no other kept image, when there are two classes at least."""
    ok = frame.status == "ok"
    counts = frame[ok].label.value_counts()
    return ok & (frame.label.map(counts) == 1) & (len(counts) > 1)


def assign_splits(frame: pd.DataFrame, proportions: dict, seed: int) -> pd.Series:
    """A stratified train/valid/test split of the kept rows, reproducible from the seed. The one
    image of a class that has only one goes to train (a model cannot learn a class it never sees),
    and the other classes are split as if it were not there. Files with the same content (sha256)
    are split as one: the first of them draws the split, and its copies follow it."""
    split = pd.Series("", index=frame.index)
    alone = alone_in_class(frame)
    split[alone] = "train"
    kept = frame[(frame.status == "ok") & ~alone]
    key = kept.sha256  # a copy follows the first file of its content
    first = kept.loc[~key.duplicated()]
    split[first.index] = _stratified(first, proportions, seed)
    split[kept.index] = key.map(dict(zip(key[first.index], split[first.index])))
    return split


def _stratified(ok: pd.DataFrame, proportions: dict, seed: int) -> pd.Series:
    split = pd.Series("", index=ok.index)
    counts = ok.label.value_counts()
    stratify_ok = counts.min() >= 3 if len(counts) else False
    rest_frac = proportions["valid"] + proportions["test"]
    if len(ok) < 3 or rest_frac == 0:
        split[ok.index] = "train"
        return split
    train_idx, rest_idx = train_test_split(
        ok.index, test_size=rest_frac, random_state=seed, stratify=ok.label if stratify_ok else None
    )
    split[train_idx] = "train"
    if proportions["test"] == 0:
        split[rest_idx] = "valid"
    elif proportions["valid"] == 0:
        split[rest_idx] = "test"
    elif len(rest_idx) < 2:  # one image left for valid and test: the test split needs it more
        split[rest_idx] = "test"
    else:
        rest = ok.loc[rest_idx]
        strat = rest.label if stratify_ok and rest.label.value_counts().min() >= 2 else None
        valid_idx, test_idx = train_test_split(
            rest_idx, test_size=proportions["test"] / rest_frac, random_state=seed, stratify=strat
        )
        split[valid_idx] = "valid"
        split[test_idx] = "test"
    return split


def resplit_train_valid(frame: pd.DataFrame, proportions: dict, seed: int) -> pd.Series:
    """Pool the kept train and valid rows and re-split them with dataset.split's train:valid ratio;
    where the dataset brings no test images (train and val folders only), with all of dataset.split,
    so that the pool gives the test split too."""
    ok = frame.status == "ok"
    pool = frame[ok & frame.split.isin(["train", "valid"])]
    total = proportions["train"] + proportions["valid"]
    ratio = {"train": proportions["train"] / total, "valid": proportions["valid"] / total, "test": 0}
    if not (ok & (frame.split == "test")).any():
        ratio = proportions
    split = frame.split.copy()
    split[pool.index] = assign_splits(pool, ratio, seed)
    return split
