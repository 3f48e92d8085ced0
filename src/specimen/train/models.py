"""Model builders, by name (``train.models``):

- ``small_cnn``: a small residual network trained from scratch (see `small_cnn`);
- any keras.applications backbone by lower-case name (``vgg16``, ``resnet50v2``, ``xception``,
  ``mobilenetv2``, ``efficientnetb0``..``b7``, ``efficientnetv2s``, ``convnext_tiny``, ...; see
  specimen.backbones): ``include_top=False`` with ``train.weights`` (imagenet, none or a
  .weights.h5 file). Pretrained, it is built frozen and called with ``training=False`` (batch norm
  keeps its statistics, also once `unfreeze` opens its top layers for fine-tuning); with
  ``weights: none`` all of it trains from the start (random weights hold nothing to keep). Then
  the head: global average pooling, optional batch norm, an optional dense ReLU layer
  (``head.units``), dropout, and a softmax dense layer with L2.

Every model takes raw uint8 images exactly as preprocess stores them: augmentation (active only
in training) and the network's own input preprocessing are layers inside it, so the saved model
needs no preprocessing code to predict.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from specimen import SpecimenError
from specimen.backbones import BACKBONES, check_size, fetching, imagenet_how

MODELS = ("small_cnn", *BACKBONES)
_PREPROCESS = None


def _preprocess_layer():
    """A layer that applies a backbone family's preprocess_input; saved by family name."""
    global _PREPROCESS
    if _PREPROCESS is None:
        import keras

        @keras.saving.register_keras_serializable(package="specimen")
        class BackbonePreprocess(keras.layers.Layer):
            def __init__(self, backbone: str, **kwargs):
                super().__init__(**kwargs)
                self.backbone = backbone

            def call(self, x):
                from specimen.backbones import preprocess_input

                return preprocess_input(self.backbone)(x)

            def get_config(self):
                return {**super().get_config(), "backbone": self.backbone}

        _PREPROCESS = BackbonePreprocess
    return _PREPROCESS


def augmentation(augment: dict, seed: int, value_range=(0, 255)):
    """Random flip / rotation (degrees) / translation / zoom / contrast (fractions), then
    RandAugment (``rand_augment``: its strength, 0 off; two random operations per image), from
    train.augment, for images whose values lie in `value_range`. (MixUp and CutMix mix labels
    too, so they act on the training batches: specimen.train.inputs.mixed.)"""
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
    if augment.get("contrast", 0):
        layers.append(keras.layers.RandomContrast(augment["contrast"], value_range=value_range, seed=seed))
    if augment.get("rand_augment", 0):
        layers.append(
            keras.layers.RandAugment(value_range=value_range, num_ops=2, factor=augment["rand_augment"], seed=seed)
        )
    return keras.Sequential(layers, name="augmentation") if layers else None


def small_cnn(
    input_shape,
    n_classes: int,
    augment: dict,
    seed: int,
    filters=(16, 32, 64),
    blocks: int = 1,
    units: int = 0,
    dropout: float = 0.2,
):
    """A small ResNet for training from scratch: a 3x3 stem (stride 2 on images over 64 px), then
    one stage per entry of `filters`, each of `blocks` basic residual blocks (two 3x3
    convolutions with batch norm, the block's last batch norm starting at zero so that each block
    starts as the identity; every stage after the first halves the resolution), global average
    pooling, an optional dense layer (`units`, 0: none), dropout and the softmax.

    The input is standardised per image (zero mean, unit variance over all its pixels: exposure
    and tint stop mattering). Batch norm uses momentum 0.9, not Keras' 0.99: a small dataset makes
    few steps per epoch, and statistics averaged over ~1000 steps would lag the weights for many
    epochs, so that validation (which uses them) would sit at chance while training learns.
    """
    import keras
    from keras import layers

    def norm(x, name, zero=False):
        return layers.BatchNormalization(momentum=0.9, gamma_initializer="zeros" if zero else "ones", name=name)(x)

    def block(x, width, stride, name):
        shortcut = x
        if stride != 1 or x.shape[-1] != width:
            shortcut = layers.Conv2D(width, 1, strides=stride, use_bias=False, name=f"{name}_project")(x)
            shortcut = norm(shortcut, f"{name}_project_bn")
        y = layers.Conv2D(width, 3, strides=stride, padding="same", use_bias=False, name=f"{name}_conv1")(x)
        y = layers.ReLU(name=f"{name}_relu1")(norm(y, f"{name}_bn1"))
        y = layers.Conv2D(width, 3, padding="same", use_bias=False, name=f"{name}_conv2")(y)
        y = norm(y, f"{name}_bn2", zero=True)
        return layers.ReLU(name=f"{name}_out")(layers.Add(name=f"{name}_add")([shortcut, y]))

    inputs = keras.Input(shape=input_shape, dtype="uint8", name="image")
    x = layers.Rescaling(1 / 255.0)(inputs)
    if (augment_layers := augmentation(augment, seed, value_range=(0, 1))) is not None:
        x = augment_layers(x)
    x = layers.LayerNormalization(axis=(1, 2, 3), center=False, scale=False, name="standardise")(x)
    stride = 2 if min(input_shape[:2]) > 64 else 1
    x = layers.Conv2D(filters[0], 3, strides=stride, padding="same", use_bias=False, name="stem_conv")(x)
    x = layers.ReLU(name="stem_relu")(norm(x, "stem_bn"))
    for stage, width in enumerate(filters):
        for number in range(blocks):
            x = block(x, width, 2 if stage and not number else 1, f"stage{stage + 1}_block{number + 1}")
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    if units:
        x = layers.Dense(units, activation="relu", name="dense")(x)
    x = layers.Dropout(dropout, seed=seed, name="dropout")(x)
    outputs = layers.Dense(n_classes, activation="softmax", dtype="float32", name="predictions")(x)
    return keras.Model(inputs, outputs, name="small_cnn")


def lambda_layers(path) -> list[str]:
    """The names of the Lambda layers in a saved .keras file, read from its config.json without
    deserialising anything (a Lambda layer is Python bytecode that runs when the model loads)."""
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as e:
        raise SpecimenError(
            f"{path}: not a readable .keras model ({e}); save it with model.save('model.keras')"
        ) from None
    found, todo = [], [config]
    while todo:
        node = todo.pop()
        if isinstance(node, dict):
            if node.get("class_name") == "Lambda":
                found.append(str(node.get("config", {}).get("name", "?")))
            todo.extend(node.values())
        elif isinstance(node, list):
            todo.extend(node)
    return sorted(found)


def load(path, unsafe: bool = False):
    """A saved specimen model (its custom layers registered first), in Keras' safe mode unless
    `unsafe`: a model holding Lambda layers is refused with a one-line error."""
    if not unsafe and (names := lambda_layers(path)):  # before TensorFlow starts: the error stays one line
        raise SpecimenError(
            f"{path}: Lambda layer(s) {', '.join(names)} would run the model's own Python code "
            "when loaded; give --unsafe only if you trust where the model came from"
        )
    import keras

    _preprocess_layer()
    return keras.saving.load_model(path, safe_mode=not unsafe)


def transfer(name: str, input_shape, n_classes: int, params: dict, seed: int):
    """A keras.applications backbone under a new head (see the module docstring)."""
    import keras
    from keras import layers

    from specimen.backbones import constructor

    check_size(name, input_shape[:2], "image.size")
    weights = params.get("weights", "imagenet")
    path = None if weights in ("imagenet", "none") else weights
    if path is not None and not Path(path).is_file():
        raise SpecimenError(f"train.weights: {weights}: no such file (imagenet, none or a .weights.h5 file)")
    inputs = keras.Input(shape=input_shape, dtype="uint8", name="image")
    x = layers.Rescaling(1.0)(inputs)  # uint8 -> float, 0..255
    if input_shape[2] == 1:
        x = layers.Concatenate(name="grey_to_rgb")([x, x, x])
    if (augment_layers := augmentation(params.get("augment", {}), seed)) is not None:
        x = augment_layers(x)
    x = _preprocess_layer()(name, name="preprocess_input")(x)
    with fetching(f"{BACKBONES[name][1]} ImageNet weights", imagenet_how(BACKBONES[name][1], "train.weights")):
        base = constructor(name)(
            include_top=False, weights="imagenet" if weights == "imagenet" else None, input_shape=(*input_shape[:2], 3)
        )
    if path is not None:
        base.load_weights(path)
    if weights == "none":  # random weights hold nothing to keep: the whole backbone trains.
        for layer in base.layers:  # keras.applications' batch norm averages over ~1000 steps
            if isinstance(layer, layers.BatchNormalization):  # (0.999): from scratch on a small
                layer.momentum = 0.9  # dataset, inference would lag far behind
        x = base(x)
    else:  # pretrained: frozen until `unfreeze`; batch norm keeps the statistics it was trained
        base.trainable = False  # with, even when layers unfreeze (the keras.io fine-tuning guide)
        x = base(x, training=False)
    head = params.get("head", {})
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    if head.get("batch_norm", False):
        x = layers.BatchNormalization(name="head_bn")(x)
    if head.get("units", 0):
        x = layers.Dense(head["units"], activation="relu", name="head_dense")(x)
    x = layers.Dropout(head.get("dropout", 0.2), seed=seed, name="head_dropout")(x)
    outputs = layers.Dense(
        n_classes,
        activation="softmax",
        dtype="float32",
        name="predictions",
        kernel_regularizer=keras.regularizers.L2(head.get("l2", 1e-4)),
    )(x)
    return keras.Model(inputs, outputs, name=name)


def backbone(model):
    """The keras.applications base inside a transfer model (the one nested model that is not the
    augmentation block)."""
    import keras

    bases = [layer for layer in model.layers if isinstance(layer, keras.Model) and layer.name != "augmentation"]
    if len(bases) != 1:
        raise SpecimenError(f"model {model.name!r} has no keras.applications backbone to fine-tune")
    return bases[0]


def unfreeze(model, layers: int | str) -> int:
    """Make the backbone's top `layers` layers (``all``: every one) trainable for fine-tuning;
    batch norm layers stay frozen, as the keras.io guide does. Returns the trainable weights count."""
    import keras

    base = backbone(model)
    n = len(base.layers) if layers == "all" else min(int(layers), len(base.layers))
    base.trainable = n > 0
    for i, layer in enumerate(base.layers):
        top = i >= len(base.layers) - n
        layer.trainable = top and not isinstance(layer, keras.layers.BatchNormalization)
    return len(model.trainable_weights)


def pretrained(name: str, params: dict) -> bool:
    """Whether `name` starts from learned weights, so a frozen-base phase comes first."""
    return name != "small_cnn" and params.get("weights", "imagenet") != "none"


def build(name: str, input_shape, n_classes: int, params: dict, seed: int):
    """The model `name` for images of `input_shape` (H, W, C); params: train's section."""
    if name not in MODELS:
        raise SpecimenError(f"unknown model {name!r} in train.models: choose from {', '.join(MODELS)}")
    if name == "small_cnn":
        return small_cnn(input_shape, n_classes, params.get("augment", {}), seed, **params.get("small_cnn", {}))
    return transfer(name, input_shape, n_classes, params, seed)
