"""Keras 3 layers of the split-basis convolution."""

from __future__ import annotations

import keras
from keras import ops

from keras_basis._geometry import BasisGeometry, dilated_form_exact, validate_arguments

__all__ = ["BasisConv2D"]


@keras.saving.register_keras_serializable(package="keras_basis")
class BasisConv2D(BasisGeometry, keras.layers.Layer):
    """Split-basis convolution: every input split convolved with shared filters.

    The input's ``c`` channels are cut into ``s`` splits of ``p = c / s``
    channels; each split is convolved with the same ``num_basis`` (``m``)
    basis filters of shape ``(kh, kw, p)``, and the ``s*m`` responses are
    concatenated split-major (channel ``g*m + j``). Followed by a 1x1
    ``keras.layers.Conv2D(n, 1)`` holding the coefficients, the pair computes
    a convolution whose kernel is ``W[:, :, g*p:(g+1)*p, i] =
    sum_j A[g*m + j, i] * B[:, :, :, j]`` (Li et al., "Learning Filter Basis
    for Convolutional Neural Network Compression", ICCV 2019, Eq. 17).

    Implementation (``split_mode``): ``"batch"`` (default) folds the splits
    into the batch (reshape and transpose to ``(N*s, H, W, p)``, one
    convolution, back); ``"dilated"`` lays them side by side along the width
    with no transpose (reshape ``(N, H, W, s*p)`` to ``(N, H, W*s, p)``, one
    convolution with the width dilation times ``s``, reshape
    ``(N, H', W'*s, m)`` to ``(N, H', W', s*m)``, already split-major). Both
    compute the same; which runs faster depends on the layer and the
    runtime (``keras_basis.latency``). The dilated form needs strides of 1
    and symmetric "same" padding (odd ``(kw - 1) * dw`` pads one side more);
    a call where it is not exact uses the batch form. Either way the
    basis is stored and computed as one ordinary convolution kernel.

    Sharing: one layer instance called at several places shares its basis
    (Keras weight sharing). Each call may see a different number of input
    channels ``c``: with ``c`` a multiple of the basis depth ``p`` it uses
    ``s = c / p`` splits; with ``c < p`` it uses one split and the first
    ``c`` channels of the basis (network-wide sharing with slicing, as the
    paper's DenseNet).

    Args:
        num_basis: ``m``, the number of basis filters (positive int).
        kernel_size: int or tuple of 2 ints.
        splits: ``s``, the number of channel splits of the input at the first
            call (default 1). Mutually exclusive with ``depth``.
        depth: ``p``, the number of input channels of each basis filter. Use
            for a basis shared by layers of different widths; default
            ``c / splits`` at build.
        strides, padding, dilation_rate: as in ``keras.layers.Conv2D``
            (``padding`` is ``"valid"`` or ``"same"``).
        use_bias: whether the basis responses get a bias (default False: the
            coefficient conv carries the layer's bias).
        basis_initializer, bias_initializer, basis_regularizer,
        bias_regularizer, basis_constraint, bias_constraint: as the kernel and
            bias arguments of ``Conv2D``.
        data_format: only ``"channels_last"`` is supported.
        narrow_inputs: how a call whose input has fewer channels than the
            basis depth is computed: ``"slice"`` (default) convolves with the
            first ``c`` channels of the basis; ``"pad"`` zero-pads the input to
            the basis depth and convolves with the whole basis (the same
            result; ``export_tflite`` uses it so that the file stores a shared
            basis once instead of one constant per slice).
        split_mode: ``"batch"`` (default) or ``"dilated"``: how ``s > 1``
            splits are computed (see Implementation; the same result).

    Attributes:
        depth: the basis depth ``p``: the ``depth`` argument, or ``c / splits``
            of the first input once built (``get_config`` keeps the
            arguments as given).

    Input shape:
        4D tensor ``(batch, rows, cols, c)``.

    Output shape:
        4D tensor ``(batch, new_rows, new_cols, s * num_basis)``.

    Example:

    >>> x = keras.Input((32, 32, 64))
    >>> y = BasisConv2D(14, 3, splits=2, padding="same")(x)   # (None, 32, 32, 28)
    >>> y = keras.layers.Conv2D(64, 1)(y)                     # coefficients
    >>> model = keras.Model(x, y)  # 3*3*32*14 basis + 28*64 (+64) coefficient weights
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
        self.set_geometry(validate_arguments(
            self.name, num_basis, kernel_size, splits, depth, strides, padding,
            dilation_rate, data_format or keras.config.image_data_format(), narrow_inputs,
            split_mode,
        ))
        self.set_weight_options(
            keras, use_bias, basis_initializer, bias_initializer, basis_regularizer,
            bias_regularizer, basis_constraint, bias_constraint,
        )

    def build(self, input_shape):
        self.add_basis_weights(self.build_depth(self.input_channels(input_shape)))

    def call(self, inputs, strides=None, padding=None, dilation_rate=None):
        """Apply the basis to every split of ``inputs``.

        ``strides``, ``padding`` and ``dilation_rate`` override the layer's own
        values for this call only (so that one shared basis can serve
        convolutions of different geometry, e.g. ResNet's stride-2 first conv).
        """
        strides, padding, dilation_rate = self.call_geometry(strides, padding, dilation_rate)
        s, p = self.splits_for(int(inputs.shape[-1]))
        x = inputs
        basis = self.basis
        depth = int(basis.shape[2])
        if p < depth:
            if self.narrow_inputs == "pad":
                x = ops.pad(x, [[0, 0], [0, 0], [0, 0], [0, depth - p]])
            else:
                basis = basis[:, :, :p, :]
        if s > 1 and self.split_mode == "dilated" and dilated_form_exact(
            self.kernel_size, strides, padding, dilation_rate
        ):
            return self._dilated_call(x, basis, s, p, strides, padding, dilation_rate)
        if s > 1:
            shape = ops.shape(inputs)
            h, w = shape[1], shape[2]
            x = ops.reshape(x, (-1, h, w, s, p))
            x = ops.transpose(x, (0, 3, 1, 2, 4))
            x = ops.reshape(x, (-1, h, w, p))
        y = ops.conv(
            x,
            basis,
            strides=strides,
            padding=padding,
            dilation_rate=dilation_rate,
            data_format="channels_last",
        )
        if self.bias is not None:
            y = y + self.bias
        if s > 1:
            shape = ops.shape(y)
            ho, wo = shape[1], shape[2]
            y = ops.reshape(y, (-1, s, ho, wo, self.num_basis))
            y = ops.transpose(y, (0, 2, 3, 1, 4))
            y = ops.reshape(y, (-1, ho, wo, s * self.num_basis))
        return y

    def _dilated_call(self, x, basis, s, p, strides, padding, dilation_rate):
        """The transpose-free split form: splits side by side along the width.

        Channel block ``g`` of pixel ``w`` lands at width ``w*s + g``; a width
        dilation of ``s * dw`` makes each output at ``wo*s + g`` read only
        split ``g``, and "same" padding of ``s * (kw - 1) * dw / 2`` columns
        per side is exactly ``(kw - 1) * dw / 2`` zero pixels of each split.
        """
        shape = ops.shape(x)
        h, w = shape[1], shape[2]
        x = ops.reshape(x, (-1, h, w * s, p))
        y = ops.conv(
            x,
            basis,
            strides=strides,
            padding=padding,
            dilation_rate=(dilation_rate[0], dilation_rate[1] * s),
            data_format="channels_last",
        )
        if self.bias is not None:
            y = y + self.bias
        shape = ops.shape(y)
        ho, wos = shape[1], shape[2]
        return ops.reshape(y, (-1, ho, wos // s, s * self.num_basis))

    def compute_output_spec(self, inputs, strides=None, padding=None, dilation_rate=None):
        shape = self.compute_output_shape(inputs.shape, strides, padding, dilation_rate)
        return keras.KerasTensor(shape, dtype=self.compute_dtype)

    def compute_output_shape(self, input_shape, strides=None, padding=None, dilation_rate=None):
        return self.output_shape_for(input_shape, strides, padding, dilation_rate)

    def get_config(self):
        config = super().get_config()
        config.update(self.geometry_config())
        config.update(self.weight_config(keras))
        return config
