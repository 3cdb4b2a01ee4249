"""count_macs(): multiply-accumulates of one forward pass, over every layer call."""

from __future__ import annotations

import math

import keras

from keras_basis import maths
from keras_basis._transform import graph
from keras_basis.layers import BasisConv2D


def _spatial(shape):
    return math.prod(int(d) for d in shape[1:-1] if d is not None)


_TRANSPOSED = (keras.layers.Conv1DTranspose, keras.layers.Conv2DTranspose,
               keras.layers.Conv3DTranspose)


def _call_macs(layer, in_shape, out_shape):
    """MACs of one call of ``layer`` (one image), or 0 for a layer without any.

    Every count is ``maths.conv_macs`` (``c * n * kernel area * positions``)
    of the layer's equivalent convolution, so that this, ``report`` and
    ``maths.basis_macs`` share one formula.
    """
    c = int(in_shape[-1])
    if isinstance(layer, BasisConv2D):
        # s splits of p channels against m filters: a c -> m convolution's count.
        return maths.conv_macs(c, layer.num_basis, *layer.kernel_size, _spatial(out_shape), 1)
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        # one (kh, kw) filter per output channel: c_out "convolutions" of depth 1
        return maths.conv_macs(1, int(out_shape[-1]), *layer.kernel_size,
                               _spatial(out_shape), 1)
    if isinstance(layer, keras.layers.SeparableConv2D):
        mid = c * layer.depth_multiplier
        return (maths.conv_macs(1, mid, *layer.kernel_size, _spatial(out_shape), 1)
                + maths.conv_macs(mid, layer.filters, 1, 1, _spatial(out_shape), 1))
    if isinstance(layer, keras.layers.Dense):
        return maths.conv_macs(c, layer.units, 1, 1, _spatial(in_shape), 1)
    kernel_size = getattr(layer, "kernel_size", None)
    filters = getattr(layer, "filters", None)
    if kernel_size is not None and filters is not None:
        # Conv1D/2D/3D and conv-like layers with the same attributes (grouped
        # convolutions written by hand); a transposed conv costs per input pixel.
        # An int kernel_size (hand-written layers) is square/cubic: one entry
        # per spatial dimension of the input.
        rank = max(len(in_shape) - 2, 1)
        ks = (kernel_size,) * rank if isinstance(kernel_size, int) else tuple(kernel_size)
        groups = int(getattr(layer, "groups", 1) or 1)
        pixels = _spatial(in_shape) if isinstance(layer, _TRANSPOSED) else _spatial(out_shape)
        return maths.conv_macs(c // groups, int(filters), math.prod(ks), 1, pixels, 1)
    return 0


def count_macs(model):
    """Multiply-accumulates of one forward pass of one sample (FLOPs = 2 x MACs).

    Every call of every layer is counted (a shared ``BasisConv2D`` called by
    several sites costs once per call); nested models are entered. Counted:
    ``BasisConv2D`` (``H*W*kh*kw*p*s*m``: its ``m`` filters of depth ``p = c/s``
    on each of the ``s`` splits), ``Conv1D/2D/3D`` and conv-like layers with
    ``kernel_size``/``filters``/``groups`` attributes (``H*W*kh*kw*c/groups*n``),
    ``DepthwiseConv2D``, ``SeparableConv2D`` and ``Dense``. Elementwise layers,
    pooling and normalisation count 0.

    Args:
        model: a built Functional or Sequential ``keras.Model`` with static
            spatial input sizes.

    Returns:
        int.

    Example:

    >>> x = keras.Input((8, 8, 3))
    >>> keras_basis.count_macs(keras.Model(x, keras.layers.Conv2D(4, 3)(x)))
    3888
    """
    graph.check_model(model)
    total = 0
    for layer, owner in graph.walk(model):
        for in_shape, out_shape in graph.call_shapes(layer, owner):
            total += _call_macs(layer, in_shape, out_shape)
    return int(total)
