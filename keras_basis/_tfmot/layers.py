"""tf_keras twin of :class:`keras_basis.BasisConv2D` with tfmot interfaces."""

from __future__ import annotations

from keras_basis._geometry import BasisGeometry, validate_arguments
from keras_basis._tfmot._compat import tf, tf_keras, tfmot

__all__ = ["BasisConv2D", "BasisConv2DQuantizeConfig"]

_PrunableLayer = tfmot.sparsity.keras.PrunableLayer
_ClusterableLayer = tfmot.clustering.keras.ClusterableLayer
_QuantizeConfig = tfmot.quantization.keras.QuantizeConfig
_quantizers = tfmot.quantization.keras.quantizers


@tf_keras.utils.register_keras_serializable(package="keras_basis")
class BasisConv2D(BasisGeometry, tf_keras.layers.Layer, _PrunableLayer, _ClusterableLayer):
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
        bias_constraint, data_format, narrow_inputs: as in
        :class:`keras_basis.BasisConv2D`. Shapes, splits and argument checks
        come from the same backend-neutral code (``keras_basis._geometry``).

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
        narrow_inputs="slice",
        split_mode="batch",
        **kwargs,
    ):
        super().__init__(**kwargs)
        # split_mode is kept for the config round trip with the Keras 3 layer;
        # this twin always computes the batch form (the same result).
        self.set_geometry(validate_arguments(
            self.name, num_basis, kernel_size, splits, depth, strides, padding,
            dilation_rate, data_format or "channels_last", narrow_inputs, split_mode,
        ))
        self.set_weight_options(
            tf_keras, use_bias, basis_initializer, bias_initializer, basis_regularizer,
            bias_regularizer, basis_constraint, bias_constraint,
        )

    def build(self, input_shape):
        depth = self.build_depth(self.input_channels(tf.TensorShape(input_shape).as_list()))
        self.add_basis_weights(depth, trainable=True)
        # The parent's build sets `built` and records the build shape; tfmot's
        # strip_clustering rebuilds a fresh layer from it and needs it.
        super().build(input_shape)

    def call(self, inputs, strides=None, padding=None, dilation_rate=None):
        strides, padding, dilation_rate = self.call_geometry(strides, padding, dilation_rate)
        s, p = self.splits_for(int(inputs.shape[-1]))
        x = inputs
        basis = self.basis
        depth = int(basis.shape[2])
        if p < depth:
            if self.narrow_inputs == "pad":
                x = tf.pad(x, ((0, 0), (0, 0), (0, 0), (0, depth - p)))
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
        shape = self.output_shape_for(
            tf.TensorShape(input_shape).as_list(), strides, padding, dilation_rate
        )
        return tf.TensorShape(shape)

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
        config.update(self.geometry_config())
        config.update(self.weight_config(tf_keras))
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
        # Per-channel fake-quant of a sliced basis does not convert to TFLite;
        # zero input channels against the full basis give the same sum.
        layer.narrow_inputs = "pad"

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
