"""BasisConv2D (+ a stock 1x1 Conv2D) against NumPy convolutions of the reconstructed kernel."""

import os

import keras
import numpy as np
import pytest
from reference import conv2d_nhwc

from keras_basis import BasisConv2D, maths


def _pair_model(c, n, k, s, m, h=9, w=8, **geometry):
    x = keras.Input((h, w, c))
    basis = BasisConv2D(m, k, splits=s, name="conv_basis", **geometry)
    coef = keras.layers.Conv2D(n, 1, name="conv")
    model = keras.Model(x, coef(basis(x)))
    return model, basis, coef


def _reconstructed(basis, coef):
    return maths.reconstruct(
        keras.ops.convert_to_numpy(basis.basis), keras.ops.convert_to_numpy(coef.kernel)
    )


@pytest.mark.parametrize(
    "c,n,k,s,m,strides,padding,dilation",
    [
        (12, 10, 3, 3, 5, 1, "same", 1),
        (12, 10, 3, 4, 2, 2, "valid", 1),
        (8, 16, 3, 2, 6, 1, "valid", 2),
        (6, 4, (3, 1), 1, 3, (2, 1), "same", 1),
        (16, 8, 1, 4, 3, 1, "same", 1),
        (5, 7, 5, 5, 2, 2, "same", 1),
        (9, 9, 3, 9, 4, 1, "same", (1, 2)),
    ],
)
def test_pair_matches_numpy_conv_of_reconstructed_kernel(rng, c, n, k, s, m, strides,
                                                        padding, dilation):
    model, basis, coef = _pair_model(c, n, k, s, m, strides=strides, padding=padding,
                                     dilation_rate=dilation)
    coef.bias.assign(rng.standard_normal(n).astype("float32"))
    x = rng.standard_normal((2, 9, 8, c)).astype("float32")
    st = (strides, strides) if isinstance(strides, int) else strides
    dl = (dilation, dilation) if isinstance(dilation, int) else dilation
    ref = conv2d_nhwc(x, _reconstructed(basis, coef), st, padding, dl,
                      bias=keras.ops.convert_to_numpy(coef.bias))
    out = keras.ops.convert_to_numpy(model(x))
    assert out.shape == ref.shape
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)
    assert model.output_shape[1:] == ref.shape[1:]


def test_basis_output_is_split_major(rng):
    """Channel g*m + j of the basis output is split g convolved with basis filter j."""
    c, s, m = 6, 3, 2
    layer = BasisConv2D(m, 3, splits=s, padding="same")
    x = rng.standard_normal((1, 5, 5, c)).astype("float32")
    y = keras.ops.convert_to_numpy(layer(x))
    b = keras.ops.convert_to_numpy(layer.basis)
    p = c // s
    for g in range(s):
        ref = conv2d_nhwc(x[..., g * p:(g + 1) * p], b, padding="same")
        np.testing.assert_allclose(y[..., g * m:(g + 1) * m], ref, rtol=1e-5, atol=1e-5)


def test_full_rank_decomposition_reproduces_the_dense_conv(rng):
    c, n, s = 8, 6, 2
    w = rng.standard_normal((3, 3, c, n)).astype("float32")
    m = maths.rank_bound(c, n, 3, 3, s)
    d = maths.decompose(w, s, m)
    model, basis, coef = _pair_model(c, n, 3, s, m, padding="same")
    basis.basis.assign(d.basis)
    coef.kernel.assign(d.coefficients[None, None])
    coef.bias.assign(np.zeros(n, "float32"))
    x = rng.standard_normal((2, 9, 8, c)).astype("float32")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(model(x)), conv2d_nhwc(x, w, padding="same"),
        rtol=1e-4, atol=1e-4,
    )


def test_sliced_shared_basis(rng):
    """A basis deeper than the input: one split, first c channels (DenseNet sharing)."""
    layer = BasisConv2D(4, 3, depth=10, padding="same")
    x_full = rng.standard_normal((1, 6, 6, 10)).astype("float32")
    x_small = rng.standard_normal((1, 6, 6, 7)).astype("float32")
    layer(x_full)
    b = keras.ops.convert_to_numpy(layer.basis)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(layer(x_small)),
        conv2d_nhwc(x_small, b[:, :, :7], padding="same"), rtol=1e-5, atol=1e-5,
    )
    x_twice = rng.standard_normal((1, 6, 6, 20)).astype("float32")  # two splits of 10
    assert layer(x_twice).shape == (1, 6, 6, 8)


def test_training_step_changes_weights(rng):
    model, basis, coef = _pair_model(8, 4, 3, 2, 3, padding="same")
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    before = [keras.ops.convert_to_numpy(v).copy() for v in model.trainable_weights]
    x = rng.standard_normal((4, 9, 8, 8)).astype("float32")
    y = rng.standard_normal((4, 9, 8, 4)).astype("float32")
    model.train_on_batch(x, y)
    after = [keras.ops.convert_to_numpy(v) for v in model.trainable_weights]
    assert len(before) == 3  # basis, coefficient kernel, bias
    for b, a in zip(before, after):
        assert np.abs(a - b).max() > 1e-6


def _shared_model():
    x = keras.Input((8, 8, 8))
    shared = BasisConv2D(5, 3, splits=2, padding="same", name="shared_basis")
    y = keras.layers.Conv2D(8, 1, name="a", activation="relu")(shared(x))
    z = keras.layers.Conv2D(6, 1, name="b")(shared(y, strides=2))
    return keras.Model(x, z)


def test_keras_round_trip_keeps_a_shared_basis_shared(rng, tmp_path):
    model = _shared_model()
    x = rng.standard_normal((2, 8, 8, 8)).astype("float32")
    path = os.path.join(tmp_path, "m.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(x)),
                               keras.ops.convert_to_numpy(model(x)), rtol=1e-6, atol=1e-6)
    layer = loaded.get_layer("shared_basis")
    assert len(layer.weights) == 1
    assert sum("basis" in v.path for v in loaded.weights) == 1
    assert loaded.output_shape == (None, 4, 4, 6)
    # and a training step updates the one variable used at both sites
    loaded.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    before = keras.ops.convert_to_numpy(layer.basis).copy()
    loaded.train_on_batch(x, np.ones((2, 4, 4, 6), "float32"))
    assert np.abs(keras.ops.convert_to_numpy(layer.basis) - before).max() > 0
    # one update moves every user: zero the basis -> the second site sees only zeros
    layer.basis.assign(np.zeros(layer.basis.shape, "float32"))
    expected = keras.ops.convert_to_numpy(loaded.get_layer("b").bias)
    out = keras.ops.convert_to_numpy(loaded(x))
    np.testing.assert_allclose(out, np.broadcast_to(expected, out.shape), atol=1e-6)


def test_config_round_trip():
    layer = BasisConv2D(7, (3, 5), splits=4, strides=2, padding="same", dilation_rate=1,
                        use_bias=True, basis_regularizer="l2", name="x")
    clone = BasisConv2D.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    assert layer.depth is None  # known once built
    before = layer.get_config()
    layer.build((None, 8, 8, 16))
    cfg = layer.get_config()
    assert cfg == before  # build does not rewrite a constructor argument
    assert (cfg["splits"], cfg["depth"], layer.depth) == (4, None, 4)
    assert tuple(layer.basis.shape) == (3, 5, 4, 7)
    assert "narrow_inputs" not in cfg  # optional key, only when not the default
    rebuilt = BasisConv2D.from_config(cfg)
    assert rebuilt.compute_output_shape((None, 8, 8, 16)) == (None, 4, 4, 28)
    rebuilt.build((None, 8, 8, 16))
    assert rebuilt.depth == 4 and rebuilt.get_config() == cfg


def test_config_with_depth_and_narrow_inputs():
    layer = BasisConv2D(3, 3, depth=10, narrow_inputs="pad", name="net")
    before = layer.get_config()
    assert (before["depth"], before["narrow_inputs"], "splits" in before) == (10, "pad", False)
    layer.build((None, 6, 6, 20))
    assert layer.get_config() == before and layer.depth == 10
    assert BasisConv2D.from_config(before).narrow_inputs == "pad"


@pytest.mark.parametrize("narrow_inputs", ["slice", "pad"])
def test_narrow_input_modes_compute_the_same(rng, narrow_inputs):
    """A 7-channel input against a depth-10 basis: the first 7 basis channels,
    whether the basis is sliced or the input zero-padded to 10 channels."""
    layer = BasisConv2D(4, 3, depth=10, padding="same", narrow_inputs=narrow_inputs)
    x = rng.standard_normal((2, 6, 6, 7)).astype("float32")
    y = keras.ops.convert_to_numpy(layer(x))
    b = keras.ops.convert_to_numpy(layer.basis)
    assert b.shape == (3, 3, 10, 4)
    np.testing.assert_allclose(y, conv2d_nhwc(x, b[:, :, :7], padding="same"),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        (dict(num_basis=0, kernel_size=3), ValueError,
         r"`num_basis` of layer 'bad'.*strictly positive.*num_basis=0"),
        (dict(num_basis=-2, kernel_size=3), ValueError, r"num_basis=-2"),
        (dict(num_basis=2.5, kernel_size=3), TypeError,
         r"`num_basis` of layer 'bad'. Expected an int.*num_basis=2.5"),
        (dict(num_basis=4, kernel_size=(3, 3, 3)), TypeError,
         r"`kernel_size` of layer 'bad'.*kernel_size=\(3, 3, 3\)"),
        (dict(num_basis=4, kernel_size=0), ValueError, r"`kernel_size`.*kernel_size=\(0, 0\)"),
        (dict(num_basis=4, kernel_size=3, splits=0), ValueError, r"`splits`.*splits=0"),
        (dict(num_basis=4, kernel_size=3, splits="2"), TypeError, r"`splits`.*splits='2'"),
        (dict(num_basis=4, kernel_size=3, splits=2, depth=4), ValueError,
         r"`splits` and `depth` of layer 'bad'.*splits=2, depth=4"),
        (dict(num_basis=4, kernel_size=3, padding="full"), ValueError,
         r"`padding` of layer 'bad'.*padding='full'"),
        (dict(num_basis=4, kernel_size=3, data_format="channels_first"), ValueError,
         r"`data_format` of layer 'bad'.*channels_last.*data_format='channels_first'"),
        (dict(num_basis=4, kernel_size=3, strides=2, dilation_rate=2), ValueError,
         r"layer 'bad'.*strides=\(2, 2\), dilation_rate=\(2, 2\)"),
        (dict(num_basis=4, kernel_size=3, narrow_inputs="zero"), ValueError,
         r"`narrow_inputs` of layer 'bad'.*\('slice', 'pad'\).*narrow_inputs='zero'"),
        (dict(num_basis=4, kernel_size=3, split_mode="width"), ValueError,
         r"`split_mode` of layer 'bad'.*\('batch', 'dilated'\).*split_mode='width'"),
    ],
)
def test_bad_constructor_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        BasisConv2D(name="bad", **kwargs)


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"`splits` of layer 'b1'.*c=12.*splits=5"):
        BasisConv2D(3, 3, splits=5, name="b1")(keras.Input((8, 8, 12)))
    with pytest.raises(ValueError, match=r"'b2'.*4D input.*input_shape=\(None, 8, 12\)"):
        BasisConv2D(3, 3, name="b2").build((None, 8, 12))
    layer = BasisConv2D(3, 3, depth=4, name="b3")
    layer(keras.Input((8, 8, 8)))
    with pytest.raises(ValueError, match=r"'b3'.*depth p=4.*c=6"):
        layer(keras.Input((8, 8, 6)))
    with pytest.raises(ValueError, match=r"`strides` of layer 'b3'.*strides=\(0, 0\)"):
        layer(keras.Input((8, 8, 8)), strides=0)


# ------------------------------------------------------- split_mode="dilated"
@pytest.mark.parametrize(
    "c,k,s,m,strides,padding,dilation,h,w",
    [
        (8, 3, 2, 5, 1, "same", 1, 7, 6),
        (8, 3, 4, 3, 1, "valid", 1, 7, 6),
        (12, 3, 4, 4, (2, 1), "same", 1, 9, 8),   # a stride: falls back to batch
        (6, (3, 5), 2, 2, 1, "same", (1, 2), 6, 9),
        (8, 2, 2, 3, 1, "same", 1, 6, 6),          # even kw, "same": falls back to batch
        (8, 3, 2, 3, 2, "same", 1, 8, 8),          # width stride 2: falls back to batch
        (16, 1, 4, 3, 1, "valid", 1, 5, 5),
    ],
)
def test_dilated_split_mode_matches_numpy_and_the_batch_form(rng, c, k, s, m, strides,
                                                            padding, dilation, h, w):
    geometry = dict(strides=strides, padding=padding, dilation_rate=dilation)
    dil = BasisConv2D(m, k, splits=s, split_mode="dilated", use_bias=True, **geometry)
    ref_layer = BasisConv2D(m, k, splits=s, use_bias=True, **geometry)
    x = rng.standard_normal((2, h, w, c)).astype("float32")
    dil.build(x.shape)
    ref_layer.build(x.shape)
    basis = rng.standard_normal(tuple(dil.basis.shape)).astype("float32")
    bias = rng.standard_normal(m).astype("float32")
    for layer in (dil, ref_layer):
        layer.basis.assign(basis)
        layer.bias.assign(bias)
    out = keras.ops.convert_to_numpy(dil(x))
    batch = keras.ops.convert_to_numpy(ref_layer(x))
    st = (strides, strides) if isinstance(strides, int) else strides
    dl = (dilation, dilation) if isinstance(dilation, int) else dilation
    p = c // s
    numpy = np.concatenate(
        [conv2d_nhwc(x[..., g * p:(g + 1) * p], basis, st, padding, dl, bias=bias)
         for g in range(s)], axis=-1)  # split-major: channel g*m + j
    assert out.shape == numpy.shape == tuple(dil.compute_output_shape(x.shape))
    np.testing.assert_allclose(out, numpy, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(out, batch, rtol=1e-5, atol=1e-5)


def test_dilated_split_mode_config_round_trip():
    layer = BasisConv2D(4, 3, splits=2, split_mode="dilated")
    assert layer.get_config()["split_mode"] == "dilated"
    assert BasisConv2D.from_config(layer.get_config()).split_mode == "dilated"
    assert "split_mode" not in BasisConv2D(4, 3).get_config()  # default stays implicit


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TFLite needs TensorFlow")
@pytest.mark.parametrize("quantize", [None, "int8"])
@pytest.mark.parametrize("s,padding", [(2, "same"), (4, "valid")])
def test_dilated_split_mode_tflite_equals_the_batch_form(rng, tmp_path, quantize, s, padding):
    """float32 and int8 files of the two forms compute the same (and have no TRANSPOSE)."""
    from keras_basis import export_tflite, tflite

    c, n, m = 16, 12, 8
    x = rng.standard_normal((16, 10, 10, c)).astype("float32")
    contents, outputs = {}, {}
    for mode in ("batch", "dilated"):
        inp = keras.Input((10, 10, c))
        basis = BasisConv2D(m, 3, splits=s, padding=padding, split_mode=mode)
        model = keras.Model(inp, keras.layers.Conv2D(n, 1)(basis(inp)))
        if mode == "batch":
            weights = model.get_weights()
        else:
            model.set_weights(weights)
        _, content = export_tflite(model, None, quantize=quantize, representative_dataset=x,
                                   return_content=True)
        contents[mode] = content
        outputs[mode] = tflite.run_tflite(content, x[:4])
        ops = tflite.op_histogram(content)
        assert ("TRANSPOSE" in ops) == (mode == "batch"), ops
    keras_out = keras.ops.convert_to_numpy(model(x[:4]))
    scale = float(np.max(np.abs(keras_out)))
    tol = 1e-5 if quantize is None else 0.05
    np.testing.assert_allclose(outputs["dilated"], keras_out, atol=tol * scale)
    np.testing.assert_allclose(outputs["dilated"], outputs["batch"], atol=tol * scale)
