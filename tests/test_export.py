"""keras_basis.export_tflite: conversion, numerics, int8, sizes, atomic writes."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_basis
import keras_basis.export
from keras_basis import BasisConv2D, export_tflite
from keras_basis import tflite as kt

pytest.importorskip("ai_edge_litert")
pytestmark = pytest.mark.filterwarnings("ignore:Model .* uses sliced bases")

CONV_OPS = ("CONV_2D", "FULLY_CONNECTED", "DEPTHWISE_CONV_2D")


def _basis_net(shared=True, seed=0, size=16, width=32):
    """Shared basis at three sites (one stride 2, via a per-call override), a
    sliced basis (8 input channels < depth 16), BatchNorm, ReLU and a Dense head."""
    keras.utils.set_random_seed(seed)
    x = keras.Input((size, size, 8))
    y = BasisConv2D(6, 3, depth=16, padding="same", name="stem_basis")(x)  # sliced: c=8 < 16
    y = keras.layers.Conv2D(width, 1, name="stem_coef")(y)
    y = keras.layers.BatchNormalization(name="stem_bn")(y)
    y = keras.layers.ReLU()(y)
    basis = BasisConv2D(8, 3, splits=4, padding="same", name="shared_basis")
    for i in range(2):
        b = basis if shared else BasisConv2D(8, 3, splits=4, padding="same")
        z = keras.layers.Conv2D(width, 1, name=f"block{i}_coef")(b(y))
        z = keras.layers.BatchNormalization()(z)
        y = keras.layers.ReLU()(keras.layers.Add()([y, z]))
    y = basis(y, strides=2)
    y = keras.layers.Conv2D(16, 1, activation="relu", name="down_coef")(y)
    y = keras.layers.GlobalAveragePooling2D()(y)
    y = keras.layers.Dense(10, name="head")(y)
    model = keras.Model(x, y)
    # Non-trivial BatchNorm statistics, so that the folding is exercised.
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.moving_mean.assign(rng.normal(0, 0.1, n).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.5, 1.5, n).astype("float32"))
            layer.gamma.assign(rng.uniform(0.5, 1.5, n).astype("float32"))
    return model


def _inputs(n=6, size=16, channels=8, seed=1):
    return np.random.default_rng(seed).standard_normal((n, size, size, channels)).astype(
        "float32"
    )


@pytest.fixture(scope="module")
def model_and_data():
    return _basis_net(), _inputs(), _inputs(n=32, seed=2)


def _builtin_only(path):
    ops = kt.tflite_ops(path)
    assert ops, "empty graph"
    bad = [op["op"] for op in ops if not op["builtin"] or op["op"].startswith("Flex")]
    assert not bad, f"non-builtin ops in {path}: {bad}"
    return ops


# ----------------------------------------------------------------- float32
def test_float32_matches_keras_and_is_builtin(model_and_data, tmp_path):
    model, x, _ = model_and_data
    path = export_tflite(model, tmp_path / "m.tflite")
    assert path == tmp_path / "m.tflite" and path.is_file()
    err = kt.compare_with_keras(model, path, x)
    assert err["max_rel_error"] < 1e-4, err
    assert err["top1_agreement"] == 1.0
    ops = _builtin_only(path)
    hist = kt.op_histogram(path)
    # 4 basis convs + 4 coefficient convs (BN folded into them) + the head.
    assert hist["CONV_2D"] == 8 and hist["FULLY_CONNECTED"] == 1, hist
    assert all(t["dtype"] == "FLOAT32" for op in ops for t in op["inputs"] + op["outputs"]
               if op["op"] in CONV_OPS)


def test_float16_and_dynamic_close_to_keras(model_and_data, tmp_path):
    model, x, _ = model_and_data
    f16 = export_tflite(model, tmp_path / "f16.tflite", quantize="float16")
    dyn = export_tflite(model, tmp_path / "dyn.tflite", quantize="dynamic")
    assert kt.compare_with_keras(model, f16, x)["max_rel_error"] < 5e-3
    assert kt.compare_with_keras(model, dyn, x)["max_rel_error"] < 0.1
    for path in (f16, dyn):
        _builtin_only(path)
    # Weights of >= 1024 values are stored in float16 / int8 (smaller stay float32).
    for path, dtype in ((f16, "FLOAT16"), (dyn, "INT8")):
        big = [t["dtype"] for op in kt.tflite_ops(path) for t in op["inputs"]
               if t["constant"] and np.prod(t["shape"]) >= 1024]
        assert big and set(big) == {dtype}, (path.name, big)


def test_dynamic_batch(model_and_data, tmp_path):
    model, x, _ = model_and_data
    path = export_tflite(model, tmp_path / "dyn_batch.tflite", batch_size=None)
    y = kt.run_tflite(path, x[:3])
    np.testing.assert_allclose(y, model(x[:3]), rtol=1e-4, atol=1e-4 * np.abs(y).max())


# -------------------------------------------------------------------- int8
def test_int8_every_conv_runs_in_int8(model_and_data, tmp_path):
    model, x, calib = model_and_data
    path = export_tflite(model, tmp_path / "q.tflite", quantize="int8",
                         representative_dataset=calib)
    ops = _builtin_only(path)
    convs = [op for op in ops if op["op"] in CONV_OPS]
    assert len(convs) == 9
    for op in convs:
        data, weight = op["inputs"][0], op["inputs"][1]
        assert data["dtype"] == "INT8" and not data["constant"], op
        assert weight["dtype"] == "INT8" and weight["constant"], op
        assert op["outputs"][0]["dtype"] == "INT8", op
        if len(op["inputs"]) > 2:
            assert op["inputs"][2]["dtype"] == "INT32", op
    # No float compute left: only the QUANTIZE/DEQUANTIZE at the ends see floats.
    float_ops = {op["op"] for op in ops
                 if any(t["dtype"] == "FLOAT32" for t in op["inputs"] + op["outputs"])}
    assert float_ops == {"QUANTIZE", "DEQUANTIZE"}, float_ops
    err = kt.compare_with_keras(model, path, x)
    assert err["max_rel_error"] < 0.08, err
    assert err["top1_agreement"] >= 5 / 6, err


def test_int8_io(model_and_data, tmp_path):
    model, x, calib = model_and_data
    path = export_tflite(model, tmp_path / "qio.tflite", quantize="int8",
                         representative_dataset=calib, int8_io=True)
    ops = _builtin_only(path)
    assert "QUANTIZE" not in kt.op_histogram(path) or ops[0]["op"] != "QUANTIZE"
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path))
    assert interp.get_input_details()[0]["dtype"] == np.int8
    assert interp.get_output_details()[0]["dtype"] == np.int8
    # run_tflite quantizes the float input and dequantizes the output.
    err = kt.compare_with_keras(model, path, x)
    assert err["max_rel_error"] < 0.08, err


def test_int8_representative_dataset_forms_agree(model_and_data, tmp_path):
    model, _, calib = model_and_data
    as_array = export_tflite(model, tmp_path / "a.tflite", quantize="int8",
                             representative_dataset=calib)
    ds = tf.data.Dataset.from_tensor_slices((calib, np.zeros(len(calib)))).batch(5)
    as_dataset = export_tflite(model, tmp_path / "d.tflite", quantize="int8",
                               representative_dataset=ds)

    def gen():
        for sample in calib:
            yield [sample[None]]

    as_generator = export_tflite(model, tmp_path / "g.tflite", quantize="int8",
                                 representative_dataset=gen)
    reference = as_array.read_bytes()
    assert as_dataset.read_bytes() == reference
    assert as_generator.read_bytes() == reference


def test_int8_without_data_raises(model_and_data, tmp_path):
    model, _, _ = model_and_data
    with pytest.raises(ValueError, match="`representative_dataset` is required with "
                                         "quantize='int8'.*Received representative_dataset=None"):
        export_tflite(model, tmp_path / "q.tflite", quantize="int8")
    with pytest.raises(ValueError,
                       match=r"Expected samples of shape \(16, 16, 8\).*\(4, 16, 16, 3\)"):
        export_tflite(model, tmp_path / "q.tflite", quantize="int8",
                      representative_dataset=np.zeros((4, 16, 16, 3), "float32"))
    with pytest.raises(ValueError, match="yielded no samples"):
        export_tflite(model, tmp_path / "q.tflite", quantize="int8",
                      representative_dataset=lambda: iter([]))
    assert not list(tmp_path.iterdir())


# ----------------------------------------------------------- arguments
def test_bad_arguments(model_and_data, tmp_path):
    model, _, _ = model_and_data
    with pytest.raises(ValueError, match=r"argument `quantize`.*Received quantize='int4'"):
        export_tflite(model, tmp_path / "m.tflite", quantize="int4")
    with pytest.raises(ValueError, match=r"`int8_io=True` needs quantize='int8'.*"
                                         r"Received quantize='float16'"):
        export_tflite(model, tmp_path / "m.tflite", quantize="float16", int8_io=True)
    with pytest.raises(ValueError, match="folder does not exist.*Received path="):
        export_tflite(model, tmp_path / "missing" / "m.tflite")
    with pytest.raises(TypeError, match="Expected a keras.Model. Received model="):
        export_tflite("model.keras", tmp_path / "m.tflite")
    with pytest.raises(ValueError, match=r"argument `batch_size`.*Received batch_size=0"):
        export_tflite(model, tmp_path / "m.tflite", batch_size=0)
    with pytest.raises(ValueError, match=r"argument `fold`.*Received fold='some'"):
        export_tflite(model, tmp_path / "m.tflite", fold="some")
    with pytest.raises(ValueError, match=r"argument `fold`.*Received fold=1"):
        export_tflite(model, tmp_path / "m.tflite", fold=1)
    with pytest.raises(ValueError, match="'nope' is not the coefficient layer"):
        export_tflite(model, tmp_path / "m.tflite", fold=["nope"])
    assert not list(tmp_path.iterdir())


def test_unknown_spatial_dims_need_input_shape(tmp_path):
    keras.utils.set_random_seed(3)
    x = keras.Input((None, None, 3))
    y = BasisConv2D(4, 3, padding="same")(x)
    y = keras.layers.Conv2D(12, 1)(y)
    y = keras.layers.UpSampling2D(2)(y)
    model = keras.Model(x, y, name="sr_net")
    with pytest.raises(ValueError, match=r"Model 'sr_net' has an input of shape "
                                         r"\(None, None, None, 3\).*input_shape="):
        export_tflite(model, tmp_path / "sr.tflite")
    with pytest.raises(ValueError, match=r"conflicts with the model's input shape"):
        export_tflite(model, tmp_path / "sr.tflite", input_shape=(8, 8, 4))
    path = export_tflite(model, tmp_path / "sr.tflite", input_shape=(12, 10, 3))
    x = _inputs(2, 12, 3)[:, :, :10]
    y = kt.run_tflite(path, x)
    assert y.shape == (2, 24, 20, 12)
    assert kt.compare_with_keras(model, path, x)["max_rel_error"] < 1e-4
    # fold="auto" times the pair at the given input shape, then folds or keeps it.
    auto = export_tflite(model, tmp_path / "sr_auto.tflite", input_shape=(12, 10, 3),
                         fold="auto")
    assert kt.op_histogram(auto)["CONV_2D"] in (1, 2)
    assert kt.compare_with_keras(model, auto, x)["max_rel_error"] < 1e-4


# ------------------------------------------------------------- writing
def test_failed_conversion_leaves_no_file(model_and_data, tmp_path, monkeypatch):
    model, _, _ = model_and_data
    old = tmp_path / "old.tflite"
    old.write_bytes(b"previous file")

    def broken(self):
        raise RuntimeError("converter exploded")

    monkeypatch.setattr(tf.lite.TFLiteConverter, "convert", broken)
    with pytest.raises(RuntimeError, match="TFLite conversion of model .* failed.*exploded"):
        export_tflite(model, tmp_path / "new.tflite")
    with pytest.raises(RuntimeError, match="converter exploded"):
        export_tflite(model, old)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.tflite"]  # no temp left
    assert old.read_bytes() == b"previous file"


def test_failed_write_leaves_no_temp(model_and_data, tmp_path, monkeypatch):
    model, _, _ = model_and_data

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        export_tflite(model, tmp_path / "m.tflite")
    assert not list(tmp_path.iterdir())


def test_model_not_mutated(model_and_data, tmp_path):
    model, x, calib = model_and_data
    before = [w.copy() for w in model.get_weights()]
    names = [layer.name for layer in model.layers]
    out = np.asarray(model(x))
    export_tflite(model, tmp_path / "q.tflite", quantize="int8", representative_dataset=calib)
    assert [layer.name for layer in model.layers] == names
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(out, model(x))


# ------------------------------------------------------- size vs params
def _wide_nets(width=256, size=8, m=64):
    """A dense 4-conv net and its basis form (shared or per-layer bases)."""
    def net(kind):
        keras.utils.set_random_seed(0)
        x = keras.Input((size, size, 64))
        y = x
        shared = BasisConv2D(m, 3, depth=64, padding="same", name="shared")
        for i in range(4):
            if kind == "dense":
                y = keras.layers.Conv2D(width, 3, padding="same")(y)
            else:
                b = shared if kind == "shared" else BasisConv2D(m, 3, depth=64, padding="same")
                y = keras.layers.Conv2D(width, 1)(b(y))
        return keras.Model(x, y)

    return net("dense"), net("basis"), net("shared")


def _kernel_params(model):
    return sum(int(np.prod(w.shape)) for w in model.weights if w.name != "bias")


@pytest.mark.parametrize("quantize", [None, "int8"])
def test_file_size_tracks_parameter_count(tmp_path, quantize):
    dense, basis, shared = _wide_nets()
    calib = _inputs(8, 8, 64)
    bytes_per_weight = {None: 4, "int8": 1}[quantize]
    sizes = {}
    for name, m in (("dense", dense), ("basis", basis), ("shared", shared)):
        path = export_tflite(m, tmp_path / f"{name}.tflite", quantize=quantize,
                             representative_dataset=calib if quantize == "int8" else None)
        sizes[name] = os.path.getsize(path)
        # Every weight stored exactly once: the unique conv kernel buffers hold
        # bytes_per_weight * (kernel parameters); the shared basis is one buffer.
        convs = [op for op in kt.tflite_ops(path) if op["op"] == "CONV_2D"]
        kernels = {op["inputs"][1]["buffer"]: op["inputs"][1]["bytes"] for op in convs}
        assert sum(kernels.values()) == bytes_per_weight * _kernel_params(m), name
        assert len(convs) == (4 if name == "dense" else 8)
        assert len(kernels) == {"dense": 4, "basis": 8, "shared": 5}[name]
    assert shared.count_params() < basis.count_params() < dense.count_params() / 4
    # int8 adds per output channel a float scale, an int64 zero point and an
    # int32 bias with its own scale (about 28 bytes); the basis form has more
    # output channels per weight, hence the looser int8 bound.
    tolerance = {None: 0.02, "int8": 0.15}[quantize]
    for name, m in (("basis", basis), ("shared", shared)):
        param_ratio = m.count_params() / dense.count_params()
        size_ratio = sizes[name] / sizes["dense"]
        assert abs(size_ratio / param_ratio - 1) < tolerance, (name, size_ratio, param_ratio)
    assert sizes["dense"] == pytest.approx(bytes_per_weight * dense.count_params(), rel=0.02)


@pytest.mark.parametrize("quantize", [None, "int8"])
def test_sliced_shared_basis_is_stored_once(tmp_path, quantize):
    """Network-wide sharing with slicing (DenseNet style): layers with 16, 24, 32 and
    40 input channels use the first channels of one depth-40 basis. The default
    export zero-pads their inputs, so the basis is one constant in the file; with
    sliced_bases='copy' every slice is a constant of its own (and a warning says so)."""
    keras.utils.set_random_seed(3)
    x = keras.Input((8, 8, 16))
    basis = BasisConv2D(12, 3, depth=40, padding="same", name="network_basis")
    y = x
    for i in range(4):
        z = keras.layers.Conv2D(8, 1, name=f"coef{i}")(basis(y))
        y = keras.layers.Concatenate()([y, z])  # 16 -> 24 -> 32 -> 40 -> 48 channels
    model = keras.Model(x, y)
    data = _inputs(8, 8, 16)
    kw = dict(quantize=quantize, representative_dataset=data if quantize else None)
    pad = export_tflite(model, tmp_path / "pad.tflite", **kw)
    convs = [op for op in kt.tflite_ops(pad) if op["op"] == "CONV_2D"]
    kernels = {op["inputs"][1]["buffer"]: op["inputs"][1]["bytes"] for op in convs}
    bytes_per_weight = 1 if quantize else 4
    assert len(convs) == 8 and len(kernels) == 5  # one basis + four coefficient kernels
    assert sum(kernels.values()) == bytes_per_weight * _kernel_params(model)
    if quantize is None:
        assert kt.compare_with_keras(model, pad, data)["max_rel_error"] < 1e-4
    else:
        err = np.abs(kt.run_tflite(pad, data) - keras.ops.convert_to_numpy(model(data)))
        assert err.max() < 0.1 * np.abs(keras.ops.convert_to_numpy(model(data))).max()
    with pytest.warns(UserWarning, match=r"'network_basis' \(3 slices\).*sliced_bases='pad'"):
        copy = export_tflite(model, tmp_path / "copy.tflite", sliced_bases="copy", **kw)
    convs = [op for op in kt.tflite_ops(copy) if op["op"] == "CONV_2D"]
    assert len({op["inputs"][1]["buffer"] for op in convs}) == 8  # 4 basis copies
    assert os.path.getsize(copy) > os.path.getsize(pad)
    with pytest.raises(ValueError, match=r"`sliced_bases`.*'pad' or 'copy'.*'share'"):
        export_tflite(model, tmp_path / "bad.tflite", sliced_bases="share")
    assert not (tmp_path / "bad.tflite").exists()


def test_scalar_prelu_exported_as_leaky_relu(tmp_path):
    keras.utils.set_random_seed(4)
    x = keras.Input((8, 8, 4))
    y = keras.layers.Conv2D(6, 3, padding="same")(x)
    scalar = keras.layers.PReLU(shared_axes=[1, 2, 3], name="scalar_prelu")
    y = scalar(y)
    y = keras.layers.PReLU(shared_axes=[1, 2], name="channel_prelu")(y)
    model = keras.Model(x, y)
    scalar.alpha.assign(np.full((1, 1, 1), 0.3, "float32"))
    model.get_layer("channel_prelu").alpha.assign(np.linspace(0.1, 0.9, 6).reshape(1, 1, 6))
    xs = _inputs(3, 8, 4)
    default = export_tflite(model, tmp_path / "leaky.tflite")
    assert kt.op_histogram(default) == {"CONV_2D": 1, "LEAKY_RELU": 1, "PRELU": 1}
    assert kt.compare_with_keras(model, default, xs)["max_rel_error"] < 1e-6
    kept = export_tflite(model, tmp_path / "prelu.tflite", prelu_to_leaky_relu=False)
    assert kt.op_histogram(kept) == {"CONV_2D": 1, "PRELU": 2}
    assert isinstance(model.get_layer("scalar_prelu"), keras.layers.PReLU)  # not mutated
    calib = _inputs(8, 8, 4, seed=5)
    q = export_tflite(model, tmp_path / "leaky_int8.tflite", quantize="int8",
                      representative_dataset=calib)
    assert kt.op_histogram(q)["LEAKY_RELU"] == 1
    assert kt.compare_with_keras(model, q, xs)["max_rel_error"] < 0.05


# ------------------------------------------------------------------ fold
def test_fold_true_gives_dense_convs(model_and_data, tmp_path):
    model, x, _ = model_and_data
    path = export_tflite(model, tmp_path / "folded.tflite", fold=True)
    hist = kt.op_histogram(path)
    assert hist["CONV_2D"] == 4 and "TRANSPOSE" not in hist, hist
    assert kt.compare_with_keras(model, path, x)["max_rel_error"] < 1e-4
    assert any(isinstance(layer, BasisConv2D) for layer in model.layers)  # not mutated


def test_fold_auto_folds_what_the_plan_says(model_and_data, tmp_path, monkeypatch):
    model, x, _ = model_and_data
    calls = {}

    def fake_plan(m, **kwargs):
        calls.update(kwargs)
        return [{"coefficients": "block0_coef", "basis": "shared_basis", "fold": True,
                 "batch_ms": 2.0, "dilated_ms": 1.0},
                {"coefficients": "block1_coef", "basis": "shared_basis", "fold": False,
                 "batch_ms": 1.0, "dilated_ms": 0.5}]

    monkeypatch.setattr(keras_basis.export, "fold_plan", fake_plan)
    path = export_tflite(model, tmp_path / "auto.tflite", fold="auto", fold_threads=2)
    assert calls["threads"] == 2 and calls["quantize"] is None
    hist = kt.op_histogram(path)
    # 3 pairs left (6 convs) + the folded dense conv + the head.
    assert hist["CONV_2D"] == 7, hist
    # the plan's faster split form of the kept shared basis: dilated, so only its
    # stride-2 call (where the dilated form is not exact) keeps its 2 transposes
    assert hist["TRANSPOSE"] == 2, hist
    assert kt.compare_with_keras(model, path, x)["max_rel_error"] < 1e-4


def test_split_mode_argument(model_and_data, tmp_path):
    model, x, _ = model_and_data
    counts = {}
    for mode in ("batch", "dilated", {"shared_basis": "dilated"}):
        _, content = export_tflite(model, None, split_mode=mode, return_content=True)
        counts[str(mode)] = kt.op_histogram(content).get("TRANSPOSE", 0)
        assert kt.compare_with_keras(model, content, x)["max_rel_error"] < 1e-4
    # two stride-1 calls of the shared basis (s = 4) lose their 2 transposes each
    assert counts["batch"] == 6 and counts["dilated"] == counts["{'shared_basis': 'dilated'}"] == 2
    assert all(layer.split_mode == "batch" for layer in model.layers
               if isinstance(layer, BasisConv2D))  # not mutated
    for bad, match in ((("x",), r"`split_mode`.*Received split_mode=\('x',\)"),
                       ({"nope": "batch"}, r"'nope' is not a basis layer"),
                       ({"shared_basis": "fast"}, r"basis layer 'shared_basis'.*'fast'")):
        with pytest.raises(ValueError, match=match):
            export_tflite(model, None, split_mode=bad, return_content=True)


# ----------------------------------------------------- keras.applications
APPLICATIONS = {
    # family: (constructor name, input size)
    "resnet": ("ResNet50", 32),
    "resnet_v2": ("ResNet50V2", 32),
    "vgg": ("VGG16", 32),
    "mobilenet": ("MobileNet", 32),
    "mobilenet_v2": ("MobileNetV2", 32),
    "mobilenet_v3": ("MobileNetV3Small", 32),
    "densenet": ("DenseNet121", 32),
    "efficientnet": ("EfficientNetB0", 32),
    "efficientnet_v2": ("EfficientNetV2B0", 32),
    "inception_v3": ("InceptionV3", 75),
    "inception_resnet_v2": ("InceptionResNetV2", 75),
    "xception": ("Xception", 71),
    "nasnet": ("NASNetMobile", 32),
    "convnext": ("ConvNeXtTiny", 32),
}


@pytest.mark.slow
@pytest.mark.parametrize("family", sorted(APPLICATIONS))
def test_compressed_applications_export(family, tmp_path):
    """compress() output of every keras.applications CNN family exports: float32
    equal to Keras within 1e-4, int8 builtin-only with every conv in int8."""
    name, size = APPLICATIONS[family]
    keras.utils.set_random_seed(0)
    kwargs = {"weights": None, "input_shape": (size, size, 3), "classes": 10}
    if name.startswith(("MobileNetV3", "EfficientNetV2", "ConvNeXt")):
        kwargs["include_preprocessing"] = False
    model = getattr(keras.applications, name)(classifier_activation=None, **kwargs)
    small = keras_basis.compress(model, ratio=0.5, objective="params")
    assert keras_basis.basis_pairs(small), "nothing compressed"
    x = np.random.default_rng(0).uniform(-1, 1, (2, size, size, 3)).astype("float32")
    f32 = export_tflite(small, tmp_path / "f32.tflite")
    err = kt.compare_with_keras(small, f32, x)
    assert err["max_rel_error"] < 1e-4, err
    _builtin_only(f32)
    calib = np.random.default_rng(1).uniform(-1, 1, (8, size, size, 3)).astype("float32")
    q = export_tflite(small, tmp_path / "int8.tflite", quantize="int8",
                      representative_dataset=calib)
    for op in _builtin_only(q):
        if op["op"] in CONV_OPS:
            assert op["inputs"][0]["dtype"] == "INT8" and op["inputs"][1]["dtype"] == "INT8", op


# ------------------------------------------------------- mixed precision
def _policy_net(policy):
    """The same small CNN under a dtype policy (weights set by the caller)."""
    old = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        x = keras.Input((12, 12, 3))
        y = keras.layers.Conv2D(16, 3, padding="same", name="c1")(x)
        y = keras.layers.BatchNormalization(name="bn")(y)
        y = keras.layers.ReLU()(y)
        y = keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu",
                                name="c2")(y)
        y = keras.layers.GlobalAveragePooling2D()(y)
        y = keras.layers.Dense(10, name="head")(y)
        y = keras.layers.Activation("softmax", dtype="float32")(y)
        return keras.Model(x, y, name=f"net_{policy}")
    finally:
        keras.mixed_precision.set_global_policy(old)


def test_mixed_float16_models_export_as_float32(tmp_path):
    """Mixed-precision models (original and compressed) export; the file computes
    what the float32 model with the same weights computes."""
    keras.utils.set_random_seed(0)
    f32 = _policy_net("float32")
    mixed = _policy_net("mixed_float16")
    mixed.set_weights(f32.get_weights())
    assert mixed.get_layer("c1").compute_dtype == "float16"
    x = _inputs(n=4, size=12, channels=3)
    pairs = [(mixed, f32),
             (keras_basis.compress(mixed, num_basis=5, verbose=0),
              keras_basis.compress(f32, num_basis=5, verbose=0))]
    for i, (model, reference) in enumerate(pairs):
        path = export_tflite(model, tmp_path / f"m{i}.tflite")
        dtypes = {t["dtype"] for op in kt.tflite_ops(path) for t in op["inputs"] + op["outputs"]}
        assert "FLOAT16" not in dtypes, dtypes
        y = kt.run_tflite(path, x)
        np.testing.assert_allclose(y, keras.ops.convert_to_numpy(reference(x)), rtol=1e-5,
                                   atol=1e-6)
        assert model.get_layer("c1").compute_dtype == "float16"  # caller's model untouched


def test_path_none_returns_the_bytes_and_writes_nothing(tmp_path, monkeypatch):
    x = keras.Input((6, 6, 3))
    model = keras.Model(x, keras.layers.Conv2D(4, 3)(x))
    monkeypatch.chdir(tmp_path)
    path, content = keras_basis.export_tflite(model, None, return_content=True)
    written = keras_basis.export_tflite(model, tmp_path / "m.tflite")
    assert path is None and content == written.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.tflite"]
    with pytest.raises(TypeError, match=r"None is allowed only with return_content=True"):
        keras_basis.export_tflite(model, None)


def test_shrink_option_keeps_outputs_and_saves_bytes(model_and_data):
    """shrink=False keeps the converter's bytes; the default file computes the same."""
    model, x, calib = model_and_data
    for quantize in (None, "int8"):
        files = [export_tflite(model, None, quantize=quantize, representative_dataset=calib,
                               shrink=shrink, return_content=True)[1]
                 for shrink in (True, False)]
        assert len(files[0]) < len(files[1])
        np.testing.assert_array_equal(kt.run_tflite(files[0], x), kt.run_tflite(files[1], x))
