"""autoencoder on real files: its outputs, a denoiser that beats the noise it removes, figures that
hold the very images it made and the classifier scored, the same run from the same seed, and a
one-line error for a class the data do not have."""

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from specimen import SpecimenError
from specimen.tools.autoencoder import GAP, autoencoder, scale_for
from specimen.train.models import load
from tests.conftest import model_command, run
from tests.test_cli import params_with
from tests.test_train_evaluate import TRAIN, tiny_data, train_tiny

BIN = Path(sys.executable).parent
AE = {
    "class": None,
    "epochs": 20,
    "batch_size": 4,
    "learning_rate": 0.003,
    "noise": 0.1,
    "filters": [16, 32],
    "latent": 8,
    "samples": 4,
    "generated": 12,
}
OUTPUTS = ["autoencoder.keras", "generated.png", "metrics.json", "reconstructions.png"]


def run_autoencoder(tmp: Path, out: str, **changes) -> dict:
    return autoencoder(
        tmp / "models/small_cnn",
        tmp / "processed",
        tmp / "clean/index.csv",
        tmp / "interim/classes.json",
        tmp / out,
        {**AE, **changes},
        seed=3,
    )


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """24x24 discs and squares, a classifier trained on them for an epoch, and the autoencoder of
    the first class (disc)."""
    tmp = tiny_data(tmp_path_factory.mktemp("autoencoder"))
    train_tiny(tmp, params={**TRAIN, "epochs": 1})
    return tmp, run_autoencoder(tmp, "ae/disc")


def cells(png: Path, side: int, channels: int = 3) -> list[list[np.ndarray]]:
    """The grid's images back at their own size (cells are whole-factor nearest-neighbour enlargements)."""
    grid = np.asarray(Image.open(png))
    s = scale_for(side)
    step = side * s + GAP
    rows, cols = (grid.shape[0] - GAP) // step, (grid.shape[1] - GAP) // step
    return [
        [
            grid[GAP + i * step : GAP + i * step + side * s : s, GAP + j * step : GAP + j * step + side * s : s]
            for j in range(cols)
        ]
        for i in range(rows)
    ]


def test_outputs_and_a_denoiser_that_helps(made):
    tmp, metrics = made
    out = tmp / "ae/disc"
    assert sorted(p.name for p in out.iterdir()) == OUTPUTS and not list((tmp / "ae").glob(".*"))
    assert json.loads((out / "metrics.json").read_text()) == metrics
    assert metrics["class"] == "disc" and metrics["train_images"] == 12 and metrics["test_images"] == 4
    assert metrics["noisy_mse"] == pytest.approx(AE["noise"] ** 2, rel=0.1)  # the noise it was given ...
    assert 0 < metrics["reconstruction_mse"] < metrics["noisy_mse"]  # ... and less of it after denoising
    assert np.isfinite([metrics[k] for k in ("reconstruction_mse", "clean_reconstruction_mse", "final_loss")]).all()
    assert metrics["generated_images"] == AE["generated"]  # its accuracy: see below


def test_reconstructions_png_shows_noisy_reconstruction_original(made):
    tmp, _ = made
    png = tmp / "ae/disc/reconstructions.png"
    s = scale_for(24)
    with Image.open(png) as im:
        assert im.size == (4 * (24 * s + GAP) + GAP, 3 * (24 * s + GAP) + GAP) and im.mode == "RGB"
    noisy, rebuilt, original = cells(png, 24)
    index = pd.read_csv(tmp / "clean/index.csv")
    tests = index[(index.split == "test") & (index.label == "disc")]
    stored = [np.load(tmp / "processed/shards" / r.shard)[r.offset] for r in tests.itertuples()]
    for image in original:  # the originals are the class's stored test images, pixel for pixel
        assert any(np.array_equal(image, t) for t in stored)
    for n, r, o in zip(noisy, rebuilt, original):
        assert o.std() > 20 and r.std() > 20  # a disc on a light background, not a blank

        def err(a, o=o):
            return np.mean((a.astype(float) - o) ** 2)

        assert 0 < err(r) < err(n)


def test_generated_png_holds_the_images_the_classifier_scored(made):
    tmp, metrics = made
    rows = cells(tmp / "ae/disc/generated.png", 24)
    assert [len(r) for r in rows] == [8, 8]  # 12 images, eight a row; the rest of the last row blank
    images = np.stack([image for row in rows for image in row][: AE["generated"]])
    assert all((image == 255).all() for image in rows[1][4:]) and images.std() > 20
    classes = json.loads((tmp / "models/small_cnn/meta.json").read_text())["classes"]
    predicted = load(tmp / "models/small_cnn/model.keras").predict(images, verbose=0).argmax(axis=1)
    assert np.mean(predicted == classes.index("disc")) == pytest.approx(metrics["generated_accuracy"])


def test_saved_autoencoder_denoises_as_measured(made):
    import keras

    tmp, metrics = made
    model = keras.saving.load_model(tmp / "ae/disc/autoencoder.keras", safe_mode=True)
    assert {"encoder", "decoder", "noise"} <= {layer.name for layer in model.layers}
    index = pd.read_csv(tmp / "clean/index.csv")
    tests = index[(index.split == "test") & (index.label == "disc")]
    x = np.stack([np.load(tmp / "processed/shards" / r.shard)[r.offset] for r in tests.itertuples()]) / 255.0
    mse = float(np.mean((model.predict(x.astype("float32"), verbose=0) - x) ** 2))
    assert mse == pytest.approx(metrics["clean_reconstruction_mse"], abs=1e-5)


def test_the_same_seed_makes_the_same_autoencoder(made):
    tmp, metrics = made
    again = run_autoencoder(tmp, "ae/again")
    assert again == metrics
    for name in ("reconstructions.png", "generated.png", "metrics.json"):
        assert (tmp / "ae/again" / name).read_bytes() == (tmp / "ae/disc" / name).read_bytes(), name


def test_an_unknown_class_is_a_one_line_error(made, tmp_path):
    tmp, _ = made
    with pytest.raises(SpecimenError, match="'zebra' is not a class of this dataset .classes: disc, square"):
        run_autoencoder(tmp, "ae/zebra", **{"class": "zebra"})
    params = params_with(tmp_path, lambda p: p["autoencoder"].update({"class": "zebra"}))
    proc = run(
        [BIN / "specimen", *model_command("autoencoder", params, tmp / "models/small_cnn", tmp, tmp_path / "zebra")],
        tmp_path,
        check=False,
    )
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "autoencoder.class: 'zebra'" in lines[0], proc.stderr
    assert not (tmp_path / "zebra").exists()
