"""embed backends on a handful of tiny images, offline: keras.applications backbones (random or
saved weights), a tiny random CLIP preset saved here, and the one-line errors (unknown name, input
too small, weights that cannot be downloaded)."""

import socket
import time
import urllib.request

import numpy as np
import pandas as pd
import pytest
import yaml

from specimen import backbones as backbones_module
from specimen.clean.features import EXTRACTORS
from specimen.cli import main
from tests.conftest import ROOT, run


def processed(tmp_path, n=5, size=32, channels=3):
    """A processed folder: one shard of n random images (padded top and bottom) and its index."""
    rng = np.random.default_rng(0)
    images = np.zeros((n, size, size, channels), np.uint8)
    images[:, 4 : size - 4] = rng.integers(0, 256, (n, size - 8, size, channels))
    folder = tmp_path / "processed"
    (folder / "shards").mkdir(parents=True)
    np.save(folder / "shards/shard-00000.npy", images)
    pd.DataFrame(
        {
            "id": [f"train/c/{i}.png" for i in range(n)],
            "label": "c",
            "split": "train",
            "sha256": "x",
            "shard": "shard-00000.npy",
            "offset": range(n),
            "y0": 4,
            "x0": 0,
            "y1": size - 4,
            "x1": size,
        }
    ).to_csv(folder / "index.csv", index=False)
    return folder, images


def params(tmp_path, **embed):
    p = yaml.safe_load((ROOT / "params.yaml").read_text())
    p["embed"].update(embed, batch_size=2)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(p))
    return path


def cli(tmp_path, folder, capsys, **embed):
    """`specimen embed` in this process: (exit status, its stderr lines, features npz or None)."""
    out = tmp_path / "features.npz"
    status = main(["embed", "--params", str(params(tmp_path, **embed)), str(folder), str(out)])
    err = capsys.readouterr().err.splitlines()  # Python's stderr only: TensorFlow's C++ start-up lines aren't seen
    return status, err, (dict(np.load(out)) if status == 0 else None)


def test_vgg16_random_weights_one_512_vector_per_id_same_bytes_in_another_process(tmp_path, capsys):
    folder, _ = processed(tmp_path)
    proc = run(
        [
            "specimen",
            "embed",
            "--params",
            str(params(tmp_path, extractor="vgg16", weights="none")),
            str(folder),
            str(tmp_path / "first.npz"),
        ],
        tmp_path,
    )
    assert "5 vgg16 vectors of 512 floats" in proc.stdout
    status, _, npz = cli(tmp_path, folder, capsys, extractor="vgg16", weights="none")
    assert status == 0 and (tmp_path / "features.npz").read_bytes() == (tmp_path / "first.npz").read_bytes()
    assert npz["ids"].tolist() == pd.read_csv(folder / "index.csv").id.tolist()
    assert npz["features"].shape == (5, 512) and npz["features"].dtype == np.float32
    assert str(npz["extractor"]) == "vgg16" and str(npz["weights"]) == "none"
    assert np.abs(npz["features"][0] - npz["features"][1]).max() > 0  # images differ, so do their vectors


def test_histogram_stays_offline_512_floats_without_a_weights_entry(tmp_path, capsys):
    folder, _ = processed(tmp_path, n=3)
    status, _, npz = cli(tmp_path, folder, capsys, extractor="histogram")
    assert status == 0 and sorted(npz) == ["extractor", "features", "ids"] and npz["features"].shape == (3, 512)


def test_grey_images_resized_to_input_size_for_efficientnet(tmp_path, capsys):
    folder, _ = processed(tmp_path, n=3, size=24, channels=1)
    status, err, _ = cli(tmp_path, folder, capsys, extractor="efficientnetb0", weights="none")
    assert status == 2 and len(err) == 1 and "embed.input_size" in err[0] and "24x24" in err[0]
    status, err, npz = cli(tmp_path, folder, capsys, extractor="efficientnetb0", weights="none", input_size=[32, 40])
    assert status == 0 and npz["features"].shape == (3, 1280) and np.isfinite(npz["features"]).all()


def test_weights_file_gives_the_models_own_outputs(tmp_path, capsys):
    import keras

    folder, images = processed(tmp_path)
    keras.utils.set_random_seed(7)
    model = keras.applications.MobileNetV2(include_top=False, weights=None, pooling="avg", input_shape=(32, 32, 3))
    model.save_weights(tmp_path / "mine.weights.h5")
    status, _, npz = cli(tmp_path, folder, capsys, extractor="mobilenetv2", weights=str(tmp_path / "mine.weights.h5"))
    expected = model(keras.applications.mobilenet_v2.preprocess_input(images.astype(np.float32)), training=False)
    assert status == 0 and str(npz["weights"]).endswith("mine.weights.h5")
    np.testing.assert_allclose(npz["features"], keras.ops.convert_to_numpy(expected), rtol=1e-4, atol=1e-5)
    status, err, _ = cli(tmp_path, folder, capsys, extractor="mobilenetv2", weights=str(tmp_path / "nope.weights.h5"))
    assert status == 2 and len(err) == 1 and "nope.weights.h5: no such file" in err[0]


def test_clip_from_a_local_preset_folder_is_the_projected_vision_embedding(tmp_path, capsys):
    import keras
    import keras_hub
    from keras_hub.models import CLIPBackbone, CLIPTextEncoder, CLIPVisionEncoder

    folder, images = processed(tmp_path, n=3)
    keras.utils.set_random_seed(3)
    vision = CLIPVisionEncoder(
        patch_size=8, hidden_dim=32, num_layers=2, num_heads=2, intermediate_dim=64, image_shape=(32, 32, 3)
    )
    text = CLIPTextEncoder(
        vocabulary_size=50,
        embedding_dim=32,
        hidden_dim=32,
        num_layers=1,
        num_heads=2,
        intermediate_dim=64,
        max_sequence_length=8,
    )
    backbone = CLIPBackbone(vision, text, projection_dim=16)
    converter = keras_hub.layers.CLIPImageConverter(
        image_size=(32, 32),
        scale=[1 / 255 / s for s in (0.27, 0.26, 0.28)],
        offset=[-m / s for m, s in ((0.48, 0.27), (0.46, 0.26), (0.41, 0.28))],
    )
    preset = tmp_path / "tiny_clip"
    backbone.save_to_preset(preset)
    converter.save_to_preset(preset)
    status, _, npz = cli(tmp_path, folder, capsys, extractor="clip", clip_preset=str(preset))
    expected = backbone.get_vision_embeddings(converter(images.astype(np.float32)))
    assert status == 0 and npz["features"].shape == (3, 16) and str(npz["extractor"]) == "clip"
    np.testing.assert_allclose(npz["features"], keras.ops.convert_to_numpy(expected), rtol=1e-4, atol=1e-5)
    for bad in ("no_such_preset", str(tmp_path)):
        status, err, _ = cli(tmp_path, folder, capsys, extractor="clip", clip_preset=bad)
        assert status == 2 and len(err) == 1 and "embed.clip_preset" in err[0], err


def proxy(monkeypatch, port):
    for var in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"):
        monkeypatch.setenv(var, f"http://127.0.0.1:{port}")
    for var in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(urllib.request, "_opener", None)  # urlopen's opener reads the proxies when first built


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """Empty Keras and kagglehub caches, and every proxy on a local port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proxy(monkeypatch, port)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path / "kagglehub"))


@pytest.mark.parametrize(
    "embed, words",
    [
        (
            {"extractor": "vgg16", "weights": "imagenet"},
            ["VGG16 ImageNet weights", "include_top=False", "/keras/models/"],
        ),
        ({"extractor": "clip"}, ["CLIP preset clip_vit_base_patch32", "kagglehub", "embed.clip_preset"]),
    ],
)
def test_weights_that_cannot_be_downloaded_are_one_line_saying_how_to_prefetch(tmp_path, capsys, offline, embed, words):
    folder, _ = processed(tmp_path, n=2)
    start = time.monotonic()
    status, err, _ = cli(tmp_path, folder, capsys, **embed)
    assert status == 2 and len(err) == 1 and "cannot download" in err[0] and "to pre-fetch" in err[0], err
    for w in words:
        assert w in err[0]
    assert time.monotonic() - start < 15 and not (tmp_path / "features.npz").exists()


def test_a_proxy_that_never_answers_times_out_rather_than_hangs(tmp_path, capsys, offline, monkeypatch):
    folder, _ = processed(tmp_path, n=2)
    monkeypatch.setattr(backbones_module, "FETCH_TIMEOUT", 1)
    with socket.socket() as silent:  # connections are queued by the kernel, never answered
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        proxy(monkeypatch, silent.getsockname()[1])
        start = time.monotonic()
        status, err, _ = cli(tmp_path, folder, capsys, extractor="vgg16", weights="imagenet")
    assert status == 2 and len(err) == 1 and "timed out" in err[0] and "to pre-fetch" in err[0], err
    assert time.monotonic() - start < 15


@pytest.mark.parametrize(
    "embed, words",
    [
        ({"extractor": "resnet"}, ["'resnet'", "histogram, clip, vgg16", "convnext_tiny", "efficientnetv2b3"]),
        (
            {"extractor": "inceptionv3", "input_size": [64, 64]},
            ["inceptionv3 cannot take 64x64", "embed.input_size to at least [75, 75]"],
        ),
    ],
)
def test_bad_choices_are_one_line_before_tensorflow_loads(tmp_path, embed, words):
    folder, _ = processed(tmp_path, n=2)
    proc = run(
        ["specimen", "embed", "--params", str(params(tmp_path, **embed)), str(folder), str(tmp_path / "f.npz")],
        tmp_path,
        check=False,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("specimen")]
    assert len(lines) == 1, proc.stderr
    for w in words:
        assert w in lines[0]


def test_every_backbone_name_is_a_keras_application():
    import keras

    from specimen.backbones import BACKBONES

    assert len(EXTRACTORS) == len(set(EXTRACTORS)) and {"vgg16", "convnext_tiny", "mobilenetv3small"} <= set(EXTRACTORS)
    for module, constructor in BACKBONES.values():
        assert (
            callable(getattr(keras.applications, constructor)) and getattr(keras.applications, module).preprocess_input
        )
