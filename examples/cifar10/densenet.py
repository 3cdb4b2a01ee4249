"""DenseNet-12-40 for CIFAR (growth 12, 3 blocks of 12 layers, no bottleneck, no
reduction) and its compressed forms.

Dense layer: BN -> ReLU -> 3x3 conv (c -> 12), concatenated to its input; transition:
BN -> ReLU -> 1x1 conv (c -> c) -> 2x2 average pooling. Variants (authors'
``densenet*.py``):

- ``"basis"``: one network-wide ``BasisConv2D`` of depth 444 (the widest input); a
  layer with c inputs uses its first c channels (Fig. 3). Dense layer: BN -> ReLU ->
  basis (+ its own bias, ``keras_basis.BasisBias``) -> BN -> ReLU -> conv (+ bias) to 12 channels.
  The authors' script leaves that conv at 3x3 (``--k_size2`` defaults to 3) and this
  reproduces the paper's 331k for M36T6 (332,626 with the biases), so
  ``coef_kernel=3`` is the default; ``coef_kernel=1`` gives the plain 1x1 coefficients.
  Transitions with T > 1 become c -> c/T -> c 1x1 pairs (a rank-c/T basis pair,
  ``BasisConv2D(c // T, 1)`` -> ``Conv2D(c, 1)``) with the authors' identity residual.
  Configurations of Tables 4/7: M24, M26, M32 (T = 1), M36T6, M38T12.
- ``"factor"``: 3x3 conv -> SIC(c -> 12) -> SIC(12 -> 12).
- ``"group"``: grouped 3x3 (3 groups while c <= 252, then 6) -> 1x1.

BatchNorm uses PyTorch's constants (eps 1e-5, momentum 0.1); the init is the authors'
``init_kaiming`` (conv N(0, 2/fan_in), Linear N(0, 1/c)); the shared basis is
Kaiming-uniform.
"""

from __future__ import annotations

import re

import keras

from examples.cifar10.common import (
    GroupConv2D,
    bn_relu,
    check_variant,
    conv,
    init_for,
    sic,
)
from keras_basis import BasisBias, BasisConv2D

__all__ = ["densenet", "densenet40", "DENSENET_VARIANTS", "DENSENET_CONFIGS"]

DENSENET_VARIANTS = ("baseline", "basis", "factor", "group")
#: Table 7: name -> (num_basis m, transition splits T); basis depth is 444 for all.
DENSENET_CONFIGS = {
    "M24": (24, 1),
    "M26": (26, 1),
    "M32": (32, 1),
    "M36T6": (36, 6),
    "M38T12": (38, 12),
}


def _parse_config(config):
    if config in DENSENET_CONFIGS:
        return DENSENET_CONFIGS[config]
    match = re.fullmatch(r"M(\d+)(?:T(\d+))?", str(config))
    if not match:
        raise ValueError(
            "Invalid value for argument `config` of densenet. Expected 'M<m>' or "
            f"'M<m>T<T>' (e.g. {sorted(DENSENET_CONFIGS)}). Received config={config!r}."
        )
    return int(match.group(1)), int(match.group(2) or 1)


def densenet(
    depth=40,
    growth=12,
    variant="baseline",
    *,
    num_classes=10,
    input_shape=(32, 32, 3),
    config="M36T6",
    coef_kernel=3,
    transition_residual=True,
    group_rule=((252, 3), (None, 6)),
    init="kaiming",
    name=None,
):
    """DenseNet-``depth``-``growth`` (no bottleneck) in one of four variants.

    Args:
        depth: ``3 * layers_per_block + 4`` (40 for DenseNet-12-40).
        growth: k, output channels of every dense layer.
        variant: ``"baseline"``, ``"basis"``, ``"factor"`` or ``"group"``.
        num_classes: classifier outputs.
        input_shape: image shape (normalised input, channels last).
        config: ``"basis"``: ``"M<m>"`` or ``"M<m>T<T>"`` (Table 7), m the size of the
            network-wide basis and T the transition split (1: not compressed).
        coef_kernel: ``"basis"``: kernel of the conv after the basis (3, the authors'
            code and the paper's counts; 1: plain coefficients).
        transition_residual: ``"basis"`` with T > 1: add the transition's input to its
            output as the authors' code does.
        group_rule: ``"group"``: ``((max_c, groups), ...)``; the first rule with
            ``c <= max_c`` (None: any c) gives the number of groups.
        init: ``"kaiming"`` (the authors' ``init_kaiming``, default), ``"vgg"`` or
            ``"torch"`` (see ``common.init_for``).
        name: model name (default ``densenet{depth}_{variant}``).

    Returns:
        keras.Model.

    Example:

    >>> from examples.cifar10.models import densenet40
    >>> model = densenet40("basis", config="M36T6")   # paper: 331k parameters
    """
    check_variant(variant, DENSENET_VARIANTS, f"densenet{depth}")
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 7 or (depth - 4) % 3:
        raise ValueError(
            "Invalid value for argument `depth` of densenet. Expected 3n + 4 (e.g. 40). "
            f"Received depth={depth!r}."
        )
    init_for(init, "conv")  # validates
    n_layers = (depth - 4) // 3
    m, t = _parse_config(config)
    basis = None
    if variant == "basis":
        full_depth = growth * (3 * n_layers + 1)  # 444 for DenseNet-12-40
        basis = BasisConv2D(m, 3, depth=full_depth, padding="same", name="shared_basis")

    inputs = keras.Input(input_shape, name="image")
    x = conv(inputs, 2 * growth, 3, "conv1", init=init)
    for b in range(3):
        for i in range(n_layers):
            pre = f"block{b + 1}_layer{i + 1}"
            c = x.shape[-1]
            y = bn_relu(x, pre)
            if variant == "baseline":
                y = conv(y, growth, 3, f"{pre}_conv", init=init)
            elif variant == "basis":
                y = BasisBias(m, name=f"{pre}_basis_bias")(basis(y))
                y = bn_relu(y, f"{pre}_basis")
                y = conv(y, growth, coef_kernel, f"{pre}_coef", use_bias=True, init=init)
            elif variant == "factor":
                y = sic(y, growth, f"{pre}_sic1", dw_bn=True, init=init)
                y = sic(y, growth, f"{pre}_sic2", dw_bn=True, init=init)
            else:
                groups = next(g for limit, g in group_rule if limit is None or c <= limit)
                y = GroupConv2D(growth, 3, groups, kernel_initializer=init_for(init, "conv"),
                                name=f"{pre}_group")(y)
                y = conv(y, growth, 1, f"{pre}_pw", init=init)
            x = keras.layers.Concatenate(name=f"{pre}_concat")([x, y])
        if b < 2:
            pre = f"transition{b + 1}"
            c = x.shape[-1]
            y = bn_relu(x, pre)
            if variant == "basis" and t > 1:
                y = BasisConv2D(c // t, 1, splits=1, basis_initializer=init_for(init, "conv"),
                                name=f"{pre}_basis")(y)
                y = conv(y, c, 1, f"{pre}_coef", init=init)
                if transition_residual:
                    y = keras.layers.Add(name=f"{pre}_add")([y, x])
            else:
                y = conv(y, c, 1, f"{pre}_conv", init=init)
            x = keras.layers.AveragePooling2D(2, name=f"{pre}_pool")(y)
    x = bn_relu(x, "final")
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(
        num_classes, kernel_initializer=init_for(init, "dense"),
        bias_initializer=init_for(init, "dense_bias", int(x.shape[-1])), name="fc",
    )(x)
    return keras.Model(inputs, outputs, name=name or f"densenet{depth}_{variant}")


def densenet40(variant="baseline", **kwargs):
    """DenseNet-12-40 (the paper's network); see :func:`densenet` for the arguments."""
    return densenet(40, 12, variant, **kwargs)
