"""keras.applications backbones by lower-case name, shared by embed (features) and train (models).

A name is the constructor's, lower-cased (VGG16 -> vgg16, ConvNeXtTiny -> convnext_tiny); each
comes with its module, whose ``preprocess_input`` turns 0..255 RGB pixels into what the network
was trained on (caffe-style BGR means for VGG and ResNet, [-1, 1] for Xception or MobileNetV2,
nothing for EfficientNet and ConvNeXt, which rescale inside).
"""

from __future__ import annotations

import contextlib
import os
import socket

from specimen import SpecimenError

# keras.applications module: its constructors.
FAMILIES = {
    "vgg16": "VGG16",
    "vgg19": "VGG19",
    "resnet": "ResNet50 ResNet101 ResNet152",
    "resnet_v2": "ResNet50V2 ResNet101V2 ResNet152V2",
    "xception": "Xception",
    "inception_v3": "InceptionV3",
    "inception_resnet_v2": "InceptionResNetV2",
    "mobilenet": "MobileNet",
    "mobilenet_v2": "MobileNetV2",
    "mobilenet_v3": "MobileNetV3Small MobileNetV3Large",
    "densenet": "DenseNet121 DenseNet169 DenseNet201",
    "efficientnet": " ".join(f"EfficientNetB{i}" for i in range(8)),
    "efficientnet_v2": "EfficientNetV2B0 EfficientNetV2B1 EfficientNetV2B2 EfficientNetV2B3 EfficientNetV2S "
    "EfficientNetV2M EfficientNetV2L",
    "convnext": "ConvNeXtTiny ConvNeXtSmall ConvNeXtBase ConvNeXtLarge ConvNeXtXLarge",
    "nasnet": "NASNetMobile NASNetLarge",
}
BACKBONES = {
    c.lower().replace("convnext", "convnext_"): (module, c)
    for module, constructors in FAMILIES.items()
    for c in constructors.split()
}
MIN_SIZE = {"xception": 71, "inceptionv3": 75, "inceptionresnetv2": 75}  # the others: 32


def min_size(name: str) -> int:
    return MIN_SIZE.get(name, 32)


def check_size(name: str, size, setting: str) -> None:
    """A one-line error when `size` [H, W] is below what the backbone takes."""
    least = min_size(name)
    if min(size) < least:
        raise SpecimenError(
            f"{name} cannot take {size[0]}x{size[1]} images: set {setting} to at least [{least}, {least}]"
        )


def constructor(name: str):
    import keras

    return getattr(keras.applications, BACKBONES[name][1])


def preprocess_input(name: str):
    import keras

    return getattr(keras.applications, BACKBONES[name][0]).preprocess_input


FETCH_TIMEOUT = 30  # seconds without an answer before a download gives up


def first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def imagenet_how(constructor_name: str, setting: str) -> str:
    """How to pre-fetch a backbone's ImageNet weights onto a machine without internet."""
    return (
        f"on a machine with internet run keras.applications.{constructor_name}(include_top=False, "
        f"weights='imagenet'), then copy the file it saved in ~/.keras/models/ into "
        f"{os.environ.get('KERAS_HOME', '~/.keras')}/models/ here, or set {setting} to a .weights.h5 file"
    )


@contextlib.contextmanager
def fetching(what: str, how: str):
    """Downloads inside fail within FETCH_TIMEOUT seconds, as one line saying how to pre-fetch."""
    saved = socket.getdefaulttimeout()
    socket.setdefaulttimeout(FETCH_TIMEOUT)
    try:
        yield
    except Exception as e:  # urllib/requests errors are OSErrors; keras.utils.get_file re-raises a bare Exception
        network = isinstance(e, OSError) or "URL fetch failure" in str(e) or type(e).__module__.startswith("kagglehub")
        if not network:
            raise
        raise SpecimenError(f"cannot download {what} ({first_line(e)}); to pre-fetch: {how}") from None
    finally:
        socket.setdefaulttimeout(saved)
