"""predict on real files: the pixels a trained model sees are the pixels preprocess stored (pad,
crop, stretch; rgb, grey), the CSV's shape and order, error rows for files that are not images,
and the command's one-line errors."""

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from specimen import SpecimenError
from specimen.data.preprocess import preprocess
from specimen.tools.predict import predict
from specimen.train.models import build, lambda_layers, load
from tests.conftest import run
from tests.test_cli import params_with
from tests.test_train_evaluate import TRAIN, tiny_data, train_tiny

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """24x24 discs and squares (from 40x30 sources, so padded) and small_cnn trained on them for an epoch."""
    tmp = tiny_data(tmp_path_factory.mktemp("predict"))
    train_tiny(tmp, params={**TRAIN, "epochs": 1})
    return tmp


def shard_pixels(processed: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """The index and every stored image, in index order."""
    index = pd.read_csv(processed / "index.csv")
    return index, np.stack([np.load(processed / "shards" / r.shard)[r.offset] for r in index.itertuples()])


def sources(tmp: Path, ids) -> list[Path]:
    """The source files the index's `ids` were made from: the folder download zipped, tmp/shapes/
    (the manifest's paths start with its name)."""
    manifest = pd.read_csv(tmp / "interim/manifest.csv").set_index("id")
    return [tmp / manifest.path[i] for i in ids]


def probabilities(frame: pd.DataFrame, classes: list[str]) -> np.ndarray:
    """Back from top-k columns to one probability per class (k = the number of classes)."""
    k = (len(frame.columns) - 2) // 2
    out = np.zeros((len(frame), len(classes)))
    for r in range(1, k + 1):
        for row, (label, prob) in enumerate(zip(frame[f"label_{r}"], frame[f"prob_{r}"])):
            out[row, classes.index(label)] = prob
    return out


def test_predict_sees_exactly_the_pixels_preprocess_stored(tiny, tmp_path):
    model_dir = tiny / "models/small_cnn"
    classes = json.loads((model_dir / "meta.json").read_text())["classes"]
    index, pixels = shard_pixels(tiny / "processed")
    expected = load(model_dir / "model.keras").predict(pixels, verbose=0)
    # the 40x30 source files, which predict pads to 24x24 as preprocess did ...
    originals = predict(model_dir, tiny / "shapes", top_k=2)
    by_path = originals.set_index("path")
    got = probabilities(by_path.loc[[str(p) for p in sources(tiny, index.id)]].reset_index(), classes)
    np.testing.assert_allclose(got, expected, atol=2e-6)
    # ... and the stored pixels written back out as PNGs (already 24x24: nothing to resize)
    for i, image in enumerate(pixels):
        Image.fromarray(image).save(tmp_path / f"img_{i:03d}.png")
    stored = predict(model_dir, tmp_path, top_k=2)
    np.testing.assert_allclose(probabilities(stored, classes), expected, atol=2e-6)
    assert (originals.error == "").all() and (stored.error == "").all()


@pytest.mark.parametrize("resize, color", [("crop", "grey"), ("stretch", "rgb")])
def test_predict_follows_the_resize_and_colour_in_meta_json(tiny, tmp_path, resize, color):
    """A model (random weights) for 20x28 images, stored by preprocess with another resize and colour."""
    image = {"size": [20, 28], "resize": resize, "color": color}
    preprocess(tiny / "interim/manifest.csv", tiny / "extracted", tmp_path / "processed", image, 16)
    index, pixels = shard_pixels(tmp_path / "processed")
    model = build("small_cnn", pixels.shape[1:], 2, {"augment": {}}, seed=0)
    (tmp_path / "model").mkdir()
    model.save(tmp_path / "model/model.keras")
    meta = {"classes": ["disc", "square"], "preprocess": image}
    (tmp_path / "model/meta.json").write_text(json.dumps(meta))
    frame = predict(tmp_path / "model", tiny / "shapes", top_k=2).set_index("path")
    got = probabilities(frame.loc[[str(p) for p in sources(tiny, index.id)]].reset_index(), meta["classes"])
    np.testing.assert_allclose(got, model.predict(pixels, verbose=0), atol=2e-6)


def test_csv_has_k_ranked_columns_capped_at_the_number_of_classes(tiny, tmp_path):
    model_dir = tiny / "models/small_cnn"
    one = predict(model_dir, tiny / "shapes", top_k=1, out=tmp_path / "one.csv")
    assert list(pd.read_csv(tmp_path / "one.csv").columns) == ["path", "label_1", "prob_1", "error"]
    assert len(one) == 40 and one.path.tolist() == sorted(one.path)
    capped = predict(model_dir, tiny / "shapes", top_k=5, out=tmp_path / "five.csv")
    frame = pd.read_csv(tmp_path / "five.csv", keep_default_na=False)
    assert list(frame.columns) == ["path", "label_1", "prob_1", "label_2", "prob_2", "error"]
    assert (frame.prob_1 >= frame.prob_2).all() and (frame.label_1 != frame.label_2).all()
    assert (frame.prob_1 + frame.prob_2 <= 1 + 2e-6).all() and (frame[["prob_1", "prob_2"]] >= 0).all().all()
    assert frame.equals(capped) and frame.label_1.tolist() == one.label_1.tolist()
    assert (tmp_path / "five.csv").read_bytes() == (
        predict(model_dir, tiny / "shapes", 5, tmp_path / "again.csv"),
        (tmp_path / "again.csv").read_bytes(),
    )[1]
    by_name = predict("small_cnn", tiny / "shapes/disc/disc_00.png", models_root=tiny / "models")
    assert len(by_name) == 1 and by_name.path[0].endswith("disc_00.png")


def test_files_that_are_not_images_become_error_rows(tiny, tmp_path):
    folder = tmp_path / "mixed"
    shutil.copytree(tiny / "shapes/disc", folder / "disc")
    (folder / "notes.txt").write_text("not an image")
    (folder / "deeper").mkdir()
    (folder / "deeper/broken.png").write_bytes((folder / "disc/disc_00.png").read_bytes()[:100])
    (folder / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")  # hidden: not a candidate image
    frame = predict(tiny / "models/small_cnn", folder, top_k=2)
    assert len(frame) == 22 and not frame.path.str.contains("DS_Store").any()
    errors = frame[frame.error != ""].set_index("path").error
    assert sorted(Path(p).name for p in errors.index) == ["broken.png", "notes.txt"]
    assert all(e.startswith("cannot decode") for e in errors)
    assert frame[frame.error != ""].label_1.isna().all() and frame[frame.error == ""].label_1.notna().all()


def test_too_large_images_are_refused_by_image_max_pixels(tiny, tmp_path):
    frame = predict(tiny / "models/small_cnn", tiny / "shapes/disc/disc_00.png", max_pixels=1000)
    assert frame.error[0].startswith("decompression bomb") and frame.label_1.isna().all()


def test_library_errors_are_one_line(tiny, tmp_path):
    with pytest.raises(SpecimenError, match="no such model folder"):
        predict(tmp_path / "nope", tiny / "shapes")
    (tmp_path / "old").mkdir()
    shutil.copy(tiny / "models/small_cnn/model.keras", tmp_path / "old")
    with pytest.raises(SpecimenError, match="retrain"):
        predict(tmp_path / "old", tiny / "shapes")
    with pytest.raises(SpecimenError, match="no such file or folder"):
        predict(tiny / "models/small_cnn", tmp_path / "missing")


def test_command_prints_a_table_and_fails_in_one_line(tiny, tmp_path):
    params = params_with(tmp_path / "p", lambda p: None)
    specimen = [str(BIN / "specimen"), "predict", "--params", str(params)]
    model_dir, images = str(tiny / "models/small_cnn"), tiny / "shapes"
    (images / "readme.txt").write_text("a file among the images")
    try:
        shown = run([*specimen, model_dir, str(images), "--top-k", "3"], tmp_path).stdout.splitlines()
    finally:
        (images / "readme.txt").unlink()
    assert shown[0].split() == ["path", "#1", "#2", "error"] and len(shown) == 1 + 41 + 1
    assert shown[1].startswith(str(images / "disc/disc_00.png")) and shown[1].split()[1] in ("disc", "square")
    assert [line.split()[0] for line in shown[1:-1]] == sorted(line.split()[0] for line in shown[1:-1])
    unreadable = [line for line in shown if "readme.txt" in line]
    assert len(unreadable) == 1 and unreadable[0].split()[1:3] == ["cannot", "decode:"]
    assert shown[-1] == "specimen predict: 40 of 41 files predicted; 1 unreadable (see their error column)"
    (tmp_path / "old").mkdir()
    shutil.copy(tiny / "models/small_cnn/model.keras", tmp_path / "old")
    for args, words in [
        (["nope", str(images)], "no such model folder"),
        ([str(tmp_path / "old"), str(images)], "retrain"),
        ([model_dir, str(tmp_path / "missing.png")], "no such file or folder"),
    ]:
        proc = run([*specimen, *args], tmp_path, check=False)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and words in lines[0], proc.stderr


def test_a_model_with_a_lambda_layer_is_refused_unless_unsafe(tiny, tmp_path):
    """A Lambda layer is Python bytecode that runs on load: refused in one line, loaded with --unsafe."""
    import keras

    trusted = tiny / "models/small_cnn"
    inner = load(trusted / "model.keras")
    inputs = keras.Input(inner.input_shape[1:])
    outputs = keras.layers.Lambda(lambda t: t * 1.0, name="passthrough")(inner(inputs))
    (tmp_path / "model").mkdir()
    keras.Model(inputs, outputs).save(tmp_path / "model/model.keras")
    shutil.copy(trusted / "meta.json", tmp_path / "model")
    images = tiny / "shapes"
    with pytest.raises(SpecimenError, match=r"Lambda layer\(s\) passthrough .* --unsafe"):
        predict(tmp_path / "model", images)

    params = params_with(tmp_path / "p", lambda p: None)
    specimen = [str(BIN / "specimen"), "predict", "--params", str(params), str(tmp_path / "model"), str(images)]
    refused = run([*specimen, "--out", str(tmp_path / "refused.csv")], tmp_path, check=False)
    lines = refused.stderr.strip().splitlines()
    assert refused.returncode == 2 and len(lines) == 1 and "--unsafe" in lines[0], refused.stderr
    assert not (tmp_path / "refused.csv").exists()

    run([*specimen, "--unsafe", "--out", str(tmp_path / "unsafe.csv")], tmp_path)
    unsafe = pd.read_csv(tmp_path / "unsafe.csv", keep_default_na=False)
    plain = predict(trusted, images)
    assert unsafe.path.tolist() == plain.path.tolist()
    np.testing.assert_allclose(unsafe.prob_1, plain.prob_1, atol=1e-6)
    assert (unsafe.label_1 == plain.label_1).all()
    # what the pipeline itself writes has none, so evaluate, explain and predict load it in safe mode
    assert lambda_layers(trusted / "model.keras") == [] and lambda_layers(tmp_path / "model/model.keras") == [
        "passthrough"
    ]
