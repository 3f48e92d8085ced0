"""train: fit one model on balance's training index, validate on the clean valid split.

Class weights and (optionally oversampled) training rows from balance, augmentation inside the model, early stopping on ``val_loss`` with
the best weights restored. Writes ``model.keras``, ``history.csv`` (one row per epoch) and
``meta.json`` (classes and the preprocessing the model expects) into results/models/<model>/.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd

from specimen import SpecimenError
from specimen.data import dataset, load_classes, split_rows
from specimen.files import atomic_file, write_csv, write_json


def seed_everything(seed: int, deterministic: bool) -> None:
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def train(model_name: str, processed: Path, index_path: Path, weights_path: Path, classes_path: Path,
          out_dir: Path, params: dict, seed: int, train_path: Path | None = None) -> pd.DataFrame:
    """Train on `train_path` (balance's train.csv, oversampled or not; default: the index's train
    split) and validate on the index's valid split."""
    seed_everything(seed, params["deterministic"])
    import keras

    from specimen.models import build

    classes = load_classes(classes_path)
    train_rows = split_rows(train_path) if train_path else split_rows(index_path, "train")
    valid_rows = split_rows(index_path, "valid")
    if train_rows.empty:
        raise SpecimenError(f"{index_path}: no training images")
    weights = json.loads(Path(weights_path).read_text())["weights"]
    class_weight = {i: weights.get(c, 1.0) for i, c in enumerate(classes)}
    meta = json.loads((Path(processed) / "meta.json").read_text())
    input_shape = (*meta["size"], meta["channels"])

    model = build(model_name, input_shape, len(classes), params, seed)
    model.compile(optimizer=keras.optimizers.Adam(params["learning_rate"]),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    train_ds = dataset(train_rows, processed, classes, params["batch_size"], shuffle=True, seed=seed)
    valid_ds = dataset(valid_rows, processed, classes, params["batch_size"]) if len(valid_rows) else None
    monitor = "val_loss" if valid_ds is not None else "loss"
    callbacks = [keras.callbacks.EarlyStopping(monitor=monitor, patience=params["patience"],
                                               restore_best_weights=True)]
    start = time.perf_counter()
    history = model.fit(train_ds, validation_data=valid_ds, epochs=params["epochs"],
                        class_weight=class_weight, callbacks=callbacks, verbose=2)
    seconds = time.perf_counter() - start

    frame = pd.DataFrame(history.history)
    frame.insert(0, "epoch", range(1, len(frame) + 1))
    write_csv(out_dir / "history.csv", frame)
    write_json(out_dir / "meta.json", {
        "model": model_name, "classes": classes, "input_shape": list(input_shape),
        "preprocess": {k: meta[k] for k in ("size", "resize", "color")},
        "train_images": len(train_rows), "epochs_run": len(frame), "train_seconds": round(seconds, 2),
        "parameters": int(model.count_params()),
    })
    with atomic_file(out_dir / "model.keras") as tmp:
        model.save(tmp)
    return frame
