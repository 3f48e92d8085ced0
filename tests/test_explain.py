"""explain on real models and files: Grad-CAM finds a planted patch, activation maximisation raises
each class's probability, a nested keras.applications backbone works, and the command writes its
figures and explain.json (or one line when there is no model)."""

import json

import numpy as np
import pytest
import yaml
from PIL import Image

from specimen import cli
from specimen.report.explain import activation_maximisation, feature_maps, gradcam, last_conv_layer, noise
from specimen.train.inputs import split_rows
from tests.conftest import ROOT, model_command
from tests.test_train_evaluate import tiny_data

SIDE, PATCH = 24, 5  # the patch dataset: grey noise images, half with a bright square


def patch_images(n: int, seed: int):
    """Images (n, SIDE, SIDE, 1) uint8 of the noise explain starts from; odd ones ("patch", class 1)
    with a PATCH x PATCH bright square at a random place. Returns images, labels, squares' corners."""
    rng = np.random.default_rng(seed)
    images = noise((SIDE, SIDE, 1), n, seed)
    labels = np.arange(n) % 2
    corners = rng.integers(0, SIDE - PATCH + 1, (n, 2))
    for i in np.flatnonzero(labels):
        r, c = corners[i]
        images[i, r : r + PATCH, c : c + PATCH] = 250
    return np.round(images).astype(np.uint8), labels, corners


@pytest.fixture(scope="module")
def patch_model():
    """Three 'same' convolutions, global average pooling and a softmax, trained on the patch images
    (label smoothing keeps plain noise's probability off 1.0, so that it can still rise)."""
    import keras

    keras.utils.set_random_seed(0)
    x, y, _ = patch_images(400, seed=0)
    inputs = keras.Input((SIDE, SIDE, 1), dtype="uint8")
    h = keras.layers.Rescaling(1 / 64, offset=-2)(inputs)
    for filters in (8, 16, 16):
        h = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(h))
    model.compile(keras.optimizers.Adam(0.003), keras.losses.CategoricalCrossentropy(label_smoothing=0.1))
    model.fit(x, keras.utils.to_categorical(y, 2), epochs=6, batch_size=32, verbose=0)
    return model


def test_gradcam_peaks_on_the_planted_patch(patch_model):
    x, y, corners = patch_images(60, seed=1)
    accuracy = (patch_model.predict(x, verbose=0).argmax(axis=1) == y).mean()
    assert accuracy >= 0.95
    with_patch = np.flatnonzero(y)
    heat = gradcam(patch_model, x[with_patch], np.ones(len(with_patch), int))
    assert heat.shape == (len(with_patch), SIDE, SIDE) and heat.min() >= 0 and heat.max() <= 1
    misses = []  # pixels from the peak to the square (0: inside)
    for h, (r0, c0) in zip(heat, corners[with_patch]):
        r, c = np.unravel_index(h.argmax(), h.shape)
        misses.append(max(r0 - r, r - (r0 + PATCH - 1), c0 - c, c - (c0 + PATCH - 1), 0))
    hit_rate = np.mean(np.array(misses) <= 1)
    print(f"Grad-CAM peak on the patch (within 1 pixel) for {hit_rate:.0%} of {len(misses)} images; misses {misses}")
    assert hit_rate >= 0.8
    assert last_conv_layer(patch_model).name == patch_model.layers[-3].name  # the third convolution


def test_activation_maximisation_raises_each_class_probability(patch_model):
    start = patch_model.predict(np.round(noise((SIDE, SIDE, 1), 2, seed=5)).astype(np.uint8), verbose=0)
    images = activation_maximisation(patch_model, [0, 1], steps=48, seed=5)
    final = patch_model.predict(images, verbose=0)
    assert images.shape == (2, SIDE, SIDE, 1) and images.dtype == np.uint8
    for c in (0, 1):
        assert final[c, c] > start[c, c], (c, start, final)
    assert final[1, 1] > 0.9  # the "patch" class is not what noise looks like: it had to be drawn


def test_gradcam_and_feature_maps_on_a_nested_backbone():
    """mobilenetv2 with random weights at its smallest size, grey input: the backbone is a model
    inside the model; Grad-CAM weighs its output, feature maps come from its first convolutions."""
    from specimen.backbones import min_size
    from specimen.train.models import build

    side = min_size("mobilenetv2")
    model = build("mobilenetv2", (side, side, 1), 3, {"weights": "none", "augment": {"rotation": 10}}, seed=0)
    images = np.random.default_rng(0).integers(0, 256, (2, side, side, 1)).astype(np.uint8)
    heat = gradcam(model, images, [0, 2])
    assert heat.shape == (2, side, side) and np.isfinite(heat).all() and heat.min() >= 0 and heat.max() <= 1
    assert last_conv_layer(model).name.startswith("mobilenetv2")
    maps = feature_maps(model, images[0], 2)
    assert [name for name, _ in maps] == ["Conv1", "expanded_conv_depthwise"]
    assert maps[0][1].shape == (side // 2, side // 2, 32)


@pytest.fixture(scope="module")
def specimen_model(tmp_path_factory):
    """Processed, cleaned discs and squares (the train/evaluate helper) and small_cnn, built by
    specimen.train.models and fitted for two epochs, saved where `specimen train` puts it."""
    import keras

    from specimen.train.inputs import dataset, load_classes, split_rows
    from specimen.train.models import build

    tmp = tiny_data(tmp_path_factory.mktemp("explain"))
    classes = load_classes(tmp / "interim/classes.json")
    keras.utils.set_random_seed(1)
    model = build("small_cnn", (24, 24, 3), len(classes), {"augment": {}}, seed=1)
    model.compile(keras.optimizers.Adam(0.003), "sparse_categorical_crossentropy")
    train = dataset(split_rows(tmp / "clean/train.csv"), tmp / "processed", classes, 8)
    model.fit(train, epochs=2, shuffle=False, verbose=0)
    (tmp / "models/small_cnn").mkdir(parents=True)
    model.save(tmp / "models/small_cnn/model.keras")
    return tmp


def explain_args(tmp, model_dir, params):
    return model_command("explain", params, model_dir, tmp, tmp / "explain/small_cnn")


def png(path):
    """(width, height, grey standard deviation) of a PNG."""
    with Image.open(path) as im:
        return im.width, im.height, float(np.asarray(im.convert("L")).std())


def test_the_command_writes_three_figures_and_explain_json(specimen_model, tmp_path, capsys):
    import keras

    tmp = specimen_model
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["explain"] = {"images": 5, "layers": 2, "classes": 10, "steps": 16}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    assert cli.main(explain_args(tmp, tmp / "models/small_cnn", tmp_path / "params.yaml")) == 0
    assert "Grad-CAM on" in capsys.readouterr().out
    out = tmp / "explain/small_cnn"
    assert sorted(p.name for p in out.iterdir()) == [
        "activation_max.png",
        "explain.json",
        "feature_maps.png",
        "gradcam.png",
    ]

    width, height, spread = png(out / "gradcam.png")  # 5 images, 4 to a row: 2 rows of 8 panels
    assert width > 1000 and 1.5 < width / height < 5 and spread > 10
    width, height, spread = png(out / "feature_maps.png")  # 2 rows of 1 + 16 panels
    assert width > 1000 and width / height > 4 and spread > 10
    width, height, spread = png(out / "activation_max.png")  # the 2 classes side by side
    assert 300 < width and 1.2 < width / height < 2.5 and spread > 5

    summary = json.loads((out / "explain.json").read_text())
    samples = summary["gradcam"]["samples"]
    assert len(samples) == 5 and len({s["id"] for s in samples}) == 5
    assert {s["id"] for s in samples} <= set(split_rows(tmp / "clean/index.csv", "test").id)
    assert all(s["true"] in ("disc", "square") and 0 < s["probability"] <= 1 for s in samples)
    model = keras.saving.load_model(tmp / "models/small_cnn/model.keras")
    convs = [layer.name for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert summary["feature_maps"]["layers"] == convs[:2] and summary["gradcam"]["layer"] == convs[-1]
    assert summary["feature_maps"]["id"] == samples[0]["id"]
    assert set(summary["activation_max"]["classes"]) == {"disc", "square"}


def test_a_folder_without_a_model_is_one_line(specimen_model, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert cli.main(explain_args(specimen_model, tmp_path / "empty", ROOT / "params.yaml")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no model.keras" in err and "Traceback" not in err
