"""autoencoder (optional, not in the default target, all): a denoising autoencoder of one class's images.

A convolutional autoencoder (Keras) learns the train images of one class (``autoencoder.class``;
null: the first class in classes.json), pixels scaled to [0, 1]. The encoder is ``Conv2D`` + 2x2
``MaxPooling2D`` blocks (``autoencoder.filters``) down to a latent map of ``autoencoder.latent``
channels; the decoder mirrors it with stride-2 ``Conv2DTranspose`` layers and ends in a
``sigmoid`` ``Conv2D`` back to the image's channels (sizes not divisible by the pooling are
zero-padded, then cropped back). A ``GaussianNoise`` layer (standard deviation
``autoencoder.noise``, active in training only) corrupts its input, and it learns to give back the
clean image: a denoiser. Training is seeded (``seed``), with TensorFlow's op determinism, and
streams the shards through tf.data, as train does.

It is then judged on the class's test images, each with seeded Gaussian noise of the same
standard deviation added (not clipped, as in training): ``noisy_mse`` (the noisy input against the
original), ``reconstruction_mse`` (the denoised output against the original: below ``noisy_mse``
when the denoiser helps) and ``clean_reconstruction_mse`` (the output for the clean input).

Generated images are decoded latent interpolations: for ``autoencoder.generated`` seeded pairs of
the class's test images, the latent map at a seeded point between the two (a fraction of 0.25 to
0.75 of the way) is decoded into a new image. The trained classifier (MODEL_DIR/model.keras)
then labels them, and ``generated_accuracy`` is the fraction it calls the class.

Writes into results/autoencoder/<class>/ (all or nothing): ``autoencoder.keras`` (the encoder and
decoder as nested models named ``encoder`` and ``decoder``), ``reconstructions.png`` (three rows
over ``autoencoder.samples`` seeded test images: noisy input (clipped to show it), reconstruction,
original), ``generated.png`` (the generated images, eight a row, in order; exactly the pixels the
classifier scored, each scaled up by a whole factor) and ``metrics.json``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from specimen import SpecimenError
from specimen.artefacts import atomic_dir, atomic_file, write_json
from specimen.shards import Shards
from specimen.train.inputs import dataset, load_classes, split_rows

GRID_COLUMNS = 8  # generated.png
CELL = 64  # pixels: grid cells are scaled up by a whole factor to at least this
GAP = 2  # pixels between grid cells (white)


def autoencoder(
    model_dir: Path, processed: Path, index_path: Path, classes_path: Path, out_dir: Path, params: dict, seed: int
) -> dict:
    """Learn, judge and generate (see the module docstring); returns metrics.json's content."""
    classes = load_classes(classes_path)
    name = choose_class(classes, params.get("class"))
    train_rows, test_rows = class_rows(index_path, name)
    if not (Path(model_dir) / "model.keras").is_file():
        raise SpecimenError(f"{model_dir}: no model.keras; train the classifier first")
    from specimen.train.setup import seed_everything

    seed_everything(seed, True)
    meta = json.loads((Path(processed) / "meta.json").read_text())
    model, encoder, decoder = build(
        (*meta["size"], meta["channels"]), params["filters"], params["latent"], params["noise"], seed
    )
    losses = fit(model, train_rows, processed, name, params, seed)
    picks = np.random.default_rng(seed).choice(len(test_rows), min(params["samples"], len(test_rows)), replace=False)
    mse, figure = judge(
        model, test_rows, processed, params["noise"], params["batch_size"], sorted(picks.tolist()), seed
    )
    generated = generate(encoder, decoder, test_rows, processed, params["generated"], seed)
    metrics = {
        "class": name,
        "train_images": len(train_rows),
        "test_images": len(test_rows),
        "epochs": len(losses),
        "final_loss": round(losses[-1], 6),
        "noise": params["noise"],
        **mse,
        "generated_images": len(generated),
        "generated_accuracy": classifier_accuracy(model_dir, generated, name, classes),
        "classifier": str(model_dir),
    }
    with atomic_dir(out_dir) as tmp:
        model.save(tmp / "autoencoder.keras")
        save_png(tmp / "reconstructions.png", grid(figure))
        save_png(
            tmp / "generated.png",
            grid([generated[i : i + GRID_COLUMNS] for i in range(0, len(generated), GRID_COLUMNS)]),
        )
        write_json(tmp / "metrics.json", metrics)
    return metrics


def choose_class(classes: list[str], wanted) -> str:
    """The class to learn: `wanted` (autoencoder.class), or the first class when it is null."""
    if wanted is None:
        return classes[0]
    if str(wanted) not in classes:
        raise SpecimenError(
            f"autoencoder.class: {wanted!r} is not a class of this dataset (classes: {', '.join(classes)})"
        )
    return str(wanted)


def class_rows(index_path: Path, name: str):
    """The class's train and test rows of the clean index."""
    train, test = (split_rows(index_path, split) for split in ("train", "test"))
    train, test = train[train.label == name].reset_index(drop=True), test[test.label == name].reset_index(drop=True)
    for rows, split in ((train, "train"), (test, "test")):
        if rows.empty:
            raise SpecimenError(
                f"{index_path}: class {name!r} has no {split} images to "
                f"{'learn' if split == 'train' else 'judge'} an autoencoder on"
            )
    return train, test


def build(input_shape, filters: list[int], latent: int, noise: float, seed: int):
    """The autoencoder (noise -> encoder -> decoder), and its encoder and decoder."""
    import keras
    from keras import layers

    h, w, c = input_shape
    step = 2 ** len(filters)
    ph, pw = -h % step, -w % step
    image = keras.Input(shape=input_shape, name="image")
    x = layers.ZeroPadding2D(((0, ph), (0, pw)))(image) if ph or pw else image
    for f in filters:
        x = layers.Conv2D(f, 3, padding="same", activation="relu")(x)
        x = layers.MaxPooling2D()(x)
    code = layers.Conv2D(latent, 3, padding="same", activation="relu", name="latent")(x)
    encoder = keras.Model(image, code, name="encoder")

    z = keras.Input(shape=code.shape[1:], name="code")
    y = z
    for f in reversed(filters):
        y = layers.Conv2DTranspose(f, 3, strides=2, padding="same", activation="relu")(y)
    y = layers.Conv2D(c, 3, padding="same", activation="sigmoid", dtype="float32")(y)
    if ph or pw:
        y = layers.Cropping2D(((0, ph), (0, pw)))(y)
    decoder = keras.Model(z, y, name="decoder")

    inputs = keras.Input(shape=input_shape, name="pixels")
    noisy = layers.GaussianNoise(noise, seed=seed, name="noise")(inputs)  # training only
    return keras.Model(inputs, decoder(encoder(noisy)), name="autoencoder"), encoder, decoder


def fit(model, rows, processed: Path, name: str, params: dict, seed: int) -> list[float]:
    """Train on the class's rows, streamed as [0, 1] pixels (input and target alike); the loss per epoch."""
    import keras
    import tensorflow as tf

    scaled = dataset(rows, processed, [name], params["batch_size"], shuffle=True, seed=seed).map(
        lambda x, _: (tf.cast(x, tf.float32) / 255.0,) * 2
    )
    model.compile(optimizer=keras.optimizers.Adam(params["learning_rate"]), loss="mse")
    history = model.fit(scaled, epochs=params["epochs"], shuffle=False, verbose=2)
    return [float(v) for v in history.history["loss"]]


def judge(model, rows, processed: Path, noise: float, batch_size: int, samples: list[int], seed: int):
    """Stream the test rows: (MSEs, the figure's rows: noisy, reconstruction, original as uint8)."""
    rng = np.random.default_rng(seed)
    sums = {"noisy_mse": 0.0, "reconstruction_mse": 0.0, "clean_reconstruction_mse": 0.0}
    count = 0
    shown = {i: None for i in samples}
    for batch, images in Shards(Path(processed) / "shards").batches(rows, batch_size):
        x = images.astype(np.float32) / 255.0
        noisy = (x + rng.normal(0.0, noise, x.shape)).astype(np.float32)
        denoised = model.predict_on_batch(noisy)
        clean = model.predict_on_batch(x)
        sums["noisy_mse"] += float(np.sum((noisy - x) ** 2, dtype=np.float64))
        sums["reconstruction_mse"] += float(np.sum((denoised - x) ** 2, dtype=np.float64))
        sums["clean_reconstruction_mse"] += float(np.sum((clean - x) ** 2, dtype=np.float64))
        count += x.size
        for k, i in enumerate(batch.index):
            if i in shown:
                shown[i] = [to_uint8(a[k]) for a in (noisy, denoised, x)]
    figure = [np.stack([shown[i][r] for i in samples]) for r in range(3)]
    return {k: round(v / count, 6) for k, v in sums.items()}, figure


def generate(encoder, decoder, rows, processed: Path, count: int, seed: int) -> np.ndarray:
    """`count` images decoded from latent maps between seeded pairs of the rows' images (uint8)."""
    rng = np.random.default_rng(seed + 1)
    pairs = rng.integers(0, len(rows), size=(count, 2))
    t = rng.uniform(0.25, 0.75, size=count).astype(np.float32)
    needed = np.unique(pairs)
    images = Shards(Path(processed) / "shards").get(rows.shard.to_numpy()[needed], rows.offset.to_numpy()[needed])
    codes = encoder.predict_on_batch(images.astype(np.float32) / 255.0)
    where = {int(n): k for k, n in enumerate(needed)}
    a, b = codes[[where[int(i)] for i in pairs[:, 0]]], codes[[where[int(i)] for i in pairs[:, 1]]]
    mixed = (1 - t)[:, None, None, None] * a + t[:, None, None, None] * b
    return to_uint8(np.asarray(decoder.predict(mixed, batch_size=64, verbose=0)))


def to_uint8(x: np.ndarray) -> np.ndarray:
    return np.round(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)


def scale_for(height: int) -> int:
    """The whole factor grid cells are scaled up by."""
    return max(1, math.ceil(CELL / height))


def grid(rows: list[np.ndarray]) -> np.ndarray:
    """Rows of uint8 images (n, h, w, c) as one image: cells scaled up by `scale_for`, white gaps."""
    h, w, c = rows[0].shape[1:]
    s = scale_for(h)
    n = max(len(r) for r in rows)
    out = np.full((len(rows) * (h * s + GAP) + GAP, n * (w * s + GAP) + GAP, c), 255, np.uint8)
    for i, row in enumerate(rows):
        for j, image in enumerate(row):
            y, x = GAP + i * (h * s + GAP), GAP + j * (w * s + GAP)
            out[y : y + h * s, x : x + w * s] = image.repeat(s, axis=0).repeat(s, axis=1)
    return out


def save_png(path: Path, image: np.ndarray) -> None:
    from PIL import Image

    with atomic_file(path) as tmp:
        Image.fromarray(image[..., 0] if image.shape[2] == 1 else image).save(tmp, format="PNG")


def classifier_accuracy(model_dir: Path, images: np.ndarray, name: str, classes: list[str]) -> float:
    """The fraction of `images` the trained classifier in `model_dir` calls `name`."""
    from specimen.train.models import load

    meta_path = Path(model_dir) / "meta.json"
    names = json.loads(meta_path.read_text())["classes"] if meta_path.is_file() else classes
    if name not in names:
        raise SpecimenError(f"{model_dir}: the classifier does not know class {name!r}; retrain it on this data")
    model = load(Path(model_dir) / "model.keras")
    if tuple(model.input_shape[1:]) != images.shape[1:]:
        raise SpecimenError(
            f"{model_dir}: the classifier takes images of {model.input_shape[1:]}, the data are "
            f"{images.shape[1:]}; retrain it on this data"
        )
    predicted = model.predict(images, batch_size=64, verbose=0).argmax(axis=1)
    return round(float(np.mean(predicted == names.index(name))), 6)
