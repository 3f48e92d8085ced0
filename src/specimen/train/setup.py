"""What train and tune share: the phases a model trains in, seeds and op determinism, the dtype
policy (mixed precision on a GPU), the distribution strategy, the inputs they read, a phase's
compilation and the plateau callbacks (early stopping, ReduceLROnPlateau)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from specimen import SpecimenError
from specimen.train.inputs import load_classes, split_rows


@dataclass(frozen=True)
class Phase:
    name: str
    epochs: int
    learning_rate: float
    unfrozen_layers: int | str = 0


def plan(model_name: str, params: dict) -> list[Phase]:
    """The phases `model_name` trains in, from train's params."""
    from specimen.train.models import pretrained

    if not pretrained(model_name, params):
        return [Phase("train", params["epochs"], params["learning_rate"])]
    phases = [Phase("head", params["epochs"], params["learning_rate"])]
    fine = params.get("fine_tune", {})
    if fine.get("epochs", 0) > 0:
        phases.append(Phase("fine_tune", fine["epochs"], fine["learning_rate"], fine["unfrozen_layers"]))
    return phases


def seed_everything(seed: int, deterministic: bool) -> None:
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def precision(setting: str) -> str:
    """Set Keras' global dtype policy from ``train.mixed_precision``; returns its name."""
    import keras
    import tensorflow as tf

    on = setting == "on" or (setting == "auto" and bool(tf.config.list_physical_devices("GPU")))
    policy = "mixed_float16" if on else "float32"
    keras.mixed_precision.set_dtype_policy(policy)
    return policy


def distribution():
    """MirroredStrategy over all visible GPUs when there are several; otherwise the default."""
    import tensorflow as tf

    gpus = tf.config.list_logical_devices("GPU")
    return tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()


@dataclass(frozen=True)
class Inputs:
    """What train and tune read before building a model."""

    classes: list
    train_rows: pd.DataFrame
    valid_rows: pd.DataFrame
    class_weight: dict
    input_shape: tuple
    monitor: str
    mode: str
    preprocess: dict  # what the images went through: size, resize, color


def read_inputs(
    processed: Path,
    index_path: Path,
    weights_path: Path,
    classes_path: Path,
    params: dict,
    train_path: Path | None = None,
) -> Inputs:
    """Classes, training rows (balance's train.csv, or the index's train split), the valid split,
    class weights, the input shape, and the monitor (without a valid split: the training figure)."""
    classes = load_classes(classes_path)
    train_rows = split_rows(train_path) if train_path else split_rows(index_path, "train")
    valid_rows = split_rows(index_path, "valid")
    if train_rows.empty:
        raise SpecimenError(f"{train_path or index_path}: no training images")
    weights = json.loads(Path(weights_path).read_text())["weights"]
    meta = json.loads((Path(processed) / "meta.json").read_text())
    monitor = params.get("monitor", "val_loss")
    if valid_rows.empty:
        monitor = monitor.removeprefix("val_")
    return Inputs(
        classes,
        train_rows,
        valid_rows,
        {i: weights.get(c, 1.0) for i, c in enumerate(classes)},
        (*meta["size"], meta["channels"]),
        monitor,
        "min" if monitor.endswith("loss") else "max",
        {k: meta[k] for k in ("size", "resize", "color")},
    )


def compile_phase(model, phase: Phase, params: dict, steps_per_epoch: int) -> int:
    """Open the phase's layers (fine-tuning: the backbone's top ones) and compile it: the optimizer
    (``train.optimizer``: AdamW with ``weight_decay``, biases and batch norm left out of it, or
    Adam), its learning rate (``train.schedule``: ``cosine`` warms up linearly from 0 over
    ``warmup_epochs``, then decays to 0 along a cosine by the phase's last epoch; ``plateau``
    keeps the phase's rate for ReduceLROnPlateau to lower) and the loss (categorical cross-entropy
    on one-hot labels, with ``label_smoothing``); XLA per ``jit_compile`` (``auto``: Keras' choice,
    on with a GPU). Returns the trainable weights count."""
    import keras

    from specimen.train.models import unfreeze

    trainable = unfreeze(model, phase.unfrozen_layers) if phase.unfrozen_layers else len(model.trainable_weights)
    rate = phase.learning_rate
    if params.get("schedule", "cosine") == "cosine":
        steps = max(1, phase.epochs * steps_per_epoch)
        warmup = min(params.get("warmup_epochs", 3) * steps_per_epoch, steps // 2)
        rate = keras.optimizers.schedules.CosineDecay(
            0.0 if warmup else phase.learning_rate,
            decay_steps=steps - warmup,
            warmup_target=phase.learning_rate if warmup else None,
            warmup_steps=warmup,
        )
    if params.get("optimizer", "adamw") == "adamw":
        optimizer = keras.optimizers.AdamW(rate, weight_decay=params.get("weight_decay", 0.05))
        optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    else:
        optimizer = keras.optimizers.Adam(rate)
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=params.get("label_smoothing", 0.0)),
        metrics=["accuracy"],
        jit_compile={"on": True, "off": False}.get(params.get("jit_compile", "auto"), "auto"),
    )
    return trainable


def plateau_callbacks(params: dict, monitor: str, mode: str, restore_best_weights: bool = False):
    """Early stopping, and ReduceLROnPlateau unless its factor is 1 or the cosine schedule sets the
    rate (then None)."""
    import keras

    reduce = params.get("reduce_lr", {})
    stop = keras.callbacks.EarlyStopping(
        monitor=monitor, mode=mode, patience=params["patience"], restore_best_weights=restore_best_weights
    )
    if reduce.get("factor", 0.5) >= 1 or params.get("schedule", "cosine") == "cosine":  # the schedule sets the rate
        return stop, None
    return stop, keras.callbacks.ReduceLROnPlateau(
        monitor=monitor,
        mode=mode,
        factor=reduce.get("factor", 0.5),
        patience=reduce.get("patience", 3),
        min_lr=reduce.get("min_lr", 0),
    )
