"""keras_basis.count_macs against multiply-accumulates counted by hand."""

import keras
import pytest

import keras_basis
from keras_basis import BasisConv2D


def _model(shape, fn):
    x = keras.Input(shape)
    return keras.Model(x, fn(x))


def test_conv_same_and_valid_strided():
    # 'same' 8x8 output: 64 positions * 3*3 kernel * 3 in * 4 out
    assert keras_basis.count_macs(_model((8, 8, 3), keras.layers.Conv2D(4, 3, padding="same"))
                                  ) == 64 * 9 * 3 * 4 == 6912
    # 'valid' stride 2 on 9x9: 4x4 output
    model = _model((9, 9, 5), keras.layers.Conv2D(7, 3, strides=2))
    assert keras_basis.count_macs(model) == 16 * 9 * 5 * 7


def test_grouped_conv_counts_per_group():
    model = _model((6, 6, 8), keras.layers.Conv2D(12, 3, padding="same", groups=4))
    assert keras_basis.count_macs(model) == 36 * 9 * (8 // 4) * 12


def test_depthwise_and_separable():
    depthwise = _model((6, 6, 5), keras.layers.DepthwiseConv2D(3, depth_multiplier=2,
                                                              padding="same"))
    assert keras_basis.count_macs(depthwise) == 36 * 9 * 10
    separable = _model((6, 6, 5), keras.layers.SeparableConv2D(7, 3, padding="same"))
    assert keras_basis.count_macs(separable) == 36 * 9 * 5 + 36 * 5 * 7


def test_dense_on_vectors_and_on_sequences():
    assert keras_basis.count_macs(_model((10,), keras.layers.Dense(3))) == 30
    assert keras_basis.count_macs(_model((4, 10), keras.layers.Dense(3))) == 4 * 30


def test_elementwise_pooling_and_normalisation_are_free():
    def fn(x):
        y = keras.layers.BatchNormalization()(x)
        y = keras.layers.ReLU()(y)
        y = keras.layers.MaxPooling2D()(y)
        return keras.layers.Add()([y, y])

    assert keras_basis.count_macs(_model((8, 8, 3), fn)) == 0


def test_basis_pair_with_two_splits():
    """c=16 in s=2 splits of p=8, m=6 filters, n=10: the basis conv costs
    positions * 3*3 * 8 * 6 per split, the 1x1 coefficients positions * 12 * 10."""
    def fn(x):
        y = BasisConv2D(6, 3, splits=2, padding="same")(x)
        return keras.layers.Conv2D(10, 1)(y)

    assert keras_basis.count_macs(_model((5, 5, 16), fn)) == 25 * (2 * 9 * 8 * 6 + 12 * 10)


def test_shared_basis_called_twice_costs_twice():
    def fn(x):
        shared = BasisConv2D(4, 3, depth=8, padding="same")
        y = keras.layers.Conv2D(8, 1)(shared(x))               # 8 channels: s=1
        z = shared(keras.layers.Concatenate()([x, y]))          # 16 channels: s=2
        return keras.layers.Conv2D(3, 1)(z)

    expected = 16 * (9 * 8 * 4 + 4 * 8) + 16 * (2 * 9 * 8 * 4 + 8 * 3)
    assert keras_basis.count_macs(_model((4, 4, 8), fn)) == expected


def test_sliced_basis_counts_the_channels_used():
    def fn(x):
        return BasisConv2D(4, 3, depth=12, padding="same")(x)  # 5 of 12 channels

    assert keras_basis.count_macs(_model((4, 4, 5), fn)) == 16 * 9 * 5 * 4


def test_nested_model_and_sequential():
    inner = keras.Sequential([keras.Input((6, 6, 3)), keras.layers.Conv2D(4, 3),
                              keras.layers.Flatten(), keras.layers.Dense(2)], name="inner")
    x = keras.Input((8, 8, 3))
    y = keras.layers.Conv2D(3, 3)(x)  # 6x6x3 out
    model = keras.Model(x, inner(y))
    conv_outer = 36 * 9 * 3 * 3
    conv_inner = 16 * 9 * 3 * 4
    dense = 4 * 4 * 4 * 2
    assert keras_basis.count_macs(inner) == conv_inner + dense
    assert keras_basis.count_macs(model) == conv_outer + conv_inner + dense


def test_compress_keeps_count_macs_equal_to_maths():
    keras.utils.set_random_seed(0)
    model = _model((8, 8, 16), keras.layers.Conv2D(24, 3, padding="same", name="conv"))
    small = keras_basis.compress(model, num_basis=5, splits=4, verbose=0)
    assert keras_basis.count_macs(small) == keras_basis.maths.basis_macs(
        16, 24, 3, 3, 4, 5, 8, 8) == 64 * (5 * 16 * 9 + 4 * 5 * 24)
    assert keras_basis.count_macs(keras_basis.decompress(small)) == 64 * 9 * 16 * 24


def test_bad_input():
    with pytest.raises(TypeError, match="Expected a keras.Model"):
        keras_basis.count_macs("model")


class _HandConv(keras.layers.Layer):
    """A conv-like layer with an int kernel_size, as hand-written layers often have."""

    def __init__(self, filters, kernel_size, groups=1, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.kernel_size, self.groups = filters, kernel_size, groups

    def call(self, x):
        return keras.ops.zeros(keras.ops.shape(x)[:-1] + (self.filters,), x.dtype)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.filters,)


def test_int_kernel_size_is_square():
    x = keras.Input((6, 5, 8))
    model = keras.Model(x, _HandConv(12, 3, groups=4)(x))
    assert keras_basis.count_macs(model) == 6 * 5 * 3 * 3 * (8 // 4) * 12
