"""Tests of compress / decompress / strip / report / basis_pairs / basis_clone_function."""

import keras
import numpy as np
import pytest

import keras_basis
import keras_basis.transform
from keras_basis import BasisConv2D, maths

ALL = 10**6  # num_basis above every rank bound: exact decomposition


# ----------------------------------------------------------------- models
def seq_model():
    return keras.Sequential(
        [
            keras.Input((12, 12, 6)),
            keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="c1"),
            keras.layers.Conv2D(12, 3, strides=2, name="c2"),
            keras.layers.DepthwiseConv2D(3, padding="same", name="dw"),
            keras.layers.Conv2D(8, 1, use_bias=False, name="c3"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(4, name="fc"),
        ],
        name="seq",
    )


def functional_model():
    x = keras.Input((16, 16, 8), name="img")
    a = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="a")(x)
    b = keras.layers.Conv2D(16, 3, padding="same", dilation_rate=2, name="b")(a)
    b = keras.layers.BatchNormalization(name="bn")(b)
    r = keras.layers.Add(name="add")([a, b])
    c = keras.layers.Conv2D(24, 3, strides=2, padding="same", activation="tanh", name="c")(r)
    d = keras.layers.Conv2D(8, 1, strides=2, name="d")(r)
    g = keras.layers.Conv2D(8, 3, padding="same", groups=2, name="grouped")(r)
    g = keras.layers.MaxPooling2D(2)(g)
    cat = keras.layers.Concatenate(name="cat")([c, d, g])
    e = keras.layers.Conv2D(32, 3, padding="valid", name="e")(cat)
    out = keras.layers.Dense(3, name="fc")(keras.layers.GlobalAveragePooling2D()(e))
    model = keras.Model(x, out, name="func")
    _randomise_bn(model)
    return model


def nested_model():
    inner_seq = keras.Sequential(
        [keras.Input((8, 8, 16)), keras.layers.Conv2D(16, 3, padding="same", name="in_s1"),
         keras.layers.ReLU(), keras.layers.Conv2D(16, 3, padding="same", name="in_s2")],
        name="inner_seq",
    )
    xi = keras.Input((8, 8, 16))
    yi = keras.layers.Conv2D(16, 3, padding="same", name="in_f1")(xi)
    inner_fun = keras.Model(xi, keras.layers.Add()([xi, yi]), name="inner_fun")
    x = keras.Input((8, 8, 4))
    h = keras.layers.Conv2D(16, 3, padding="same", name="outer1")(x)
    h = inner_seq(h)
    h = inner_fun(h)
    h = inner_fun(h)  # a nested model used twice: its weights are shared
    out = keras.layers.Conv2D(6, 3, name="outer2")(h)
    return keras.Model(x, out, name="nested")


def _randomise_bn(model):
    rng = np.random.default_rng(1)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.set_weights([rng.uniform(0.5, 1.5, w.shape).astype("float32")
                               for w in layer.get_weights()])


def data(model, n=3, seed=0):
    shape = (n,) + tuple(model.input_shape[1:])
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def snapshot(model):
    return [layer.name for layer in model.layers], [w.copy() for w in model.get_weights()]


def assert_unchanged(model, snap):
    names, weights = snapshot(model)
    assert names == snap[0]
    assert len(weights) == len(snap[1])
    for a, b in zip(weights, snap[1]):
        np.testing.assert_array_equal(a, b)


def conv_names(model):
    return [ly.name for ly in model.layers if type(ly) is keras.layers.Conv2D]


# ------------------------------------------------------ full-rank exactness
@pytest.mark.parametrize("make", [seq_model, functional_model, nested_model])
def test_full_rank_reproduces_outputs_and_keeps_original(make):
    model = make()
    x = data(model)
    ref = keras.ops.convert_to_numpy(model(x))
    snap = snapshot(model)
    small = keras_basis.compress(model, num_basis=ALL, layers=lambda layer: True, verbose=0)
    out = keras.ops.convert_to_numpy(small(x))
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())
    assert_unchanged(model, snap)
    assert small.name == model.name
    assert [t.shape for t in small.inputs] == [t.shape for t in model.inputs]
    if not isinstance(model, keras.Sequential):
        assert [t.name for t in small.inputs] == [t.name for t in model.inputs]
    assert keras_basis.basis_pairs(small), "nothing was compressed"
    assert not keras_basis.basis_pairs(model)


def test_sequential_structure_and_names():
    model = seq_model()
    small = keras_basis.compress(model, num_basis=4, splits=1, layers=["c1", "c2", "c3"],
                                 verbose=0)
    assert isinstance(small, keras.Sequential)
    assert [ly.name for ly in small.layers] == [
        "c1_basis", "c1", "c2_basis", "c2", "dw", "c3_basis", "c3",
        "global_average_pooling2d", "fc"]
    assert isinstance(small.get_layer("c2_basis"), BasisConv2D)
    assert small.get_layer("c2_basis").strides == (2, 2)
    coef = small.get_layer("c1")
    assert type(coef) is keras.layers.Conv2D and coef.kernel_size == (1, 1)
    assert coef.activation is keras.activations.relu
    assert not small.get_layer("c3").use_bias
    # copied layers keep their weights
    np.testing.assert_array_equal(small.get_layer("fc").get_weights()[0],
                                  model.get_layer("fc").get_weights()[0])
    np.testing.assert_array_equal(small.get_layer("dw").get_weights()[0],
                                  model.get_layer("dw").get_weights()[0])


def test_geometry_activation_bias_preserved():
    model = functional_model()
    small = keras_basis.compress(model, num_basis=ALL, layers=["b", "c", "d"], verbose=0)
    pairs = {p.name: p for p in keras_basis.basis_pairs(small)}
    assert pairs["b"].dilation_rate == (2, 2) and pairs["b"].padding == "same"
    assert pairs["c"].strides == (2, 2)
    assert pairs["d"].strides == (2, 2) and pairs["d"].padding == "valid"
    assert small.get_layer("c").activation is keras.activations.tanh
    np.testing.assert_array_equal(small.get_layer("c").bias.numpy(),
                                  model.get_layer("c").bias.numpy())
    for name, pair in pairs.items():
        np.testing.assert_allclose(pair.kernel(), model.get_layer(name).kernel.numpy(),
                                   atol=1e-5)


def test_default_selection_skips_with_reasons():
    model = functional_model()
    small = keras_basis.compress(model, num_basis=2, verbose=0)
    names = {p.name for p in keras_basis.basis_pairs(small)}
    assert "grouped" not in names and {"a", "b", "c", "e"} <= names
    rep = keras_basis.report(small, print_fn=None)
    reasons = dict(rep.skipped)
    assert "grouped convolution (groups=2)" in reasons["grouped"]
    # d: 1x1 16->8 at m=2, s=1: 2*16 + 2*8 = 48 < 128 saves; check the rule on a
    # layer that cannot save: first conv of seq (c=6, n=16, 3x3) at m=ALL
    with pytest.warns(UserWarning, match=r"nothing was compressed in model 'seq'.* Why: dw: "
                                         r"DepthwiseConv2D.*; c1: no parameter saving"):
        small2 = keras_basis.compress(seq_model(), num_basis=ALL, verbose=0)
    rep2 = keras_basis.report(small2, print_fn=None)
    assert "no parameter saving" in dict(rep2.skipped)["c1"]
    assert "DepthwiseConv2D" in dict(rep2.skipped)["dw"]


# --------------------------------------------------------- Eckart-Young init
def test_svd_init_reaches_eckart_young_per_layer():
    model = functional_model()
    small = keras_basis.compress(model, num_basis={"a": 3, "b": 5, "c": 7, "e": 4},
                                 splits={"a": 2, "b": 4, "c": 1, "e": 8}, verbose=0)
    pairs = keras_basis.basis_pairs(small)
    assert {p.name for p in pairs} == {"a", "b", "c", "e"}
    for pair in pairs:
        w = model.get_layer(pair.name).kernel.numpy().astype(np.float64)
        err = np.sum((w - pair.kernel()) ** 2)
        best = maths.approximation_error(w, pair.s, pair.m)
        assert best > 0
        np.testing.assert_allclose(err, best, rtol=1e-3, err_msg=pair.name)
        assert pair.p * pair.s == pair.c


def test_init_random_differs_and_zero_bias():
    model = functional_model()
    small = keras_basis.compress(model, num_basis=3, init="random", seed=1, verbose=0)
    pair = [p for p in keras_basis.basis_pairs(small) if p.name == "a"][0]
    w = model.get_layer("a").kernel.numpy()
    err = np.sum((w - pair.kernel()) ** 2)
    assert err > 2 * maths.approximation_error(w, pair.s, pair.m)
    np.testing.assert_array_equal(small.get_layer("a").bias.numpy(), 0.0)


def test_init_data_lowers_first_layer_output_error():
    model = functional_model()
    x = data(model, n=16, seed=3)
    kwargs = dict(num_basis=2, layers=["a", "b"], verbose=0)
    svd = keras_basis.compress(model, **kwargs)
    fit = keras_basis.compress(model, init="data", calibration_data=x, **kwargs)

    def out(m):
        return keras.ops.convert_to_numpy(keras.Model(m.input, m.get_layer("b").output)(x))

    ref = out(model)
    e_svd = np.mean((out(svd) - ref) ** 2)
    e_fit = np.mean((out(fit) - ref) ** 2)
    assert e_fit < e_svd


# ------------------------------------------------------------ ratio budget
@pytest.mark.parametrize("allocation", ["uniform", "error"])
def test_ratio_half_removes_half_of_conv_params(allocation):
    model = functional_model()
    small = keras_basis.compress(model, ratio=0.5, allocation=allocation, objective="params",
                                 verbose=0)
    rep = keras_basis.report(small, reference=model, print_fn=None)
    before = sum(model.get_layer(r["layer"]).kernel.numpy().size for r in rep.rows)
    after = sum(int(np.prod(w.shape)) for p in keras_basis.basis_pairs(small)
                for w in (p.basis_layer.basis, p.coef_layer.kernel))
    assert rep.totals["params_before"] == before
    assert rep.totals["params_after"] == after
    assert 0.35 <= after / before <= 0.5


def test_error_allocation_beats_uniform():
    model = functional_model()
    reps = {}
    for allocation in ("uniform", "error"):
        small = keras_basis.compress(model, ratio=0.3, allocation=allocation,
                                     objective="params", verbose=0)
        reps[allocation] = keras_basis.report(small, reference=model, print_fn=None)
    total = {k: sum(r["rel_error"] for r in v.rows) for k, v in reps.items()}
    assert total["error"] < total["uniform"]
    assert reps["error"].totals["params_after"] <= 0.3 * reps["error"].totals["params_before"]


# ------------------------------------------------------------ shared bases
def test_shared_basis_is_one_weight_and_trains_all_users():
    model = functional_model()
    small = keras_basis.compress(model, num_basis=6, share={"g": ["a", "b", "c"]},
                                 layers=["a", "b", "c"], verbose=0)
    pairs = {p.name: p for p in keras_basis.basis_pairs(small)}
    basis = pairs["a"].basis_layer
    assert basis.name == "g"
    assert pairs["b"].basis_layer is basis and pairs["c"].basis_layer is basis
    assert sorted(pairs["a"].shared_with) == ["b", "c"]
    assert pairs["c"].strides == (2, 2) and pairs["b"].dilation_rate == (2, 2)
    ids = [id(v) for v in small.trainable_variables if v.path.endswith("basis")]
    assert len(ids) == 1
    # joint SVD initialisation
    kernels = [model.get_layer(n).kernel.numpy() for n in "abc"]
    b0, coefs, _ = maths.decompose_shared(kernels, [pairs[n].s for n in "abc"], 6)
    np.testing.assert_allclose(np.abs(basis.basis.numpy()), np.abs(b0), atol=1e-5)
    # one gradient step moves every user's effective kernel
    before = {n: pairs[n].kernel() for n in "abc"}
    for n in "abc":
        small.get_layer(n).trainable = False  # only the basis can move
    small.compile(keras.optimizers.SGD(0.1), "mse")
    x = data(model, n=4)
    small.train_on_batch(x, np.ones((4, 3), "float32"))
    for n in "abc":
        assert np.abs(pairs[n].kernel() - before[n]).max() > 1e-6, n


def test_share_presets():
    model = functional_model()
    stage = keras_basis.compress(model, num_basis=4, share="stage", verbose=0)
    pairs = {p.name: p for p in keras_basis.basis_pairs(stage)}
    # a, b, c take 16x16 inputs and are 3x3: one basis (c is the stride-2 conv)
    assert pairs["a"].basis_layer is pairs["b"].basis_layer is pairs["c"].basis_layer
    assert pairs["e"].basis_layer is not pairs["a"].basis_layer
    net = keras_basis.compress(model, num_basis=4, share="network", verbose=0)
    pairs = {p.name: p for p in keras_basis.basis_pairs(net)}
    basis = pairs["a"].basis_layer
    assert all(p.basis_layer is basis for n, p in pairs.items() if p.kernel_size == (3, 3))
    assert basis.depth == 40  # widest 3x3 input (e: 24 + 8 + 8 channels), sliced for others
    assert pairs["a"].s == 1 and pairs["a"].p == 8
    x = data(model)
    for m in (stage, net):  # they run and stay finite
        assert np.isfinite(keras.ops.convert_to_numpy(m(x))).all()


def test_share_block_preset():
    x = keras.Input((8, 8, 8))
    h = keras.layers.Conv2D(8, 3, padding="same", name="stem")(x)
    y = keras.layers.Conv2D(8, 3, padding="same", name="b1_conv1")(h)
    y = keras.layers.ReLU()(y)
    y = keras.layers.Conv2D(8, 3, padding="same", name="b1_conv2")(y)
    h = keras.layers.Add(name="b1_add")([h, y])
    y = keras.layers.Conv2D(8, 3, padding="same", name="b2_conv1")(h)
    y = keras.layers.Conv2D(8, 3, padding="same", name="b2_conv2")(y)
    h = keras.layers.Add(name="b2_add")([h, y])
    model = keras.Model(x, h)
    small = keras_basis.compress(model, num_basis=3, share="block", verbose=0)
    pairs = {p.name: p for p in keras_basis.basis_pairs(small)}
    assert pairs["b1_conv1"].basis_layer is pairs["b1_conv2"].basis_layer
    assert pairs["b2_conv1"].basis_layer is pairs["b2_conv2"].basis_layer
    assert pairs["b1_conv1"].basis_layer is not pairs["b2_conv1"].basis_layer
    assert pairs["stem"].shared_with == ()  # its output branches: no block
    assert pairs["b1_conv1"].basis_layer.name == "b1_add_3x3_basis"


# -------------------------------------------------- decompress, save, strip
def test_decompress_all_and_subset():
    model = functional_model()
    small = keras_basis.compress(model, num_basis=5, share={"g": ["a", "b"]}, verbose=0)
    x = data(model)
    ref = keras.ops.convert_to_numpy(small(x))
    dense = keras_basis.decompress(small)
    assert not keras_basis.basis_pairs(dense)
    assert conv_names(dense) == conv_names(model)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(dense(x)), ref, rtol=1e-4,
                               atol=1e-5)
    np.testing.assert_allclose(dense.get_layer("b").kernel.numpy(),
                               {p.name: p for p in keras_basis.basis_pairs(small)}["b"].kernel(),
                               atol=1e-6)
    assert dense.get_layer("b").dilation_rate == (2, 2)
    part = keras_basis.decompress(small, layers=["a", "e"])
    left = {p.name: p for p in keras_basis.basis_pairs(part)}
    assert set(left) == {p.name for p in keras_basis.basis_pairs(small)} - {"a", "e"}
    assert left["b"].basis_layer.name == "g" and left["b"].shared_with == ()
    np.testing.assert_allclose(keras.ops.convert_to_numpy(part(x)), ref, rtol=1e-4, atol=1e-5)
    assert len(keras_basis.basis_pairs(small)) == 5  # unchanged


def test_train_save_reload(tmp_path):
    model = functional_model()
    small = keras_basis.compress(model, ratio=0.5, share="stage", objective="params", verbose=0)
    small.compile("adam", "mse")
    x = data(model, n=4)
    loss = small.train_on_batch(x, np.zeros((4, 3), "float32"))
    assert np.isfinite(loss)
    path = tmp_path / "small.keras"
    small.save(path)
    back = keras.saving.load_model(path)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(back(x)),
                               keras.ops.convert_to_numpy(small(x)), rtol=1e-5, atol=1e-6)
    assert len(keras_basis.basis_pairs(back)) == len(keras_basis.basis_pairs(small))


def test_gamma_loss_and_strip():
    model = functional_model()
    gamma = 0.01
    small = keras_basis.compress(model, num_basis=3, layers=["a", "c"], gamma=gamma,
                                 share={"g": ["a", "c"]}, verbose=0)
    expected = gamma * sum(np.sum((model.get_layer(p.name).kernel.numpy() - p.kernel()) ** 2)
                           for p in keras_basis.basis_pairs(small))
    losses = [float(keras.ops.convert_to_numpy(v)) for v in small.losses]
    assert len(losses) == 1
    np.testing.assert_allclose(losses[0], expected, rtol=1e-4)
    small.compile(keras.optimizers.SGD(0.01), "mse")
    x = data(model, n=4)
    small.train_on_batch(x, np.zeros((4, 3), "float32"))
    clean = keras_basis.strip(small)
    assert clean.losses == []
    assert all(not isinstance(ly, BasisConv2D) or ly.basis_regularizer is None
               for ly in clean.layers)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(clean(x)),
                                  keras.ops.convert_to_numpy(small(x)))
    assert len(small.losses) == 1  # strip copies


def test_tflite_conversion(tmp_path):
    tf = pytest.importorskip("tensorflow")
    interp_mod = pytest.importorskip("ai_edge_litert.interpreter")
    model = seq_model()
    small = keras_basis.compress(model, ratio=0.5, layers=["c1", "c2", "c3"],
                                 objective="params", verbose=0)
    blob = tf.lite.TFLiteConverter.from_keras_model(small).convert()
    interp = interp_mod.Interpreter(model_content=blob)
    interp.allocate_tensors()
    x = data(model, n=1)
    interp.set_tensor(interp.get_input_details()[0]["index"], x)
    interp.invoke()
    out = interp.get_tensor(interp.get_output_details()[0]["index"])
    np.testing.assert_allclose(out, keras.ops.convert_to_numpy(small(x)), atol=1e-4)


# --------------------------------------------------------- clone function
def test_basis_clone_function_matches_compress():
    model = seq_model()
    fn = keras_basis.basis_clone_function(num_basis={"c2": 5}, splits=2)
    cloned = keras.models.clone_model(model, clone_function=fn)
    inner = cloned.get_layer("c2")
    assert isinstance(inner, keras.Sequential)
    assert [ly.name for ly in inner.layers] == ["c2_basis", "c2"]
    small = keras_basis.compress(model, num_basis={"c2": 5}, splits=2, verbose=0)
    want = {p.name: p for p in keras_basis.basis_pairs(small)}["c2"]
    got = {p.name: p for p in keras_basis.basis_pairs(cloned)}["c2"]
    np.testing.assert_allclose(got.kernel(), want.kernel(), atol=1e-6)
    assert got.strides == (2, 2)
    x = data(model)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(cloned(x)),
                               keras.ops.convert_to_numpy(small(x)), rtol=1e-5, atol=1e-6)
    # and it folds back to a plain Conv2D named c2
    dense = keras_basis.decompress(cloned)
    assert type(dense.get_layer("c2")) is keras.layers.Conv2D
    np.testing.assert_allclose(dense.get_layer("c2").kernel.numpy(), want.kernel(), atol=1e-6)


# ------------------------------------------------------------------ report
def test_report_numbers_and_print():
    model = functional_model()
    small = keras_basis.compress(model, num_basis={"b": 4, "e": 6}, splits={"b": 2, "e": 4},
                                 verbose=0)
    lines = []
    rep = keras_basis.report(small, print_fn=lines.append)
    rows = {r["layer"]: r for r in rep.rows}
    b = rows["b"]
    assert (b["c"], b["n"], b["kernel"], b["s"], b["p"], b["m"]) == (16, 16, "3x3", 2, 8, 4)
    assert b["params_before"] == 16 * 16 * 9
    assert b["params_after"] == maths.basis_params(16, 16, 3, 3, 2, 4)
    assert b["flops_before"] == 2 * maths.conv_macs(16, 16, 3, 3, 16, 16)
    assert b["flops_after"] == 2 * maths.basis_macs(16, 16, 3, 3, 2, 4, 16, 16)
    w = model.get_layer("b").kernel.numpy()
    np.testing.assert_allclose(b["rel_error"],
                               maths.approximation_error(w, 2, 4, relative=True), rtol=1e-3)
    assert any(line.startswith("b ") for line in lines)
    assert any("Compressed convolutions: 2" in line for line in lines)
    cand = keras_basis.report(model, print_fn=None)
    assert cand.kind == "candidates"
    a = {r["layer"]: r for r in cand.rows}["a"]
    assert a["s"] == maths.optimal_splits(8, 16, 3, 3)
    sv = maths.singular_values(model.get_layer("a").kernel.numpy(), a["s"])
    energy = np.cumsum(sv ** 2) / np.sum(sv ** 2)
    assert energy[a["m99"] - 1] >= 0.99 and (a["m99"] == 1 or energy[a["m99"] - 2] < 0.99)
    assert ("grouped", "grouped convolution (groups=2)") in cand.skipped
    # one pair alone
    one = keras_basis.report(keras_basis.basis_pairs(small)[0], print_fn=None)
    assert len(one.rows) == 1 and one.rows[0]["layer"] == rep.rows[0]["layer"]
    np.testing.assert_allclose(one.rows[0]["rel_error"], rep.rows[0]["rel_error"])
    # reference model gives the error after training too
    rep2 = keras_basis.report(small, reference=model, print_fn=None)
    np.testing.assert_allclose(rep2.rows[0]["rel_error"], rep.rows[0]["rel_error"])


# -------------------------------------------------------------- bad input
class Sub(keras.Model):
    def call(self, x):
        return x


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(num_basis=2, layers=["nope"]), ValueError,
         r"argument `layers`: model 'func' has no layer named 'nope'"),
        (dict(num_basis=2, layers=["fc"]), ValueError,
         r"layer 'fc' cannot be compressed \(Dense is not a convolution\)"),
        (dict(num_basis=2, layers=["grouped"]), ValueError,
         r"layer 'grouped' cannot be compressed \(grouped convolution"),
        (dict(num_basis=2, layers="zz.*"), ValueError, r"'zz\.\*' matches no compressible"),
        (dict(ratio=0.0), ValueError, r"Expected 0 < ratio <= 1. Received ratio=0.0"),
        (dict(ratio=1.5), ValueError, r"Expected 0 < ratio <= 1. Received ratio=1.5"),
        (dict(ratio="half"), TypeError, r"argument `ratio`.*Received ratio='half'"),
        (dict(num_basis=2, ratio=0.5), ValueError, r"exactly one of the arguments `num_basis`"),
        (dict(), ValueError, r"exactly one of the arguments `num_basis` and `ratio`"),
        (dict(num_basis=0), ValueError,
         r"argument `num_basis` of layer 'a'. Expected a strictly positive integer. "
         r"Received num_basis=0"),
        (dict(num_basis={"a": -1}), ValueError, r"`num_basis` of layer 'a'.*num_basis=-1"),
        (dict(num_basis={"zz": 2}), ValueError, r"argument `num_basis`: key 'zz'"),
        (dict(num_basis=2, splits=3), ValueError,
         r"argument `splits` of layer 'a'. Expected a divisor of its input channels c=8. "
         r"Received splits=3"),
        (dict(num_basis=2, splits={"b": 5}), ValueError,
         r"`splits` of layer 'b'.*c=16. Received splits=5"),
        (dict(num_basis=2, splits=0), ValueError, r"`splits` of layer 'a'.*splits=0"),
        (dict(num_basis=2, init="pca"), ValueError, r"argument `init`.*init='pca'"),
        (dict(num_basis=2, init="data"), ValueError, r"argument `calibration_data`"),
        (dict(num_basis=2, gamma=-1.0), ValueError, r"argument `gamma`.*gamma=-1.0"),
        (dict(num_basis=2, allocation="best"), ValueError, r"allocation='best'"),
        (dict(num_basis=2, share="everything"), ValueError, r"share='everything'"),
        (dict(num_basis=2, share=[["a", "d"]]), ValueError,
         r"group 'shared_basis_0', layer 'd' has kernel_size=\(1, 1\) but layer 'a'"),
        (dict(num_basis=2, share={"g": ["b", "e"]}, splits=2), ValueError,
         r"group 'g', layer 'b' \(c=16, splits=2\) cannot use a shared basis of depth p=20"),
        (dict(num_basis=2, share=[["a", "nope"]]), ValueError,
         r"group 'shared_basis_0' names layer 'nope'"),
        (dict(num_basis=2, share=[["a", "b"], ["b", "c"]]), ValueError,
         r"layer 'b' is in more than one share group"),
        (dict(num_basis=2, layers=3), TypeError, r"argument `layers`.*layers=3"),
    ],
)
def test_bad_arguments(kwargs, exc, match):
    model = functional_model()
    snap = snapshot(model)
    with pytest.raises(exc, match=match):
        keras_basis.compress(model, verbose=0, **kwargs)
    assert_unchanged(model, snap)


def test_bad_models():
    with pytest.raises(TypeError, match=r"argument `model`. Expected a keras.Model.*"
                                        r"Received model='x' of type str"):
        keras_basis.compress("x", num_basis=2)
    with pytest.raises(TypeError, match=r"model 'sub' is a subclassed model \(Sub\)"):
        sub = Sub(name="sub")
        sub(np.zeros((1, 2), "float32"))
        keras_basis.compress(sub, num_basis=2)
    unbuilt = keras.Sequential([keras.layers.Conv2D(4, 3)], name="lazy")
    with pytest.raises(ValueError, match=r"model 'lazy' is not built"):
        keras_basis.compress(unbuilt, num_basis=2)
    for fn in (keras_basis.decompress, keras_basis.strip, keras_basis.report,
               keras_basis.basis_pairs):
        with pytest.raises(TypeError, match=r"argument `model`"):
            fn(None)
    small = keras_basis.compress(seq_model(), num_basis=2, layers=["c2"], verbose=0)
    with pytest.raises(ValueError, match=r"'c1' is not the coefficient layer of a basis pair"):
        keras_basis.decompress(small, layers=["c1"])
    with pytest.raises(TypeError, match=r"argument `layers`.*layers='c2'"):
        keras_basis.decompress(small, layers="c2")
    with pytest.raises(ValueError, match=r"group 'g' holds layer 'c1' of Sequential model "
                                         r"'seq'; a Sequential model cannot hold one"):
        keras_basis.compress(seq_model(), num_basis=2, share={"g": ["c1", "c2"]})


# ---------------------------------------------------- keras.applications
def test_mobilenetv2_small_input():
    model = keras.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35,
                                           weights=None, classes=5, classifier_activation=None)
    x = data(model, n=4)
    # training=True: BatchNorm uses batch statistics. With its initial moving
    # statistics an untrained network's activations vanish (~1e-11 here),
    # which would make any output comparison meaningless.
    ref = keras.ops.convert_to_numpy(model(x, training=True))
    assert np.abs(ref).max() > 0.1
    exact = keras_basis.compress(model, num_basis=ALL, layers=lambda layer: True, verbose=0)
    out = keras.ops.convert_to_numpy(exact(x, training=True))
    np.testing.assert_allclose(out, ref, atol=1e-3 * np.abs(ref).max())
    half = keras_basis.compress(model, ratio=0.5, objective="params", verbose=0)
    rep = keras_basis.report(half, print_fn=None)
    assert 0.4 <= rep.totals["params_ratio"] <= 0.5
    assert any("DepthwiseConv2D" in why for _, why in rep.skipped)


# ------------------------------------------------------------------- spectra
def _spectra_model():
    keras.utils.set_random_seed(7)
    x = keras.Input((8, 8, 6))
    y = keras.layers.Conv2D(12, 3, padding="same", name="c1")(x)
    y = keras.layers.Conv2D(16, 3, padding="same", name="c2")(y)
    y = keras.layers.Conv2D(20, 3, strides=2, padding="same", name="c3")(y)
    y = keras.layers.Conv2D(4, 1, name="c4")(y)
    return keras.Model(x, y)


def _split_sv(kernel, s):
    """Singular values of the split matrix built by hand (column g*n + i)."""
    kh, kw, c, n = kernel.shape
    p = c // s
    cols = [kernel[:, :, g * p:(g + 1) * p, i].ravel() for g in range(s) for i in range(n)]
    return np.linalg.svd(np.stack(cols, axis=1), compute_uv=False)


@pytest.mark.parametrize("size", [dict(ratio=0.3, objective="params"),
                                  dict(ratio=0.6, splits=1, objective="params"),
                                  dict(num_basis=4), dict(num_basis={"c2": 5, "c3": 2})])
def test_spectra_plans_the_m_that_compress_chooses(size, monkeypatch):
    model = _spectra_model()
    compressed = keras_basis.compress(model, verbose=0, **size)
    chosen = {pr.name: (pr.s, pr.m) for pr in keras_basis.basis_pairs(compressed)}
    assert chosen  # something is compressed

    def no_build(*args, **kwargs):
        raise AssertionError("spectra() must not build or decompose a model")

    monkeypatch.setattr(keras_basis.transform.plan, "decompose", no_build)
    monkeypatch.setattr(keras_basis.transform.clone, "Cloner", no_build)
    entries = keras_basis.transform.spectra(model, **size)
    assert {e["name"]: (e["s"], e["marks"][0][0]) for e in entries} == chosen
    for e in entries:
        kernel = keras.ops.convert_to_numpy(model.get_layer(e["name"]).kernel)
        assert (e["c"], e["n"], e["kernel"]) == (kernel.shape[2], kernel.shape[3],
                                                 kernel.shape[:2])
        np.testing.assert_allclose(e["sv"], _split_sv(kernel, e["s"]), rtol=1e-5, atol=1e-6)
        assert e["source"] == "kernel" and len(e["marks"]) == 1


def test_spectra_of_an_original_model_marks_the_energy():
    model = _spectra_model()
    entries = keras_basis.transform.spectra(model)
    assert [e["name"] for e in entries] == ["c1", "c2", "c3", "c4"]
    for e in entries:
        kernel = keras.ops.convert_to_numpy(model.get_layer(e["name"]).kernel)
        kh, kw, c, n = kernel.shape
        assert e["s"] == maths.optimal_splits(c, n, kh, kw)
        energy = np.cumsum(e["sv"] ** 2) / np.sum(e["sv"] ** 2)
        (m90, l90), (m99, l99) = e["marks"]
        assert (l90, l99) == ("@90%", "@99%")
        for m, frac in ((m90, 0.9), (m99, 0.99)):
            assert energy[m - 1] >= frac - 1e-9 and (m == 1 or energy[m - 2] < frac)
    rows = keras_basis.report(model, print_fn=None).rows
    assert [(r["m90"], r["m99"]) for r in rows] == [
        (e["marks"][0][0], e["marks"][1][0]) for e in entries]
    fixed = keras_basis.transform.spectra(model, splits=2)
    assert [e["s"] for e in fixed] == [2, 2, 2, 2]
    with pytest.raises(ValueError, match=r"`splits` of layer 'c2'.*c=12. Received splits=5"):
        keras_basis.transform.spectra(model, splits={"c1": 2, "c2": 5})
    with pytest.raises(ValueError, match=r"`splits` of layer 'c1'.*c=6. Received splits=4"):
        keras_basis.transform.spectra(model, splits=4)


def test_spectra_of_a_compressed_model():
    model = _spectra_model()
    small = keras_basis.compress(model, num_basis=3, splits=1, layers=["c2", "c3"], verbose=0)
    with_ref = keras_basis.transform.spectra(small, model)
    assert [(e["name"], e["marks"], e["source"]) for e in with_ref] == [
        ("c2", [(3, "")], "reference kernel"), ("c3", [(3, "")], "reference kernel")]
    kernel = keras.ops.convert_to_numpy(model.get_layer("c2").kernel)
    np.testing.assert_allclose(with_ref[0]["sv"], _split_sv(kernel, 1), rtol=1e-5)
    alone = keras_basis.transform.spectra(small)
    assert {e["source"] for e in alone} == {"effective kernel (rank <= m)"}
    for e in alone:  # the pair's kernel has rank <= m = 3, its top values match SVD's
        assert np.all(e["sv"][3:] < 1e-4 * e["sv"][0])
        ref = _split_sv(keras.ops.convert_to_numpy(model.get_layer(e["name"]).kernel), 1)
        np.testing.assert_allclose(e["sv"][:3], ref[:3], rtol=1e-4)


def test_spectra_bad_arguments():
    model = _spectra_model()
    with pytest.raises(ValueError, match="exactly one of the arguments `num_basis` and `ratio`"):
        keras_basis.transform.spectra(model, ratio=0.5, num_basis=3)
    with pytest.raises(ValueError, match=r"`ratio`.*Received ratio=2"):
        keras_basis.transform.spectra(model, ratio=2)
    with pytest.raises(TypeError, match="argument `reference`"):
        keras_basis.transform.spectra(model, reference="model")
