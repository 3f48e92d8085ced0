"""Label issues: training images whose given label the data disagrees with, found by confident
learning (cleanlab's ``find_label_issues``) on out-of-sample predicted probabilities, as cleanlab's
guides do: a standardised logistic regression fitted ``folds`` times (stratified K-fold, seeded),
each image scored by the fit that did not see it, on embed's features (``input: features``) or on
the pixel thumbnails the baselines use (``pixels``).

Each issue carries the suggested label (the class the model gives most probability, other than the
given one), its probability (``confidence``) and cleanlab's label quality score (the probability
of the given label, ``self_confidence``): the lower, the likelier the label is wrong.

Confident learning trusts the model only as far as it tells the classes apart. Below
``min_accuracy`` out-of-sample, its disagreements say more about the model than about the labels
(on the demo's digits colour histograms reach 0.15, pixels 0.30), so no image is named and the
summary says why: give clean a learnt embedding (embed.extractor clip or vgg16). The first fold
decides alone when it is below: the others would cost minutes at 100k images (bench/scale.py) to
confirm a verdict that one fold of a fifth of the images already gives.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from specimen.clean.neighbours import pinned_threads

COLUMNS = ["position", "suggested_label", "confidence", "label_quality"]


def label_issues(vectors: np.ndarray, labels: np.ndarray, params: dict, seed: int) -> tuple[pd.DataFrame, dict]:
    """(issues, what was done): the issues' row positions in `vectors`, most likely wrong first."""
    import cleanlab
    from sklearn.base import clone
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    classes, y = np.unique(labels, return_inverse=True)
    counts = np.bincount(y) if len(y) else np.zeros(0, int)
    folds = int(min(params["folds"], counts.min())) if len(counts) else 0
    done = {"checked": False, "input": params["input"], "images": len(y), "folds": folds}
    if len(classes) < 2 or folds < 2:
        smallest = classes[counts.argmin()] if len(classes) else None
        why = "one class" if len(classes) < 2 else f"class {smallest!r} has {counts.min()} training image"
        return pd.DataFrame(columns=COLUMNS), {**done, "why": f"{why}: K-fold needs two per class"}
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    probs = np.zeros((len(y), len(classes)))
    # one thread: OpenBLAS's four on two cores made each fit 19 times slower (11.3 s against 0.6 s for
    # 30 iterations on 5,600 images); one is as deterministic as four, on any machine
    with pinned_threads(1), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for k, (fit, held) in enumerate(cv.split(vectors, y)):  # as cross_val_predict, a fold at a time
            probs[held] = clone(model).fit(vectors[fit], y[fit]).predict_proba(vectors[held])
            if k > 0:
                continue
            accuracy = float((probs[held].argmax(axis=1) == y[held]).mean())
            if accuracy < params["min_accuracy"]:
                # not trusted on its first fold: the other folds (most of the cost: minutes at 100k
                # images) would not change the verdict by much
                return pd.DataFrame(columns=COLUMNS), {
                    **done,
                    **_untrusted(accuracy, f"first of {folds} folds", params),
                }
    accuracy = float((probs.argmax(axis=1) == y).mean())
    done["out_of_sample_accuracy"] = round(accuracy, 6)
    if accuracy < params["min_accuracy"]:
        return pd.DataFrame(columns=COLUMNS), {**done, **_untrusted(accuracy, f"{folds}-fold", params)}
    ranked = cleanlab.filter.find_label_issues(
        labels=y, pred_probs=probs, return_indices_ranked_by="self_confidence", n_jobs=1
    )
    quality = cleanlab.rank.get_label_quality_scores(y, probs, method="self_confidence")
    others = probs.copy()
    others[np.arange(len(y)), y] = -1.0  # the suggestion is never the label given
    suggested = others.argmax(axis=1)
    issues = pd.DataFrame(
        {
            "position": ranked,
            "suggested_label": classes[suggested[ranked]],
            "confidence": probs[ranked, suggested[ranked]].round(6),
            "label_quality": quality[ranked].round(6),
        },
        columns=COLUMNS,
    )
    return issues, {**done, "checked": True, "found": len(issues)}


def _untrusted(accuracy: float, judged_on: str, params: dict) -> dict:
    why = (
        f"the model's out-of-sample accuracy on {params['input']} ({judged_on}) is {accuracy:.2f}, below "
        f"clean.labels.min_accuracy {params['min_accuracy']}: its disagreements would say more about it than "
        "about the labels (a learnt embedding, embed.extractor clip or vgg16, tells the classes apart)"
    )
    return {"out_of_sample_accuracy": round(accuracy, 6), "accuracy_of": judged_on, "why": why}
