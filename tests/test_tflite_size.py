"""Where the bytes of a .tflite file go (size_breakdown) and the lossless shrink of export.

export_tflite rewrites the converter's file (keras_basis/_shrink.py): no internal tensor
names, every equal vector and table stored once. Here the converter's file is made
directly with TensorFlow, as export makes it, and compared with export's.
"""

import keras
import numpy as np
import pytest

from keras_basis import BasisConv2D, export_tflite
from keras_basis import tflite as kt

Interpreter = pytest.importorskip("ai_edge_litert.interpreter").Interpreter


def _conv_net(width=64, size=32, depth=4, seed=0):
    """3x3 convs of ``width`` channels at ``size`` x ``size``, random nonzero biases."""
    keras.utils.set_random_seed(seed)
    x = inputs = keras.Input((size, size, 3), name="image")
    for i in range(depth):
        x = keras.layers.Conv2D(width, 3, padding="same", activation="relu",
                                bias_initializer="random_normal", name=f"conv{i}")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(10, bias_initializer="random_normal", name="fc")(x)
    return keras.Model(inputs, outputs, name="convnet")


def _basis_net(num_basis=16, size=32, seed=0):
    """The same network with a basis pair (s=1) in place of every conv but the first."""
    keras.utils.set_random_seed(seed)
    x = inputs = keras.Input((size, size, 3), name="image")
    x = keras.layers.Conv2D(64, 3, padding="same", activation="relu",
                            bias_initializer="random_normal", name="conv0")(x)
    for i in range(1, 4):
        x = BasisConv2D(num_basis, 3, splits=1, padding="same", name=f"conv{i}_basis")(x)
        x = keras.layers.Conv2D(64, 1, activation="relu", bias_initializer="random_normal",
                                name=f"conv{i}")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(10, bias_initializer="random_normal", name="fc")(x)
    return keras.Model(inputs, outputs, name="basisnet")


def _convert_both(model, quantize, size=32):
    """(the TensorFlow converter's bytes, export_tflite's bytes) of ``model``.

    The first is converted here the way export converts (a concrete function
    at batch 1, builtin ops, int8 calibrated on the same four samples), so
    the two files differ by export's shrink only.
    """
    import tensorflow as tf

    data = np.random.default_rng(0).standard_normal((4, size, size, 3)).astype("float32")
    fn = tf.function(lambda x: model(x, training=False))
    spec = tf.TensorSpec((1, size, size, 3), tf.float32)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function(spec)])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantize == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([data[i : i + 1]] for i in range(4))
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    raw = converter.convert()
    _, exported = export_tflite(model, None, quantize=quantize, representative_dataset=data,
                                calibration_steps=4, return_content=True)
    return raw, exported


@pytest.fixture(scope="module")
def files():
    out = {}
    for name, model in (("dense", _conv_net()), ("basis", _basis_net())):
        out[name] = {"model": model}
        for quantize in (None, "int8"):
            out[name][quantize] = _convert_both(model, quantize)
    return out


def _params(model):
    kernels = sum(int(np.prod(w.shape)) for w in model.weights if "bias" not in w.path)
    biases = sum(int(np.prod(w.shape)) for w in model.weights if "bias" in w.path)
    return kernels, biases


@pytest.mark.parametrize("quantize, item", [(None, 4), ("int8", 1)])
@pytest.mark.parametrize("name", ["dense", "basis"])
@pytest.mark.parametrize("shrunk", [False, True])
def test_size_breakdown_adds_up_and_counts_the_weights(files, name, quantize, item, shrunk):
    content = files[name][quantize][int(shrunk)]
    sizes = kt.size_breakdown(content)
    assert sizes["total"] == len(content)
    assert sum(v for k, v in sizes.items() if k != "total") == len(content)
    assert min(sizes.values()) >= 0
    kernels, biases = _params(files[name]["model"])
    assert sizes["weights"] == item * kernels  # float32: 4 bytes, int8: 1 byte per weight
    # float32 or int32; the converter gives the basis convs (no bias in Keras) an all-zero
    # bias of 16 values, one constant for all three.
    assert sizes["biases"] == 4 * biases + (4 * 16 if name == "basis" else 0)
    assert (sizes["quantization"] > 1000) == (quantize == "int8")
    assert kt.size_breakdown(content) == sizes


def test_size_breakdown_of_a_path_and_bad_input(files, tmp_path):
    path = tmp_path / "m.tflite"
    path.write_bytes(files["dense"]["int8"][1])
    assert kt.size_breakdown(path) == kt.size_breakdown(path.read_bytes())
    with pytest.raises(ValueError, match="not a readable .tflite file"):
        kt.size_breakdown(b"\0" * 64)
    with pytest.raises(TypeError, match="Expected a path or bytes"):
        kt.size_breakdown(3)


@pytest.mark.parametrize("quantize", [None, "int8"])
@pytest.mark.parametrize("name", ["dense", "basis"])
def test_shrunk_file_computes_the_same_bits(files, name, quantize):
    raw, small = files[name][quantize]
    assert len(small) < len(raw)
    x = np.random.default_rng(1).standard_normal((3, 32, 32, 3)).astype("float32") * 2
    for xnnpack in (True, False):
        want = kt.run_tflite(raw, x, xnnpack=xnnpack, dequantize=False)
        got = kt.run_tflite(small, x, xnnpack=xnnpack, dequantize=False)
        assert got.dtype == want.dtype and got.tobytes() == want.tobytes(), xnnpack
    # Same tensors, shapes, types, buffers and quantization; names only at the ends.
    before, after = (Interpreter(model_content=c) for c in (raw, small))
    for a, b in zip(before.get_tensor_details(), after.get_tensor_details(), strict=True):
        assert (a["index"], a["dtype"], list(a["shape"])) == (b["index"], b["dtype"],
                                                                list(b["shape"]))
        assert np.array_equal(a["quantization_parameters"]["scales"],
                              b["quantization_parameters"]["scales"])
    ends = [d["name"] for get in ("get_input_details", "get_output_details")
            for d in getattr(after, get)()]
    assert ends == [d["name"] for get in ("get_input_details", "get_output_details")
                    for d in getattr(before, get)()]
    named = [d["name"] for d in after.get_tensor_details() if d["name"]]
    assert all(ends) and sorted(named) == sorted(ends)  # internal tensors have no names
    assert before.get_signature_list() == after.get_signature_list()
    assert {op["op"] for op in kt.tflite_ops(small)} == {op["op"] for op in kt.tflite_ops(raw)}


def test_shrink_stores_per_channel_zero_points_once(files):
    raw, small = files["basis"]["int8"]
    before, after = kt.size_breakdown(raw), kt.size_breakdown(small)
    # Zero points (int64, 8 B a channel, all 0) of the weights and biases of conv0 (64),
    # 3 basis convs (16), 3 coefficient convs (64) and fc (10): once per tensor before,
    # once per channel count after.
    channels = 2 * 64 + 3 * 2 * 16 + 3 * 2 * 64 + 2 * 10
    assert before["quantization"] - after["quantization"] >= 8 * (channels - (64 + 16 + 10))
    assert after["names"] < 200 < before["names"]
    assert after["weights"] == before["weights"] and after["biases"] == before["biases"]


def test_int8_file_size_follows_the_parameters(files):
    """Target of issue 12: int8 file ratio <= parameter ratio + 0.05 (64 channels, 32x32)."""
    dense, basis = files["dense"], files["basis"]
    param_ratio = basis["model"].count_params() / dense["model"].count_params()
    raw_ratio = len(basis["int8"][0]) / len(dense["int8"][0])
    ratio = len(basis["int8"][1]) / len(dense["int8"][1])
    assert 0.2 < param_ratio < 0.4, param_ratio
    assert raw_ratio > param_ratio + 0.05, (raw_ratio, param_ratio)  # the converter's files
    assert ratio <= param_ratio + 0.05, (ratio, param_ratio)
