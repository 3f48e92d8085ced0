"""Training as users rely on it: two phases with the switch proven, a SIGKILLed run resuming at
the epoch after its last finished one, the same metrics from two runs, mixed precision's dtypes."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from specimen.train.setup import plan
from tests.conftest import Killed, training_command
from tests.test_train_evaluate import TRAIN, tiny_data, train_tiny

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PRETRAINED = {
    **TRAIN,
    "epochs": 2,
    "learning_rate": 0.003,
    "head": {"dropout": 0.2, "l2": 1e-4},
    "fine_tune": {"epochs": 2, "learning_rate": 1e-5, "unfrozen_layers": 12},
    "reduce_lr": {"factor": 0.5, "patience": 3, "min_lr": 0},
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """32x32 discs and squares, and a "pretrained" MobileNetV2: random weights saved to a file,
    which train.weights loads the way it loads real ones."""
    import keras

    tmp = tiny_data(tmp_path_factory.mktemp("training"), side=32)
    keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(32, 32, 3)).save_weights(
        tmp / "backbone.weights.h5"
    )
    keras.backend.clear_session()
    return tmp


def test_the_phase_plan_follows_the_weights():
    assert [p.name for p in plan("small_cnn", PRETRAINED)] == ["train"]
    assert [p.name for p in plan("vgg16", {**PRETRAINED, "weights": "none"})] == ["train"]  # nothing to keep
    assert [(p.name, p.learning_rate) for p in plan("vgg16", PRETRAINED)] == [("head", 0.003), ("fine_tune", 1e-5)]
    skip = {**PRETRAINED, "fine_tune": {**PRETRAINED["fine_tune"], "epochs": 0}}
    assert [p.name for p in plan("vgg16", skip)] == ["head"]


def test_unfreezing_opens_the_top_layers_but_not_batch_norm(tiny):
    import keras

    from specimen.train.models import backbone, build, unfreeze

    model = build("mobilenetv2", (32, 32, 3), 2, {**PRETRAINED, "weights": str(tiny / "backbone.weights.h5")}, 0)
    assert len(model.trainable_weights) == 2  # the softmax layer's kernel and bias
    after = unfreeze(model, 12)
    base = backbone(model)
    assert after == len(model.trainable_weights) > 2
    assert not any(layer.trainable for layer in base.layers[:-12])
    top = base.layers[-12:]
    assert all(layer.trainable != isinstance(layer, keras.layers.BatchNormalization) for layer in top)
    assert unfreeze(model, "all") > after
    keras.backend.clear_session()


def test_two_phases_train_the_head_then_fine_tune_at_a_low_rate(tiny):
    params = {**PRETRAINED, "weights": str(tiny / "backbone.weights.h5")}
    history = train_tiny(tiny, "mobilenetv2", params, work=tiny / "work-phases")
    assert history.phase.tolist() == ["head", "head", "fine_tune", "fine_tune"]
    assert history.epoch.tolist() == [1, 2, 3, 4]
    # recompiled: each phase warms up to its own rate over its first epoch (warm-up is at most half
    # the phase), then the cosine brings it to 0 by the phase's end
    np.testing.assert_allclose(history.learning_rate, [0.003, 0, 1e-5, 0], rtol=1e-5, atol=1e-12)
    meta = json.loads((tiny / "models/mobilenetv2/meta.json").read_text())
    head, fine = meta["phases"]
    assert (head["name"], head["first_epoch"], head["last_epoch"], head["trainable_weights"]) == ("head", 1, 2, 2)
    assert (fine["name"], fine["first_epoch"], fine["last_epoch"]) == ("fine_tune", 3, 4)
    assert fine["trainable_weights"] > head["trainable_weights"]  # the switch: the top layers joined in
    saved = pd.read_csv(tiny / "models/mobilenetv2/history.csv")
    assert saved.phase.tolist() == history.phase.tolist()
    assert meta["images_per_second"] > 0 and meta["train_seconds"] == pytest.approx(history.seconds.sum(), abs=0.01)


def test_two_runs_with_one_seed_give_identical_histories_and_metrics(tiny):
    from specimen.report.evaluate import evaluate

    results = []
    for run in ("a", "b"):
        history = train_tiny(tiny, params={**TRAIN, "epochs": 3}, work=tiny / f"work-{run}")
        metrics = evaluate(
            tiny / "models/small_cnn",
            tiny / "processed",
            tiny / "clean/index.csv",
            tiny / "interim/classes.json",
            tiny / f"reports-{run}",
            batch_size=16,
        )
        results.append((history.drop(columns="seconds"), metrics))
    pd.testing.assert_frame_equal(results[0][0], results[1][0], check_exact=True)
    assert results[0][1] == results[1][1]
    a, b = (tiny / f"reports-{run}/predictions.csv" for run in ("a", "b"))
    assert a.read_bytes() == b.read_bytes()


def test_dvclive_logs_every_epoch_without_touching_the_projects_dvc_yaml(tiny):
    train_tiny(tiny, params={**TRAIN, "epochs": 3}, work=tiny / "work-live")
    live = tiny / "models/small_cnn/dvclive"
    assert json.loads((live / "metrics.json").read_text())["step"] == 2
    rows = pd.read_csv(live / "plots/metrics/eval/accuracy.tsv", sep="\t")  # DVCLive names val_accuracy so
    assert rows.step.tolist() == [0, 1, 2]
    assert not (live / "dvc.yaml").exists() and not (tiny / "dvc.yaml").exists()
    assert list((tiny / "models/small_cnn/tensorboard").rglob("events.out.tfevents.*"))


def test_state_left_by_a_run_with_other_params_is_not_resumed(tiny, capsys):
    work = tiny / "work-stale"
    work.mkdir()
    (work / "settings.json").write_text(json.dumps({"model": "small_cnn", "train": {"epochs": 99}}))
    (work / "phases.json").write_text(json.dumps([{"name": "train", "first_epoch": 0, "last_epoch": 98}]))
    history = train_tiny(tiny, params={**TRAIN, "epochs": 2}, work=work)
    assert history.epoch.tolist() == [1, 2]
    assert "left by a run with other params or data; starting small_cnn over" in capsys.readouterr().out


def _project_params(tmp: Path, train: dict) -> Path:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["train"] = {**params["train"], **train}
    path = tmp / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def _kill_when(proc, path: Path, timeout=240):
    """SIGKILL `proc` as soon as `path` exists (a finished epoch's backup); the process must not end first."""
    end = time.monotonic() + timeout
    while not path.is_file():
        assert proc.poll() is None, "training ended before it could be killed"
        assert time.monotonic() < end, "no epoch finished in time"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.mark.parametrize(
    "model, epochs, fine_tune, killed_in",
    [
        ("small_cnn", 8, 0, "train"),
        ("mobilenetv2", 2, 4, "fine_tune"),
    ],
)
def test_a_sigkilled_training_resumes_after_its_last_finished_epoch(
    tiny, tmp_path, model, epochs, fine_tune, killed_in
):
    params = _project_params(
        tmp_path,
        {
            "models": [model],
            "epochs": epochs,
            "batch_size": 8,
            "learning_rate": 0.003,
            "patience": 100,
            "weights": str(tiny / "backbone.weights.h5"),
            "mixed_precision": "off",
            "fine_tune": {"epochs": fine_tune, "learning_rate": 1e-5, "unfrozen_layers": 12},
        },
    )
    work, out = tmp_path / "work", tmp_path / "model"
    cmd = training_command("train", str(params), model, tiny, out, work)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    first = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metadata = work / f"backup-{killed_in}" / "training_metadata.json"
    _kill_when(first, metadata)
    finished = json.loads(metadata.read_text())["epoch"]  # epochs done when the kill landed
    assert not (out / "model.keras").exists()  # nothing half-written
    # and as if the kill had landed while the next epoch's backup was written: its weights cut short,
    # its training_metadata.json half-written beside (under the name of a process that is gone)
    (metadata.parent / f"epoch-{finished + 1}.weights.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100))
    (metadata.parent / f".training_metadata.tmp-{first.pid}.json").write_text('{"epoch": ')

    again = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"phase {killed_in} at epoch {finished + 1}" in again.stdout
    assert f"Epoch {finished + 1}/" in again.stdout and f"Epoch {finished}/" not in again.stdout
    if killed_in == "fine_tune":
        assert "phase head already finished" in again.stdout
    history = pd.read_csv(out / "history.csv")
    total = epochs + fine_tune
    assert history.epoch.tolist() == list(range(1, total + 1))  # each epoch once, as uninterrupted
    assert history.phase.value_counts().to_dict() == (
        {"train": epochs} if model == "small_cnn" else {"head": 2, "fine_tune": fine_tune}
    )
    assert (out / "model.keras").is_file() and not work.exists()


@pytest.mark.parametrize("killed_while", ["weights", "metadata", "older_specimen"])
def test_a_kill_while_an_epochs_backup_is_written_resumes_from_the_epoch_before(tmp_path, monkeypatch, killed_while):
    """Keras' BackupAndRestore rewrote its weights and training_metadata.json in place: killed during
    either write, the run could not resume. Killed there now, it resumes after the last whole epoch; and a
    backup in Keras' own layout (a run killed under an older specimen) still resumes."""
    import contextlib

    import keras

    import specimen.train.resume
    from specimen.train.resume import callback_classes

    Backup = callback_classes()[2]
    x = np.random.default_rng(0).random((32, 4)).astype("float32")
    y = (x.sum(axis=1) > 2).astype("int32")

    def fit(epochs, *more):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        return model.fit(
            x,
            y,
            epochs=epochs,
            verbose=0,
            shuffle=False,
            callbacks=[Backup(str(tmp_path), delete_checkpoint=False), *more],
        ), model

    _, once = fit(1)
    after_one = once.get_weights()

    if killed_while == "older_specimen":  # Keras' own backup, as specimen left it before
        for f in tmp_path.glob("epoch-*.weights.h5"):
            f.rename(tmp_path / "latest.weights.h5")
    elif killed_while == "weights":

        def save_weights(self, filepath, overwrite=True, **kwargs):
            Path(filepath).write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(64))  # an h5 file cut short
            raise Killed

        monkeypatch.setattr(keras.Model, "save_weights", save_weights)
    else:

        @contextlib.contextmanager
        def atomic_file(path):
            tmp = Path(path).with_name(f".{Path(path).stem}.tmp-99999999{Path(path).suffix}")
            yield tmp
            raise Killed  # written beside, never moved in place

        monkeypatch.setattr(specimen.train.resume, "atomic_file", atomic_file)
    if killed_while != "older_specimen":
        with pytest.raises(Killed):
            fit(2)
    monkeypatch.undo()
    assert json.loads((tmp_path / "training_metadata.json").read_text())["epoch"] == 1

    restored = []

    class Restored(keras.callbacks.Callback):  # after Backup: the weights training goes on from
        def on_train_begin(self, logs=None):
            restored.append(self.model.get_weights())

    history, _ = fit(2, Restored())
    assert history.epoch == [1]  # only the second epoch ran again
    for a, b in zip(restored[0], after_one):
        np.testing.assert_array_equal(a, b)


def test_mixed_precision_computes_in_float16_with_a_float32_softmax_and_trains():
    import keras
    import tensorflow as tf

    from specimen.train.models import backbone, build
    from specimen.train.setup import precision

    gpu = bool(tf.config.list_physical_devices("GPU"))  # auto: mixed precision where there is a GPU
    assert precision("off") == "float32" and precision("auto") == ("mixed_float16" if gpu else "float32")
    try:
        assert precision("on") == "mixed_float16"
        model = build("mobilenetv2", (32, 32, 3), 3, {"weights": "none", "augment": {"contrast": 0.1}}, 0)
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)  # Keras scales the loss
        convolutions = [layer for layer in backbone(model).layers if isinstance(layer, keras.layers.Conv2D)]
        assert convolutions and {layer.compute_dtype for layer in convolutions} == {"float16"}
        assert model.get_layer("predictions").compute_dtype == "float32" and model.output.dtype == "float32"
        x = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
        assert np.isfinite(model.train_on_batch(x, np.array([0, 1, 2, 0])))
    finally:
        precision("off")
        keras.backend.clear_session()
