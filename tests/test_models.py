"""The model zoo: every name builds (random weights, small input), trains a step and saves."""

import numpy as np
import pytest

from specimen import SpecimenError
from specimen.backbones import min_size
from specimen.train.models import MODELS, backbone, build, load

# The names the training issue asks for: one of each family trains a step; the other sizes of a
# family differ from it only in width and depth (the same keras.applications module, preprocessing
# and head), so they are built, not trained. Every other keras.applications name goes through the
# same code (tests/test_embed.py checks that each exists in keras.applications).
ZOO = [
    "small_cnn",
    "vgg16",
    "vgg19",
    "resnet50",
    "resnet50v2",
    "xception",
    "mobilenetv2",
    "efficientnetb0",
    "efficientnetv2s",
    "convnext_tiny",
]
SIZES = [*[f"efficientnetb{i}" for i in range(1, 8)], "efficientnetv2m"]
PARAMS = {
    "weights": "none",
    "head": {"dropout": 0.2, "l2": 1e-4, "batch_norm": True},
    "augment": {"flip": "horizontal", "rotation": 10, "zoom": 0.1},
}


@pytest.mark.parametrize("name", ZOO)
def test_every_model_builds_and_trains_one_step(name):
    import keras

    side = min_size(name) if name != "small_cnn" else 24
    model = build(name, (side, side, 3), 3, PARAMS, seed=0)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", run_eagerly=True)  # no graph tracing
    x = np.random.default_rng(0).integers(0, 256, (4, side, side, 3), dtype=np.uint8)
    before = [w.numpy().copy() for w in model.trainable_weights]
    loss = model.train_on_batch(x, np.array([0, 1, 2, 0]))
    assert np.isfinite(loss)
    assert any(not np.array_equal(b, w.numpy()) for b, w in zip(before, model.trainable_weights))
    probs = keras.ops.convert_to_numpy(model(x, training=False))
    assert probs.shape == (4, 3) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    keras.backend.clear_session()


@pytest.mark.parametrize("name", SIZES)
def test_every_other_size_of_a_family_builds_with_its_head(name):
    import keras

    side = min_size(name)
    model = build(name, (side, side, 3), 3, PARAMS, seed=0)
    assert tuple(model.output.shape) == (None, 3) and model.get_layer("predictions").activation.__name__ == "softmax"
    assert backbone(model).name.replace("-", "") == name  # keras.applications' own model of that size
    keras.backend.clear_session()


def test_a_pretrained_backbone_starts_frozen_and_one_from_scratch_trains_whole(tmp_path):
    import keras

    keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(32, 32, 3)).save_weights(
        tmp_path / "w.weights.h5"
    )
    PARAMS_FILE = {**PARAMS, "weights": str(tmp_path / "w.weights.h5")}  # pretrained-like: frozen by default
    frozen = build("mobilenetv2", (32, 32, 3), 4, PARAMS_FILE, seed=0)
    head_only = {w.path for w in frozen.trainable_weights}
    assert all(not p.startswith("mobilenetv2") for p in head_only)  # pooling, bn and dense only
    assert sum(np.prod(w.shape) for w in frozen.trainable_weights) < 0.01 * frozen.count_params()
    scratch = build("mobilenetv2", (32, 32, 3), 4, PARAMS, seed=0)  # weights: none trains everything
    assert len(scratch.trainable_weights) > 30 * len(frozen.trainable_weights)  # 160 against 4
    # (tests/test_training.py: fine-tuning's unfreeze opens the top layers)


def test_a_saved_backbone_model_predicts_the_same_after_loading(tmp_path):
    model = build("resnet50v2", (32, 32, 1), 2, PARAMS, seed=0)  # grey input, repeated to RGB inside
    x = np.random.default_rng(1).integers(0, 256, (3, 32, 32, 1), dtype=np.uint8)
    model.save(tmp_path / "m.keras")
    np.testing.assert_allclose(load(tmp_path / "m.keras").predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5)


def test_weights_from_a_file_and_bad_names_sizes_and_paths_are_one_line_errors(tmp_path):
    import keras

    base = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(32, 32, 3))
    base.save_weights(tmp_path / "b.weights.h5")
    model = build("mobilenetv2", (32, 32, 3), 2, {**PARAMS, "weights": str(tmp_path / "b.weights.h5")}, seed=0)
    inner = model.get_layer(base.name)
    assert all(np.array_equal(a, b) for a, b in zip(inner.get_weights(), base.get_weights()))
    with pytest.raises(SpecimenError, match="choose from small_cnn, vgg16") as e:
        build("vgg17", (32, 32, 3), 2, PARAMS, seed=0)
    assert "\n" not in str(e.value) and "convnext_tiny" in str(e.value)
    with pytest.raises(SpecimenError, match=r"set image.size to at least \[71, 71\]"):
        build("xception", (48, 48, 3), 2, PARAMS, seed=0)
    with pytest.raises(SpecimenError, match="no such file"):
        build("vgg16", (32, 32, 3), 2, {**PARAMS, "weights": str(tmp_path / "missing.h5")}, seed=0)
    assert "small_cnn" in MODELS and len(MODELS) > 40


def test_the_params_schema_accepts_exactly_these_model_names():
    from pathlib import Path

    import yaml

    schema = yaml.safe_load((Path(__file__).resolve().parents[1] / "workflow/schemas/params.schema.yaml").read_text())
    assert schema["properties"]["train"]["properties"]["models"]["items"]["enum"] == list(MODELS)


def test_imagenet_weights_that_cannot_be_fetched_are_a_one_line_error(tmp_path, monkeypatch):
    import socket as sk

    with sk.socket() as s:  # a port nobody listens on: the download is refused at once
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for var in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"):
        monkeypatch.setenv(var, f"http://127.0.0.1:{port}")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty-keras"))
    with pytest.raises(SpecimenError, match="cannot download VGG16 ImageNet weights.*set train.weights") as e:
        build("vgg16", (32, 32, 3), 2, {**PARAMS, "weights": "imagenet"}, seed=0)
    assert "\n" not in str(e.value)
