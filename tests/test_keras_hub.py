"""Models users bring: keras-hub backbones (ResNet, MobileNet, EfficientNet).

Built from a small config with random weights (no download). For each:
full-rank compress equals the original, a real compression is an approximation,
decompress equals the compressed model, the TFLite export matches Keras, and the
``.keras`` round trip is exact.

keras-hub wraps most of MobileNet's and EfficientNet's convolutions in its own
layer classes (blocks), which ``compress`` does not enter: only the Conv2D layers
of the functional graph are compressed (the counts below pin this).
"""

import keras
import numpy as np
import pytest

import keras_basis
from keras_basis import tflite as kt

keras_hub = pytest.importorskip("keras_hub")
pytest.importorskip("ai_edge_litert")


def _resnet():
    return keras_hub.models.ResNetBackbone(
        input_conv_filters=[64], input_conv_kernel_sizes=[3],
        stackwise_num_filters=[64, 64], stackwise_num_blocks=[1, 1],
        stackwise_num_strides=[1, 2], block_type="basic_block", use_pre_activation=False,
        image_shape=(32, 32, 3),
    )


def _mobilenet():
    return keras_hub.models.MobileNetBackbone(
        stackwise_expansion=[[24], [48, 48]], stackwise_num_blocks=[1, 2],
        stackwise_num_filters=[[16], [24, 24]], stackwise_kernel_size=[[3], [5, 5]],
        stackwise_num_strides=[[2], [2, 1]], stackwise_se_ratio=[[None], [0.25, 0.25]],
        stackwise_activation=[["relu"], ["hard_swish", "hard_swish"]],
        stackwise_padding=[[1], [2, 2]], output_num_filters=64, depthwise_filters=8,
        depthwise_stride=2, depthwise_residual=False, last_layer_filter=96,
        squeeze_and_excite=0.5, input_activation="hard_swish", output_activation="hard_swish",
        input_num_filters=16, image_shape=(32, 32, 3),
    )


def _efficientnet():
    return keras_hub.models.EfficientNetBackbone(
        stackwise_kernel_sizes=[3, 3], stackwise_num_repeats=[1, 1],
        stackwise_input_filters=[16, 16], stackwise_output_filters=[16, 24],
        stackwise_expansion_ratios=[1, 4], stackwise_squeeze_and_excite_ratios=[0.0, 0.25],
        stackwise_strides=[1, 2], stackwise_block_types=["fused", "unfused"],
        width_coefficient=1.0, depth_coefficient=1.0, input_shape=(32, 32, 3),
    )


# family -> (builder, number of Conv2D layers compress reaches)
BACKBONES = {"resnet": (_resnet, 6), "mobilenet": (_mobilenet, 1),
             "efficientnet": (_efficientnet, 2)}


def _np(t):
    return keras.ops.convert_to_numpy(t)


def _rel(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.mark.parametrize("family", sorted(BACKBONES))
def test_keras_hub_backbone_compress_decompress_export(family, tmp_path):
    build, n_pairs = BACKBONES[family]
    keras.utils.set_random_seed(0)
    model = build()
    x = np.random.default_rng(0).random((2, 32, 32, 3), dtype=np.float32)
    y0 = _np(model(x))
    assert np.isfinite(y0).all() and np.abs(y0).max() > 0

    full = keras_basis.compress(model, num_basis=10**6, layers=lambda layer: True, verbose=0)
    assert len(keras_basis.basis_pairs(full)) == n_pairs
    assert _rel(_np(full(x)), y0) < 1e-4, family

    small = keras_basis.compress(model, num_basis=2, layers=lambda layer: True, verbose=0)
    ys = _np(small(x))
    assert _rel(ys, y0) > 1e-3, family  # m=2 really approximates
    assert _rel(_np(keras_basis.decompress(small)(x)), ys) < 1e-4, family

    path, content = keras_basis.export_tflite(small, tmp_path / "m.tflite",
                                              return_content=True)
    err = kt.compare_with_keras(small, content, x)
    assert err["max_rel_error"] < 1e-4, (family, err)

    small.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(_np(loaded(x)), ys)
