"""compress() on every CNN family of keras.applications (slow: run with -m slow)."""

import keras
import numpy as np
import pytest

import keras_basis

ALL = 10**6

# (constructor, input size): the smallest member of each family exported by
# keras.applications (Keras 3.15: no RegNet/ResNetRS there), at the smallest
# input it accepts, weights=None.
FAMILIES = [
    ("ConvNeXtTiny", 32),
    ("DenseNet121", 32),
    ("EfficientNetB0", 32),
    ("EfficientNetV2B0", 32),
    ("InceptionResNetV2", 75),
    ("InceptionV3", 75),
    ("MobileNet", 32),
    ("MobileNetV2", 32),
    ("MobileNetV3Small", 32),
    ("NASNetMobile", 32),
    ("ResNet50", 32),
    ("ResNet50V2", 32),
    ("VGG16", 32),
    ("Xception", 71),
]


def build(name, size):
    ctor = getattr(keras.applications, name)
    # logits (no softmax): untrained networks give near-uniform probabilities,
    # which would hide differences
    kwargs = dict(input_shape=(size, size, 3), weights=None, classes=7,
                  classifier_activation=None)
    if name.startswith(("MobileNetV3", "EfficientNetV2", "ConvNeXt")):
        kwargs["include_preprocessing"] = False
    model = ctor(**kwargs)
    # no randomness in training mode (outputs are compared with training=True);
    # compress() copies the layer configs, so the copies get rate 0 too
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.Dropout):
            layer.rate = 0.0
        if hasattr(layer, "drop_connect_rate"):
            layer.drop_connect_rate = 0.0
    return model


@pytest.mark.slow
@pytest.mark.parametrize("name, size", FAMILIES)
def test_application_family(name, size, tmp_path):
    model = build(name, size)
    x = np.random.default_rng(0).uniform(-1, 1, (4, size, size, 3)).astype("float32")
    # training=True: BatchNorm normalises with batch statistics; with the
    # initial moving statistics the activations of an untrained network vanish
    # and an inference-mode comparison would prove nothing.
    ref = keras.ops.convert_to_numpy(model(x, training=True))
    assert np.abs(ref).max() > 1e-5, np.abs(ref).max()
    weights = [w.copy() for w in model.get_weights()]

    exact = keras_basis.compress(model, num_basis=ALL, layers=lambda layer: True, verbose=0)
    # Layer by layer, the full-rank pair is the original kernel (to float32 rounding)...
    pairs = keras_basis.basis_pairs(exact)
    assert pairs, name
    originals = {layer.name: layer for layer in
                 model._flatten_layers(include_self=False, recursive=True)}
    for pair in pairs:
        w = keras.ops.convert_to_numpy(originals[pair.name].kernel)
        np.testing.assert_allclose(pair.kernel(), w, rtol=0, atol=1e-5 * np.abs(w).max(),
                                   err_msg=f"{name}/{pair.name}")
    # ... and end to end the outputs agree. Training-mode BatchNorm (batch of 4)
    # amplifies float32 rounding through 50-100 layers: ~0.5% of the output scale
    # was measured for ResNet50 and InceptionV3, hence 2%.
    out = keras.ops.convert_to_numpy(exact(x, training=True))
    np.testing.assert_allclose(out, ref, atol=2e-2 * np.abs(ref).max())
    del exact

    half = keras_basis.compress(model, ratio=0.5, objective="params", verbose=0)
    rep = keras_basis.report(half, print_fn=None)
    assert rep.rows, name
    assert 0.4 <= rep.totals["params_ratio"] <= 0.5, rep.totals
    for w0, w1 in zip(weights, model.get_weights()):  # original untouched
        np.testing.assert_array_equal(w0, w1)

    half.compile(keras.optimizers.SGD(1e-3),
                 keras.losses.CategoricalCrossentropy(from_logits=True))
    loss = half.train_on_batch(x, np.eye(7, dtype="float32")[[0, 1, 2, 3]])
    assert np.isfinite(loss)
    path = tmp_path / "half.keras"
    half.save(path)
    back = keras.saving.load_model(path)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(back(x, training=False)),
                               keras.ops.convert_to_numpy(half(x, training=False)),
                               rtol=1e-5, atol=1e-6)
    dense = keras_basis.decompress(half)
    assert not keras_basis.basis_pairs(dense)
    folded = {layer.name: layer for layer in
              dense._flatten_layers(include_self=False, recursive=True)}
    for pair in keras_basis.basis_pairs(half):  # each fold is the pair's exact kernel
        w = pair.kernel()
        np.testing.assert_allclose(keras.ops.convert_to_numpy(folded[pair.name].kernel), w,
                                   rtol=0, atol=1e-6 * np.abs(w).max(),
                                   err_msg=f"{name}/{pair.name}")
    # end to end in training mode (normalised activations; inference-mode outputs of
    # these untrained networks reach 1e5 and only float32 rounding differs there)
    out_half = keras.ops.convert_to_numpy(half(x, training=True))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(dense(x, training=True)), out_half,
                               atol=2e-2 * np.abs(out_half).max())


@pytest.mark.slow
def test_resnet50_tflite_and_stage_sharing():
    tf = pytest.importorskip("tensorflow")
    interp_mod = pytest.importorskip("ai_edge_litert.interpreter")
    model = build("ResNet50", 32)
    small = keras_basis.compress(model, ratio=0.5, share="stage", objective="params",
                                 verbose=0)
    pairs = keras_basis.basis_pairs(small)
    assert any(p.shared_with for p in pairs)
    blob = tf.lite.TFLiteConverter.from_keras_model(small).convert()
    interp = interp_mod.Interpreter(model_content=blob)
    interp.allocate_tensors()
    x = np.random.default_rng(0).uniform(-1, 1, (1, 32, 32, 3)).astype("float32")
    interp.set_tensor(interp.get_input_details()[0]["index"], x)
    interp.invoke()
    out = interp.get_tensor(interp.get_output_details()[0]["index"])
    np.testing.assert_allclose(out, keras.ops.convert_to_numpy(small(x)), atol=1e-4)
