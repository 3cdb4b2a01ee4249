"""BasisBias (per-site basis bias) and basis biases through basis_pairs / decompress."""

import keras
import numpy as np
import pytest

import keras_basis
from tests.reference import conv2d_nhwc


def _set_random(model, seed=0):
    rng = np.random.default_rng(seed)
    for w in model.weights:
        w.assign(rng.normal(0, 0.3, w.shape).astype("float32"))


def _shared_model(basis_use_bias=False):
    x = keras.Input((9, 10, 8))
    basis = keras_basis.BasisConv2D(3, 3, splits=2, padding="same", use_bias=basis_use_bias,
                                    name="basis")
    y = keras_basis.BasisBias(3, name="b1")(basis(x))
    y = keras.layers.Conv2D(8, 1, name="coef1")(y)
    z = keras_basis.BasisBias(3, name="b2")(basis(keras.layers.ReLU()(y)))
    z = keras.layers.Conv2D(5, 1, use_bias=False, name="coef2")(z)
    model = keras.Model(x, z)
    _set_random(model)
    return model


def test_basis_bias_adds_m_biases_split_major():
    x = np.random.default_rng(1).normal(size=(2, 4, 4, 6)).astype("float32")
    layer = keras_basis.BasisBias(3)
    y = layer(x)
    b = keras.ops.convert_to_numpy(layer.bias)
    assert layer.bias.shape == (3,)
    layer.bias.assign(np.array([1.0, -2.0, 0.5], "float32"))
    y = keras.ops.convert_to_numpy(layer(x))
    np.testing.assert_allclose(y - x, np.broadcast_to([1, -2, 0.5, 1, -2, 0.5], x.shape),
                               atol=1e-6)
    assert b.tolist() == [0.0, 0.0, 0.0]  # zeros by default


@pytest.mark.parametrize("arg", [0, 2.0, True, None])
def test_basis_bias_rejects_bad_num_basis(arg):
    with pytest.raises(ValueError, match=r"argument `num_basis` .* Received num_basis="):
        keras_basis.BasisBias(arg, name="bb")


def test_basis_bias_needs_a_multiple_of_m_channels():
    with pytest.raises(ValueError, match=r"Layer 'bb' has num_basis=4.*multiple of 4"):
        keras_basis.BasisBias(4, name="bb")(keras.Input((4, 4, 6)))


@pytest.mark.parametrize("basis_use_bias", [False, True])
def test_pairs_and_decompress_through_basis_bias(basis_use_bias):
    model = _shared_model(basis_use_bias)
    pairs = keras_basis.basis_pairs(model)
    assert [(p.name, p.bias_layer.name) for p in pairs] == [("coef1", "b1"), ("coef2", "b2")]
    assert pairs[0].shared_with == ("coef2",)
    x = np.random.default_rng(2).normal(size=(2, 9, 10, 8)).astype("float32")
    dense = keras_basis.decompress(model)
    assert not any(isinstance(ly, (keras_basis.BasisConv2D, keras_basis.BasisBias))
                   for ly in dense.layers)
    np.testing.assert_allclose(dense.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-4, atol=1e-4)
    # Independent reference for the first site: conv with the pair's kernel + its bias.
    w, b = pairs[0].kernel(), pairs[0].bias()
    ref = conv2d_nhwc(x, w, padding="same") + b
    sub = keras.Model(model.input, model.get_layer("coef1").output)
    np.testing.assert_allclose(sub.predict(x, verbose=0), ref, rtol=1e-4, atol=1e-4)
    assert dense.get_layer("coef2").use_bias  # basis biases pass through the coefficients


def test_decompress_one_site_keeps_the_other_pair():
    model = _shared_model()
    part = keras_basis.decompress(model, layers=["coef1"])
    assert [p.name for p in keras_basis.basis_pairs(part)] == ["coef2"]
    x = np.random.default_rng(3).normal(size=(1, 9, 10, 8)).astype("float32")
    np.testing.assert_allclose(part.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-4, atol=1e-4)


def test_sequential_pair_with_basis_bias(tmp_path):
    model = keras.Sequential([
        keras.Input((6, 6, 4)),
        keras_basis.BasisConv2D(5, 3, splits=1, padding="valid", name="basis"),
        keras_basis.BasisBias(5, name="bb"),
        keras.layers.Conv2D(7, 1, name="coef"),
    ])
    _set_random(model, 4)
    [pair] = keras_basis.basis_pairs(model)
    assert pair.bias_layer is model.get_layer("bb")
    x = np.random.default_rng(5).normal(size=(2, 6, 6, 4)).astype("float32")
    dense = keras_basis.decompress(model)
    assert [type(ly).__name__ for ly in dense.layers] == ["Conv2D"]
    np.testing.assert_allclose(dense.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-4, atol=1e-4)
    path = tmp_path / "m.keras"
    model.save(path)
    again = keras.models.load_model(path)
    np.testing.assert_allclose(again.predict(x, verbose=0), model.predict(x, verbose=0),
                               atol=1e-6)
    assert again.get_layer("bb").get_config()["num_basis"] == 5
