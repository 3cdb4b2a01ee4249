"""BasisBias: a per-call-site bias of a (shared) basis convolution."""

from __future__ import annotations

import keras
from keras import ops

__all__ = ["BasisBias"]


@keras.saving.register_keras_serializable(package="keras_basis")
class BasisBias(keras.layers.Layer):
    """Adds ``m`` learned biases to the split-major responses of a basis call.

    A ``BasisConv2D`` shared by several convolutions holds one basis; the
    authors of the paper give every call site its own basis bias (their
    ``F.conv2d(x_split, basis, basis_bias)``): ``BasisConv2D(use_bias=False)``
    followed by one ``BasisBias(m)`` per site. With ``s`` splits the responses
    are split-major (channel ``g * m + j``) and the same ``m`` biases apply to
    every split. :func:`keras_basis.basis_pairs` sees ``basis -> BasisBias ->
    1x1 coefficients`` as one pair, and :func:`keras_basis.decompress` folds the
    bias into the dense convolution's bias (there is no nonlinearity between).

    Args:
        num_basis: ``m``, the number of bias values; the input's channels must be
            a multiple of it.
        bias_initializer: initializer of the bias (default ``"zeros"``).

    Input shape:
        ``(batch, h, w, s * m)``.

    Output shape:
        the input shape.

    Example:

    >>> x = keras.Input((8, 8, 32))
    >>> basis = keras_basis.BasisConv2D(12, 3, splits=2, padding="same")
    >>> y = keras_basis.BasisBias(12)(basis(x))        # 12 weights for 24 maps
    >>> y = keras.layers.Conv2D(32, 1)(y)              # coefficients
    """

    def __init__(self, num_basis, bias_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        if isinstance(num_basis, bool) or not isinstance(num_basis, int) or num_basis < 1:
            raise ValueError(
                f"Invalid value for argument `num_basis` of layer '{self.name}'. Expected a "
                f"positive int. Received num_basis={num_basis!r}."
            )
        self.num_basis = num_basis
        self.bias_initializer = keras.initializers.get(bias_initializer)

    def build(self, input_shape):
        c = input_shape[-1]
        if c is None or int(c) % self.num_basis:
            raise ValueError(
                f"Layer '{self.name}' has num_basis={self.num_basis}; its input must have a "
                f"multiple of {self.num_basis} channels. Received input_shape={input_shape}."
            )
        self.bias = self.add_weight(
            name="bias", shape=(self.num_basis,), initializer=self.bias_initializer
        )

    def call(self, inputs):
        repeats = int(inputs.shape[-1]) // self.num_basis
        bias = ops.cast(self.bias, inputs.dtype)
        if repeats > 1:
            bias = ops.tile(bias, [repeats])
        return inputs + bias

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "num_basis": self.num_basis,
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
        }
