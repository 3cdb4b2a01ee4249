"""VGG-16 for CIFAR with one fully connected layer (Son et al.'s setting) and its
compressed forms.

Every conv is conv (+ bias) -> BN -> ReLU, with 2x2 max pooling after the 2nd, 4th,
7th, 10th and 13th conv and one Dense layer on the 512 pooled features. The authors'
baseline (``vgg.py``, ``norm = None``) has no BatchNorm: ``"baseline"`` is conv (+ bias)
-> ReLU unless ``bn=True``. The first three convs are kept in every variant (the
authors' ``vgg_*.py``); the other ten become:

- ``"basis"``: ``BasisConv2D`` (+ bias) -> BN -> ReLU -> 1x1 coefficients (+ bias) ->
  BN -> ReLU, one basis per layer. Table 9: m = 128 filters of depth 128 (so
  s = c / 128).
- ``"factor"``: two SIC layers (depthwise 3x3 -> BN -> 1x1 -> BN, + identity when the
  shapes allow, ReLU).
- ``"group"``: grouped 3x3 (64 channels per group, the paper's size) -> BN -> ReLU ->
  1x1 -> BN -> ReLU.

BatchNorm uses PyTorch's constants (eps 1e-5, momentum 0.1) and the init is the
authors' ``init_vgg`` (conv N(0, 2/fan_out), biases zero, Linear N(0, 0.01^2)).
"""

from __future__ import annotations

import keras

from examples.cifar10.common import (
    GroupConv2D,
    bn_relu,
    check_variant,
    conv,
    init_for,
    resolve_num_basis,
    resolve_splits,
    sic,
)
from keras_basis import BasisConv2D

__all__ = ["vgg16", "VGG_VARIANTS", "VGG16_CONFIG"]

VGG_VARIANTS = ("baseline", "basis", "factor", "group")
VGG16_CONFIG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
                512, 512, 512, "M")


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
    bn=None,
    init="vgg",
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
        bn: BatchNorm after the convs of ``"baseline"`` (default False: the authors'
            baseline has none; the other variants always have it).
        init: ``"vgg"`` (the authors' ``init_vgg``, default), ``"kaiming"`` or
            ``"torch"`` (see ``common.init_for``).
        name: model name (default ``vgg16_{variant}``).

    Returns:
        keras.Model.

    Example:

    >>> from examples.cifar10.models import vgg16
    >>> model = vgg16("basis")      # about 3.2M parameters (paper: 3.21M)
    """
    check_variant(variant, VGG_VARIANTS, "vgg16")
    init_for(init, "conv")  # validates
    if bn is None:
        bn = variant != "baseline"

    def plain(x, n, name_i):
        x = conv(x, n, 3, name_i, use_bias=True, init=init)
        if bn:
            return bn_relu(x, name_i)
        return keras.layers.ReLU(name=f"{name_i}_relu")(x)

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
            x = plain(x, v, name_i)
        elif variant == "basis":
            if splits is None:
                s = c // basis_depth if c >= basis_depth and c % basis_depth == 0 else 1
            else:
                s = resolve_splits(splits, c, v)
            m = resolve_num_basis(num_basis, ratio, c, v, s)
            y = BasisConv2D(m, 3, splits=s, padding="same", use_bias=True,
                            name=f"{name_i}_basis")(x)
            y = bn_relu(y, f"{name_i}_basis")
            x = bn_relu(conv(y, v, 1, f"{name_i}_coef", use_bias=True, init=init), name_i)
        elif variant == "factor":
            x = sic(x, c, f"{name_i}_sic1", dw_bn=True, pw_bn=True, init=init)
            x = sic(x, v, f"{name_i}_sic2", dw_bn=True, pw_bn=True, init=init)
        else:
            y = GroupConv2D(c, 3, max(1, c // group_size), kernel_initializer=init_for(
                init, "conv"), name=f"{name_i}_group")(x)
            y = bn_relu(y, f"{name_i}_group")
            x = bn_relu(conv(y, v, 1, f"{name_i}_pw", init=init), name_i)
    x = keras.layers.Flatten(name="flatten")(x)
    outputs = keras.layers.Dense(
        num_classes, kernel_initializer=init_for(init, "dense"),
        bias_initializer=init_for(init, "dense_bias", int(x.shape[-1])), name="fc",
    )(x)
    return keras.Model(inputs, outputs, name=name or f"vgg16_{variant}")
