"""tfmot bridge checks. Run ONLY in a child process (see tests/test_tfmot.py).

These import tensorflow_model_optimization and tf_keras, which the Keras 3 test
process must never import; pytest's default collection (``test_*.py``) skips
this file, and tests/test_tfmot.py runs it with ``-o python_files=cases_*.py``.
"""

import os
import sys

import numpy as np
import pytest

ENV = "TF_USE_LEGACY_KERAS"
assert ENV not in os.environ, "the child must start without TF_USE_LEGACY_KERAS"

import keras  # noqa: E402

import keras_basis  # noqa: E402
import keras_basis.tfmot as kbt  # noqa: E402
from keras_basis import maths  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import tensorflow as tf  # noqa: E402  (after keras_basis.tfmot: environment restored)
import tf_keras  # noqa: E402
from reference import conv2d_nhwc  # noqa: E402


def _litert(content, delegates=True):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = (
        OpResolverType.AUTO if delegates else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    )
    interp = Interpreter(model_content=content, experimental_op_resolver_type=resolver)
    interp.allocate_tensors()
    return interp


def _run_tflite(content, x):
    interp = _litert(content)
    inp = interp.get_input_details()[0]
    out = interp.get_output_details()[0]
    ys = []
    for sample in x:
        interp.set_tensor(inp["index"], sample[None].astype(inp["dtype"]))
        interp.invoke()
        ys.append(interp.get_tensor(out["index"])[0])
    return np.stack(ys)


def _ops(content):
    """[(op name, [input dtypes])] of a TFLite flatbuffer."""
    interp = _litert(content, delegates=False)  # XNNPACK would hide ops in DELEGATE
    out = []
    for op in interp._get_ops_details():
        dtypes = [
            interp._get_tensor_details(i, 0)["dtype"].__name__ for i in op["inputs"] if i >= 0
        ]
        out.append((op["op_name"], dtypes))
    return out


def _randomise(model, seed=0):
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        for w in layer.weights:
            value = rng.normal(0, 0.3, w.shape)
            if "variance" in w.path:
                value = np.abs(value) + 0.5
            w.assign(value.astype("float32"))


def _keras3_basis_net(input_shape=(12, 12, 4), classes=3):
    """Functional Keras 3 model: shared basis with a stride-2 call site, Add, concat, BN."""
    x = keras.Input(input_shape, name="image")
    shared = keras_basis.BasisConv2D(3, 3, splits=2, padding="same", name="shared_basis")
    y = shared(x)
    y = keras.layers.Conv2D(4, 1, name="coef_a")(y)
    y = keras.layers.BatchNormalization(name="bn_a")(y)
    y = keras.layers.ReLU()(y)
    z = shared(y, strides=2)
    z = keras.layers.Conv2D(4, 1, name="coef_b")(z)
    skip = keras.layers.Conv2D(4, 1, strides=2, name="skip")(y)
    z = keras.layers.Add()([z, skip])
    z = keras.layers.Concatenate()([z, skip])
    z = keras_basis.BasisConv2D(2, 3, depth=16, name="sliced_basis")(z)  # 8 < 16 channels
    z = keras.layers.Conv2D(6, 1, name="coef_c")(z)
    z = keras.layers.GlobalAveragePooling2D()(z)
    out = keras.layers.Dense(classes, name="head")(z)
    return keras.Model(x, out, name="k3net")


def _twin_net(input_shape=(16, 16, 3), classes=4, seed=0):
    """A small tf_keras basis CNN built directly with the twin layer."""
    tf_keras.utils.set_random_seed(seed)
    x = tf_keras.Input(input_shape)
    y = tf_keras.layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    y = kbt.BasisConv2D(6, 3, splits=2, padding="same")(y)
    y = tf_keras.layers.Conv2D(16, 1)(y)
    y = tf_keras.layers.BatchNormalization()(y)
    y = tf_keras.layers.ReLU()(y)
    y = tf_keras.layers.MaxPooling2D()(y)
    y = kbt.BasisConv2D(8, 3, splits=4, padding="same")(y)
    y = tf_keras.layers.Conv2D(16, 1, activation="relu")(y)
    y = tf_keras.layers.GlobalAveragePooling2D()(y)
    out = tf_keras.layers.Dense(classes)(y)
    return tf_keras.Model(x, out)


def _toy_data(n=256, size=16, classes=4, seed=0):
    """Learnable synthetic task: the class is the quadrant holding a bright blob."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 0.3, (n, size, size, 3)).astype("float32")
    y = rng.integers(0, classes, n)
    h = size // 2
    for i, c in enumerate(y):
        r, q = divmod(int(c), 2)
        x[i, r * h + 2 : r * h + h - 2, q * h + 2 : q * h + h - 2, :] += 1.5
    return x, y


def _compile(model, lr=3e-3):
    model.compile(
        tf_keras.optimizers.Adam(lr),
        tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )


def _trained_twin():
    x, y = _toy_data()
    model = _twin_net()
    _compile(model)
    model.fit(x, y, epochs=4, batch_size=32, verbose=0)
    return model, x, y


@pytest.fixture(scope="module")
def trained():
    return _trained_twin()


# ------------------------------------------------------------------ isolation
def test_import_restores_environment_and_keeps_keras3():
    assert ENV not in os.environ
    assert keras.__version__.startswith("3.")
    assert tf.keras.layers.Dense is keras.layers.Dense  # tf.keras is still Keras 3
    assert tf.keras.version().startswith("3.")
    assert tf_keras.__version__.startswith("2.")
    assert isinstance(keras_basis.BasisConv2D(2, 3), keras.layers.Layer)


# ----------------------------------------------------------------- twin layer
@pytest.mark.parametrize(
    "c, kwargs, call",
    [
        (6, dict(splits=3, padding="same"), {}),
        (6, dict(splits=1), {"strides": 2}),
        (4, dict(depth=6, padding="same", dilation_rate=2), {}),  # sliced: 4 < 6
        (8, dict(splits=2, use_bias=True, strides=2, padding="same"), {"padding": "valid"}),
    ],
)
def test_twin_matches_numpy_reference(c, kwargs, call):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 9, 9, c)).astype("float32")
    layer = kbt.BasisConv2D(3, 3, **kwargs)
    y_basis = layer(x, **call).numpy()
    basis = layer.basis.numpy()
    s, p = (c // layer.depth, layer.depth) if c % layer.depth == 0 else (1, c)
    coef = rng.normal(size=(s * 3, 5))
    want_kernel = maths.reconstruct(basis[:, :, :p, :], coef)  # (3, 3, c, 5)
    strides = call.get("strides", layer.strides)
    strides = (strides, strides) if isinstance(strides, int) else strides
    padding = call.get("padding", layer.padding)
    bias_term = 0.0
    if layer.use_bias:
        layer.bias.assign(rng.normal(size=3).astype("float32"))
        y_basis = layer(x, **call).numpy()
        bias_term = np.tile(layer.bias.numpy(), s) @ coef
    want = conv2d_nhwc(x, want_kernel, strides, padding, layer.dilation_rate) + bias_term
    got = np.einsum("nhwk,ko->nhwo", y_basis, coef)
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_twin_config_round_trip_and_keras3_equality():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 8, 8, 6)).astype("float32")
    k3 = keras_basis.BasisConv2D(4, 3, splits=2, padding="same", use_bias=True)
    k3.build(x.shape)
    _randomise(keras.Sequential([keras.Input(x.shape[1:]), k3]))
    twin = kbt.BasisConv2D.from_config(kbt.BasisConv2D(4, 3, splits=2, padding="same",
                                                       use_bias=True).get_config())
    twin.build(x.shape)
    twin.set_weights(k3.get_weights())
    np.testing.assert_allclose(twin(x).numpy(), k3(x).numpy(), atol=1e-5)
    assert twin.get_prunable_weights() == [twin.basis]
    assert twin.get_clusterable_weights() == [("basis", twin.basis)]


def test_twin_config_is_the_same_before_and_after_build():
    twin = kbt.BasisConv2D(4, 3, splits=2, padding="same", name="t")
    before = twin.get_config()
    assert twin.depth is None
    twin.build((None, 8, 8, 6))
    assert twin.get_config() == before and (before["splits"], before["depth"]) == (2, None)
    assert twin.depth == 3 and tuple(twin.basis.shape) == (3, 3, 3, 4)
    k3 = keras_basis.BasisConv2D(4, 3, splits=2, padding="same", name="t")
    shared = {"num_basis", "kernel_size", "splits", "depth", "strides", "padding",
              "dilation_rate", "data_format", "use_bias"}
    assert {k: before[k] for k in shared} == {k: k3.get_config()[k] for k in shared}


@pytest.mark.parametrize("narrow_inputs", ["slice", "pad"])
def test_twin_narrow_inputs_modes_agree(narrow_inputs):
    rng = np.random.default_rng(4)
    x = rng.normal(size=(2, 7, 7, 4)).astype("float32")
    layer = kbt.BasisConv2D(3, 3, depth=6, padding="same", narrow_inputs=narrow_inputs)
    y = layer(x).numpy()
    basis = layer.basis.numpy()
    assert basis.shape == (3, 3, 6, 3)
    np.testing.assert_allclose(y, conv2d_nhwc(x, basis[:, :, :4], padding="same"), atol=1e-4)
    assert layer.get_config().get("narrow_inputs", "slice") == narrow_inputs


def test_twin_rejects_bad_arguments():
    with pytest.raises(ValueError, match="argument `num_basis` of layer 'b'.*Received num_basis=0"):
        kbt.BasisConv2D(0, 3, name="b")
    with pytest.raises(ValueError, match="`padding` of layer 'b'.*Received padding='full'"):
        kbt.BasisConv2D(2, 3, padding="full", name="b")
    with pytest.raises(ValueError, match="`splits` of layer 'b'.*c=6. Received splits=4"):
        kbt.BasisConv2D(2, 3, splits=4, name="b").build((None, 8, 8, 6))


# ----------------------------------------------------------------- to_tf_keras
def test_to_tf_keras_functional_same_weights_and_outputs():
    model = _keras3_basis_net()
    _randomise(model)
    before = [w.copy() for w in model.get_weights()]
    n_layers = len(model.layers)
    twin = kbt.to_tf_keras(model)
    assert isinstance(twin, tf_keras.Model)
    assert sum(isinstance(layer, kbt.BasisConv2D) for layer in twin.layers) == 2
    shared = twin.get_layer("shared_basis")
    assert len(shared._inbound_nodes) == 2  # still one shared basis, two call sites
    x = np.random.default_rng(3).normal(size=(4, 12, 12, 4)).astype("float32")
    np.testing.assert_allclose(twin(x).numpy(), model(x).numpy(), atol=1e-5)
    for a, b in zip(twin.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    # the Keras 3 model is untouched
    assert len(model.layers) == n_layers
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_to_tf_keras_sequential_and_ops():
    model = keras.Sequential(
        [
            keras.Input((10, 10, 4)),
            keras_basis.BasisConv2D(3, 3, splits=4, padding="same"),
            keras.layers.Conv2D(5, 1, activation="relu", kernel_regularizer="l2"),
            keras.layers.Flatten(),
            keras.layers.Dropout(0.1),
            keras.layers.Dense(3),
        ]
    )
    _randomise(model, seed=4)
    twin = kbt.to_tf_keras(model)
    assert isinstance(twin, tf_keras.Sequential)
    assert twin.layers[1].kernel_regularizer is not None
    x = np.random.default_rng(5).normal(size=(3, 10, 10, 4)).astype("float32")
    np.testing.assert_allclose(twin(x).numpy(), model(x).numpy(), atol=1e-5)

    inp = keras.Input((6, 6, 2))
    a = keras.layers.Conv2D(2, 1)(inp)
    out = a + inp  # a bare Keras 3 op in the graph
    twin2 = kbt.to_tf_keras(keras.Model(inp, out))
    assert any(isinstance(layer, tf_keras.layers.Add) for layer in twin2.layers)


def test_to_tf_keras_errors():
    with pytest.raises(TypeError, match="`model` must be a Keras 3 `keras.Model`.*list"):
        kbt.to_tf_keras([1])
    twin = _twin_net()
    with pytest.raises(TypeError, match="already a tf_keras model"):
        kbt.to_tf_keras(twin)
    inp = keras.Input((4, 4, 2))
    lam = keras.layers.Lambda(lambda t: t * 2, name="double")(inp)
    with pytest.raises(TypeError, match="layer 'double' of type .*Lambda has no tf_keras twin"):
        kbt.to_tf_keras(keras.Model(inp, lam))


@pytest.mark.parametrize(
    "fn",
    [
        kbt.quantize_basis_model,
        kbt.prune_coefficients,
        kbt.cluster_basis_model,
        kbt.strip_pruning,
        kbt.strip_clustering,
        kbt.export_tflite,
        kbt.coefficient_layers,
    ],
)
def test_keras3_model_rejected_with_advice(fn):
    model = keras.Sequential([keras.Input((4, 4, 2)), keras.layers.Conv2D(2, 1)], name="k3")
    with pytest.raises(
        TypeError,
        match=rf"{fn.__name__}: argument `model` is a Keras 3 model \('k3'\).*tf_keras "
        r"\(Keras 2\).*keras_basis.tfmot.to_tf_keras\(model\)",
    ):
        fn(model)
    with pytest.raises(TypeError, match=rf"{fn.__name__}: argument `model` must be a "
                       "tf_keras.Model. Received an object of type str"):
        fn("model.keras")


def test_helper_argument_errors():
    twin = _twin_net()
    with pytest.raises(ValueError, match=r"`sparsity` must be in \[0, 1\). Received sparsity=1.5"):
        kbt.prune_coefficients(twin, sparsity=1.5)
    with pytest.raises(ValueError, match="`number_of_clusters` must be >= 2. Received "
                       "number_of_clusters=1"):
        kbt.cluster_basis_model(twin, number_of_clusters=1)
    with pytest.raises(ValueError, match="`centroids_init` must be one of"):
        kbt.cluster_basis_model(twin, centroids_init="kmeans")
    with pytest.raises(ValueError, match="needs argument `representative_data`"):
        kbt.export_tflite(twin, int8=True)
    plain = tf_keras.Sequential([tf_keras.Input((4, 4, 2)), tf_keras.layers.Conv2D(2, 1)])
    with pytest.raises(ValueError, match="has no coefficient layer"):
        kbt.prune_coefficients(plain)
    pruned = kbt.prune_coefficients(twin)
    with pytest.raises(ValueError, match="still has pruning/clustering wrappers.*strip_pruning"):
        kbt.export_tflite(pruned)


def test_coefficient_layers():
    twin = _twin_net()
    names = kbt.coefficient_layers(twin)
    assert len(names) == 2
    for name in names:
        layer = twin.get_layer(name)
        assert tuple(layer.kernel_size) == (1, 1)
        assert isinstance(layer._inbound_nodes[0].inbound_layers, kbt.BasisConv2D)


# ------------------------------------------------------------------------ QAT
def test_qat_gives_all_int8_tflite(trained, tmp_path):
    model, x, y = trained
    before = [w.copy() for w in model.get_weights()]
    qat = kbt.quantize_basis_model(model)
    _compile(qat, lr=1e-3)
    qat.fit(x[:128], y[:128], epochs=1, batch_size=32, verbose=0)
    path = tmp_path / "qat.tflite"
    content = kbt.export_tflite(qat, path)
    assert path.read_bytes() == content
    ops = _ops(content)
    convs = [dtypes for name, dtypes in ops if name == "CONV_2D"]
    assert len(convs) == 5  # stem + 2 basis + 2 coefficient convs
    for dtypes in convs:
        assert dtypes[:2] == ["int8", "int8"], ops
    # only the boundary converts float: no float island inside the graph
    float_ops = [n for n, d in ops if "float32" in d and n != "QUANTIZE"]
    assert float_ops == [], ops
    assert [n for n, _ in ops].count("QUANTIZE") == 1
    # TFLite int8 agrees with the fake-quant Keras model on the predicted class
    got = _run_tflite(content, x[:64])
    want = qat(x[:64], training=False).numpy()
    assert np.mean(got.argmax(1) == want.argmax(1)) >= 0.95
    np.testing.assert_allclose(got, want, atol=0.25 * np.abs(want).max())
    # the user's model is untouched
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_qat_from_keras3_route_shared_basis():
    model = _keras3_basis_net()
    _randomise(model, seed=6)
    qat = kbt.quantize_basis_model(kbt.to_tf_keras(model))
    x = np.random.default_rng(7).normal(size=(16, 12, 12, 4)).astype("float32")
    qat(x, training=True)  # calibrate the ranges once
    ops = _ops(kbt.export_tflite(qat))
    convs = [d for n, d in ops if n == "CONV_2D"]
    assert len(convs) == 7  # shared basis at two sites, sliced basis, 4 1x1
    assert all(d[:2] == ["int8", "int8"] for d in convs), ops
    assert [n for n, d in ops if "float32" in d and n != "QUANTIZE"] == [], ops


# -------------------------------------------------------------------- pruning
def test_prune_train_strip_export(trained):
    model, x, y = trained
    before = [w.copy() for w in model.get_weights()]
    pruned = kbt.prune_coefficients(model, sparsity=0.75, frequency=1)
    _compile(pruned, lr=1e-3)
    pruned.fit(x[:128], y[:128], epochs=1, batch_size=32, verbose=0,
               callbacks=[kbt.UpdatePruningStep()])
    final = kbt.strip_pruning(pruned)
    names = kbt.coefficient_layers(final)
    assert len(names) == 2
    for name in names:
        kernel = final.get_layer(name).kernel.numpy()
        assert np.sum(kernel == 0) == round(0.75 * kernel.size), name
    for layer in final.layers:
        if isinstance(layer, kbt.BasisConv2D):
            assert np.count_nonzero(layer.basis.numpy() == 0) == 0  # basis not pruned
    content = kbt.export_tflite(final)
    np.testing.assert_allclose(
        _run_tflite(content, x[:8]), final(x[:8], training=False).numpy(), atol=1e-4
    )
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


# ----------------------------------------------------------------- clustering
def test_cluster_train_strip_export(trained):
    model, x, y = trained
    clustered = kbt.cluster_basis_model(model, number_of_clusters=8)
    _compile(clustered, lr=1e-3)
    clustered.fit(x[:128], y[:128], epochs=1, batch_size=32, verbose=0)
    final = kbt.strip_clustering(clustered)
    basis_layers = [layer for layer in final.layers if isinstance(layer, kbt.BasisConv2D)]
    tensors = [layer.basis.numpy() for layer in basis_layers]
    tensors += [final.get_layer(n).kernel.numpy() for n in kbt.coefficient_layers(final)]
    assert len(tensors) == 4
    for t in tensors:
        assert len(np.unique(t)) == 8
    # strip kept the clustered values (the twin's build calls the parent's)
    np.testing.assert_allclose(
        final(x[:16], training=False).numpy(), clustered(x[:16], training=False).numpy(), atol=1e-4
    )
    content = kbt.export_tflite(final)
    np.testing.assert_allclose(
        _run_tflite(content, x[:8]), final(x[:8], training=False).numpy(), atol=1e-4
    )


def test_prune_then_cluster_preserves_sparsity(trained):
    model, x, y = trained
    pruned = kbt.prune_coefficients(model, sparsity=0.5, frequency=1)
    _compile(pruned, lr=1e-3)
    pruned.fit(x[:64], y[:64], epochs=1, batch_size=32, verbose=0,
               callbacks=[kbt.UpdatePruningStep()])
    stripped = kbt.strip_pruning(pruned)
    clustered = kbt.cluster_basis_model(
        stripped, number_of_clusters=4, include_basis=False, preserve_sparsity=True
    )
    _compile(clustered, lr=1e-3)
    clustered.fit(x[:64], y[:64], epochs=1, batch_size=32, verbose=0)
    final = kbt.strip_clustering(clustered)
    for name in kbt.coefficient_layers(final):
        kernel = final.get_layer(name).kernel.numpy()
        assert np.sum(kernel == 0) >= round(0.5 * kernel.size)
        assert len(np.unique(kernel)) <= 4 + 1  # 4 clusters, plus the preserved zero


def test_shared_basis_cluster_and_prune_from_keras3():
    model = _keras3_basis_net()
    _randomise(model, seed=8)
    twin = kbt.to_tf_keras(model)
    assert kbt.coefficient_layers(twin) == ["coef_a", "coef_b", "coef_c"]
    rng = np.random.default_rng(9)
    x = rng.normal(size=(32, 12, 12, 4)).astype("float32")
    y = rng.integers(0, 3, 32)
    clustered = kbt.cluster_basis_model(twin, number_of_clusters=4)
    _compile(clustered)
    clustered.fit(x, y, epochs=1, batch_size=16, verbose=0)
    final = kbt.strip_clustering(clustered)
    bases = [layer.basis.numpy() for layer in final.layers if isinstance(layer, kbt.BasisConv2D)]
    assert [len(np.unique(b)) for b in bases] == [4, 4]  # shared basis clustered once
    np.testing.assert_allclose(
        final(x).numpy(), clustered(x, training=False).numpy(), atol=1e-5
    )
    pruned = kbt.prune_coefficients(twin, sparsity=0.5, frequency=1, include_basis=True)
    _compile(pruned)
    pruned.fit(x, y, epochs=1, batch_size=16, verbose=0, callbacks=[kbt.UpdatePruningStep()])
    final = kbt.strip_pruning(pruned)
    names = ["shared_basis", "sliced_basis", "coef_a", "coef_b", "coef_c"]
    for name in names:
        kernel = final.get_layer(name).get_weights()[0]
        assert np.sum(kernel == 0) == round(0.5 * kernel.size), name


# ------------------------------------------------------------ real data (slow)
def _cifar_subset(tar_path, per_class_train, per_class_test):
    import io
    import tarfile

    from PIL import Image

    classes = sorted(
        "airplane automobile bird cat deer dog frog horse ship truck".split()
    )
    want = {"train": per_class_train, "test": per_class_test}
    data = {k: ([], []) for k in want}
    with tarfile.open(tar_path, "r:gz") as tar:
        for member in tar:
            parts = member.name.split("/")
            if not member.isfile() or len(parts) != 4 or parts[1] not in want:
                continue
            if int(parts[3].split(".")[0]) >= want[parts[1]]:
                continue
            img = Image.open(io.BytesIO(tar.extractfile(member).read())).convert("RGB")
            data[parts[1]][0].append(np.asarray(img, np.float32) / 127.5 - 1.0)
            data[parts[1]][1].append(classes.index(parts[2]))
    return [np.stack(data[k][0]) if i == 0 else np.array(data[k][1])
            for k in ("train", "test") for i in (0, 1)]


def _tflite_accuracy(content, x, y):
    return float(np.mean(_run_tflite(content, x).argmax(1) == y))


@pytest.mark.slow
def test_qat_at_least_ptq_on_cifar10(shared_data):
    """Keras 3 CNN -> compress -> twin: QAT int8 accuracy >= PTQ int8 of the float basis
    model (both after the same one epoch of fine-tuning), CIFAR-10 JPEG copy subset."""
    x, y, xt, yt = _cifar_subset(shared_data / "cifar10-jpeg.tar.gz", 300, 100)
    keras.utils.set_random_seed(0)
    inp = keras.Input((32, 32, 3))
    h = inp
    for i, n in enumerate([16, 16, 32, 32]):
        if i == 2:
            h = keras.layers.MaxPooling2D()(h)
        h = keras.layers.Conv2D(n, 3, padding="same", use_bias=False)(h)
        h = keras.layers.BatchNormalization(momentum=0.9)(h)  # few steps: fast stats
        h = keras.layers.ReLU()(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    base = keras.Model(inp, keras.layers.Dense(10)(h))
    base.compile(
        keras.optimizers.Adam(2e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    base.fit(x, y, epochs=6, batch_size=64, verbose=0)
    small = kbt.to_tf_keras(keras_basis.compress(base, ratio=0.5, verbose=0))

    float_ft = tf_keras.models.clone_model(small)
    float_ft.set_weights(small.get_weights())
    _compile(float_ft, lr=5e-4)
    float_ft.fit(x, y, epochs=1, batch_size=64, verbose=0)
    ptq = _tflite_accuracy(kbt.export_tflite(float_ft, int8=True, representative_data=x), xt, yt)

    qat = kbt.quantize_basis_model(small)
    _compile(qat, lr=5e-4)
    qat.fit(x, y, epochs=1, batch_size=64, verbose=0)
    content = kbt.export_tflite(qat)
    convs = [d for n, d in _ops(content) if n == "CONV_2D"]
    assert convs and all(d[:2] == ["int8", "int8"] for d in convs)
    acc = _tflite_accuracy(content, xt, yt)
    print(f"CIFAR subset: PTQ int8 {ptq:.3f}, QAT int8 {acc:.3f}")
    assert acc > 0.25  # well above chance (0.1): a real task was learned
    assert acc >= ptq - 0.01, (acc, ptq)  # 1 point: noise of 1000 test images
