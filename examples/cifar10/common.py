"""Pieces shared by the CIFAR-10 network builders: small layers, split rules, counting.

Counting conventions (used by ``params.py`` and the README):

- ``params``: weights and biases of the convolutions, basis layers and the classifier,
  each shared weight once, BatchNorm excluded. This is the convention of the paper's
  tables (ResNet-56 "about 849k", DenseNet-12-40 "1041k" are reproduced by it).
- ``trainable``: Keras' trainable count (adds BatchNorm gamma/beta).
- ``macs``: multiply-accumulates of one 32x32 image through the convolutions, basis
  layers and the classifier (BatchNorm, ReLU, pooling and additions are not counted);
  ``FLOPs = 2 * MACs``.
"""

from __future__ import annotations

import math

import keras
from keras import ops

from keras_basis import BasisConv2D, maths

__all__ = [
    "CIFAR_MEAN",
    "CIFAR_STD",
    "GroupConv2D",
    "count_model",
    "resolve_splits",
    "shortcut_a",
    "resolve_num_basis",
]

# The paper's (and the authors' code's) normalisation, in 0-255 pixel units.
CIFAR_MEAN = (125.3, 123.0, 113.9)
CIFAR_STD = (63.0, 62.1, 66.7)


def shortcut_a(x, out_channels, strides, name):
    """ResNet "option A" shortcut: stride-2 subsampling and zero-padded channels.

    Built from stock layers only (so saved models load without this module): a 1x1
    max pooling with stride ``strides`` subsamples, and a ``ZeroPadding3D`` on a
    ``(h, w, c, 1)`` view centres the ``c`` channels in ``out_channels``, as the
    authors' ``F.pad(pool, (0, 0, 0, 0, c, c))``.

    Args:
        x: 4D tensor with static spatial size.
        out_channels: channels of the output.
        strides: subsampling factor.
        name: prefix of the layer names.

    Returns:
        The shortcut tensor.
    """
    if strides > 1:
        x = keras.layers.MaxPooling2D(1, strides=strides, name=f"{name}_subsample")(x)
    _, h, w, c = x.shape
    extra = out_channels - c
    if extra:
        lo = extra // 2
        x = keras.layers.Reshape((h, w, c, 1), name=f"{name}_expand")(x)
        x = keras.layers.ZeroPadding3D(((0, 0), (0, 0), (lo, extra - lo)), name=f"{name}_pad")(x)
        x = keras.layers.Reshape((h, w, out_channels), name=f"{name}_squeeze")(x)
    return x


@keras.saving.register_keras_serializable(package="keras_basis_examples")
class GroupConv2D(keras.layers.Layer):
    """Grouped convolution computed as ``groups`` ordinary convolutions (split/concat).

    Same kernel layout, parameters and function as ``keras.layers.Conv2D(filters,
    kernel_size, groups=groups)``; TensorFlow's grouped ``Conv2D`` trains far slower on
    CPU, and this form exports to TFLite as builtin SPLIT/CONV_2D/CONCATENATION ops.

    Args:
        filters: output channels (a multiple of ``groups``).
        kernel_size: int.
        groups: number of groups (divides the input channels and ``filters``).
        strides: int.
        kernel_initializer: as in ``Conv2D``.

    Example:

    >>> y = GroupConv2D(32, 3, groups=4)(keras.Input((16, 16, 32)))   # (None, 16, 16, 32)
    """

    def __init__(self, filters, kernel_size, groups, strides=1,
                 kernel_initializer="he_normal", **kwargs):
        super().__init__(**kwargs)
        for arg, value in (("filters", filters), ("kernel_size", kernel_size),
                           ("groups", groups), ("strides", strides)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(
                    f"Invalid value for argument `{arg}` of layer '{self.name}'. Expected a "
                    f"positive int. Received {arg}={value!r}."
                )
        if filters % groups:
            raise ValueError(
                f"Invalid value for argument `groups` of layer '{self.name}'. Expected a "
                f"divisor of filters={filters}. Received groups={groups}."
            )
        self.filters, self.kernel_size, self.groups = filters, kernel_size, groups
        self.strides = strides
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, input_shape):
        c = int(input_shape[-1])
        if c % self.groups:
            raise ValueError(
                f"Layer '{self.name}' with groups={self.groups} needs input channels "
                f"divisible by groups. Received an input with c={c} channels."
            )
        k = self.kernel_size
        self.kernel = self.add_weight(
            name="kernel", shape=(k, k, c // self.groups, self.filters),
            initializer=self.kernel_initializer,
        )

    def call(self, x):
        if self.groups == 1:
            xs, ks = [x], [self.kernel]
        else:
            xs = ops.split(x, self.groups, axis=-1)
            ks = ops.split(self.kernel, self.groups, axis=-1)
        ys = [ops.conv(xi, ki, strides=self.strides, padding="same") for xi, ki in zip(xs, ks)]
        return ys[0] if len(ys) == 1 else ops.concatenate(ys, axis=-1)

    def compute_output_shape(self, input_shape):
        n, h, w, _ = input_shape
        h = None if h is None else math.ceil(h / self.strides)
        w = None if w is None else math.ceil(w / self.strides)
        return (n, h, w, self.filters)

    def get_config(self):
        config = super().get_config()
        config.update({
            "filters": self.filters, "kernel_size": self.kernel_size, "groups": self.groups,
            "strides": self.strides,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
        })
        return config


def resolve_splits(splits, c, n, kh=3, kw=3):
    """Number of splits for a ``c -> n`` conv.

    Args:
        splits: ``"auto"`` (Eq. 13 via ``maths.optimal_splits``), ``"channel"`` (s = c,
            the channel-wise 2D decomposition), or a positive int (``1`` is the 3D
            low-rank decomposition); an int larger than ``c`` is clipped to ``c``.
        c, n, kh, kw: the conv's input/output channels and kernel size.

    Returns:
        int: a divisor of ``c``.
    """
    if splits == "auto":
        return maths.optimal_splits(c, n, kh, kw)
    if splits == "channel":
        return c
    if isinstance(splits, bool) or not isinstance(splits, int) or splits < 1:
        raise ValueError(
            "Invalid value for argument `splits`. Expected 'auto', 'channel' or a positive "
            f"int. Received splits={splits!r}."
        )
    s = min(splits, c)
    if c % s:
        raise ValueError(
            f"Invalid value for argument `splits`. Expected a divisor of the input "
            f"channels c={c}. Received splits={splits}."
        )
    return s


def resolve_num_basis(num_basis, ratio, c, n, s, kh=3, kw=3):
    """``num_basis`` if given, else the largest m that keeps ``ratio`` of the weights."""
    if num_basis is not None:
        return int(num_basis)
    if ratio is None:
        raise ValueError(
            "A basis layer needs `num_basis` or `ratio`. Received num_basis=None, ratio=None."
        )
    return maths.num_basis_for_ratio(ratio, c, n, kh, kw, s)


def check_variant(variant, allowed, network):
    if variant not in allowed:
        raise ValueError(
            f"Invalid value for argument `variant` of {network}. Expected one of "
            f"{sorted(allowed)}. Received variant={variant!r}."
        )


def _node_macs(layer, node):
    ins = node.input_tensors
    outs = node.output_tensors
    if not ins or not outs:
        return 0
    x, y = ins[0], outs[0]
    if isinstance(layer, BasisConv2D):
        c = int(x.shape[-1])
        kh, kw = layer.kernel_size
        p = layer.depth if c % layer.depth == 0 else c
        s = c // p
        return kh * kw * p * layer.num_basis * s * y.shape[1] * y.shape[2]
    if isinstance(layer, GroupConv2D):
        k = layer.kernel_size
        return k * k * (int(x.shape[-1]) // layer.groups) * layer.filters * y.shape[1] * y.shape[2]
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        kh, kw = layer.kernel_size
        return kh * kw * int(y.shape[-1]) * y.shape[1] * y.shape[2]
    if isinstance(layer, keras.layers.Conv2D):
        kh, kw = layer.kernel_size
        c = int(x.shape[-1])
        return kh * kw * (c // layer.groups) * layer.filters * y.shape[1] * y.shape[2]
    if isinstance(layer, keras.layers.Dense):
        return int(x.shape[-1]) * layer.units
    return 0


def _walk(model):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _walk(layer)
        else:
            yield layer


def count_model(model):
    """Parameter and MAC counts of a built CIFAR model (see the module docstring).

    Args:
        model: a built ``keras.Model`` (nested models are walked).

    Returns:
        dict with ``params`` (paper convention, no BatchNorm), ``trainable``
        (Keras' trainable count) and ``macs`` (one image).

    Example:

    >>> from examples.cifar10.models import resnet56
    >>> count_model(resnet56())["params"]   # 848954
    """
    seen = set()
    params = 0
    bn = 0
    macs = 0
    for layer in _walk(model):
        for w in layer.trainable_weights:
            key = id(w)
            if key in seen:
                continue
            seen.add(key)
            size = int(math.prod(w.shape))
            if isinstance(layer, keras.layers.BatchNormalization):
                bn += size
            else:
                params += size
        for node in getattr(layer, "_inbound_nodes", []):
            macs += int(_node_macs(layer, node))
    trainable = sum(int(math.prod(w.shape)) for w in model.trainable_weights)
    return {"params": params, "trainable": trainable, "macs": macs, "bn": bn}
