"""train: fit one model on balance's training index, validating on the clean valid split.

Two phases, as the keras.io transfer-learning guide does it:

1. ``head``: a pretrained backbone frozen (called with ``training=False``), the new head trained
   at ``train.learning_rate`` for up to ``train.epochs``. small_cnn and backbones with
   ``weights: none`` have nothing to keep, so this phase (``train``) trains the whole network
   and is the only one.
2. ``fine_tune``: the backbone's top ``fine_tune.unfrozen_layers`` layers unfrozen, the model
   recompiled at ``fine_tune.learning_rate``, trained for up to ``fine_tune.epochs`` more.

Each phase: class weights from balance, early stopping and ReduceLROnPlateau on ``train.monitor``,
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
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from specimen import SpecimenError
from specimen.data import dataset, load_classes, split_rows
from specimen.files import atomic_file, working_folder, write_csv, write_json


@dataclass(frozen=True)
class Phase:
    name: str
    epochs: int
    learning_rate: float
    unfrozen_layers: int | str = 0


def plan(model_name: str, params: dict) -> list[Phase]:
    """The phases `model_name` trains in, from train's params."""
    from specimen.models import pretrained

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


def read_inputs(processed: Path, index_path: Path, weights_path: Path, classes_path: Path, params: dict,
                train_path: Path | None = None) -> Inputs:
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
    return Inputs(classes, train_rows, valid_rows, {i: weights.get(c, 1.0) for i, c in enumerate(classes)},
                  (*meta["size"], meta["channels"]), monitor, "min" if monitor.endswith("loss") else "max",
                  {k: meta[k] for k in ("size", "resize", "color")})


def compile_phase(model, phase: Phase) -> int:
    """Open the phase's layers (fine-tuning: the backbone's top ones) and compile at its learning
    rate; returns the trainable weights count."""
    import keras

    from specimen.models import unfreeze

    trainable = unfreeze(model, phase.unfrozen_layers) if phase.unfrozen_layers else len(model.trainable_weights)
    model.compile(optimizer=keras.optimizers.Adam(phase.learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return trainable


def plateau_callbacks(params: dict, monitor: str, mode: str, restore_best_weights: bool = False):
    """Early stopping, and ReduceLROnPlateau unless its factor is 1 (then None)."""
    import keras

    reduce = params.get("reduce_lr", {})
    stop = keras.callbacks.EarlyStopping(monitor=monitor, mode=mode, patience=params["patience"],
                                         restore_best_weights=restore_best_weights)
    if reduce.get("factor", 0.5) >= 1:
        return stop, None
    return stop, keras.callbacks.ReduceLROnPlateau(monitor=monitor, mode=mode, factor=reduce.get("factor", 0.5),
                                                   patience=reduce.get("patience", 3), min_lr=reduce.get("min_lr", 0))


def _callback_classes():
    import keras

    class EpochInfo(keras.callbacks.Callback):
        """Adds the epoch's wall time to its logs (so train time survives a resume)."""

        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            logs["seconds"] = round(time.perf_counter() - self._start, 3)

    class CallbackState(keras.callbacks.Callback):
        """Keeps the counters of early stopping, the LR schedule and the checkpoint in the backup
        folder beside BackupAndRestore's weights, and puts them back when training resumes, so a
        resumed phase stops and lowers its rate exactly when the uninterrupted one would."""

        FIELDS = {"EarlyStopping": ("wait", "best", "best_epoch"),
                  "ReduceLROnPlateau": ("wait", "best", "cooldown_counter"),
                  "ModelCheckpoint": ("best",)}

        def __init__(self, path: Path, callbacks):
            super().__init__()
            self.path, self.tracked = Path(path), callbacks

        def on_train_begin(self, logs=None):  # after theirs, which reset the counters
            if self.path.is_file():
                state = json.loads(self.path.read_text())
                for cb in self.tracked:
                    for field, value in state.get(type(cb).__name__, {}).items():
                        setattr(cb, field, value)

        def on_epoch_end(self, epoch, logs=None):
            state = {type(cb).__name__: {f: _plain(getattr(cb, f, None)) for f in self.FIELDS[type(cb).__name__]}
                     for cb in self.tracked}
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_file(self.path) as tmp:
                tmp.write_text(json.dumps(state))

    class Backup(keras.callbacks.BackupAndRestore):
        """BackupAndRestore whose backup is whole at any instant. Keras rewrites latest.weights.h5 and
        then training_metadata.json in place, so a kill during either write left an empty JSON or a cut-short
        .h5 and the run could not resume. Here each epoch's weights go to a file of their own, then
        training_metadata.json (moved in place) names that epoch, then older weights are removed: a kill
        anywhere leaves the last epoch named complete, with its weights."""

        def _weights_of(self, epoch) -> str:
            return str(Path(self.backup_dir) / f"epoch-{epoch}.weights.h5")

        def _load_model(self):
            meta = Path(self._training_metadata_path)
            if meta.is_file():  # else a fresh start: weights of an epoch never named are not whole
                named = self._weights_of(json.loads(meta.read_text())["epoch"])
                if Path(named).is_file() or not Path(self._weights_path).is_file():  # else Keras' own
                    self._weights_path = named  # latest.weights.h5, left by a run of an older specimen
            super()._load_model()

        def _save_model(self):
            Path(self.backup_dir).mkdir(parents=True, exist_ok=True)
            self._weights_path = self._weights_of(self._current_epoch)
            self.model.save_weights(self._weights_path, overwrite=True)
            with atomic_file(self._training_metadata_path) as tmp:
                tmp.write_text(json.dumps({"epoch": self._current_epoch, "batch": self._last_batch_seen}))
            for old in Path(self.backup_dir).glob("epoch-*.weights.h5"):
                if str(old) != self._weights_path:
                    old.unlink()

    return EpochInfo, CallbackState, Backup


def _plain(value):
    return None if value is None else float(value) if not isinstance(value, int) else value


def read_log(path: Path) -> pd.DataFrame:
    """The working CSV log, one row per finished epoch (0-based, as Keras counts); an epoch run
    twice (killed between its log row and its backup) keeps its last row."""
    if not path.is_file() or path.stat().st_size == 0:
        return pd.DataFrame(columns=["epoch"])
    log = pd.read_csv(path)
    return log.drop_duplicates("epoch", keep="last").sort_values("epoch").reset_index(drop=True)


def best_value(log: pd.DataFrame, monitor: str):
    if monitor not in log or log.empty:
        return None
    return float(log[monitor].min() if monitor.endswith("loss") else log[monitor].max())


def train(model_name: str, processed: Path, index_path: Path, weights_path: Path, classes_path: Path,
          out_dir: Path, params: dict, seed: int, train_path: Path | None = None,
          work: Path | None = None) -> pd.DataFrame:
    """Train on `train_path` (balance's train.csv, oversampled or not; default: the index's train
    split), validate on the index's valid split; `work` (default: out_dir/../<model>.work) holds
    the resumable state until the model is written."""
    seed_everything(seed, params["deterministic"])
    import keras
    from dvclive import Live
    from dvclive.keras import DVCLiveCallback

    from specimen.models import build, load

    out_dir, work = Path(out_dir), Path(work or Path(out_dir).parent / f"{Path(out_dir).name}.work")
    inputs = read_inputs(processed, index_path, weights_path, classes_path, params, train_path)
    classes, train_rows, valid_rows = inputs.classes, inputs.train_rows, inputs.valid_rows
    input_shape, monitor, mode = inputs.input_shape, inputs.monitor, inputs.mode
    phases = plan(model_name, params)

    policy = precision(params.get("mixed_precision", "off"))
    strategy = distribution()
    batch_size = params["batch_size"] * strategy.num_replicas_in_sync
    train_ds = dataset(train_rows, processed, classes, batch_size, shuffle=True, seed=seed)
    valid_ds = dataset(valid_rows, processed, classes, batch_size) if len(valid_rows) else None

    settings = {"model": model_name, "train": params, "seed": seed, "input_shape": list(input_shape),
                "classes": classes, "train_rows": len(train_rows), "valid_rows": len(valid_rows)}
    if working_folder(work, settings):
        print(f"{work}: left by a run with other params or data; starting {model_name} over", flush=True)
    log_path, done_path = work / "history.csv", work / "phases.json"
    done = json.loads(done_path.read_text()) if done_path.is_file() else []  # finished phases
    EpochInfo, CallbackState, Backup = _callback_classes()
    with strategy.scope():
        model = load(work / "phase.keras") if done else build(model_name, input_shape, len(classes), params, seed)
    live = Live(str(work / "dvclive"), resume=True, dvcyaml=False, save_dvc_exp=False, report=None)
    if done:
        print(f"resuming {model_name}: phase {done[-1]['name']} already finished", flush=True)

    for number, phase in enumerate(phases):
        if number < len(done):
            continue
        with strategy.scope():
            trainable = compile_phase(model, phase)
        first = done[-1]["last_epoch"] + 1 if done else 0
        backup = work / f"backup-{phase.name}"
        checkpoint = work / f"best-{phase.name}.weights.h5"
        if (backup / "training_metadata.json").is_file():
            resumed = json.loads((backup / "training_metadata.json").read_text())["epoch"]
            print(f"resuming {model_name}: phase {phase.name} at epoch {resumed + 1}", flush=True)
        stop, lower = plateau_callbacks(params, monitor, mode)
        best = keras.callbacks.ModelCheckpoint(str(checkpoint), monitor=monitor, mode=mode, save_best_only=True,
                                               save_weights_only=True,
                                               initial_value_threshold=best_value(read_log(log_path), monitor))
        tracked = [stop, best] + ([lower] if lower else [])
        callbacks = [EpochInfo(), *tracked,
                     keras.callbacks.CSVLogger(str(log_path), append=True),
                     keras.callbacks.TensorBoard(str(work / "tensorboard")),
                     DVCLiveCallback(live=live),
                     CallbackState(backup / "callbacks.json", tracked),
                     # last: a saved epoch is a logged one; kept until the phase is recorded as done
                     Backup(str(backup), delete_checkpoint=False)]
        model._initial_epoch = None  # Keras keeps the epoch a previous fit restored
        model.fit(train_ds, validation_data=valid_ds, initial_epoch=first, epochs=first + phase.epochs,
                  class_weight=inputs.class_weight, callbacks=callbacks, shuffle=False, verbose=2)  # shuffled by tf.data
        if checkpoint.is_file():  # the phase's best epoch; none: it never beat the phase before
            model.load_weights(checkpoint)
        elif done:
            with strategy.scope():
                model = load(work / "phase.keras")
        log = read_log(log_path)
        done.append({"name": phase.name, "first_epoch": first, "last_epoch": int(log.epoch.max()),
                     "learning_rate": phase.learning_rate, "unfrozen_layers": phase.unfrozen_layers,
                     "trainable_weights": trainable, "best": best_value(log[log.epoch >= first], monitor)})
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
    write_json(out_dir / "meta.json", {
        "model": model_name, "classes": classes, "input_shape": list(input_shape),
        "preprocess": inputs.preprocess,
        "train_images": len(train_rows), "epochs_run": epochs_run, "train_seconds": round(seconds, 2),
        "images_per_second": round(len(train_rows) * epochs_run / seconds, 1) if seconds else None,
        "parameters": int(model.count_params()), "monitor": monitor, "mixed_precision": policy,
        "replicas": strategy.num_replicas_in_sync,
        "phases": [{**p, "first_epoch": p["first_epoch"] + 1, "last_epoch": p["last_epoch"] + 1} for p in done],
    })
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
