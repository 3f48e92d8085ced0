"""clean: remove copies, cross-split leaks and unusable images; flag or remove low-quality images,
outliers and likely wrong labels; score every image.

Steps, in order; an image removed by one step is not looked at by the next, and its first reason
is the one reported:

1. exact copies (``duplicates.exact``): the same file content (sha256).
2. near copies: pairs whose perceptual hashes (imagehash's pHash, 64 bits) differ in at most
   ``phash_bits`` bits and whose 32x32 grey thumbnails correlate at least ``min_correlation``;
   and, with ``cosine``, pairs among each image's nearest neighbours at least that similar in the
   embedding. Copies come first so that a copy is reported as one, beside the image it copies.
3. image quality (``quality``): cleanvision's properties and scores (dark, light, blurry,
   low_information, odd_aspect_ratio, grayscale, odd_size), computed by cleanvision's own code on
   each processed image's unpadded pixels (aspect ratio and size on the source file's size;
   grayscale: one channel, or three equal ones, where cleanvision asks for a file of mode L). A
   score below the threshold is the issue; per kind the image is removed, flagged (kept, named in
   ``flags``) or not checked.
4. outliers (``outliers``) over the embed features: ``knn`` is cleanlab's score, the mean cosine
   distance to the k nearest images, flagged above Q3 + iqr_factor * IQR of those scores and above
   min_ratio times their median; ``lof`` and ``isolation_forest`` are scikit-learn's, with
   ``contamination``. ``scope: class`` scores an image against its own class only, ``all``
   against every image, ``both`` either. ``action: auto`` flags them on colour histograms (an
   unusual colour is no reason to drop a photo) and removes them on a learnt embedding. Colour
   histograms are compared as square-rooted distributions (cosine of those is the Bhattacharyya
   coefficient), other features as they are.
5. label issues (``labels``), in train: cleanlab's confident learning on K-fold out-of-sample
   probabilities (specimen.clean.labels); flagged, removed or relabelled.

Valid and test (``holdout: flag``) lose only what cannot be a fair test image: copies and the
quality kinds in ``unusable`` (blank images); a rule that removes in train flags there.

Of each group of copies the one in the earliest split (train, valid, test; then by id) is kept. A
copy in the same split is a ``duplicate`` / ``near_duplicate``; a copy in a later split is a
``leak`` / ``near_leak``: it would score the model on an image it trained on.

A run that would remove every train or every test image stops with a one-line error instead:
training or evaluate would have nothing to work on.

Writes into the output folder (data/clean/):
- ``index.csv``: the kept images (the processed index, plus ``outlier_score`` and ``flags``);
- ``removed.csv``: id, split, label, reason, score, twin (the kept copy, for duplicates), detail;
- ``label_issues.csv``: id, split, label, suggested_label, confidence, label_quality, action;
- ``scores.csv``: every image's scores (quality, outlier, pHash), flags and what happened to it;
- ``summary.json``: counts per reason, flag, class and split, before and after; the label check;
- ``class_counts.png``: images per class before and after cleaning, per split;
- ``gallery/<reason>.png``: the removed images of each reason, highest score first, with scores
  (duplicates beside the copy that was kept), and ``label_issue.png``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from specimen import SpecimenError, figures
from specimen.artefacts import atomic_dir, write_csv, write_json
from specimen.clean.duplicates import SPLIT_ORDER, exact_duplicates, near_duplicates
from specimen.clean.gallery import write_galleries, write_label_gallery
from specimen.clean.labels import label_issues
from specimen.clean.neighbours import comparable, pinned_threads
from specimen.clean.outliers import outlier_scores
from specimen.clean.quality import QUALITY, image_properties, quality_scores
from specimen.shards import pixel_vectors

REMOVED_COLUMNS = ["id", "split", "label", "reason", "score", "twin", "detail"]
HOLDOUT = ("valid", "test")
LEARNT_FREE = ("histogram",)  # features that describe colour, not what a photo shows


def outliers_action(params: dict, extractor: str) -> str:
    """What an outlier in train becomes: ``auto`` flags with colour histograms (an unusual colour
    is no reason to drop a photo) and removes with a learnt embedding (clip, vgg16...)."""
    if params["action"] != "auto":
        return params["action"]
    return "flag" if extractor in LEARNT_FREE else "remove"


def clean(processed: Path, features_path: Path, out_dir: Path, params: dict, seed: int) -> dict:
    # text columns as text: a label such as "01", "1e3" or "True" must stay what it is
    index = pd.read_csv(
        processed / "index.csv", keep_default_na=False, dtype={"id": str, "label": str, "split": str, "sha256": str}
    )
    with np.load(features_path) as npz:
        ids = npz["ids"]
        if list(ids) != index.id.tolist():
            raise SpecimenError(f"{features_path} does not match {processed / 'index.csv'}: re-run embed")
    del ids
    # the properties' workers fork before the features are loaded: each would hold them too
    raw, hashes, thumbs = image_properties(processed, index)
    with np.load(features_path) as npz:
        features = npz["features"]
        extractor = str(npz["extractor"]) if "extractor" in npz else Path(features_path).stem
    n = len(index)
    quality = quality_scores(raw)
    gone = np.zeros(n, dtype=bool)  # removed by an earlier step
    removed = []

    def remove(rows: pd.DataFrame) -> None:
        rows = rows[~rows.id.isin(set(index.id[gone]))]
        gone[index.id.isin(set(rows.id)).to_numpy()] = True
        removed.append(rows)

    def left() -> np.ndarray:
        return np.flatnonzero(~gone)

    # 1. copies: exact, then near, so that a copy is reported as one (with its twin)
    if params["duplicates"]["exact"]:
        remove(exact_duplicates(index))
    rows = left()
    if len(rows) > 1:
        vectors = comparable(features[rows], extractor) if params["duplicates"]["cosine"] is not None else None
        with pinned_threads():
            remove(near_duplicates(index.iloc[rows], hashes[rows], thumbs[rows], vectors, params["duplicates"]))
    # what each rule may remove where: in valid and test (holdout: flag) only what no split keeps
    holdout = index.split.isin(HOLDOUT).to_numpy()
    flags = pd.Series("", index=index.index, dtype=object)

    def flag(mask: np.ndarray, kind: str) -> None:
        flags[mask] = flags[mask] + np.where(flags[mask] == "", "", ";") + kind

    def removable(action: str, unusable: bool = False) -> np.ndarray:
        if action != "remove":
            return np.zeros(n, dtype=bool)
        return np.ones(n, dtype=bool) if unusable or params["holdout"] == "same" else ~holdout

    # 2. image quality
    for kind in QUALITY:
        check = params["quality"][kind]
        if check["action"] == "off":
            continue
        hit = (quality[kind] < check["threshold"]).to_numpy()
        out = hit & removable(check["action"], kind in params["unusable"])
        flag(hit & ~out, kind)
        live = out & ~gone
        remove(
            pd.DataFrame(
                {
                    "id": index.id[live],
                    "reason": kind,
                    "score": quality[kind][live],
                    "twin": "",
                    "detail": f"{kind} score < {check['threshold']}",
                }
            )
        )
    # 3. outliers, among the images left
    rows = left()
    overall, by_class = np.full(n, np.nan), np.full(n, np.nan)
    outlier_action = outliers_action(params["outliers"], extractor)
    if params["outliers"]["method"] != "none" and len(rows) > 2:
        with pinned_threads():
            o, c, flagged = outlier_scores(
                comparable(features[rows], extractor), index.label.to_numpy()[rows], params["outliers"], seed
            )
        overall[rows], by_class[rows] = o, c
        hit = np.zeros(n, dtype=bool)
        hit[rows[flagged]] = True
        out = hit & removable(outlier_action)
        flag(hit & ~out, "outlier")
        remove(
            pd.DataFrame(
                {
                    "id": index.id[out],
                    "reason": "outlier",
                    "score": np.fmax(overall[out], by_class[out]),
                    "twin": "",
                    "detail": f"{params['outliers']['method']} ({params['outliers']['scope']})",
                }
            )
        )
    # 4. label issues, among the training images left
    check = params["labels"]
    issues = pd.DataFrame(columns=["id", "split", "label", "suggested_label", "confidence", "label_quality", "action"])
    labels_done = {"checked": False, "why": "clean.labels.action is off"}
    rows = np.flatnonzero(~gone & (index.split == "train").to_numpy())
    if check["action"] != "off":
        if check["input"] == "pixels":
            vectors = pixel_vectors(processed, index.iloc[rows], check["pixels"])
        else:
            vectors = comparable(features[rows], extractor)
        found, labels_done = label_issues(vectors, index.label.to_numpy()[rows], check, seed)
        at = rows[found.position.to_numpy(dtype=int)]
        issues = found.drop(columns="position").assign(
            id=index.id.to_numpy()[at], split="train", label=index.label.to_numpy()[at], action=check["action"]
        )[issues.columns]
        hit = np.zeros(n, dtype=bool)
        hit[at] = True
        if check["action"] == "flag":
            flag(hit, "label_issue")
        elif check["action"] == "remove":
            remove(
                pd.DataFrame(
                    {
                        "id": issues.id,
                        "reason": "label_issue",
                        "score": 1 - issues.label_quality,
                        "twin": "",
                        "detail": [
                            f"labelled {a}, looks like {b} ({c:.2f})"
                            for a, b, c in issues[["label", "suggested_label", "confidence"]].itertuples(index=False)
                        ],
                    }
                )
            )
        else:  # relabel: the kept index carries the suggestion; label_issues.csv and scores.csv the given label
            flag(hit, "relabelled")

    removed = pd.concat(removed) if removed else pd.DataFrame(columns=["id", "reason", "score", "twin", "detail"])
    removed = removed.merge(index[["id", "split", "label"]], on="id").reindex(columns=REMOVED_COLUMNS)
    removed = removed.sort_values("id", kind="stable").reset_index(drop=True)
    index["outlier_score"] = np.round(np.nan_to_num(np.fmax(overall, by_class), nan=0.0), 6)
    index["flags"] = flags
    kept = index[~index.id.isin(set(removed.id))]
    if check["action"] == "relabel":
        kept = kept.assign(label=kept.id.map(issues.set_index("id").suggested_label).fillna(kept.label))
    check_splits_left(index, kept, removed)
    scores = index[["id", "split", "label"]].assign(
        **{f"{k}_score": quality[k].round(6) for k in QUALITY},
        outlier_score=np.round(overall, 6),
        class_outlier_score=np.round(by_class, 6),
        phash=[f"{h:016x}" for h in hashes],
        flags=flags,
        reason=index.id.map(removed.set_index("id").reason).astype(object).fillna("kept"),
    )
    summary = summarise(index, removed, flags, extractor, params)
    summary["outliers"] = {
        "action": outlier_action,
        "holdout": "flag" if params["holdout"] == "flag" else outlier_action,
    }
    summary["label_issues"] = labels_done
    with atomic_dir(out_dir / "gallery") as tmp:
        write_galleries(tmp, processed, index, removed)
        if len(issues):
            write_label_gallery(tmp, processed, index, issues, check["action"])
    write_csv(out_dir / "label_issues.csv", issues)
    write_csv(out_dir / "scores.csv", scores)
    write_json(out_dir / "summary.json", summary)
    figures.save(figures.class_counts(index, kept, list(SPLIT_ORDER)), out_dir / "class_counts.png")
    write_csv(out_dir / "removed.csv", removed)
    write_csv(out_dir / "index.csv", kept)
    return summary


def check_splits_left(index: pd.DataFrame, kept: pd.DataFrame, removed: pd.DataFrame) -> None:
    """Refuse to remove every train or every test image: training or evaluate would have nothing."""
    for split, stage in (("train", "training"), ("test", "evaluate")):
        if (index.split == split).any() and not (kept.split == split).any():
            gone = removed[removed.split == split].reason.value_counts()
            reasons = ", ".join(f"{reason} {n}" for reason, n in gone.items())
            leaks = (
                "replace the test images that copy training or validation images (leak), or " if split == "test" else ""
            )
            raise SpecimenError(
                f"clean would remove every {split} image ({reasons}), leaving {stage} nothing: "
                f"{leaks}relax clean.duplicates, clean.quality or clean.outliers"
            )


def summarise(index: pd.DataFrame, removed: pd.DataFrame, flags: pd.Series, extractor: str, params: dict) -> dict:
    def counts(frame, key):
        return {str(k): int(v) for k, v in frame.groupby(key).size().items()}

    is_kept = ~index.id.isin(set(removed.id))
    kept, kept_flags = index[is_kept], flags[is_kept]  # a removed image's flags count for nothing
    flag_counts = pd.Series([f for fs in kept_flags if fs for f in fs.split(";")]).value_counts()
    return {
        "features": extractor,
        "images": len(index),
        "kept": len(kept),
        "removed": len(removed),
        "removed_by_reason": counts(removed, "reason"),
        "flagged_by_kind": {str(k): int(v) for k, v in flag_counts.sort_index().items()},
        "flagged_per_split": {
            s: int((kept_flags[index.split == s] != "").sum()) for s in SPLIT_ORDER if (index.split == s).any()
        },
        "per_split": {
            s: {
                "before": int((index.split == s).sum()),
                "after": int((kept.split == s).sum()),
                "removed": counts(removed[removed.split == s], "reason"),
            }
            for s in SPLIT_ORDER
            if (index.split == s).any()
        },
        "per_class": {
            str(c): {
                "before": int((index.label == c).sum()),
                "after": int((kept.label == c).sum()),
                "removed": counts(removed[removed.label == c], "reason"),
            }
            for c in sorted(index.label.unique(), key=str)
        },
        "settings": {"quality": params["quality"], "outliers": params["outliers"], "duplicates": params["duplicates"]},
    }
