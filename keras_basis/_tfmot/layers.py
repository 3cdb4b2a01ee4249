"""tf_keras twin of :class:`keras_basis.BasisConv2D` with tfmot interfaces."""

from __future__ import annotations

from keras_basis._tfmot._compat import tf, tf_keras, tfmot
from keras_basis.layers import _check_padding, _geometry_args, _pair

__all__ = ["BasisConv2D", "BasisConv2DQuantizeConfig"]

_PrunableLayer = tfmot.sparsity.keras.PrunableLayer
_ClusterableLayer = tfmot.clustering.keras.ClusterableLayer
_QuantizeConfig = tfmot.quantization.keras.QuantizeConfig
_quantizers = tfmot.quantization.keras.quantizers


@tf_keras.utils.register_keras_serializable(package="keras_basis")
class BasisConv2D(tf_keras.layers.Layer, _PrunableLayer, _ClusterableLayer):
    """tf_keras (Keras 2) twin of :class:`keras_basis.BasisConv2D` for tfmot.

    Same maths as the Keras 3 layer: the input's ``c`` channels are cut into
    ``s = c / depth`` splits (or one split using the first ``c`` basis channels
    when ``c < depth``), the splits are folded into the batch and convolved
    with one basis kernel of shape ``(kh, kw, depth, num_basis)``, and the
    ``s * num_basis`` responses are returned split-major (channel ``g*m + j``).
    A stock ``tf_keras.layers.Conv2D(n, 1)`` after it holds the coefficients
    (Li et al., ICCV 2019, Eq. 17).

    It implements tfmot's ``PrunableLayer`` and ``ClusterableLayer`` (the basis
    is the prunable/clusterable weight); quantization-aware training uses
    :class:`BasisConv2DQuantizeConfig`.

    Args:
        num_basis, kernel_size, splits, depth, strides, padding,
        dilation_rate, use_bias, basis_initializer, bias_initializer,
        basis_regularizer, bias_regularizer, basis_constraint,
        bias_constraint, data_format: as in :class:`keras_basis.BasisConv2D`.

    Input shape:
        4D tensor ``(batch, rows, cols, c)``.

    Output shape:
        4D tensor ``(batch, new_rows, new_cols, s * num_basis)``.

    Example:

    >>> import tf_keras
    >>> x = tf_keras.Input((32, 32, 64))
    >>> y = BasisConv2D(14, 3, splits=2, padding="same")(x)   # (None, 32, 32, 28)
    >>> y = tf_keras.layers.Conv2D(64, 1)(y)                  # coefficients
    >>> model = tf_keras.Model(x, y)
    """

    def __init__(
        self,
        num_basis,
        kernel_size,
        splits=None,
        depth=None,
        strides=(1, 1),
        padding="valid",
        dilation_rate=(1, 1),
        use_bias=False,
        basis_initializer="he_uniform",
        bias_initializer="zeros",
        basis_regularizer=None,
        bias_regularizer=None,
        basis_constraint=None,
        bias_constraint=None,
        data_format=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        args = _geometry_args(
            self.name, num_basis, kernel_size, splits, depth, strides, padding,
            dilation_rate, data_format or "channels_last",
        )
        for key, value in args.items():
            setattr(self, key, value)
        self.use_bias = bool(use_bias)
        self.basis_initializer = tf_keras.initializers.get(basis_initializer)
        self.bias_initializer = tf_keras.initializers.get(bias_initializer)
        self.basis_regularizer = tf_keras.regularizers.get(basis_regularizer)
        self.bias_regularizer = tf_keras.regularizers.get(bias_regularizer)
        self.basis_constraint = tf_keras.constraints.get(basis_constraint)
        self.bias_constraint = tf_keras.constraints.get(bias_constraint)
        self.input_spec = tf_keras.layers.InputSpec(ndim=4)

    # ------------------------------------------------------------------ build
    def _channels(self, input_shape):
        input_shape = tf.TensorShape(input_shape)
        if input_shape.rank != 4:
            raise ValueError(
                f"Layer '{self.name}' expects a 4D input (batch, rows, cols, channels). "
                f"Received input_shape={tuple(input_shape)}."
            )
        c = input_shape[-1]
        if c is None:
            raise ValueError(
                f"Layer '{self.name}' needs a known number of input channels. "
                f"Received input_shape={tuple(input_shape)}."
            )
        return int(c)

    def splits_for(self, c):
        if c % self.depth == 0:
            return c // self.depth, self.depth
        if c < self.depth:
            return 1, c
        raise ValueError(
            f"Layer '{self.name}' has a basis of depth p={self.depth}; an input "
            f"must have a multiple of p channels, or fewer than p (sliced basis). "
            f"Received an input with c={c} channels."
        )

    def build(self, input_shape):
        c = self._channels(input_shape)
        if self.depth is None:
            s = self.splits or 1
            if c % s:
                raise ValueError(
                    f"Invalid value for argument `splits` of layer '{self.name}'. "
                    f"Expected a divisor of the input channels c={c}. "
                    f"Received splits={s}."
                )
            self.depth = c // s
        self.splits_for(c)
        self.basis = self.add_weight(
            name="basis",
            shape=self.kernel_size + (self.depth, self.num_basis),
            initializer=self.basis_initializer,
            regularizer=self.basis_regularizer,
            constraint=self.basis_constraint,
            trainable=True,
        )
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias",
                shape=(self.num_basis,),
                initializer=self.bias_initializer,
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
                trainable=True,
            )
        else:
            self.bias = None
        # The parent's build sets `built` and records the build shape; tfmot's
        # strip_clustering rebuilds a fresh layer from it and needs it.
        super().build(input_shape)

    # ------------------------------------------------------------------- call
    def _call_geometry(self, strides, padding, dilation_rate):
        strides = self.strides if strides is None else _pair("strides", strides, self.name)
        dilation_rate = (
            self.dilation_rate
            if dilation_rate is None
            else _pair("dilation_rate", dilation_rate, self.name)
        )
        padding = self.padding if padding is None else _check_padding(padding, self.name)
        return strides, padding, dilation_rate

    def call(self, inputs, strides=None, padding=None, dilation_rate=None):
        strides, padding, dilation_rate = self._call_geometry(strides, padding, dilation_rate)
        s, p = self.splits_for(int(inputs.shape[-1]))
        x = inputs
        basis = self.basis
        if p < self.depth:
            if getattr(self, "_pad_sliced", False):
                # Quantized: per-channel fake-quant of a sliced basis does not convert
                # to TFLite; zero input channels against the full basis are the same sum.
                x = tf.pad(x, ((0, 0), (0, 0), (0, 0), (0, self.depth - p)))
            else:
                basis = basis[:, :, :p, :]
        if s > 1:
            shape = tf.shape(inputs)
            h, w = shape[1], shape[2]
            x = tf.reshape(x, (-1, h, w, s, p))
            x = tf.transpose(x, (0, 3, 1, 2, 4))
            x = tf.reshape(x, (-1, h, w, p))
        y = tf.nn.conv2d(
            x,
            basis,
            strides=(1,) + strides + (1,),
            padding=padding.upper(),
            dilations=(1,) + dilation_rate + (1,),
            data_format="NHWC",
        )
        if self.bias is not None:
            y = tf.nn.bias_add(y, self.bias)
        if s > 1:
            shape = tf.shape(y)
            ho, wo = shape[1], shape[2]
            y = tf.reshape(y, (-1, s, ho, wo, self.num_basis))
            y = tf.transpose(y, (0, 2, 3, 1, 4))
            y = tf.reshape(y, (-1, ho, wo, s * self.num_basis))
        return y

    def compute_output_shape(self, input_shape, strides=None, padding=None, dilation_rate=None):
        strides, padding, dilation_rate = self._call_geometry(strides, padding, dilation_rate)
        input_shape = tf.TensorShape(input_shape).as_list()
        c = self._channels(input_shape)
        depth = self.depth or c // (self.splits or 1)
        s = c // depth if c % depth == 0 else 1
        out = []
        for size, k, st, d in zip(input_shape[1:3], self.kernel_size, strides, dilation_rate):
            if size is None:
                out.append(None)
            elif padding == "same":
                out.append((size + st - 1) // st)
            else:
                out.append((size - ((k - 1) * d + 1)) // st + 1)
        return tf.TensorShape((input_shape[0], out[0], out[1], s * self.num_basis))

    # --------------------------------------------------------------- tfmot API
    def get_prunable_weights(self):
        """tfmot ``PrunableLayer``: the basis (the coefficients are a stock Conv2D)."""
        return [self.basis]

    def get_clusterable_weights(self):
        """tfmot ``ClusterableLayer``: ``[("basis", basis)]``."""
        return [("basis", self.basis)]

    # ----------------------------------------------------------------- config
    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_basis": self.num_basis,
                "kernel_size": self.kernel_size,
                "depth": self.depth,
                "strides": self.strides,
                "padding": self.padding,
                "dilation_rate": self.dilation_rate,
                "use_bias": self.use_bias,
                "basis_initializer": tf_keras.initializers.serialize(self.basis_initializer),
                "bias_initializer": tf_keras.initializers.serialize(self.bias_initializer),
                "basis_regularizer": tf_keras.regularizers.serialize(self.basis_regularizer),
                "bias_regularizer": tf_keras.regularizers.serialize(self.bias_regularizer),
                "basis_constraint": tf_keras.constraints.serialize(self.basis_constraint),
                "bias_constraint": tf_keras.constraints.serialize(self.bias_constraint),
                "data_format": self.data_format,
            }
        )
        if self.depth is None:
            config["splits"] = self.splits
        return config


@tf_keras.utils.register_keras_serializable(package="keras_basis")
class BasisConv2DQuantizeConfig(_QuantizeConfig):
    """tfmot ``QuantizeConfig`` of :class:`BasisConv2D`: int8 basis and int8 output.

    The basis gets tfmot's default conv weight scheme (8 bits, symmetric,
    narrow range, per output channel, i.e. per basis filter) and the layer's
    output a moving-average 8-bit quantizer, so that after ``quantize_apply``
    and conversion the basis convolution, its reshapes and the following
    coefficient convolution all run in int8 (no float island between them).

    Example:

    >>> annotated = tfmot.quantization.keras.quantize_annotate_layer(
    ...     basis_layer, quantize_config=BasisConv2DQuantizeConfig())
    """

    def get_weights_and_quantizers(self, layer):
        return [
            (
                layer.basis,
                _quantizers.LastValueQuantizer(
                    num_bits=8, per_axis=True, symmetric=True, narrow_range=True
                ),
            )
        ]

    def get_activations_and_quantizers(self, layer):
        return []

    def set_quantize_weights(self, layer, quantize_weights):
        layer.basis = quantize_weights[0]
        layer._pad_sliced = True  # see BasisConv2D.call

    def set_quantize_activations(self, layer, quantize_activations):
        pass

    def get_output_quantizers(self, layer):
        return [
            _quantizers.MovingAverageQuantizer(
                num_bits=8, per_axis=False, symmetric=False, narrow_range=False
            )
        ]

    def get_config(self):
        return {}
