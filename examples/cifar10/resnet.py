"""CIFAR ResNets (He et al., option-A shortcuts) and their compressed forms.

Variants (the layer placement follows the authors' ``resnet*.py`` in
ofsoundof/learning_filter_basis; every 3x3 conv of the residual blocks is replaced,
the first conv and the classifier are kept):

- ``"baseline"``: conv -> BN -> ReLU -> conv -> BN, + shortcut, ReLU.
- ``"basis"``: each conv becomes ``BasisConv2D`` (+ bias) -> 1x1 coefficients (+ bias).
  ``share="stage"`` (the paper's Table 8): one basis per stage shared by its 18 convs;
  the stride-2 first conv of stages 2 and 3 uses the previous stage's basis; every
  call site has its own basis bias (``keras_basis.BasisBias``), as the authors' ``basis_bias``.
  ``share="layer"``: one basis per conv, ``splits`` by rule (``"auto"`` = Eq. 13,
  ``1`` = 3D low rank, ``"channel"`` = s = c) and ``num_basis`` or ``ratio``.
- ``"factor"`` (Wang et al., ICCV-W 2017): each conv becomes two SIC layers
  (depthwise 3x3 -> 1x1, with an identity residual when the shape allows).
- ``"group"`` (Peng et al., ECCV 2018): grouped 3x3 (group size 4/4/8 per stage, the
  paper's sizes) -> 1x1.

With the same weights the networks compute the authors' function
(``python -m examples.port_authors`` ports their checkpoints and checks it): stride-2
convs pad 1 on every side (explicit ``ZeroPadding2D`` + ``"valid"``; TF's ``"same"``
pads only bottom/right), the option-A shortcut is 2x2 average pooling + zero channels,
BatchNorm uses PyTorch's eps 1e-5 / momentum 0.1, and the first conv has a bias.
"""

from __future__ import annotations

import keras

from examples.cifar10.common import (
    GroupConv2D,
    batch_norm,
    check_variant,
    conv,
    init_for,
    pad_for_stride,
    resolve_num_basis,
    resolve_splits,
    shortcut_a,
    sic,
)
from keras_basis import BasisBias, BasisConv2D

__all__ = ["resnet", "resnet20", "resnet56", "RESNET_VARIANTS"]

RESNET_VARIANTS = ("baseline", "basis", "factor", "group")
WIDTHS = (16, 32, 64)
#: Table 8 of the paper: basis size per stage for ResNet-56 (basis depth = stage width).
TABLE8_NUM_BASIS = (24, 48, 84)
#: Group sizes of the paper's "Group" ResNet-56 (appendix; authors' resnet_group.py).
PAPER_GROUP_SIZES = (4, 4, 8)


def _per_stage(value, name):
    if isinstance(value, (tuple, list)):
        if len(value) != 3:
            raise ValueError(
                f"Invalid value for argument `{name}`. Expected one value or 3 (one per "
                f"stage). Received {name}={value!r}."
            )
        return tuple(value)
    return (value,) * 3


def resnet(
    depth=56,
    variant="baseline",
    *,
    num_classes=10,
    input_shape=(32, 32, 3),
    share="stage",
    num_basis=None,
    splits=None,
    ratio=None,
    group_sizes=PAPER_GROUP_SIZES,
    init=None,
    name=None,
):
    """A CIFAR ResNet-``depth`` (``depth = 6n + 2``) in one of four variants.

    Args:
        depth: 20, 32, 44, 56, 110, ...
        variant: ``"baseline"``, ``"basis"``, ``"factor"`` or ``"group"``.
        num_classes: classifier outputs.
        input_shape: image shape (normalised input, channels last).
        share: for ``"basis"``: ``"stage"`` (one basis per stage, Table 8) or
            ``"layer"`` (one basis per conv).
        num_basis: ``share="stage"``: m per stage (int or 3-tuple; default Table 8's
            24/48/84); ``share="layer"``: int for every conv, or None with ``ratio``.
        splits: ``share="stage"``: splits of each stage's own convs (int or 3-tuple;
            default 1, basis depth = stage width as in Table 8); ``share="layer"``:
            ``"auto"`` (Eq. 13, default), ``"channel"`` or an int.
        ratio: ``share="layer"`` only: fraction of each conv's weights to keep.
        group_sizes: ``"group"``: channels per group in each stage (int or 3-tuple).
        init: weight init of the authors' code: ``"torch"`` (PyTorch defaults; default
            of ``"baseline"``, whose CIFAR builder calls no init), ``"kaiming"``
            (``init_kaiming``: conv N(0, 2/fan_in), Linear N(0, 1/c); default of the
            other variants; bases Kaiming-uniform, basis biases zero) or ``"vgg"``.
        name: model name (default ``resnet{depth}_{variant}``).

    Returns:
        keras.Model: input ``input_shape``, output ``num_classes`` logits.

    Example:

    >>> model = resnet(56, "basis")          # Table 8: stage-shared bases 24/48/84
    >>> model = resnet(20, "basis", share="layer", splits="auto", ratio=0.3)
    """
    check_variant(variant, RESNET_VARIANTS, f"resnet{depth}")
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
        raise ValueError(
            f"Invalid value for argument `depth` of resnet. Expected 6n + 2 (20, 32, 44, "
            f"56, 110, ...). Received depth={depth!r}."
        )
    if share not in ("stage", "layer"):
        raise ValueError(
            f"Invalid value for argument `share` of resnet. Expected 'stage' or 'layer'. "
            f"Received share={share!r}."
        )
    if init is None:
        init = "torch" if variant == "baseline" else "kaiming"
    init_for(init, "conv")  # validates
    n_blocks = (depth - 2) // 6
    bases = None
    if variant == "basis" and share == "stage":
        ms = _per_stage(TABLE8_NUM_BASIS if num_basis is None else num_basis, "num_basis")
        ss = _per_stage(1 if splits is None else splits, "splits")
        bases = []
        for i, (w, m, s) in enumerate(zip(WIDTHS, ms, ss)):
            s = resolve_splits(s, w, w)
            bases.append(BasisConv2D(int(m), 3, depth=w // s, padding="same",
                                     name=f"stage{i + 1}_basis"))
    if variant == "basis" and share == "layer" and splits is None:
        splits = "auto"
    gs = _per_stage(group_sizes, "group_sizes")

    def conv_unit(x, n, strides, stage, first_of_stage, name):
        c = x.shape[-1]
        if variant == "baseline":
            return conv(x, n, 3, name, strides=strides, init=init)
        if variant == "basis":
            xp, padding = pad_for_stride(x, 3, strides, f"{name}_basis")
            if bases is not None:
                basis = bases[stage - 1] if first_of_stage and stage > 0 else bases[stage]
                y = basis(xp, strides=strides, padding=padding)
                y = BasisBias(basis.num_basis, name=f"{name}_basis_bias")(y)
            else:
                s = resolve_splits(splits, c, n)
                m = resolve_num_basis(num_basis, ratio, c, n, s)
                y = BasisConv2D(m, 3, splits=s, strides=strides, padding=padding,
                                use_bias=True, name=f"{name}_basis")(xp)
            return conv(y, n, 1, f"{name}_coef", use_bias=True, init=init)
        if variant == "factor":
            y = sic(x, c, f"{name}_sic1", strides=strides, init=init)
            return sic(y, n, f"{name}_sic2", init=init)
        # group
        groups = max(1, c // gs[stage])
        xp, padding = pad_for_stride(x, 3, strides, f"{name}_group")
        y = GroupConv2D(c, 3, groups, strides=strides, padding=padding,
                        kernel_initializer=init_for(init, "conv"), name=f"{name}_group")(xp)
        return conv(y, n, 1, f"{name}_pw", init=init)

    inputs = keras.Input(input_shape, name="image")
    x = conv(inputs, 16, 3, "conv1", use_bias=True, init=init)
    x = batch_norm("conv1_bn")(x)
    x = keras.layers.ReLU(name="conv1_relu")(x)
    for stage, w in enumerate(WIDTHS):
        for b in range(n_blocks):
            strides = 2 if stage > 0 and b == 0 else 1
            pre = f"stage{stage + 1}_block{b + 1}"
            y = conv_unit(x, w, strides, stage, b == 0, f"{pre}_conv1")
            y = batch_norm(f"{pre}_bn1")(y)
            y = keras.layers.ReLU(name=f"{pre}_relu1")(y)
            y = conv_unit(y, w, 1, stage, False, f"{pre}_conv2")
            y = batch_norm(f"{pre}_bn2")(y)
            shortcut = x
            if strides != 1 or x.shape[-1] != w:
                shortcut = shortcut_a(x, w, strides, f"{pre}_shortcut")
            x = keras.layers.Add(name=f"{pre}_add")([y, shortcut])
            x = keras.layers.ReLU(name=f"{pre}_out")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(
        num_classes, kernel_initializer=init_for(init, "dense"),
        bias_initializer=init_for(init, "dense_bias", int(x.shape[-1])), name="fc",
    )(x)
    return keras.Model(inputs, outputs, name=name or f"resnet{depth}_{variant}")


def resnet56(variant="baseline", **kwargs):
    """ResNet-56 for CIFAR (the paper's network); see :func:`resnet` for the arguments.

    Example:

    >>> from examples.cifar10.models import resnet56
    >>> base, small = resnet56(), resnet56("basis")
    """
    return resnet(56, variant, **kwargs)


def resnet20(variant="baseline", **kwargs):
    """ResNet-20 for CIFAR (the CPU-scale experiment); see :func:`resnet`."""
    return resnet(20, variant, **kwargs)
