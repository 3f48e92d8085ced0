"""The from-scratch recipe: small_cnn's residual blocks, the warm-up and cosine schedule, AdamW's
weight decay and what it leaves alone, label smoothing, MixUp/CutMix on the batches, RandAugment
in the model; each against what it promises, on tensors built here."""

import math

import numpy as np
import pytest

from specimen.train.models import build
from specimen.train.setup import Phase, compile_phase, plateau_callbacks

RECIPE = {"optimizer": "adamw", "weight_decay": 0.05, "schedule": "cosine", "warmup_epochs": 2, "label_smoothing": 0.1}


def images(n=8, side=24, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, side, side, 3), dtype=np.uint8)


def test_small_cnn_is_a_residual_network_whose_blocks_start_as_the_identity():
    import keras

    params = {"small_cnn": {"filters": [8, 16, 24], "blocks": 2, "units": 0, "dropout": 0.2}}
    model = build("small_cnn", (24, 24, 3), 3, params, 0)
    adds = [layer for layer in model.layers if isinstance(layer, keras.layers.Add)]
    assert len(adds) == 6  # 3 stages x 2 blocks
    # every stage after the first halves the resolution; global pooling, not flatten
    assert [tuple(model.get_layer(f"stage{s}_block1_out").output.shape[1:]) for s in (1, 2, 3)] == [
        (24, 24, 8),
        (12, 12, 16),
        (6, 6, 24),
    ]
    assert isinstance(model.get_layer("pool"), keras.layers.GlobalAveragePooling2D)
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert norms and all(layer.momentum == 0.9 for layer in norms)
    # untrained, a block whose shortcut is the identity passes its input through unchanged
    x = images()
    before = keras.Model(model.input, model.get_layer("stem_relu").output)(x)
    after = keras.Model(model.input, model.get_layer("stage1_block2_out").output)(x)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(after), keras.ops.convert_to_numpy(before), atol=1e-6)
    # over 64 px the stem halves the image first
    large = build("small_cnn", (96, 96, 3), 3, params, 0)
    assert tuple(large.get_layer("stage1_block1_out").output.shape[1:3]) == (48, 48)
    keras.backend.clear_session()


def test_the_cosine_schedule_warms_up_then_decays_to_zero_by_the_phases_end():
    import keras

    model = build("small_cnn", (24, 24, 3), 3, {"small_cnn": {"filters": [4]}}, 0)
    compile_phase(model, Phase("train", 10, 0.004), RECIPE, steps_per_epoch=5)
    schedule = model.optimizer._learning_rate  # the schedule object the optimizer was given
    rate = {step: float(keras.ops.convert_to_numpy(schedule(step))) for step in (0, 5, 10, 30, 50)}
    assert rate[0] == 0 and rate[5] == pytest.approx(0.002)  # linear warm-up over 2 epochs (10 steps)
    assert rate[10] == pytest.approx(0.004)  # the peak
    assert rate[30] == pytest.approx(0.004 * (1 + math.cos(math.pi * 20 / 40)) / 2)  # half way down the cosine
    assert rate[50] == pytest.approx(0, abs=1e-9)
    # the schedule sets the rate: no ReduceLROnPlateau beside it; with schedule plateau, one
    stop, lower = plateau_callbacks({"patience": 3, **RECIPE}, "val_loss", "min")
    assert lower is None and isinstance(stop, keras.callbacks.EarlyStopping)
    _, lower = plateau_callbacks({"patience": 3, **RECIPE, "schedule": "plateau"}, "val_loss", "min")
    assert isinstance(lower, keras.callbacks.ReduceLROnPlateau)
    keras.backend.clear_session()


def test_adamw_decays_kernels_but_not_biases_or_batch_norm():
    import keras

    model = build("small_cnn", (24, 24, 3), 3, {"small_cnn": {"filters": [4]}}, 0)
    compile_phase(model, Phase("train", 1, 0.01), {**RECIPE, "schedule": "plateau"}, steps_per_epoch=1)
    weights = model.trainable_weights
    before = [keras.ops.convert_to_numpy(w).copy() for w in weights]
    model.optimizer.apply_gradients([(keras.ops.zeros_like(w), w) for w in weights])  # no gradient: decay only
    for w, b in zip(weights, before):
        now = keras.ops.convert_to_numpy(w)
        name = w.path.split("/")[-1]
        if name in ("bias", "gamma", "beta"):
            assert np.array_equal(now, b), w.path
        elif np.any(b):
            np.testing.assert_allclose(now, b * (1 - 0.01 * 0.05), rtol=1e-5, err_msg=w.path)
    keras.backend.clear_session()


def test_label_smoothing_spreads_the_target():
    import keras

    model = build("small_cnn", (24, 24, 3), 4, {"small_cnn": {"filters": [4]}}, 0)
    compile_phase(model, Phase("train", 1, 0.01), RECIPE, steps_per_epoch=1)
    y = np.eye(4, dtype="float32")[[0, 2]]
    p = np.array([[0.7, 0.1, 0.1, 0.1], [0.25, 0.25, 0.4, 0.1]], dtype="float32")
    target = y * 0.9 + 0.1 / 4  # smoothing 0.1 over 4 classes
    expected = float(np.mean(-(target * np.log(p)).sum(axis=1)))
    got = float(keras.ops.convert_to_numpy(model.loss(y, p)))
    assert got == pytest.approx(expected, rel=1e-5)
    keras.backend.clear_session()


@pytest.mark.parametrize("augment", [{"mixup": 0.4}, {"cutmix": 1.0}])
def test_mixup_and_cutmix_mix_images_and_labels_alike_and_repeat_with_the_seed(augment):
    import tensorflow as tf

    from specimen.train.inputs import mixed

    x, y = images(16), np.eye(4, dtype="float32")[np.arange(16) % 4]

    def batches(seed):
        ds = mixed(tf.data.Dataset.from_tensor_slices((x, y)).batch(8), augment, seed)
        return [(a.numpy(), b.numpy()) for a, b in ds]

    first, again, other = batches(1), batches(1), batches(2)
    for (a, b), (a2, b2) in zip(first, again):
        assert np.array_equal(a, a2) and np.array_equal(b, b2)
    assert any(not np.array_equal(b, b2) for (_, b), (_, b2) in zip(first, other))
    labels = np.concatenate([b for _, b in first])
    images_out = np.concatenate([a for a, _ in first])
    assert images_out.dtype == np.uint8 and images_out.shape == x.shape
    np.testing.assert_allclose(labels.sum(axis=1), 1, atol=1e-5)
    mixed_rows = (labels.max(axis=1) < 1 - 1e-6).sum()
    assert mixed_rows >= 8  # most rows now hold two classes
    assert not np.array_equal(images_out, x)
    # off: the batches pass through untouched
    plain = mixed(tf.data.Dataset.from_tensor_slices((x, y)).batch(8), {"mixup": 0, "cutmix": 0}, 1)
    assert np.array_equal(np.concatenate([a.numpy() for a, _ in plain]), x)


def test_rand_augment_is_inside_the_model_and_only_while_training():
    import keras

    model = build("small_cnn", (24, 24, 3), 3, {"augment": {"rand_augment": 0.5}, "small_cnn": {"filters": [4]}}, 0)
    inside = model.get_layer("augmentation")
    assert [type(layer).__name__ for layer in inside.layers] == ["RandAugment"]
    x = images().astype("float32") / 255
    assert np.array_equal(keras.ops.convert_to_numpy(inside(x, training=False)), x)
    assert not np.allclose(keras.ops.convert_to_numpy(inside(x, training=True)), x)
    keras.backend.clear_session()


XLA_STEP = """
import numpy as np
from specimen.train.models import build
from specimen.train.setup import Phase, compile_phase
model = build("small_cnn", (24, 24, 3), 3, {"small_cnn": {"filters": [4]}}, 0)
compile_phase(model, Phase("train", 1, 0.01), {"jit_compile": "%s"}, steps_per_epoch=1)
x = np.random.default_rng(0).integers(0, 256, (4, 24, 24, 3), dtype=np.uint8)
loss, _ = model.train_on_batch(x, np.eye(3, dtype="float32")[[0, 1, 2, 0]])
print(model.jit_compile, np.isfinite(loss))
"""


@pytest.mark.parametrize("setting, expected", [("on", "True True"), ("off", "False True")])
def test_jit_compile_reaches_keras_and_an_xla_step_trains(setting, expected):
    """In a fresh interpreter: op determinism, which other tests turn on for the whole process,
    makes Keras drop XLA (params refuse `on` with `deterministic: true`, see test_params)."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", XLA_STEP % setting], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split("\n")[-2] == expected
