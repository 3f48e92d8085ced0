"""The feature extractors that embed runs over the shards and search over any image: one vector per
image, the same function for both.

``histogram``: OpenCV ``calcHist`` over the 3 channels, 8x8x8 bins over [0, 256), normalised by
``cv2.normalize`` with its defaults (L2), flattened to 512 floats. Only the image's own pixels
count: the zero padding added by preprocess is masked out. Offline.

``clip``: keras-hub's CLIP (``embed.clip_preset``: a preset name, or a local preset folder): the
preset's ``CLIPImageConverter`` resizes and normalises the 0..255 pixels, and the feature is
``CLIPBackbone.get_vision_embeddings``, the projected vision embedding (512 floats for ViT-B/32).

A keras.applications backbone by lower-case name (``vgg16``, ``resnet50v2``, ``efficientnetb0``,
``convnext_tiny``...; see BACKBONES): built with ``include_top=False, pooling="avg"``, fed the
processed image (padding included; grey repeated to 3 channels; resized with ``cv2.INTER_AREA``
to ``embed.input_size`` if given) through its own ``preprocess_input``. ``embed.weights``:
``imagenet``, ``none`` (random, from a fixed seed) or a path to a ``.weights.h5`` file.

Weights come from Keras' cache ($KERAS_HOME/models) or kagglehub's ($KAGGLEHUB_CACHE), downloaded
there if missing; a download that fails (offline, a dead proxy: sockets time out after
backbones.FETCH_TIMEOUT seconds) is one line saying how to pre-fetch them.

The same inputs and params (batch_size included: kernels differ with the batch) give the same bytes.
TensorFlow's CPU kernels split work by thread count, so it is fixed ($TF_NUM_INTRAOP_THREADS,
default THREADS) rather than the machine's core count; other CPU types or a GPU give other bits.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from specimen import SpecimenError
from specimen.backbones import BACKBONES, check_size, fetching, first_line, imagenet_how

EXTRACTORS = ("histogram", "clip", *BACKBONES)
THREADS = 8  # TensorFlow intra-op threads, whatever the cores: the same bytes on any machine of a kind


def colour_histogram(rgb: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    if rgb.shape[2] == 1:
        rgb = np.repeat(rgb, 3, axis=2)
    hist = cv2.calcHist([np.ascontiguousarray(rgb)], [0, 1, 2], mask, [8, 8, 8], [0, 256, 0, 256, 0, 256])
    cv2.normalize(hist, hist)
    return hist.flatten()


def histograms(rows: pd.DataFrame, images: np.ndarray) -> np.ndarray:
    """Each image's colour histogram over its own pixels (the padding masked out)."""
    out = np.zeros((len(images), 512), np.float32)
    for i, ((y0, x0, y1, x1), img) in enumerate(zip(rows[["y0", "x0", "y1", "x1"]].to_numpy(), images)):
        mask = np.zeros(img.shape[:2], dtype=np.uint8)
        mask[y0:y1, x0:x1] = 255
        out[i] = colour_histogram(img, mask)
    return out


def _rgb_floats(images: np.ndarray, size=None) -> np.ndarray:
    """uint8 (n, h, w, 1 or 3) -> float32 (n, H, W, 3) in 0..255, resized to `size` [H, W] if given."""
    if images.shape[3] == 1:
        images = np.repeat(images, 3, axis=3)
    if size is not None and tuple(size) != images.shape[1:3]:
        images = np.stack([cv2.resize(img, (size[1], size[0]), interpolation=cv2.INTER_AREA) for img in images])
    return images.astype(np.float32)


def _backbone(name: str, weights: str, size: tuple[int, int]):
    module, constructor = BACKBONES[name]
    h, w = size
    too_small = f"{name} cannot take {h}x{w} images"
    check_size(name, size, "embed.input_size")
    path = None if weights in ("imagenet", "none") else Path(weights)
    if path is not None and not path.is_file():
        raise SpecimenError(f"embed.weights: {weights}: no such file (imagenet, none or a .weights.h5 file)")
    import keras  # after the checks above, which need no TensorFlow

    how = imagenet_how(constructor, "embed.weights")
    keras.utils.set_random_seed(0)  # weights: none is random, the same each time
    with fetching(f"{constructor} ImageNet weights", how):
        try:
            model = getattr(keras.applications, constructor)(
                include_top=False,
                pooling="avg",
                input_shape=(h, w, 3),
                weights="imagenet" if weights == "imagenet" else None,
            )
        except ValueError as e:  # keras.applications checks the input shape before fetching weights
            raise SpecimenError(f"{too_small} ({first_line(e)}): set embed.input_size") from None
    if path is not None:
        try:
            model.load_weights(path)
        except (ValueError, OSError, KeyError, TypeError) as e:
            raise SpecimenError(
                f"embed.weights: {weights}: not {constructor} weights for {h}x{w} inputs ({first_line(e)})"
            ) from None
    preprocess = getattr(keras.applications, module).preprocess_input

    def features(
        rows, images
    ):  # Keras' compiled predict: a call in eager mode was 3 to 7 times slower (bench/embed.py)
        return model.predict_on_batch(preprocess(_rgb_floats(images, size)))

    return features, model.output_shape[-1]


def _clip(preset: str):
    import keras
    import keras_hub

    backbone_cls, converter_cls = keras_hub.models.CLIPBackbone, keras_hub.layers.CLIPImageConverter
    local = Path(preset).is_dir()
    if not local and preset not in backbone_cls.presets and "://" not in preset:
        raise SpecimenError(
            f"embed.clip_preset: {preset!r} is neither a folder nor a keras-hub CLIP preset "
            f"({', '.join(backbone_cls.presets)})"
        )
    handle = backbone_cls.presets.get(preset, {}).get("kaggle_handle", preset).removeprefix("kaggle://")
    how = (
        f"on a machine with internet run keras_hub.models.CLIPBackbone.from_preset({preset!r}), then copy its "
        f"kagglehub cache (~/.cache/kagglehub) to {os.environ.get('KAGGLEHUB_CACHE', '~/.cache/kagglehub')} "
        f"here; or download the preset folder (kagglehub.model_download({handle!r})) and set embed.clip_preset to it"
    )
    with contextlib.nullcontext() if local else fetching(f"CLIP preset {preset}", how):
        try:
            backbone, converter = backbone_cls.from_preset(preset), converter_cls.from_preset(preset)
        except (ValueError, TypeError, KeyError, FileNotFoundError) as e:
            if not local and isinstance(e, FileNotFoundError):
                raise
            raise SpecimenError(f"embed.clip_preset: {preset}: not a CLIP preset ({first_line(e)})") from None

    def features(rows, images):
        return keras.ops.convert_to_numpy(backbone.get_vision_embeddings(converter(_rgb_floats(images))))

    return features, backbone.vision_projection.units


def network(extractor: str, size, *, weights: str = "imagenet", clip_preset: str = "clip_vit_base_patch32"):
    """A network extractor: ``clip`` (``clip_preset``), or a keras.applications backbone fed
    [H, W] = `size` images with `weights`. Returns (features(rows, images), dim): uint8
    (n, h, w, 1 or 3) images in, float32 (n, dim) out (``rows`` is unused)."""
    if extractor == "clip":
        return _clip(clip_preset)
    return _backbone(extractor, weights, tuple(size))
