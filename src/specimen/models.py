"""Model builders. ``small_cnn``: a small convolutional network trained from scratch.

The model takes raw uint8 images exactly as preprocess stores them: rescaling, augmentation
(active only in training) and per-image standardisation are layers inside it, so the saved
model needs no preprocessing code to predict.
"""
from __future__ import annotations

from specimen import SpecimenError

MODELS = ("small_cnn",)


def augmentation(augment: dict, seed: int):
    """Random flip / rotation (degrees) / translation / zoom (fractions), from train.augment."""
    import keras

    layers = []
    if augment.get("flip", "none") != "none":
        layers.append(keras.layers.RandomFlip(augment["flip"], seed=seed))
    if augment.get("rotation", 0):
        layers.append(keras.layers.RandomRotation(augment["rotation"] / 360.0, fill_mode="constant", seed=seed))
    if augment.get("translate", 0):
        t = augment["translate"]
        layers.append(keras.layers.RandomTranslation(t, t, fill_mode="constant", seed=seed))
    if augment.get("zoom", 0):
        layers.append(keras.layers.RandomZoom(augment["zoom"], fill_mode="constant", seed=seed))
    return keras.Sequential(layers, name="augmentation") if layers else None


def small_cnn(input_shape, n_classes: int, augment: dict, seed: int):
    import keras
    from keras import layers

    inputs = keras.Input(shape=input_shape, dtype="uint8", name="image")
    x = layers.Rescaling(1 / 255.0)(inputs)
    if (augment_layers := augmentation(augment, seed)) is not None:
        x = augment_layers(x)
    # Per-image standardisation: paper tint, ink colour and exposure stop mattering.
    x = layers.LayerNormalization(axis=(1, 2, 3), center=False, scale=False, name="standardise")(x)
    for filters in (16, 32, 64):  # VGG-style blocks: two 3x3 convolutions, then pooling
        x = layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        x = layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        x = layers.MaxPooling2D()(x)
    # Flatten, not global pooling: where the strokes are is what tells one class from another.
    x = layers.Flatten()(x)
    x = layers.Dense(128, activation="relu")(x)
    x = layers.Dropout(0.4, seed=seed)(x)
    outputs = layers.Dense(n_classes, activation="softmax", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="small_cnn")


def build(name: str, input_shape, n_classes: int, augment: dict, seed: int):
    if name not in MODELS:
        raise SpecimenError(f"unknown model {name!r}: choose one of {', '.join(MODELS)}")
    return {"small_cnn": small_cnn}[name](input_shape, n_classes, augment, seed)
