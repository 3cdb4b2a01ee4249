"""VGG-16 for CIFAR with one fully connected layer (Son et al.'s setting) and its
compressed forms.

Every conv is conv -> BN -> ReLU, with 2x2 max pooling after the 2nd, 4th, 7th, 10th
and 13th conv and one Dense layer on the 512 pooled features. The first three convs
are kept in every variant (the authors' ``vgg_*.py``); the other ten become:

- ``"basis"``: ``BasisConv2D`` -> BN -> ReLU -> 1x1 coefficients -> BN -> ReLU, one
  basis per layer. Table 9: m = 128 filters of depth 128 (so s = c / 128).
- ``"factor"``: two SIC layers (depthwise 3x3 -> BN -> 1x1 -> BN, + identity when the
  shapes allow, ReLU).
- ``"group"``: grouped 3x3 (64 channels per group, the paper's size) -> BN -> ReLU ->
  1x1 -> BN -> ReLU.
"""

from __future__ import annotations

import keras

from examples.cifar10.common import (
    GroupConv2D,
    check_variant,
    resolve_num_basis,
    resolve_splits,
)
from keras_basis import BasisConv2D

__all__ = ["vgg16", "VGG_VARIANTS", "VGG16_CONFIG"]

VGG_VARIANTS = ("baseline", "basis", "factor", "group")
VGG16_CONFIG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
                512, 512, 512, "M")


def _bn_relu(x, name):
    x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def _conv(x, n, k, name):
    return keras.layers.Conv2D(
        n, k, padding="same", use_bias=False,
        kernel_initializer="he_normal", name=name,
    )(x)


def _sic(x, n, name):
    c = x.shape[-1]
    y = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False, name=f"{name}_dw")(x)
    y = keras.layers.BatchNormalization(name=f"{name}_dw_bn")(y)
    y = _conv(y, n, 1, f"{name}_pw")
    y = keras.layers.BatchNormalization(name=f"{name}_pw_bn")(y)
    if c == n:
        y = keras.layers.Add(name=f"{name}_add")([y, x])
    return keras.layers.ReLU(name=f"{name}_relu")(y)


def vgg16(
    variant="baseline",
    *,
    num_classes=10,
    input_shape=(32, 32, 3),
    num_basis=128,
    basis_depth=128,
    splits=None,
    ratio=None,
    keep_first=3,
    group_size=64,
    name=None,
):
    """VGG-16 (one FC layer) in one of four variants.

    Args:
        variant: ``"baseline"``, ``"basis"``, ``"factor"`` or ``"group"``.
        num_classes: classifier outputs.
        input_shape: image shape (normalised input, channels last).
        num_basis: ``"basis"``: m of every compressed layer (Table 9: 128), or None
            with ``ratio``.
        basis_depth: ``"basis"``: p, the depth of each basis (Table 9: 128), used when
            ``splits`` is None; s = c / p (a layer with c < p uses s = 1).
        splits: ``"basis"``: instead of ``basis_depth``, ``"auto"`` (Eq. 13),
            ``"channel"`` or an int.
        ratio: ``"basis"`` with ``num_basis=None``: fraction of weights to keep per layer.
        keep_first: how many leading convs stay uncompressed (paper: 3).
        group_size: ``"group"``: channels per group.
        name: model name (default ``vgg16_{variant}``).

    Returns:
        keras.Model.

    Example:

    >>> from examples.cifar10.models import vgg16
    >>> model = vgg16("basis")      # about 3.2M parameters (paper: 3.21M)
    """
    check_variant(variant, VGG_VARIANTS, "vgg16")
    inputs = keras.Input(input_shape, name="image")
    x = inputs
    index = 0
    block, pos = 1, 1
    for v in VGG16_CONFIG:
        if v == "M":
            x = keras.layers.MaxPooling2D(2, name=f"pool{block}")(x)
            block, pos = block + 1, 1
            continue
        index += 1
        name_i = f"block{block}_conv{pos}"
        pos += 1
        c = x.shape[-1]
        if variant == "baseline" or index <= keep_first:
            x = _bn_relu(_conv(x, v, 3, name_i), name_i)
        elif variant == "basis":
            if splits is None:
                s = c // basis_depth if c >= basis_depth and c % basis_depth == 0 else 1
            else:
                s = resolve_splits(splits, c, v)
            m = resolve_num_basis(num_basis, ratio, c, v, s)
            y = BasisConv2D(m, 3, splits=s, padding="same", name=f"{name_i}_basis")(x)
            y = _bn_relu(y, f"{name_i}_basis")
            x = _bn_relu(_conv(y, v, 1, f"{name_i}_coef"), name_i)
        elif variant == "factor":
            x = _sic(x, c, f"{name_i}_sic1")
            x = _sic(x, v, f"{name_i}_sic2")
        else:
            y = GroupConv2D(c, 3, max(1, c // group_size), name=f"{name_i}_group")(x)
            y = _bn_relu(y, f"{name_i}_group")
            x = _bn_relu(_conv(y, v, 1, f"{name_i}_pw"), name_i)
    x = keras.layers.Flatten(name="flatten")(x)
    outputs = keras.layers.Dense(num_classes, name="fc")(x)
    return keras.Model(inputs, outputs, name=name or f"vgg16_{variant}")
