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

import keras_basis
from keras_basis import maths

__all__ = [
    "BN_EPSILON",
    "BN_MOMENTUM",
    "CIFAR_MEAN",
    "CIFAR_STD",
    "GroupConv2D",
    "batch_norm",
    "bn_relu",
    "conv",
    "count_model",
    "init_for",
    "pad_for_stride",
    "resolve_splits",
    "shortcut_a",
    "sic",
    "resolve_num_basis",
]

# The paper's (and the authors' code's) normalisation, in 0-255 pixel units.
CIFAR_MEAN = (125.3, 123.0, 113.9)
CIFAR_STD = (63.0, 62.1, 66.7)


#: PyTorch ``nn.BatchNorm2d`` defaults (eps 1e-5, momentum 0.1 = Keras momentum 0.9),
#: the authors' BatchNorm everywhere (Keras' own defaults are 1e-3 / 0.99).
BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9


def batch_norm(name):
    """``BatchNormalization`` with PyTorch's constants (eps 1e-5, momentum 0.1)."""
    return keras.layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=name)


def bn_relu(x, name):
    """BatchNorm (PyTorch constants) -> ReLU, layers named ``{name}_bn``/``{name}_relu``."""
    x = batch_norm(f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def init_for(scheme, kind, fan_in=None):
    """Initializer of one weight under an init scheme of the authors' code.

    Args:
        scheme: ``"kaiming"`` (``common.init_kaiming``: conv N(0, 2/fan_in), Linear
            N(0, 1/c), their biases zero; ResNet basis, DenseNet), ``"vgg"``
            (``common.init_vgg``: conv N(0, 2/fan_out), Linear N(0, 0.01^2), biases zero)
            or ``"torch"`` (PyTorch defaults, U(+-1/sqrt(fan_in)) for weights and biases:
            the CIFAR ResNet baseline, which calls no init; the coefficient-conv biases
            that ``init_kaiming`` leaves alone).
        kind: ``"conv"``, ``"dense"``, ``"conv_bias"`` or ``"dense_bias"``.
        fan_in: inputs of one output (``c * kh * kw``), needed for torch biases.

    Returns:
        A Keras initializer.
    """
    if scheme not in ("kaiming", "vgg", "torch"):
        raise ValueError(
            "Invalid value for argument `init`. Expected 'kaiming', 'vgg' or 'torch'. "
            f"Received init={scheme!r}."
        )
    normal = "untruncated_normal"
    if kind == "conv":
        if scheme == "torch":
            return keras.initializers.VarianceScaling(1.0 / 3.0, "fan_in", "uniform")
        mode = "fan_out" if scheme == "vgg" else "fan_in"
        return keras.initializers.VarianceScaling(2.0, mode, normal)
    if kind == "dense":
        if scheme == "vgg":
            return keras.initializers.RandomNormal(stddev=0.01)
        if scheme == "kaiming":
            return keras.initializers.VarianceScaling(1.0, "fan_in", normal)
        return keras.initializers.VarianceScaling(1.0 / 3.0, "fan_in", "uniform")
    if scheme == "torch" or (kind == "conv_bias" and scheme == "kaiming"):
        bound = 1.0 / math.sqrt(fan_in)
        return keras.initializers.RandomUniform(-bound, bound)
    return "zeros"


def conv(x, n, k, name, *, strides=1, use_bias=False, init="kaiming"):
    """``Conv2D`` with the authors' padding (``k // 2`` on every side) and init.

    Stride 1 uses ``padding="same"`` (symmetric for odd ``k``); stride 2 uses an explicit
    symmetric ``ZeroPadding2D`` + ``"valid"`` (see :func:`pad_for_stride`).
    """
    x, padding = pad_for_stride(x, k, strides, name)
    fan_in = int(x.shape[-1]) * k * k
    return keras.layers.Conv2D(
        n, k, strides=strides, padding=padding, use_bias=use_bias,
        kernel_initializer=init_for(init, "conv"),
        bias_initializer=init_for(init, "conv_bias", fan_in), name=name,
    )(x)


def pad_for_stride(x, kernel_size, strides, name):
    """Symmetric padding for a strided conv: returns ``(x, padding)``.

    PyTorch pads ``k // 2`` on every side; TF's ``padding="same"`` with stride 2 on an
    even size pads 0 top/left and 1 bottom/right, a different function. For
    ``strides > 1`` this adds ``ZeroPadding2D(k // 2)`` (named ``{name}_pad``) and
    returns ``"valid"``; otherwise it returns ``x`` unchanged and ``"same"``.
    """
    if strides == 1 or kernel_size // 2 == 0:
        return x, ("same" if strides == 1 else "valid")
    return keras.layers.ZeroPadding2D(kernel_size // 2, name=f"{name}_pad")(x), "valid"


def sic(x, n, name, *, strides=1, dw_bn=False, pw_bn=False, init="kaiming"):
    """A single intra-channel conv layer (Factor): depthwise 3x3 -> [BN] -> 1x1 -> [BN]
    (+ x when the shapes allow) -> ReLU."""
    c = x.shape[-1]
    y, padding = pad_for_stride(x, 3, strides, f"{name}_dw")
    y = keras.layers.DepthwiseConv2D(3, strides=strides, padding=padding, use_bias=False,
                                     name=f"{name}_dw")(y)
    if dw_bn:
        y = batch_norm(f"{name}_dw_bn")(y)
    y = conv(y, n, 1, f"{name}_pw", init=init)
    if pw_bn:
        y = batch_norm(f"{name}_pw_bn")(y)
    if c == n and strides == 1:
        y = keras.layers.Add(name=f"{name}_add")([y, x])
    return keras.layers.ReLU(name=f"{name}_relu")(y)


def shortcut_a(x, out_channels, strides, name):
    """ResNet "option A" shortcut as the authors: 2x2 average pooling, zero channels.

    The authors' ``DownSampleA`` (``F.avg_pool2d(x, 2)`` then ``F.pad(pool, (0, 0, 0,
    0, c, c))``). Built from stock layers only (so saved models load without this
    module): ``AveragePooling2D(strides)`` and a ``ZeroPadding3D`` on a ``(h, w, c, 1)``
    view that centres the ``c`` channels in ``out_channels``.

    Args:
        x: 4D tensor with static spatial size.
        out_channels: channels of the output.
        strides: pooling size and stride.
        name: prefix of the layer names.

    Returns:
        The shortcut tensor.
    """
    if strides > 1:
        x = keras.layers.AveragePooling2D(strides, name=f"{name}_pool")(x)
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
        padding: ``"same"`` (default) or ``"valid"`` (after an explicit symmetric
            ``ZeroPadding2D`` for stride 2, see :func:`pad_for_stride`).

    Example:

    >>> y = GroupConv2D(32, 3, groups=4)(keras.Input((16, 16, 32)))   # (None, 16, 16, 32)
    """

    def __init__(self, filters, kernel_size, groups, strides=1,
                 kernel_initializer="he_normal", padding="same", **kwargs):
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
        # a (kh, kw) tuple as Conv2D's, so that generic counters (count_macs) read 2D
        self.filters, self.kernel_size, self.groups = filters, (kernel_size,) * 2, groups
        if padding not in ("same", "valid"):
            raise ValueError(
                f"Invalid value for argument `padding` of layer '{self.name}'. Expected "
                f"'same' or 'valid'. Received padding={padding!r}."
            )
        self.strides, self.padding = strides, padding
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, input_shape):
        c = int(input_shape[-1])
        if c % self.groups:
            raise ValueError(
                f"Layer '{self.name}' with groups={self.groups} needs input channels "
                f"divisible by groups. Received an input with c={c} channels."
            )
        k = self.kernel_size[0]
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
        ys = [ops.conv(xi, ki, strides=self.strides, padding=self.padding)
              for xi, ki in zip(xs, ks)]
        return ys[0] if len(ys) == 1 else ops.concatenate(ys, axis=-1)

    def compute_output_shape(self, input_shape):
        n, h, w, _ = input_shape
        k, st = self.kernel_size[0], self.strides
        if self.padding == "same":
            h, w = (None if v is None else math.ceil(v / st) for v in (h, w))
        else:
            h, w = (None if v is None else (v - k) // st + 1 for v in (h, w))
        return (n, h, w, self.filters)

    def get_config(self):
        config = super().get_config()
        config.update({
            "filters": self.filters, "kernel_size": self.kernel_size[0], "groups": self.groups,
            "strides": self.strides, "padding": self.padding,
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
        dict with ``params`` (paper convention: unique trainable weights outside
        BatchNorm), ``trainable`` (Keras' trainable count), ``macs`` (one image, every
        call of every layer: ``keras_basis.count_macs``) and ``bn`` (BatchNorm's
        trainable weights).

    Example:

    >>> from examples.cifar10.models import resnet56
    >>> count_model(resnet56())["params"]   # 848970 (848,954 weights + the first conv's bias)
    """
    seen = set()
    params = 0
    bn = 0
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
    trainable = sum(int(math.prod(w.shape)) for w in model.trainable_weights)
    return {"params": params, "trainable": trainable, "macs": keras_basis.count_macs(model),
            "bn": bn}
