"""baselines: scikit-learn models the CNNs are compared against, on the clean train/test splits.

Each of ``baselines.models`` (``logistic_regression``, ``mlp``, ``linear_svm``, ``random_forest``)
is fitted on each of ``baselines.inputs``:

- ``pixels``: the processed image (from the shards) downscaled to ``baselines.pixels.size`` with
  ``cv2.INTER_AREA``, converted to grey, flattened, divided by 255;
- ``features``: embed's vector of the image (``data/features/<extractor>.npz``, matched by id): a
  linear probe of the embedding.

Training rows are the clean index's ``train`` split (not balance's oversampled train.csv), at most
``baselines.max_train_images`` of them (a seeded, stratified subsample above that); scores are on its
``test`` split. Logistic regression, the MLP and the linear SVM see standardised inputs
(``StandardScaler`` in a ``Pipeline``). Everything is seeded with ``seed``, and BLAS runs on one
thread, so the same inputs give the same bytes whatever the number of cores; a fit that stops at its
``max_iter`` is recorded as ``converged: false``, not warned about.

Writes into results/baselines/:

- ``runs/<input>_<model>/``: ``classification_report.txt`` and ``.json`` (scikit-learn),
  ``metrics.json`` (accuracy, macro F1, weighted F1, test count: the same keys as evaluate's) and
  ``fit.json`` (converged, iterations, train images used and available, input width, parameters,
  settings). These are deterministic.
- ``summary.csv``: one row per baseline: ``model, input, accuracy, macro_f1, weighted_f1`` (test),
  ``valid_accuracy, valid_macro_f1, valid_weighted_f1`` (the validation split, what report ranks by; empty without one),
  ``parameters, train_seconds, images_per_second, test_images``. ``input`` is ``pixels`` or
  ``features:<extractor>``; ``parameters`` counts the learned numbers of the final estimator
  (``coef_`` + ``intercept_``; the MLP's ``coefs_`` + ``intercepts_``; the random forest's tree
  nodes; the scaler's means and scales are not counted); ``train_seconds`` is the wall time of the
  fit alone and ``images_per_second`` the train images over it. Those two columns are timings, so
  summary.csv (unlike the rest) is not byte-identical from one run to the next.
- ``summary.png``: accuracy and macro F1 per baseline, one bar chart.

An empty ``baselines.models`` writes a summary with no rows.
"""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from specimen import SpecimenError, figures
from specimen.artefacts import atomic_dir, write_csv, write_json
from specimen.report.scores import headline, write_scores
from specimen.shards import pixel_vectors
from specimen.train.inputs import load_classes, split_rows

MODELS = ("logistic_regression", "mlp", "linear_svm", "random_forest")
COLUMNS = [
    "model",
    "input",
    "accuracy",
    "macro_f1",
    "weighted_f1",
    "valid_accuracy",
    "valid_macro_f1",
    "valid_weighted_f1",
    "parameters",
    "train_seconds",
    "images_per_second",
    "test_images",
]


def baselines(
    processed: Path, index_path: Path, classes_path: Path, features_path: Path, out_dir: Path, params: dict, seed: int
) -> dict:
    classes = load_classes(classes_path)
    class_id = {c: i for i, c in enumerate(classes)}
    train, test, valid = (split_rows(index_path, s) for s in ("train", "test", "valid"))
    if test.empty:
        raise SpecimenError(
            f"{index_path}: the test split is empty; give the dataset a test folder or a dataset.split.test above 0"
        )
    if train.empty:
        raise SpecimenError(f"{index_path}: the train split is empty: nothing to fit the baselines on")
    for rows in (train, test):
        unknown = rows.label[~rows.label.isin(class_id)]
        if len(unknown):
            raise SpecimenError(f"{index_path}: label {unknown.iloc[0]!r} is not in {classes_path}: re-run ingest")
    available = len(train)
    train = train.iloc[stratified_subsample(train.label.to_numpy(), params["max_train_images"], seed)].reset_index(
        drop=True
    )
    y_train, y_test, y_valid = (r.label.map(class_id).to_numpy() for r in (train, test, valid))
    if params["models"] and len(np.unique(y_train)) < 2:
        raise SpecimenError(
            f"{index_path}: the train split holds one class ({train.label.iloc[0]!r}): a classifier needs two"
        )

    inputs = {}  # every input read (and checked) before the first fit
    for source in params["inputs"] if params["models"] else []:
        if source == "pixels":
            size = params["pixels"]["size"]
            inputs[source] = ("pixels", *(pixel_vectors(processed, r, size) for r in (train, test, valid)))
        else:
            (x_train, x_test, x_valid), extractor = feature_vectors(features_path, train, test, valid)
            inputs[source] = (f"features:{extractor}", x_train, x_test, x_valid)

    rows, not_converged = [], []
    with atomic_dir(Path(out_dir) / "runs") as runs:
        for source, (label, x_train, x_test, x_valid) in inputs.items():
            for name in params["models"]:
                model = make_model(name, params, seed)
                seconds, converged = fit(model, x_train, y_train)
                run = runs / f"{source}_{name}"
                metrics = score(model, x_test, y_test, classes, run)
                chosen_on = headline(y_valid, predict(model, x_valid) if len(y_valid) else [], len(classes))
                estimator = model[-1]
                n_iter = getattr(estimator, "n_iter_", None)
                fitted = {
                    "model": name,
                    "input": label,
                    "converged": converged,
                    "iterations": None if n_iter is None else int(np.max(n_iter)),
                    "train_images": len(train),
                    "train_images_available": available,
                    "input_width": int(x_train.shape[1]),
                    "parameters": parameter_count(estimator),
                    "settings": params[name],
                    "seed": seed,
                }
                write_json(run / "fit.json", fitted)
                if not converged:
                    not_converged.append(run.name)
                rows.append(
                    {
                        "model": name,
                        "input": label,
                        **{k: metrics[k] for k in ("accuracy", "macro_f1", "weighted_f1")},
                        "valid_accuracy": chosen_on["accuracy"],
                        "valid_macro_f1": chosen_on["macro_f1"],
                        "valid_weighted_f1": chosen_on["weighted_f1"],
                        "parameters": fitted["parameters"],
                        "train_seconds": round(seconds, 6),
                        "images_per_second": round(len(train) / max(seconds, 1e-9), 6),
                        "test_images": metrics["test_images"],
                    }
                )
    summary = pd.DataFrame(rows, columns=COLUMNS)
    figures.save(figures.baselines(summary), Path(out_dir) / "summary.png")
    write_csv(Path(out_dir) / "summary.csv", summary)
    return {
        "summary": summary,
        "train_images": len(train),
        "train_images_available": available,
        "test_images": len(test),
        "not_converged": not_converged,
    }


def make_model(name: str, params: dict, seed: int):
    """The scikit-learn Pipeline for one baseline, with its settings from params.yaml."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    s = params[name]
    if name == "logistic_regression":
        return make_pipeline(StandardScaler(), LogisticRegression(C=s["C"], max_iter=s["max_iter"], random_state=seed))
    if name == "mlp":
        return make_pipeline(
            StandardScaler(),
            MLPClassifier(hidden_layer_sizes=tuple(s["hidden"]), max_iter=s["max_iter"], random_state=seed),
        )
    if name == "linear_svm":
        return make_pipeline(StandardScaler(), LinearSVC(C=s["C"], max_iter=s["max_iter"], random_state=seed))
    if name == "random_forest":
        # trees are seeded one by one: the forest is the same whatever n_jobs (Snakemake's threads: it
        # sets OMP_NUM_THREADS to the rule's `threads`)
        threads = os.environ.get("OMP_NUM_THREADS", "")
        return make_pipeline(
            RandomForestClassifier(
                n_estimators=s["trees"],
                max_depth=s["max_depth"],
                random_state=seed,
                n_jobs=int(threads) if threads.isdigit() and int(threads) > 0 else 1,
            )
        )
    raise SpecimenError(f"baselines.models: {name!r}: choose from {', '.join(MODELS)}")


def parameter_count(estimator) -> int:
    """Learned numbers of a fitted final estimator (see the module docstring)."""
    if hasattr(estimator, "estimators_"):
        return int(sum(tree.tree_.node_count for tree in estimator.estimators_))
    if hasattr(estimator, "coefs_"):
        return int(sum(a.size for a in (*estimator.coefs_, *estimator.intercepts_)))
    return int(estimator.coef_.size + np.size(estimator.intercept_))


def stratified_subsample(labels: np.ndarray, limit: int, seed: int) -> np.ndarray:
    """Positions of at most `limit` rows, each class in proportion (scikit-learn's stratified
    `resample`, which unlike train_test_split accepts classes of one image), in index order."""
    from sklearn.utils import resample

    positions = np.arange(len(labels))
    if len(labels) <= limit:
        return positions
    return np.sort(resample(positions, replace=False, n_samples=limit, stratify=labels, random_state=seed))


def feature_vectors(features_path: Path, *frames: pd.DataFrame) -> tuple[list[np.ndarray], str]:
    """embed's vectors of each frame's rows, matched by id, and the extractor's name."""
    with np.load(features_path) as npz:
        ids, features = npz["ids"], npz["features"]
        extractor = str(npz["extractor"]) if "extractor" in npz else Path(features_path).stem
    where = pd.Series(np.arange(len(ids)), index=ids.astype(str))
    vectors = []
    for rows in frames:
        missing = rows.id.astype(str)[~rows.id.astype(str).isin(where.index)]
        if len(missing):
            raise SpecimenError(
                f"{features_path} has no vector for {len(missing)} of the clean index's {rows.split.iloc[0]} "
                f"images (e.g. {missing.iloc[0]!r}): re-run embed"
            )
        vectors.append(features[where.loc[rows.id.astype(str)].to_numpy()].astype(np.float32))
    return vectors, extractor


def fit(model, x: np.ndarray, y: np.ndarray) -> tuple[float, bool]:
    """Fit on one BLAS thread (the same floats whatever the cores); return (seconds, converged)."""
    from sklearn.exceptions import ConvergenceWarning
    from threadpoolctl import threadpool_limits

    with warnings.catch_warnings(record=True) as caught, threadpool_limits(limits=1, user_api="blas"):
        warnings.simplefilter("always")
        start = time.perf_counter()
        model.fit(x, y)
        seconds = time.perf_counter() - start
    converged = True
    for w in caught:
        if issubclass(w.category, ConvergenceWarning):
            converged = False
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return seconds, converged


def score(model, x, y_true, classes: list[str], out_dir: Path) -> dict:
    """classification_report.txt / .json and metrics.json, as evaluate writes them for a CNN."""
    return write_scores(y_true, predict(model, x), classes, out_dir, pictures=False)


def predict(model, x) -> np.ndarray:
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):  # as in fit: the same floats whatever the cores
        return model.predict(x)
