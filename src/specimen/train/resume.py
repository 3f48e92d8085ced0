"""A killed training resumes at the epoch after its last finished one, in whichever phase it was.

Keras' BackupAndRestore saves the weights and the epoch after each epoch; it rewrites them in place,
so a kill mid-write left a run that could not resume (an empty training_metadata.json, a cut-short
.h5). ``Backup`` writes each epoch's weights to a file of their own, then names that epoch in the
metadata (moved in place), then removes older weights. Keras gives no public hook for where and how
the backup is written: Backup overrides BackupAndRestore's ``_save_model``/``_load_model`` and its
paths, and clears the epoch it restored (``model._initial_epoch``) when its fit ends, so that the
next phase's fit starts where it is told. These are the only private Keras names specimen uses;
``check_keras_backup`` says in one line which one an upgrade removed (tests/test_training.py).

``CallbackState`` keeps the counters of early stopping, the LR schedule and the checkpoint beside
the backup, so a resumed phase stops and lowers its rate exactly when the uninterrupted one would;
``EpochInfo`` adds each epoch's wall time to its log row.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd

from specimen import SpecimenError
from specimen.artefacts import atomic_file

# What Backup relies on in keras.callbacks.BackupAndRestore and keras.Model (Keras 3.15).
KERAS_PRIVATE = {
    "BackupAndRestore": (
        "_save_model",
        "_load_model",
        "_weights_path",
        "_training_metadata_path",
        "_current_epoch",
        "_last_batch_seen",
    ),
    "Model": ("_initial_epoch",),
}


def check_keras_backup() -> None:
    """A SpecimenError naming the private Keras names Backup uses that this Keras lacks."""
    import keras

    callback = keras.callbacks.BackupAndRestore("unused")
    model = keras.Sequential()
    missing = [f"BackupAndRestore.{n}" for n in KERAS_PRIVATE["BackupAndRestore"] if not hasattr(callback, n)]
    missing += [f"Model.{n}" for n in KERAS_PRIVATE["Model"] if not hasattr(model, n)]
    if missing:
        raise SpecimenError(
            f"keras {keras.__version__} has no {', '.join(missing)}, which specimen.train.resume.Backup "
            "overrides to make its backups whole: pin keras<3.16 or adapt Backup"
        )


def callback_classes():
    """(EpochInfo, CallbackState, Backup): Keras callbacks, made once Keras is imported."""
    import keras

    class EpochInfo(keras.callbacks.Callback):
        """Adds the epoch's wall time to its logs (so train time survives a resume), and the
        learning rate at its end (a schedule's, which Keras does not log)."""

        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            logs["seconds"] = round(time.perf_counter() - self._start, 3)
            logs.setdefault("learning_rate", float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))

    class CallbackState(keras.callbacks.Callback):
        """Keeps the counters of early stopping, the LR schedule and the checkpoint in the backup
        folder beside BackupAndRestore's weights, and puts them back when training resumes, so a
        resumed phase stops and lowers its rate exactly when the uninterrupted one would."""

        FIELDS = {
            "EarlyStopping": ("wait", "best", "best_epoch"),
            "ReduceLROnPlateau": ("wait", "best", "cooldown_counter"),
            "ModelCheckpoint": ("best",),
        }

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
            state = {
                type(cb).__name__: {f: _plain(getattr(cb, f, None)) for f in self.FIELDS[type(cb).__name__]}
                for cb in self.tracked
            }
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

        def on_train_end(self, logs=None):
            super().on_train_end(logs)
            self.model._initial_epoch = None  # Keras keeps the epoch it restored for the model's next fit

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
