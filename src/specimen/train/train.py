"""train: fit one model on balance's training index, validating on the clean valid split.

Two phases, as the keras.io transfer-learning guide does it:

1. ``head``: a pretrained backbone frozen (called with ``training=False``), the new head trained
   at ``train.learning_rate`` for up to ``train.epochs``. small_cnn and backbones with
   ``weights: none`` have nothing to keep, so this phase (``train``) trains the whole network
   and is the only one.
2. ``fine_tune``: the backbone's top ``fine_tune.unfrozen_layers`` layers unfrozen, the model
   recompiled at ``fine_tune.learning_rate``, trained for up to ``fine_tune.epochs`` more.

Each phase compiles with train's recipe (specimen.train.setup.compile_phase: AdamW, a warm-up
then cosine decay of the learning rate, label smoothing), trains on one-hot labels (MixUp/CutMix
if asked) with class weights from balance, early stopping (and ReduceLROnPlateau with
``schedule: plateau``) on ``train.monitor``,
the best epoch checkpointed (across both phases: fine-tuning that never beats the head keeps
the head's weights), TensorBoard, DVCLive (``Live(dvcyaml=False, save_dvc_exp=False)``: the
project's dvc.yaml is not DVCLive's), and a CSV row per epoch. BackupAndRestore saves the
training state after every epoch into a working folder (``logs/train/<model>/`` from the CLI),
together with the callbacks' own counters, so a killed training run again resumes at the epoch
after its last finished one, in whichever phase it was.

Mixed precision (``mixed_float16``, softmax kept float32) when a GPU is present or asked for, and
``tf.distribute.MirroredStrategy`` over all visible GPUs when there is more than one.

Writes ``model.keras`` (the best checkpoint's weights), ``history.csv`` (one row per epoch over
both phases, with its phase), ``meta.json`` (classes, preprocessing, phases with their trainable
weight counts, time, images/s), ``tensorboard/`` and ``dvclive/`` into results/models/<model>/,
all at the end; the working folder is then removed.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd

from specimen.artefacts import atomic_file, working_folder, write_csv, write_json
from specimen.train.inputs import dataset, mixed
from specimen.train.resume import best_value, callback_classes, check_keras_backup, read_log
from specimen.train.setup import (
    compile_phase,
    distribution,
    plan,
    plateau_callbacks,
    precision,
    read_inputs,
    seed_everything,
)


def train(
    model_name: str,
    processed: Path,
    index_path: Path,
    weights_path: Path,
    classes_path: Path,
    out_dir: Path,
    params: dict,
    seed: int,
    train_path: Path | None = None,
    work: Path | None = None,
) -> pd.DataFrame:
    """Train on `train_path` (balance's train.csv, oversampled or not; default: the index's train
    split), validate on the index's valid split; `work` (default: out_dir/../<model>.work) holds
    the resumable state until the model is written."""
    check_keras_backup()  # the private Keras names Backup needs: one line if an upgrade took one away
    seed_everything(seed, params["deterministic"])
    import keras
    from dvclive import Live
    from dvclive.keras import DVCLiveCallback

    from specimen.train.models import build, load

    out_dir, work = Path(out_dir), Path(work or Path(out_dir).parent / f"{Path(out_dir).name}.work")
    inputs = read_inputs(processed, index_path, weights_path, classes_path, params, train_path)
    classes, train_rows, valid_rows = inputs.classes, inputs.train_rows, inputs.valid_rows
    input_shape, monitor, mode = inputs.input_shape, inputs.monitor, inputs.mode
    phases = plan(model_name, params)

    policy = precision(params.get("mixed_precision", "off"))
    strategy = distribution()
    batch_size = params["batch_size"] * strategy.num_replicas_in_sync
    train_ds = mixed(
        dataset(train_rows, processed, classes, batch_size, shuffle=True, seed=seed, one_hot=True),
        params.get("augment", {}),
        seed,
    )
    valid_ds = dataset(valid_rows, processed, classes, batch_size, one_hot=True) if len(valid_rows) else None
    steps = -(-len(train_rows) // batch_size)

    settings = {
        "model": model_name,
        "train": params,
        "seed": seed,
        "input_shape": list(input_shape),
        "classes": classes,
        "train_rows": len(train_rows),
        "valid_rows": len(valid_rows),
    }
    if working_folder(work, settings):
        print(f"{work}: left by a run with other params or data; starting {model_name} over", flush=True)
    log_path, done_path = work / "history.csv", work / "phases.json"
    done = json.loads(done_path.read_text()) if done_path.is_file() else []  # finished phases
    EpochInfo, CallbackState, Backup = callback_classes()
    with strategy.scope():
        model = load(work / "phase.keras") if done else build(model_name, input_shape, len(classes), params, seed)
    live = Live(str(work / "dvclive"), resume=True, dvcyaml=False, save_dvc_exp=False, report=None)
    if done:
        print(f"resuming {model_name}: phase {done[-1]['name']} already finished", flush=True)

    for number, phase in enumerate(phases):
        if number < len(done):
            continue
        with strategy.scope():
            trainable = compile_phase(model, phase, params, steps)
        first = done[-1]["last_epoch"] + 1 if done else 0
        backup = work / f"backup-{phase.name}"
        checkpoint = work / f"best-{phase.name}.weights.h5"
        if (backup / "training_metadata.json").is_file():
            resumed = json.loads((backup / "training_metadata.json").read_text())["epoch"]
            print(f"resuming {model_name}: phase {phase.name} at epoch {resumed + 1}", flush=True)
        stop, lower = plateau_callbacks(params, monitor, mode)
        best = keras.callbacks.ModelCheckpoint(
            str(checkpoint),
            monitor=monitor,
            mode=mode,
            save_best_only=True,
            save_weights_only=True,
            initial_value_threshold=best_value(read_log(log_path), monitor),
        )
        tracked = [stop, best] + ([lower] if lower else [])
        callbacks = [
            EpochInfo(),
            *tracked,
            keras.callbacks.CSVLogger(str(log_path), append=True),
            keras.callbacks.TensorBoard(str(work / "tensorboard")),
            DVCLiveCallback(live=live),
            CallbackState(backup / "callbacks.json", tracked),
            # last: a saved epoch is a logged one; kept until the phase is recorded as done
            Backup(str(backup), delete_checkpoint=False),
        ]
        model.fit(
            train_ds,
            validation_data=valid_ds,
            initial_epoch=first,
            epochs=first + phase.epochs,
            class_weight=inputs.class_weight,
            callbacks=callbacks,
            shuffle=False,
            verbose=2,
        )  # shuffled by tf.data
        if checkpoint.is_file():  # the phase's best epoch; none: it never beat the phase before
            model.load_weights(checkpoint)
        elif done:
            with strategy.scope():
                model = load(work / "phase.keras")
        log = read_log(log_path)
        done.append(
            {
                "name": phase.name,
                "first_epoch": first,
                "last_epoch": int(log.epoch.max()),
                "learning_rate": phase.learning_rate,
                "unfrozen_layers": phase.unfrozen_layers,
                "trainable_weights": trainable,
                "best": best_value(log[log.epoch >= first], monitor),
            }
        )
        with atomic_file(work / "phase.keras") as tmp:  # the next phase, or a resumed run, starts here
            model.save(tmp)
        with atomic_file(done_path) as tmp:
            tmp.write_text(json.dumps(done))
        shutil.rmtree(backup, ignore_errors=True)

    history = history_frame(read_log(log_path), done)
    seconds = float(history.seconds.sum())
    epochs_run = len(history)
    write_csv(out_dir / "history.csv", history)
    for folder in ("tensorboard", "dvclive"):
        shutil.rmtree(out_dir / folder, ignore_errors=True)
        if (work / folder).is_dir():
            shutil.copytree(work / folder, out_dir / folder)
    write_json(
        out_dir / "meta.json",
        {
            "model": model_name,
            "classes": classes,
            "input_shape": list(input_shape),
            "preprocess": inputs.preprocess,
            "train_images": len(train_rows),
            "epochs_run": epochs_run,
            "train_seconds": round(seconds, 2),
            "images_per_second": round(len(train_rows) * epochs_run / seconds, 1) if seconds else None,
            "parameters": int(model.count_params()),
            "monitor": monitor,
            "mixed_precision": policy,
            "replicas": strategy.num_replicas_in_sync,
            "phases": [{**p, "first_epoch": p["first_epoch"] + 1, "last_epoch": p["last_epoch"] + 1} for p in done],
        },
    )
    with atomic_file(out_dir / "model.keras") as tmp:
        shutil.copyfile(work / "phase.keras", tmp)  # the last phase's best model
    shutil.rmtree(work)
    return history


def history_frame(log: pd.DataFrame, phases: list[dict]) -> pd.DataFrame:
    """One row per epoch, numbered from 1 over both phases, with the phase it belongs to."""
    frame = log.copy()
    frame["phase"] = ""
    for p in phases:
        frame.loc[frame.epoch.between(p["first_epoch"], p["last_epoch"]), "phase"] = p["name"]
    frame["epoch"] = frame.epoch + 1
    first = ["epoch", "phase"]
    return frame[first + [c for c in frame.columns if c not in first]]
