"""explain: what one trained model looks at, as pictures; results/explain/<model>/.

- ``gradcam.png``: Grad-CAM over a seeded sample of ``explain.images`` test images. Each image
  is shown twice: as it is (titled with its true class), and with a heatmap of where the model
  found evidence for the class it predicted (titled with that class and its probability; red
  when the prediction is wrong). Red/yellow areas are what pushed the prediction most.
- ``feature_maps.png``: for one test image (the sample's first), the output of the first
  ``explain.layers`` convolution layers, one row per layer, up to 16 of its most active
  channels each: the edges, blobs and textures the network builds on.
- ``activation_max.png``: for each of the first ``explain.classes`` classes, the input the model
  finds most typical of that class: ``explain.steps`` steps of gradient ascent on the class's
  log-probability from seeded noise, blurred every few steps so that it stays image-like;
  titled with the class and the probability the model then gives it.
- ``explain.json``: the sample (ids, true and predicted classes, probabilities), the layers
  used and each maximised class's probability before and after.

Grad-CAM follows the keras.io example: the output of the last convolution layer (for a
keras.applications backbone nested in the model, the backbone's output), the gradients of the
class's pre-softmax score (centred on the mean over classes) with respect to it (tf.GradientTape),
one weight per channel (the mean gradient), the weighted channels summed, ReLU, divided by the
maximum, resized to the image.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from specimen import SpecimenError, figures
from specimen.artefacts import write_json
from specimen.shards import Shards
from specimen.train.inputs import load_classes, split_rows


def explain(
    model_dir: Path, processed: Path, index_path: Path, classes_path: Path, out_dir: Path, params: dict, seed: int
) -> dict:
    """Write gradcam.png, feature_maps.png, activation_max.png and explain.json into `out_dir`;
    params: explain's section (images, layers, classes, steps). Returns explain.json's content."""
    out_dir = Path(out_dir)
    model = _load(model_dir)
    classes = load_classes(classes_path)
    rows, images = _sample(index_path, processed, params["images"], seed)
    if tuple(images.shape[1:]) != tuple(model.input_shape[1:]):
        raise SpecimenError(
            f"{model_dir}: the model takes {model.input_shape[1:]} images, {processed} holds "
            f"{images.shape[1:]}: train it again on these data"
        )
    probs = _predict(model, images)
    predicted = probs.argmax(axis=1)
    layer = last_conv_layer(model).name
    figures.save(
        figures.gradcam(
            images,
            gradcam(model, images, predicted),
            rows.label.tolist(),
            [classes[i] for i in predicted],
            probs.max(axis=1),
            layer,
        ),
        out_dir / "gradcam.png",
    )

    maps = feature_maps(model, images[0], params["layers"])
    figures.save(figures.feature_maps(images[0], maps), out_dir / "feature_maps.png")

    targets = list(range(min(params["classes"], len(classes))))
    start = _predict(model, np.round(noise(model.input_shape[1:], len(targets), seed)).astype(np.uint8))
    maximised = activation_maximisation(model, targets, params["steps"], seed)
    final = _predict(model, maximised)
    figures.save(
        figures.activation_max(
            maximised, [classes[i] for i in targets], final[np.arange(len(targets)), targets], params["steps"]
        ),
        out_dir / "activation_max.png",
    )

    summary = {
        "model": Path(model_dir).name,
        "seed": seed,
        "gradcam": {
            "layer": layer,
            "samples": [
                {"id": r.id, "true": r.label, "predicted": classes[p], "probability": round(float(probs[k, p]), 6)}
                for k, (r, p) in enumerate(zip(rows.itertuples(), predicted))
            ],
        },
        "feature_maps": {
            "id": rows.id[0],
            "layers": [name for name, _ in maps],
            "channels": [int(m.shape[-1]) for _, m in maps],
        },
        "activation_max": {
            "steps": params["steps"],
            "classes": {
                classes[c]: {
                    "start_probability": round(float(start[k, c]), 6),
                    "final_probability": round(float(final[k, c]), 6),
                }
                for k, c in enumerate(targets)
            },
        },
    }
    write_json(out_dir / "explain.json", summary)
    return summary


# -- the model's parts -----------------------------------------------------------------------


def _conv_types():
    import keras

    return (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.SeparableConv2D)


def _nested(layer) -> bool:
    """A model inside the model that holds convolutions (a keras.applications backbone)."""
    import keras

    return isinstance(layer, keras.Model) and any(isinstance(sub, _conv_types()) for sub in layer.layers)


def conv_layers(model) -> list:
    """(layer, owner) for each convolution layer, in order, including those of a nested backbone
    (owner: the model whose graph the layer belongs to)."""
    found = []
    for layer in model.layers:
        if _nested(layer):
            found += [(sub, layer) for sub in layer.layers if isinstance(sub, _conv_types())]
        elif isinstance(layer, _conv_types()):
            found.append((layer, model))
    return found


def last_conv_layer(model):
    """The layer whose output Grad-CAM weighs: the last convolution layer of `model`, or a nested
    backbone if that comes later (its output is its last convolution block's activation, the
    layer the keras.io example uses for Xception)."""
    candidates = [layer for layer in model.layers if _nested(layer) or isinstance(layer, _conv_types())]
    if not candidates:
        raise SpecimenError(f"model {model.name!r} has no convolution layer to explain")
    return candidates[-1]


def _outer(layer, what: str = "output_tensors"):
    """The tensor a layer takes or gives in the graph of the model that calls it. A nested
    model's `.input`/`.output` are its own graph's, and Keras has no public way to the tensors of
    its call (a grey model's channel concatenation makes the model no chain to run layer by
    layer): this reads the node of the call, ``layer._inbound_nodes[0]``, the one private Keras
    name explain uses (tests/test_adapters.py fails, naming it, if an upgrade removes it)."""
    return getattr(layer._inbound_nodes[0], what)[0]


def score_model(model):
    """A copy of `model` (same weights) that takes float pixels and returns pre-softmax scores:
    gradients then reach the input, and do not vanish when the softmax saturates. A model whose
    last layer is not a softmax Dense is copied as it is."""
    import keras

    last = model.layers[-1]

    def clone(layer):
        config = layer.get_config()
        if layer is last and config.get("activation") == "softmax":
            config["activation"] = "linear"
        return layer.__class__.from_config(config)

    copy = keras.models.clone_model(
        model, clone_function=clone, input_tensors=keras.Input(model.input_shape[1:], dtype="float32", name="pixels")
    )
    if [w.shape for w in copy.weights] != [w.shape for w in model.weights]:
        raise SpecimenError(f"model {model.name!r}: cannot copy its weights for the gradients")
    for dst, src in zip(copy.weights, model.weights):
        dst.assign(src)
    return copy


# -- Grad-CAM ------------------------------------------------------------------------------


def _centred(logits):
    """Pre-softmax scores minus their mean over the classes. A softmax ignores a shift common to
    all scores, so a class's raw score can fall while the evidence for it grows (its rivals' fall
    faster); the centred score is the evidence for it relative to the others."""
    import tensorflow as tf

    logits = tf.cast(logits, tf.float32)
    return logits - tf.reduce_mean(logits, axis=1, keepdims=True)


def gradcam(model, images: np.ndarray, class_ids, batch_size: int = 32) -> np.ndarray:
    """Grad-CAM heatmaps (n, H, W) in [0, 1] of `images` (n, H, W, C; the model's pixel range)
    for one class id each."""
    import keras
    import tensorflow as tf

    scores = score_model(model)
    grad_model = keras.Model(scores.input, [_outer(last_conv_layer(scores)), scores.output])
    heatmaps = []
    for start in range(0, len(images), batch_size):
        x = tf.convert_to_tensor(np.asarray(images[start : start + batch_size]), tf.float32)
        ids = tf.constant(np.asarray(class_ids[start : start + batch_size]), tf.int32)
        with tf.GradientTape() as tape:
            maps, logits = grad_model(x, training=False)
            score = tf.reduce_sum(tf.gather(_centred(logits), ids, axis=1, batch_dims=1))
        grads = tf.cast(tape.gradient(score, maps), tf.float32)  # float16 under mixed precision
        maps = tf.cast(maps, tf.float32)
        weights = tf.reduce_mean(grads, axis=(1, 2))  # one per channel: (n, channels)
        heat = tf.nn.relu(tf.einsum("nhwc,nc->nhw", maps, weights))
        heat = heat / (tf.reduce_max(heat, axis=(1, 2), keepdims=True) + 1e-12)
        heat = tf.image.resize(heat[..., None], x.shape[1:3], method="bilinear")[..., 0]
        heatmaps.append(np.clip(heat.numpy(), 0, 1))
    return np.concatenate(heatmaps) if heatmaps else np.zeros((0, *np.shape(images)[1:3]), np.float32)


# -- feature maps --------------------------------------------------------------------------


def feature_maps(model, image: np.ndarray, n_layers: int) -> list[tuple[str, np.ndarray]]:
    """(name, maps (h, w, channels)) of the first `n_layers` convolution layers for one image."""
    import keras

    chosen = conv_layers(model)[:n_layers]
    x = np.asarray(image)[None]
    out = []
    for owner in dict.fromkeys(o for _, o in chosen):  # the model's own layers, then a backbone's
        layers = [layer for layer, o in chosen if o is owner]
        inputs = x if owner is model else keras.Model(model.input, _outer(owner, "input_tensors"))(x, training=False)
        maps = keras.Model(owner.input, [layer.output for layer in layers])(inputs, training=False)
        maps = maps if isinstance(maps, (list, tuple)) else [maps]  # Keras unpacks a single output
        out += [(layer.name, np.asarray(m)[0].astype(np.float32)) for layer, m in zip(layers, maps)]
    return out


# -- activation maximisation -----------------------------------------------------------------


def noise(shape, n: int, seed: int) -> np.ndarray:
    """The seeded starting images: mid-grey with Gaussian noise, (n, *shape) floats in 0..255."""
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(128.0, 24.0, (n, *shape)), 0, 255).astype(np.float32)


def activation_maximisation(
    model,
    class_ids,
    steps: int,
    seed: int = 0,
    step_size: float = 4.0,
    blur_every: int = 4,
    blur_sigma: float = 0.7,
    jitter: int = 1,
) -> np.ndarray:
    """One uint8 image per class id that the model takes for that class: gradient ascent on the
    class's log-probability from `noise(..., seed)`, each step of `step_size` pixel values on
    average (the gradient normalised), the image shifted at random by up to `jitter` pixels
    while the gradient is taken, and Gaussian-blurred every `blur_every` steps."""
    import tensorflow as tf
    from scipy.ndimage import gaussian_filter

    scores = score_model(model)
    ids = tf.constant(np.asarray(class_ids), tf.int32)
    x = noise(model.input_shape[1:], len(class_ids), seed)
    rng = np.random.default_rng(seed)

    @tf.function
    def gradient(x, shift):
        with tf.GradientTape() as tape:
            tape.watch(x)
            logits = tf.cast(scores(tf.roll(x, shift, axis=[1, 2]), training=False), tf.float32)
            objective = tf.reduce_sum(tf.gather(tf.nn.log_softmax(logits), ids, axis=1, batch_dims=1))
        return tape.gradient(objective, x)

    for step in range(steps):
        shift = rng.integers(-jitter, jitter + 1, 2).astype(np.int32)
        g = gradient(tf.constant(x), tf.constant(shift)).numpy()
        g /= np.abs(g).mean(axis=(1, 2, 3), keepdims=True) + 1e-12
        x = np.clip(x + step_size * g, 0, 255)
        if blur_every and (step + 1) % blur_every == 0 and step + 1 < steps:
            x = gaussian_filter(x, sigma=(0, blur_sigma, blur_sigma, 0))
    return np.round(x).astype(np.uint8)


# -- reading the model and the sample -----------------------------------------------------


def _predict(model, images: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """Class probabilities, called batch by batch (no predict function to compile for a few images)."""
    return np.concatenate(
        [
            np.asarray(model(images[i : i + batch_size], training=False), np.float32)
            for i in range(0, len(images), batch_size)
        ]
    )


def _sample(index_path: Path, processed: Path, n: int, seed: int):
    """A seeded sample of up to `n` test rows (in index order) and their images."""
    rows = split_rows(index_path, "test")
    if rows.empty:
        raise SpecimenError(f"{index_path}: the test split is empty: nothing to explain")
    keep = np.sort(np.random.default_rng(seed).choice(len(rows), min(n, len(rows)), replace=False))
    rows = rows.iloc[keep].reset_index(drop=True)
    return rows, Shards(Path(processed) / "shards").get(rows.shard, rows.offset)


def _load(model_dir: Path):
    from specimen.train.models import load

    if not (Path(model_dir) / "model.keras").is_file():
        raise SpecimenError(f"{model_dir}: no model.keras here (train the model first: specimen train)")
    return load(Path(model_dir) / "model.keras")
